#!/usr/bin/env python3
"""fwlog benchmark and reliability suite (issue 8). Run through tests/bench/run.sh (as root).

What it does, all in one run so that ratios compare like with like on a noisy machine:

  topology   two network namespaces made here, SND and LOG, joined by a veth pair
             (10.200.1.2 -> 10.200.1.1). In LOG, an nft prerouting chain logs every TCP/UDP
             packet for 10.200.1.1 to NFLOG groups 5 AND 6 (two log rules, each with a counter:
             the counters are the kernel's own count of records it tried to deliver), then
             drops it (no replies, no sockets involved). `benchtool send` in SND crafts 64-byte
             packets (UDP and TCP SYN alternately) with chosen source addresses over a raw socket.
  receivers  (1) `benchtool recv 5 6`: the bare receiver (fwlog's socket settings, recv + count)
             (2) `fwlog run -g 5 -g 6` with its spool (default --fsync batch), DNS against an nsd
                 started here (cache warmed before measuring), fwlog-format file output
             (3) Debian's ulogd2: NFLOG -> BASE -> IFINDEX -> IP2STR -> PRINTPKT -> LOGEMU (file),
                 one stack per group, the same kernel-side socket settings as fwlog.
  sweep      at each rate step every receiver gets the same number of packets; order rotates
             per repeat. Loss = records the nft counters say were logged - records received.
             CPU = utime+stime of the receiver process (/proc/PID/stat) from just before the
             flood until everything is written; peak RSS = VmHWM. With --pin the sender and
             every receiver run on CPUs of their own (pin.py); the summary is summary.py's.
  latency    fwlog with JSON output at a steady rate, warm cache; `benchtool tail` timestamps
             each line as it appears and compares with the kernel timestamp in the line.
  flood      fwlog with its DNS server black-holed (a UDP socket that never answers), packets
             from 2^20 distinct sources; RSS sampled every second; then the server starts
             answering and the time to drain the backlog is measured.
  replay     fwlog spools N records while its only output fails (/dev/full), is stopped, and is
             restarted with --no-dns: time until all N replayed records are printed.

Everything it starts is stopped, and its namespaces and temporary directory removed, on exit
(also on Ctrl-C / SIGTERM). Prints a summary and writes it as JSON (--json FILE).
"""

import argparse
import array
import json
import os
import re
import shlex
import signal
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pin  # noqa: E402
import probe  # noqa: E402  (beside this file)
from summary import summarize  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

ARGS = None
TMP = None
NS_LOG = f"fwb-log-{os.getpid()}"
NS_SND = f"fwb-snd-{os.getpid()}"
CHILDREN = []  # Popen objects we started; stopped by pid on exit
DST = "10.200.1.1"
WARM_BASE, WARM_COUNT = "10.201.0.0", 256  # sources with PTR records (rate, latency)
FLOOD_BASE, FLOOD_COUNT = "10.64.0.0", 1 << 20  # 10.64.0.0/12: 1,048,576 distinct sources
DNS_PORT, HOLE_PORT = 5353, 5354
# Packets/s for filling the spool before the replay: 2 records each, well below the rate at
# which a loaded 2-core machine starts dropping, so the spool holds what was asked.
REPLAY_FILL_RATE = 100000
GROUPS = [5, 6]  # every packet is logged to each of these (--groups N: 5 .. 5+N-1)


def log(msg):
    print(msg, flush=True)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r


def in_ns(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


def rx_cmd(*cmd):
    """A receiver's command in LOG; with --pin on the receiver's CPU (threads inherit it)."""
    return [*(pin.prefix([pin.RECEIVER_CPU]) if ARGS.pin else []), *in_ns(NS_LOG, *cmd)]


def spawn(cmd, stderr_path=None, stdout=subprocess.DEVNULL):
    err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err)
    CHILDREN.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def cleanup():
    for p in list(CHILDREN):
        try:
            stop(p, timeout=10)
        except Exception:
            pass
    for ns in (NS_LOG, NS_SND):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if TMP and not ARGS.keep:
        shutil.rmtree(TMP, ignore_errors=True)


# ------------------------------------------------------------------ process measurements


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads ever


def cpu_sched(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9  # ns on CPU of the threads alive now


class Cpu:
    """CPU time of a process between two points: schedstat (ns, live threads) unless the
    tick counters (10 ms, but they include threads that exited) say more was used."""

    def __init__(self, pid):
        self.pid = pid
        self.t0, self.s0 = cpu_ticks(pid), cpu_sched(pid)

    def used(self):
        dt, ds = cpu_ticks(self.pid) - self.t0, cpu_sched(self.pid) - self.s0
        return dt if dt > ds + 2.0 / CLK_TCK else ds


def thread_cpu(pid):
    """CPU seconds per thread name (comm) of `pid`, summed over threads of one name
    (schedstat: ns on CPU of the threads alive now)."""
    return probe.schedstat_s(pid)


def machine_cpu():
    """The whole machine's CPU seconds: (busy, idle, softirq), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK, idle / CLK_TCK, v[6] / CLK_TCK


def children_cpu():
    """CPU seconds used by waited-for child processes (the sender, `benchtool send`)."""
    r = os.times()
    return r.children_user + r.children_system


def cpu_seconds(pid):
    return cpu_ticks(pid)


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


# ------------------------------------------------------------------ topology


def setup_net():
    for ns in (NS_LOG, NS_SND):
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "fwbl", "netns", NS_LOG, "type", "veth",
         "peer", "name", "fwbs", "netns", NS_SND])
    run(["ip", "-n", NS_LOG, "addr", "add", "10.200.1.1/24", "dev", "fwbl"])
    run(["ip", "-n", NS_SND, "addr", "add", "10.200.1.2/24", "dev", "fwbs"])
    run(["ip", "-n", NS_LOG, "link", "set", "fwbl", "up"])
    run(["ip", "-n", NS_SND, "link", "set", "fwbs", "up"])
    logs = "".join(f'  ip daddr {DST} ip protocol {{ tcp, udp }} counter log prefix "FWB{g} " '
                   f"group {g}\n" for g in GROUPS)
    rules = (f"table ip fwbench {{\n chain pre {{\n  type filter hook prerouting priority -300;\n"
             f"{logs}  ip daddr {DST} ip protocol {{ tcp, udp }} drop\n }}\n}}\n")
    run(in_ns(NS_LOG, "nft", "-f", "-"), input=rules)


def logged_records():
    """Records the kernel logged so far: the sum of the two log rules' counters."""
    out = run(in_ns(NS_LOG, "nft", "-j", "list", "table", "ip", "fwbench")).stdout
    total = 0
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if not rule:
            continue
        exprs = rule["expr"]
        if any("log" in e for e in exprs):
            for e in exprs:
                if "counter" in e:
                    total += e["counter"]["packets"]
    return total


def send(rate, count, base=WARM_BASE, nsrc=WARM_COUNT, threads=None):
    if threads is None:
        threads = 2 if rate == 0 or rate > 60000 else 1
    cpus = pin.sender_cpus() if ARGS.pin else None
    if cpus:
        # A thread per sending CPU: more would only take turns.
        threads = len(cpus)
    cmd = in_ns(NS_SND, ARGS.benchtool, "send", DST, base, str(nsrc), str(rate), str(count),
                str(threads))
    out = run([*pin.prefix(cpus), *cmd] if cpus else cmd).stdout
    m = dict(zip(out.split()[0::2], out.split()[1::2]))
    return {"sent": int(m["sent"]), "secs": float(m["secs"]), "rate": float(m["rate"])}


# ------------------------------------------------------------------ DNS fixtures


def ptr_zone(origin, entries):
    lines = [f"$ORIGIN {origin}.", "$TTL 3600",
             "@ IN SOA ns.bench.test. admin.bench.test. 1 3600 600 86400 3600",
             "@ IN NS ns.bench.test."]
    lines += [f"{label} IN PTR {name}" for label, name in entries]
    return "\n".join(lines) + "\n"


def start_nsd():
    d = os.path.join(TMP, "nsd")
    os.makedirs(d)
    zones = {
        "0.201.10.in-addr.arpa": [(str(i), f"src-{i}.bench.test.") for i in range(256)],
        "1.200.10.in-addr.arpa": [("1", "logger.bench.test."), ("2", "sender.bench.test.")],
    }
    conf = (f"server:\n  ip-address: 127.0.0.1@{DNS_PORT}\n  username: \"\"\n  chroot: \"\"\n"
            f"  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n"
            f"  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n"
            f"  logfile: \"{d}/nsd.log\"\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n"
            f"  server-count: 1\n  verbosity: 1\nremote-control:\n  control-enable: no\n")
    for i, (origin, entries) in enumerate(zones.items()):
        with open(os.path.join(d, f"z{i}.zone"), "w") as f:
            f.write(ptr_zone(origin, entries))
        conf += f"zone:\n  name: \"{origin}\"\n  zonefile: \"z{i}.zone\"\n"
    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write(conf)
    p = spawn(rx_cmd("nsd", "-d", "-c", os.path.join(d, "nsd.conf")),
              stderr_path=os.path.join(d, "stderr"))
    # Ready when it answers a PTR query (asked from inside LOG by a tiny client).
    q = in_ns(NS_LOG, sys.executable, __file__, "--dns-probe", str(DNS_PORT))
    for _ in range(100):
        if run(q, check=False).returncode == 0:
            return p
        time.sleep(0.1)
    raise RuntimeError("nsd did not start; see " + d)


def dns_query_packet(name="1.1.200.10.in-addr.arpa"):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 12, 1)


def dns_probe(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(dns_query_packet(), ("127.0.0.1", port))
        s.recv(512)
        return 0
    except OSError:
        return 1


def responder_main(port, flag):
    """Black hole until FLAG exists, then answer every PTR query with a made-up name.

    Runs inside LOG (spawned through `ip netns exec`). Replies are built from the question
    (a name per address, TTL 3600), so the drain measures fwlog, not a zone load."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.2)
    answering = False
    while True:
        try:
            q, addr = s.recvfrom(2048)
        except socket.timeout:
            answering = answering or os.path.exists(flag)
            continue
        if not answering:
            answering = os.path.exists(flag)
            if not answering:
                continue
        # Question name ends at the first zero label after the 12-byte header.
        i = 12
        labels = []
        while i < len(q) and q[i] != 0:
            n = q[i]
            labels.append(q[i + 1:i + 1 + n])
            i += 1 + n
        qend = i + 5
        if qend > len(q):
            continue
        name = b"-".join(reversed(labels[:4])) if len(labels) >= 4 else b"x"
        rdata = bytes([len(name)]) + name + b"\x05flood\x04test\x00"
        ans = (b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 3600, len(rdata)) + rdata)
        hdr = q[0:2] + struct.pack(">HHHHH", 0x8400 | (q[2] << 8 & 0x0100), 1, 1, 0, 0)
        s.sendto(hdr + q[12:qend] + ans, addr)


# ------------------------------------------------------------------ receivers


class Receiver:
    name = "?"

    def __init__(self, tag):
        self.tag = tag
        self.dir = os.path.join(TMP, tag)
        os.makedirs(self.dir, exist_ok=True)
        self.err = os.path.join(self.dir, "stderr")

    def pid(self):
        return self.proc.pid

    def wait_line(self, text, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {open(self.err).read()[-2000:]}")
            try:
                if text in open(self.err).read():
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not print {text!r}: {open(self.err).read()[-2000:]}")

    def counters(self):
        """Ask for the counter line with SIGUSR1 and parse `word N` pairs."""
        before = open(self.err).read().count(self.marker)
        self.proc.send_signal(signal.SIGUSR1)
        end = time.time() + 10
        while time.time() < end:
            text = open(self.err).read()
            if text.count(self.marker) > before:
                line = [l for l in text.splitlines() if self.marker in l][-1]
                self.last_line = line
                return parse_counters(line)
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: no counters after SIGUSR1")

    def stop(self):
        stop(self.proc)


def parse_counters(line):
    """fwlog's SIGUSR1 line and the bare receiver's: `key=value` words (first one wins)."""
    c = {}
    for word in line.replace(";", " ").split():
        key, eq, value = word.partition("=")
        if eq and re.fullmatch(r"\d+", value):
            c.setdefault(key, int(value))
    return c


class Bare(Receiver):
    name = "bare"
    marker = "bare: received="

    def start(self):
        self.proc = spawn(rx_cmd(ARGS.benchtool, "recv", *map(str, GROUPS)), self.err)
        self.wait_line("receiving NFLOG")

    def received(self):
        c = self.counters()
        return c["received"], c["received"]


class Fwlog(Receiver):
    name = "fwlog"
    marker = "fwlog: received="

    PREFIX = ()  # a command the daemon runs under (e.g. nice)

    def start(self, extra=(), output=None, dns=True, spool=None, dns_port=DNS_PORT, env=()):
        self.out = output or os.path.join(self.dir, "out.log")
        self.spool = spool or os.path.join(self.dir, "spool")
        cmd = [ARGS.fwlog, "run", "--spool", self.spool, "--output", self.out]
        for g in GROUPS:
            cmd += ["-g", str(g)]
        cmd += ["--dns-server", f"127.0.0.1:{dns_port}"] if dns else ["--no-dns"]
        cmd += list(extra) + shlex.split(ARGS.fwlog_args)
        cmd = [*self.PREFIX, *cmd]
        if env:
            cmd = ["env", *env, *cmd]
        self.proc = spawn(rx_cmd(*cmd), self.err)
        self.wait_line("fwlog: logging NFLOG group", timeout=120)

    def received(self):
        c = self.counters()
        return c["received"], c["printed"]


class FwlogNoDns(Fwlog):
    """fwlog without DNS: what name resolution (here: warm-cache lookups) costs."""
    name = "fwlog-nodns"

    def start(self):
        super().start(dns=False)


class FwlogNoSync(Fwlog):
    """fwlog with --fsync never (spool and output): what the fsyncs cost."""
    name = "fwlog-nosync"

    def start(self):
        super().start(extra=["--fsync", "never"])


class FwlogMetrics(Fwlog):
    """fwlog with --metrics on and nobody scraping: the baseline for fwlog-scraped."""
    name = "fwlog-metrics"
    ADDR = "127.0.0.1:9641"

    def start(self):
        super().start(extra=["--metrics", self.ADDR])


class FwlogScraped(FwlogMetrics):
    """fwlog with --metrics and a Prometheus-like scraper at 1 scrape/s: what scraping costs
    per record (compare cpu_us_per_record with fwlog-metrics in the same run)."""
    name = "fwlog-scraped"

    def start(self):
        super().start()
        loop = (f"while :; do curl -s -o /dev/null http://{self.ADDR}/metrics; "
                "sleep 1; done")
        self.scraper = spawn(in_ns(NS_LOG, "sh", "-c", loop))

    def stop(self):
        stop(self.scraper, signal.SIGKILL)
        super().stop()


class FwlogHeld(Fwlog):
    """fwlog with a played service manager that takes its socket into an fd store: fwlog then
    reads in hold mode (each datagram peeked at, written out, positions file, dequeued), as
    under the packaged unit. Compare with fwlog in the same run."""
    name = "fwlog-held"

    def start(self):
        path = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(path)
        self.notify.settimeout(0.2)
        self.messages = []
        self.kept = []  # the stored fds, as systemd keeps them
        self.done = threading.Event()

        def serve():
            while not self.done.is_set():
                try:
                    msg, anc, _, _ = self.notify.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
                except (socket.timeout, OSError):
                    continue
                self.messages.append(msg.decode(errors="replace"))
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        self.kept += array.array("i", data[: len(data) - len(data) % 4]).tolist()

        self.server = threading.Thread(target=serve, daemon=True)
        self.server.start()
        super().start(dns=True, env=[f"NOTIFY_SOCKET={path}"])
        deadline = time.monotonic() + 10
        while not any("FDSTORE=1" in m for m in self.messages):
            if time.monotonic() > deadline:
                raise RuntimeError("fwlog-held: no FDSTORE=1 from fwlog: not in hold mode")
            time.sleep(0.05)

    def stop(self):
        super().stop()
        self.done.set()
        self.server.join()
        self.notify.close()
        for fd in self.kept:
            os.close(fd)  # as systemd does on stop: the groups are released
        self.kept = []


class FwlogNiceProc(Fwlog):
    """fwlog with its processing thread (the main thread) at nice 19, the intake thread at 0:
    does loss under CPU saturation come from intake losing the CPU to processing?"""
    name = "fwlog-niceproc"

    def start(self):
        super().start()
        os.setpriority(os.PRIO_PROCESS, self.proc.pid, 19)  # the main thread's TID only


def thread_ids(pid, comm):
    """The ids of the threads of `pid` named `comm`."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == comm:
                    out.append(int(tid))
        except FileNotFoundError:
            pass
    return out


class FwlogProcBatch(Fwlog):
    """fwlog with its processing thread (the main thread, already at nice +10) moved to
    SCHED_BATCH as well: no wake-up preemption of intake. Compare with fwlog in the same run."""
    name = "fwlog-procbatch"
    POLICY = "SCHED_BATCH"

    def start(self):
        super().start()
        # The main thread lowers itself after printing the "logging" line: wait for that, so
        # the policy below is not taken back by nothing and the nice value is already +10.
        time.sleep(0.2)
        os.sched_setscheduler(self.proc.pid, getattr(os, self.POLICY), os.sched_param(0))


class FwlogProcIdle(FwlogProcBatch):
    """The processing thread at SCHED_IDLE: it runs only on CPU time no other thread wants."""
    name = "fwlog-procidle"
    POLICY = "SCHED_IDLE"


class FwlogIntakeBoost(Fwlog):
    """The intake thread at nice -10 (root can; the processing thread stays at +10)."""
    name = "fwlog-intakeboost"

    def start(self):
        super().start()
        for tid in thread_ids(self.proc.pid, "fwlog-intake"):
            os.setpriority(os.PRIO_PROCESS, tid, -10)


class FwlogUnitNice(Fwlog):
    """fwlog started at nice -10, as a unit's `Nice=-10` would (no capability needed by fwlog):
    intake runs at -10, the processing thread lowers itself to 0."""
    name = "fwlog-unitnice"
    PREFIX = ("nice", "-n", "-10")


class BaseBuild:
    """Mixin: start the --fwlog-base build (e.g. the code before a change) instead of --fwlog,
    measured in the same run and interleaved with it, so the two are compared under the same
    load."""

    def start(self):
        if not ARGS.fwlog_base:
            raise RuntimeError(f"{self.name} needs --fwlog-base PATH")
        mine = ARGS.fwlog
        ARGS.fwlog = ARGS.fwlog_base
        try:
            super().start()
        finally:
            ARGS.fwlog = mine


class FwlogBase(BaseBuild, Fwlog):
    """fwlog with the --fwlog-base build."""
    name = "fwlog-base"


class FwlogBaseHeld(BaseBuild, FwlogHeld):
    """fwlog-held with the --fwlog-base build: hold mode before and after a change."""
    name = "fwlog-base-held"


class Ulogd(Receiver):
    name = "ulogd2"
    PLUG = "/usr/lib/x86_64-linux-gnu/ulogd"

    def start(self):
        self.out = os.path.join(self.dir, "ulogd.out")
        conf = os.path.join(self.dir, "ulogd.conf")
        plugins = ["inppkt_NFLOG", "raw2packet_BASE", "filter_IFINDEX", "filter_IP2STR",
                   "filter_PRINTPKT", "output_LOGEMU"]
        text = "[global]\n"
        text += f"logfile=\"{self.dir}/ulogd.log\"\nloglevel=3\n"
        text += "".join(f"plugin=\"{self.PLUG}/ulogd_{p}.so\"\n" for p in plugins)
        for g in GROUPS:
            text += (f"stack=log{g}:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,"
                     f"print1:PRINTPKT,emu1:LOGEMU\n")
        for g in GROUPS:
            # The kernel-side settings fwlog uses (64 MiB buffer, 128 KiB datagrams, qthresh
            # 1024, flush timeout 1 = 10 ms), so the comparison is of the user-space work
            # (ulogd2's CPU per record was the same with qthresh 256: BENCHMARKS.md, "the
            # kernel's 10 ms batches"). ulogd applies the size only when it is below the
            # maximum: with both equal it logs "Maximum buffer size (0) ... reached" and keeps
            # the kernel's default buffer.
            text += (f"\n[log{g}]\ngroup={g}\nnetlink_socket_buffer_size=67108864\n"
                     f"netlink_socket_buffer_maxsize=67108865\nnetlink_qthreshold=1024\n"
                     f"netlink_qtimeout=1\nbufsize=131072\n")
        text += f"\n[emu1]\nfile=\"{self.out}\"\nsync=0\n"
        with open(conf, "w") as f:
            f.write(text)
        self.proc = spawn(rx_cmd("ulogd", "-c", conf), self.err)
        # No readiness message: wait until both groups are bound (visible in /proc).
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("ulogd exited: " + open(self.err).read()
                                   + open(os.path.join(self.dir, "ulogd.log")).read())
            if self.bound_groups() >= len(GROUPS):
                return
            time.sleep(0.05)
        raise RuntimeError(f"ulogd did not bind NFLOG groups {GROUPS}")

    def bound_groups(self):
        r = run(in_ns(NS_LOG, "cat", "/proc/net/netfilter/nfnetlink_log"), check=False)
        mine = {str(g) for g in GROUPS}
        return sum(1 for l in r.stdout.splitlines() if l.split()[:1] and l.split()[0] in mine)

    def lines(self):
        try:
            with open(self.out, "rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
        except FileNotFoundError:
            return 0

    def received(self):
        # LOGEMU writes through stdio: lines can sit in its buffer until exit; final count
        # is taken after SIGTERM (see trial()).
        n = self.lines()
        return n, n


def ulogd_ok():
    if run(["pgrep", "-x", "ulogd"], check=False).returncode == 0:
        return "a ulogd process is already running (stop the system service: it would compete for CPU)"
    if not shutil.which("ulogd") and not os.path.exists("/usr/sbin/ulogd"):
        return "ulogd2 is not installed (apt-get install ulogd2)"
    return None


# ------------------------------------------------------------------ one trial


def wait_settled(rx, expected, timeout):
    """Until the receiver has everything written (or nothing moves for 2 s)."""
    end = time.time() + timeout
    last, still = None, time.time()
    while time.time() < end:
        got, written = rx.received()
        if got >= expected and written >= got:
            return
        if (got, written) != last:
            last, still = (got, written), time.time()
        elif time.time() - still > 2.0:
            return
        time.sleep(0.1)


def trial(kind, rate, count):
    rx = kind(f"{kind.name}-{rate}-{time.monotonic_ns()}")
    rx.start()
    # Warm-up: every source once, slowly; for fwlog this fills its name cache.
    base0 = logged_records()
    send(2000, WARM_COUNT)
    wait_settled(rx, logged_records() - base0, 30)
    warm_got = rx.received()[0] if kind is not Ulogd else None
    pinned = None
    if ARGS.pin:
        pinned = {"threads": pin.check_threads(rx.pid(), pin.RECEIVER_CPU, kind.name)}
    cpu = Cpu(rx.pid())
    th0, m0 = thread_cpu(rx.pid()), machine_cpu()
    k0 = logged_records()
    t0 = time.time()
    c0 = children_cpu()
    split = pin.CpuSplit()
    s = send(rate, count)
    sender_cpu = children_cpu() - c0
    # While the sender ran: who had the CPU (the rate it reached is bounded by its share),
    # and on which CPU the kernel's work ran.
    th1, m1, split = thread_cpu(rx.pid()), machine_cpu(), split.stop()
    expected = logged_records() - k0
    wait_settled(rx, expected if kind is not Ulogd else 10**18, 120)
    # A few trailing packets: records missing at the tail of the flood then show up as
    # sequence gaps (the kernel numbered them but they never arrived) or do not (the kernel
    # never built them), instead of hiding behind "nothing more came".
    send(1000, 8)
    expected = logged_records() - k0
    wait_settled(rx, expected if kind is not Ulogd else 10**18, 30)
    busy = time.time() - t0
    used = cpu.used()
    th2 = thread_cpu(rx.pid())
    if pinned:
        # Threads made during the trial (a sync or deletion thread) must be pinned too.
        pinned["threads_at_end"] = pin.check_threads(rx.pid(), pin.RECEIVER_CPU, kind.name)
    hwm = status_kib(rx.pid(), "VmHWM")
    if kind is Ulogd:
        rx.stop()
        # Lines written before the flood: the warm-up's, counted once ulogd flushed them.
        got = rx.lines() - (k0 - base0)
        written = got
        extra = {}
    else:
        c = rx.counters()
        got = (c["received"] - warm_got)
        written = (c.get("printed", c["received"]) - warm_got)
        extra = {k: v for k, v in c.items() if k.startswith("lost") or k.startswith("enobufs")}
        rx.stop()
        if issubclass(kind, Fwlog):
            out = run(["grep", "-c", "^PKT:", rx.out], check=False).stdout.strip() or "0"
            extra["lines_in_file"] = int(out) - warm_got
    shutil.rmtree(rx.dir, ignore_errors=True)
    return {
        "receiver": kind.name, "rate_asked": rate, "rate_sent": round(s["rate"]),
        "packets": s["sent"], "records_logged": expected, "received": got,
        # Packets sent that no log rule counted (dropped before the nft hook, e.g. a full
        # backlog queue): they are neither logged nor lost, so the rate reached overstates.
        "not_logged": (s["sent"] + 8) * len(GROUPS) - expected,
        "written": written, "lost": max(0, expected - got),
        "cpu_s": round(used, 3), "cpu_us_per_record": round(used * 1e6 / max(got, 1), 3),
        "vmhwm_kib": hwm, "busy_s": round(busy, 2), **extra,
        "during_send": {
            "secs": s["secs"], "sender_cpu_s": round(sender_cpu, 3),
            "threads_cpu_s": {k: round(v - th0.get(k, 0), 3) for k, v in th1.items()},
            "machine_busy_s": round(m1[0] - m0[0], 3), "machine_idle_s": round(m1[1] - m0[1], 3),
            "machine_softirq_s": round(m1[2] - m0[2], 3),
            "per_cpu": split,
            **({"others_cpu_s": pin.others(split, sender_cpu,
                                           sum(th1.values()) - sum(th0.values()))}
               if pinned else {}),
        },
        # From the send's start until everything was written: what the loop and the committer
        # did after the sender stopped is here, not in during_send.
        "threads_cpu_s_to_end": {k: round(v - th0.get(k, 0), 3) for k, v in th2.items()},
        **({"pinned": pinned} if pinned else {}),
    }


# ------------------------------------------------------------------ scenarios


def sweep(rates, repeats, seconds, results):
    kinds = [Bare, Fwlog]
    why = ulogd_ok()
    if why:
        log(f"ulogd2 not measured: {why}")
    else:
        kinds.append(Ulogd)
    variants = {"fwlog-nodns": FwlogNoDns, "fwlog-nosync": FwlogNoSync, "fwlog-held": FwlogHeld,
                "fwlog-niceproc": FwlogNiceProc, "fwlog-metrics": FwlogMetrics,
                "fwlog-scraped": FwlogScraped, "fwlog-base": FwlogBase,
                "fwlog-base-held": FwlogBaseHeld, "fwlog-procbatch": FwlogProcBatch,
                "fwlog-procidle": FwlogProcIdle, "fwlog-intakeboost": FwlogIntakeBoost,
                "fwlog-unitnice": FwlogUnitNice}
    known = {k.name: k for k in kinds} | variants
    kinds = [known[n] for n in ARGS.receivers.split(",") if n in known]
    for rep in range(repeats):
        # --climb: a receiver that lost records at a rate is not tried at the higher rates of
        # this repeat (its zero-loss rate in the repeat is found; the climb saves time).
        stopped = set()
        for rate in rates:
            count = int((rate or ARGS.max_rate_guess) * seconds)
            order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
            for kind in order:
                if kind.name in stopped:
                    continue
                r = trial(kind, rate, count)
                r["repeat"] = rep
                results.append(r)
                if ARGS.climb and r["lost"] > 0:
                    stopped.add(kind.name)
                log(f"  rep {rep} {r['receiver']:<6} asked {rate or 'max':>7} sent "
                    f"{r['rate_sent']:>7}/s  logged {r['records_logged']:>8} received "
                    f"{r['received']:>8} lost {r['lost']:>7} (seq-gap {r.get('lost-seq-gap', '-')}, "
                    f"enobufs {r.get('enobufs-events', '-')})  cpu {r['cpu_us_per_record']:>6.2f} "
                    f"us/rec  hwm {r['vmhwm_kib'] / 1024:6.1f} MiB")
                if ARGS.pin:
                    d = r["during_send"]
                    log(f"        during the send ({d['secs']:.2f} s, sender {d['sender_cpu_s']} s "
                        f"CPU): {pin.kernel_share(d['per_cpu'])}; receiver threads "
                        f"{d['threads_cpu_s']}; other processes {d['others_cpu_s']}")
    return results


def latency(rate, seconds):
    rx = Fwlog("latency")
    out = os.path.join(rx.dir, "out.json")
    rx.start(extra=["--format", "json"], output=out)
    send(2000, WARM_COUNT)
    wait_settled(rx, len(GROUPS) * WARM_COUNT, 30)
    count = int(rate * seconds)
    tail = subprocess.Popen([ARGS.benchtool, "tail", out, str(len(GROUPS) * count),
                             str(seconds + 30)],
                            stdout=subprocess.PIPE, text=True)
    CHILDREN.append(tail)
    time.sleep(0.3)
    s = send(rate, count)
    res = tail.communicate(timeout=seconds + 60)[0]
    CHILDREN.remove(tail)
    c = rx.counters()
    rx.stop()
    shutil.rmtree(rx.dir, ignore_errors=True)
    m = res.split()
    r = {k: float(v) for k, v in zip(m[0::2], m[1::2])}
    r.update({"rate_sent": round(s["rate"]), "lost": sum(v for k, v in c.items()
                                                        if k.startswith("lost"))})
    return r


def flood(rate, seconds, drain_limit):
    flag = os.path.join(TMP, "dns-answer")
    hole = spawn(in_ns(NS_LOG, sys.executable, __file__, "--responder", str(HOLE_PORT), flag),
                 os.path.join(TMP, "responder.err"))
    time.sleep(0.3)
    rx = Fwlog("flood")
    rx.start(dns_port=HOLE_PORT)
    pid = rx.pid()
    k0 = logged_records()
    count = int(rate * seconds)
    result = {}
    sender = threading.Thread(target=lambda: result.update(send(rate, count, FLOOD_BASE,
                                                                FLOOD_COUNT)))
    t0 = time.time()
    sender.start()
    rss = []
    while sender.is_alive():
        rss.append(status_kib(pid, "VmRSS"))
        time.sleep(1)
    sender.join()
    expected = logged_records() - k0
    time.sleep(0.5)
    c = rx.counters()
    hwm_flood = status_kib(pid, "VmHWM")
    rss_flood = max(rss) if rss else 0
    backlog = c["pending"]
    progress = []
    # The server answers from now on: how long until everything is printed?
    open(flag, "w").close()
    t1 = time.time()
    drained = None
    while time.time() - t1 < drain_limit:
        c = rx.counters()
        rss.append(status_kib(pid, "VmRSS"))
        progress.append((round(time.time() - t1, 1), c["printed"]))
        if c["printed"] >= c["received"] and c["pending"] == 0:
            drained = time.time() - t1
            break
        time.sleep(0.5)
    c_end = rx.counters()
    dns_line = rx.last_line.split(";", 1)[-1].strip()
    hwm = status_kib(pid, "VmHWM")
    rx.stop()
    stop(hole)
    shutil.rmtree(rx.dir, ignore_errors=True)
    return {
        "rate_sent": round(result.get("rate", 0)), "seconds": round(t1 - t0, 1),
        "packets": result.get("sent", 0), "records_logged": expected,
        "received": c["received"], "lost": max(0, expected - c["received"]),
        "fwlog_lost_counters": {k: v for k, v in c.items() if k.startswith("lost")},
        "rss_max_during_flood_mib": round(rss_flood / 1024, 1),
        "rss_max_during_drain_mib": round(max(rss) / 1024, 1) if rss else None,
        "drain_progress": progress[::max(1, len(progress) // 20)],
        "dns_stats_at_end": dns_line,
        "vmhwm_after_flood_mib": round(hwm_flood / 1024, 1),
        "vmhwm_end_mib": round(hwm / 1024, 1),
        "backlog_when_dns_came_back": backlog,
        "drain_s": round(drained, 1) if drained is not None else None,
        "printed_at_end": c_end["printed"], "pending_at_end": c_end["pending"],
        "drain_limit_s": drain_limit,
    }


def replay(records, repeats=1):
    rx = Fwlog("replay")
    spool = os.path.join(rx.dir, "spool")
    # Phase 1: spool `records` records that cannot be printed (the output is /dev/full). Paced,
    # and topped up while short: unpaced on a loaded machine the kernel dropped part of them
    # (a third, once), so the spool held fewer than asked and the loss records among them made
    # the old end condition (replayed >= pending) unreachable.
    rx.start(output="/dev/full", dns=False, spool=spool)
    k0 = logged_records()
    for _ in range(5):
        c = rx.counters()
        short = records - c["spooled"]
        if short <= 0:
            break
        send(REPLAY_FILL_RATE, -(-short // len(GROUPS)))
        wait_settled_spooled(rx, logged_records() - k0)
    expected = logged_records() - k0
    c = rx.counters()
    stop(rx.proc)
    if os.environ.get("FWLOG_BENCH_KEEP_SPOOL"):
        # A copy of the filled spool for tests/bench/replay_kept.py (phase 2 again and again).
        shutil.copytree(spool, os.environ["FWLOG_BENCH_KEEP_SPOOL"])
    spooled = c.get("spooled", 0)
    # Every record in the spool: the packets and the loss records (printed as losses, not
    # counted as replayed).
    pending = c.get("pending", 0)
    # Phase 2 again on copies of the same spool, made (and synced) now, before the first:
    # one replay is one sample of a machine whose speed moves (BENCHMARKS.md, "Issue 14,
    # replay: stand-alone against in-run").
    copies = []
    for i in range(1, max(1, repeats)):
        copies.append(os.path.join(rx.dir, f"spool-copy-{i}"))
        shutil.copytree(spool, copies[-1])
    if copies:
        # Only the copies: the first replay sees the spool as phase 1 left it.
        run(["sync", *[os.path.join(d, f) for d in copies for f in os.listdir(d)]])
    # Phase 2: restart with a working output and --no-dns; time until all are printed and
    # acknowledged (pending 0: nothing else arrives now).
    first = replay_once(spool, spooled, pending)
    more = [replay_once(sp, spooled, pending) for sp in copies]
    shutil.rmtree(rx.dir, ignore_errors=True)
    res = {
        "pending": pending, "spooled_packets": spooled, "records_logged": expected,
        "lost_in_phase_1": {k: v for k, v in c.items() if k.startswith("lost")},
        **first,
    }
    if more:
        rates = [r["replay_rate"] for r in [first, *more]]
        res["repeats"] = [{k: r[k] for k in ("replay_s", "replay_rate", "cpu_us_per_record")}
                          for r in more]
        res["replay_rates_all"] = rates
        ok = sorted(x for x in rates if x)
        res["replay_rate_median"] = ok[len(ok) // 2] if len(ok) == len(rates) else None
    return res


def replay_once(spool, spooled, pending):
    """One start-up replay of `spool` (consumed): the time from starting `fwlog run` until
    every spooled packet is printed and nothing is pending, and what the timeline saw."""
    rx2 = Fwlog("replay2")
    out = os.path.join(rx2.dir, "out.log")
    tl = probe.Timeline(out, rx2.pid).start()
    t0 = time.time()
    rx2.start(output=out, dns=False, spool=spool)
    t_ready = time.time() - t0
    done = None
    c2 = {}
    while time.time() - t0 < 300:
        c2 = rx2.counters()
        if c2["replayed"] >= spooled and c2["pending"] == 0:
            done = time.time() - t0
            break
        # 20 ms: the end is known to within that (a replay of 1M records takes 0.5-1 s)
        time.sleep(0.02)
    cpu = cpu_seconds(rx2.pid())
    hwm = status_kib(rx2.pid(), "VmHWM")
    timeline = tl.stop()
    rx2.stop()
    shutil.rmtree(rx2.dir, ignore_errors=True)
    return {
        "startup_s": round(t_ready, 3),
        "replay_s": round(done, 2) if done else None,
        "replay_rate": round(pending / done) if done else None,
        "replayed_at_end": c2.get("replayed"), "pending_at_end": c2.get("pending"),
        "cpu_us_per_record": round(cpu * 1e6 / max(pending, 1), 3),
        "vmhwm_mib": round(hwm / 1024, 1),
        "timeline": timeline,
    }


def wait_settled_spooled(rx, expected):
    """Until intake has spooled or counted as lost every record logged, or nothing moves."""
    end = time.time() + 120
    last, still = None, 0
    while time.time() < end:
        c = rx.counters()
        lost = sum(v for k, v in c.items() if k.startswith("lost-") and k != "lost-other")
        now = (c["spooled"], lost)
        if c["spooled"] + lost >= expected:
            return
        still = still + 1 if now == last else 0
        if still >= 10:  # 2 s without progress: what is missing will not come
            return
        last = now
        time.sleep(0.2)


def main():
    global ARGS, TMP
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fwlog", required=True)
    ap.add_argument("--benchtool", required=True)
    ap.add_argument("--fwlog-base", help="another fwlog build, receiver fwlog-base")
    ap.add_argument("--quick", action="store_true", help="about 3 minutes instead of 15")
    ap.add_argument("--only", default="sweep,latency,flood,replay")
    ap.add_argument("--json", help="write all results here")
    ap.add_argument("--receivers", default="bare,fwlog,ulogd2",
                    help="which receivers the rate sweep measures, in order (also: "
                    "fwlog-nodns, fwlog-nosync, to split fwlog's CPU cost; fwlog-metrics, "
                    "fwlog-scraped: --metrics without and with a scrape per second; fwlog-held: hold mode, "
                    "the socket kept in a played fd store; fwlog-procbatch, fwlog-procidle: the "
                    "processing thread at SCHED_BATCH or SCHED_IDLE; fwlog-intakeboost: intake at "
                    "nice -10; fwlog-unitnice: the daemon started at nice -10; fwlog-base: "
                    "--fwlog-base)")
    ap.add_argument("--fwlog-args", default="",
                    help="extra flags for every fwlog daemon (e.g. '--flush-timeout 10ms', to "
                    "compare settings with one build)")
    ap.add_argument("--rates", help="comma list of packets/s for the sweep (0 = max)")
    ap.add_argument("--climb", action="store_true",
                    help="a receiver that lost records at a rate skips the higher rates of the "
                    "same repeat (rates ascending, 0 last): finds each receiver's zero-loss rate "
                    "per repeat, reported as a ratio to bare's")
    ap.add_argument("--groups", type=int, default=2,
                    help="NFLOG groups each packet is logged to (default 2; more records per "
                    "packet lets the sender outrun a receiver on a small machine)")
    ap.add_argument("--pin", action="store_true",
                    help=f"the sender (a thread per CPU) on every CPU but {pin.RECEIVER_CPU}, "
                    f"every receiver process and thread (and nsd) on CPU {pin.RECEIVER_CPU}; "
                    "each trial records "
                    "the threads' CPU masks and the per-CPU time and softirq counts")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--replay-repeats", type=int, default=0,
                    help="start-up replays of the one spool phase 1 fills (the first on it, "
                    "the others on copies made before the first; default 3, 1 with --quick): "
                    "the JSON keeps the first as replay_rate and adds replay_rate_median")
    ap.add_argument("--max-rate-guess", type=int, default=150000,
                    help="packets/s used to size the unpaced step")
    ARGS = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP bench: needs root (network namespaces, nftables, NFLOG, raw sockets)")
        return 0
    TMP = tempfile.mkdtemp(prefix="fwlog-bench.", dir="/var/tmp")
    GROUPS[:] = list(range(5, 5 + max(1, ARGS.groups)))
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(130))
    if ARGS.pin and pin.usable():
        print(f"bench: --pin: {pin.usable()}", file=sys.stderr)
        return 1
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "quick": ARGS.quick, "machine": machine(), "groups": len(GROUPS)}
    q = ARGS.quick
    only = ARGS.only.split(",")
    try:
        setup_net()
        if ARGS.pin:
            cpus = pin.sender_cpus()
            res["pin"] = {"sender_cpu": pin.SENDER_CPU, "receiver_cpu": pin.RECEIVER_CPU,
                          "sender_cpus": cpus, "sender_threads": len(cpus),
                          "rps_cpus_fwbl": pin.rps_masks(lambda c: run(in_ns(NS_LOG, *c)), "fwbl")}
            log(f"== pinned: sender on CPUs {cpus}, receivers on CPU "
                f"{pin.RECEIVER_CPU}; veth RPS masks {res['pin']['rps_cpus_fwbl']}")
        start_nsd()
        if "sweep" in only:
            rates = [50000, 0] if q else [25000, 50000, 100000, 0]
            if ARGS.rates:
                rates = [int(x) for x in ARGS.rates.split(",")]
            if ARGS.climb:
                rates.sort(key=lambda x: x or float("inf"))
            log(f"== rate sweep: rates {rates} (0 = as fast as the sender can)")
            res["sweep"] = []  # filled trial by trial: an interrupted run keeps what it measured
            sweep(rates, 1 if q else 3, 2.0 if q else 4.0, res["sweep"])
        if "latency" in only:
            log("== latency at 10k packets/s, warm cache, JSON output")
            res["latency"] = latency(10000, 8 if q else 30)
        if "flood" in only:
            log("== flood from 2^20 sources with DNS black-holed")
            res["flood"] = flood(30000, 15 if q else 60, 60 if q else 300)
        if "replay" in only:
            log("== start-up replay with --no-dns")
            res["replay"] = replay(300000 if q else 1000000, ARGS.replay_repeats or (1 if q else 3))
        summarize(res)
    finally:
        res["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
        cleanup()
        if ARGS.json:
            with open(ARGS.json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "kernel": os.uname().release,
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3]}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--summarize":
        summarize(json.load(open(sys.argv[2])))
        sys.exit(0)
    if len(sys.argv) > 2 and sys.argv[1] == "--dns-probe":
        sys.exit(dns_probe(int(sys.argv[2])))
    if len(sys.argv) > 3 and sys.argv[1] == "--responder":
        responder_main(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    sys.exit(main())
