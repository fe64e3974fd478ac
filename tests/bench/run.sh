#!/bin/sh
# fwlog's benchmark and reliability suite: one command, as root.
#   sudo tests/bench/run.sh            # full run, about 15 minutes
#   sudo tests/bench/run.sh --quick    # about 3 minutes
# Extra arguments go to bench.py (--json FILE, --only sweep,latency,flood,replay, --keep).
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
exec python3 tests/bench/bench.py --fwlog "$target/release/fwlog" \
    --benchtool "$target/release/examples/benchtool" "$@"
