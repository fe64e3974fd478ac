#!/usr/bin/env bash
# Make tests/data/geo.pcap, the fixed capture behind `fwlog report`'s golden outputs: real
# NFLOG records from the kernel, logged by nft in a throw-away network namespace where public
# addresses sit on `lo` (nothing leaves the machine), spooled by `fwlog run`, exported with
# `fwlog replay --pcap`. Run once as root from the repository root; the result is committed.
#
# Traffic: 81.2.69.160 sweeps 26 TCP ports of 89.160.20.112 (a port scan); 216.160.83.56
# tries TCP port 23 on 12 hosts (a host scan); 2a02:ec0::1 tries SSH 5 times on 2001:218::1;
# 175.16.199.1 sends 3 DNS queries; 10.0.0.5 (private) 2 HTTP SYNs. SSH is logged to group 7
# with prefix "ssh ", the rest to group 8 with prefix "drop ".
set -euo pipefail
fwlog=${FWLOG:-target/debug/fwlog}
out=${1:-tests/data/geo.pcap}
ns=fwlog-geocap-$$
tmp=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
for a in 81.2.69.160 216.160.83.56 175.16.199.1 10.0.0.5 $(seq -f '89.160.20.%g' 112 124); do
  ip -n "$ns" addr add "$a/32" dev lo
done
for a in 2a02:ec0::1 2001:218::1; do ip -n "$ns" -6 addr add "$a/128" dev lo nodad; done
ip netns exec "$ns" nft -f - <<'NFT'
table inet cap {
  chain input {
    type filter hook input priority 0;
    tcp dport 22 tcp flags & (syn | ack) == syn log prefix "ssh " group 7
    tcp dport != 22 tcp flags & (syn | ack) == syn log prefix "drop " group 8
    udp dport 53 log prefix "drop " group 8
  }
}
NFT
ip netns exec "$ns" "$fwlog" run --group 7 --group 8 --no-dns --spool "$tmp/spool" \
  --retain 16MiB --output "$tmp/out.log" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q "logging NFLOG" "$tmp/err" && break; sleep 0.1; done
ip netns exec "$ns" python3 - <<'PY'
import socket, time
def syn(src, dst, port, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((src, 0)); s.settimeout(1)
    try: s.connect((dst, port))
    except OSError: pass
    s.close()
for p in range(20, 46): syn("81.2.69.160", "89.160.20.112", p)
for h in range(113, 125): syn("216.160.83.56", "89.160.20.%d" % h, 23)
for _ in range(5): syn("2a02:ec0::1", "2001:218::1", 22, socket.AF_INET6)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("175.16.199.1", 0))
for _ in range(3): u.sendto(b"q", ("89.160.20.112", 53))
for _ in range(2): syn("10.0.0.5", "89.160.20.112", 80)
PY
sleep 1
kill "$pid"; wait "$pid" || true
"$fwlog" replay --spool "$tmp/spool" --pcap "$out"
echo "wrote $out: $("$fwlog" read --no-dns -f kernel "$out" | wc -l) packets"
