#!/usr/bin/env python3
"""fwlog's memory over a long send at the sender's full rate (as root).

bench.py's trials last seconds, and its flood is 2 groups at 30k packets/s; this holds a
receiver above what its printing keeps up with for as long as asked, so the backlog grows in
the spool for the whole send, and samples fwlog's VmRSS, RssAnon, RssFile and VmHWM with its
SIGUSR1 counters every second. Memory that follows the backlog grows with the send; memory
bounded by design (receive slots, the hand-off, the window, output buffers) levels off.

Same topology and rules as bench.py (its functions, imported): every packet logged to
--groups NFLOG groups, fwlog with `--no-dns` and the fwlog format (--print-to), and with --pin
the sender and fwlog on CPUs of their own.

  python3 tests/bench/rss_long.py --fwlog target/release/fwlog \
      --benchtool target/release/examples/benchtool --seconds 60 --groups 8 --pin \
      --json tests/bench/results/rss-long.json
"""
import argparse
import json
import os
import sys
import tempfile
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (beside this file)

KEYS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def memory_mib(pid):
    return {k: round(bench.status_kib(pid, k) / 1024, 1) for k in KEYS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fwlog", required=True)
    ap.add_argument("--benchtool", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--rate-guess", type=int, default=130000,
                    help="packets/s the sender is thought to reach (sizes the send)")
    ap.add_argument("--print-to", metavar="PATH",
                    help="fwlog's output (default: a file in the run's directory, which makes "
                    "printing slower than intake here, so the backlog grows: about 150 bytes of "
                    "disk per record; /dev/null keeps up instead)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP rss_long: needs root (network namespaces, nftables, NFLOG, raw sockets)")
        return 0
    bench.ARGS = types.SimpleNamespace(fwlog=args.fwlog, benchtool=args.benchtool, pin=args.pin,
                                       keep=False, fwlog_args="", quick=False)
    bench.TMP = tempfile.mkdtemp(prefix="fwlog-rss.", dir="/var/tmp")
    bench.GROUPS[:] = list(range(5, 5 + max(1, args.groups)))
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "groups": len(bench.GROUPS), "pin": args.pin, "print_to": args.print_to or "file",
           "samples": []}
    try:
        bench.setup_net()
        rx = bench.Fwlog("rss")
        rx.start(dns=False, output=args.print_to or os.path.join(rx.dir, "out.log"))
        pid = rx.pid()
        sent = {}
        count = args.rate_guess * args.seconds
        sender = threading.Thread(target=lambda: sent.update(bench.send(0, count)))
        t0 = time.time()
        sender.start()
        while sender.is_alive():
            s = {"t": round(time.time() - t0, 1), **memory_mib(pid)}
            c = rx.counters()
            s["received"], s["pending"] = c.get("received"), c.get("pending")
            res["samples"].append(s)
            bench.log(json.dumps(s))
            time.sleep(1)
        sender.join()
        time.sleep(1)  # the last kernel batches reach the socket and intake
        res["send"] = sent
        res["counters_at_end"] = c = rx.counters()
        # Loss judged by the log rules' counters, as in bench.py.
        res["records_logged"] = bench.logged_records()
        res["lost"] = max(0, res["records_logged"] - c.get("received", 0))
        res["memory_at_end"] = memory_mib(pid)
        rx.stop()
    finally:
        bench.cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
