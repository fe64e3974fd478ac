"""The sender and the receiver on CPUs of their own (bench.py --pin).

Without it, on a 2-core machine the sender (whose context carries the kernel's per-packet work:
the veth receive, the nft rules, building every NFLOG record) and the receiver compete for the
same two cores, so a receiver that takes more CPU lowers the rate the sender reaches and a
zero-loss ratio against the bare receiver measures that CPU, not the receiver's ceiling.

With it:
  - the sender runs on every CPU this process may use but RECEIVER_CPU (`sender_cpus()`,
    `taskset`, inherited by its threads), one sending thread per CPU: with 8 groups the
    kernel's per-packet work on the sending CPU is the ceiling of a single sender (about 118k
    packets/s on the 2-core machine of BENCHMARKS.md), so only a machine with more CPUs can
    offer the bare receiver more than it takes;
  - every receiver process runs on RECEIVER_CPU (`taskset` before it starts, so every thread it
    makes inherits the mask), and the mask of each of its threads is read back from
    /proc/PID/task/TID/status (`Cpus_allowed_list`) and recorded: a thread elsewhere fails the
    trial instead of measuring something else;
  - per trial, the per-CPU split of /proc/stat (user, system, softirq, ...) and the per-CPU
    NET_RX / TIMER counts of /proc/softirqs over the send are recorded, so where the kernel's
    NFLOG work ran is measured, not assumed, and the veth's RPS mask is recorded beside it
    (RPS would move the receive softirq, and the NFLOG work in it, to another CPU).
"""
import os

import probe  # beside this file

SENDER_CPU, RECEIVER_CPU = 0, 1
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def usable():
    """None when both CPUs exist and may be used by this process, else why not."""
    allowed = os.sched_getaffinity(0)
    missing = {SENDER_CPU, RECEIVER_CPU} - allowed
    if missing:
        return (f"CPUs {sorted(missing)} are not available to this process "
                f"(allowed {sorted(allowed)})")
    return None


def sender_cpus():
    """The sender's CPUs: every CPU this process may use but RECEIVER_CPU (SENDER_CPU first)."""
    rest = sorted(os.sched_getaffinity(0) - {SENDER_CPU, RECEIVER_CPU})
    return [SENDER_CPU, *rest]


def prefix(cpus):
    """A command prefix that runs the command, and every thread it makes, on `cpus` only."""
    return ["taskset", "-c", ",".join(str(c) for c in cpus)]


def thread_cpus(pid):
    """{tid: [thread name, Cpus_allowed_list, nice]} of `pid`'s live threads."""
    out = {}
    for t, (comm, (status, stat)) in probe.thread_files(pid, ("status", "stat")).items():
        allowed = next((l.split(":", 1)[1].strip() for l in status.splitlines()
                        if l.startswith("Cpus_allowed_list:")), "?")
        out[t] = [comm, allowed, int(stat.rsplit(")", 1)[1].split()[16])]
    return out


def check_threads(pid, cpu, who):
    """Every thread of `pid` may run on `cpu` only; returns what was read, raises otherwise."""
    seen = thread_cpus(pid)
    wrong = {t: v for t, v in seen.items() if v[1] != str(cpu)}
    if not seen or wrong:
        raise RuntimeError(f"{who}: threads not pinned to CPU {cpu}: {wrong or 'no threads'}")
    return seen


def per_cpu_ticks():
    """{cpu number: [ticks per STAT_FIELDS]} from /proc/stat's cpuN lines."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, _, rest = line.partition(" ")
            if name.startswith("cpu") and name[3:].isdigit():
                out[int(name[3:])] = [int(x) for x in rest.split()[:len(STAT_FIELDS)]]
    return out


def softirqs(kinds=("NET_RX", "TIMER", "NET_TX")):
    """{kind: [count per CPU]} from /proc/softirqs."""
    out = {}
    with open("/proc/softirqs") as f:
        next(f)
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() in kinds:
                out[name.strip()] = [int(x) for x in rest.split()]
    return out


# Kernel threads whose CPU time says where kernel work that is nobody's process context ran:
# softirqs deferred to a CPU's ksoftirqd, work items of per-CPU and unbound kworkers (the
# receiver's writeback among them), the ext4 journal.
KTHREADS = ("ksoftirqd/0", "ksoftirqd/1", "kworker/0:", "kworker/1:", "kworker/u", "jbd2")


def kthreads_s():
    """{prefix of KTHREADS: CPU seconds so far} (the prefixes do not overlap)."""
    return probe.kernel_threads_s(KTHREADS)


class CpuSplit:
    """Per-CPU time by kind, softirq counts per CPU, and kernel threads' CPU, between start
    and stop."""

    def __init__(self):
        self.k0 = kthreads_s()
        self.t0, self.s0 = per_cpu_ticks(), softirqs()

    def stop(self):
        t1, s1 = per_cpu_ticks(), softirqs()
        k1 = kthreads_s()
        cpus = {}
        for cpu, v in t1.items():
            d = {k: round((b - a) / CLK_TCK, 2)
                 for k, a, b in zip(STAT_FIELDS, self.t0.get(cpu, [0] * 8), v)}
            cpus[str(cpu)] = d
        counts = {k: [b - a for a, b in zip(self.s0.get(k, []), v)] for k, v in s1.items()}
        kt = {k: round(v - self.k0.get(k, 0), 2) for k, v in k1.items()}
        return {"cpu_s": cpus, "softirq_counts": counts, "kthreads_cpu_s": kt}


def rps_masks(ns_exec, dev):
    """The RPS CPU mask of each receive queue of `dev` (read inside its namespace: sysfs there
    shows the namespace's devices). All zero: the receive softirq runs on the CPU that queued
    the packet, for a veth the sender's."""
    r = ns_exec(["sh", "-c", f"for q in /sys/class/net/{dev}/queues/rx-*; do "
                 f"echo \"${{q##*/}} $(cat $q/rps_cpus)\"; done"])
    return dict(l.split() for l in r.stdout.splitlines() if len(l.split()) == 2)


def others(split, sender_cpu_s, receiver_cpu_s):
    """CPU seconds other processes took on each side's CPU during the send (the CPU's busy
    time less the sender's or the receiver's own): on a shared machine the scheduler moves
    other work onto whichever CPU has room, and a sender that lost its CPU reaches a lower
    rate for reasons that are not the receiver's."""
    def busy(cpu):
        d = split["cpu_s"].get(str(cpu), {})
        return sum(d.get(k, 0) for k in ("user", "nice", "system", "irq", "softirq"))
    sending = sum(busy(c) for c in sender_cpus())
    return {"sender_cpu": round(max(0.0, sending - sender_cpu_s), 2),
            "receiver_cpu": round(max(0.0, busy(RECEIVER_CPU) - receiver_cpu_s), 2)}


def kernel_share(split):
    """A one-line reading of a CpuSplit: each CPU's busy seconds by kind."""
    parts = []
    for cpu, d in sorted(split["cpu_s"].items()):
        busy = d["user"] + d["nice"] + d["system"] + d["irq"] + d["softirq"]
        parts.append(f"cpu{cpu} busy {busy:.2f}s (user {d['user'] + d['nice']:.2f} sys "
                     f"{d['system']:.2f} softirq {d['softirq']:.2f} idle {d['idle']:.2f})")
    rx = split["softirq_counts"].get("NET_RX", [])
    kt = {k: v for k, v in split.get("kthreads_cpu_s", {}).items() if v}
    return "; ".join(parts) + f"; NET_RX per cpu {rx}; kernel threads {kt}"
