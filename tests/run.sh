#!/usr/bin/env bash
# Run fwlog's whole test suite: the README's second command, and what CI runs.
#
# As root on Debian it first installs what the tests need (nftables, iptables, tcpdump, nsd,
# rsyslog, ...): the kernel tests create network namespaces, load nft rules that log to NFLOG
# groups, send packets and compare fwlog's output with the kernel's own LOG lines. Not as root,
# those tests skip with a message and the rest still run.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
deps=(
  "nft nftables" "iptables iptables" "tcpdump tcpdump" "ip iproute2" "nsd nsd"
  "rsyslogd rsyslog" "mandoc mandoc" "ulogd ulogd2" "tshark tshark" "setpriv util-linux"
  "curl curl"
)
missing=()
for d in "${deps[@]}"; do
  set -- $d
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing+=("$2")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packaged daemons must not run on their own: tests start their own instances.
    for s in nsd rsyslog ulogd2; do
      systemctl disable --now "$s" >/dev/null 2>&1 || true
      pkill -x "${s%2}" >/dev/null 2>&1 || true
    done
  else
    echo "tests/run.sh: not root (or no apt-get): ${missing[*]} missing; kernel tests will skip" >&2
  fi
fi
if [ "$(id -u)" -eq 0 ]; then
  # The kernel prints LOG lines from non-initial namespaces only with this set (test oracle).
  modprobe nf_log_syslog 2>/dev/null || true
  modprobe nfnetlink_log 2>/dev/null || true
  modprobe nfnetlink_queue 2>/dev/null || true
else
  echo "tests/run.sh: not root: tests that need network namespaces will print SKIP" >&2
fi

# fwlog's default paths: tests must never touch them (each test uses its own directories).
defaults_existed=0
if [ -e /var/spool/fwlog ] || [ -e /var/log/fwlog ]; then defaults_existed=1; fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# cargo test's exit status already fails the script on any failed test; say so plainly too.
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')

if [ "$(id -u)" -eq 0 ]; then
  if [ "$defaults_existed" -eq 0 ] && { [ -e /var/spool/fwlog ] || [ -e /var/log/fwlog ]; }; then
    echo "tests/run.sh: a test wrote to /var/spool/fwlog or /var/log/fwlog (fwlog's real defaults)" >&2
    exit 1
  fi
  if [ "$defaults_existed" -eq 1 ]; then
    echo "SKIP package test: /var/spool/fwlog or /var/log/fwlog already exist (is fwlog installed?); tests/package.sh would not touch them"
  else
    echo "== Debian package: build, lintian, install, run, purge (tests/package.sh)"
    bash tests/package.sh
    passed=$((passed + 1))
  fi
else
  echo "SKIP package test: needs root (it installs and purges the .deb)"
fi
echo "tests/run.sh: $passed passed, $failed failed"
