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
    /// The Runtime API's address and the function's variables (to start a new container).
    api: String,
    env: Vec<(String, String)>,
    /// The stall points its processes were killed at, in order.
    pub(crate) killed_at: Vec<String>,
    /// The stall points of its next containers, one each (`PENDO_SYNC_STALL_AT=a,b` given to
    /// [`Self::start`]: the first container stops at `a`, the one after it at `b`).
    stalls: std::collections::VecDeque<String>,
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
        std::fs::File::create(&log).unwrap();
        let mut env = env.to_vec();
        let mut stalls = std::collections::VecDeque::new();
        if let Some((_, points)) = env.iter().find(|(k, _)| k == STALL_VAR) {
            stalls = points.split(',').map(str::to_string).collect();
        }
        set_stall(&mut env, stalls.pop_front());
        let child = spawn(name, &api, &env, &log);
        LambdaFn {
            name,
            invocations: tx,
            state,
            child,
            log,
            api,
            env,
            killed_at: Vec::new(),
            stalls,
            _server: server,
        }
    }

    /// Invokes the function like [`Self::invoke`], but when its process stops at its stall
    /// point (`PENDO_SYNC_STALL_AT`, `shared/src/stall.rs`) kills it there (SIGKILL: the
    /// invocation is lost, as when Lambda's container dies mid-invocation) and starts a new
    /// container without the stall point; `None` then.
    pub(crate) async fn invoke_or_killed(
        &mut self,
        event: &Value,
        timeout: Duration,
    ) -> Option<Outcome> {
        let stalls = self.env.iter().any(|(k, _)| k == STALL_VAR);
        if !stalls {
            return Some(self.invoke(event, timeout).await);
        }
        let (id, mut answer) = self.send(event, timeout);
        let end = tokio::time::Instant::now() + timeout + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            // Whole lines only: a line still being written (or cut by a kill) is not a stall.
            let whole = log.rfind('\n').map_or("", |end| &log[..end]);
            let stalled: Vec<&str> = whole
                .lines()
                .filter_map(|l| l.strip_prefix("stalled at "))
                .filter_map(|l| l.strip_suffix(&format!(" ({STALL_VAR})")))
                .collect();
            if stalled.len() > self.killed_at.len() {
                self.child.kill().unwrap();
                self.child.wait().unwrap();
                self.killed_at.push(stalled[stalled.len() - 1].to_string());
                self.state.pending.lock().unwrap().remove(&id);
                set_stall(&mut self.env, self.stalls.pop_front());
                self.child = spawn(self.name, &self.api, &self.env, &self.log);
                return None;
            }
            if let Ok(outcome) = answer.try_recv() {
                return Some(outcome);
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{} neither answered nor stalled; its log: {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queues an invocation; its id and where its outcome comes.
    fn send(&mut self, event: &Value, timeout: Duration) -> (String, oneshot::Receiver<Outcome>) {
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
        (id, answer)
    }

    /// Invokes the function with `event`, its deadline `timeout` from now; the outcome, or a
    /// failure naming the function (and its log) when it never answers or its init failed.
    pub(crate) async fn invoke(&mut self, event: &Value, timeout: Duration) -> Outcome {
        let (id, answer) = self.send(event, timeout);
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

/// The variable that names a process's stall point (`shared/src/stall.rs`).
const STALL_VAR: &str = "PENDO_SYNC_STALL_AT";

/// `env` with `point` as its stall point (none: without the variable).
fn set_stall(env: &mut Vec<(String, String)>, point: Option<String>) {
    env.retain(|(k, _)| k != STALL_VAR);
    if let Some(p) = point {
        env.push((STALL_VAR.to_string(), p));
    }
}

/// Starts one process of function `name` (a container), its output appended to `log`.
fn spawn(
    name: &str,
    api: &str,
    env: &[(String, String)],
    log: &std::path::Path,
) -> std::process::Child {
    let out = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let mut cmd = std::process::Command::new(binary(name));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api)
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
    cmd.spawn().unwrap()
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
