//! Evaluation of expressions against a JSON row. Total: type mismatches yield `null`
//! (or `false` for comparisons) instead of errors. Date functions use the subscription zone.

use chrono::{Datelike, Duration, NaiveDate, Timelike};
use chrono_tz::Tz;
use serde_json::Value;

use super::{BinOp, Expr, UnOp};
use crate::rng::fnv1a;
use crate::timeutil::{add_months, local_ms, local_naive, month_start, week_start, HOUR_MS};
use crate::value::{as_f64, cmp_values, get_path, num, to_display, truthy, values_equal};

/// Evaluation context: the simulator clock, time zone and the subscription's app ids.
#[derive(Debug, Clone)]
pub struct EvalCtx {
    /// `now()` in epoch ms.
    pub now_ms: i64,
    /// Subscription time zone.
    pub tz: Tz,
    /// All app ids (for `expandAppIds("*")`).
    pub app_ids: Vec<i64>,
}

static NULL: Value = Value::Null;

/// Evaluate `e` against `row`.
pub fn eval(e: &Expr, row: &Value, ctx: &EvalCtx) -> Value {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Path(p) => get_path(row, p).unwrap_or(&NULL).clone(),
        Expr::List(items) => Value::Array(items.iter().map(|i| eval(i, row, ctx)).collect()),
        Expr::Unary(UnOp::Not, x) => Value::Bool(!truthy(&eval(x, row, ctx))),
        Expr::Unary(UnOp::Neg, x) => match as_f64(&eval(x, row, ctx)) {
            Some(f) => num(-f),
            None => Value::Null,
        },
        Expr::Binary(op, a, b) => binary(*op, a, b, row, ctx),
        Expr::Call(name, args) => call(name, args, row, ctx),
    }
}

fn binary(op: BinOp, a: &Expr, b: &Expr, row: &Value, ctx: &EvalCtx) -> Value {
    match op {
        BinOp::And => {
            return Value::Bool(truthy(&eval(a, row, ctx)) && truthy(&eval(b, row, ctx)));
        }
        BinOp::Or => {
            return Value::Bool(truthy(&eval(a, row, ctx)) || truthy(&eval(b, row, ctx)));
        }
        _ => {}
    }
    let (x, y) = (eval(a, row, ctx), eval(b, row, ctx));
    let comparable = matches!(
        (&x, &y),
        (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
    );
    let ord = || cmp_values(&x, &y);
    match op {
        BinOp::Eq => Value::Bool(values_equal(&x, &y)),
        BinOp::Ne => Value::Bool(!values_equal(&x, &y)),
        BinOp::Lt => Value::Bool(comparable && ord().is_lt()),
        BinOp::Le => Value::Bool(comparable && ord().is_le()),
        BinOp::Gt => Value::Bool(comparable && ord().is_gt()),
        BinOp::Ge => Value::Bool(comparable && ord().is_ge()),
        BinOp::Add => match (&x, &y) {
            (Value::Number(_), Value::Number(_)) => arith(&x, &y, |p, q| Some(p + q)),
            (Value::String(_), Value::String(_) | Value::Number(_))
            | (Value::Number(_), Value::String(_)) => {
                Value::String(to_display(&x) + &to_display(&y))
            }
            _ => Value::Null,
        },
        BinOp::Sub => arith(&x, &y, |p, q| Some(p - q)),
        BinOp::Mul => arith(&x, &y, |p, q| Some(p * q)),
        BinOp::Div => arith(&x, &y, |p, q| (q != 0.0).then(|| p / q)),
        BinOp::Rem => arith(&x, &y, |p, q| (q != 0.0).then(|| p % q)),
        BinOp::And | BinOp::Or => Value::Null,
    }
}

fn arith(x: &Value, y: &Value, f: impl Fn(f64, f64) -> Option<f64>) -> Value {
    match (as_f64(x), as_f64(y)) {
        (Some(p), Some(q)) => f(p, q).map(num).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn int_arg(v: &Value) -> Option<i64> {
    as_f64(v)
        .filter(|f| f.is_finite() && f.abs() < 1e15)
        .map(|f| f as i64)
}

fn date_value(args: &[Value], ctx: &EvalCtx) -> Value {
    let nd = if let [Value::String(s)] = args {
        let s = s.trim();
        let day = s.get(..10).unwrap_or(s);
        match NaiveDate::parse_from_str(day, "%Y-%m-%d") {
            Ok(d) => d.and_hms_opt(0, 0, 0),
            Err(_) => None,
        }
    } else {
        let n: Vec<Option<i64>> = args.iter().map(int_arg).collect();
        let get = |i: usize, dflt: i64| n.get(i).copied().unwrap_or(Some(dflt));
        match (
            get(0, 0),
            get(1, 1),
            get(2, 1),
            get(3, 0),
            get(4, 0),
            get(5, 0),
        ) {
            (Some(y), Some(m), Some(d), Some(h), Some(mi), Some(s)) => {
                let ok = |v: i64, lo: i64, hi: i64| (lo..=hi).contains(&v);
                if ok(y, 1, 9999)
                    && ok(m, 1, 12)
                    && ok(d, 1, 31)
                    && ok(h, 0, 23)
                    && ok(mi, 0, 59)
                    && ok(s, 0, 59)
                {
                    NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
                        .and_then(|d| d.and_hms_opt(h as u32, mi as u32, s as u32))
                } else {
                    None
                }
            }
            _ => None,
        }
    };
    nd.map(|n| Value::from(local_ms(ctx.tz, n)))
        .unwrap_or(Value::Null)
}

fn date_add(t: &Value, n: &Value, unit: &Value, ctx: &EvalCtx) -> Value {
    let (Some(t), Some(n), Some(unit)) = (int_arg(t), int_arg(n), unit.as_str()) else {
        return Value::Null;
    };
    let shift_local = |f: &dyn Fn(NaiveDate) -> NaiveDate| {
        let l = local_naive(ctx.tz, t);
        Value::from(local_ms(ctx.tz, f(l.date()).and_time(l.time())))
    };
    match unit.trim_end_matches('s') {
        "hour" => Value::from(t.saturating_add(n.saturating_mul(HOUR_MS))),
        "minute" => Value::from(t.saturating_add(n.saturating_mul(60_000))),
        "day" => shift_local(&|d| d.checked_add_signed(Duration::days(n)).unwrap_or(d)),
        "week" => shift_local(&|d| d.checked_add_signed(Duration::weeks(n)).unwrap_or(d)),
        "month" => shift_local(&|d| add_months(d, n)),
        "year" => shift_local(&|d| add_months(d, n.saturating_mul(12))),
        _ => Value::Null,
    }
}

fn start_of_period(period: &Value, t: &Value, ctx: &EvalCtx) -> Value {
    let (Some(p), Some(t)) = (period.as_str(), int_arg(t)) else {
        return Value::Null;
    };
    let l = local_naive(ctx.tz, t);
    let d = l.date();
    let start = match p {
        "hourly" | "hour" => d.and_hms_opt(l.hour(), 0, 0),
        "daily" | "day" => d.and_hms_opt(0, 0, 0),
        "weekly" | "week" => week_start(d).and_hms_opt(0, 0, 0),
        "monthly" | "month" => month_start(d).and_hms_opt(0, 0, 0),
        "yearly" | "year" => d.with_ordinal(1).and_then(|d| d.and_hms_opt(0, 0, 0)),
        _ => None,
    };
    start
        .map(|n| Value::from(local_ms(ctx.tz, n)))
        .unwrap_or(Value::Null)
}

fn format_time(layout: &Value, t: &Value, ctx: &EvalCtx) -> Value {
    let (Some(layout), Some(t)) = (layout.as_str(), int_arg(t)) else {
        return Value::Null;
    };
    let l = local_naive(ctx.tz, t);
    let tokens: [(&str, String); 6] = [
        ("2006", format!("{:04}", l.year())),
        ("01", format!("{:02}", l.month())),
        ("02", format!("{:02}", l.day())),
        ("15", format!("{:02}", l.hour())),
        ("04", format!("{:02}", l.minute())),
        ("05", format!("{:02}", l.second())),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'scan: while !rest.is_empty() {
        for (tok, val) in &tokens {
            if let Some(r) = rest.strip_prefix(tok) {
                out.push_str(val);
                rest = r;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    Value::String(out)
}

fn call(name: &str, args: &[Expr], row: &Value, ctx: &EvalCtx) -> Value {
    if name == "if" {
        let c = eval(&args[0], row, ctx);
        return eval(if truthy(&c) { &args[1] } else { &args[2] }, row, ctx);
    }
    let v: Vec<Value> = args.iter().map(|a| eval(a, row, ctx)).collect();
    let arg = |i: usize| v.get(i).unwrap_or(&NULL);
    match name {
        "now" => Value::from(ctx.now_ms),
        "date" => date_value(&v, ctx),
        "dateAdd" => date_add(arg(0), arg(1), arg(2), ctx),
        "startOfPeriod" => start_of_period(arg(0), arg(1), ctx),
        "formatTime" => format_time(arg(0), arg(1), ctx),
        "isNull" | "isNil" => Value::Bool(arg(0).is_null()),
        "isEmpty" => Value::Bool(match arg(0) {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }),
        "contains" => Value::Bool(match (arg(0), arg(1)) {
            (Value::String(h), Value::String(n)) => h.contains(n.as_str()),
            (Value::Array(h), n) => h.iter().any(|x| values_equal(x, n)),
            _ => false,
        }),
        "startsWith" => Value::Bool(matches!((arg(0), arg(1)),
            (Value::String(h), Value::String(n)) if h.starts_with(n.as_str()))),
        "endsWith" => Value::Bool(matches!((arg(0), arg(1)),
            (Value::String(h), Value::String(n)) if h.ends_with(n.as_str()))),
        "len" => match arg(0) {
            Value::String(s) => Value::from(s.chars().count()),
            Value::Array(a) => Value::from(a.len()),
            Value::Object(o) => Value::from(o.len()),
            _ => Value::Null,
        },
        "toLowerCase" => arg(0)
            .as_str()
            .map(|s| Value::from(s.to_lowercase()))
            .unwrap_or(Value::Null),
        "toUpperCase" => arg(0)
            .as_str()
            .map(|s| Value::from(s.to_uppercase()))
            .unwrap_or(Value::Null),
        "toString" => match arg(0) {
            Value::Null => Value::Null,
            other => Value::String(to_display(other)),
        },
        "hash" => Value::from(fnv1a(to_display(arg(0)).as_bytes()) & 0xFFFF_FFFF),
        "expandAppIds" => match arg(0).as_str() {
            Some("*") => Value::Array(ctx.app_ids.iter().map(|a| Value::from(*a)).collect()),
            _ => Value::Null,
        },
        "identified" => Value::Bool(is_identified(arg(0))),
        "split" => match (arg(0), arg(1)) {
            (Value::String(s), Value::String(sep)) if !sep.is_empty() => {
                Value::Array(s.split(sep.as_str()).map(Value::from).collect())
            }
            _ => Value::Null,
        },
        "list" => Value::Array(v.clone()),
        "round" => as_f64(arg(0))
            .map(|f| num(f.round()))
            .unwrap_or(Value::Null),
        "floor" => as_f64(arg(0))
            .map(|f| num(f.floor()))
            .unwrap_or(Value::Null),
        "ceil" => as_f64(arg(0)).map(|f| num(f.ceil())).unwrap_or(Value::Null),
        "abs" => as_f64(arg(0)).map(|f| num(f.abs())).unwrap_or(Value::Null),
        "coalesce" => v
            .iter()
            .find(|x| !x.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Whether a visitor/account id value counts as identified: a non-empty string that is not
/// an anonymous `_PENDO_T_…` id (numbers count as identified).
pub fn is_identified(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty() && !s.starts_with("_PENDO_T_"),
        Value::Number(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse;
    use serde_json::json;

    fn ctx() -> EvalCtx {
        EvalCtx {
            now_ms: 1_795_176_000_000, // 2026-11-20T12:00:00Z
            tz: chrono_tz::America::New_York,
            app_ids: vec![-323232, 7],
        }
    }

    fn ev(src: &str, row: Value) -> Value {
        eval(&parse(src).unwrap(), &row, &ctx())
    }

    #[test]
    fn arithmetic_and_logic() {
        assert_eq!(ev("1 + 2 * 3", json!({})), json!(7));
        assert_eq!(ev("(1 + 2) * 3 % 4", json!({})), json!(1));
        assert_eq!(ev("7 / 2", json!({})), json!(3.5));
        assert_eq!(ev("1 / 0", json!({})), Value::Null);
        assert_eq!(ev("a.b > 2 && !c", json!({"a":{"b":3}})), json!(true));
        assert_eq!(ev("x == null", json!({})), json!(true));
        assert_eq!(
            ev("name + `-` + n", json!({"name":"a","n":1})),
            json!("a-1")
        );
        assert_eq!(ev("s < 3", json!({"s":"x"})), json!(false));
        assert_eq!(ev("-n", json!({"n":2})), json!(-2));
    }

    #[test]
    fn functions() {
        assert_eq!(ev("if(isNull(x), `none`, x)", json!({})), json!("none"));
        assert_eq!(
            ev(
                "contains(toLowerCase(e), \"acme\")",
                json!({"e":"Bob@ACME.com"})
            ),
            json!(true)
        );
        assert_eq!(
            ev("startsWith(v, `_PENDO_T_`)", json!({"v":"_PENDO_T_x"})),
            json!(true)
        );
        assert_eq!(ev("len(`abc`)", json!({})), json!(3));
        assert_eq!(ev("expandAppIds(\"*\")", json!({})), json!([-323232, 7]));
        assert_eq!(ev("toString(12)", json!({})), json!("12"));
        assert_eq!(ev("identified(v)", json!({"v":""})), json!(false));
    }

    #[test]
    fn dates_in_zone() {
        // 2026-11-01 is the DST change in New York: midnight is still EDT (UTC-4).
        assert_eq!(
            ev("date(2026, 11, 1)", json!({})),
            json!(1_793_505_600_000i64)
        );
        assert_eq!(
            ev("date(\"2026-11-02\")", json!({})),
            json!(1_793_595_600_000i64)
        );
        assert_eq!(
            ev("dateAdd(date(2026,11,1), 1, \"days\")", json!({})),
            json!(1_793_595_600_000i64)
        );
        assert_eq!(
            ev("startOfPeriod(\"daily\", now())", json!({})),
            json!(1_795_150_800_000i64)
        );
        assert_eq!(
            ev("startOfPeriod(\"weekly\", date(2026,11,5))", json!({})),
            json!(1_793_505_600_000i64)
        );
        assert_eq!(
            ev("formatTime(\"2006-01-02\", date(2026,11,5))", json!({})),
            json!("2026-11-05")
        );
        assert_eq!(ev("date(2026, 13, 1)", json!({})), Value::Null);
        assert_eq!(
            ev("now() - 1000 * 60 * 60 * 24", json!({})),
            json!(1_795_089_600_000i64)
        );
    }
}
