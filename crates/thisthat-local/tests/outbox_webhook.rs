//! The outbox notifier with a webhook: each accepted push is also POSTed, and the webhook's
//! answer decides what `send` reports. A small axum server on 127.0.0.1 stands in for a
//! developer's relay and records what it receives.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::post,
};
use thisthat_core::{
    CompetitionId, Endpoint, Error, PushMessage, Result, UrlOpener,
    ports::{Delivery, Notifier},
};
use thisthat_local::{LocalOpener, OutboxEntry, OutboxNotifier};
use thisthat_testkit::{NotifierHarness, fixtures::device};

/// One request the webhook received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn entry(&self) -> OutboxEntry {
        serde_json::from_slice(&self.body).expect("the body is an outbox entry")
    }
}

/// What the webhook answers, and what it received.
#[derive(Debug)]
struct Relay {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: &'static str,
    /// How long it takes to answer.
    delay: Duration,
    received: Mutex<Vec<Received>>,
}

async fn record(State(relay): State<Arc<Relay>>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    relay.received.lock().expect("lock").push(Received { headers, body });
    tokio::time::sleep(relay.delay).await;
    let mut answer = HeaderMap::new();
    for (name, value) in &relay.headers {
        answer.insert(name.clone(), value.clone());
    }
    (relay.status, answer, relay.body)
}

/// A webhook on 127.0.0.1 answering `status` with `headers` and `body` to every POST to
/// `/push`, for as long as the test's runtime runs.
struct Webhook {
    url: String,
    relay: Arc<Relay>,
}

impl Webhook {
    async fn start(status: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> Self {
        Self::slow(status, headers, body, Duration::ZERO).await
    }

    /// A webhook that answers only after `delay`.
    async fn slow(status: u16, headers: &[(&'static str, &'static str)], body: &'static str, delay: Duration) -> Self {
        let relay = Arc::new(Relay {
            status: StatusCode::from_u16(status).expect("status"),
            headers: headers
                .iter()
                .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
                .collect(),
            body,
            delay,
            received: Mutex::new(Vec::new()),
        });
        let app = Router::new().route("/push", post(record)).with_state(relay.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook {
            url: format!("http://{addr}/push?token=s3cret"),
            relay,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.relay.received.lock().expect("lock").clone()
    }
}

/// A fresh temporary directory, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        TempDir(std::env::temp_dir().join(format!("thisthat-outbox-webhook-{}", CompetitionId::new())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn message(title: &str) -> PushMessage {
    let competition = CompetitionId::new();
    PushMessage {
        title: title.into(),
        body: "Photo 1 won with 13 of 24 votes.".into(),
        competition,
        idempotency_key: format!("thisthat-result-{competition}"),
    }
}

/// A notifier posting to `url`, with alice registered.
async fn notifier_with(dir: &TempDir, url: &str) -> (OutboxNotifier, Endpoint) {
    let notifier = OutboxNotifier::open(&dir.0)
        .expect("open")
        .with_webhook(url)
        .expect("webhook");
    let endpoint = notifier.register(&device("alice")).await.expect("register");
    (notifier, endpoint)
}

#[tokio::test]
async fn a_push_reaches_the_webhook_and_the_outbox() {
    let webhook = Webhook::start(200, &[], "ok").await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    let m = message("Results are in: \"quotes\" and\nnewlines");
    assert_eq!(notifier.send(&endpoint, &m).await.expect("send"), Delivery::Accepted);

    let received = webhook.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["idempotency-key"], m.idempotency_key.as_str());
    let body: serde_json::Value = serde_json::from_slice(&request.body).expect("a JSON body");
    for field in [
        "time",
        "endpoint",
        "user",
        "platform",
        "title",
        "body",
        "competition",
        "idempotency_key",
    ] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    assert_eq!(body["user"], "alice");
    assert_eq!(body["platform"], "fcm");
    assert_eq!(body["endpoint"], endpoint.address.as_str());
    assert_eq!(request.entry().message(), m);

    // The same object, byte for byte, is the push's line in outbox.jsonl.
    let text = std::fs::read_to_string(notifier.outbox_path()).expect("read outbox.jsonl");
    assert_eq!(
        text,
        format!("{}\n", std::str::from_utf8(&request.body).expect("utf-8"))
    );
    let entries = notifier.read_outbox().expect("read");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0], request.entry());
}

#[tokio::test]
async fn a_503_is_unavailable_with_its_retry_after_and_the_retry_writes_the_line_again() {
    let webhook = Webhook::start(503, &[("retry-after", "7")], "busy").await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    let m = message("Results are in");
    for _ in 0..2 {
        match notifier.send(&endpoint, &m).await {
            Err(Error::Unavailable {
                provider: "webhook",
                retry_after,
                source: Some(_),
            }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }
    assert_eq!(webhook.received().len(), 2);
    // Written before each POST: the file holds the push twice, with the same key.
    let entries = notifier.read_outbox().expect("read");
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.idempotency_key == m.idempotency_key));
}

#[tokio::test]
async fn a_429_without_retry_after_is_unavailable() {
    let webhook = Webhook::start(429, &[], "").await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    let result = notifier.send(&endpoint, &message("Results are in")).await;
    assert!(
        matches!(
            result,
            Err(Error::Unavailable {
                provider: "webhook",
                retry_after: None,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_400_is_a_backend_error_naming_the_status() {
    let webhook = Webhook::start(400, &[], "bad\nsignature").await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    let result = notifier.send(&endpoint, &message("Results are in")).await;
    let Err(
        e @ Error::Backend {
            provider: "webhook", ..
        },
    ) = result
    else {
        panic!("expected a backend error, got {result:?}");
    };
    assert!(!e.is_retryable());
    let Error::Backend { message, .. } = &e else {
        unreachable!()
    };
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("bad signature"), "{message}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[tokio::test]
async fn a_webhook_nobody_listens_on_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &format!("http://{addr}/push?token=s3cret")).await;
    let result = notifier.send(&endpoint, &message("Results are in")).await;
    let Err(
        e @ Error::Unavailable {
            provider: "webhook", ..
        },
    ) = result
    else {
        panic!("expected unavailable, got {result:?}");
    };
    // The URL (and the secret in it) stays out of the error.
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(!chain.contains("s3cret"), "{chain}");
    // The push is in the outbox all the same.
    assert_eq!(notifier.read_outbox().expect("read").len(), 1);
}

#[tokio::test]
async fn a_webhook_slower_than_5_s_is_unavailable() {
    let webhook = Webhook::slow(204, &[], "", Duration::from_secs(30)).await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    let started = std::time::Instant::now();
    let result = notifier.send(&endpoint, &message("Results are in")).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            result,
            Err(Error::Unavailable {
                provider: "webhook",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(15),
        "{elapsed:?}"
    );
    assert_eq!(webhook.received().len(), 1);
}

#[tokio::test]
async fn gone_devices_are_not_posted() {
    let webhook = Webhook::start(204, &[], "").await;
    let dir = TempDir::new();
    let (notifier, endpoint) = notifier_with(&dir, &webhook.url).await;
    notifier.revoke(&endpoint).expect("revoke");
    assert_eq!(
        notifier
            .send(&endpoint, &message("Results are in"))
            .await
            .expect("send"),
        Delivery::Gone
    );
    assert!(webhook.received().is_empty());
}

#[test]
fn only_http_and_https_webhooks_are_accepted() {
    let dir = TempDir::new();
    let open = || OutboxNotifier::open(&dir.0).expect("open");
    for bad in ["ftp://x", "file:///tmp/push", "not a url", "mailto:dev@example.invalid"] {
        let result = open().with_webhook(bad);
        assert!(matches!(result, Err(Error::Config { .. })), "{bad}: {result:?}");
    }
    for good in ["http://127.0.0.1:9/push", "https://localhost/push", "http://[::1]:9/"] {
        open().with_webhook(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[tokio::test]
async fn outbox_urls_take_a_percent_encoded_webhook() {
    let webhook = Webhook::start(202, &[], "").await;
    let dir = TempDir::new();
    let path = url::Url::from_directory_path(&dir.0).expect("absolute");
    let mut url = url::Url::parse(&format!("outbox://{}", path.path())).expect("url");
    url.query_pairs_mut().append_pair("webhook", &webhook.url);
    assert!(url.as_str().contains("webhook=http%3A%2F%2F127.0.0.1"), "{url}");

    let notifier = LocalOpener.notifier(&url).await.expect("open");
    let endpoint = notifier.register(&device("alice")).await.expect("register");
    let m = message("Results are in");
    assert_eq!(notifier.send(&endpoint, &m).await.expect("send"), Delivery::Accepted);
    let received = webhook.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].entry().message(), m);
    assert_eq!(
        OutboxNotifier::open(&dir.0)
            .expect("reopen")
            .read_outbox()
            .expect("read")
            .len(),
        1
    );

    let mut plain = url.clone();
    plain.set_query(None);
    for query in [
        "webhook=ftp%3A%2F%2Fx",
        "hook=http%3A%2F%2F127.0.0.1%3A9%2F",
        "webhook=a&webhook=b",
    ] {
        let mut bad = plain.clone();
        bad.set_query(Some(query));
        let result = LocalOpener.notifier(&bad).await;
        assert!(matches!(result, Err(Error::Config { .. })), "{bad}: {result:?}");
    }
}

/// The conformance suite through a webhook that answers 204 to everything: what counts as
/// delivered is what the webhook received.
struct Webhooked {
    notifier: Arc<OutboxNotifier>,
    webhook: Webhook,
    _dir: TempDir,
}

impl Webhooked {
    async fn new() -> Self {
        let webhook = Webhook::start(204, &[], "").await;
        let dir = TempDir::new();
        let notifier = OutboxNotifier::open(&dir.0)
            .expect("open")
            .with_webhook(&webhook.url)
            .expect("webhook");
        Webhooked {
            notifier: Arc::new(notifier),
            webhook,
            _dir: dir,
        }
    }
}

#[async_trait]
impl NotifierHarness for Webhooked {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.notifier.clone()
    }

    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        let posted: Vec<OutboxEntry> = self
            .webhook
            .received()
            .iter()
            .map(Received::entry)
            .filter(|e| e.endpoint == endpoint.address)
            .collect();
        let written: Vec<OutboxEntry> = self
            .notifier
            .read_outbox()?
            .into_iter()
            .filter(|e| e.endpoint == endpoint.address)
            .collect();
        assert_eq!(posted, written, "the webhook got exactly what outbox.jsonl holds");
        Ok(posted.iter().map(OutboxEntry::message).collect())
    }

    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        self.notifier.revoke(endpoint)
    }
}

mod notifier {
    use super::*;
    thisthat_testkit::notifier_conformance!(async { Webhooked::new().await });
}
