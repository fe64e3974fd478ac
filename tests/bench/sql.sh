#!/bin/sh
# fwlog's SQL outputs side by side with Debian's ulogd2 PGSQL and SQLITE3 plugins, as root:
#   sudo tests/bench/sql.sh [--json FILE] [--engines pgsql,sqlite3,mysql] [--only throughput,outage,fleet]
# (mysql: fwlog's mysql:// output beside ulogd2's MYSQL; needs ulogd2-mysql and mariadb-server)
# Extra arguments go to tests/bench/sql_side.py (see its docstring for what is measured).
set -eu
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
    echo "SKIP sql bench: needs root (network namespaces, nftables, NFLOG, raw sockets)"
    exit 0
fi
for f in /usr/sbin/ulogd /usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_PGSQL.so \
    /usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_SQLITE3.so /usr/lib/postgresql/15/bin/initdb; do
    [ -e "$f" ] || {
        echo "sql bench: $f is missing: apt-get install ulogd2 ulogd2-pgsql ulogd2-sqlite3 postgresql nftables iproute2" >&2
        exit 1
    }
done
cargo build --release --quiet --bin fwlog --example benchtool
target="${CARGO_TARGET_DIR:-target}"
exec python3 tests/bench/sql_side.py --fwlog "$target/release/fwlog" \
    --benchtool "$target/release/examples/benchtool" "$@"
