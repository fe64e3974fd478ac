#!/usr/bin/env python3
"""Per-thread system calls and context switches of fwlog during a bench.py sweep.

Usage (as root, beside the sweep): python3 tests/bench/syscalls.py 25000,50000 OUT.jsonl &
When a paced send at one of the rates starts (`benchtool send`), waits 1 s, then counts for 2 s,
per thread of the running `fwlog run`: voluntary and involuntary context switches
(/proc/PID/task/TID/status) and the system calls below (`perf stat --per-thread`, which costs
the process far less than strace). Appends one JSON line per trial (rate, binary, load)."""
import json, os, subprocess, sys, time, re

RATES = set(sys.argv[1].split(","))
OUT = sys.argv[2]
SYS = ["futex", "fdatasync", "epoll_wait", "epoll_pwait", "write", "pwrite64", "ppoll",
       "recvmmsg", "recvmsg", "read", "sched_yield", "clock_nanosleep", "sendmsg", "writev", "pwritev2"]

def procs():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                yield int(p), open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            except OSError:
                pass

def sender():
    for pid, cmd in procs():
        if len(cmd) > 6 and cmd[0].endswith(b"benchtool") and cmd[1] == b"send":
            if cmd[5].decode() in RATES:
                return pid, cmd[5].decode()
    return None

def fwlog():
    for pid, cmd in procs():
        if cmd and cmd[0].endswith(b"fwlog") and len(cmd) > 1 and cmd[1] == b"run":
            return pid, os.readlink(f"/proc/{pid}/exe")
    return None

def ctx(pid):
    r = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s = open(f"/proc/{pid}/task/{t}/status").read()
            comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            st = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        v = int(re.search(r"voluntary_ctxt_switches:\s+(\d+)", s).group(1))
        n = int(re.search(r"nonvoluntary_ctxt_switches:\s+(\d+)", s).group(1))
        cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        r[f"{comm}-{t}"] = (v, n, cpu)
    return r

seen = set()
while True:
    s = sender()
    if not s or s[0] in seen:
        time.sleep(0.05)
        continue
    seen.add(s[0])
    f = fwlog()
    if not f:
        continue
    time.sleep(1.0)
    try:
        c0 = ctx(f[0])
    except OSError:
        continue
    ev = ",".join(f"syscalls:sys_enter_{x}" for x in SYS)
    out = subprocess.run(["perf", "stat", "--per-thread", "-x", ";", "-e", ev, "-p", str(f[0]),
                          "--", "sleep", "2"], capture_output=True, text=True).stderr
    try:
        c1 = ctx(f[0])
    except OSError:
        continue
    th = {}
    for k, (v, n, cpu) in c1.items():
        v0, n0, cpu0 = c0.get(k, (0, 0, 0))
        th[k] = {"vol": v - v0, "invol": n - n0, "cpu_s": round(cpu - cpu0, 2)}
    for line in out.splitlines():
        parts = line.split(";")
        if len(parts) < 4 or not parts[3].startswith("syscalls:"):
            continue
        name, val = parts[0], parts[1]
        ev = parts[3].split("sys_enter_")[1]
        try:
            val = int(val)
        except ValueError:
            continue
        if val:
            th.setdefault(name, {})[ev] = val
    rec = {"rate": s[1], "exe": f[1], "t": time.strftime("%H:%M:%S"),
           "load": open("/proc/loadavg").read().split()[0], "threads": th}
    with open(OUT, "a") as o:
        o.write(json.dumps(rec) + "\n")
