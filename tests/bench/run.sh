#!/bin/sh
# fwlog's benchmark and reliability suite: one command, as root.
#   sudo tests/bench/run.sh            # full run, about 20 minutes (the pinned climb 6 of them)
#   sudo tests/bench/run.sh --quick    # about 6 minutes
# Extra arguments go to bench.py (--json FILE, --only sweep,latency,flood,replay, --keep).
# Without --only, a second pass measures the zero-loss ceiling with every packet logged to 8
# groups (with 2 groups this machine cannot send fast enough to saturate fwlog): the bare
# receiver, fwlog and fwlog in hold mode (the packaged unit's fd store), interleaved; its JSON
# goes beside the first (FILE with -8groups before .json). A third pass climbs again with the
# sender and the receivers on CPUs of their own (--pin; FILE with -8groups-pinned).
set -eu
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
    echo "SKIP bench: needs root (network namespaces, nftables, NFLOG, raw sockets)"
    exit 0
fi
for tool in nft ip nsd ulogd python3; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
        echo "bench: $tool is missing: apt-get install nftables iproute2 nsd ulogd2 python3" >&2
        exit 1
    }
done
cargo build --release --quiet --bin fwlog --example benchtool
target="${CARGO_TARGET_DIR:-target}"
bench() {
    python3 tests/bench/bench.py --fwlog "$target/release/fwlog" \
        --benchtool "$target/release/examples/benchtool" "$@"
}
bench "$@"
only=no quick=no json=
prev=
for a in "$@"; do
    case "$a" in
    --only | --only=*) only=yes ;;
    --quick) quick=yes ;;
    --json=*) json="${a#--json=}" ;;
    esac
    [ "$prev" = --json ] && json="$a"
    prev="$a"
done
[ "$only" = yes ] && exit 0
# Each receiver climbs the rates until its first loss in a repeat; the summary gives its
# zero-loss rate per repeat as a ratio to bare's (the target: >= 0.95 in 3 of 3 repeats).
if [ "$quick" = yes ]; then
    set -- --only sweep --groups 8 --receivers bare,fwlog,fwlog-held --climb \
        --rates 50000,100000,150000,200000,0 --quick
else
    set -- --only sweep --groups 8 --receivers bare,fwlog,fwlog-held --climb \
        --rates 50000,100000,125000,150000,175000,200000,250000,0
fi
[ -n "$json" ] && set -- "$@" --json "${json%.json}-8groups.json"
bench "$@"
# The same climb with the sender (one thread) on CPU 0 and every receiver on CPU 1: above, the
# sender and the receiver share both cores, so the ratio says how much CPU the receiver takes
# from the sender; here each has a core, so a receiver's loss is its own ceiling. The unpaced
# step is sized for the pinned sender's ~350k packets/s: 4 s of it, longer than the socket
# buffer can hide a shortfall. About 6 minutes (1 with --quick).
if [ "$quick" = yes ]; then
    set -- --only sweep --groups 8 --receivers bare,fwlog,fwlog-held --climb --pin \
        --rates 100000,200000,300000,0 --max-rate-guess 350000 --quick
else
    set -- --only sweep --groups 8 --receivers bare,fwlog,fwlog-held --climb --pin \
        --rates 100000,200000,250000,300000,350000,0 --max-rate-guess 350000
fi
[ -n "$json" ] && set -- "$@" --json "${json%.json}-8groups-pinned.json"
if [ "$(nproc)" -lt 2 ]; then
    echo "SKIP pinned 8-group climb: needs CPUs 0 and 1 (nproc says $(nproc))"
    exit 0
fi
bench "$@"
