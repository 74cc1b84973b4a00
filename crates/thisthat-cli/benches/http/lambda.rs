//! The Lambda profile (issue 15, goal 6): `thisthat` started as Lambda starts a `bootstrap` (no
//! arguments, the Runtime API's address in the environment) on the AWS adapters against moto,
//! driven by a stand-in for the Lambda Runtime API. The stand-in hands out API Gateway HTTP API
//! events one at a time, as Lambda does, each with the claims of a JWT authorizer:
//!
//! - 42 owners register a device (`POST /v1/devices`, an SNS platform endpoint);
//! - they create a competition each (`POST /v1/competitions`, three photos, base64 multipart);
//! - voters fill the competitions one after another (`POST /v1/competitions/{id}/votes`); each
//!   24th vote closes one and publishes the result to its owner's device through SNS, inline.
//!
//! That is [`EVENTS`] events. A first function provisions the bucket and the table
//! (`?create=true`) and answers one event, as a deployment does once; the measured one is a
//! second cold start on them. It measures:
//! - init: from `exec` to the function's first `GET …/invocation/next`, what Lambda reports as
//!   "Init Duration";
//! - from `exec` to the first event's answer posted;
//! - peak RSS (VmHWM) after the last event, read while the function waits for the next one;
//! - the binary's size, as built and stripped.
//!
//! Moto implements `DetectLabels` but not `DetectModerationLabels`, so the classifier runs with
//! `?screen=false` and `THISTHAT_ALLOW_UNSCREENED=true`; the screen's call is one more request
//! of the same shape per photo.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine as _;
use serde_json::{Value, json};

/// Events the measured function answers.
pub const EVENTS: usize = 1000;
/// Owners, each with a device and a competition.
const OWNERS: usize = 42;
/// Votes that close a competition, as in the default rules.
const VOTES_TO_CLOSE: usize = 24;
/// The longest a run may take; moto answers each call in milliseconds.
const DEADLINE: Duration = Duration::from_secs(600);

/// What one profile measured.
pub struct Profile {
    /// From `exec` to the first `GET …/invocation/next`.
    pub init: Duration,
    /// From `exec` to the first event's answer.
    pub first_event: Duration,
    /// Events answered per second, the first one's init excluded.
    pub events_per_s: f64,
    /// VmHWM after the last event, KiB.
    pub peak_rss_kib: u64,
    /// VmHWM of the provisioning function after its one event (`GET /v1/feed`), KiB: what the
    /// process holds before any load.
    pub idle_rss_kib: u64,
    /// The binary as built.
    pub binary_bytes: u64,
    /// The binary after `strip`, when `strip` is installed.
    pub stripped_bytes: Option<u64>,
}

/// The events of a run, in order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// One `GET /v1/feed`, for the function that provisions the bucket and the table.
    Provision,
    /// The [`EVENTS`] events of the module's doc.
    Load,
}

/// What the stand-in has handed out and received, shared by its handlers and the bench.
struct Script {
    plan: Plan,
    started: Instant,
    handed: usize,
    answered: usize,
    first_next: Option<Duration>,
    first_answer: Option<Duration>,
    last_answer: Option<Duration>,
    /// The created competitions' ids, in creation order.
    competitions: Vec<String>,
    /// Every answer that was not a 2xx, and every error the function reported.
    failures: Vec<String>,
}

impl Script {
    fn new(plan: Plan) -> Script {
        Script {
            plan,
            started: Instant::now(),
            handed: 0,
            answered: 0,
            first_next: None,
            first_answer: None,
            last_answer: None,
            competitions: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn events(&self) -> usize {
        match self.plan {
            Plan::Provision => 1,
            Plan::Load => EVENTS,
        }
    }

    /// Event `n` as API Gateway would hand it over. Lambda hands out one event at a time, so
    /// the competitions created by earlier events are known.
    fn event(&self, n: usize) -> Value {
        if self.plan == Plan::Provision {
            return api_event("GET", "/v1/feed", "provisioner", "", None);
        }
        if n < OWNERS {
            let body = json!({"platform": "fcm", "token": format!("bench-device-{n}")}).to_string();
            return api_event(
                "POST",
                "/v1/devices",
                &owner(n),
                "application/json",
                Some((body, false)),
            );
        }
        if n < 2 * OWNERS {
            let boundary = "thisthat-bench-boundary";
            let mut multipart = Vec::new();
            let photo = thisthat_testkit::photos::pixel_webp();
            for i in 0..3 {
                multipart.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{i}.webp\"\r\nContent-Type: image/webp\r\n\r\n").as_bytes());
                multipart.extend_from_slice(&photo);
                multipart.extend_from_slice(b"\r\n");
            }
            multipart.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            let body = base64::engine::general_purpose::STANDARD.encode(&multipart);
            let content_type = format!("multipart/form-data; boundary={boundary}");
            return api_event(
                "POST",
                "/v1/competitions",
                &owner(n - OWNERS),
                &content_type,
                Some((body, true)),
            );
        }
        let k = n - 2 * OWNERS;
        // A creation that failed is in `failures` already; its votes answer 404 and are too.
        let competition = self
            .competitions
            .get(k / VOTES_TO_CLOSE)
            .map_or("missing", String::as_str);
        let body = json!({"choice": k % 3}).to_string();
        api_event(
            "POST",
            &format!("/v1/competitions/{competition}/votes"),
            &format!("voter{}", k % VOTES_TO_CLOSE),
            "application/json",
            Some((body, false)),
        )
    }
}

fn owner(i: usize) -> String {
    format!("owner{i}")
}

/// An API Gateway HTTP API (payload 2.0) event, as AWS documents it, from a caller that its JWT
/// authorizer identified as `sub`.
fn api_event(method: &str, path: &str, sub: &str, content_type: &str, body: Option<(String, bool)>) -> Value {
    let mut headers = json!({"accept": "application/json", "user-agent": "thisthat-bench/1.0"});
    if !content_type.is_empty() {
        headers["content-type"] = json!(content_type);
    }
    let (body, encoded) = body.unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "authorizer": {"jwt": {"claims": {"sub": sub, "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE", "token_use": "access"}, "scopes": null}},
            "domainName": "r3pmxmplak.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "thisthat-bench/1.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:10:00:00 +0000",
            "timeEpoch": 1796032800000u64
        },
        "body": body,
        "isBase64Encoded": encoded
    })
}

type Shared = Arc<Mutex<Script>>;

fn lock(script: &Shared) -> std::sync::MutexGuard<'_, Script> {
    script.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /2018-06-01/runtime/invocation/next`: the next event, or, once every event was handed
/// out, no answer at all, as Lambda freezes a function between events; the process then stays
/// up for its memory to be read.
async fn next(State(script): State<Shared>) -> Response {
    let event = {
        let mut s = lock(&script);
        if s.first_next.is_none() {
            s.first_next = Some(s.started.elapsed());
        }
        if s.handed == s.events() {
            None
        } else {
            let n = s.handed;
            s.handed += 1;
            Some((n, s.event(n)))
        }
    };
    let Some((n, event)) = event else {
        return std::future::pending().await;
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis()
        + 60_000;
    (
        [
            ("content-type", "application/json".to_owned()),
            ("lambda-runtime-aws-request-id", format!("event-{n}")),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:thisthat".to_owned(),
            ),
        ],
        event.to_string(),
    )
        .into_response()
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`: the function's answer to an event.
async fn response(State(script): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let mut s = lock(&script);
    s.answered += 1;
    let now = s.started.elapsed();
    s.first_answer.get_or_insert(now);
    s.last_answer = Some(now);
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = answer["statusCode"].as_u64().unwrap_or(0);
    if !(200..300).contains(&status) {
        s.failures.push(format!("{id} answered {answer}"));
        return StatusCode::ACCEPTED;
    }
    let n: usize = id.trim_start_matches("event-").parse().unwrap_or(usize::MAX);
    if s.plan == Plan::Load && (OWNERS..2 * OWNERS).contains(&n) {
        let created: Value = answer["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        match created["id"].as_str() {
            Some(competition) => s.competitions.push(competition.to_owned()),
            None => s.failures.push(format!("{id}: a creation without an id: {answer}")),
        }
    }
    StatusCode::ACCEPTED
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`: an event the function reported as failed.
async fn invocation_error(State(script): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let mut s = lock(&script);
    s.answered += 1;
    s.failures
        .push(format!("{id} failed: {}", String::from_utf8_lossy(&body)));
    StatusCode::ACCEPTED
}

/// `POST /2018-06-01/runtime/init/error`: the function could not start; it stops next.
async fn init_error(State(script): State<Shared>, body: Bytes) -> StatusCode {
    lock(&script)
        .failures
        .push(format!("init failed: {}", String::from_utf8_lossy(&body)));
    StatusCode::ACCEPTED
}

/// A stand-in Runtime API on a free loopback port, serving `plan`; its address (`host:port`).
async fn runtime_api(plan: Plan) -> (String, Shared, tokio::task::JoinHandle<()>) {
    let script = Arc::new(Mutex::new(Script::new(plan)));
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the runtime API");
    let addr = listener.local_addr().expect("its address").to_string();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, script, server)
}

/// The URLs of the four ports, on moto; `create` on the provisioning run only.
struct Urls {
    storage: String,
    database: String,
    notifier: String,
}

/// Starts the binary as Lambda starts a `bootstrap`, its log in `log`.
fn spawn(runtime_api: &str, urls: &Urls, moto: &str, log: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_thisthat"))
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "thisthat")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/thisthat")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("THISTHAT_STORAGE", &urls.storage)
        .env("THISTHAT_DATABASE", &urls.database)
        .env("THISTHAT_NOTIFIER", &urls.notifier)
        .env("THISTHAT_CLASSIFIER", "rekognition://?screen=false")
        .env("THISTHAT_ALLOW_UNSCREENED", "true")
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("the function's log file"))
        .spawn()
        .expect("spawn thisthat as a Lambda bootstrap")
}

/// Runs `plan` on a new function; the script once every event is answered, and the function,
/// still up. Panics, with the function's log, if it stops or any event fails.
async fn run(plan: Plan, urls: &Urls, moto: &str, log: &std::path::Path) -> (Script, Child) {
    let (addr, script, server) = runtime_api(plan).await;
    lock(&script).started = Instant::now();
    let mut child = spawn(&addr, urls, moto, log);
    let started = Instant::now();
    loop {
        let (answered, events) = {
            let s = lock(&script);
            (s.answered, s.events())
        };
        if answered >= events {
            break;
        }
        let stopped = child.try_wait().expect("the function's status");
        if stopped.is_some() || started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the function {} after {answered} of {events} events; it said:\n{}",
                if stopped.is_some() { "stopped" } else { "timed out" },
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.abort();
    let script = std::mem::replace(&mut *lock(&script), Script::new(plan));
    assert!(
        script.failures.is_empty(),
        "{} events failed, first: {}; the function said:\n{}",
        script.failures.len(),
        script.failures[0],
        std::fs::read_to_string(log).unwrap_or_default()
    );
    (script, child)
}

/// An SNS platform application for FCM on moto, through SNS's query API (moto reads the
/// service from the credential scope and checks no signature); its ARN.
async fn platform_application(http: &reqwest::Client, moto: &str, name: &str) -> String {
    let reply = http
        .post(format!("{moto}/"))
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=0",
        )
        .form(&[
            ("Action", "CreatePlatformApplication"),
            ("Version", "2010-03-31"),
            ("Name", name),
            ("Platform", "GCM"),
            ("Attributes.entry.1.key", "PlatformCredential"),
            ("Attributes.entry.1.value", "bench-server-key"),
        ])
        .send()
        .await
        .expect("moto answers")
        .text()
        .await
        .expect("moto's reply");
    reply
        .split_once("<PlatformApplicationArn>")
        .and_then(|(_, rest)| rest.split_once("</PlatformApplicationArn>"))
        .map(|(arn, _)| arn.trim().to_owned())
        .unwrap_or_else(|| panic!("moto created no platform application: {reply}"))
}

/// The Lambda profile against moto at `moto`.
pub async fn profile(http: &reqwest::Client, moto: &str) -> Profile {
    let name = format!("bench-lambda-{}", std::process::id());
    let application = platform_application(http, moto, &name).await;
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let notifier = format!("sns://?fcm={application}");
    let provision = Urls {
        storage: format!("s3://{name}?create=true"),
        database: format!("dynamodb://{name}?create=true"),
        notifier: notifier.clone(),
    };
    let (_, mut child) = run(Plan::Provision, &provision, moto, &log).await;
    let idle_rss_kib = crate::memory(child.id()).peak_kib;
    let _ = child.kill();
    let _ = child.wait();

    let urls = Urls {
        storage: format!("s3://{name}"),
        database: format!("dynamodb://{name}"),
        notifier,
    };
    let (script, mut child) = run(Plan::Load, &urls, moto, &log).await;
    let peak_rss_kib = crate::memory(child.id()).peak_kib;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(script.competitions.len(), OWNERS, "every owner created a competition");
    let closes = (EVENTS - 2 * OWNERS) / VOTES_TO_CLOSE;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let first_answer = script.first_answer.expect("an event was answered");
    let rest = script
        .last_answer
        .expect("an event was answered")
        .saturating_sub(first_answer);
    println!(
        "lambda: {EVENTS} events ({OWNERS} devices, {OWNERS} creations, {} votes closing {closes} competitions) answered; log {} lines",
        EVENTS - 2 * OWNERS,
        log_text.lines().count()
    );
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_thisthat"));
    let stripped_path = std::env::temp_dir().join(format!("{name}.stripped"));
    let stripped_bytes = Command::new("strip")
        .arg("-o")
        .arg(&stripped_path)
        .arg(&binary)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped_path).ok())
        .map(|m| m.len());
    let _ = std::fs::remove_file(&stripped_path);
    Profile {
        init: script.first_next.expect("the function asked for an event"),
        first_event: first_answer,
        events_per_s: (EVENTS - 1) as f64 / rest.as_secs_f64(),
        peak_rss_kib,
        idle_rss_kib,
        binary_bytes: std::fs::metadata(&binary).expect("the binary").len(),
        stripped_bytes,
    }
}
