#!/usr/bin/env python3
"""What cfn-lint does not check in infra/template.yaml, checked here (run by `make lint-infra`).

- every function: Runtime provided.al2023, Architectures the `Architecture` parameter (arm64 by
  default, or x86_64), Handler bootstrap, built by
  cargo-lambda (Metadata BuildMethod rust-cargolambda) from a workspace binary that exists;
- SQS event sources: FunctionResponseTypes exactly [ReportBatchItemFailures], BatchSize <= 10;
- the schedule expression (the parameter's default, or a literal) is a valid cron()/rate();
- fetch has reserved concurrency, equal to its SQS event source's maximum concurrency, and
  works one chunk at a time (FETCH_CONCURRENCY=1), so FetchConcurrency bounds the chunks
  calling Pendo;
- every queue a function consumes has a redrive policy to a dead-letter queue, and every
  dead-letter queue has an alarm on its depth;
- every function's visibility timeout covers its timeout;
- the tables' key schemas and indexes are what shared/src/store/dynamo/tables.rs creates, with
  on-demand billing, point-in-time recovery and encryption;
- IAM: no wildcard action or resource in the functions' inline policies.

Usage: check_template.py [TEMPLATE] (default infra/template.yaml). Exit status 1 on any failure,
listing each. Needs cfn-lint installed (its YAML loader understands the short-form tags).
"""

import re
import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parent.parent
TABLES_RS = ROOT / "shared" / "src" / "store" / "dynamo" / "tables.rs"

CRON_FIELD = r"[0-9A-Za-z*?,/#L\-]+"
CRON = re.compile(r"^cron\((" + CRON_FIELD + r" ){5}" + CRON_FIELD + r"\)$")
RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\)$")


def schedule_ok(expr: str) -> bool:
    """EventBridge's rule syntax: rate(N unit) or cron with six fields, one of day-of-month and
    day-of-week being '?'."""
    if RATE.match(expr):
        return True
    if not CRON.match(expr):
        return False
    fields = expr[len("cron(") : -1].split(" ")
    minutes, hours, dom, _month, dow, _year = fields
    if (dom == "?") == (dow == "?"):
        return False
    for value, top in ((minutes, 59), (hours, 23)):
        for part in re.split(r"[,/\-]", value):
            if part.isdigit() and int(part) > top:
                return False
    return True


def ref_name(value):
    """The resource a {Ref: X} or {Fn::GetAtt: [X, Arn]} points at, else None."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else str(att).split(".")[0]
    return None


def rust_table_specs():
    """[(role, [(index, pk, sk), ...])] in the order specs() returns them, from tables.rs."""
    text = TABLES_RS.read_text()
    body = text.split("pub fn specs", 1)
    if len(body) != 2:
        raise SystemExit(f"{TABLES_RS}: no `pub fn specs` found; update check_template.py")
    specs = re.findall(r"name:\s*tables\.(\w+)\.clone\(\),\s*gsis:\s*vec!\[(.*?)\]", body[1], re.S)
    if len(specs) != 2:
        raise SystemExit(f"{TABLES_RS}: expected two table specs in specs(); update check_template.py")
    out = []
    for role, gsis in specs:
        tuples = re.findall(r'\(\s*"(\w+)"\s*,\s*"(\w+)"\s*,\s*"(\w+)"\s*\)', gsis)
        out.append((role, tuples))
    if 'key_schema("pk", "sk")' not in text:
        raise SystemExit(f"{TABLES_RS}: tables are no longer keyed pk/sk; update check_template.py")
    return out


def check(t) -> list:
    errors = []
    err = errors.append
    res = t.get("Resources", {})
    params = t.get("Parameters", {})
    glob = t.get("Globals", {}).get("Function", {})
    functions = {k: v for k, v in res.items() if v.get("Type") == "AWS::Serverless::Function"}
    queues = {k: v for k, v in res.items() if v.get("Type") == "AWS::SQS::Queue"}
    alarms = [v for v in res.values() if v.get("Type") == "AWS::CloudWatch::Alarm"]
    tables = {k: v for k, v in res.items() if v.get("Type") == "AWS::DynamoDB::Table"}

    arch = params.get("Architecture", {})
    if arch.get("AllowedValues") != ["arm64", "x86_64"] or arch.get("Default") != "arm64":
        err("the Architecture parameter is not arm64 (default) or x86_64")
    binaries = {p.parent.parent.name for p in (ROOT / "functions").glob("*/src/main.rs")}
    want_fns = {"scheduler", "fetch", "resync", "configurator"}
    built = {}
    for name, fn in functions.items():
        props = fn.get("Properties", {})
        prop = lambda k: props.get(k, glob.get(k))  # noqa: E731
        if prop("Runtime") != "provided.al2023":
            err(f"{name}: Runtime is {prop('Runtime')!r}, not provided.al2023")
        if prop("Architectures") != [{"Ref": "Architecture"}]:
            err(f"{name}: Architectures is {prop('Architectures')!r}, not [the Architecture parameter]")
        if prop("Handler") != "bootstrap":
            err(f"{name}: Handler is {prop('Handler')!r}, not bootstrap")
        meta = fn.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            err(f"{name}: Metadata.BuildMethod is not rust-cargolambda")
        binary = meta.get("BuildProperties", {}).get("Binary")
        if binary not in binaries:
            err(f"{name}: BuildProperties.Binary {binary!r} is not a crate under functions/")
        built[binary] = (name, props)
        for pol in props.get("Policies", []):
            for st in pol.get("Statement", []) if isinstance(pol, dict) else []:
                acts = st.get("Action", [])
                acts = acts if isinstance(acts, list) else [acts]
                rs = st.get("Resource", [])
                rs = rs if isinstance(rs, list) else [rs]
                if any("*" in a for a in acts) or any(r == "*" for r in rs):
                    err(f"{name}: a policy statement uses a wildcard action or resource")
    if set(built) != want_fns:
        err(f"functions built: {sorted(built)}, want {sorted(want_fns)}")

    # SQS event sources, queues, DLQs and alarms.
    consumed = {}
    for name, fn in functions.items():
        timeout = fn["Properties"].get("Timeout", glob.get("Timeout", 3))
        for ev_name, ev in fn["Properties"].get("Events", {}).items():
            p = ev.get("Properties", {})
            if ev.get("Type") == "SQS":
                if p.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                    err(f"{name}.{ev_name}: FunctionResponseTypes is {p.get('FunctionResponseTypes')!r}")
                if not 1 <= int(p.get("BatchSize", 10)) <= 10:
                    err(f"{name}.{ev_name}: BatchSize over 10")
                q = ref_name(p.get("Queue"))
                if q not in queues:
                    err(f"{name}.{ev_name}: Queue is not a queue of this template")
                else:
                    consumed[q] = (name, timeout)
            if ev.get("Type") == "Schedule":
                expr = p.get("Schedule")
                if isinstance(expr, dict) and "Ref" in expr:
                    expr = params.get(expr["Ref"], {}).get("Default")
                if not isinstance(expr, str) or not schedule_ok(expr):
                    err(f"{name}.{ev_name}: schedule expression {expr!r} is not a valid cron()/rate()")
    if not any(
        ev.get("Type") == "Schedule" for fn in functions.values() for ev in fn["Properties"].get("Events", {}).values()
    ):
        err("no function runs on a schedule")
    if len(consumed) != 2:
        err(f"queues consumed by functions: {sorted(consumed)}, want the fetch and resync queues")
    for q, (fn_name, timeout) in consumed.items():
        qp = queues[q].get("Properties", {})
        rp = qp.get("RedrivePolicy")
        if not rp:
            err(f"{q}: no RedrivePolicy")
            continue
        dlq = ref_name(rp.get("deadLetterTargetArn"))
        if dlq not in queues:
            err(f"{q}: deadLetterTargetArn is not a queue of this template")
        if "maxReceiveCount" not in rp:
            err(f"{q}: RedrivePolicy has no maxReceiveCount")
        alarmed = any(
            a["Properties"].get("Namespace") == "AWS/SQS"
            and a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and any(ref_name(d.get("Value")) == dlq for d in a["Properties"].get("Dimensions", []))
            for a in alarms
        )
        if not alarmed:
            err(f"{q}: its dead-letter queue {dlq} has no depth alarm")
        if int(qp.get("VisibilityTimeout", 30)) < int(timeout):
            err(f"{q}: VisibilityTimeout below {fn_name}'s Timeout {timeout}")

    fetch = built.get("fetch", (None, {}))[1]
    if "ReservedConcurrentExecutions" not in fetch:
        err("fetch: no ReservedConcurrentExecutions")
    # FetchConcurrency bounds the chunks calling Pendo only when each invocation works one
    # chunk at a time and the event source scales to the same bound.
    if str(fetch.get("Environment", {}).get("Variables", {}).get("FETCH_CONCURRENCY")) != "1":
        err("fetch: FETCH_CONCURRENCY must be 1 (one chunk in flight per invocation)")
    for ev in fetch.get("Events", {}).values():
        if ev.get("Type") == "SQS":
            most = ev.get("Properties", {}).get("ScalingConfig", {}).get("MaximumConcurrency")
            if most != fetch.get("ReservedConcurrentExecutions"):
                err("fetch: the SQS event source's MaximumConcurrency is not its reserved concurrency")

    # Tables: what tables.rs creates.
    want = dict(rust_table_specs())
    by_role = {"config": "ConfigTable", "data": "DataTable"}
    for role, gsis in want.items():
        logical = by_role.get(role)
        tp = tables.get(logical, {}).get("Properties")
        if tp is None:
            err(f"no {logical} for the {role} table")
            continue
        ks = [(k["AttributeName"], k["KeyType"]) for k in tp.get("KeySchema", [])]
        if ks != [("pk", "HASH"), ("sk", "RANGE")]:
            err(f"{logical}: KeySchema {ks}, want pk HASH, sk RANGE")
        got = sorted(
            (
                g["IndexName"],
                *[k["AttributeName"] for k in g["KeySchema"]],
                g.get("Projection", {}).get("ProjectionType"),
            )
            for g in tp.get("GlobalSecondaryIndexes", [])
        )
        if got != sorted((i, p, s, "ALL") for i, p, s in gsis):
            err(f"{logical}: indexes {got}, tables.rs creates {sorted(gsis)} (projection ALL)")
        attrs = {a["AttributeName"]: a["AttributeType"] for a in tp.get("AttributeDefinitions", [])}
        need = {"pk", "sk"} | {a for _, p, s in gsis for a in (p, s)}
        if attrs != {a: "S" for a in need}:
            err(f"{logical}: AttributeDefinitions {attrs}, want {sorted(need)} as S")
        if tp.get("BillingMode") != "PAY_PER_REQUEST":
            err(f"{logical}: not on-demand")
        if tp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            err(f"{logical}: point-in-time recovery is off")
        if tp.get("SSESpecification", {}).get("SSEEnabled") is not True:
            err(f"{logical}: SSE is not enabled")
    return errors


def self_test():
    assert schedule_ok("cron(0 6 * * ? *)")
    assert schedule_ok("rate(1 day)") and schedule_ok("rate(12 hours)")
    assert not schedule_ok("cron(0 6 * * *)"), "five fields (Unix cron)"
    assert not schedule_ok("cron(0 6 * * * *)"), "neither ? nor both"
    assert not schedule_ok("cron(0 25 * * ? *)"), "hour 25"
    assert not schedule_ok("rate(1 days)") and not schedule_ok("rate(0 days)")
    assert not schedule_ok("daily")


def mutations_are_caught(t):
    """Each mistake cfn-lint lets through, made on a copy of the template, must fail a check."""
    import copy

    def fn(tt, binary):
        for v in tt["Resources"].values():
            if v.get("Metadata", {}).get("BuildProperties", {}).get("Binary") == binary:
                return v["Properties"]
        raise AssertionError(binary)

    def sqs_event(tt, binary):
        return next(e for e in fn(tt, binary)["Events"].values() if e["Type"] == "SQS")["Properties"]

    def drop_alarm(tt):
        for k, v in list(tt["Resources"].items()):
            if v["Type"] == "AWS::CloudWatch::Alarm" and v["Properties"]["Namespace"] == "AWS/SQS":
                del tt["Resources"][k]
                return

    cases = {
        "runtime": lambda tt: fn(tt, "fetch").__setitem__("Runtime", "provided.al2"),
        "architecture": lambda tt: fn(tt, "resync").__setitem__("Architectures", ["x86_64"]),
        "architecture parameter": lambda tt: tt["Parameters"]["Architecture"].__setitem__(
            "AllowedValues", ["arm64", "armv7"]
        ),
        "response types": lambda tt: sqs_event(tt, "fetch").__setitem__(
            "FunctionResponseTypes", ["ReportBatchItemFailure"]
        ),
        "schedule": lambda tt: tt["Parameters"]["ScheduleExpression"].__setitem__("Default", "cron(0 6 * * *)"),
        "reserved concurrency": lambda tt: fn(tt, "fetch").pop("ReservedConcurrentExecutions"),
        "chunks in flight": lambda tt: fn(tt, "fetch")["Environment"]["Variables"].__setitem__(
            "FETCH_CONCURRENCY", "4"
        ),
        "fetch scaling": lambda tt: sqs_event(tt, "fetch").pop("ScalingConfig"),
        "redrive": lambda tt: tt["Resources"]["ResyncQueue"]["Properties"].pop("RedrivePolicy"),
        "dlq alarm": drop_alarm,
        "index": lambda tt: tt["Resources"]["DataTable"]["Properties"]["GlobalSecondaryIndexes"].pop(),
        "wildcard": lambda tt: fn(tt, "scheduler")["Policies"][0]["Statement"][0].__setitem__(
            "Action", ["dynamodb:*"]
        ),
    }
    for what, mutate in cases.items():
        tt = copy.deepcopy(t)
        mutate(tt)
        assert check(tt), f"a wrong {what} passed the checks"


def main():
    self_test()
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "infra" / "template.yaml"
    t = cfn_yaml.load(str(path))
    errors = check(t)
    if not errors:
        mutations_are_caught(t)
    for e in errors:
        print(f"check_template: {path}: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    print(f"check_template: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: ok")


if __name__ == "__main__":
    main()
