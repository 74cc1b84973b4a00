//! A local HTTP fake for providers that have no emulator (Rekognition's moderation call,
//! Notification Hubs, AI Vision, FCM, Google Vision). It listens on loopback, records every
//! request, and answers with what a test's handler returns; the handler checks the request
//! against the provider's documented wire format and refuses anything else, so an adapter test
//! fails when the adapter sends what the real service would reject.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use thisthat_testkit::wire::{Reply, WireFake};
//!
//! let fake = WireFake::start(|req| {
//!     if req.header("authorization") != Some("Bearer t") {
//!         return Err("missing bearer token".into());
//!     }
//!     Ok(Reply::json(200, serde_json::json!({"name": "projects/p/messages/1"})))
//! })
//! .await;
//! let res = reqwest::Client::new()
//!     .post(format!("{}/v1/send", fake.url()))
//!     .bearer_auth("t")
//!     .body("{}")
//!     .send()
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), 200);
//! assert_eq!(fake.requests()[0].path, "/v1/send");
//! assert!(fake.violations().is_empty());
//! # }
//! ```

use std::sync::{Arc, Mutex};

use axum::{body::Body, http::Request, response::Response};
use bytes::Bytes;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, percent-encoded as sent.
    pub path: String,
    /// The raw query string (without `?`), empty if none.
    pub query: String,
    /// Every header, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body as JSON, or an error message a handler can return as a violation.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("body is not JSON: {e}"))
    }
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Bytes,
}

impl Reply {
    /// An empty reply with `status`.
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A JSON reply.
    pub fn json(status: u16, value: serde_json::Value) -> Self {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(value.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}

type Handler = dyn Fn(&RecordedRequest) -> Result<Reply, String> + Send + Sync;

/// A running fake; it stops when dropped.
pub struct WireFake {
    url: String,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    violations: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl WireFake {
    /// Starts a fake on a free loopback port. The handler sees every request; an `Err` is a
    /// violation of the documented wire format: it is recorded (see [`WireFake::violations`])
    /// and answered with HTTP 400 and the message, as the real service would refuse it.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine, not an input).
    pub async fn start(handler: impl Fn(&RecordedRequest) -> Result<Reply, String> + Send + Sync + 'static) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the wire fake");
        let addr = listener.local_addr().expect("local address of a bound listener");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let app = {
            let requests = requests.clone();
            let violations = violations.clone();
            axum::Router::new().fallback(move |request: Request<Body>| {
                let requests = requests.clone();
                let violations = violations.clone();
                let handler = handler.clone();
                async move { answer(request, &requests, &violations, &*handler).await }
            })
        };
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WireFake {
            url: format!("http://{addr}"),
            requests,
            violations,
            server,
        }
    }

    /// The fake's base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    /// Every violation the handler reported so far. A test of an adapter should end by
    /// asserting this is empty.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.violations).clone()
    }
}

impl Drop for WireFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn answer(
    request: Request<Body>,
    requests: &Mutex<Vec<RecordedRequest>>,
    violations: &Mutex<Vec<String>>,
    handler: &Handler,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    lock(requests).push(recorded.clone());
    let reply = match handler(&recorded) {
        Ok(reply) => reply,
        Err(violation) => {
            let message = format!("{} {}: {violation}", recorded.method, recorded.path);
            lock(violations).push(message.clone());
            Reply::status(400).body(format!("wire fake refused the request: {message}"))
        }
    };
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response
        .body(Body::from(reply.body))
        .unwrap_or_else(|_| Response::new(Body::from("wire fake: invalid reply")))
}
