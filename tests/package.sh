#!/usr/bin/env bash
# tests/package.sh: build the Debian package, lint it, install it, check what it installed and
# that the installed service really logs, then purge it and check what purge left.
#
# Needs root on Debian 12 (installs and purges the package; installs build dependencies with
# apt-get when missing). Not root: prints SKIP and exits 0. Exits non-zero on any failure.
#
# Invariants:
# - The machine is left as found: a trap purges the package, deletes the nft table the test
#   loads and the system user the package created (Debian keeps it on purge; the test does not).
#   It refuses to start if fwlog is already installed or its paths exist.
# - The repository is not written to: the tree is copied (tracked and untracked, not ignored
#   files) to $WORK/src/fwlog-VERSION and built there; the .deb files land in $WORK/src.
#   $WORK is ${CARGO_TARGET_DIR:-<repo>/target}/package; $WORK/cargo caches cargo's build. The
#   copy's files get the time of the copy (tar -m), so cargo never takes a file edited while
#   the previous build ran, but copied after it, for already built.
# - Man pages missing from the tree (man/fwlog.8, man/fwlog-spool.5) are replaced in the copy
#   by placeholders, said loudly, so the build is checked with man pages present.
# - Network traffic: UDP datagrams to 127.0.0.2 (loopback), logged by an nft rule in a table of
#   the test's own; one to 203.0.113.1 (TEST-NET-3) that the same table logs and drops before it
#   leaves; DNS queries only to the test's own nsd on 127.0.0.1 (no nsd: --no-dns).
#
# Usage: tests/package.sh [--deb FILE]
#   --deb FILE  check an already built package: no build, no lintian (for example inside a
#               systemd container, to drive the real unit where the build host has no systemd).
#
# Live checks of the service: with systemd as PID 1 through systemctl (the real unit with its
# sandbox); otherwise the same checks with the daemon started as the unit would start it
# (setpriv: user fwlog, only CAP_NET_ADMIN, no new privileges), said loudly; the unit is
# Type=notify, so there the test plays systemd's notify socket (python3) and starts sending once
# READY=1 arrived, as units ordered After=fwlog.service would.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
prebuilt=
case "${1:-}" in
--deb) prebuilt=$(realpath "${2:?--deb needs a file}") ;;
"") ;;
*)
	echo "usage: tests/package.sh [--deb FILE]" >&2
	exit 64
	;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP tests/package.sh: needs root (builds, installs and purges the Debian package)"
	exit 0
fi
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "SKIP tests/package.sh: not a Debian system (no dpkg/apt-get)"
	exit 0
fi

t0=$(date +%s)
step() { echo "== $* ($(($(date +%s) - t0))s)"; }
ok() { echo "   ok: $*"; }
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

WORK="${CARGO_TARGET_DIR:-$repo/target}/package"
if [ -n "$prebuilt" ]; then
	VERSION=$(dpkg-deb -f "$prebuilt" Version)
else
	VERSION=$(dpkg-parsechangelog -l "$repo/debian/changelog" -S Version)
fi
UPSTREAM=${VERSION%-*}
UNIT=/lib/systemd/system/fwlog.service
GROUP=$((30000 + $$ % 1000)) # NFLOG group for the live checks: one no one else uses
PORT=$((40000 + $$ % 1000))
NFT_TABLE=fwlog_pkgtest
PREFIX="fwlog-pkgtest-$$" # nft log prefix: marks this run's lines in the log and the journal
# The default format (fwlog blocks): its PKT line carries the nft prefix, which the checks count.
# --no-dns unless the test's own nsd runs (below).
TEST_OPTS="--group $GROUP --no-dns --output /var/log/fwlog"
DAEMON_PID=
DNSPORT=$((50000 + $$ % 1000)) # the test's own name server (nsd) on 127.0.0.1, when installed
NSD_PID=
NOTIFY_PID= # without systemd: the test's stand-in for its notify socket (python3), when installed
NOTIFY_DIR=

# ---------------------------------------------------------------- preconditions and cleanup
step "preconditions"
if dpkg-query -W -f='${db:Status-Status}' fwlog 2>/dev/null | grep -qv '^not-installed$'; then
	fail "fwlog is already installed here: refusing (the test purges it at the end)"
fi
for p in /var/spool/fwlog /var/log/fwlog /etc/default/fwlog /usr/sbin/fwlog; do
	[ ! -e "$p" ] || fail "$p exists already: refusing (purge would delete it)"
done
user_existed=no
getent passwd fwlog >/dev/null && user_existed=yes
group_existed=no
getent group fwlog >/dev/null && group_existed=yes
ok "fwlog not installed; user fwlog existed before: $user_existed"

systemd_running=no
[ -d /run/systemd/system ] && systemd_running=yes

cleanup() {
	local rc=$?
	set +e
	echo "== cleanup (exit status so far: $rc)"
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID"
		wait "$DAEMON_PID" 2>/dev/null
	fi
	nft delete table inet "$NFT_TABLE" 2>/dev/null
	if [ -n "$NSD_PID" ]; then
		kill -TERM "$NSD_PID"
		wait "$NSD_PID" 2>/dev/null
	fi
	if [ -n "$NOTIFY_PID" ]; then
		kill -TERM "$NOTIFY_PID"
		wait "$NOTIFY_PID" 2>/dev/null
	fi
	[ -z "$NOTIFY_DIR" ] || rm -rf "$NOTIFY_DIR"
	if dpkg-query -W -f='${db:Status-Status}' fwlog 2>/dev/null | grep -qv '^not-installed$'; then
		echo "   purging fwlog"
		dpkg --purge fwlog >/dev/null
	fi
	[ "$systemd_running" = yes ] && systemctl reset-failed fwlog.service 2>/dev/null
	if [ "$user_existed" = no ] && getent passwd fwlog >/dev/null; then
		echo "   deleting the system user fwlog (created by this test's install)"
		userdel fwlog
	fi
	if [ "$group_existed" = no ] && getent group fwlog >/dev/null; then
		groupdel fwlog
	fi
	echo "== tests/package.sh: $([ "$rc" -eq 0 ] && echo PASS || echo FAIL) in $(($(date +%s) - t0))s"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build dependencies
step "build and test dependencies"
need=()
deps=(man-db adduser logrotate nftables util-linux systemd iproute2)
[ -n "$prebuilt" ] || deps+=(build-essential debhelper dpkg-dev fakeroot lintian)
for p in "${deps[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
	echo "   installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "$prebuilt" ]; then
	deb=$prebuilt
	echo "   --deb $deb: no build, no lintian"
else
	# The package is built with the machine's rustup toolchain, not Debian's.
	[ -d "${HOME:-/root}/.cargo/bin" ] && PATH="${HOME:-/root}/.cargo/bin:$PATH"
	command -v cargo >/dev/null || fail "cargo not found (install Rust with rustup: ~/.cargo/bin)"
	ok "$(cargo --version)"

	# ---------------------------------------------------------------- build
	step "build: dpkg-buildpackage -us -uc -b in a copy of the tree"
	src="$WORK/src/fwlog-$UPSTREAM"
	rm -rf "$WORK/src"
	mkdir -p "$src"
	if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
		(cd "$repo" && git ls-files -z -co --exclude-standard) |
			(cd "$repo" && tar -cf - --null --no-recursion -T -) | tar -xmf - -C "$src"
	else # an unpacked tarball: everything but build output
		(cd "$repo" && tar -cf - --exclude=./target --exclude=./fuzz/target .) | tar -xmf - -C "$src"
	fi
	mkdir -p "$src/man"
	for m in fwlog.8 fwlog-spool.5; do
		if [ ! -e "$src/man/$m" ]; then
			echo "   PLACEHOLDER: man/$m is not in the tree; a placeholder page stands in for it"
			printf '.TH %s %s\n.SH NAME\n%s \\- placeholder written by tests/package.sh\n' \
				"${m%.*}" "${m##*.}" "${m%.*}" >"$src/man/$m"
		fi
	done
	tb=$(date +%s)
	if ! (cd "$src" && CARGO_TARGET_DIR="$WORK/cargo" dpkg-buildpackage -us -uc -b) \
		>"$WORK/build.log" 2>&1; then
		tail -40 "$WORK/build.log"
		fail "dpkg-buildpackage failed (log: $WORK/build.log)"
	fi
	deb="$WORK/src/fwlog_${VERSION}_$(dpkg --print-architecture).deb"
	changes="$WORK/src/fwlog_${VERSION}_$(dpkg --print-architecture).changes"
	[ -f "$deb" ] || fail "no $deb"
	ok "built $(basename "$deb") in $(($(date +%s) - tb))s (log: $WORK/build.log)"

	contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
	for f in ./usr/sbin/fwlog ./lib/systemd/system/fwlog.service ./etc/logrotate.d/fwlog \
		./etc/default/fwlog ./usr/share/man/man8/fwlog.8.gz ./usr/share/man/man5/fwlog-spool.5.gz ./usr/share/man/man5/fwlog-sql.5.gz \
		./usr/share/bash-completion/completions/fwlog ./usr/share/zsh/vendor-completions/_fwlog \
		./usr/share/fish/vendor_completions.d/fwlog.fish; do
		grep -qx "$f" <<<"$contents" || fail "$f is not in the package"
	done
	ok "the package holds the binary, unit, logrotate, default file, man pages, completions"

	# ---------------------------------------------------------------- lintian
	step "lintian"
	# lintian warns when run as root; that line is not about the package.
	lint=$(lintian --info --display-level '>=info' "$changes" 2>&1 | grep -v 'running with root privileges') ||
		true
	echo "$lint" | grep -E '^[EWI]:' | sed 's/^/   /' || true
	errors=$(grep -c '^E:' <<<"$lint" || true)
	warnings=$(grep -c '^W:' <<<"$lint" || true)
	[ "$errors" -eq 0 ] || fail "lintian: $errors error(s)"
	ok "lintian: 0 errors, $warnings warning(s)"
fi
mkdir -p "$WORK"

# ---------------------------------------------------------------- install
step "install: dpkg -i"
dpkg -i "$deb" >/dev/null
ok "installed"

step "installed files"
v=$(/usr/sbin/fwlog --version)
[ "$v" = "fwlog $UPSTREAM" ] || fail "fwlog --version says '$v', want 'fwlog $UPSTREAM'"
ok "fwlog --version: $v"
for page in "8 fwlog" "5 fwlog-spool"; do
	set -- "${page% *}" "${page#* }"
	path=$(man -w "$1" "$2") || fail "man $1 $2: no page"
	text=$(MANPAGER=cat MANWIDTH=80 man "$1" "$2" 2>/dev/null) || fail "man $1 $2 does not render"
	grep -q "$2" <<<"$text" || fail "man $1 $2 renders without its name"
	ok "man $1 $2: $path"
done
bash -n /usr/share/bash-completion/completions/fwlog || fail "bash completion has a syntax error"
out=$(bash -c 'source /usr/share/bash-completion/completions/fwlog; complete -p fwlog')
ok "bash completion loads: $out"
[ -f "$UNIT" ] || fail "no $UNIT"
[ -L /etc/systemd/system/multi-user.target.wants/fwlog.service ] || fail "fwlog.service not enabled"
ok "unit $UNIT, enabled"
conffiles=$(dpkg-query -W -f='${Conffiles}' fwlog)
for c in /etc/default/fwlog /etc/logrotate.d/fwlog; do
	grep -q "^ $c " <<<"$conffiles" || fail "$c is not a conffile"
done
ok "conffiles: /etc/default/fwlog /etc/logrotate.d/fwlog"
logrotate --debug /etc/logrotate.d/fwlog >/dev/null 2>&1 || fail "logrotate rejects /etc/logrotate.d/fwlog"
grep -q 'kill.*HUP.*fwlog.service' /etc/logrotate.d/fwlog || fail "logrotate does not send SIGHUP"
ok "logrotate accepts /etc/logrotate.d/fwlog; its postrotate sends SIGHUP"

step "system user, spool, log file"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd fwlog) || fail "no user fwlog"
[ "$uid" -lt 1000 ] || fail "fwlog uid $uid is not a system uid"
[ "$(getent group "$gid" | cut -d: -f1)" = fwlog ] || fail "fwlog's primary group is not fwlog"
[ "$shell" = /usr/sbin/nologin ] || fail "fwlog's shell is $shell, want /usr/sbin/nologin"
[ ! -e "$home" ] || fail "fwlog's home $home exists"
ok "user fwlog: uid $uid, group fwlog, shell $shell, home $home (absent)"
want_stat() { # path "type mode owner group"
	local got
	got=$(stat -c '%F %a %U %G' "$1") || fail "$1 is missing"
	[ "$got" = "$2" ] || fail "$1 is '$got', want '$2'"
	ok "$1: $got"
}
want_stat /var/spool/fwlog "directory 700 fwlog fwlog"
want_stat /var/log/fwlog "regular empty file 640 fwlog adm"

step "unit: systemd-analyze verify and security"
verify=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $verify"
if grep -q fwlog <<<"$verify"; then fail "systemd-analyze verify complains: $verify"; fi
[ -z "$verify" ] || echo "   (verify, about other units: $verify)"
ok "systemd-analyze verify $UNIT: clean"
sec=$(systemd-analyze security --offline=true "$UNIT" 2>&1 | tail -1)
score=$(sed -n 's/.*exposure level for fwlog.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[ -n "$score" ] || fail "no exposure score in: $sec"
echo "   exposure: systemd-analyze security --offline=true $UNIT -> $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure $score is above 2.0"
ok "exposure $score <= 2.0"
if ! grep -qx 'RestartPreventExitStatus=64' "$UNIT" || ! grep -qx 'Restart=on-failure' "$UNIT"; then
	fail "the unit must restart on failure but not on usage errors (64)"
fi
if ! grep -qx 'Type=notify' "$UNIT" || ! grep -qx 'NotifyAccess=main' "$UNIT"; then
	fail "the unit must be Type=notify with NotifyAccess=main (fwlog sends READY=1 once logging)"
fi
# README and fwlog(8) say the packaged unit sets no watchdog (a blocked output would restart
# fwlog and lose what the kernel logs meanwhile); the unit must agree.
if grep -q '^WatchdogSec=' "$UNIT"; then
	fail "the unit sets WatchdogSec=, which README and fwlog(8) say it does not"
fi
ok "Type=notify, NotifyAccess=main, no watchdog"
# The NFLOG socket survives restarts in systemd's fd store (tests/fdstore.rs plays systemd's
# part; here only the unit's setting is checked, the live check below has no kill -9 case).
if ! grep -Eqx 'FileDescriptorStoreMax=[1-9][0-9]*' "$UNIT"; then
	fail "the unit must set FileDescriptorStoreMax= (fwlog keeps its NFLOG socket there across restarts)"
fi
ok "$(grep '^FileDescriptorStoreMax=' "$UNIT")"

# ---------------------------------------------------------------- the service, live
step "the service logs a packet (NFLOG group $GROUP, UDP to 127.0.0.2:$PORT)"
modprobe nfnetlink_log 2>/dev/null || true
nft -f - <<EOF
table inet $NFT_TABLE {
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr 127.0.0.2 udp dport $PORT log prefix "$PREFIX " group $GROUP
		ip daddr 203.0.113.1 udp dport $PORT log prefix "$PREFIX-dns " group $GROUP drop
	}
}
EOF
ok "nft table inet $NFT_TABLE logs UDP to 127.0.0.2:$PORT to group $GROUP"
# Reverse DNS through the sandbox: the test's own nsd on 127.0.0.1:$DNSPORT is authoritative
# for all of in-addr.arpa (203.0.113.1 -> pkgtest.fwlog.test, any other -> any.fwlog.test: the
# source address of the packet to 203.0.113.1 depends on the machine), so every query the daemon
# sends must get an answer: no timeouts, no errors.
opts=$TEST_OPTS
nsd_dir="$WORK/nsd"
nsd_queries() { nsd-control -c "$nsd_dir/nsd.conf" stats_noreset 2>/dev/null | sed -n 's/^num.queries=//p'; }
if command -v nsd >/dev/null && command -v nsd-control >/dev/null; then
	rm -rf "$nsd_dir"
	mkdir -p "$nsd_dir"
	printf '%s\n' 'server:' "  ip-address: 127.0.0.1@$DNSPORT" '  username: ""' '  chroot: ""' \
		"  zonesdir: \"$nsd_dir\"" '  database: ""' "  pidfile: \"$nsd_dir/nsd.pid\"" \
		"  xfrdfile: \"$nsd_dir/xfrd.state\"" "  zonelistfile: \"$nsd_dir/zone.list\"" \
		"  logfile: \"$nsd_dir/nsd.log\"" '  server-count: 1' 'remote-control:' \
		'  control-enable: yes' "  control-interface: $nsd_dir/nsd.ctl" >"$nsd_dir/nsd.conf"
	{
		echo "\$ORIGIN in-addr.arpa."
		echo "\$TTL 60"
		echo "@ IN SOA ns.fwlog.test. admin.fwlog.test. 1 3600 600 86400 60"
		echo "@ IN NS ns.fwlog.test."
		echo "1.113.0.203 IN PTR pkgtest.fwlog.test."
		echo "* IN PTR any.fwlog.test."
	} >"$nsd_dir/in-addr.arpa.zone"
	printf '%s\n' 'zone:' '  name: "in-addr.arpa"' '  zonefile: "in-addr.arpa.zone"' >>"$nsd_dir/nsd.conf"
	nsd -d -c "$nsd_dir/nsd.conf" >/dev/null 2>&1 &
	NSD_PID=$!
	for _ in $(seq 100); do
		[ -n "$(nsd_queries)" ] && break
		sleep 0.1
	done
	[ -n "$(nsd_queries)" ] || fail "nsd did not start: $(tail -3 "$nsd_dir/nsd.log")"
	opts=${opts/--no-dns/--dns-server 127.0.0.1:$DNSPORT}
	ok "nsd on 127.0.0.1:$DNSPORT answers every IPv4 PTR"
else
	echo "   SKIP DNS check: nsd not installed (apt-get install nsd); the daemon runs with --no-dns"
fi
# The admin's way: edit the conffile. Under systemd the lines also go to syslog (/dev/log,
# journald), which the sandbox must allow (PrivateDevices keeps /dev/log).
[ "$systemd_running" = yes ] && opts="$opts --output syslog"
sed -i "s|^FWLOG_OPTS=.*|FWLOG_OPTS=\"$opts\"|" /etc/default/fwlog

# Wait up to 10s for a line matching $1 in the output of command "$2"...
wait_ready() {
	local pattern=$1
	shift
	for _ in $(seq 100); do
		"$@" 2>/dev/null | grep -q -- "$pattern" && return 0
		sleep 0.1
	done
	"$@" 2>/dev/null | tail -5 >&2
	fail "the daemon did not say '$pattern' within 10s"
}
if [ "$systemd_running" = yes ]; then
	echo "   systemd is PID 1: driving the real unit with systemctl"
	start() {
		# Type=notify: systemctl returns once fwlog sent READY=1, i.e. once its group is bound.
		# No waiting for the log line: the packet sent right after must be logged (the promise
		# units ordered After=fwlog.service rely on).
		systemctl restart fwlog.service
		inv=$(systemctl show -P InvocationID fwlog.service)
		[ "$(systemctl show -P SubState fwlog.service)" = running ] ||
			fail "fwlog.service is $(systemctl show -P SubState fwlog.service) after start, want running"
	}
	main_pid() { systemctl show -P MainPID fwlog.service; }
	active() { systemctl is-active --quiet fwlog.service; }
	hup() { systemctl reload fwlog.service; }
	usr1() { systemctl kill --kill-whom=main --signal=USR1 fwlog.service; }
	journal() { journalctl -q -o cat -u fwlog.service "_SYSTEMD_INVOCATION_ID=$inv"; }
	stop() { # sets STATUS
		systemctl stop fwlog.service
		STATUS=$(systemctl show -P ExecMainStatus fwlog.service)
	}
else
	echo "   NOTE: systemd is not PID 1 here: the unit's sandbox is not exercised; the daemon runs"
	echo "   as the unit runs it (user fwlog, only CAP_NET_ADMIN ambient, no new privileges)"
	usr1() { kill -USR1 "$DAEMON_PID"; }
	journal() { cat "$WORK/daemon.stderr"; }
	# Type=notify without systemd: the test binds the notify socket itself (python3; one line per
	# datagram in notify.log), world-writable like systemd's, and waits for READY=1 as systemctl
	# would; the watchdog is on (a ping every 0.5 s). Without python3: the log line, said loudly.
	notify_env=()
	if command -v python3 >/dev/null; then
		NOTIFY_DIR=$(mktemp -d /tmp/fwlog-pkgtest-notify.XXXXXX)
		chmod 755 "$NOTIFY_DIR"
		python3 -u -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
while True:
    print(s.recv(4096).decode(errors="replace").replace("\n", " "))
' "$NOTIFY_DIR/notify" >"$NOTIFY_DIR/notify.log" 2>&1 &
		NOTIFY_PID=$!
		for _ in $(seq 50); do
			[ -S "$NOTIFY_DIR/notify" ] && break
			sleep 0.1
		done
		[ -S "$NOTIFY_DIR/notify" ] || fail "the stand-in notify socket did not appear"
		notify_env=(NOTIFY_SOCKET="$NOTIFY_DIR/notify" WATCHDOG_USEC=1000000)
		ok "notify socket $NOTIFY_DIR/notify (the test's, world-writable like systemd's)"
	else
		echo "   SKIP notify checks: no python3 to play systemd's notify socket; waiting for the log line"
	fi
	notify_log() { cat "$NOTIFY_DIR/notify.log"; }
	start() {
		# shellcheck disable=SC2086 # FWLOG_OPTS is split on spaces, as systemd's $FWLOG_OPTS is
		env "${notify_env[@]}" setpriv --reuid fwlog --regid fwlog --clear-groups --no-new-privs \
			--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
			--bounding-set=-all,+net_admin -- /usr/sbin/fwlog run $opts \
			2>"$WORK/daemon.stderr" &
		DAEMON_PID=$!
		if [ -n "$NOTIFY_PID" ]; then
			# No waiting for the log line: the packet sent right after READY=1 must be logged.
			wait_ready 'READY=1' notify_log
			ok "READY=1 through NOTIFY_SOCKET: $(grep -m1 'READY=1' "$NOTIFY_DIR/notify.log")"
		else
			wait_ready 'logging NFLOG group' cat "$WORK/daemon.stderr"
		fi
	}
	main_pid() { echo "$DAEMON_PID"; }
	active() { kill -0 "$DAEMON_PID" 2>/dev/null; }
	hup() { kill -HUP "$DAEMON_PID"; }
	stop() { # sets STATUS
		STATUS=0
		kill -TERM "$DAEMON_PID"
		wait "$DAEMON_PID" || STATUS=$?
		DAEMON_PID=
		if [ -n "$NOTIFY_PID" ]; then
			sleep 0.2 # the stand-in writes what it received
			for m in RELOADING=1 STOPPING=1 WATCHDOG=1; do
				grep -q "$m" "$NOTIFY_DIR/notify.log" ||
					fail "no $m through NOTIFY_SOCKET: $(tr '\n' '|' <"$NOTIFY_DIR/notify.log")"
			done
			ok "RELOADING=1 (SIGHUP), STOPPING=1 (SIGTERM), WATCHDOG=1 $(grep -c WATCHDOG=1 "$NOTIFY_DIR/notify.log") times"
		fi
	}
fi

# Wait up to 10s for file $1 to hold $2 lines matching the test's prefix.
wait_lines() {
	local n
	for _ in $(seq 100); do
		n=$(grep -c -- "$PREFIX" "$1" 2>/dev/null || true)
		[ "$n" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$1 has ${n:-0} packet line(s) of the test after 10s, want $2"
}
send() { echo "fwlog package test" >"/dev/udp/127.0.0.2/$PORT"; }

start
active || fail "the daemon did not start"
ok "running, main pid $(main_pid)"
send
wait_lines /var/log/fwlog 1
ok "a packet became a line in /var/log/fwlog"
if [ "$systemd_running" = yes ]; then
	for _ in $(seq 50); do
		journalctl -q -o cat --since "-2min" | grep -q -- "$PREFIX" && break
		sleep 0.1
	done
	journalctl -q -o cat --since "-2min" | grep -q -- "$PREFIX" ||
		fail "--output syslog: the line did not reach the journal through /dev/log"
	ok "--output syslog: the line reached syslog (/dev/log, journald) from inside the sandbox"
fi
usr1
for _ in $(seq 50); do
	journal | grep -q 'received=1 ' && break
	sleep 0.1
done
journal | grep -q 'received=1 ' || fail "SIGUSR1: no counters line (received=1 ...) on stderr"
ok "SIGUSR1: counters on stderr: $(journal | grep 'received=1 ' | tail -1 | cut -c1-60)..."
if [ -z "$NSD_PID" ]; then
	: # said above
elif ! ip route get 203.0.113.1 >/dev/null 2>&1; then
	echo "   SKIP DNS check: no route to 203.0.113.1 (the test needs one only to log and drop a packet)"
else
	# The nft rule logs this datagram and drops it before it leaves the machine.
	echo "fwlog package test" 2>/dev/null >"/dev/udp/203.0.113.1/$PORT" || true
	wait_lines /var/log/fwlog 2
	for _ in $(seq 50); do
		q=$(nsd_queries)
		[ "${q:-0}" -ge 1 ] && break
		sleep 0.1
	done
	q=$(nsd_queries)
	[ "${q:-0}" -ge 1 ] || fail "reverse DNS: nsd received no query from the daemon"
	usr1
	sleep 0.5
	c=$(journal | grep 'received=2 ' | tail -1)
	grep -q 'timeouts=0 errors=0' <<<"$c" || fail "reverse DNS: the query failed: $c; nsd: $(nsd-control -c "$nsd_dir/nsd.conf" stats_noreset 2>&1 | grep -E 'rcode|num.type.(PTR|A|AAAA)=|num.queries' | grep -v '=0$' | tr '\n' ' ')"
	grep -q 'pkgtest\.fwlog\.test' /var/log/fwlog ||
		fail "reverse DNS: the name of 203.0.113.1 is not in /var/log/fwlog"
	ok "reverse DNS: nsd answered $q query(s), no timeouts or errors"
	ok "the log names 203.0.113.1: $(grep -o '[^ ]*pkgtest\.fwlog\.test[^ ]*' /var/log/fwlog | head -1)"
fi

step "logrotate, then SIGHUP: the next line goes to the new file"
before=$(grep -c -- "$PREFIX" /var/log/fwlog)
if [ "$systemd_running" = yes ]; then
	logrotate --force /etc/logrotate.d/fwlog
else
	# logrotate's postrotate talks to systemd; without it, rotate and send the HUP here.
	sed '/postrotate/,/endscript/d' /etc/logrotate.d/fwlog >"$WORK/logrotate.conf"
	logrotate --force --state "$WORK/logrotate.state" "$WORK/logrotate.conf"
	hup
fi
[ -f /var/log/fwlog.1 ] || fail "logrotate did not rotate /var/log/fwlog to /var/log/fwlog.1"
want_stat /var/log/fwlog "regular empty file 640 fwlog adm"
sleep 0.5
send
wait_lines /var/log/fwlog 1
[ "$(grep -c -- "$PREFIX" /var/log/fwlog.1)" -eq "$before" ] || fail "the new line went to fwlog.1"
ok "after rotation and SIGHUP the daemon writes the new /var/log/fwlog"
hup
active || fail "the daemon died on SIGHUP (reload)"
ok "reload (SIGHUP) keeps it running"

step "SIGTERM stops it with status 0"
stop
[ "$STATUS" = 0 ] || fail "exit status after SIGTERM: $STATUS, want 0"
ok "exit status 0"

if [ "$systemd_running" = yes ]; then
	step "Restart=: not on a usage error (64), yes on a runtime failure"
	sed -i 's|^FWLOG_OPTS=.*|FWLOG_OPTS="--no-such-flag"|' /etc/default/fwlog
	systemctl start fwlog.service || true
	sleep 7 # longer than RestartSec=5s
	[ "$(systemctl show -P ExecMainStatus fwlog.service)" = 64 ] || fail "bad flag: status not 64"
	[ "$(systemctl show -P NRestarts fwlog.service)" = 0 ] || fail "restarted after a usage error"
	ok "bad flag: status 64, not restarted"
	systemctl reset-failed fwlog.service
	sed -i "s|^FWLOG_OPTS=.*|FWLOG_OPTS=\"$TEST_OPTS\"|" \
		/etc/default/fwlog
	chown root:root /var/log/fwlog # the service user can no longer open its log
	chmod 0600 /var/log/fwlog
	systemctl start fwlog.service || true
	sleep 7
	n=$(systemctl show -P NRestarts fwlog.service)
	[ "$n" -ge 1 ] || fail "not restarted after a runtime failure (log not writable)"
	ok "log not writable: status $(systemctl show -P ExecMainStatus fwlog.service), restarted $n time(s)"
	systemctl stop fwlog.service
	systemctl reset-failed fwlog.service
	chown fwlog:adm /var/log/fwlog
	chmod 0640 /var/log/fwlog
fi
nft delete table inet "$NFT_TABLE"

# ---------------------------------------------------------------- remove, purge
step "remove: configuration and logs stay"
dpkg --remove fwlog >/dev/null
[ ! -e /usr/sbin/fwlog ] || fail "/usr/sbin/fwlog survived remove"
[ ! -e "$UNIT" ] || fail "$UNIT survived remove"
for p in /etc/default/fwlog /etc/logrotate.d/fwlog /var/log/fwlog /var/log/fwlog.1 /var/spool/fwlog; do
	[ -e "$p" ] || fail "$p was deleted by remove (only purge may)"
done
ok "binary and unit gone; conffiles, logs and spool kept"

step "purge: configuration, logs and spool go; the system user stays (Debian practice)"
dpkg --purge fwlog >/dev/null
for p in /etc/default/fwlog /etc/logrotate.d/fwlog /var/log/fwlog /var/log/fwlog.1 /var/spool/fwlog; do
	[ ! -e "$p" ] || fail "$p survived purge"
done
ok "conffiles, /var/log/fwlog*, /var/spool/fwlog removed"
if [ "$systemd_running" = yes ]; then
	systemctl cat fwlog.service >/dev/null 2>&1 && fail "systemd still knows fwlog.service"
fi
[ ! -e /etc/systemd/system/multi-user.target.wants/fwlog.service ] || fail "enable link survived purge"
ok "unit and its enable link gone"
getent passwd fwlog >/dev/null || fail "purge deleted the user fwlog (files it owns may remain)"
ok "user fwlog kept by purge (the cleanup below deletes it: the test created it)"
