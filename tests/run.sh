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
  "sqlite3 sqlite3" "/usr/lib/postgresql/15/bin/initdb postgresql" "psql postgresql"
  "runuser util-linux" "chromium chromium" "mount mount" "openssl openssl"
  "curl curl" "systemd-nspawn systemd-container" "debootstrap debootstrap"
  "mariadbd mariadb-server" "mariadb-install-db mariadb-server" "mariadb mariadb-client"
)

# --dry-run: say what would be installed and which services would be kept from starting and
# disabled, change nothing, run no test. --assume-missing PKG (repeatable) treats PKG as not
# installed, so the service policy can be checked on a machine that has everything.
dry_run=0
assume_missing=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --assume-missing) shift; assume_missing+=("${1:?--assume-missing needs a package}") ;;
    *) echo "tests/run.sh: unknown argument $1 (use --dry-run [--assume-missing PKG])" >&2; exit 64 ;;
  esac
  shift
done

missing=()
for d in "${deps[@]}"; do
  set -- $d
  forced=0
  for a in "${assume_missing[@]}"; do [ "$a" = "$2" ] && forced=1; done
  if [ "$forced" -eq 1 ] || ! { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }; then
    case " ${missing[*]} " in *" $2 "*) ;; *) missing+=("$2") ;; esac
  fi
done
# Perl modules: the GeoIP tests write their mmdb files with MaxMind's own writer.
perl -MMaxMind::DB::Writer::Tree -e1 2>/dev/null || missing+=("libmaxmind-db-writer-perl")

# Services that packages install and start by default. The tests start their own instances on
# loopback; a packaged daemon must not run beside them. Only services of packages this script
# installs are touched: what was installed before is the machine owner's and stays as it was.
declare -A services_of=(
  [nsd]="nsd" [rsyslog]="rsyslog" [ulogd2]="ulogd2" [postgresql]="postgresql"
  [mariadb-server]="mariadb"
)
ours=()
for p in "${missing[@]}"; do
  [ -n "${services_of[$p]:-}" ] && ours+=(${services_of[$p]})
done

if [ "$dry_run" -eq 1 ]; then
  echo "tests/run.sh --dry-run: would install: ${missing[*]:-nothing}"
  echo "tests/run.sh --dry-run: would keep from starting and disable: ${ours[*]:-no service}"
  echo "tests/run.sh --dry-run: leaves alone: every service of a package installed before"
  exit 0
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "tests/run.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d answering 101 keeps maintainer scripts from starting the services they install
    # (invoke-rc.d and deb-systemd-invoke both ask it); an existing one is left in place.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# tests/run.sh: no service starts while it installs packages\nexit 101\n' >"$policy"
      chmod 755 "$policy"
      own_policy=1
      trap '[ "$own_policy" -eq 1 ] && rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; own_policy=0; fi
    # Installed by this script, so not in use by anyone: never started above, and not at boot.
    for s in "${ours[@]}"; do
      echo "tests/run.sh: $s was installed by this script: disabling it (tests start their own)"
      systemctl disable --now "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true
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
    # The same package under a real systemd (PID 1 of a booted container): the unit's sandbox,
    # Restart=, and the fd store across kill -9, systemctl restart and an upgrade.
    echo "== the package under systemd: tests/nspawn.sh (systemd-nspawn --boot)"
    bash tests/nspawn.sh
    passed=$((passed + 1))
  fi
else
  echo "SKIP package test: needs root (it installs and purges the .deb)"
fi
echo "tests/run.sh: $passed passed, $failed failed"
