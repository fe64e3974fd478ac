#!/bin/sh
# `fwlog report` over many stored packets: wall time and peak memory (max RSS), against reading
# the same file with `wc -l` in the same run. The input is fwlog's own JSON lines: the lines
# `fwlog read -f json tests/data/geo.pcap` prints, repeated with sources from 200 000 distinct
# addresses (more than the report's tables hold, so their bound is exercised), times spread
# over 30 days and 1024 destination ports.
#   tests/bench/report.sh [PACKETS]     # default 1000000 (about 1.1 GB of JSON in a temp dir)
set -eu
cd "$(dirname "$0")/../.."
n=${1:-1000000}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin fwlog
fwlog="$target/release/fwlog"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$fwlog" read --no-dns -f json tests/data/geo.pcap > "$tmp/template.jsonl"
python3 - "$tmp/template.jsonl" "$n" > "$tmp/packets.jsonl" <<'PY'
import json, sys, datetime
tpl = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
start = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
out = sys.stdout
for i in range(n):
    o = tpl[i % len(tpl)]
    if o["ip"]["version"] == 4:
        s = (i * 7919) % 200000
        o["ip"]["src"] = "81.%d.%d.%d" % (s >> 16, (s >> 8) & 255, s & 255)
    if o.get("transport") and "dst_port" in o["transport"]:
        o["transport"]["dst_port"] = (i * 31) % 1024
    t = start + datetime.timedelta(seconds=(i * 30 * 86400) // n)
    o["time"] = t.isoformat(timespec="microseconds")
    out.write(json.dumps(o, separators=(",", ":")) + "\n")
PY
size=$(du -m "$tmp/packets.jsonl" | cut -f1)
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
set -- $(measure wc -l "$tmp/packets.jsonl"); base_s=$1
set -- $(measure "$fwlog" report "$tmp/packets.jsonl"); rep_s=$1 rep_kb=$2
set -- $(measure "$fwlog" report --json --src 81.0.0.0/8 "$tmp/packets.jsonl"); json_s=$1 json_kb=$2
echo "report over $n packets ($size MiB of JSON lines):"
echo "  wc -l (reading the file):   ${base_s} s"
echo "  fwlog report:               ${rep_s} s, max RSS $((rep_kb / 1024)) MiB"
echo "  fwlog report --json --src:  ${json_s} s, max RSS $((json_kb / 1024)) MiB"
python3 -c "print('  ratio report / wc -l: %.1f' % ($rep_s / max($base_s, 0.01)))"
