//! The HTTP adapter's unit tests, against a local server and the Pendo simulator: the limit on
//! calls in flight per subscription, and how error answers are classified (retried when cut).

use super::*;
use crate::domain::integration::{IntegrationKey, PendoDomain};
use crate::pendo::RowError;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Count(u64);
impl RowSink for Count {
    fn row(&mut self, _: &[u8]) -> Result<(), RowError> {
        self.0 += 1;
        Ok(())
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// A server that answers one row after 40 ms and records the most calls it saw at once.
async fn server() -> (String, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), max.clone());
    let app = axum::Router::new().route(
        "/api/v1/aggregation",
        axum::routing::post(move || {
            let (n, m) = (n.clone(), m.clone());
            async move {
                let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                r#"{"results":[{"a":1}]}"#
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), max)
}

fn conn(key: &str) -> Connection {
    Connection {
        domain: PendoDomain::Us,
        key: IntegrationKey::parse(key).unwrap(),
    }
}

#[tokio::test]
async fn calls_to_one_subscription_are_bounded_and_subscriptions_do_not_share_turns() {
    let (url, max) = server().await;
    let pendo = HttpPendo::new(HttpPendoConfig {
        endpoints: PendoEndpoints {
            all: Some(url),
            ..PendoEndpoints::default()
        },
        max_concurrent_per_subscription: 2,
        ..HttpPendoConfig::default()
    })
    .unwrap();
    let call = |key: &'static str| {
        let pendo = pendo.clone();
        async move {
            let mut sink = Count(0);
            pendo
                .aggregate(&conn(key), &serde_json::json!({}), &mut sink)
                .await
                .unwrap();
            sink.0
        }
    };
    let one: Vec<u64> = futures_util::future::join_all((0..8).map(|_| call("key-one-0000"))).await;
    assert_eq!(one, vec![1; 8]);
    assert_eq!(max.load(Ordering::SeqCst), 2);
    max.store(0, Ordering::SeqCst);
    let two = futures_util::future::join_all((0..8).map(|i| {
        call(if i % 2 == 0 {
            "key-one-0000"
        } else {
            "key-two-0000"
        })
    }))
    .await;
    assert_eq!(two, vec![1; 8]);
    assert_eq!(max.load(Ordering::SeqCst), 4);
}

/// What a call against the simulator ended as, and how many Pendo calls it took.
type Outcome = (Result<u64, PendoError>, u64);

const AGG: &str = "/api/v1/aggregation";

/// How a row of the table gets its error answer from the simulator.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `/_sim/memory-limit` below the result's size: 400 "Query exceeded memory limit".
    MemoryLimit,
    /// A pipeline the simulator refuses: 400 with its reason.
    BadPipeline,
    /// An unknown key: the key check's empty 403.
    UnknownKey,
    /// A status fault that answers `status` with `message` on every call.
    Status(u16, &'static str),
    /// 429 without / with `Retry-After: 0`, and the 5xx faults.
    Fault(pendo_sim::FaultKind),
}

fn rows_request() -> serde_json::Value {
    serde_json::json!({"response": {"mimeType": "application/json"},
        "request": {"name": "t", "requestId": "t", "pipeline": [
            {"source": {"events": {"appId": "expandAppIds(\"*\")"},
                "timeSeries": {"period": "dayRange", "first": "now()", "count": -7}}},
            {"group": {"group": ["visitorId", "day"], "fields": {"n": {"sum": "numEvents"}}}}]}})
}

fn bad_request() -> serde_json::Value {
    serde_json::json!({"response": {"mimeType": "application/json"},
        "request": {"name": "t", "requestId": "t", "pipeline": [{"noSuchStage": {}}]}})
}

/// Sets the simulator up for `answer`, with `on_top` (a body or delay fault, or none) on
/// the first call only, and makes one aggregation call.
async fn call_with(
    sim: &pendo_sim::Simulator,
    pendo: &HttpPendo,
    answer: Answer,
    on_top: Option<pendo_sim::FaultKind>,
) -> Outcome {
    use pendo_sim::{FaultKind, FaultRule};
    let c = sim.control();
    c.clear_faults();
    c.reset_requests();
    c.set_memory_limit_rows(None);
    let mut request = rows_request();
    let mut key = "sim-key-0001";
    let delayed = |mut r: FaultRule| {
        if on_top == Some(FaultKind::Delay) {
            r.delay_ms = Some(20);
        }
        r
    };
    let status_rule = |times: Option<u64>| match answer {
        Answer::Status(code, message) => Some(FaultRule::status(AGG, code, message, times)),
        Answer::Fault(kind) => Some(FaultRule {
            times,
            retry_after_secs: Some(0),
            ..FaultRule::times(AGG, kind, 0)
        }),
        _ => None,
    };
    match status_rule(Some(1)) {
        // A status answer: the first one carries the fault, the next ones are clean.
        Some(first) => {
            if let Some(k) = on_top {
                let first = FaultRule {
                    body: Some(k).filter(|k| k.is_body()),
                    ..delayed(first)
                };
                c.add_fault(first).unwrap();
            }
            c.add_fault(status_rule(None).unwrap()).unwrap();
        }
        None => {
            match answer {
                Answer::MemoryLimit => c.set_memory_limit_rows(Some(0)),
                Answer::BadPipeline => request = bad_request(),
                _ => key = "unknown-key-0001",
            }
            if let Some(k) = on_top {
                c.add_fault(delayed(FaultRule::times(AGG, k, 1))).unwrap();
            }
        }
    }
    let mut sink = Count(0);
    let result = pendo.aggregate(&conn(key), &request, &mut sink).await;
    (result, c.calls(AGG))
}

/// Every error status the client classifies, with every fault the simulator can put on top
/// of it: an answer whose body did not arrive whole is retried (one more call), and only
/// the whole answer is classified. A cleanly ended body cannot be told from a whole one,
/// except a memory-limit text cut short, which is retried too.
#[tokio::test]
async fn error_answers_are_classified_only_when_their_body_arrived_whole() {
    use pendo_sim::FaultKind::*;
    let sim = pendo_sim::Simulator::new(pendo_sim::SimConfig {
        keys: vec![pendo_sim::SimKey::write("sim-key-0001")],
        ..pendo_sim::SimConfig::tiny()
    });
    let running = sim.spawn("127.0.0.1:0").await.unwrap();
    let pendo = HttpPendo::new(HttpPendoConfig {
        endpoints: PendoEndpoints {
            all: Some(running.base_url()),
            ..PendoEndpoints::default()
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        },
        ..HttpPendoConfig::default()
    })
    .unwrap();
    let rows = sim.run_aggregation(&rows_request()).unwrap().len() as u64;
    assert!(
        rows > 0,
        "the request must have rows for the memory limit to bite"
    );
    let refusal = sim
        .run_aggregation(&bad_request())
        .map(|rows| rows.len())
        .unwrap_err()
        .to_string();
    assert!(
        !refusal.is_empty() && !refusal.contains(MEMORY_LIMIT_TEXT),
        "{refusal}"
    );
    // The first half of a one-chunk plain-text body, as the simulator cuts it.
    let half = |s: &str| s[..s.len() / 2].trim().to_string();
    let bad = |status: u16, message: &str| PendoError::BadRequest {
        status,
        message: message.to_string(),
    };
    let server = |status| PendoError::Server { status };
    let limited = |retry_after| PendoError::RateLimited { retry_after };
    let zero = Some(Duration::ZERO);
    // (answer, the whole answer's verdict and calls, then those of a cleanly truncated
    // body: taken as whole, but for a memory-limit text cut short, which is retried)
    type Row = (Answer, PendoError, u64, PendoError, u64);
    let table: Vec<Row> = vec![
        (
            Answer::MemoryLimit,
            PendoError::MemoryLimit,
            1,
            PendoError::MemoryLimit,
            2,
        ),
        (
            Answer::BadPipeline,
            bad(400, &refusal),
            1,
            bad(400, &half(&refusal)),
            1,
        ),
        (
            Answer::Status(401, "Unauthorized"),
            PendoError::Unauthorized { status: 401 },
            1,
            PendoError::Unauthorized { status: 401 },
            1,
        ),
        (
            Answer::UnknownKey,
            PendoError::Unauthorized { status: 403 },
            1,
            PendoError::Unauthorized { status: 403 },
            1,
        ),
        (
            Answer::Status(404, "not found"),
            bad(404, "not found"),
            1,
            bad(404, "not"),
            1,
        ),
        (Answer::Fault(Status429), limited(None), 3, limited(None), 3),
        (
            Answer::Fault(Status429RetryAfter),
            limited(zero),
            3,
            limited(zero),
            3,
        ),
        (Answer::Fault(Status500), server(500), 3, server(500), 3),
        (Answer::Fault(Status502), server(502), 3, server(502), 3),
        (Answer::Fault(Status503), server(503), 3, server(503), 3),
    ];
    let mut failures = Vec::new();
    for (answer, whole, calls, truncated, truncated_calls) in table {
        // A permanent answer takes one more call when its first body was cut.
        let after_cut = if whole.is_retryable() {
            calls
        } else {
            calls + 1
        };
        for (on_top, want) in [
            (None, (Err(whole.clone()), calls)),
            (Some(Delay), (Err(whole.clone()), calls)),
            (Some(DropMidBody), (Err(whole.clone()), after_cut)),
            (
                Some(TruncateMidJson),
                (Err(truncated.clone()), truncated_calls),
            ),
        ] {
            let got = call_with(&sim, &pendo, answer, on_top).await;
            if got != want {
                failures.push(format!(
                    "{answer:?} + {on_top:?}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And with nothing in the way, the same call succeeds at once.
    sim.control().clear_faults();
    sim.control().reset_requests();
    sim.control().set_memory_limit_rows(None);
    let mut sink = Count(0);
    let got = pendo
        .aggregate(&conn("sim-key-0001"), &rows_request(), &mut sink)
        .await;
    assert_eq!((got, sim.control().calls(AGG)), (Ok(rows), 1));
}

#[test]
fn only_a_proper_start_of_the_memory_limit_text_reads_as_cut() {
    assert!(is_cut_memory_limit("Query exceede"));
    assert!(is_cut_memory_limit("Q"));
    assert!(!is_cut_memory_limit(""));
    assert!(!is_cut_memory_limit(MEMORY_LIMIT_TEXT));
    assert!(!is_cut_memory_limit("Query failed"));
    assert_eq!(
        classify_message(StatusCode::BAD_REQUEST, "Query exceed".into()),
        PendoError::Truncated
    );
    assert_eq!(
        classify_message(
            StatusCode::REQUEST_TIMEOUT,
            format!("{MEMORY_LIMIT_TEXT} (42 GB)")
        ),
        PendoError::MemoryLimit
    );
    assert_eq!(
        classify_message(StatusCode::REQUEST_TIMEOUT, String::new()),
        PendoError::Timeout
    );
}

/// What the shared budget learns from an attempt: a 429 (with its Retry-After in ms) slows
/// everyone; a call that got no answer returns its lease and changes no rate; any answer is a
/// success for the budget, errors included (Pendo answered, the limit was not the cause).
#[test]
fn the_budget_learns_from_each_attempt() {
    use crate::domain::Answer;
    let limited = |retry_after| Err::<(), _>(PendoError::RateLimited { retry_after });
    assert_eq!(
        answer_of(&limited(Some(Duration::from_millis(2_500)))),
        Answer::Throttled {
            retry_after_ms: Some(2_500)
        }
    );
    assert_eq!(
        answer_of(&limited(None)),
        Answer::Throttled {
            retry_after_ms: None
        }
    );
    for lost in [
        PendoError::Timeout,
        PendoError::Transport("reset".into()),
        PendoError::Truncated,
    ] {
        assert_eq!(answer_of(&Err::<(), _>(lost)), Answer::Lost);
    }
    for answered in [
        Ok(()),
        Err(PendoError::Server { status: 503 }),
        Err(PendoError::MemoryLimit),
        Err(PendoError::Unauthorized { status: 401 }),
    ] {
        assert_eq!(answer_of(&answered), Answer::Answered);
    }
}
