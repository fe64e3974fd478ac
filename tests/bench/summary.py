"""bench.py's summary: what its JSON results say against issue 14's targets, printed (and
`summary`, `ceiling` added to the results). Also `bench.py --summarize FILE` on a saved run."""


def log(msg):
    print(msg, flush=True)


def summarize(res):
    sw = res.get("sweep", [])
    by = {}
    for r in sw:
        by.setdefault(r["receiver"], []).append(r)
    summary = {}
    top = max((r["rate_sent"] for r in sw), default=0)
    for name, rs in by.items():
        zero = [r["rate_sent"] for r in rs if r["lost"] == 0]
        lossy = [r["rate_sent"] for r in rs if r["lost"] > 0]
        cpu = sorted(r["cpu_us_per_record"] for r in rs if r["received"] > 0)
        summary[name] = {
            "zero_loss_rate_max": max(zero) if zero else 0,
            "lossy_rate_min": min(lossy) if lossy else None,
            "highest_rate_sent": max(r["rate_sent"] for r in rs),
            "lost_total": sum(r["lost"] for r in rs),
            "records_total": sum(r["records_logged"] for r in rs),
            "cpu_us_per_record_median": cpu[len(cpu) // 2] if cpu else None,
            "cpu_us_per_record_range": [cpu[0], cpu[-1]] if cpu else None,
            "vmhwm_mib_max": round(max(r["vmhwm_kib"] for r in rs) / 1024, 1),
            "trials": len(rs), "trials_with_loss": len(lossy),
        }
    res["summary"] = summary
    ceiling = zero_loss_ceilings(sw)
    if ceiling:
        res["ceiling"] = ceiling
    n = res.get("groups", 2)
    log(f"\n== summary (rates are packets/s; each packet is logged to {n} groups = {n} records)")
    for name, s in summary.items():
        log(f"  {name:<6} {s['trials_with_loss']}/{s['trials']} trials lost records "
            f"({s['lost_total']} of {s['records_total']}); zero loss up to "
            f"{s['zero_loss_rate_max']}/s, first loss at {s['lossy_rate_min']}/s; highest sent "
            f"{s['highest_rate_sent']}/s; cpu {s['cpu_us_per_record_median']} us/record "
            f"(range {s['cpu_us_per_record_range']}); peak RSS {s['vmhwm_mib_max']} MiB")
    if "bare" in summary and "fwlog" in summary:
        b, f = summary["bare"], summary["fwlog"]
        if f["trials_with_loss"] == 0:
            log(f"  fwlog lost nothing at any rate up to {f['highest_rate_sent']}/s (the most the "
                f"sender reached in its trials, {top}/s in any trial): its ceiling is above what "
                f"this machine could send, so the zero-loss ratio to bare is >= "
                f"{f['highest_rate_sent'] / max(b['highest_rate_sent'], 1):.2f} by rates sent "
                f"(target >= 0.95; not saturated)")
        elif b["zero_loss_rate_max"]:
            ratio = f["zero_loss_rate_max"] / b["zero_loss_rate_max"]
            log(f"  fwlog zero-loss rate / bare: {ratio:.2f} (target >= 0.95)")
            res["ratio_zero_loss"] = ratio
    for name, c in ceiling.get("receivers", {}).items():
        if name == "bare":
            continue
        log(f"  {name} zero-loss rate / bare's, per repeat (rates reached; climb "
            f"{ceiling['rates_asked']}): "
            + ", ".join(f"{f}/{b} = {r:.3f}" for f, b, r in zip(c["zero_loss"], c["bare"],
                                                                c["ratios"]))
            + f"; >= 0.95 in {c['repeats_meeting_095']} of {len(c['ratios'])} repeats"
            + ("; target 0.95 per repeat: " + ", ".join(c["target_095"])
               if "target_095" in c else ""))
        notes = {
            "upper_bound": "{name} lost above {mine}/s; bare lost nothing at any rate sent (up "
            "to {bare}/s): bare's own ceiling is higher, so the ratio is an upper bound",
            "lower_bound": "{name} lost nothing at any rate sent (up to {mine}/s), bare lost: "
            "the ratio is a lower bound",
            "sender_bound": "neither {name} nor bare lost at any rate sent (up to {mine}/s and "
            "{bare}/s): no ceiling reached below the sender's; the ratio compares the rates "
            "sent, not zero-loss ceilings",
        }
        for rep, kind in enumerate(c["ratio_kinds"]):
            if kind in notes:
                log(f"    repeat {rep}: " + notes[kind].format(
                    name=name, mine=c["zero_loss"][rep], bare=c["bare"][rep]))
    if "ulogd2" in summary and "fwlog" in summary:
        a, b = summary["fwlog"]["cpu_us_per_record_median"], summary["ulogd2"]["cpu_us_per_record_median"]
        if a and b:
            log(f"  fwlog cpu / ulogd2 cpu per record: {a / b:.2f} (target <= 0.25)")
            res["ratio_cpu"] = a / b
    if "latency" in res:
        l = res["latency"]
        log(f"  latency at {l['rate_sent']}/s: p50 {l['p50_ms']} ms p99 {l['p99_ms']} ms "
            f"max {l['max_ms']} ms (target p99 <= 20 ms)")
    if "flood" in res:
        f = res["flood"]
        log(f"  black-holed DNS flood: {f['packets']} packets at {f['rate_sent']}/s, lost "
            f"{f['lost']}, RSS max {f['rss_max_during_flood_mib']} MiB during the flood, "
            f"{f['rss_max_during_drain_mib']} MiB while draining (HWM {f['vmhwm_end_mib']}), "
            f"backlog {f['backlog_when_dns_came_back']}, drained in {f['drain_s']} s "
            f"(limit {f['drain_limit_s']} s)")
    if "replay" in res:
        r = res["replay"]
        t = r.get("timeline", {})
        log(f"  replay: {r['pending']} records in {r['replay_s']} s = {r['replay_rate']}/s "
            f"(target >= 1500000/s); cpu {r['cpu_us_per_record']} us/record, loop busy "
            f"{max(t.get('thread_busy_while_writing', {0: None}).values())} of the time, "
            f"machine {t.get('machine_cpu_share')}, cpu speed (s per 128 MiB SHA-256) "
            f"{t.get('cpu_speed_sha256_128mib_s')}")
        if "repeats" in r:
            log(f"  replay rates, the first and {len(r['repeats'])} more on copies: "
                f"{r['replay_rates_all']}, median {r['replay_rate_median']}/s")


def zero_loss_ceilings(sw):
    """Per repeat, each receiver's zero-loss rate: the highest rate the sender reached in a
    trial without loss, among the trials below the receiver's first lossy rate (the rates
    asked, in ascending order, 0 = unpaced last). A receiver that lost at the lowest rate
    scores 0. The ratio to the bare receiver's in the same repeat is what the 95 % target is
    about. A receiver that never lost is bounded by the sender, not measured to its limit:
    `capped` says so."""
    if not any(r["receiver"] == "bare" for r in sw):
        return {}
    order = sorted({r["rate_asked"] for r in sw}, key=lambda x: x or float("inf"))
    reps = sorted({r["repeat"] for r in sw})
    per = {}
    for name in dict.fromkeys(r["receiver"] for r in sw):
        zero, capped = [], []
        for rep in reps:
            trials = sorted((r for r in sw if r["receiver"] == name and r["repeat"] == rep),
                            key=lambda r: order.index(r["rate_asked"]))
            best, lost = 0, False
            for r in trials:
                if r["lost"] > 0:
                    lost = True
                    break
                best = max(best, r["rate_sent"])
            zero.append(best)
            capped.append(not lost)
        # ceiling_reached: the receiver lost at some rate of the repeat, so its zero-loss rate
        # is its own ceiling (to the climb's step); otherwise it is the sender's.
        per[name] = {"zero_loss": zero, "never_lost": capped,
                     "ceiling_reached": [not c for c in capped]}
    bare = per.pop("bare")
    for name, c in per.items():
        c["bare"] = bare["zero_loss"]
        c["bare_ceiling_reached"] = bare["ceiling_reached"]
        c["ratios"] = [round(f / b, 3) if b else 0.0 for f, b in zip(c["zero_loss"], c["bare"])]
        c["repeats_meeting_095"] = sum(1 for r in c["ratios"] if r >= 0.95)
        # What each repeat's ratio is: both lost ("ceilings"); only this receiver lost, so bare's
        # figure is the sender's reach and bare's own ceiling is higher ("upper_bound": the
        # true ratio is lower); only bare lost ("lower_bound"); neither ("sender_bound": the
        # rates the sender reached beside each, no ceiling below the sender's).
        kinds = {(True, True): "ceilings", (True, False): "upper_bound",
                 (False, True): "lower_bound", (False, False): "sender_bound"}
        c["ratio_kinds"] = [kinds[(a, b)] for a, b in zip(c["ceiling_reached"],
                                                          bare["ceiling_reached"])]
        # The 0.95 target per repeat: shown only where the ratio is exact or a lower bound,
        # missed only where it is exact or an upper bound; otherwise the run cannot tell.
        verdicts = []
        for r, k in zip(c["ratios"], c["ratio_kinds"]):
            if r >= 0.95 and k in ("ceilings", "lower_bound"):
                verdicts.append("shown")
            elif r < 0.95 and k in ("ceilings", "upper_bound"):
                verdicts.append("missed")
            else:
                verdicts.append("not decided")
        c["target_095"] = verdicts
    return {"rates_asked": order, "bare": bare, "receivers": per}
