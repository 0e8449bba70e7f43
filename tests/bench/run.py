#!/usr/bin/env python3
"""`make bench`: builds release binaries, runs every benchmark, prints a table and writes
target/bench/results.json. Standard library only.

Figures (see issue 8):
  1 transform throughput      criterion, shared/benches/transform.rs
  2 peak RSS of pendo-sync    `pendo-sync bench resync` against `pendo-sim` (separate process)
  3 embedded store writes     criterion, shared/benches/store.rs (a chunk's replace)
  4 large-preset Re-sync all  `pendo-sync bench resync`, ten Feature/Page mappings, 90 days
  5 Lambda binaries           stripped sizes; cold start against a local Runtime API emulator
  6 DynamoDB WCU per value    shared/examples/dynamo_wcu.rs against moto
  7 sync CPU per million rows figure 4's runs: sync CPU / Pendo rows read; 7b: one mapping of
                              each kind (feature, page, track, guide, poll, report, aggregation,
                              PES), 30 days
  8 CSV upload memory         `pendo-sync serve`: peak RSS of a 100,000-row directory upload
  10 a tenant's AWS bill      tests/e2e aws_bill: a small tenant through the handlers on moto, every
                              call billed at the IAM gate; priced (and the large tenant modelled)
                              by bill.py
  11 Pendo economy            shared event calls vs one call per chunk under a latency model; the
                              calls of 50 Feature + 20 Page mappings; 429s with a 2 requests/s
                              limit and 8 workers, with and without the shared budget; two tenants
  9 AWS faults                a Re-sync all of the medium preset through the handlers on moto,
                              fault-free and with 5 % of DynamoDB calls throttled and 2 % of
                              batch writes partial (tests/e2e aws_faults, an ignored test)

Processes are measured from outside: wall clock around the child, CPU (user + sys) and peak
RSS (ru_maxrss) from wait4() of that child only, so the simulator's work is never counted.
Every figure is the median of several runs with its spread (min-max).

Environment: CARGO_TARGET_DIR (default ./target), AWS_LOCAL_PORT (moto, default 4566),
BENCH_RUNS (default 3), BENCH_RESYNC_RUNS (figure 4's runs, default 3),
BENCH_FAULT_RUNS (figure 9's runs, default 3), BENCH_SKIP (comma list of figure numbers).

Time budget (`make bench` within 15 minutes on 2 cores, release build included): moto is
installed and started in the background while cargo builds; criterion runs with 1 s warm-up and
flat sampling; every phase's wall time is printed at the end and written to results.json
("phases_s", with the load average sampled during each phase: min, mean, max). Each figure is
printed against its target (report.py) and results.json's "targets" says which are met.
"""

import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import bill
import report

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.path.abspath(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")))
RELEASE = os.path.join(TARGET, "release")
OUT_DIR = os.path.join(ROOT, "target", "bench")
CRITERION = os.path.join(OUT_DIR, "criterion")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
# Figure 4 (and 7, from the same runs): three runs, about 20-30 s each (39 Pendo calls,
# ~4M rows, ~3M values, ~3.6M activity records).
RESYNC_RUNS = int(os.environ.get("BENCH_RESYNC_RUNS", "3"))
# Figure 9: each run about 75 s (two stacks set up, two Re-sync alls of 15-20 s, and two
# exports read back from moto to compare, about 17 s each).
FAULT_RUNS = int(os.environ.get("BENCH_FAULT_RUNS", "3"))
SKIP = {s.strip() for s in os.environ.get("BENCH_SKIP", "").split(",") if s.strip()}
AWS_PORT = os.environ.get("AWS_LOCAL_PORT", "4566")
KEY = "bench-key"
FUNCTIONS = ["scheduler", "fetch", "resync", "configurator"]
RSS_SIZES = [100_000, 1_000_000, 3_000_000]
# 3,000,000 distinct (visitor, app, day) groups in one 7-day chunk of 3 apps need 142,858
# identified visitors; the directory is still the first 50,000 of them.
RSS_VISITORS = 160_000

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{AWS_PORT}",
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


PHASES = {}
LOAD = None


def phase_done(name, since):
    """Records a phase of the run: its wall time and the load average sampled during it."""
    now = time.monotonic()
    load = LOAD.between(since, now) if LOAD else {"min": 0, "mean": 0, "max": 0}
    PHASES[name] = {"s": round(now - since, 1), "load": load}
    log(f"{name}: {PHASES[name]['s']:.0f}s (load {load['min']:.1f}-{load['max']:.1f})")


class phase:
    """`with phase(name):` records the block's wall time (see phase_done)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        phase_done(self.name, self.start)
        return False


def summary(values, unit):
    """Median and spread of several runs."""
    vals = [float(v) for v in values]
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "runs": len(vals),
        "unit": unit,
        "samples": vals,
    }


def measure(cmd, env=None, stdout=subprocess.PIPE):
    """Runs cmd; returns (wall s, cpu s, peak RSS KiB, stdout text) of that process alone."""
    start = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    out_chunks = []
    err_chunks = []
    t_out = threading.Thread(target=lambda: out_chunks.append(p.stdout.read() if p.stdout else ""))
    t_err = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    t_out.start()
    t_err.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    t_out.join()
    t_err.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {''.join(err_chunks)[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, "".join(out_chunks)


def cargo_build(args):
    """One `cargo build --release` invocation; returns its compiler-artifact messages."""
    args = ["cargo", "build", "--release", "--message-format=json-render-diagnostics"] + args
    log(" ".join(args))
    out = subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    messages = []
    for line in out.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact":
            messages.append(m)
    return messages


def build():
    """Release build of every binary and bench in ONE cargo invocation; returns the bench
    executables by name.

    Deployed, each Lambda function is built alone (`cargo lambda build --release`, with only
    the `pendo_sync` features it needs). Here cargo unifies the features of `pendo_sync` across
    every package, so the functions are built with all of them, and `pendo_sync` compiles once
    instead of once per feature set. The linker keeps only the code a binary reaches: built
    apart with their own features, the four functions measured within 25 KB (0.15%) of these
    (2026-11-29: fetch 18,045,816 bytes apart, 18,033,616 here; configurator 19,797,696 and
    19,820,968).
    """
    benches = {}
    # `--bench NAME`, not `--benches`: that would also compile every library and binary of the
    # listed packages a second time as libtest bench harnesses (their unit tests, in release).
    # Only the binaries the bench runs (not the dev-only `sqs-poller`).
    args = ["-p", "local", "-p", "pendo-sim", "-p", "pendo_sync", "--bin", "pendo-sync",
            "--bin", "pendo-sim", "--bench", "transform", "--bench", "store",
            "--example", "dynamo_wcu"]
    for f in FUNCTIONS:
        args += ["-p", f, "--bin", f]
    # Figures 9's and 10's measurements are tests of the scenario crate (it drives the handlers through
    # the fault proxy in front of moto): its test binary, in the same invocation, so that
    # `pendo_sync` still compiles once (with the `testing` feature the test needs; the
    # functions do not reach that code, so their size does not change).
    if "9" not in SKIP or "10" not in SKIP:
        args += ["-p", "e2e", "--test", "it"]
    for m in cargo_build(args):
        t = m.get("target", {})
        if "bench" in t.get("kind", []) and m.get("executable"):
            benches[t["name"]] = m["executable"]
        if "test" in t.get("kind", []) and t.get("name") == "it" and m.get("executable"):
            benches["e2e_it"] = m["executable"]
    return benches


# ---------------------------------------------------------------- simulator

class Sim:
    """`pendo-sim` in its own process."""

    def __init__(self, visitors=None, synthetic_rows=None, cache=False, extra=(), keys=(KEY,)):
        cmd = [os.path.join(RELEASE, "pendo-sim"), "--preset", "large", "--listen", "127.0.0.1:0"]
        for k in keys:
            cmd += ["--key", k]
        cmd += list(extra)
        if cache:
            # A repeated aggregation answered from memory: later runs measure pendo-sync alone
            # (on a 2-vCPU machine the simulator computing beside it doubles its CPU time).
            cmd += ["--cache-aggregations"]
        if visitors:
            cmd += ["--visitors", str(visitors)]
        if synthetic_rows:
            cmd += ["--synthetic-event-rows", str(synthetic_rows)]
        self.visitors = visitors or 50_000
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"pendo-sim did not start: {line!r}")
        self.url = line[len("listening on "):]

    def put(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="PUT")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def calls(self):
        """(aggregation calls, other Pendo API calls) so far, from the simulator's counters."""
        with urllib.request.urlopen(self.url + "/_sim/counters", timeout=30) as r:
            counters = json.load(r)
        agg = sum(n for path, n in counters.items() if path == "/api/v1/aggregation")
        other = sum(n for path, n in counters.items() if path.startswith("/api/")) - agg
        return agg, other

    def rate_limited(self):
        """429s the simulator's request limit has answered so far, all keys."""
        with urllib.request.urlopen(self.url + "/_sim/counters", timeout=30) as r:
            counters = json.load(r)
        return sum(counters.get("rateLimited", {}).values())

    def cpu_s(self):
        """CPU time (user + sys) the simulator process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def setup_tenant(sim, data, mappings, days, target, auto_create=False, kind="events", pages=None, key=KEY):
    cmd = [os.path.join(RELEASE, "pendo-sync"), "bench", "setup", "--data", data, "--pendo-base-url", sim.url,
           "--key", key, "--visitors", str(sim.visitors), "--mappings", str(mappings), "--days", str(days),
           "--target", target, "--kind", kind] + (["--auto-create"] if auto_create else []) + \
          (["--pages", str(pages)] if pages is not None else [])
    wall, _, _, out = measure(cmd)
    log(f"setup {out.strip()} in {wall:.1f}s")
    return json.loads(out)


def resync(sim, template, runs, env=None, workers=2):
    """Copies the configured data dir and runs `bench resync` on the copy, `runs` times (`env`:
    variables added to the process's environment)."""
    results = []
    for i in range(runs):
        data = template + f"-run{i}"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(template, data)
        before = sim.calls()
        sim_cpu = sim.cpu_s()
        limited = sim.rate_limited()
        cmd = [os.path.join(RELEASE, "pendo-sync"), "bench", "resync", "--data", data, "--pendo-base-url", sim.url,
               "--workers", str(workers)]
        wall, cpu, rss_kib, out = measure(cmd, env={**os.environ, **(env or {})})
        sim_cpu = sim.cpu_s() - sim_cpu
        after = sim.calls()
        calls, lists = after[0] - before[0], after[1] - before[1]
        r = json.loads(out)
        r.update({"wall_s": wall, "cpu_s": cpu, "sim_cpu_s": sim_cpu, "peak_rss_mib": rss_kib / 1024,
                  "pendo_calls": calls, "pendo_list_calls": lists,
                  "rate_limited": sim.rate_limited() - limited})
        log(f"  run {i + 1}/{runs}: {wall:.2f}s wall, {cpu:.2f}s CPU (simulator {sim_cpu:.2f}s), "
            f"{rss_kib / 1024:.1f} MiB, {r['rows_read']} rows, {r['values_written']} values, {calls} aggregation "
            f"calls + {lists} object lists")
        results.append(r)
        shutil.rmtree(data, ignore_errors=True)
    return results


def cpu_by_kind(sim, work):
    """Figure 7b: one mapping of each kind, 30 days to companies, a Re-sync all each."""
    fig = {
        "how": "pendo-sync bench setup --kind K --days 30 --target company (one mapping: the default "
               "app's most popular feature / page, the simulator's 7-day visitor report (numEvents), the "
               "setup guide's per-visitor aggregation (events, minutes), PES of the default app (score, "
               "adoption), the default app's most popular track type (events, minutes), the guide of "
               "several steps (seen, advanced, dismissed, completed), the NPS poll (a 90-day NPS and its "
               "responses)), then `bench resync` against pendo-sim --preset large: CPU (user + sys, wait4) "
               "of the pendo-sync process end to end, process start and exit included, divided by the "
               "Pendo rows read; per-day kinds make 30 chunks, event kinds 5. The simulator keeps its "
               "answers (--cache-aggregations): the first run's are computed beside pendo-sync, the "
               "later runs' are given again from memory, so the median measures pendo-sync alone. "
               "The same mapping over 1 day splits the CPU into a part of the run (process, store, "
               "directory; the 1-day run's) and a part per row: (CPU of 30 days - CPU of 1 day) / "
               "(rows of 30 days - rows of 1 day)",
        "target": "<= 3 s per million rows, every kind",
        "kinds": {},
    }
    kinds = ("feature", "page", "track", "guide", "poll", "report", "aggregation", "pes")
    for kind in kinds:
        runs = {}
        for days in (30, 1):
            template = os.path.join(work, f"kind-{kind}-{days}")
            setup_tenant(sim, template, 1, days, "company", kind="events" if kind == "feature" else kind)
            runs[days] = resync(sim, template, RESYNC_RUNS)
            shutil.rmtree(template, ignore_errors=True)
        r0, one = runs[30][0], runs[1][0]
        fixed = statistics.median(r["cpu_s"] for r in runs[1])
        fig["kinds"][kind] = {
            "chunks": r0["chunks"],
            "rows_read": r0["rows_read"],
            "values_written": r0["values_written"],
            "activities_written": r0["activities_written"],
            "sync_cpu_s": summary([r["cpu_s"] for r in runs[30]], "s"),
            "sync_cpu_s_per_million_rows": summary([r["cpu_s"] / max(r["rows_read"], 1) * 1e6 for r in runs[30]], "s"),
            "sync_cpu_us_per_value": summary([r["cpu_s"] / max(r["values_written"], 1) * 1e6 for r in runs[30]], "us"),
            "one_day_cpu_s": summary([r["cpu_s"] for r in runs[1]], "s"),
            "one_day_rows_read": one["rows_read"],
            "cpu_s_per_million_rows_beyond_one_day": summary(
                [(r["cpu_s"] - fixed) / max(r["rows_read"] - one["rows_read"], 1) * 1e6 for r in runs[30]], "s"),
        }
    return fig


def both_at_once(sims_templates, env):
    """`bench resync` of two tenants at once (their own data dirs, keys and simulators' counters):
    each one's wall time and 429s."""
    procs = []
    for sim, template in sims_templates:
        data = template + "-both"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(template, data)
        cmd = [os.path.join(RELEASE, "pendo-sync"), "bench", "resync", "--data", data, "--pendo-base-url", sim.url,
               "--workers", "8"]
        procs.append((time.monotonic(), subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                                         stderr=subprocess.DEVNULL), data))
    walls = []
    for start, p, data in procs:
        if p.wait() != 0:
            raise RuntimeError(f"figure 11: a tenant's resync failed ({p.returncode})")
        walls.append(time.monotonic() - start)
        shutil.rmtree(data, ignore_errors=True)
    return walls


def pendo_economy(work):
    """Figure 11 (issue 28): shared event calls and the shared request budget."""
    fig = {
        "how": "pendo-sync bench resync (embedded store) against pendo-sim --preset large in its own process. "
               "(a) figure 4's tenant (10 mappings, 90 days, 50,000 visitors) under the simulator's latency "
               "model at a tenth of issue 28's example (200 ms a call + 5 ms per 1,000 rows streamed), one "
               "call per chunk (PENDO_SHARED_CALL_MAPPINGS=1) against shared calls (the default, 50). "
               "(b) 50 Feature and 20 Page company mappings over every app's features and pages (a feature "
               "may serve several mappings), 90 days, 2,000 visitors: calls of a Re-sync all; a tenant-day "
               "(a daily run) is one window, so its calls are the Re-sync all's divided by its 13 windows. "
               "(d) 50 Feature company mappings over every app's features, 7 days, 50,000 visitors: one "
               "shared call, the pendo-sync process's peak RSS. "
               "(c) figure 4's tenant on 2,000 visitors, 8 workers, the simulator limiting each key to 2 "
               "requests/s (429 + Retry-After beyond): 429s received and wall, with the shared budget "
               "(PENDO_REQUESTS_PER_SECOND=2) and without; then two such tenants (two keys) at once, each "
               "with its own budget",
        "target": "(b) shared calls <= source x segment groups per window; (c) 0 429s with the budget; "
                  "(d) <= 64 MiB peak",
    }
    sim = Sim(extra=["--latency-ms", "200", "--latency-per-1000-rows-ms", "5"])
    try:
        template = os.path.join(work, "economy-latency")
        setup_tenant(sim, template, 10, 90, "mixed", auto_create=True)
        shared = resync(sim, template, 1)[0]
        alone = resync(sim, template, 1, env={"PENDO_SHARED_CALL_MAPPINGS": "1"})[0]
        # (d) one shared call for 50 Feature mappings over 7 days of the large preset: its memory.
        fifty = os.path.join(work, "economy-fifty")
        sim.put("/_sim/latency", {})  # no latency: an absent field is zero
        setup_tenant(sim, fifty, 50, 7, "company", pages=0)
        one_call = resync(sim, fifty, 1)[0]
        fig["d_fifty_features_one_call"] = {k: one_call[k] for k in (
            "pendo_calls", "chunks", "rows_read", "values_written", "activities_written", "peak_rss_mib", "wall_s",
            "cpu_s")}
        shutil.rmtree(fifty, ignore_errors=True)
        if (shared["values_written"], shared["rows_read"]) != (alone["values_written"], alone["rows_read"]):
            raise RuntimeError("figure 11: shared and per-mapping calls wrote different values")
        fig["a_latency_resync_all"] = {
            "chunks": shared["chunks"], "rows_read": shared["rows_read"],
            "values_written": shared["values_written"],
            "per_mapping": {"pendo_calls": alone["pendo_calls"], "wall_s": alone["wall_s"],
                            "peak_rss_mib": alone["peak_rss_mib"]},
            "shared": {"pendo_calls": shared["pendo_calls"], "wall_s": shared["wall_s"],
                       "peak_rss_mib": shared["peak_rss_mib"]},
        }
        shutil.rmtree(template, ignore_errors=True)
    finally:
        sim.close()
    sim = Sim(visitors=2_000)
    try:
        template = os.path.join(work, "economy-70")
        setup_tenant(sim, template, 70, 90, "company", pages=20)
        shared = resync(sim, template, 1)[0]
        alone = resync(sim, template, 1, env={"PENDO_SHARED_CALL_MAPPINGS": "1"})[0]
        if shared["values_written"] != alone["values_written"]:
            raise RuntimeError("figure 11: shared and per-mapping calls wrote different values")
        fig["b_fifty_features_twenty_pages"] = {
            "chunks": shared["chunks"],
            "resync_all_calls": {"per_mapping": alone["pendo_calls"], "shared": shared["pendo_calls"]},
            "tenant_day_calls": {"per_mapping": alone["pendo_calls"] / 13, "shared": shared["pendo_calls"] / 13},
            "groups_per_window": 2,
            "peak_rss_mib": {"per_mapping": alone["peak_rss_mib"], "shared": shared["peak_rss_mib"]},
        }
        shutil.rmtree(template, ignore_errors=True)
    finally:
        sim.close()
    key2 = KEY + "-2"
    sims = [Sim(visitors=2_000, extra=["--rate-limit", "2"], keys=(KEY, key2))]
    try:
        sim = sims[0]
        template = os.path.join(work, "economy-limit")
        setup_tenant(sim, template, 10, 90, "mixed", auto_create=True)
        budget = {"PENDO_REQUESTS_PER_SECOND": "2"}
        with_budget = resync(sim, template, 1, env=budget, workers=8)[0]
        without = resync(sim, template, 1, workers=8)[0]
        alone = resync(sim, template, 1, env={**budget, "PENDO_SHARED_CALL_MAPPINGS": "1"}, workers=8)[0]
        other = os.path.join(work, "economy-limit-2")
        setup_tenant(sim, other, 10, 90, "mixed", auto_create=True, key=key2)
        limited = sim.rate_limited()
        walls = both_at_once([(sim, template), (sim, other)], budget)
        fig["c_rate_limit_8_workers"] = {
            "shared_with_budget": {"rate_limited": with_budget["rate_limited"], "wall_s": with_budget["wall_s"],
                                   "pendo_calls": with_budget["pendo_calls"]},
            "shared_without_budget": {"rate_limited": without["rate_limited"], "wall_s": without["wall_s"],
                                      "pendo_calls": without["pendo_calls"]},
            "per_mapping_with_budget": {"rate_limited": alone["rate_limited"], "wall_s": alone["wall_s"],
                                        "pendo_calls": alone["pendo_calls"]},
            "two_tenants_at_once": {"wall_s": walls, "rate_limited": sim.rate_limited() - limited,
                                    "wall_alone_s": with_budget["wall_s"]},
        }
        for t in (template, other):
            shutil.rmtree(t, ignore_errors=True)
    finally:
        for s in sims:
            s.close()
    return fig


# ---------------------------------------------------------------- criterion

def criterion_throughput(group, name):
    """Per-sample throughput (elements/s) of a criterion benchmark's last run (its elements per
    iteration as the bench declared them)."""
    path = os.path.join(CRITERION, group, name, "new")
    with open(os.path.join(path, "benchmark.json")) as f:
        elements = json.load(f)["throughput"]["Elements"]
    with open(os.path.join(path, "sample.json")) as f:
        s = json.load(f)
    return [elements * it / (t * 1e-9) for it, t in zip(s["iters"], s["times"])]


# ---------------------------------------------------------------- CSV upload (figure 8)

CSV_ROWS = 100_000
CSV_TOKEN = "bench-csv-token-0123456789abcdef"


def csv_upload(work, rows):
    """One `pendo-sync serve` on a fresh data folder takes one CSV upload of `rows` companies;
    returns its peak RSS (wait4) and the upload's figures."""
    base = tempfile.mkdtemp(prefix="csv-", dir=work)
    tokens = os.path.join(base, "tokens")
    with open(tokens, "w") as f:
        f.write(f"{CSV_TOKEN}:bench-csv:admin\n")
    path = os.path.join(base, "companies.csv")
    with open(path, "w") as f:
        f.write("externalId,name\n")
        for i in range(rows):
            f.write(f"acct-{i:06d},Company number {i} of the bench\n")
    size = os.path.getsize(path)
    p = subprocess.Popen([os.path.join(RELEASE, "pendo-sync"), "serve", "--listen", "127.0.0.1:0",
                          "--no-schedule", "--workers", "1", "--data", os.path.join(base, "data"),
                          "--tokens", tokens, "--pendo-base-url", "http://127.0.0.1:9"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = None
        deadline = time.monotonic() + 60
        while address is None and time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith("listening on http://"):
                address = line.split()[2]
        if address is None:
            raise RuntimeError("figure 8: pendo-sync serve printed no address")
        threading.Thread(target=p.stdout.read, daemon=True).start()
        with open(f"/proc/{p.pid}/status") as f:
            before = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
        start = time.monotonic()
        with open(path, "rb") as body:
            req = urllib.request.Request(f"{address}/v1/directory/companies", data=body, method="PUT",
                                         headers={"Authorization": f"Bearer {CSV_TOKEN}",
                                                  "Content-Type": "text/csv",
                                                  "Content-Length": str(size)})
            with urllib.request.urlopen(req, timeout=300) as r:
                answer = json.loads(r.read())
        upload_s = time.monotonic() - start
        if answer.get("accepted") != rows:
            raise RuntimeError(f"figure 8: the upload accepted {answer.get('accepted')} of {rows} rows")
    finally:
        p.terminate()
    _, _, ru = os.wait4(p.pid, 0)
    p.returncode = 0
    return {"peak_rss_mib": ru.ru_maxrss / 1024, "rss_before_mib": before, "upload_s": upload_s,
            "bytes": size, "accepted": answer["accepted"]}


# ---------------------------------------------------------------- lambda cold start

class RuntimeApi(http.server.ThreadingHTTPServer):
    """The two Lambda Runtime API calls a function makes for one invocation."""

    def handle_error(self, request, client_address):
        # The function is stopped while its next poll is held: the answer to that poll finds
        # the connection closed. Expected; anything else is still reported.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, event):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.event = event
        self.served = False
        self.done = threading.Event()
        self.outcome = None
        self.done_at = None


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        if self.path.endswith("/runtime/invocation/next") and not srv.served:
            srv.served = True
            body = json.dumps(srv.event).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-request-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                             "arn:aws:lambda:us-east-1:123456789012:function:bench")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            # The next poll after the first invocation: hold it until the process is stopped.
            srv.done.wait(30)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def do_POST(self):
        srv = self.server
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        if srv.done_at is None:
            srv.done_at = time.monotonic()
            srv.outcome = ("response" if self.path.endswith("/response") else "error", body.decode(errors="replace"))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        srv.done.set()


def cold_start(binary, event, env):
    srv = RuntimeApi(event)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    env = dict(env)
    env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{srv.server_address[1]}"
    start = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    finished = srv.done.wait(30)
    elapsed = (srv.done_at - start) if srv.done_at else None
    p.terminate()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    srv.shutdown()
    srv.server_close()
    if not finished or srv.outcome is None:
        raise RuntimeError(f"{binary}: no invocation result: {err.decode(errors='replace')[-1500:]}")
    if srv.outcome[0] != "response":
        raise RuntimeError(f"{binary}: invocation error: {srv.outcome[1][:500]}")
    return elapsed * 1000, srv.outcome[1]


def lambda_events():
    with open(os.path.join(ROOT, "tests", "fixtures", "eventbridge-schedule.json")) as f:
        schedule = json.load(f)
    with open(os.path.join(ROOT, "tests", "fixtures", "sqs-fetch-batch.json")) as f:
        fetch = json.load(f)
    fetch = {"Records": fetch["Records"][:1]}
    resync_record = dict(fetch["Records"][0])
    resync_record["messageId"] = "bench-resync-1"
    resync_record["body"] = json.dumps(
        {"type": "resync", "v": 1, "tenant": "bench-none", "runId": "r-bench", "generation": 1})
    # The configurator: one API Gateway HTTP API (v2) request with the JWT authorizer's claims
    # (a member listing the tenant's mappings: one store read).
    with open(os.path.join(ROOT, "tests", "fixtures", "apigw-v2-jwt-member-list-mappings.json")) as f:
        configurator = json.load(f)
    return {"scheduler": schedule, "fetch": fetch, "resync": {"Records": [resync_record]},
            "configurator": configurator}


# ---------------------------------------------------------------- main

def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    global LOAD
    LOAD = report.LoadSampler()
    results = {"machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())}, "figures": {}}
    figs = results["figures"]
    started = time.monotonic()

    # moto (figures 5, 6 and 9) is installed and started while cargo compiles: downloads vs CPU.
    global MOTO
    if not ("5" in SKIP and "6" in SKIP and "9" in SKIP):
        MOTO = subprocess.Popen(["bash", os.path.join(ROOT, "infra", "local", "aws-local.sh"), "start"],
                                env={**os.environ, **AWS_ENV, "AWS_LOCAL_PORT": AWS_PORT},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        return run_figures(results, figs, started)
    finally:
        if MOTO is not None:
            MOTO.wait()
            subprocess.run(["bash", os.path.join(ROOT, "infra", "local", "aws-local.sh"), "stop"],
                           env={**os.environ, "AWS_LOCAL_PORT": AWS_PORT})


MOTO = None


def moto_started():
    """Waits for the background `aws-local.sh start`; raises if it failed."""
    out, _ = MOTO.communicate()
    log(out.strip())
    if MOTO.returncode != 0:
        raise RuntimeError(f"aws-local.sh start failed ({MOTO.returncode})")


def run_figures(results, figs, started):
    # One cargo invocation for every binary: the criterion benches bring dev-dependencies whose
    # features would otherwise differ from the binaries' and rebuild the whole SDK twice.
    t0 = time.monotonic()
    with phase("release build"):
        benches = build()
    results["build_s"] = time.monotonic() - t0
    log(f"release build: {results['build_s']:.0f}s")

    # Each benchmark's 10 samples are 10 equal batches of iterations (flat sampling, set in the
    # benches): an iteration is a whole 300,000-row transform or 28,000-value chunk, and
    # criterion's default linear sampling would run at least 55 of them.
    for b, f in (("transform", "1"), ("store", "3")):
        if f not in SKIP:
            log(f"criterion: {b}")
            with phase(f"criterion {b}"):
                subprocess.run([benches[b], "--bench", "--noplot", "--warm-up-time", "1",
                                "--measurement-time", "3"], cwd=ROOT, check=True,
                               env={**os.environ, "CRITERION_HOME": CRITERION}, stdout=sys.stderr)
    if "1" not in SKIP:
        figs["1_transform"] = {
            "how": "criterion (10 samples): 300,000 grouped featureEvents rows (seed 42, large preset) as "
                   "response bytes in 64 KiB pieces -> RowScanner -> serde row parse -> identity against "
                   "50,000 end users / 2,000 companies -> per-object-day and per-user-day sums; one core, "
                   "no store",
            "target": ">= 1,500,000 rows/s",
            "company_rows_per_s": summary(criterion_throughput("transform", "company"), "rows/s"),
            "end_user_rows_per_s": summary(criterion_throughput("transform", "end_user"), "rows/s"),
            "scan_only_rows_per_s": summary(criterion_throughput("transform", "scan_only"), "rows/s"),
        }
    if "3" not in SKIP:
        figs["3_store_writes"] = {
            "how": "criterion (10 samples): a store (file, WAL, synchronous=NORMAL as the local runner "
                   "opens it) holding 90 days of 4 mappings (2 Feature -> 2,000 companies x 2 metrics, "
                   "2 Page -> 4,000 end users, each with 4,000 end users' activity a day); an iteration "
                   "replaces one company chunk and one end-user chunk (7 days inside the 90: every "
                   "record of the window is deleted, the new values and activity records written, one "
                   "transaction each, committed); records = values + activity records",
            "target": ">= 400,000 records/s",
            "records_per_s": summary(criterion_throughput("store", "embedded_replace_chunk"), "records/s"),
        }

    work = tempfile.mkdtemp(prefix="pendo-bench-")
    try:
        if "2" not in SKIP:
            log("figure 2: peak RSS vs response size")
            t_fig = time.monotonic()
            sim = Sim(visitors=RSS_VISITORS)
            try:
                template = os.path.join(work, "rss")
                setup_tenant(sim, template, 1, 7, "company")
                fig = {"how": "pendo-sync bench resync (embedded store, one Feature mapping -> companies, one "
                              "7-day chunk = one Pendo call) against pendo-sim in its own process answering N "
                              "synthetic grouped rows (--synthetic-event-rows); ru_maxrss of the pendo-sync "
                              "process from wait4",
                       "target": "<= 64 MiB, flat across sizes", "sizes": {}}
                for n in RSS_SIZES:
                    sim.post("/_sim/synthetic-rows", {"rows": n})
                    runs = resync(sim, template, RUNS)
                    fig["sizes"][str(n)] = {
                        "peak_rss_mib": summary([r["peak_rss_mib"] for r in runs], "MiB"),
                        "wall_s": summary([r["wall_s"] for r in runs], "s"),
                        "cpu_s": summary([r["cpu_s"] for r in runs], "s"),
                        "rows_read": runs[0]["rows_read"],
                        "values_written": runs[0]["values_written"],
                        "activities_written": runs[0]["activities_written"],
                    }
                figs["2_peak_rss"] = fig
            finally:
                sim.close()
            phase_done("figure 2", t_fig)

        if "4" not in SKIP:
            log("figure 4: large-preset Re-sync all, ten mappings, 90 days")
            t_fig = time.monotonic()
            sim = Sim()
            try:
                template = os.path.join(work, "resync")
                setup = setup_tenant(sim, template, 10, 90, "mixed", auto_create=True)
                runs = resync(sim, template, RESYNC_RUNS)
                same = {k: {r[k] for r in runs} for k in
                        ("pendo_calls", "pendo_list_calls", "rows_read", "values_written", "activities_written",
                          "chunks")}
                if any(len(v) != 1 for v in same.values()):
                    raise RuntimeError(f"figure 4: runs differ in what they did: {same}")
                r0 = runs[0]
                figs["4_resync_all"] = {
                    "how": "pendo-sync bench resync (embedded store, 2 workers) against pendo-sim --preset large "
                           "(seed 42, 50,000 visitors; the seeded event data, answered by its per-item "
                           "generator) in its own process; the 5 most popular features of the default app -> "
                           "companies (with a minutes metric) and its 5 most popular pages -> end users, 90 "
                           "days = 13 chunks each; the first end-user mapping auto-creates end users (auto-detect "
                           "on), so the other nine mappings' chunks are deferred until its chunks are over; "
                           f"directory {setup['companies']} companies, "
                           f"{setup['end_users']} end users; wall from spawn to exit of pendo-sync; sync CPU is "
                           "user+sys of the pendo-sync process alone (wait4), the simulator's CPU is read "
                           "separately from /proc; Pendo calls from the simulator's counters",
                    "target": "<= 60 s wall, <= 20 s sync CPU, <= 64 MiB peak, 1 Pendo call per fetch message",
                    "runs": len(runs),
                    "wall_s": summary([r["wall_s"] for r in runs], "s"),
                    "sync_cpu_s": summary([r["cpu_s"] for r in runs], "s"),
                    "simulator_cpu_s": summary([r["sim_cpu_s"] for r in runs], "s"),
                    "peak_rss_mib": summary([r["peak_rss_mib"] for r in runs], "MiB"),
                    "chunks": r0["chunks"],
                    "pendo_calls": r0["pendo_calls"],
                    # The run's check of the objects its mappings refer to: one feature list and
                    # one page list per run, whatever its size.
                    "pendo_list_calls": r0["pendo_list_calls"],
                    "rows_read": r0["rows_read"],
                    "values_written": r0["values_written"],
                    "activities_written": r0["activities_written"],
                    "values_per_call": r0["values_written"] / max(r0["pendo_calls"], 1),
                    "deferred_chunks": r0["deferred"],
                    "users_created": r0["users_created"],
                    "pendo_calls_per_chunk": r0["pendo_calls"] / max(r0["chunks"], 1),
                    # Fetch messages only: the run's own Re-sync all message is not a chunk's.
                    "queue_messages_per_chunk": (r0["queue_messages"] - 1) / max(r0["chunks"], 1),
                    "deliveries_per_chunk": r0["attempts"] / max(r0["chunks"], 1),
                    "store_operations_per_chunk": r0["store_operations"] / max(r0["chunks"], 1),
                    "values_per_sync_cpu_s": r0["values_written"] / max(statistics.median(
                        [r["cpu_s"] for r in runs]), 1e-9),
                }
                figs["7_cpu_per_million_rows"] = {
                    "how": "figure 4's runs: CPU (user + sys, wait4) of the pendo-sync process end to end "
                           "(fetch, parse, transform, identities, store, cursor, the run's bookkeeping) "
                           "divided by the Pendo rows it read, per million rows; the simulator's CPU is "
                           "not counted",
                    "target": "<= 3 s per million rows",
                    "rows_read": r0["rows_read"],
                    "sync_cpu_s_per_million_rows": summary(
                        [r["cpu_s"] / r["rows_read"] * 1e6 for r in runs], "s"),
                }
            finally:
                sim.close()
            phase_done("figure 4", t_fig)

        if "7" not in SKIP:
            log("figure 7b: sync CPU per million rows, one mapping of each kind, 30 days")
            t_fig = time.monotonic()
            sim = Sim(cache=True)
            try:
                figs["7b_cpu_per_million_rows_by_kind"] = cpu_by_kind(sim, work)
            finally:
                sim.close()
            phase_done("figure 7b", t_fig)

        if "8" not in SKIP:
            log("figure 8: CSV directory upload, 100,000 rows")
            t_fig = time.monotonic()
            runs = [csv_upload(work, CSV_ROWS) for _ in range(RUNS)]
            figs["8_csv_upload"] = {
                "how": f"`pendo-sync serve` (release, empty data folder, no schedule) on 127.0.0.1; "
                       f"PUT /v1/directory/companies with text/csv, {CSV_ROWS:,} rows (externalId,name; "
                       f"{runs[0]['bytes']:,} bytes) sent from a file; peak RSS (ru_maxrss, wait4) of the "
                       "serve process, which started, took the upload and was stopped with SIGTERM; its RSS "
                       "before the upload is shown beside",
                "target": "<= 64 MiB peak",
                "rows": CSV_ROWS,
                "accepted": runs[0]["accepted"],
                "peak_rss_mib": summary([r["peak_rss_mib"] for r in runs], "MiB"),
                "rss_before_upload_mib": summary([r["rss_before_mib"] for r in runs], "MiB"),
                "upload_s": summary([r["upload_s"] for r in runs], "s"),
            }
            phase_done("figure 8", t_fig)

        if "11" not in SKIP:
            log("figure 11: Pendo economy: shared calls, latency, rate limit")
            t_fig = time.monotonic()
            figs["11_pendo_economy"] = pendo_economy(work)
            phase_done("figure 11", t_fig)

        if "5" in SKIP and "6" in SKIP and "9" in SKIP and "10" in SKIP:
            return finish(results, started)
        t_fig = time.monotonic()
        moto_started()
        phase_done("waiting for moto", t_fig)
        try:
            env = {**os.environ, **AWS_ENV}
            if "5" not in SKIP:
                log("figure 5: Lambda binaries")
                t_fig = time.monotonic()
                prefix = f"bench-cold-{os.getpid()}"
                subprocess.run([os.path.join(RELEASE, "examples", "dynamo_wcu"), "--ensure-tables", prefix],
                               check=True, env=env)
                fn_env = {**env, "CONFIG_TABLE": f"{prefix}-config", "DATA_TABLE": f"{prefix}-data",
                          "FETCH_QUEUE_URL": f"http://127.0.0.1:{AWS_PORT}/123456789012/{prefix}-fetch",
                          "RESYNC_QUEUE_URL": f"http://127.0.0.1:{AWS_PORT}/123456789012/{prefix}-resync",
                          "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                          "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
                          "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "RUST_LOG": "warn"}
                events = lambda_events()
                fig = {"how": "size of target/release/<fn> (release profile, strip = true), each function "
                              "built in build()'s one invocation (within 0.15% of its deployed, own-features size); cold start = "
                              "process spawn -> the function's first /invocation/<id>/response POST to a local "
                              "Lambda Runtime API emulator (this script), x86_64, tables on moto; fixture "
                              "events (tests/fixtures), each handled to completion (the configurator: a member "
                              "listing mappings through API Gateway v2)",
                       "target": "< 30 ms cold start; size reported", "functions": {}}
                for f in FUNCTIONS:
                    binary = os.path.join(RELEASE, f)
                    size = os.path.getsize(binary)
                    times = [cold_start(binary, events[f], fn_env)[0] for _ in range(max(RUNS, 5))]
                    fig["functions"][f] = {"stripped_bytes": size, "stripped_mb": size / 1e6,
                                           "cold_start_ms": summary(times, "ms")}
                    log(f"  {f}: {size / 1e6:.2f} MB, cold start median {statistics.median(times):.1f} ms")
                figs["5_lambda"] = fig
                phase_done("figure 5", t_fig)
            if "6" not in SKIP:
                log("figure 6: DynamoDB write units")
                t_fig = time.monotonic()
                wcu = []
                # One run: the units are computed from item sizes, the same every run (14 s each).
                for _ in range(1):
                    _, _, _, out = measure([os.path.join(RELEASE, "examples", "dynamo_wcu")], env=env)
                    wcu.append(json.loads(out))
                w = wcu[0]
                figs["6_dynamodb_wcu"] = {
                    "how": "shared/examples/dynamo_wcu: replace_chunk of one day x 2,000 companies x 2 metrics "
                           "(the daily fetch's store call) on moto; units billed computed by the adapter's meter "
                           "from item sizes by DynamoDB's rules (base item + every GSI entry, manifest items "
                           "included), because moto reports a fixed 1.0 per BatchWriteItem call whatever it holds",
                    "target": "<= 1.01 WCU per value; read units per chunk reported",
                    "values": w["values"],
                    "wcu_per_value": summary([r["billed_units_per_value"] for r in wcu], "WCU"),
                    "wcu_per_value_rewrite": w["billed_units_per_value_rewrite"],
                    "wcu_unchanged_rewrite": w.get("billed_units_unchanged_rewrite"),
                    "wcu_per_activity": w["billed_units_per_activity"],
                    # A chunk's delivery and outcome on runs of 10 and 1,000 chunks.
                    "run_bookkeeping_per_chunk": w["run_bookkeeping"],
                    "manifest_units_first_write": w["manifest_units_first_write"],
                    "manifest_units_rewrite": w["manifest_units_rewrite"],
                    "moto_reported_units": w["reported_units_first_write"],
                    "batch_calls": w["batch_calls_first_write"],
                    "reads_per_chunk": f"2 GetItem on the config table (generation check before and after) + "
                                       f"{w['read_calls_per_chunk']} BatchGetItem of the window's manifests on the data table "
                                       f"({w['items_read_per_chunk']} items, {w['read_units_per_chunk']} RCU); no per-item read",
                    "read_units_per_chunk": w["read_units_per_chunk"],
                    "directory_read_units": w["directory_read_units"],
                    "directory_read_how": f"the directory as a chunk reads it when its stamp changed (else the chunk "
                                          f"reads the stamp alone, 1 unit: figure 10): {w['directory_companies']:,} companies and "
                                          f"{w['directory_end_users']:,} end users, {w['directory_read_pages']} Query "
                                          f"pages; it grows with the directory",
                }
                phase_done("figure 6", t_fig)
            if "9" not in SKIP:
                log("figure 9: a Re-sync all under AWS faults")
                t_fig = time.monotonic()
                figs["9_aws_faults"] = aws_faults(benches["e2e_it"], env)
                phase_done("figure 9", t_fig)
            if "10" not in SKIP:
                log("figure 10: a tenant's AWS bill")
                t_fig = time.monotonic()
                figs["10_aws_bill"] = aws_bill(benches["e2e_it"], env, figs.get("4_resync_all"),
                                               figs.get("6_dynamodb_wcu"))
                phase_done("figure 10", t_fig)
        finally:
            subprocess.run(["bash", os.path.join(ROOT, "infra", "local", "aws-local.sh"), "stop"],
                           env={**os.environ, "AWS_LOCAL_PORT": AWS_PORT})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish(results, started)


def aws_bill(test_binary, env, fig4, fig6):
    """Figure 10: `aws_bill::bench_a_tenants_aws_bill` once (its units are computed from item
    sizes and counts, the same every run), priced by bill.py; the large tenant modelled from it
    and figure 4."""
    _, _, _, out = measure([test_binary, "--ignored", "--exact", "--nocapture", "--test-threads", "1",
                            "aws_bill::bench_a_tenants_aws_bill"], env={**env, "RUST_LOG": "off"})
    mark = "BENCH_AWS_BILL "
    line = next((l[l.index(mark) + len(mark):] for l in out.splitlines() if mark in l), None)
    if line is None:
        raise RuntimeError(f"figure 10: the test printed no BENCH_AWS_BILL line: {out[-2000:]}")
    raw = json.loads(line)
    fig = {
        "how": bill.__doc__.strip(),
        "prices": bill.PRICES,
        "raw": raw,
        "small": bill.measured(raw),
    }
    if fig4:
        fig["large"] = bill.modelled_large(raw, fig4, fig6)
    return fig


def aws_faults(test_binary, env):
    """Figure 9: `aws_faults::bench_a_resync_all_under_aws_faults` FAULT_RUNS times, each a
    fresh process with two fresh stacks; the medians of what it prints."""
    runs = []
    for _ in range(FAULT_RUNS):
        _, _, _, out = measure([test_binary, "--ignored", "--exact", "--nocapture", "--test-threads", "1",
                                "aws_faults::bench_a_resync_all_under_aws_faults"], env={**env, "RUST_LOG": "off"})
        # libtest prints the test's name on the same line, before what the test prints.
        mark = "BENCH_AWS_FAULTS "
        line = next((l[l.index(mark) + len(mark):] for l in out.splitlines() if mark in l), None)
        if line is None:
            raise RuntimeError(f"figure 9: the test printed no BENCH_AWS_FAULTS line: {out[-2000:]}")
        runs.append(json.loads(line))
        r = runs[-1]
        log(f"  fault-free {r['fault_free']['wall_s']:.1f} s, {r['fault_free']['aws_calls']} calls; "
            f"faults {r['faults']['wall_s']:.1f} s, {r['faults']['aws_calls']} calls, "
            f"{r['faults']['faults_met']} faults met")
    free = [r["fault_free"] for r in runs]
    hit = [r["faults"] for r in runs]
    return {
        "how": "tests/e2e aws_faults::bench_a_resync_all_under_aws_faults (release): the medium preset "
               "(200 accounts, 5,000 visitors), a Feature and a Page mapping on companies over 30 days; "
               "a Re-sync all planned by the configurator's app and drained through the resync and fetch "
               "handlers, all AWS calls through the IAM gate and fault proxy in front of moto. 'faults': "
               "5 % of the workers' DynamoDB calls answered ProvisionedThroughputExceededException (the "
               "SDK retries them) and 2 % of their BatchWriteItem calls half-applied with the rest as "
               "UnprocessedItems; each run's export is compared with the fault-free run's (equal, or the "
               "test fails). AWS calls: the workers' calls the gate saw, SDK retries included",
        "target": "the same export; extra AWS calls and wall time reported",
        "runs": len(runs),
        "fault_free_wall_s": summary([r["wall_s"] for r in free], "s"),
        "faults_wall_s": summary([r["wall_s"] for r in hit], "s"),
        "fault_free_aws_calls": summary([r["aws_calls"] for r in free], "calls"),
        "faults_aws_calls": summary([r["aws_calls"] for r in hit], "calls"),
        "extra_aws_calls_pct": summary([100.0 * (h["aws_calls"] - f["aws_calls"]) / f["aws_calls"]
                                        for f, h in zip(free, hit)], "%"),
        "faults_met": summary([r["faults_met"] for r in hit], "faults"),
        "deliveries": {"fault_free": [r["deliveries"] for r in free], "faults": [r["deliveries"] for r in hit]},
    }


def finish(results, started):
    if LOAD:
        LOAD.stop()
    return report.finish(results, started, PHASES, OUT_DIR, ROOT)


if __name__ == "__main__":
    sys.exit(main())
