"""`make bench`'s report: each figure against its target (issue 18), the load of the machine
during each phase, and target/bench/results.json. Standard library only; run.py drives it.

A figure is "met" when its median meets the target; the spread (min-max of the runs) is shown
beside it. The load average is sampled every 2 s while the bench runs, and each phase reports
its minimum, mean and maximum: on a shared machine a figure measured under load 5 is not the
figure of an idle one.
"""

import json
import os
import threading
import time


class LoadSampler:
    """The 1-minute load average, sampled in the background."""

    def __init__(self, every_s=2.0):
        self.samples = []
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), os.getloadavg()[0]))
            self._stop.wait(self.every_s)

    def between(self, start, end):
        vals = [l for t, l in self.samples if start <= t <= end] or [os.getloadavg()[0]]
        return {"min": min(vals), "mean": round(sum(vals) / len(vals), 2), "max": max(vals)}

    def stop(self):
        self._stop.set()


def fmt(s, scale=1.0, digits=1):
    return f"{s['median'] * scale:,.{digits}f} ({s['min'] * scale:,.{digits}f}-{s['max'] * scale:,.{digits}f})"


def check(results, name, value, op, target, unit):
    """Records figure `name` against its target in results["targets"]; returns "met"/"MISSED"."""
    ok = {"<=": value <= target, ">=": value >= target, "==": value == target, "<": value < target}[op]
    results.setdefault("targets", {})[name] = {
        "value": value, "target": f"{op} {target:,}", "unit": unit, "met": ok}
    return "met" if ok else "MISSED"


def table(results):
    """The report's lines: (figure, median (min-max), target, met?)."""
    figs = results["figures"]
    lines = [("figure", "median (min-max)", "target", "")]

    def row(label, shown, target="", status=""):
        lines.append((label, shown, target, status))

    if "1_transform" in figs:
        f = figs["1_transform"]
        for key, label in (("company_rows_per_s", "company"), ("end_user_rows_per_s", "end-user")):
            s = f[key]
            row(f"1 transform, {label} target [rows/s]", fmt(s, digits=0), ">= 1,500,000",
                check(results, f"1 transform {label}", s["median"], ">=", 1_500_000, "rows/s"))
        row("  row scanner alone [rows/s]", fmt(f["scan_only_rows_per_s"], digits=0))
    if "2_peak_rss" in figs:
        for n, s in figs["2_peak_rss"]["sizes"].items():
            row(f"2 peak RSS, {int(n):,} rows [MiB]", fmt(s["peak_rss_mib"]), "<= 64",
                check(results, f"2 peak RSS {n} rows", s["peak_rss_mib"]["median"], "<=", 64, "MiB"))
            row(f"  wall / CPU, {int(n):,} rows [s]", f"{fmt(s['wall_s'], digits=2)} / {fmt(s['cpu_s'], digits=2)}")
    if "3_store_writes" in figs:
        s = figs["3_store_writes"]["records_per_s"]
        row("3 embedded store, chunk replace [records/s]", fmt(s, digits=0), ">= 400,000",
            check(results, "3 store chunk replace", s["median"], ">=", 400_000, "records/s"))
    if "4_resync_all" in figs:
        f = figs["4_resync_all"]
        runs = f"{f['runs']} run{'s' if f['runs'] > 1 else ''}"
        row(f"4 re-sync all: wall [s] ({runs})", fmt(f["wall_s"]), "<= 60",
            check(results, "4 wall", f["wall_s"]["median"], "<=", 60, "s"))
        row("4 re-sync all: sync CPU [s]", fmt(f["sync_cpu_s"]), "<= 20",
            check(results, "4 sync CPU", f["sync_cpu_s"]["median"], "<=", 20, "s"))
        row("4 re-sync all: peak RSS [MiB]", fmt(f["peak_rss_mib"]), "<= 64",
            check(results, "4 peak RSS", f["peak_rss_mib"]["median"], "<=", 64, "MiB"))
        row("4 re-sync all: simulator CPU [s]", fmt(f["simulator_cpu_s"]))
        row("4 Pendo aggregation calls / values / values per call",
            f"{f['pendo_calls']} / {f['values_written']:,} / {f['values_per_call']:,.0f}")
        if "pendo_list_calls" in f:
            row("4 Pendo object lists (once per run)", f"{f['pendo_list_calls']}")
        row("4 rows read / activities written", f"{f['rows_read']:,} / {f['activities_written']:,}")
        row(f"4 chunks ({f['deferred_chunks']} deferred) / users created", f"{f['chunks']} / {f['users_created']:,}")
        # A fetch message is one chunk or the chunks that share a call (issue 28): one call each.
        per_message = f["pendo_calls_per_chunk"] / max(f["queue_messages_per_chunk"], 1e-9)
        row("4 Pendo aggregation calls per chunk (shared calls)", f"{f['pendo_calls_per_chunk']:.3f}", "<= 1")
        row("4 Pendo aggregation calls per fetch message", f"{per_message:.3f}", "== 1",
            check(results, "4 Pendo calls per message", per_message, "==", 1, "calls"))
        row("4 queue messages per chunk", f"{f['queue_messages_per_chunk']:.3f}", "<= 1")
        row("4 deliveries per chunk", f"{f['deliveries_per_chunk']:.3f}", "== 1")
        row("4 store operations per chunk (embedded)", f"{f['store_operations_per_chunk']:.1f}", "constant")
    if "7_cpu_per_million_rows" in figs:
        s = figs["7_cpu_per_million_rows"]["sync_cpu_s_per_million_rows"]
        row("7 sync CPU per million Pendo rows [s]", fmt(s, digits=2), "<= 3",
            check(results, "7 sync CPU per million rows", s["median"], "<=", 3, "s"))
    if "7b_cpu_per_million_rows_by_kind" in figs:
        for kind, k in figs["7b_cpu_per_million_rows_by_kind"]["kinds"].items():
            s = k["sync_cpu_s_per_million_rows"]
            row(f"7b {kind}: sync CPU per million rows [s]", fmt(s, digits=2), "<= 3",
                check(results, f"7b {kind} sync CPU per million rows", s["median"], "<=", 3, "s"))
            row(f"  {kind}: rows / values / chunks, CPU per value [us]",
                f"{k['rows_read']:,} / {k['values_written']:,} / {k['chunks']}, "
                f"{fmt(k['sync_cpu_us_per_value'], digits=2)}")
            if "one_day_cpu_s" in k:
                row(f"  {kind}: CPU of a 1-day run [s]; per million rows beyond it [s]",
                    f"{fmt(k['one_day_cpu_s'], digits=2)}; "
                    f"{fmt(k['cpu_s_per_million_rows_beyond_one_day'], digits=2)}")
    if "8_csv_upload" in figs:
        f = figs["8_csv_upload"]
        row(f"8 CSV upload of {f['rows']:,} rows: peak RSS [MiB]", fmt(f["peak_rss_mib"]), "<= 64",
            check(results, "8 CSV upload peak RSS", f["peak_rss_mib"]["median"], "<=", 64, "MiB"))
        row("  RSS before the upload [MiB] / upload [s]",
            f"{fmt(f['rss_before_upload_mib'])} / {fmt(f['upload_s'], digits=2)}")
    if "5_lambda" in figs:
        for name, f in figs["5_lambda"]["functions"].items():
            row(f"5 {name}: stripped size [MB]", f"{f['stripped_mb']:.2f}", "(reported)")
            row(f"5 {name}: cold start [ms]", fmt(f["cold_start_ms"]), "< 30",
                check(results, f"5 {name} cold start", f["cold_start_ms"]["median"], "<", 30, "ms"))
    if "6_dynamodb_wcu" in figs:
        f = figs["6_dynamodb_wcu"]
        row("6 DynamoDB WCU per value (daily)", fmt(f["wcu_per_value"], digits=3), "<= 1.01",
            check(results, "6 WCU per value", f["wcu_per_value"]["median"], "<=", 1.01, "WCU"))
        row("  WCU per value, rewrite with every value changed", f"{f['wcu_per_value_rewrite']:.3f}")
        if f.get("wcu_unchanged_rewrite") is not None:
            row("  WCU of the same day re-fetched unchanged", f"{f['wcu_unchanged_rewrite']}", "== 0",
                check(results, "6 WCU of an unchanged day", f["wcu_unchanged_rewrite"], "==", 0, "WCU"))
        row("  WCU per activity record", f"{f['wcu_per_activity']:.2f}")
        row("6 read units per chunk (replace's manifests)", f"{f['read_units_per_chunk']:.1f}", "(reported)")
        if "directory_read_units" in f:
            row("6 read units per chunk (directory of the chunk)", f"{f['directory_read_units']:.1f}", "(reported)")
        for b in f.get("run_bookkeeping_per_chunk", []):
            row(f"6 store units per chunk, run of {b['run_chunks']:,} chunks (write / read)",
                f"{b['write_units_per_chunk']:.1f} / {b['read_units_per_chunk']:.1f}", "constant")
    if "11_pendo_economy" in figs:
        f = figs["11_pendo_economy"]
        a = f["a_latency_resync_all"]
        row("11a latency model: Pendo calls, per mapping -> shared",
            f"{a['per_mapping']['pendo_calls']} -> {a['shared']['pendo_calls']}")
        row("11a latency model: wall [s], per mapping -> shared",
            f"{a['per_mapping']['wall_s']:.1f} -> {a['shared']['wall_s']:.1f}")
        row("11a peak RSS [MiB], per mapping -> shared",
            f"{a['per_mapping']['peak_rss_mib']:.1f} -> {a['shared']['peak_rss_mib']:.1f}", "<= 64",
            check(results, "11a shared peak RSS", a["shared"]["peak_rss_mib"], "<=", 64, "MiB"))
        d = f["d_fifty_features_one_call"]
        row(f"11d 50 features, 7 days, {d['pendo_calls']} call(s): peak RSS [MiB]", f"{d['peak_rss_mib']:.1f}", "<= 64",
            check(results, "11d shared call peak RSS", d["peak_rss_mib"], "<=", 64, "MiB"))
        b = f["b_fifty_features_twenty_pages"]
        row("11b 50 F + 20 P: calls per Re-sync all, per mapping -> shared",
            f"{b['resync_all_calls']['per_mapping']} -> {b['resync_all_calls']['shared']}", "<= 2 x 13",
            check(results, "11b calls per Re-sync all", b["resync_all_calls"]["shared"], "<=", 2 * 13, "calls"))
        row("11b 50 F + 20 P: calls per tenant-day, per mapping -> shared",
            f"{b['tenant_day_calls']['per_mapping']:.0f} -> {b['tenant_day_calls']['shared']:.0f}", "<= 2")
        c = f["c_rate_limit_8_workers"]
        for k, label in (("shared_with_budget", "shared, budget"), ("shared_without_budget", "shared, no budget"),
                         ("per_mapping_with_budget", "per mapping, budget")):
            row(f"11c 2 req/s, 8 workers, {label}: 429s / wall [s] / calls",
                f"{c[k]['rate_limited']} / {c[k]['wall_s']:.1f} / {c[k]['pendo_calls']}")
        # Issue 28's target: no 429 after the first (the run's first calls find the simulator's
        # bucket and the budget's both full, and may meet before either has refilled).
        row("11c with the budget: 429s after the first", f"{max(c['shared_with_budget']['rate_limited'] - 1, 0)}",
            "== 0", check(results, "11c 429s after the first with the budget",
                          max(c["shared_with_budget"]["rate_limited"] - 1, 0), "<=", 0, "429s"))
        t = c["two_tenants_at_once"]
        row("11c two tenants at once: wall each [s] (alone) / 429s",
            f"{t['wall_s'][0]:.1f}, {t['wall_s'][1]:.1f} ({t['wall_alone_s']:.1f}) / {t['rate_limited']}")
    if "9_aws_faults" in figs:
        f = figs["9_aws_faults"]
        runs = f"{f['runs']} run{'s' if f['runs'] > 1 else ''}"
        row(f"9 AWS faults: re-sync all wall, fault-free / faults [s] ({runs})",
            f"{fmt(f['fault_free_wall_s'])} / {fmt(f['faults_wall_s'])}", "(reported)")
        row("9 AWS calls, fault-free / faults",
            f"{fmt(f['fault_free_aws_calls'], digits=0)} / {fmt(f['faults_aws_calls'], digits=0)}", "(reported)")
        row("9 extra AWS calls under faults [%]", fmt(f["extra_aws_calls_pct"]), "(reported)")
        row("9 faults met / deliveries (fault-free, faults)",
            f"{fmt(f['faults_met'], digits=0)} / {f['deliveries']['fault_free']}, {f['deliveries']['faults']}",
            "same export")
    if "10_aws_bill" in figs:
        f = figs["10_aws_bill"]
        for name in ("small", "large"):
            if name not in f:
                continue
            b = f[name]
            d = b["steady_day"]
            row(f"10 {name} tenant ({b['how'].split(':')[0]}): {b['tenant']}", "")
            if name == "large":
                row("  steady day: write units / of the new day alone",
                    f"{d['write_units']:,.0f} / {d['new_day_write_units']:,.0f}", "<= 1.3 x",
                    check(results, "10 large steady writes over new day", d["write_units_over_new_day"], "<=",
                          1.3, "x"))
            else:
                row("  steady day: write units / of the new day alone",
                    f"{d['write_units']:,.0f} / {d['new_day_write_units']:,.0f} "
                    f"({d['write_units_over_new_day']:.2f} x)", "(reported)")
            row("  steady day: read units", f"{d['read_units']:,.0f}")
            if "directory_read_units_per_chunk" in d:
                row("  steady day: directory read units per chunk", f"{d['directory_read_units_per_chunk']:.2f}", "<= 3",
                    check(results, f"10 {name} directory read units per chunk", d["directory_read_units_per_chunk"],
                          "<=", 3, "RCU"))
                row("  steady day: directory read units of the run's planning",
                    f"{d['planning_directory_read_units_per_run']:.1f}", "(reported)")
            if "lambda_invocations" in d:
                row("  steady day: Lambda invocations / GB-s / SQS requests",
                    f"{d['lambda_invocations']:.1f} / {d['lambda_gb_s']:.1f} / {d['sqs_requests']:.1f}")
            r = b["resync_all"]
            row("  Re-sync all of 90 days: write units / dollars", f"{r['write_units']:,.0f} / {r['dollars']:.2f}")
            m = b["month"]
            parts = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "total")
            growth = f", growing {b['storage_growth_gb_per_month']:.2f} GB a month" if "storage_growth_gb_per_month" in b else ""
            row(f"  steady month [$] ({parts}; storage {b['storage_gb']:.3f} GB{growth})", f"{m['total']:.2f}",
                "< 3" if name == "large" else "(reported)",
                check(results, "10 large tenant's month", m["total"], "<", 3, "$") if name == "large" else "")
    row("release build + bench builds [s]", f"{results['build_s']:.0f}")
    for name, p in results["phases_s"].items():
        l = p["load"]
        row(f"  phase: {name} [s] (load min/mean/max)", f"{p['s']:.0f} ({l['min']:.1f}/{l['mean']:.1f}/{l['max']:.1f})")
    row("make bench total [s]", f"{results['total_s']:.0f}")
    return lines


def finish(results, started, phases, out_dir, root):
    """Writes results.json and prints the table; returns the process's exit code (0)."""
    results["total_s"] = time.monotonic() - started
    results["phases_s"] = phases
    lines = table(results)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    widths = [max(len(l[i]) for l in lines) for i in range(3)]
    for a, b, c, d in lines:
        print(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip())
    missed = [n for n, t in results.get("targets", {}).items() if not t["met"]]
    print(f"\ntargets: {len(results.get('targets', {})) - len(missed)} met, {len(missed)} missed"
          + (f" ({', '.join(missed)})" if missed else ""))
    print(f"written to {os.path.relpath(os.path.join(out_dir, 'results.json'), root)}")
    return 0
