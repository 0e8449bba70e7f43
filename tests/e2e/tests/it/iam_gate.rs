//! IAM as AWS enforces it, in front of moto: each function's calls are checked against that
//! function's own policy, taken mechanically from `infra/template.yaml`
//! (`infra/iam_policies.py`: the SAM template translated offline by aws-sam-translator, as a
//! deploy would, and each generated role's inline policies read back).
//!
//! Why a gate and not moto's own IAM: moto checks a request's action against a user's policies
//! (`INITIAL_NO_AUTH_ACTION_COUNT`), but for DynamoDB it takes every resource as `*`, so a
//! statement scoped to one table would allow every table there. The gate is an HTTP proxy on
//! 127.0.0.1 that every client of a test talks to (`AWS_ENDPOINT_URL` of a function): it reads
//! who is calling from the request's SigV4 credential (one access key per function, as each
//! function runs under its own role), which action(s) the call needs and on which resources
//! (DynamoDB: the table, or the index a Query or Scan reads; each table of a batch; each item
//! of a transaction, with the per-item actions a transaction needs; SQS: the queue, with the
//! batch calls needing their single-message action), evaluates the policy as IAM does
//! (Allow statements, `*`/`?` wildcards, actions case-insensitive) and either forwards the
//! request unchanged to moto or answers as AWS answers a denial (DynamoDB: 400
//! `AccessDeniedException`; SQS: 403 `AccessDenied`), naming the function, the action and the
//! resource. Every call is recorded, so a test can also say which grants were used.
//!
//! The test's own setup and assertions use moto's plain credentials (`test`), which the gate
//! passes as an administrator.
//!
//! The gate is also where AWS's failures meet the functions' calls (`fault_proxy.rs`): a call
//! the policy allows may then be answered with a fault, passed on in part, held, or passed on
//! with its answer lost, as a test sets with [`IamGate::set_faults`].

use crate::aws_local::Aws;
use crate::bill::Bill;
use crate::fault_proxy::{with_unprocessed, Action, Fault, Faults, Rule, Then};
use aws_sdk_dynamodb::config::{Credentials, Region};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use pendo_sync::aws_env;
use pendo_sync::queue::sqs::SqsQueue;
use pendo_sync::store::dynamo::{DynamoStore, DynamoTables};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const ACCOUNT: &str = "123456789012";

/// The four deployed functions, by their binaries' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Function {
    Scheduler,
    Fetch,
    Resync,
    Configurator,
}

impl Function {
    pub(crate) const ALL: [Function; 4] = [
        Function::Scheduler,
        Function::Fetch,
        Function::Resync,
        Function::Configurator,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Scheduler => "scheduler",
            Function::Fetch => "fetch",
            Function::Resync => "resync",
            Function::Configurator => "configurator",
        }
    }

    /// The access key the function's calls are signed with (its role's session, here).
    pub(crate) fn access_key(self) -> String {
        format!("AKIA{}", self.name().to_uppercase())
    }

    fn from_access_key(key: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.access_key() == key)
    }
}

/// One statement of a function's policy, its resources filled in with a test's names.
#[derive(Debug, Clone)]
struct Statement {
    actions: Vec<String>,
    resources: Vec<String>,
}

/// Each function's statements: (actions, resource ARN templates), by function name.
type TemplatePolicies = BTreeMap<String, Vec<(Vec<String>, Vec<String>)>>;

/// Each function's policy as the template grants it (ARN templates, not yet filled in).
fn template_policies() -> &'static TemplatePolicies {
    static POLICIES: std::sync::OnceLock<TemplatePolicies> = std::sync::OnceLock::new();
    POLICIES.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = root.join(".venv/bin/python");
        let out = std::process::Command::new(&python)
            .arg(root.join("infra/iam_policies.py"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "running {} infra/iam_policies.py: {e} (the IAM tests read the template's \
                     policies through aws-sam-translator: `bash infra/lint.sh install` makes \
                     the venv; `make test` does)",
                    python.display()
                )
            });
        assert!(
            out.status.success(),
            "infra/iam_policies.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        json.as_object()
            .unwrap()
            .iter()
            .map(|(function, p)| {
                let statements = p["statements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| {
                        let strings = |k: &str| -> Vec<String> {
                            s[k].as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap().to_string())
                                .collect()
                        };
                        (strings("actions"), strings("resources"))
                    })
                    .collect();
                (function.clone(), statements)
            })
            .collect()
    })
}

/// What one call needed, and whether the policy allowed it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Call {
    pub(crate) function: Function,
    pub(crate) action: String,
    pub(crate) resource: String,
    pub(crate) allowed: bool,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    policies: Mutex<BTreeMap<Function, Vec<Statement>>>,
    calls: Mutex<Vec<Call>>,
    /// AWS's failures, injected into the functions' calls (`fault_proxy.rs`).
    faults: Mutex<Faults>,
    /// What each function's calls would cost on AWS (`bill.rs`).
    bills: Mutex<BTreeMap<Function, Bill>>,
}

/// The gate of one test: its tables and queues, each function's policy for them, the proxy.
pub(crate) struct IamGate {
    inner: Arc<Inner>,
    url: String,
    pub(crate) tables: DynamoTables,
    pub(crate) fetch_url: String,
    pub(crate) resync_url: String,
    _server: tokio::task::JoinHandle<()>,
}

/// The physical names a test gives the template's resources.
pub(crate) struct Names {
    pub(crate) tables: DynamoTables,
    pub(crate) queues: BTreeMap<&'static str, String>,
}

impl Names {
    /// `${LogicalId}` → physical name, plus the region and account.
    fn fill(&self, template: &str) -> String {
        let mut s = template
            .replace("${AWS::Region}", REGION)
            .replace("${AWS::AccountId}", ACCOUNT)
            .replace("${ConfigTable}", &self.tables.config)
            .replace("${DataTable}", &self.tables.data);
        for (logical, name) in &self.queues {
            s = s.replace(&format!("${{{logical}}}"), name);
        }
        assert!(!s.contains("${"), "unfilled name in a policy: {s}");
        s
    }
}

/// The functions' retry policy (`aws_env::aws_retry`: its attempts, its standard mode) with its
/// waits between attempts a twentieth as long: 5 ms doubling up to 250 ms instead of 100 ms up
/// to 5 s. What the fault tests stand for is how many attempts a call gets and what the code
/// does when they are spent; at the deployed waits, a call throttled beyond the SDK's retries
/// slept 1.5 s on average, and the fault tests spent minutes asleep. The binaries' tests run
/// the deployed policy unchanged.
fn quick_backoff() -> aws_config::retry::RetryConfig {
    aws_env::aws_retry()
        .with_initial_backoff(std::time::Duration::from_millis(5))
        .with_max_backoff(std::time::Duration::from_millis(250))
}

impl IamGate {
    /// A gate for the tables and queues of `aws`'s prefix (created here: the store's tables,
    /// and the fetch and resync queues the template has), each function with the template's
    /// policy.
    pub(crate) async fn start(aws: &Aws) -> IamGate {
        let queue = aws.queue().await;
        Self::for_queues(aws, queue.fetch_url(), queue.resync_url()).await
    }

    /// A gate for the tables of `aws`'s prefix (created here) and the given queues as the
    /// template's fetch and resync queues.
    pub(crate) async fn for_queues(aws: &Aws, fetch_url: &str, resync_url: &str) -> IamGate {
        let _ = aws.store().await;
        let name_of = |url: &str| url.rsplit('/').next().unwrap().to_string();
        let names = Names {
            tables: DynamoTables::with_prefix(&aws.prefix),
            queues: BTreeMap::from([
                ("FetchQueue", name_of(fetch_url)),
                ("ResyncQueue", name_of(resync_url)),
            ]),
        };
        let policies = Function::ALL
            .into_iter()
            .map(|f| {
                let statements = template_policies()
                    .get(f.name())
                    .unwrap_or_else(|| panic!("the template has no function {}", f.name()))
                    .iter()
                    .map(|(actions, resources)| Statement {
                        actions: actions.clone(),
                        resources: resources.iter().map(|r| names.fill(r)).collect(),
                    })
                    .collect();
                (f, statements)
            })
            .collect();
        Self::with_policies(
            policies,
            names.tables,
            &aws.endpoint,
            fetch_url.into(),
            resync_url.into(),
        )
        .await
    }

    async fn with_policies(
        policies: BTreeMap<Function, Vec<Statement>>,
        tables: DynamoTables,
        upstream: &str,
        fetch_url: String,
        resync_url: String,
    ) -> IamGate {
        // reqwest's rustls needs a crypto provider (the one the SDK and Pendo's client use).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            policies: Mutex::new(policies),
            calls: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
            bills: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = inner.clone();
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        IamGate {
            inner,
            url,
            tables,
            fetch_url,
            resync_url,
            _server: server,
        }
    }

    /// Takes `action` out of `function`'s statements that name `table` (a test of what a
    /// denial does).
    pub(crate) fn revoke(&self, function: Function, action: &str, table: &str) {
        let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}");
        let mut policies = self.inner.policies.lock().unwrap();
        for s in policies.get_mut(&function).unwrap() {
            if s.resources.contains(&table) {
                s.actions.retain(|a| !a.eq_ignore_ascii_case(action));
            }
        }
    }

    /// From now on, the functions' calls meet these faults (none: an empty list).
    pub(crate) fn set_faults(&self, rules: Vec<Rule>) {
        self.inner.faults.lock().unwrap().set(rules);
    }

    /// The faults injected so far: (operation, fault) → attempts that met it.
    pub(crate) fn injected(&self) -> BTreeMap<(String, Fault), u32> {
        self.inner.faults.lock().unwrap().injected()
    }

    /// The SDK configuration a function runs with: its own credentials, the gate as endpoint.
    pub(crate) async fn sdk(&self, function: Function) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                function.access_key(),
                "secret",
                None,
                None,
                "function role",
            ))
            .load()
            .await
    }

    /// The store and queue a function's code gets, as `aws_env::app_from_env` builds them, but
    /// for the SDK's waits between attempts (see [`quick_backoff`]).
    pub(crate) async fn adapters(&self, function: Function) -> (Arc<DynamoStore>, Arc<SqsQueue>) {
        let sdk = self.sdk(function).await;
        let dynamo = aws_env::dynamodb_client(&sdk).config().to_builder();
        let sqs = aws_env::sqs_client(&sdk).config().to_builder();
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::from_conf(dynamo.retry_config(quick_backoff()).build()),
            self.tables.clone(),
        );
        let queue = SqsQueue::new(
            aws_sdk_sqs::Client::from_conf(sqs.retry_config(quick_backoff()).build()),
            self.fetch_url.clone(),
            self.resync_url.clone(),
        );
        (Arc::new(store), Arc::new(queue))
    }

    /// The gate's address (a function process's `AWS_ENDPOINT_URL`).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Every call so far.
    /// What each function's calls so far would cost on AWS.
    pub(crate) fn bills(&self) -> BTreeMap<Function, Bill> {
        self.inner.bills.lock().unwrap().clone()
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The calls the policies denied, one line each.
    pub(crate) fn denials(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| !c.allowed)
            .map(|c| format!("{}: {} on {}", c.function.name(), c.action, c.resource))
            .collect()
    }

    /// Fails the test naming every denied call.
    pub(crate) fn assert_no_denials(&self) {
        // IAM_GATE_DUMP=folder (by hand): each test's grants used, one file a gate, to see
        // across the suite which grants of a policy no path uses.
        if let Some(dir) = std::env::var_os("IAM_GATE_DUMP") {
            let lines: Vec<String> = self
                .used()
                .into_iter()
                .flat_map(|(f, pairs)| {
                    pairs
                        .into_iter()
                        .map(move |(a, r)| format!("{} {a} {r}", f.name()))
                })
                .collect();
            let file = std::path::Path::new(&dir).join(format!("{}.txt", self.tables.config));
            std::fs::write(file, lines.join("\n") + "\n").unwrap();
        }
        let denied = self.denials();
        assert!(
            denied.is_empty(),
            "calls the template's policies deny:\n{}",
            denied.join("\n")
        );
    }

    /// The (action, resource) pairs each function used, the test's names put back to the
    /// template's logical ids.
    pub(crate) fn used(&self) -> BTreeMap<Function, BTreeSet<(String, String)>> {
        let mut out: BTreeMap<Function, BTreeSet<(String, String)>> = BTreeMap::new();
        for c in self.calls() {
            out.entry(c.function)
                .or_default()
                .insert((c.action, self.logical(&c.resource)));
        }
        out
    }

    /// A resource ARN with the test's names replaced by the template's logical ids.
    pub(crate) fn logical(&self, arn: &str) -> String {
        let table = |n: &str| format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{n}");
        let queue = |u: &str| {
            format!(
                "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                u.rsplit('/').next().unwrap()
            )
        };
        let mut s = arn.to_string();
        for (physical, logical) in [
            (table(&self.tables.config), "table/ConfigTable".to_string()),
            (table(&self.tables.data), "table/DataTable".to_string()),
            (queue(&self.fetch_url), "FetchQueue".to_string()),
            (queue(&self.resync_url), "ResyncQueue".to_string()),
        ] {
            if let Some(rest) = s.strip_prefix(&physical) {
                s = format!("{logical}{rest}");
            }
        }
        s
    }
}

/// `*` and `?` wildcards, as IAM matches actions and resources.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn allowed(policy: &[Statement], action: &str, resource: &str) -> bool {
    policy.iter().any(|s| {
        s.actions
            .iter()
            .any(|a| glob(&a.to_lowercase(), &action.to_lowercase()))
            && s.resources.iter().any(|r| glob(r, resource))
    })
}

/// The (action, resource) pairs a request needs authorised, from its target and body.
pub(crate) fn needs(target: &str, body: &Value) -> Vec<(String, String)> {
    let table = |n: &Value| {
        format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}",
            n.as_str().unwrap_or("?")
        )
    };
    let queue = |u: &Value| {
        let url = u.as_str().unwrap_or("?");
        format!(
            "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
            url.rsplit('/').next().unwrap_or(url)
        )
    };
    let (service, op) = target.split_once('.').unwrap_or(("", target));
    if service.starts_with("DynamoDB") {
        let action = |a: &str| format!("dynamodb:{a}");
        match op {
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .map(|m| {
                    m.keys()
                        .map(|t| (action(op), table(&Value::String(t.clone()))))
                        .collect()
                })
                .unwrap_or_default(),
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .flat_map(|item| {
                            item.as_object().into_iter().flatten().map(|(kind, inner)| {
                                let per_item = match kind.as_str() {
                                    "Put" => "PutItem",
                                    "Update" => "UpdateItem",
                                    "Delete" => "DeleteItem",
                                    "ConditionCheck" => "ConditionCheckItem",
                                    "Get" => "GetItem",
                                    other => other,
                                };
                                (action(per_item), table(&inner["TableName"]))
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            "Query" | "Scan" => {
                let mut arn = table(&body["TableName"]);
                if let Some(index) = body["IndexName"].as_str() {
                    arn = format!("{arn}/index/{index}");
                }
                vec![(action(op), arn)]
            }
            _ => vec![(action(op), table(&body["TableName"]))],
        }
    } else if service == "AmazonSQS" {
        // A batch call is authorised as its single-message action (SQS's IAM reference).
        let op = op.strip_suffix("Batch").unwrap_or(op);
        let arn = match op {
            "CreateQueue" | "GetQueueUrl" => format!(
                "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
                body["QueueName"].as_str().unwrap_or("?")
            ),
            _ => queue(&body["QueueUrl"]),
        };
        vec![(format!("sqs:{op}"), arn)]
    } else {
        vec![(format!("unknown:{target}"), "*".into())]
    }
}

/// The access key of a SigV4 `Authorization` header.
fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_string())
}

async fn handle(
    state: Arc<Inner>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = access_key(&headers).unwrap_or_default();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if key != "test" {
        let function = Function::from_access_key(&key);
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut denied = None;
        for (action, resource) in needs(&target, &json) {
            let ok = function
                .and_then(|f| state.policies.lock().unwrap().get(&f).cloned())
                .is_some_and(|p| allowed(&p, &action, &resource));
            if let Some(function) = function {
                state.calls.lock().unwrap().push(Call {
                    function,
                    action: action.clone(),
                    resource: resource.clone(),
                    allowed: ok,
                });
            }
            if !ok && denied.is_none() {
                denied = Some((action, resource));
            }
        }
        // IAM_GATE_LOG_ONLY=1 (by hand, never in `make test`): denied calls go through anyway,
        // so one run lists every grant a policy misses (`assert_no_denials` still fails).
        let log_only = std::env::var_os("IAM_GATE_LOG_ONLY").is_some();
        if let Some((action, resource)) = denied.filter(|_| !log_only) {
            let who = function.map_or_else(|| key.clone(), |f| f.name().to_string());
            return denial(&target, &who, &action, &resource);
        }
        let Some(function) = function else {
            let (status, out, bytes) = forward(&state, method, uri, headers, body).await;
            return (status, out, bytes).into_response();
        };
        let (action, delay) = state
            .faults
            .lock()
            .unwrap()
            .decide(function, &target, &body);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        return match action {
            Action::Answer(r) => r,
            Action::Forward { body, then } => {
                // Passed on in a task of its own: once the service has the request it finishes
                // it, even if the caller gives up waiting (an SDK attempt timeout drops the
                // connection, and with it this handler).
                let task_state = state.clone();
                let forwarded = tokio::spawn(async move {
                    let sent = body.clone();
                    let (status, out, bytes) =
                        forward(&task_state, method, uri, headers, body).await;
                    if let Then::Remember(token) | Then::Cut(Some(token)) = &then {
                        task_state
                            .faults
                            .lock()
                            .unwrap()
                            .remember(token.clone(), status, &bytes);
                    }
                    (status, out, bytes, then, sent)
                });
                let (status, out, bytes, then, sent) = forwarded.await.unwrap();
                state
                    .bills
                    .lock()
                    .unwrap()
                    .entry(function)
                    .or_default()
                    .record(&target, &sent, &bytes);
                match then {
                    Then::Answer => (status, out, bytes).into_response(),
                    Then::Unprocessed { field, rest } => {
                        let merged = with_unprocessed(&bytes, field, rest);
                        (status, out, merged).into_response()
                    }
                    Then::Remember(_) => (status, out, bytes).into_response(),
                    // The call applied; its connection dies before any answer (unwinding the
                    // connection's task without a panic message drops the socket).
                    Then::Cut(_) => std::panic::resume_unwind(Box::new("answer lost")),
                }
            }
        };
    }
    let (status, out, bytes) = forward(&state, method, uri, headers, body).await;
    (status, out, bytes).into_response()
}

/// What AWS answers a call no policy allows.
fn denial(target: &str, function: &str, action: &str, resource: &str) -> Response {
    let message = format!(
        "User: arn:aws:sts::{ACCOUNT}:assumed-role/{function}-role/{function} is not authorized \
         to perform: {action} on resource: {resource} because no identity-based policy allows \
         the {action} action"
    );
    // SQS (its JSON protocol, with the query-compatible code) answers 403; DynamoDB 400.
    let (status, body) = if target.starts_with("AmazonSQS") {
        let body =
            serde_json::json!({"__type": "com.amazonaws.sqs#AccessDenied", "message": message});
        (StatusCode::FORBIDDEN, body)
    } else {
        let body = serde_json::json!({"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message});
        (StatusCode::BAD_REQUEST, body)
    };
    let mut r = (status, body.to_string()).into_response();
    let headers = r.headers_mut();
    headers.insert(
        "content-type",
        "application/x-amz-json-1.0".parse().unwrap(),
    );
    if status == StatusCode::FORBIDDEN {
        headers.insert("x-amzn-query-error", "AccessDenied;Sender".parse().unwrap());
    }
    r
}

async fn forward(
    state: &Inner,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = state
        .http
        .request(method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "content-length" && name != "host" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(r) => {
            let status = r.status();
            let mut out = HeaderMap::new();
            for (name, value) in r.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out.insert(name, value.clone());
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            (status, out, bytes)
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            HeaderMap::new(),
            Bytes::from(format!("iam gate: {e}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("dynamodb:*", "dynamodb:getitem"));
        assert!(glob(
            "arn:aws:dynamodb:*:*:table/t",
            "arn:aws:dynamodb:r:1:table/t"
        ));
        assert!(!glob(
            "arn:aws:dynamodb:*:*:table/t",
            "arn:aws:dynamodb:r:1:table/t/index/i"
        ));
        assert!(glob("a?c", "abc"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn a_transaction_needs_each_item_action_and_a_batch_its_single_action() {
        let body = serde_json::json!({"TransactItems": [
            {"Put": {"TableName": "d"}}, {"ConditionCheck": {"TableName": "c"}}]});
        assert_eq!(
            needs("DynamoDB_20120810.TransactWriteItems", &body),
            vec![
                (
                    "dynamodb:PutItem".to_string(),
                    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/d")
                ),
                (
                    "dynamodb:ConditionCheckItem".to_string(),
                    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/c")
                ),
            ]
        );
        let body = serde_json::json!({"QueueUrl": "http://h/123/q1"});
        assert_eq!(
            needs("AmazonSQS.SendMessageBatch", &body),
            vec![(
                "sqs:SendMessage".to_string(),
                format!("arn:aws:sqs:{REGION}:{ACCOUNT}:q1")
            )]
        );
        let body = serde_json::json!({"TableName": "c", "IndexName": "gsi1"});
        assert_eq!(
            needs("DynamoDB_20120810.Query", &body)[0].1,
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/c/index/gsi1")
        );
    }
}
