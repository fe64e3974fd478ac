"""What a replay's wall time is made of, sampled from /proc while it runs (bench.py's replay,
replay_kept.py): when the output's first byte came and when most of it was written, the page
cache's dirty and writeback pages, the machine's CPU split (steal and iowait included) and the
replaying process's CPU by thread, user and system apart."""
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def meminfo_kib(*keys):
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = int(v.split()[0])
    return out


def machine_ticks():
    """/proc/stat's first line: user nice system idle iowait irq softirq steal (ticks)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def thread_files(pid, names):
    """{tid: (thread name, [text of /proc/PID/task/TID/NAME for each of `names`])} of `pid`'s
    live threads (a thread that ends while being read is left out)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for t in tids:
        try:
            texts = []
            for name in ("comm", *names):
                with open(f"/proc/{pid}/task/{t}/{name}") as f:
                    texts.append(f.read())
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[t] = (texts[0].strip(), texts[1:])
    return out


def per_thread(pid, name):
    """[(thread name, text of /proc/PID/task/TID/NAME)] of `pid`'s live threads."""
    return [(comm, texts[0]) for comm, texts in thread_files(pid, (name,)).values()]


def threads_cpu(pid):
    """{thread name: [user s, system s]} of `pid`'s live threads (names summed)."""
    out = {}
    for comm, stat in per_thread(pid, "stat"):
        v = stat.rsplit(")", 1)[1].split()
        u = out.setdefault(comm, [0.0, 0.0])
        u[0] += int(v[11]) / CLK_TCK
        u[1] += int(v[12]) / CLK_TCK
    return out


VMSTAT_KEYS = ("pgsteal_kswapd", "pgsteal_direct", "allocstall_movable", "allocstall_normal",
               "pgpgin", "pgpgout", "pgfault", "pgmajfault")


def vmstat():
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k in VMSTAT_KEYS:
                out[k] = int(v)
    return out


def kernel_threads_s(prefix=("kswapd", "kworker", "jbd2")):
    """CPU seconds (user + system) so far of kernel threads whose name starts with `prefix`,
    summed by prefix (the reclaim and writeback work done for a process is charged there)."""
    out = dict.fromkeys(prefix, 0.0)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = s[s.find("(") + 1:s.rfind(")")]
        for p in prefix:
            if name.startswith(p):
                v = s.rsplit(")", 1)[1].split()
                out[p] += (int(v[11]) + int(v[12])) / CLK_TCK
    return out


def cpu_speed():
    """CPU seconds this process needs to SHA-256 128 MiB (C code, one core): the VM's speed
    per CPU second right now, to tell a slower machine from more work per record."""
    import hashlib
    buf = bytes(32 << 20)
    t = time.process_time()
    for _ in range(4):
        hashlib.sha256(buf).digest()
    return round(time.process_time() - t, 3)


def schedstat_s(pid):
    """{thread name: s on CPU} (schedstat, ns) of `pid`'s live threads (names summed)."""
    out = {}
    for comm, text in per_thread(pid, "schedstat"):
        out[comm] = out.get(comm, 0) + int(text.split()[0]) / 1e9
    return out


class Timeline:
    """Samples every `period` s (20 ms) from start() until stop(): the output file's size and the
    kernel's Dirty/Writeback; `pid_fn` gives the process whose threads' CPU is read at stop."""

    def __init__(self, out_path, pid_fn, period=0.02):
        self.out_path, self.pid_fn, self.period = out_path, pid_fn, period
        self.samples = []
        self.halt = threading.Event()

    def start(self):
        self.speed0 = cpu_speed()
        self.t0 = time.time()
        self.m0 = machine_ticks()
        self.mem0 = meminfo_kib("Dirty", "Writeback", "MemFree")
        self.vm0, self.k0 = vmstat(), kernel_threads_s()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()
        return self

    def run(self):
        while not self.halt.is_set():
            try:
                size = os.path.getsize(self.out_path)
            except OSError:
                size = 0
            m = meminfo_kib("Dirty", "Writeback")
            try:
                th = schedstat_s(self.pid_fn())
            except Exception:  # not started yet
                th = {}
            self.samples.append((time.time() - self.t0, size, m["Dirty"], m["Writeback"], th))
            time.sleep(self.period)

    def stop(self):
        """The summary (a dict for the JSON); call while the process still runs."""
        threads = threads_cpu(self.pid_fn())
        m1 = machine_ticks()
        vm1, k1 = vmstat(), kernel_threads_s()
        self.halt.set()
        self.th.join()
        d = [b - a for a, b in zip(self.m0, m1)]
        total = max(sum(d), 1)
        s = self.samples
        final = s[-1][1] if s else 0

        def first(pred):
            return next((round(t, 3) for t, size, *_ in s if pred(size)), None)

        # Each thread's CPU / wall from the output's first byte to its last: 1.0 = never waited.
        busy = {}
        a = next((x for x in s if x[1] > 0), None)
        b = next((x for x in s if final and x[1] >= final), None)
        if a and b and b[0] > a[0]:
            busy = {k: round((b[4].get(k, 0) - a[4].get(k, 0)) / (b[0] - a[0]), 2) for k in b[4]}

        return {
            "cpu_speed_sha256_128mib_s": self.speed0,
            "first_output_byte_s": first(lambda n: n > 0),
            "output_half_s": first(lambda n: n >= final / 2 and final),
            "output_full_s": first(lambda n: n >= final and final),
            "output_mb": round(final / 1e6, 1),
            "thread_busy_while_writing": busy,
            "dirty_writeback_mib_at_start": [round(self.mem0["Dirty"] / 1024),
                                             round(self.mem0["Writeback"] / 1024)],
            "memfree_mib_at_start": round(self.mem0["MemFree"] / 1024),
            "vmstat_delta": {k: vm1[k] - self.vm0.get(k, 0) for k in vm1},
            "kernel_threads_cpu_s": {k: round(k1[k] - self.k0[k], 2) for k in k1},
            "dirty_mib_max": round(max((x[2] for x in s), default=0) / 1024),
            "writeback_mib_max": round(max((x[3] for x in s), default=0) / 1024),
            "machine_cpu_share": {k: round(v / total, 3) for k, v in zip(
                ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), d)},
            "threads_user_sys_s": {k: [round(u, 2), round(y, 2)] for k, (u, y) in threads.items()},
            # (s since start, output MB, Dirty MiB, Writeback MiB, {thread: CPU s so far})
            "samples_every_100ms": [(round(t, 2), round(n / 1e6), round(dy / 1024),
                                     round(wb / 1024), {k: round(v, 3) for k, v in th.items()})
                                    for t, n, dy, wb, th in s[::5]],
        }
