"""`make bench`'s figure 10 (issue 31): a tenant's AWS bill in dollars per month.

The units are measured (tests/e2e aws_bill::bench_a_tenants_aws_bill: a small tenant through
the handlers on moto, every AWS call billed at the IAM gate by DynamoDB's, SQS's and Lambda's
rules); this file holds the prices, in one place, and turns units into dollars. The large
tenant (the large preset with 10 mappings: 2,000 companies, 46,875 end users) is too big for
moto (which stores about a thousand items a second: its Re-sync all is 6.6 million items), so
its bill is modelled: the small tenant's measured units per item written, per chunk and per
Pendo row, times the large tenant's counts from figure 4 (the same core, on the embedded store).
"""

# On-demand prices, us-east-1, as AWS publishes them (DynamoDB after its 2024-11-01 price
# reduction; Lambda on arm64, the template's default). Free tiers are left out. Checked against
# aws.amazon.com/{dynamodb,lambda,sqs}/pricing; change them here only.
PRICES = {
    "region": "us-east-1",
    "as_of": "2025 (the prices AWS published then; unchanged as far as this project knows on 2026-12-07)",
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "dynamodb_storage_gb_month": 0.25,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_s": 0.0000133334,
    "sqs_request": 0.40 / 1e6,
}

# The functions' memory (infra/template.yaml), in GB.
MEMORY_GB = {"fetch": 0.5, "resync": 0.25, "scheduler": 0.25}

# Pendo's latency, which the local simulator does not have (issue 28's model): a fetch
# invocation waits this long for each call and each thousand rows on real Pendo.
PENDO_S_PER_CALL = 2.0
PENDO_S_PER_1000_ROWS = 0.05

DAYS_PER_MONTH = 30

# Figure 4's tenant: ten mappings, one chunk each a day.
LARGE_MAPPINGS = 10


def lambda_gb_s(phase):
    """GB-seconds of a phase: each function's measured wall time at its memory, plus the
    modelled Pendo wait of the fetch invocations."""
    wall = sum(MEMORY_GB[f] * v["wall_s"] for f, v in phase["lambda"].items())
    pendo = PENDO_S_PER_CALL * phase["pendo_calls"] + PENDO_S_PER_1000_ROWS * phase["pendo_rows"] / 1000
    return wall + MEMORY_GB["fetch"] * pendo


def dollars(phase, per_day=1.0):
    """The dollars of a phase (`per_day` scales the counts of a multi-day phase to one day)."""
    p = PRICES
    invocations = sum(v["invocations"] for v in phase["lambda"].values()) * per_day
    sqs = (phase["functions_sqs_requests"] + phase["event_source_sqs_requests"]) * per_day
    return {
        "dynamodb_writes": phase["write_units"] * p["dynamodb_write_unit"],
        "dynamodb_reads": phase["read_units"] * p["dynamodb_read_unit"],
        "sqs": sqs * p["sqs_request"],
        "lambda_requests": invocations * p["lambda_request"],
        "lambda_gb_s": lambda_gb_s(phase) * per_day * p["lambda_gb_s"],
    }


def storage_gb(storage):
    return sum(t["bytes"] for t in storage.values()) / 2**30


def month(steady, storage):
    """A steady month: 30 daily runs and the tables' storage."""
    days = steady["days"]
    day = dollars(steady, per_day=1.0 / days)
    out = {k: v * DAYS_PER_MONTH for k, v in day.items()}
    out["dynamodb_storage"] = storage_gb(storage) * PRICES["dynamodb_storage_gb_month"]
    out["total"] = sum(out.values())
    return out


def measured(b):
    """The small tenant's bill, as measured."""
    steady = b["steady"]
    return {
        "tenant": f"small preset: {b['companies']} companies, {b['end_users']} end users, "
                  f"{b['mappings']} mappings, {b['days']} days",
        "how": "measured through the handlers on moto",
        "steady_day": {
            "write_units": steady["write_units"],
            "new_day_write_units": steady["new_day_write_units"],
            "write_units_over_new_day": steady["write_units"] / max(steady["new_day_write_units"], 1e-9),
            "read_units": steady["read_units"],
            # A chunk's own read of the directory (the fetch function), and the run's planning
            # (the resync function: the directory once per target, for the days it may recover).
            "directory_read_units_per_chunk": steady["directory_read_units_by_function"].get("fetch", 0)
            / max(steady["chunks"], 1),
            "planning_directory_read_units_per_run": steady["directory_read_units_by_function"].get("resync", 0)
            / steady["days"],
            "sqs_requests": (steady["functions_sqs_requests"] + steady["event_source_sqs_requests"]) / steady["days"],
            "lambda_invocations": sum(v["invocations"] for v in steady["lambda"].values()) / steady["days"],
            "lambda_gb_s": lambda_gb_s(steady) / steady["days"],
        },
        "resync_all": {
            "write_units": b["resync_all"]["write_units"],
            "read_units": b["resync_all"]["read_units"],
            "sqs_requests": b["resync_all"]["functions_sqs_requests"] + b["resync_all"]["event_source_sqs_requests"],
            "lambda_invocations": sum(v["invocations"] for v in b["resync_all"]["lambda"].values()),
            "lambda_gb_s": lambda_gb_s(b["resync_all"]),
            "dollars": sum(dollars(b["resync_all"]).values()),
        },
        "storage_gb": storage_gb(b["storage_after_steady"]),
        "storage_growth_gb_per_month": (storage_gb(b["storage_after_steady"]) - storage_gb(
            b["storage_after_resync"])) / steady["days"] * DAYS_PER_MONTH,
        "month": month(steady, b["storage_after_steady"]),
    }


def modelled_large(b, fig4, fig6=None):
    """The large tenant's bill: the small tenant's units per item, chunk and row times the
    large tenant's counts (figure 4: 10 mappings, 90 days)."""
    small_steady = b["steady"]
    days = small_steady["days"]
    small_chunks = max(small_steady["chunks"], 1)
    chunks_day = LARGE_MAPPINGS
    large_values_day = fig4["values_written"] / 90
    large_activities_day = fig4["activities_written"] / 90
    large_items_day = large_values_day + large_activities_day
    new_day_units = large_values_day + 2 * large_activities_day
    # Units by what they are: values, activity records and manifests grow with the day's
    # items; the run's bookkeeping (the config table) with its chunks; the directory's reads
    # with the chunks (the stamp) and, for the planning's read, with the directory (figure 6:
    # the large directory is 27.5 units eventually consistent, 55 strongly).
    small_items_day = small_steady["new_day_values"] + small_steady["new_day_activities"]
    items = large_items_day / max(small_items_day, 1e-9)
    per_chunk = chunks_day * days / small_chunks
    w, r = small_steady["write_units_by_kind"], small_steady["read_units_by_kind"]
    # Manifests: a small tenant's are under 1 KB, each write billed a whole unit, so they do not
    # scale with items; the large tenant's are billed by their bytes: figure 6 measures a
    # daily chunk's manifest units per value written (2,000 companies x 2 metrics), and a
    # manifest is read (4 look-back days, strongly consistent) at a unit per 4 KB of it.
    manifest_units_per_item = (fig6["manifest_units_first_write"] / fig6["values"]) if fig6 else 0.01
    manifest_bytes_per_item = manifest_units_per_item * 1024 / 2
    writes = w.get("values_and_activity", 0) * items + manifest_units_per_item * large_items_day \
        + w.get("config", 0) * per_chunk + w.get("directory", 0)
    planning = small_steady["directory_read_units_by_function"].get("resync", 0) / days
    # The data table's other reads (unmatched identities) are per mapping and run.
    reads = large_items_day * manifest_bytes_per_item * 4 / 4096 \
        + (r.get("values_and_activity", 0) + r.get("config", 0)) * per_chunk \
        + (r.get("directory", 0) - planning) * per_chunk + (55 if planning > 0 else 0)
    rows_day = fig4["rows_read"] / 90
    small_sqs = small_steady["functions_sqs_requests"] + small_steady["event_source_sqs_requests"]
    fetch_wall_per_row = small_steady["lambda"]["fetch"]["wall_s"] / max(small_steady["pendo_rows"], 1)
    steady_day = {
        "write_units": writes,
        "read_units": reads,
        "functions_sqs_requests": small_sqs / small_chunks * chunks_day,
        "event_source_sqs_requests": 0,
        "lambda": {
            "fetch": {"invocations": chunks_day, "wall_s": fetch_wall_per_row * rows_day},
            "resync": {"invocations": 1, "wall_s": small_steady["lambda"]["resync"]["wall_s"] / days},
            "scheduler": {"invocations": 1, "wall_s": small_steady["lambda"]["scheduler"]["wall_s"] / days},
        },
        "pendo_calls": chunks_day,
        "pendo_rows": rows_day,
        "days": 1,
        "new_day_write_units": new_day_units,
    }
    bytes_per_item = b["storage_after_steady"]["data"]["bytes"] / max(b["storage_after_steady"]["data"]["items"], 1)
    storage = {"data": {"bytes": bytes_per_item * large_items_day * 90}}
    small_resync_items = b["resync_all"]["values_written"] + b["resync_all"]["activities_written"]
    large_resync_items = fig4["values_written"] + fig4["activities_written"]
    resync_writes = b["resync_all"]["write_units"] / max(small_resync_items, 1) * large_resync_items
    return {
        "tenant": f"large preset: 2,000 companies, 46,875 end users, {LARGE_MAPPINGS} mappings, 90 days",
        "how": "modelled: the small tenant's measured units (values, activity records and manifests "
               "per item of the day, the run's bookkeeping per chunk, Lambda time per Pendo row), "
               "times figure 4's counts of the large tenant",
        "steady_day": {
            "write_units": writes,
            "new_day_write_units": new_day_units,
            "write_units_over_new_day": writes / new_day_units,
            "read_units": reads,
            "lambda_gb_s": lambda_gb_s(steady_day),
        },
        "resync_all": {
            "write_units": resync_writes,
            "dollars": resync_writes * PRICES["dynamodb_write_unit"],
        },
        "storage_gb": storage_gb(storage),
        "storage_growth_gb_per_month": storage_gb(storage) / 90 * DAYS_PER_MONTH,
        "month": month(steady_day, storage),
    }

