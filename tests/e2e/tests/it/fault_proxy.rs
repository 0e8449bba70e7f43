//! AWS's failures, injected between the functions' SDK clients and moto. moto never throttles,
//! never leaves items unprocessed, never cancels a transaction for a conflict and never fails
//! a call; DynamoDB and SQS do all of these in production. The IAM gate (`iam_gate.rs`), the
//! proxy every function's client talks to, applies these rules to the calls of the functions
//! (never to a test's own setup and assertions), each as the real service answers:
//!
//! | fault | answer (as the service gives it) |
//! |---|---|
//! | `Throughput` | DynamoDB 400 `ProvisionedThroughputExceededException` (a hot partition) |
//! | `Throttling` | 400 `ThrottlingException` (DynamoDB; SQS with its query-compatible code) |
//! | `RequestLimit` | DynamoDB 400 `RequestLimitExceeded` (the account's throughput limit) |
//! | `Internal` | 500 `InternalServerError` (SQS: `InternalError`) |
//! | `Unavailable` | 503 `ServiceUnavailable` |
//! | `Partial` | `BatchWriteItem`: the first half of the items written, the rest returned in `UnprocessedItems`; `BatchGetItem`: the first half of the keys read, the rest in `UnprocessedKeys` (one item alone: `ProvisionedThroughputExceededException`, as DynamoDB answers a batch of which nothing could be done) |
//! | `Conflict` | `TransactWriteItems` cancelled: `TransactionCanceledException` with `TransactionConflict` among its cancellation reasons, nothing written |
//! | `Slow(d)` | the call held `d` (past the SDK's attempt timeout), then passed on: it may apply after the caller gave up |
//! | `LostAnswer` | the call passed on and applied, then the connection cut before any answer |
//!
//! Which calls: a rule names the service and optionally the operation, and picks calls either
//! the first `n` that match, or a share of them (`per_mille`, from a seeded sequence, so a run
//! is reproducible). A picked call keeps failing for `attempts` attempts (the SDK resends the
//! same body): `attempts` 1 is a fault the SDK's retry cures; [`BEYOND_SDK`] is one that
//! outlasts the SDK's retries and reaches the code.
//!
//! One rule of DynamoDB that moto lacks is kept here too: a `TransactWriteItems` sent again with
//! the same `ClientRequestToken` (the SDK fills one in and keeps it across its retries) returns
//! the first answer without writing again (DynamoDB's idempotency window is 10 minutes).

use crate::iam_gate::Function;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// Attempts that outlast the SDK's retries (`aws_env::AWS_MAX_ATTEMPTS`).
pub(crate) const BEYOND_SDK: u32 = pendo_sync::aws_env::AWS_MAX_ATTEMPTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    Throughput,
    Throttling,
    RequestLimit,
    Internal,
    Unavailable,
    Partial,
    Conflict,
    Slow(Duration),
    LostAnswer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    DynamoDb,
    Sqs,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick {
    /// The first `n` calls that match.
    First(u32),
    /// About this many calls per thousand that match.
    PerMille(u32),
}

/// One fault rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) service: Service,
    /// The operation (`BatchWriteItem`, `SendMessageBatch`…); any of the service's when `None`.
    pub(crate) op: Option<&'static str>,
    pub(crate) fault: Fault,
    pub(crate) pick: Pick,
    /// Attempts of a picked call that meet the fault (its first and the SDK's resends).
    pub(crate) attempts: u32,
    /// The functions whose calls may be picked (all when empty).
    pub(crate) functions: Vec<Function>,
}

impl Rule {
    pub(crate) fn new(service: Service, op: &'static str, fault: Fault, pick: Pick) -> Rule {
        Rule {
            service,
            op: Some(op),
            fault,
            pick,
            attempts: 1,
            functions: Vec::new(),
        }
    }

    /// Any operation of the service.
    pub(crate) fn any(service: Service, fault: Fault, pick: Pick) -> Rule {
        Rule {
            op: None,
            ..Rule::new(service, "", fault, pick)
        }
    }

    pub(crate) fn only(mut self, functions: &[Function]) -> Rule {
        self.functions = functions.to_vec();
        self
    }

    pub(crate) fn attempts(mut self, n: u32) -> Rule {
        self.attempts = n;
        self
    }
}

/// What the proxy does with one call.
pub(crate) enum Action {
    /// Answer this without passing the call on.
    Answer(Response),
    /// Pass on this body (the original, or part of a batch) and merge the answer.
    Forward { body: Bytes, then: Then },
}

/// What to do after passing a call on.
pub(crate) enum Then {
    Answer,
    /// Put the held-back part of a batch into the answer's unprocessed items/keys.
    Unprocessed {
        field: &'static str,
        rest: Value,
    },
    /// Cut the connection instead of answering (a transaction's answer remembered under its
    /// token first: the call did apply).
    Cut(Option<String>),
    /// Remember the answer under the transaction's token.
    Remember(String),
}

#[derive(Default)]
pub(crate) struct Faults {
    rules: Vec<(Rule, RuleState)>,
    /// A picked call's fault for its next attempts: (call's hash) → (rule index, attempts left).
    sticky: HashMap<u64, (usize, u32)>,
    /// Transactions' answers by their `ClientRequestToken`.
    tokens: HashMap<String, (StatusCode, String)>,
    /// Transactions passed on and not answered yet, by their token.
    in_flight: std::collections::HashSet<String>,
    injected: BTreeMap<(String, Fault), u32>,
}

#[derive(Default)]
struct RuleState {
    seen: u32,
    picked: u32,
    seed: u64,
}

impl Faults {
    pub(crate) fn set(&mut self, rules: Vec<Rule>) {
        self.rules = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i as u64 + 1);
                (
                    r,
                    RuleState {
                        seed,
                        ..Default::default()
                    },
                )
            })
            .collect();
        self.sticky.clear();
    }

    /// Faults injected so far: (operation, fault) → attempts that met it.
    pub(crate) fn injected(&self) -> BTreeMap<(String, Fault), u32> {
        self.injected.clone()
    }

    /// Decides a call from a function: `target` is its `X-Amz-Target`.
    pub(crate) fn decide(
        &mut self,
        function: Function,
        target: &str,
        body: &Bytes,
    ) -> (Action, Option<Duration>) {
        let (service, op) = match target.split_once('.') {
            Some((s, op)) if s.starts_with("DynamoDB") => (Service::DynamoDb, op),
            Some(("AmazonSQS", op)) => (Service::Sqs, op),
            _ => return (forward(body), None),
        };
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        // DynamoDB's idempotent transactions.
        let token = (op == "TransactWriteItems")
            .then(|| json["ClientRequestToken"].as_str().map(str::to_string))
            .flatten();
        if let Some((status, answer)) = token.as_ref().and_then(|t| self.tokens.get(t)) {
            return (
                Action::Answer(json_response(*status, answer.clone(), None)),
                None,
            );
        }
        // The same token while the first is still at work (an attempt the SDK gave up on):
        // DynamoDB answers `TransactionInProgressException`, which the SDK retries.
        if token.as_ref().is_some_and(|t| self.in_flight.contains(t)) {
            let body = json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionInProgressException",
                "message": "Transaction is in progress",
            });
            let r = json_response(StatusCode::BAD_REQUEST, body.to_string(), None);
            return (Action::Answer(r), None);
        }
        let call = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            target.hash(&mut h);
            body.hash(&mut h);
            h.finish()
        };
        // A picked call meets its fault for its `attempts`; the attempt after passes.
        let rule = match self.sticky.get_mut(&call) {
            Some((rule, left)) if *left > 0 => {
                *left -= 1;
                Some(*rule)
            }
            Some(_) => {
                self.sticky.remove(&call);
                None
            }
            None => self.pick(function, service, op).inspect(|r| {
                let attempts = self.rules[*r].0.attempts;
                self.sticky.insert(call, (*r, attempts.saturating_sub(1)));
            }),
        };
        let Some(rule) = rule else {
            return (self.passed_on(token, body, Then::Answer), None);
        };
        let fault = self.rules[rule].0.fault;
        *self.injected.entry((op.to_string(), fault)).or_default() += 1;
        let action = match fault {
            Fault::Partial => partial(op, &json, body),
            Fault::Conflict if op == "TransactWriteItems" => {
                Action::Answer(transaction_conflict(&json))
            }
            Fault::Slow(d) => return (self.passed_on(token, body, Then::Answer), Some(d)),
            Fault::LostAnswer => self.passed_on(token, body, Then::Cut(None)),
            other => Action::Answer(error(service, other)),
        };
        (action, None)
    }

    /// The call passed on whole; a transaction's token is then at work until its answer.
    fn passed_on(&mut self, token: Option<String>, body: &Bytes, then: Then) -> Action {
        let then = match (token, then) {
            (Some(t), Then::Cut(_)) => {
                self.in_flight.insert(t.clone());
                Then::Cut(Some(t))
            }
            (Some(t), _) => {
                self.in_flight.insert(t.clone());
                Then::Remember(t)
            }
            (None, then) => then,
        };
        Action::Forward {
            body: body.clone(),
            then,
        }
    }

    /// Remembers a transaction's answer under its token (only a success is kept, as
    /// DynamoDB answers a resent token with the first call's result).
    pub(crate) fn remember(&mut self, token: String, status: StatusCode, body: &[u8]) {
        self.in_flight.remove(&token);
        if status.is_success() {
            self.tokens
                .insert(token, (status, String::from_utf8_lossy(body).into_owned()));
        }
    }

    fn pick(&mut self, function: Function, service: Service, op: &str) -> Option<usize> {
        for (i, (rule, state)) in self.rules.iter_mut().enumerate() {
            if rule.service != service
                || rule.op.is_some_and(|o| o != op)
                || !(rule.functions.is_empty() || rule.functions.contains(&function))
            {
                continue;
            }
            state.seen += 1;
            let hit = match rule.pick {
                Pick::First(n) => state.picked < n,
                Pick::PerMille(p) => {
                    // splitmix64: a reproducible sequence per rule.
                    state.seed = state.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = state.seed;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    (z % 1000) < u64::from(p)
                }
            };
            if hit {
                state.picked += 1;
                return Some(i);
            }
        }
        None
    }
}

fn forward(body: &Bytes) -> Action {
    Action::Forward {
        body: body.clone(),
        then: Then::Answer,
    }
}

fn json_response(status: StatusCode, body: String, query_error: Option<&str>) -> Response {
    let mut r = (status, body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        "content-type",
        "application/x-amz-json-1.0".parse().unwrap(),
    );
    if let Some(q) = query_error {
        headers.insert("x-amzn-query-error", q.parse().unwrap());
    }
    r
}

/// An error answer as the service gives it.
fn error(service: Service, fault: Fault) -> Response {
    match service {
        Service::DynamoDb => {
            let (status, kind, message) = match fault {
                Fault::Throughput | Fault::Partial => (
                    400,
                    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                ),
                Fault::Throttling => (
                    400,
                    "com.amazon.coral.availability#ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                ),
                Fault::RequestLimit => (
                    400,
                    "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
                    "Throughput exceeds the current throughput limit for your account.",
                ),
                Fault::Unavailable => (
                    503,
                    "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                    "Service unavailable",
                ),
                _ => (
                    500,
                    "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "Internal server error",
                ),
            };
            json_response(
                StatusCode::from_u16(status).unwrap(),
                json!({"__type": kind, "message": message}).to_string(),
                None,
            )
        }
        Service::Sqs => {
            let (status, code, fault_side) = match fault {
                Fault::Throttling | Fault::Throughput | Fault::RequestLimit => {
                    (400, "ThrottlingException", "Sender")
                }
                Fault::Unavailable => (503, "ServiceUnavailable", "Receiver"),
                _ => (500, "InternalError", "Receiver"),
            };
            json_response(
                StatusCode::from_u16(status).unwrap(),
                json!({"__type": format!("com.amazonaws.sqs#{code}"), "message": code}).to_string(),
                Some(&format!("{code};{fault_side}")),
            )
        }
    }
}

/// A transaction cancelled by a conflict on its first item.
fn transaction_conflict(body: &Value) -> Response {
    let n = body["TransactItems"].as_array().map_or(1, Vec::len);
    let reasons: Vec<Value> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = (0..n)
        .map(|i| {
            if i == 0 {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect();
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
            "CancellationReasons": reasons,
        })
        .to_string(),
        None,
    )
}

/// Half a batch passed on, the rest held back as unprocessed.
fn partial(op: &str, json: &Value, body: &Bytes) -> Action {
    let Some(tables) = json["RequestItems"].as_object() else {
        return forward(body);
    };
    let mut sent = json.clone();
    let mut rest = serde_json::Map::new();
    let mut total = 0;
    for (table, request) in tables {
        match op {
            "BatchWriteItem" => {
                let items = request.as_array().cloned().unwrap_or_default();
                total += items.len();
                let keep = items.len().div_ceil(2);
                sent["RequestItems"][table] = Value::Array(items[..keep].to_vec());
                if items.len() > keep {
                    rest.insert(table.clone(), Value::Array(items[keep..].to_vec()));
                }
            }
            "BatchGetItem" => {
                let keys = request["Keys"].as_array().cloned().unwrap_or_default();
                total += keys.len();
                let keep = keys.len().div_ceil(2);
                sent["RequestItems"][table]["Keys"] = Value::Array(keys[..keep].to_vec());
                if keys.len() > keep {
                    let mut held = request.clone();
                    held["Keys"] = Value::Array(keys[keep..].to_vec());
                    rest.insert(table.clone(), held);
                }
            }
            _ => return forward(body),
        }
    }
    if total <= 1 {
        return Action::Answer(error(Service::DynamoDb, Fault::Throughput));
    }
    let field = if op == "BatchWriteItem" {
        "UnprocessedItems"
    } else {
        "UnprocessedKeys"
    };
    Action::Forward {
        body: Bytes::from(sent.to_string()),
        then: Then::Unprocessed {
            field,
            rest: Value::Object(rest),
        },
    }
}

/// The held-back part of a batch put into moto's answer.
pub(crate) fn with_unprocessed(answer: &[u8], field: &str, rest: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(answer).unwrap_or_else(|_| json!({}));
    v[field] = rest;
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_batch_write_passes_half_and_holds_the_rest() {
        let body = json!({"RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "1"}}}},
            {"PutRequest": {"Item": {"pk": {"S": "2"}}}}, {"PutRequest": {"Item": {"pk": {"S": "3"}}}}]}});
        let Action::Forward {
            body: sent,
            then: Then::Unprocessed { field, rest },
        } = partial("BatchWriteItem", &body, &Bytes::from(body.to_string()))
        else {
            panic!("not a partial forward")
        };
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent["RequestItems"]["t"].as_array().unwrap().len(), 2);
        assert_eq!(field, "UnprocessedItems");
        assert_eq!(rest["t"].as_array().unwrap().len(), 1);
        assert_eq!(rest["t"][0]["PutRequest"]["Item"]["pk"]["S"], "3");
    }

    #[test]
    fn first_n_picks_n_calls_and_a_picked_call_keeps_failing_for_its_attempts() {
        let mut f = Faults::default();
        f.set(vec![Rule::new(
            Service::DynamoDb,
            "GetItem",
            Fault::Throughput,
            Pick::First(1),
        )
        .attempts(2)]);
        let body = Bytes::from_static(b"{\"TableName\":\"t\"}");
        let other = Bytes::from_static(b"{\"TableName\":\"u\"}");
        let t = "DynamoDB_20120810.GetItem";
        let answered = |a: &Action| matches!(a, Action::Answer(_));
        assert!(answered(&f.decide(Function::Fetch, t, &body).0), "picked");
        assert!(
            answered(&f.decide(Function::Fetch, t, &body).0),
            "its resend"
        );
        assert!(
            !answered(&f.decide(Function::Fetch, t, &body).0),
            "its third attempt passes"
        );
        assert!(
            !answered(&f.decide(Function::Fetch, t, &other).0),
            "only the first call is picked"
        );
        assert!(!answered(
            &f.decide(Function::Fetch, "DynamoDB_20120810.PutItem", &body)
                .0
        ));
        assert_eq!(
            f.injected(),
            BTreeMap::from([(("GetItem".to_string(), Fault::Throughput), 2)])
        );
    }
}
