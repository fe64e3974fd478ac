#!/usr/bin/env python3
"""fwlog's SQL outputs side by side with Debian's ulogd2 SQL plugins (issue 16). Run through
tests/bench/sql.sh as root.

  topology   namespaces SND and LOG joined by a veth pair, as in bench.py. In LOG one nft rule
             logs every packet for 10.200.1.1 to NFLOG group 7 (fwlog) and another to group 8
             (ulogd2), each with a counter (the kernel's own count of what each consumer was
             handed), then the packet is dropped. Both consumers thus get the same packets.
  databases  (--engines pgsql,sqlite3,mysql) PostgreSQL 15 started here as the postgres user in the temporary directory (on
             disk, server defaults: fsync on, synchronous_commit on), on 127.0.0.1 inside LOG:
             database `fwlog` (fwlog creates its schema) and database `ulogd` with the schema
             ulogd2 ships (pgsql-ulogd2.sql: table ulog2, procedure INSERT_PACKET_FULL).
             SQLite: one file per consumer; ulogd2's with the table it ships (sqlite3.table,
             ulog_pkt), fwlog's created by fwlog (WAL, synchronous=FULL). MariaDB 10.11 with
             its defaults (innodb_flush_log_at_trx_commit=1): database `ulogd` with the
             shipped mysql-ulogd2.sql, `fwlog` for fwlog's MariaDB output (its whole CPU is
             reported per row: connections are threads of one process).
  consumers  fwlog run -g 7 --no-dns --output postgresql://... | sqlite:PATH, its spool in the
             temporary directory (default --fsync batch);
             ulogd: NFLOG -> BASE -> IFINDEX -> IP2STR -> HWHDR -> PGSQL (the stack of the
             shipped example ulogd.conf; IP2BIN and MYSQL for MariaDB), or NFLOG -> SQLITE3,
             plugin settings as shipped.
  throughput each consumer alone (the other not running), COUNT packets sent unpaced (ulogd2:
             ULOGD_COUNT, as it stores a few hundred rows per second with PostgreSQL): rows
             stored, rows per second (rows / time from the first packet sent to the last row
             stored), CPU per stored row of the consumer and, for PostgreSQL, of the server
             backend serving it (per process from /proc; the server's background processes
             are reported apart), what the kernel could not hand over (counter - rows).
  outage     both consumers at once, a steady RATE for 60 s; from 15 s to 45 s the database is
             gone: PostgreSQL stopped (pg_ctl stop -m fast, then started again), SQLite locked
             by a writer holding BEGIN EXCLUSIVE on both files. Afterwards: rows stored and
             lost per consumer (counter - rows), fwlog given up to 180 s to catch up.
  fleet      WRITERS fwlog processes (each its own NFLOG group, spool and --host-name) into the
             one PostgreSQL server at once, the same unpaced flood to each: total rows per
             second the server took, and the CPU per row of the writers and of the server.

Everything started here is stopped and the namespaces and temporary directory removed on exit.
"""

import argparse
import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Cpu, cpu_ticks, in_ns, run  # noqa: E402

PGBIN = "/usr/lib/postgresql/15/bin"
PLUG = "/usr/lib/x86_64-linux-gnu/ulogd"
DOC = "/usr/share/doc/ulogd2"
NS_LOG, NS_SND = f"fws-log-{os.getpid()}", f"fws-snd-{os.getpid()}"
DST, SRC_BASE, NSRC = "10.200.1.1", "10.201.0.0", 256
G_FW, G_UL = 7, 8
PORT = 55470
MY_PORT = 55471
ARGS = None
TMP = None
PROCS = []


def log(msg):
    print(msg, flush=True)


def spawn(cmd, err_path):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(err_path, "w"))
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------ topology and traffic


def setup_net():
    for ns in (NS_LOG, NS_SND):
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "fwsl", "netns", NS_LOG, "type", "veth",
         "peer", "name", "fwss", "netns", NS_SND])
    run(["ip", "-n", NS_LOG, "addr", "add", "10.200.1.1/24", "dev", "fwsl"])
    run(["ip", "-n", NS_SND, "addr", "add", "10.200.1.2/24", "dev", "fwss"])
    run(["ip", "-n", NS_LOG, "link", "set", "fwsl", "up"])
    run(["ip", "-n", NS_SND, "link", "set", "fwss", "up"])
    logs = "".join(f'  ip daddr {DST} ip protocol {{ tcp, udp }} counter log prefix "G{g} " '
                   f"group {g}\n" for g in (G_FW, G_UL))
    rules = (f"table ip fwsql {{\n chain pre {{\n  type filter hook prerouting priority -300;\n"
             f"{logs}  ip daddr {DST} drop\n }}\n}}\n")
    run(in_ns(NS_LOG, "nft", "-f", "-"), input=rules)


def counters():
    """{group: packets the kernel handed to that group's rule}."""
    out = run(in_ns(NS_LOG, "nft", "-j", "list", "table", "ip", "fwsql")).stdout
    got = {}
    for item in json.loads(out)["nftables"]:
        exprs = item.get("rule", {}).get("expr", [])
        group = next((e["log"]["group"] for e in exprs if "log" in e), None)
        count = next((e["counter"]["packets"] for e in exprs if "counter" in e), None)
        if group is not None:
            got[group] = count
    return got


def send(rate, count):
    threads = 2 if rate == 0 else 1
    out = run(in_ns(NS_SND, ARGS.benchtool, "send", DST, SRC_BASE, str(NSRC), str(rate),
                    str(count), str(threads))).stdout
    m = dict(zip(out.split()[0::2], out.split()[1::2]))
    return int(m["sent"])


# ------------------------------------------------------------------ PostgreSQL


class Pg:
    def __init__(self):
        self.dir = os.path.join(TMP, "pg")
        os.makedirs(self.dir)
        shutil.chown(TMP, "postgres")
        shutil.chown(self.dir, "postgres")
        self.as_pg([f"{PGBIN}/initdb", "-D", self.dir, "-U", "bench", "--auth=trust"])
        self.start()
        for db in ("fwlog", "ulogd"):
            self.sql("postgres", f"CREATE DATABASE {db}")
        with gzip.open(f"{DOC}/pgsql-ulogd2.sql.gz", "rt") as f:
            schema = f.read()
        run(in_ns(NS_LOG, "psql", "-q", "-h", self.dir, "-p", str(PORT), "-U", "bench",
                  "-d", "ulogd", "-v", "ON_ERROR_STOP=1"), input=schema)

    def as_pg(self, cmd):
        return run(in_ns(NS_LOG, "runuser", "-u", "postgres", "--", *cmd))

    def start(self):
        opts = f"-p {PORT} -c listen_addresses=127.0.0.1 -k {self.dir}"
        self.as_pg([f"{PGBIN}/pg_ctl", "-D", self.dir, "-o", opts, "-l",
                    os.path.join(self.dir, "log"), "-w", "start"])

    def stop(self, mode="fast"):
        run(in_ns(NS_LOG, "runuser", "-u", "postgres", "--", f"{PGBIN}/pg_ctl", "-D",
                  self.dir, "-m", mode, "stop"), check=False)

    def sql(self, db, q):
        return run(in_ns(NS_LOG, "psql", "-h", self.dir, "-p", str(PORT), "-U", "bench",
                         "-d", db, "-tAc", q)).stdout.strip()

    def rows(self, db):
        table = {"fwlog": "packets", "ulogd": "ulog2"}[db]
        try:
            return int(self.sql(db, f"SELECT count(*) FROM {table}") or 0)
        except RuntimeError:
            return 0  # fwlog's schema not made yet, or the server down

    def postmaster(self):
        with open(os.path.join(self.dir, "postmaster.pid")) as f:
            return int(f.readline())

    def procs(self):
        """{pid: CPU seconds} of the postmaster and its children."""
        pm = self.postmaster()
        out = {pm: cpu_ticks(pm)}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pm:
                    out[int(pid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
        return out

    def backends(self, db):
        q = f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'"
        return {int(p) for p in self.sql("postgres", q).split()}


class Maria:
    """MariaDB 10.11 (server defaults: innodb_flush_log_at_trx_commit=1) in the temporary
    directory, on 127.0.0.1 inside LOG; user `bench`, databases `fwlog` and `ulogd` (the
    schema ulogd2 ships: mysql-ulogd2.sql)."""

    def __init__(self):
        self.dir = os.path.join(TMP, "maria")
        os.makedirs(os.path.join(self.dir, "tmp"))
        for d in (self.dir, os.path.join(self.dir, "tmp")):
            shutil.chown(d, "mysql")
        run(["mariadb-install-db", "--no-defaults", "--user=mysql", "--skip-test-db",
             f"--datadir={self.dir}/data", f"--tmpdir={self.dir}/tmp"])
        self.proc = None
        self.start()
        self.sql("mysql", f"CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench'; "
                 f"CREATE DATABASE fwlog; CREATE DATABASE ulogd; "
                 f"GRANT ALL ON fwlog.* TO 'bench'@'127.0.0.1'; "
                 f"GRANT ALL ON ulogd.* TO 'bench'@'127.0.0.1'")
        with gzip.open(f"{DOC}/mysql-ulogd2.sql.gz", "rt") as f:
            run(in_ns(NS_LOG, "mariadb", "-S", self.sock(), "-uroot", "ulogd"), input=f.read())

    def sock(self):
        return os.path.join(self.dir, "sock")

    def start(self):
        d = self.dir
        self.proc = spawn(in_ns(NS_LOG, "/usr/sbin/mariadbd", "--no-defaults", "--user=mysql",
                                "--skip-name-resolve", "--bind-address=127.0.0.1",
                                f"--port={MY_PORT}", f"--datadir={d}/data", f"--tmpdir={d}/tmp",
                                f"--socket={self.sock()}", f"--pid-file={d}/pid",
                                f"--log-error={d}/log", "--skip-log-bin"),
                          os.path.join(d, "stderr"))
        for _ in range(600):
            if run(in_ns(NS_LOG, "mariadb", "-S", self.sock(), "-uroot", "-e", "SELECT 1"),
                   check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("mariadbd did not start: " + open(f"{d}/log").read())

    def stop(self, mode="fast"):
        if self.proc:
            stop(self.proc, signal.SIGTERM if mode == "fast" else signal.SIGKILL)

    def sql(self, db, q):
        return run(in_ns(NS_LOG, "mariadb", "-S", self.sock(), "-uroot", "-N", "-B", db,
                         "-e", q)).stdout.strip()

    def rows(self, db):
        table = {"fwlog": "packets", "ulogd": "ulog2"}[db]
        try:
            return int(self.sql(db, f"SELECT count(*) FROM {table}") or 0)
        except RuntimeError:
            return 0

    def procs(self):
        """{pid: CPU seconds}: the one server process (connections are its threads)."""
        return {self.proc.pid: cpu_ticks(self.proc.pid)}

    def backends(self, db):
        return set()


# ------------------------------------------------------------------ consumers


class Fwlog:
    name = "fwlog"
    group = G_FW

    def __init__(self, engine, group=G_FW, host="bench"):
        self.engine = engine
        self.group, self.host = group, host
        self.dir = tempfile.mkdtemp(prefix="fwlog-", dir=TMP)
        self.db = os.path.join(self.dir, "fwlog.db")

    def start(self):
        out = {"pgsql": f"postgresql://bench@127.0.0.1:{PORT}/fwlog",
               "mysql": f"mysql://bench:bench@127.0.0.1:{MY_PORT}/fwlog",
               "sqlite3": f"sqlite:{self.db}"}[self.engine]
        self.err = os.path.join(self.dir, "stderr")
        self.proc = spawn(in_ns(NS_LOG, ARGS.fwlog, "run", "-g", str(self.group), "--no-dns",
                                "--spool", os.path.join(self.dir, "spool"),
                                "--host-name", self.host, "--output", out), self.err)
        for _ in range(400):
            if "fwlog: logging NFLOG group" in open(self.err).read():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("fwlog did not start: " + open(self.err).read())

    def rows(self, pg):
        if pg:
            return pg.rows("fwlog")
        return sqlite_rows(self.db, "packets")


class Ulogd:
    name = "ulogd2"
    group = G_UL

    def __init__(self, engine):
        self.engine = engine
        self.dir = tempfile.mkdtemp(prefix="ulogd-", dir=TMP)
        self.db = os.path.join(self.dir, "ulogd.sqlite3db")
        if engine == "sqlite3":
            with open(f"{DOC}/sqlite3.table") as f:
                sqlite3.connect(self.db).executescript(f.read())

    def start(self):
        if self.engine == "pgsql":
            plugins = ["inppkt_NFLOG", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2STR",
                       "filter_HWHDR", "output_PGSQL"]
            stack = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,pg1:PGSQL"
            out = (f'[pg1]\ndb="ulogd"\nhost="127.0.0.1"\nport={PORT}\nuser="bench"\n'
                   f'table="ulog"\npass=""\nprocedure="INSERT_PACKET_FULL"\n')
        elif self.engine == "mysql":
            plugins = ["inppkt_NFLOG", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2BIN",
                       "filter_HWHDR", "output_MYSQL"]
            stack = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2bin1:IP2BIN,mac2str1:HWHDR,my1:MYSQL"
            out = (f'[my1]\ndb="ulogd"\nhost="127.0.0.1"\nport={MY_PORT}\nuser="bench"\n'
                   f'table="ulog"\npass="bench"\nprocedure="INSERT_PACKET_FULL"\n')
        else:
            plugins = ["inppkt_NFLOG", "output_SQLITE3"]
            stack = "log1:NFLOG,sq1:SQLITE3"
            out = f'[sq1]\ntable="ulog_pkt"\ndb="{self.db}"\n'
        text = f'[global]\nlogfile="{self.dir}/ulogd.log"\nloglevel=3\n'
        text += "".join(f'plugin="{PLUG}/ulogd_{p}.so"\n' for p in plugins)
        # The kernel-side settings fwlog uses (64 MiB buffer, qthresh 1024, flush timeout 1 = 10 ms).
        # ulogd applies the size only when it is below the maximum (equal is refused, and
        # the buffer stays at the kernel's default).
        text += (f"stack={stack}\n\n[log1]\ngroup={G_UL}\nnetlink_socket_buffer_size=67108864\n"
                 f"netlink_socket_buffer_maxsize=67108865\nnetlink_qthreshold=1024\n"
                 f"netlink_qtimeout=1\nbufsize=131072\n\n{out}")
        conf = os.path.join(self.dir, "ulogd.conf")
        with open(conf, "w") as f:
            f.write(text)
        self.err = os.path.join(self.dir, "stderr")
        self.proc = spawn(in_ns(NS_LOG, "ulogd", "-c", conf), self.err)
        for _ in range(200):
            r = run(in_ns(NS_LOG, "cat", "/proc/net/netfilter/nfnetlink_log"), check=False)
            if any(l.split()[:1] == [str(G_UL)] for l in r.stdout.splitlines()):
                time.sleep(0.5)  # the output plugin connects after the input binds
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("ulogd did not start: " + open(self.err).read()
                           + open(os.path.join(self.dir, "ulogd.log")).read())

    def rows(self, pg):
        if pg:
            return pg.rows("ulogd")
        return sqlite_rows(self.db, "ulog_pkt")


def sqlite_rows(path, table):
    try:
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return None  # locked or not there yet


# ------------------------------------------------------------------ scenarios


def settle(consumers, pg, want, quiet, limit):
    """Poll row counts until each consumer has `want[name]` rows or its count did not move
    for `quiet` seconds; return {name: (rows, time of the last change)}."""
    last = {c.name: (0, time.time()) for c in consumers}
    end = time.time() + limit
    while time.time() < end:
        done = True
        for c in consumers:
            n = c.rows(pg)
            if n is None:
                done = False
                continue
            if n != last[c.name][0]:
                last[c.name] = (n, time.time())
            if n < want[c.name] and time.time() - last[c.name][1] < quiet:
                done = False
        if done:
            break
        time.sleep(0.2)
    return last


def throughput(engine, cls, pg):
    c = cls(engine)
    try:
        c.start()
    except RuntimeError as e:
        # A fwlog built without the MariaDB output refuses mysql:// in one line.
        log(f"  {engine} throughput {c.name}: not measured: {e}")
        return {"consumer": c.name, "engine": engine, "error": str(e).strip()}
    before = counters()[c.group]
    pg_cpu0 = pg.procs() if pg else {}
    cpu = Cpu(c.proc.pid)
    t0 = time.time()
    send(0, ARGS.count if c.name == "fwlog" else ARGS.ulogd_count)
    handed = counters()[c.group] - before
    got = settle([c], pg, {c.name: handed}, quiet=10, limit=600)
    rows, t_last = got[c.name]
    used = cpu.used()
    res = {"consumer": c.name, "engine": engine, "handed": handed, "rows": rows,
           "lost": handed - rows, "secs": round(t_last - t0, 2),
           "rows_per_s": round(rows / max(t_last - t0, 1e-6)),
           "cpu_us_per_row": round(used / max(rows, 1) * 1e6, 2)}
    if isinstance(pg, Maria):
        # One process; its connections are threads: the whole server's CPU per row.
        used_srv = sum(t - pg_cpu0.get(p, 0.0) for p, t in pg.procs().items())
        res["server_us_per_row"] = round(used_srv / max(rows, 1) * 1e6, 2)
        res["total_us_per_row"] = round(res["cpu_us_per_row"] + res["server_us_per_row"], 2)
    elif pg:
        mine = pg.backends(c.name if c.name == "fwlog" else "ulogd")
        pg_cpu1 = pg.procs()
        delta = {p: t - pg_cpu0.get(p, 0.0) for p, t in pg_cpu1.items()}
        backend = sum(delta.get(p, 0.0) for p in mine)
        other = sum(v for p, v in delta.items() if p not in mine)
        res["server_backend_us_per_row"] = round(backend / max(rows, 1) * 1e6, 2)
        res["server_other_cpu_s"] = round(other, 2)
        res["total_us_per_row"] = round(res["cpu_us_per_row"] + res["server_backend_us_per_row"], 2)
    stop(c.proc)
    log(f"  {engine} throughput {c.name}: " + json.dumps(res))
    return res


def lock_sqlite(paths, secs):
    """Hold a write lock on every file for `secs` (a long writer: the SQLite 'outage')."""
    conns = [sqlite3.connect(p, timeout=30, isolation_level=None) for p in paths]
    for c in conns:
        c.execute("BEGIN EXCLUSIVE")
    time.sleep(secs)
    for c in conns:
        c.execute("COMMIT")


def outage(engine, pg):
    cs = []
    for c in (Fwlog(engine), Ulogd(engine)):
        try:
            c.start()
            cs.append(c)
        except RuntimeError as e:
            # A fwlog built without the MariaDB output refuses mysql:// in one line.
            log(f"  {engine} outage {c.name}: not measured: {e}")
    before = counters()
    # PostgreSQL's databases keep the throughput scenario's rows.
    base = {c.name: c.rows(pg) or 0 for c in cs}
    rate, secs = ARGS.outage_rate, 60
    sender = threading.Thread(target=send, args=(rate, rate * secs))
    t0 = time.time()
    sender.start()
    # Both have written rows (fwlog's SQLite file exists) before the database goes away.
    time.sleep(15)
    if pg:
        pg.stop("fast")
        time.sleep(30)
        pg.start()
    else:
        lock_sqlite([c.db for c in cs], 30)
    sender.join()
    now = counters()
    handed = {c.name: now[c.group] - before[c.group] for c in cs}
    got = settle(cs, pg, {n: h + base[n] for n, h in handed.items()}, quiet=15, limit=180)
    res = {"engine": engine, "rate": rate, "outage_s": 30, "flood_s": round(time.time() - t0)}
    for c in cs:
        rows = got[c.name][0] - base[c.name]
        res[c.name] = {"handed": handed[c.name], "rows": rows, "lost": handed[c.name] - rows,
                       "alive": c.proc.poll() is None}
        stop(c.proc)
    log(f"  {engine} outage: " + json.dumps(res))
    return res


def fleet(pg, n):
    """`n` fwlog writers (each its own group, spool and --host-name) into one server, fed
    the same unpaced flood: the server's rows per second with `n` writers at once."""
    groups = [11 + i for i in range(n)]
    logs = "".join(f'  ip daddr {DST} counter log group {g}\n' for g in groups)
    run(in_ns(NS_LOG, "nft", "-f", "-"),
        input=f"table ip fwfleet {{\n chain pre {{\n  type filter hook prerouting priority -310;\n{logs} }}\n}}\n")
    cs = [Fwlog("pgsql", g, f"fleet{g}") for g in groups]
    for c in cs:
        c.start()
    rows0 = pg.rows("fwlog")
    cpu0 = pg.procs()
    cpus = [Cpu(c.proc.pid) for c in cs]
    t0 = time.time()
    send(0, ARGS.count)
    out = run(in_ns(NS_LOG, "nft", "-j", "list", "table", "ip", "fwfleet")).stdout
    handed = sum(e["counter"]["packets"] for item in json.loads(out)["nftables"]
                 for e in item.get("rule", {}).get("expr", []) if "counter" in e)

    class Total:
        name = "all"

        def rows(self, pg):
            return pg.rows("fwlog") - rows0
    got = settle([Total()], pg, {"all": handed}, quiet=10, limit=600)
    rows, t_last = got["all"]
    fw_cpu = sum(c.used() for c in cpus)
    srv = sum(t - cpu0.get(p, 0.0) for p, t in pg.procs().items())
    res = {"writers": n, "handed": handed, "rows": rows, "lost": handed - rows,
           "secs": round(t_last - t0, 2), "rows_per_s": round(rows / max(t_last - t0, 1e-6)),
           "fwlog_cpu_us_per_row": round(fw_cpu / max(rows, 1) * 1e6, 2),
           "server_cpu_us_per_row": round(srv / max(rows, 1) * 1e6, 2)}
    for c in cs:
        stop(c.proc)
    run(in_ns(NS_LOG, "nft", "delete", "table", "ip", "fwfleet"))
    log(f"  pgsql fleet: " + json.dumps(res))
    return res


def main():
    global ARGS, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--fwlog", required=True)
    ap.add_argument("--benchtool", required=True)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--ulogd-count", type=int, default=5000)
    ap.add_argument("--outage-rate", type=int, default=100)
    ap.add_argument("--engines", default="pgsql,sqlite3")
    ap.add_argument("--only", default="throughput,outage,fleet")
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    ARGS = ap.parse_args()
    if run(["pgrep", "-x", "ulogd"], check=False).returncode == 0:
        sys.exit("sql_side: a ulogd process is already running; stop it first")
    TMP = tempfile.mkdtemp(prefix="fwlog-sqlbench.", dir="/var/tmp")
    os.chmod(TMP, 0o755)
    results = {"start": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "load_start": load(), "throughput": [], "outage": [], "fleet": []}
    pg = my = None
    try:
        setup_net()
        engines = ARGS.engines.split(",")
        if "pgsql" in engines:
            pg = Pg()
        if "mysql" in engines:
            my = Maria()
        for engine in engines:
            db = {"pgsql": pg, "mysql": my}.get(engine)
            if "throughput" in ARGS.only:
                for cls in (Fwlog, Ulogd):
                    results["throughput"].append(throughput(engine, cls, db))
            if "outage" in ARGS.only:
                results["outage"].append(outage(engine, db))
            if "fleet" in ARGS.only and engine == "pgsql":
                results["fleet"].append(fleet(pg, ARGS.writers))
    finally:
        results["load_end"] = load()
        for p in list(PROCS):
            stop(p)
        if pg:
            pg.stop("immediate")
        if my:
            my.stop("kill")
        for ns in (NS_LOG, NS_SND):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if not ARGS.keep:
            shutil.rmtree(TMP, ignore_errors=True)
    log(f"load average at start {results['load_start']}, at end {results['load_end']}")
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
