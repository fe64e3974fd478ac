#!/usr/bin/env bash
# tests/nspawn-guest.sh DEB OUTDIR: runs inside the container tests/nspawn.sh boots, as a oneshot
# service of its systemd (PID 1). Writes OUTDIR/started, OUTDIR/guest.log and OUTDIR/result (the
# exit status); exits with it.
#
# 1. tests/package.sh --deb DEB: the package's live checks through systemctl.
# 2. The fd store under the real unit: nft counts and logs a UDP flood to the fwlog group;
#    `kill -9 $(pidof fwlog)` KILLS times (Restart=on-failure brings fwlog back after RestartSec),
#    then `systemctl restart` and a reinstall of the package (dpkg -i: an upgrade, which restarts
#    the service), all under traffic. Then: every packet the rule counted printed (distinct
#    seq_global), repeats only marked replayed, no loss reported, every new process took the
#    stored socket back, and systemd holds it (NFileDescriptorStore=1).
set -uo pipefail
deb=${1:?deb}
outdir=${2:?outdir}
: >"$outdir/started"
exec > >(tee -a "$outdir/guest.log") 2>&1
here=$(cd "$(dirname "$0")" && pwd)
KILLS=${FWLOG_NSPAWN_KILLS:-6}
GROUP=7
PORT=9007
PPS=20000

finish() {
	local rc=$?
	set +e
	[ -n "${FLOOD_PID:-}" ] && kill "$FLOOD_PID" 2>/dev/null
	echo "guest: $([ "$rc" -eq 0 ] && echo PASS || echo "FAIL (status $rc)")"
	echo "$rc" >"$outdir/result"
	exit "$rc"
}
trap finish EXIT
fail() {
	echo "FAIL: $*"
	exit 1
}
ok() { echo "   ok: $*"; }
echo "== guest: systemd $(systemctl --version | head -1 | cut -d' ' -f2), PID 1 is $(cat /proc/1/comm)"
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is not systemd"

echo "== guest: tests/package.sh --deb (the unit driven by systemctl)"
bash "$here/package.sh" --deb "$deb" || fail "tests/package.sh --deb failed under systemd"

echo "== guest: fd store: kill -9 x $KILLS, systemctl restart, package upgrade, under a flood"
dpkg -i "$deb" >/dev/null || fail "dpkg -i"
nft -f - <<EOF || fail "nft"
table inet fwlogtest {
	chain out {
		type filter hook output priority 0; policy accept;
		udp dport $PORT counter log prefix "NSPAWN " group $GROUP
	}
}
EOF
out=/var/log/fwlog
sed -i "s|^FWLOG_OPTS=.*|FWLOG_OPTS=\"--group $GROUP --no-dns --output json=$out\"|" /etc/default/fwlog
systemctl restart fwlog.service || fail "systemctl restart fwlog: $(journalctl -u fwlog -n 20 -o cat)"
counted() { nft list chain inet fwlogtest out | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
stored() { systemctl show -P NFileDescriptorStore fwlog.service 2>/dev/null; }
took_back() { journalctl -q -o cat -u fwlog.service | grep -c 'took the NFLOG socket back'; }
main_pid() { systemctl show -P MainPID fwlog.service; }
# Wait up to $1 s for fwlog.service to run a main process other than $2 that has said it is
# logging (READY=1 comes after the bind; the journal line confirms which socket).
wait_new() {
	local end=$(($(date +%s) + $1)) p
	while [ "$(date +%s)" -lt "$end" ]; do
		p=$(main_pid)
		if [ "$p" != 0 ] && [ "$p" != "$2" ] && systemctl is-active --quiet fwlog.service; then
			return 0
		fi
		sleep 0.1
	done
	fail "fwlog.service did not come back within $1 s: $(systemctl status fwlog.service --no-pager 2>&1 | tail -5)"
}
wait_new 10 0
ok "fwlog runs (pid $(main_pid)); NFileDescriptorStore=$(stored)"
took_before=$(took_back)
[ "$(stored)" = 1 ] || fail "the socket is not in the fd store (NFileDescriptorStore=$(stored))"

# The flood: PPS packets/s to 127.0.0.1:PORT until SIGTERM; prints how many it sent.
python3 -u -c '
import signal, socket, sys, time
port, pps = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
n, t0 = 0, time.monotonic()
while not stop:
    due = int((time.monotonic() - t0) * pps)
    while n < due:
        s.sendto(b"pkt-%d" % n, ("127.0.0.1", port))
        n += 1
    time.sleep(0.001)
print(n, "sent in", round(time.monotonic() - t0, 1), "s")
' "$PORT" "$PPS" >/tmp/flood.out 2>&1 &
FLOOD_PID=$!
restarts=0
for i in $(seq "$KILLS"); do
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.3 + (r % 150) / 100 }')"
	p=$(pidof fwlog) || fail "no fwlog process before kill $i"
	kill -9 "$p"
	wait_new 20 "$p"
	restarts=$((restarts + 1))
	ok "kill -9 $p ($i/$KILLS): Restart=on-failure started pid $(main_pid)"
done
sleep 1
p=$(main_pid)
systemctl restart fwlog.service || fail "systemctl restart"
wait_new 20 "$p"
restarts=$((restarts + 1))
ok "systemctl restart: pid $(main_pid)"
sleep 1
p=$(main_pid)
dpkg -i "$deb" >/dev/null || fail "dpkg -i (upgrade)"
wait_new 20 "$p"
restarts=$((restarts + 1))
ok "package upgrade (dpkg -i again): pid $(main_pid)"
sleep 1
kill "$FLOOD_PID"
wait "$FLOOD_PID"
FLOOD_PID=
ok "flood: $(cat /tmp/flood.out)"
n_stored=$(stored)
n_took=$(($(took_back) - took_before))
[ "$n_took" -eq "$restarts" ] ||
	fail "$n_took of $restarts new processes took the stored socket back: $(journalctl -q -o cat -u fwlog.service | grep -v '^fwlog: logging' | tail -20)"
ok "each of the $restarts new processes took the NFLOG socket back from the fd store; NFileDescriptorStore=$n_stored"
journalctl -q -o cat -u fwlog.service | grep 'took the NFLOG socket back' | tail -1 | sed 's/^/   journal (the last): /'
[ "$n_stored" = 1 ] || fail "NFileDescriptorStore=$n_stored, want 1"

# The verdict: distinct seq_global printed = the rule's counter, no gap, no loss line, repeats
# marked replayed.
verdict() {
	python3 - "$out" "$(counted)" <<'EOF'
import json, sys
path, counted = sys.argv[1], int(sys.argv[2])
seen, losses, bad_dups, dups = {}, [], 0, 0
for line in open(path, encoding="utf-8"):
    o = json.loads(line)
    if o.get("event") == "loss":
        losses.append(line.strip())
        continue
    g = o["seq_global"]
    if g in seen:
        dups += 1
        if not o.get("replayed"):
            bad_dups += 1
    seen[g] = True
lo, hi = (min(seen), max(seen)) if seen else (0, -1)
missing = [g for g in range(lo, hi + 1) if g not in seen]
print(f"counted {counted} printed {len(seen)} duplicates {dups} unmarked {bad_dups} "
      f"losses {len(losses)} missing {len(missing)} {missing[:5]} {losses[:3]}")
sys.exit(0 if len(seen) == counted and not losses and not bad_dups and not missing else 1)
EOF
}
# The backlog of the restarts (up to RestartSec x 20k packets each) drains in seconds.
for _ in $(seq 120); do
	verdict >/dev/null && break
	sleep 1
done
v=$(verdict) || fail "fd store under systemd: $v"
ok "every packet the rule counted printed once, none lost: $v"
systemctl stop fwlog.service
nft delete table inet fwlogtest
dpkg --purge fwlog >/dev/null
exit 0
