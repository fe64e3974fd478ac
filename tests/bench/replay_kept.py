#!/usr/bin/env python3
"""Phase 2 of bench.py's replay, repeatable on one spool (as root):

    FWLOG_BENCH_KEEP_SPOOL=/var/tmp/spool1m python3 tests/bench/bench.py ... --only replay
    python3 tests/bench/replay_kept.py FWLOG_BINARY /var/tmp/spool1m [fwlog run flags]

copies the kept spool to a fresh directory under /var/tmp, starts `fwlog run --no-dns` on it in
a new network namespace, and prints the time from start until SIGUSR1's counters show nothing
pending, the process's CPU seconds and the output's size. Builds compared on the same spool,
interleaved, see the same input and page cache. FWLOG_WRAP="strace -f -w -c -o FILE" (or
another tracer that starts the program as its child) runs fwlog under it.

FWLOG_KEPT_CACHE sets the page cache's state when fwlog starts: `synced` (the default: the copy
written back by `sync`), `dirty` (the copy's 226 MB still dirty, as right after the process that
wrote them), `cold` (synced, then every clean page dropped: the spool is read from the disk).
FWLOG_KEPT_JSON=FILE appends the timings and tests/bench/probe.py's timeline as one JSON line."""
import json, os, re, shutil, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import probe
fw, spool_src = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
d = "/var/tmp/fwlog-replay-kept"
shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
shutil.copytree(spool_src, d + "/spool")
cache = os.environ.get("FWLOG_KEPT_CACHE", "synced")
if cache not in ("synced", "dirty", "cold"):
    sys.exit(f"FWLOG_KEPT_CACHE={cache}: one of synced, dirty, cold")
if cache != "dirty":
    subprocess.run(["sync"])
if cache == "cold":
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
err = open(d + "/err", "w")
tl = probe.Timeline(d + "/out.log", lambda: fwlog_pid()).start()
t0 = time.time()
p = subprocess.Popen(["unshare", "-n", *os.environ.get("FWLOG_WRAP", "").split(), fw, "run", "--spool", d + "/spool", "--output", d + "/out.log",
                      "-g", "5", "-g", "6", "--no-dns", *extra], stderr=err)
def fwlog_pid():
    """The fwlog process: the one started, or its child under a FWLOG_WRAP tracer."""
    if not os.environ.get("FWLOG_WRAP"):
        return p.pid
    while True:
        kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.001)


def counters():
    n = open(d + "/err").read().count("received=")
    os.kill(fwlog_pid(), signal.SIGUSR1)
    end = time.time() + 10
    while time.time() < end:
        t = open(d + "/err").read()
        if t.count("received=") > n:
            l = [x for x in t.splitlines() if "received=" in x][-1]
            return dict((k, int(v)) for k, v in re.findall(r"(\w[\w-]*)=(\d+)", l))
        time.sleep(0.005)
    raise RuntimeError("no counters after SIGUSR1")


while "logging NFLOG" not in open(d + "/err").read():
    time.sleep(0.005)
t_ready = time.time() - t0
while True:
    c = counters()
    if c["pending"] == 0 and c["replayed"] > 0:
        break
    time.sleep(0.02)
dt = time.time() - t0
pid = fwlog_pid()
timeline = tl.stop()
st = open(f"/proc/{pid}/stat").read().split(")")[1].split()
cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
threads = []
for t in sorted(os.listdir(f"/proc/{pid}/task")):
    name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
    f = open(f"/proc/{pid}/task/{t}/stat").read().split(")")[1].split()
    threads.append(f"{name} {(int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK'):.2f}")
hwm = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM"))
os.kill(pid, signal.SIGTERM); p.wait()
out_mb = os.path.getsize(d + "/out.log") / 1e6
print(f"{c['replayed']} in {dt:.3f} s = {c['replayed'] / dt:,.0f}/s cpu {cpu:.2f} s "
      f"({', '.join(threads)}) out {out_mb:.0f} MB, VmHWM {hwm / 1024:.1f} MiB, "
      f"load {open('/proc/loadavg').read().split()[0]}, cache {cache}, ready {t_ready:.3f} s, "
      f"first byte {timeline['first_output_byte_s']} s, half {timeline['output_half_s']} s, "
      f"all written {timeline['output_full_s']} s, dirty/writeback at start "
      f"{timeline['dirty_writeback_mib_at_start']} MiB, max {timeline['dirty_mib_max']}/"
      f"{timeline['writeback_mib_max']} MiB, machine {timeline['machine_cpu_share']}, "
      f"threads user/sys {timeline['threads_user_sys_s']}")
if os.environ.get("FWLOG_KEPT_JSON"):
    with open(os.environ["FWLOG_KEPT_JSON"], "a") as f:
        f.write(json.dumps({"build": fw, "cache": cache, "replayed": c["replayed"],
                            "replay_s": round(dt, 3), "ready_s": round(t_ready, 3),
                            "cpu_s": cpu, "load": open("/proc/loadavg").read().split()[0],
                            **timeline}) + "\n")
shutil.rmtree(d, ignore_errors=True)
