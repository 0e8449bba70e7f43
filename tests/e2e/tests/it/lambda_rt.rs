//! The four function binaries run as Lambda runs them: each process is started with Lambda's
//! environment (`AWS_LAMBDA_RUNTIME_API` and the function's variables, as the template sets
//! them) and served by a small emulator of the Lambda Runtime API on 127.0.0.1
//! (`GET /2018-06-01/runtime/invocation/next` with the request id, deadline and function ARN
//! headers; `POST …/invocation/{id}/response` or `…/error`; `POST …/runtime/init/error`). A
//! process stays warm across invocations, as a Lambda container does.
//!
//! The binaries are the debug builds `cargo test --workspace` makes (each function crate has
//! an integration test, so cargo builds its binary); nothing is built twice.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// How an invocation ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Response(Value),
    Error(Value),
}

struct Invocation {
    id: String,
    body: String,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct RuntimeState {
    arn: String,
    next: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<String>>,
}

/// One function: its process and the Runtime API it polls.
pub(crate) struct LambdaFn {
    pub(crate) name: &'static str,
    invocations: mpsc::UnboundedSender<Invocation>,
    state: Arc<RuntimeState>,
    child: std::process::Child,
    pub(crate) log: std::path::PathBuf,
    _server: tokio::task::JoinHandle<()>,
}

/// The folder of the workspace's debug binaries (beside this test's own executable).
pub(crate) fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: the real-binary tests run after `cargo test --workspace` builds the \
         function binaries (each function crate's integration test makes cargo build it)",
        path.display()
    );
    path
}

impl LambdaFn {
    /// Starts `name`'s binary with `env` (and Lambda's own variables), its logs in `log_dir`.
    pub(crate) async fn start(
        name: &'static str,
        env: &[(String, String)],
        log_dir: &std::path::Path,
    ) -> LambdaFn {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(RuntimeState {
            arn: format!("arn:aws:lambda:us-east-1:123456789012:function:pendo-sync-{name}"),
            next: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let router = axum::Router::new()
            .route(
                "/2018-06-01/runtime/invocation/next",
                axum::routing::get(next),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                axum::routing::post(response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                axum::routing::post(error),
            )
            .route(
                "/2018-06-01/runtime/init/error",
                axum::routing::post(init_error),
            )
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        std::fs::create_dir_all(log_dir).unwrap();
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(binary(name));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", format!("pendo-sync-{name}"))
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/pendo-sync-{name}"),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/12/06/[$LATEST]0123456789abcdef",
            )
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().unwrap();
        LambdaFn {
            name,
            invocations: tx,
            state,
            child,
            log,
            _server: server,
        }
    }

    /// Invokes the function with `event`, its deadline `timeout` from now; the outcome, or a
    /// failure naming the function (and its log) when it never answers or its init failed.
    pub(crate) async fn invoke(&mut self, event: &Value, timeout: Duration) -> Outcome {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (reply, answer) = oneshot::channel();
        let id = uuid::Uuid::new_v4().to_string();
        self.invocations
            .send(Invocation {
                id: id.clone(),
                body: event.to_string(),
                deadline_ms: u64::try_from((now + timeout).as_millis()).unwrap(),
                reply,
            })
            .unwrap();
        let waited = tokio::time::timeout(timeout + Duration::from_secs(5), answer).await;
        match waited {
            Ok(Ok(outcome)) => outcome,
            _ => {
                let exited = self.child.try_wait().ok().flatten();
                let init = self.state.init_error.lock().unwrap().clone();
                panic!(
                    "{} did not answer invocation {id} within {timeout:?} (exited: {exited:?}, init \
                     error: {init:?}); its log: {}\n{}",
                    self.name,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            }
        }
    }

    /// The invocation's answer, which must be a response (not an error).
    pub(crate) async fn call(&mut self, event: &Value, timeout: Duration) -> Value {
        match self.invoke(event, timeout).await {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!(
                "{} answered an error: {e}; its log: {}",
                self.name,
                self.log.display()
            ),
        }
    }
}

impl Drop for LambdaFn {
    /// The container goes away with the test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn next(State(state): State<Arc<RuntimeState>>) -> Response {
    let Some(inv) = state.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    state
        .pending
        .lock()
        .unwrap()
        .insert(inv.id.clone(), inv.reply);
    let mut headers = HeaderMap::new();
    let h = |v: &str| HeaderValue::from_str(v).unwrap();
    headers.insert("lambda-runtime-aws-request-id", h(&inv.id));
    headers.insert(
        "lambda-runtime-deadline-ms",
        h(&inv.deadline_ms.to_string()),
    );
    headers.insert("lambda-runtime-invoked-function-arn", h(&state.arn));
    headers.insert(
        "lambda-runtime-trace-id",
        h("Root=1-6752f0a0-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0"),
    );
    headers.insert("content-type", h("application/json"));
    (StatusCode::OK, headers, inv.body).into_response()
}

fn settle(state: &RuntimeState, id: &str, outcome: Outcome) -> StatusCode {
    match state.pending.lock().unwrap().remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json_or_text(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&state, &id, Outcome::Response(json_or_text(&body)))
}

async fn error(
    State(state): State<Arc<RuntimeState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    settle(&state, &id, Outcome::Error(json_or_text(&body)))
}

async fn init_error(State(state): State<Arc<RuntimeState>>, body: Bytes) -> StatusCode {
    *state.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}
