#!/usr/bin/env bash
# tests/nspawn.sh: the installed package under a real systemd, in a container booted with
# systemd-nspawn --boot (Debian 12 rootfs made by debootstrap, private network: loopback only).
#
# In the container, as a oneshot service of its systemd (tests/nspawn-guest.sh):
#   1. tests/package.sh --deb FILE: every live check of the package with systemctl (the real unit
#      and its sandbox, READY=1, reload, Restart= on failure but not on a usage error, syslog).
#   2. The fd store: an nft rule logs a UDP flood (about 20k packets/s on loopback) to the fwlog
#      group; fwlog is killed with kill -9 several times, restarted by Restart=on-failure, then
#      restarted by `systemctl restart` and by reinstalling the package (an upgrade); every packet
#      the rule counted must be printed, none reported lost, and each new process must have taken
#      the stored socket back (its journal line, NFileDescriptorStore=1).
#
# Needs root on Debian with network access to the Debian mirror the first time (debootstrap);
# the rootfs is cached as a tarball under /var/cache/fwlog-test (keyed by the package list), so
# later runs unpack it in seconds. Not root, or not Debian: prints SKIP and exits 0. A container
# that does not boot is a failure, with the reason (systemd-nspawn's own lines).
#
# Invariants:
# - The host is left as found: the container's root is a directory under $WORK, removed at
#   the end; nothing is installed on the host but systemd-container and debootstrap (when
#   missing), no unit or machine registration (--register=no --keep-unit).
# - The guest's verdict is its exit status (the service's SuccessAction=/FailureAction=exit makes
#   the container's systemd exit with it), and a result file on a bind mount.
#
# Usage: tests/nspawn.sh [--deb FILE]   (default: the .deb tests/package.sh built last)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
deb=
case "${1:-}" in
--deb) deb=$(realpath "${2:?--deb needs a file}") ;;
"") ;;
*)
	echo "usage: tests/nspawn.sh [--deb FILE]" >&2
	exit 64
	;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP tests/nspawn.sh: needs root (boots a container)"
	exit 0
fi
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "SKIP tests/nspawn.sh: not a Debian system (no dpkg/apt-get)"
	exit 0
fi

t0=$(date +%s)
step() { echo "== nspawn: $* ($(($(date +%s) - t0))s)"; }
ok() { echo "   ok: $*"; }
fail() {
	echo "FAIL: tests/nspawn.sh: $*" >&2
	exit 1
}

WORK="${CARGO_TARGET_DIR:-$repo/target}/nspawn"
CACHE=/var/cache/fwlog-test
SUITE=bookworm
# What the guest needs: systemd as PID 1, what the package depends on and recommends, what
# tests/package.sh uses (man, nft, ip, setpriv), python3 for the flood and the verdict.
GUEST_PKGS=systemd,systemd-sysv,dbus,adduser,logrotate,man-db,nftables,iproute2,util-linux,procps,python3
if [ -z "$deb" ]; then
	deb=$(ls -t "${CARGO_TARGET_DIR:-$repo/target}"/package/src/fwlog_*.deb 2>/dev/null | head -1) ||
		true
	[ -n "$deb" ] || fail "no .deb: run tests/package.sh first (it builds one), or pass --deb FILE"
fi
[ -f "$deb" ] || fail "$deb: no such file"

step "host tools"
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
if [ "${#need[@]}" -gt 0 ]; then
	echo "   installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
fi
ok "$(systemd-nspawn --version | head -1)"
# NFLOG in the guest's network namespace needs the host's module (a container cannot load it).
modprobe nfnetlink_log 2>/dev/null || true

# The mirror the host's apt uses for $SUITE (one-line or deb822 sources), else Debian's.
mirror() {
	local m
	m=$(grep -hE "^deb +(\[[^]]*\] +)?https?://[^ ]+ +$SUITE( |$)" /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1; exit}')
	if [ -z "$m" ]; then
		m=$(awk -v s="$SUITE" '
			/^$/ { if (ok && uri) { print uri; exit } ok = 0; uri = "" }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
			END { if (ok && uri) print uri }' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

step "the guest's root file system"
key=$(echo "$SUITE $GUEST_PKGS" | sha256sum | cut -c1-12)
tarball="$CACHE/rootfs-$SUITE-$key.tar.gz"
if [ ! -f "$tarball" ]; then
	mkdir -p "$CACHE" "$WORK"
	build="$WORK/debootstrap"
	rm -rf "$build"
	m=$(mirror)
	echo "   debootstrap $SUITE from $m (once; cached as $tarball)"
	tb=$(date +%s)
	if ! debootstrap --variant=minbase --include="$GUEST_PKGS" "$SUITE" "$build" "$m" \
		>"$WORK/debootstrap.log" 2>&1; then
		tail -20 "$WORK/debootstrap.log" >&2
		fail "debootstrap failed (log: $WORK/debootstrap.log)"
	fi
	# A rootfs made for booting: no machine id (systemd makes one at first boot), no apt lists.
	: >"$build/etc/machine-id"
	rm -rf "$build"/var/lib/apt/lists/* "$build"/var/cache/apt/*.bin
	tar -C "$build" -czf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
	rm -rf "$build"
	ok "debootstrap + tarball in $(($(date +%s) - tb))s: $(du -h "$tarball" | cut -f1)"
else
	ok "cached: $tarball"
fi

root="$WORK/root"
out="$WORK/out"
cleanup() {
	local rc=$?
	set +e
	[ -n "${NSPAWN_PID:-}" ] && kill -KILL "$NSPAWN_PID" 2>/dev/null
	rm -rf "$root"
	echo "== tests/nspawn.sh: $([ "$rc" -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t0))s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$root" "$out"
mkdir -p "$root" "$out"
tar -C "$root" -xzf "$tarball"
# The test's files, and the service that runs it once the container has booted.
mkdir -p "$root/root/guest-test/tests"
cp "$deb" "$root/root/guest-test/fwlog.deb"
cp "$repo/tests/package.sh" "$repo/tests/nspawn-guest.sh" "$root/root/guest-test/tests/"
cat >"$root/etc/systemd/system/guest-test.service" <<'EOF'
[Unit]
Description=the package's tests under systemd (tests/nspawn.sh)
After=multi-user.target
# The container's systemd exits with the test's exit status: systemd-nspawn returns it.
SuccessAction=exit
FailureAction=exit

[Service]
Type=oneshot
ExecStart=/bin/bash /root/guest-test/tests/nspawn-guest.sh /root/guest-test/fwlog.deb /guest-test-out
TimeoutStartSec=25min
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/guest-test.service \
	"$root/etc/systemd/system/multi-user.target.wants/guest-test.service"
ok "unpacked into $root with $(basename "$deb") and the guest test"

step "boot: systemd-nspawn --boot --private-network"
rc=0
# --register=no --keep-unit: no machined, no transient scope (the host need not run systemd).
timeout 30m systemd-nspawn --quiet -D "$root" --boot --private-network \
	--register=no --keep-unit -M "fwlogtest$$" --bind="$out:/guest-test-out" \
	--console=read-only >"$out/console.log" 2>&1 &
NSPAWN_PID=$!
wait "$NSPAWN_PID" || rc=$?
NSPAWN_PID=
if [ ! -f "$out/started" ]; then
	tail -30 "$out/console.log" >&2
	fail "the container did not boot to its test service (exit status $rc; systemd-nspawn's output above, all of it in $out/console.log)"
fi
sed 's/^/   guest: /' "$out/guest.log"
result=$(cat "$out/result" 2>/dev/null || echo none)
[ "$result" = 0 ] && [ "$rc" -eq 0 ] ||
	fail "the guest test failed: its result '$result', systemd-nspawn's exit status $rc (logs: $out)"
ok "the guest test passed under systemd $(sed -n 's/.*systemd \([0-9][0-9.a-z~-]*\) running.*/\1/p' "$out/console.log" | head -1)"
