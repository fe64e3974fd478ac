#!/usr/bin/env python3
"""Why a thread was off its CPU, from a `perf record -e sched:sched_switch -g` trace: each time
the thread was switched out, the switch's kernel stack says why (waiting for the disk in an
fdatasync, waiting for a datagram, preempted while runnable, other), and the time until it was
switched in again says for how long. Prints, per thread id, count / total / p50 / p99 / max of
those waits by reason.

    perf record -e sched:sched_switch -g -C 1 -o sw.data -- python3 tests/bench/bench.py --pin ...
    perf script -i sw.data -F comm,tid,time,event,trace,ip,sym > sw.txt
    python3 tests/bench/offcpu.py sw.txt fwlog-intake

With bench.py --pin every receiver thread runs on CPU 1, so recording that CPU sees all of
its switches.
"""
import collections
import re
import sys

SYNC = ("fdatasync", "file_write_and_wait", "blkdev_issue_flush", "sync_dirty_buffer",
        "fsync_buffers", "jbd2")


def reason(state, syms):
    if any(k in s for s in syms for k in SYNC):
        return "disk sync (fdatasync)"
    if any("netlink_recvmsg" in s for s in syms):
        return "waiting for a datagram"
    if state.startswith("R"):
        return "preempted (runnable)"
    named = [s for s in syms if not s.startswith(("__schedule", "schedule", "[unknown]"))]
    return "other: " + ",".join(named[:3])


def waits(path, comm):
    """{tid: {reason: [seconds off CPU]}} of the threads named `comm`."""
    out_at, res = {}, collections.defaultdict(lambda: collections.defaultdict(list))
    text = open(path).read()
    for block in text.split("\n\n"):
        lines = block.strip().split("\n")
        if not lines or "sched_switch" not in lines[0]:
            continue
        head = lines[0]
        m = re.search(r"\s(\d+\.\d+):", head)
        if not m:
            continue
        t = float(m.group(1))
        m = re.search(rf"prev_comm={re.escape(comm)} prev_pid=(\d+) .*prev_state=(\S+)", head)
        if m:
            syms = [x.split()[-1] for x in lines[1:14] if x.split()]
            out_at[m.group(1)] = (t, reason(m.group(2), syms))
        m = re.search(rf"next_comm={re.escape(comm)} next_pid=(\d+)", head)
        if m and m.group(1) in out_at:
            t0, why = out_at.pop(m.group(1))
            res[m.group(1)][why].append(t - t0)
    return res


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    for tid, by in sorted(waits(sys.argv[1], sys.argv[2]).items()):
        print(f"thread {tid}")
        for why, d in sorted(by.items(), key=lambda kv: -sum(kv[1])):
            d.sort()
            n = len(d)
            print(f"  {why[:40]:<40} n={n:6d} total {sum(d):6.2f} s  p50 {d[n // 2] * 1e3:7.2f} ms"
                  f"  p99 {d[int(n * 0.99)] * 1e3:7.2f} ms  max {d[-1] * 1e3:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
