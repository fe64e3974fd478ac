#!/bin/bash
# `fwlog report` over many stored packets in SQLite and in PostgreSQL: wall time, CPU and peak
# memory (max RSS) of the report, with `count(*)` over the same table in the same run as the
# baseline (what reading the table once costs the engine). The rows have the shape of
# tests/bench/report.sh's JSON lines: 200 000 distinct IPv4 sources (more than the report's
# tables hold), 1024 destination ports, times spread over 30 days, two prefixes, stored geo
# columns. The schema is made by fwlog's own outputs (a first `fwlog read` into each); the bulk
# rows are generated inside each engine, which is much faster than writing them through fwlog
# and is not what is measured.
#   tests/bench/report_sql.sh [PACKETS]    # default 10000000 (about 3.3 GB SQLite, 4 GB PG)
# Needs root (PostgreSQL runs as the postgres user in a temp dir on 127.0.0.1:55490).
# FWLOG_BENCH_DATA=DIR keeps the two databases in DIR and reuses them on the next run (building
# them takes most of the script's time); without it they go to a temp dir removed at the end.
# FWLOG_BIN=PATH measures that binary instead of building this tree's (before/after runs).
set -eu
cd "$(dirname "$0")/../.."
n=${1:-10000000}
target="${CARGO_TARGET_DIR:-target}"
if [ -n "${FWLOG_BIN:-}" ]; then
  fwlog="$(realpath "$FWLOG_BIN")"
else
  cargo build --release --quiet --bin fwlog
  fwlog="$(realpath "$target/release/fwlog")"
fi
keep=${FWLOG_BENCH_DATA:-}
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  tmp=$(realpath "$keep")
else
  tmp=$(mktemp -d /var/tmp/fwlog-report-sql.XXXXXX)
fi
pgbin=/usr/lib/postgresql/15/bin
port=55490
cleanup() {
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$tmp/pg" -m fast stop >/dev/null 2>&1 || true
  [ -n "$keep" ] || rm -rf "$tmp"
}
trap cleanup EXIT
chown postgres "$tmp"

# SQLite: fwlog makes the schema; the rows come from a recursive CTE (sources precomputed).
db="$tmp/fw.db"
if [ ! -e "$tmp/sqlite.done.$n" ]; then
rm -f "$db" "$db"-*
"$fwlog" read --no-dns -o "sqlite:$db" tests/data/geo.pcap
python3 - "$db" "$n" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
c.execute("PRAGMA synchronous = OFF")
# Bulk load: no WAL, the secondary indexes built once after the rows (fwlog's own DDL, taken
# from the schema and run again), then the database as fwlog left it (WAL).
c.execute("PRAGMA journal_mode = DELETE")
idx = c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'packets'"
                " AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'").fetchall()
for name, _ in idx:
    c.execute('DROP INDEX "%s"' % name)
c.execute("CREATE TEMP TABLE srcs (s INTEGER PRIMARY KEY, a BLOB)")
c.executemany("INSERT INTO srcs VALUES (?, ?)",
    ((s, bytes([0] * 10 + [255, 255, 81, s >> 16, (s >> 8) & 255, s & 255])) for s in range(200000)))
c.execute("""
WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < ? - 1)
INSERT INTO packets (time, time_source, host, stream, seq, seq_global, nflog_group, family,
  prefix, hook, mark, in_if, src, dst, proto, sport, dport, tcp_flags, length, ttl, replayed,
  partial, src_country, src_asn, src_as_org, src_lat, src_lon)
SELECT 1793491200 + (i * 2592000.0) / ?, 'kernel', 'bench', 'bench', i, i, 5, 2,
  CASE WHEN i % 7 = 0 THEN 'ssh ' ELSE 'drop ' END, 1, 0, 'eth0', srcs.a,
  x'00000000000000000000ffff0a000001', 6, 40000 + i % 20000, (i * 31) % 1024, 2, 60, 64, 0, 0,
  substr('DEGBUSSECN', 1 + 2 * (srcs.s % 5), 2), 64512 + srcs.s % 5000,
  'Example\\032Networks', 50.0 + srcs.s % 10, 8.5
FROM g JOIN srcs ON srcs.s = (g.i * 7919) % 200000""", (n, n))
c.commit()
for _, sql in idx:
    c.execute(sql)
c.execute("ANALYZE")
c.execute("PRAGMA journal_mode = WAL")
PY
touch "$tmp/sqlite.done.$n"
fi

# PostgreSQL: a server of our own; fwlog makes the schema (version 3, daily partitions).
fresh_pg=
if [ ! -e "$tmp/pg.done.$n" ]; then
  rm -rf "$tmp/pg"
  runuser -u postgres -- "$pgbin/initdb" -D "$tmp/pg" -U fwtest --auth=trust >/dev/null
  fresh_pg=1
fi
# shared_buffers as fwlog-sql(5) recommends for the central store: a quarter of the RAM (at
# least 512 MB), so a report's scans read the server's own buffers rather than copying every
# page in again from the kernel's cache.
sb=$(awk '/^MemTotal:/ { mb = int($2 / 4096); print (mb < 512 ? 512 : mb) "MB" }' /proc/meminfo)
runuser -u postgres -- "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/pg.log" -w start \
  -o "-p $port -c listen_addresses=127.0.0.1 -k $tmp/pg -c fsync=off -c shared_buffers=$sb" >/dev/null
url="postgresql://fwtest@127.0.0.1:$port/postgres"
if [ -n "$fresh_pg" ]; then
"$fwlog" read --no-dns -o "$url" tests/data/geo.pcap
psql -q "$url" <<SQL
DO \$\$ DECLARE d int; BEGIN
  FOR d IN 0..30 LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS packets_p%s PARTITION OF packets FOR VALUES FROM (to_timestamp(%s)) TO (to_timestamp(%s))',
      to_char(to_timestamp(1793491200 + d * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
      1793491200 + d * 86400, 1793491200 + (d + 1) * 86400);
  END LOOP; END \$\$;
-- Bulk load: the secondary indexes (fwlog's own DDL, kept here) built once after the rows.
CREATE TEMP TABLE bench_idx AS SELECT indexname, indexdef FROM pg_indexes
  WHERE tablename = 'packets' AND indexdef NOT LIKE 'CREATE UNIQUE%';
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexname FROM bench_idx LOOP EXECUTE format('DROP INDEX %I', r.indexname); END LOOP;
END \$\$;
INSERT INTO packets (time, time_source, host, stream, seq, seq_global, nflog_group, family,
  prefix, hook, mark, in_if, src, dst, proto, sport, dport, tcp_flags, length, ttl, replayed,
  partial, src_country, src_asn, src_as_org, src_lat, src_lon)
SELECT to_timestamp(1793491200 + (i * 2592000.0) / $n), 'kernel', 'bench', 'bench', i, i, 5, 2,
  CASE WHEN i % 7 = 0 THEN 'ssh ' ELSE 'drop ' END, 1, 0, 'eth0',
  ('81.' || (s >> 16) || '.' || ((s >> 8) & 255) || '.' || (s & 255))::inet, '10.0.0.1', 6,
  40000 + i % 20000, (i * 31) % 1024, 2, 60, 64, false, false,
  substr('DEGBUSSECN', 1 + 2 * (s % 5)::int, 2), 64512 + s % 5000, 'Example\\032Networks',
  50.0 + s % 10, 8.5
FROM (SELECT i, (i * 7919) % 200000 AS s FROM generate_series(0::int8, $n - 1) AS i) g;
-- pg_indexes gives a partitioned table's index as "CREATE INDEX ... ON ONLY packets", which
-- builds no partition's index and leaves the parent's invalid: without ONLY, as fwlog makes it.
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT indexdef FROM bench_idx LOOP
    EXECUTE replace(r.indexdef, ' ON ONLY ', ' ON ');
  END LOOP;
END \$\$;
VACUUM ANALYZE;
SQL
touch "$tmp/pg.done.$n"
fi
# A database kept from a run before that fix: its invalid indexes made again, as fwlog makes them.
psql -q "$url" <<'SQL'
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.relname AS name, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') AS def
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = 'packets'::regclass AND NOT i.indisvalid LOOP
    EXECUTE format('DROP INDEX %I', r.name);
    EXECUTE r.def;
    ANALYZE packets;
  END LOOP;
END $$;
SQL

measure() { /usr/bin/time -f "%e s wall, %U s user, %S s sys, max RSS %M KiB" "$@" 2>&1 >/dev/null | tail -1; }
# The first read of each database after building it comes from disk; warm both once so every
# measured run reads from the page cache (the baselines say what reading the table costs).
cat "$db" >/dev/null
# count(*) alone is answered from an index; reading a column of every row brings the table
# itself into the server's buffers too, where a live log database's recent days already are.
psql -Atqc 'SELECT count(*), count(src_lon) FROM packets' "$url" >/dev/null
echo "report over $n packets (+48), load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
echo "target: each 'fwlog report' line at most 5 s wall and 262144 KiB (256 MiB) max RSS; HTML under 1048576 bytes"
echo "  sqlite3 count(*) (baseline):   $(measure sqlite3 "$db" 'SELECT count(*), sum(dport) FROM packets')"
echo "  fwlog report sqlite:           $(measure "$fwlog" report "sqlite:$db")"
echo "  fwlog report --json --src ... sqlite: $(measure "$fwlog" report --json --src 81.0.0.0/8 "sqlite:$db")"
echo "  psql count(*) (baseline):      $(measure psql -Atc 'SELECT count(*), sum(dport) FROM packets' "$url")"
echo "  fwlog report postgresql:       $(measure "$fwlog" report "$url")"
echo "  fwlog report --json --src ... postgresql: $(measure "$fwlog" report --json --src 81.0.0.0/8 "$url")"
echo "  fwlog report --html (sqlite):  $(measure "$fwlog" report --html "$tmp/r-sqlite.html" "sqlite:$db")"
echo "  fwlog report --html (postgresql): $(measure "$fwlog" report --html "$tmp/r-pg.html" "$url")"
echo "  HTML pages: $(stat -c %s "$tmp/r-sqlite.html") and $(stat -c %s "$tmp/r-pg.html") bytes"
# The two databases hold the same rows: the two reports must be the same text.
if cmp -s <(TZ=UTC "$fwlog" report "sqlite:$db") <(TZ=UTC "$fwlog" report "$url"); then
  echo "  same report from both databases: yes"
else
  echo "  same report from both databases: NO"
fi
