//! The HTTP plumbing thisthat's REST adapters share (Azure Notification Hubs and AI Vision,
//! Azure Tables, FCM, Google Vision, Rekognition's fakes): one way to build a client, send a
//! request and turn a provider's status code into the [`thisthat_core::Error`] a caller can
//! act on. Adapters that go through a provider's own SDK do not need it.
//!
//! ```
//! use thisthat_http::{status_error, HttpStatusError};
//! use thisthat_core::Error;
//!
//! let e = status_error("fcm", HttpStatusError::new(429, "quota exceeded").with_retry_after(Some(std::time::Duration::from_secs(3))));
//! assert!(e.is_retryable());
//! let e = status_error("fcm", HttpStatusError::new(401, "bad token"));
//! assert!(matches!(e, Error::Config { .. }));
//! ```

use std::time::Duration;

use bytes::Bytes;
use reqwest::{RequestBuilder, Response};
use thisthat_core::{Error, Result};

/// How long a request may take in all before it counts as unavailable. Providers answer these
/// calls in well under a second; a minute only guards against a connection that hangs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A `reqwest` client set up the way every thisthat REST adapter uses it: rustls (ring, the
/// one crypto provider the workspace links), connect and overall timeouts, and a user agent
/// naming thisthat.
pub fn client() -> Result<reqwest::Client> {
    build(client_builder())
}

/// The builder [`client`] uses, for an adapter that needs one setting changed (for example a
/// shorter idle-connection timeout than a server's keep-alive); finish it with [`build`].
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("thisthat/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(DEFAULT_TIMEOUT)
}

/// Builds a client from [`client_builder`], mapping a failure onto [`Error::Config`].
pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder.build().map_err(|e| Error::Config {
        reason: "could not build the HTTP client".into(),
        source: Some(e.into()),
    })
}

/// A provider answered with a status that was not a success. Kept as the `source` of the
/// mapped [`Error`] so that logs show what the provider said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct HttpStatusError {
    /// The status code.
    pub status: u16,
    /// The start of the response body (providers put their error code and message there).
    pub body: String,
    /// The provider's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

impl HttpStatusError {
    /// The longest part of an error body kept; provider error bodies are short, HTML error
    /// pages from proxies are not.
    pub const MAX_BODY: usize = 2048;

    /// An error for `status` with (the start of) `body`.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if body.len() > Self::MAX_BODY {
            let mut end = Self::MAX_BODY;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
        }
        HttpStatusError {
            status,
            body,
            retry_after: None,
        }
    }

    /// Sets the wait the provider asked for.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Reads the status, `Retry-After` and body of a failed response.
    pub async fn from_response(response: Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response.text().await.unwrap_or_default();
        HttpStatusError::new(status, body).with_retry_after(retry_after)
    }
}

/// The `Retry-After` header in seconds, if present (the HTTP-date form is not used by the
/// providers thisthat talks to).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Maps a provider's failed status onto the error a caller can act on, for statuses that mean
/// the same at every provider: 401/403 are credentials or permissions (fix the configuration),
/// 408, 429 and 5xx are worth retrying, anything else is a provider failure. Two 5xx are not
/// retried: 501 (Not Implemented) and 505 (HTTP Version Not Supported) say the request itself
/// is one the server will never serve, so asking again only repeats the refusal. Statuses that
/// mean something specific to one call (404 for a missing blob, 409 or 412 for a lost race,
/// 410 for a gone device) are the adapter's to map before it falls back to this.
pub fn status_error(provider: &'static str, error: HttpStatusError) -> Error {
    match error.status {
        401 | 403 => Error::Config {
            reason: format!(
                "{provider} refused the credentials (HTTP {}): check the key, token or role",
                error.status
            ),
            source: Some(error.into()),
        },
        // The guard leaves 501 and 505 to the last arm: they are permanent (see above).
        408 | 429 | 500..=599 if !matches!(error.status, 501 | 505) => Error::Unavailable {
            provider,
            retry_after: error.retry_after,
            source: Some(error.into()),
        },
        _ => Error::Backend {
            provider,
            message: format!("unexpected HTTP {}", error.status),
            source: Some(error.into()),
        },
    }
}

/// Whether a request may be sent again when it failed in transport before any answer came
/// back.
///
/// HTTP/1.1 keeps connections open for reuse, and a server may close one just as the client
/// takes it from its pool (load balancers do when their idle timeout ends; fake-gcs-server
/// does after every 416). The request then fails with a reset or an incomplete message
/// although the server never answered it. Whether sending it again is safe depends on the
/// request, so the caller says so per request; it is never guessed from the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resend {
    /// Never: a second copy could do something twice or misreport what happened (a
    /// conditional write whose first copy may have landed, a push). The failure goes to the
    /// caller as [`Error::Unavailable`].
    Never,
    /// Again, at once, while it fails before any answer (at most [`MAX_RESENDS`] times):
    /// sending it again leaves the same state as sending it once (a read, a delete, an
    /// overwrite with the same bytes), or the caller checks what a later answer means
    /// ([`Answer::resent`]; for example a create-only upload whose resend is refused because
    /// the first copy landed).
    Safe,
}

/// What came back for a request: the response, whatever its status, and whether it answers a
/// later copy of the request ([`Resend::Safe`]).
#[derive(Debug)]
pub struct Answer {
    /// The response.
    pub response: Response,
    /// `true` when the first copy failed in transport and this answers a later one: an
    /// earlier copy may still have reached the server.
    pub resent: bool,
}

/// Whether a transport failure happened before any answer, on a connection the server may
/// have closed: a reset, an incomplete message, a refused or failed connect. A timeout is not
/// one of them: the server may still be working on the request, and waiting as long again
/// would double the time a caller waits for an answer that is not coming; the caller's retry
/// layer decides (with backoff) instead.
fn failed_before_an_answer(error: &reqwest::Error) -> bool {
    !error.is_timeout() && !error.is_builder() && (error.is_connect() || error.is_request())
}

/// How many more copies of a [`Resend::Safe`] request are sent when each failed before any
/// answer. Each such failure used up one pooled connection the server had closed, and a pool
/// may hold more than one (the client keeps several idle connections per host), so one more
/// copy is not always enough; three cannot loop for long against a server that is down.
pub const MAX_RESENDS: usize = 3;

/// Sends a request and returns what came back, whatever its status; a transport failure
/// before any answer sends it again, up to [`MAX_RESENDS`] times, if `resend` allows it.
/// Transport failures are [`Error::Unavailable`] (see [`transport_error`]).
pub async fn exchange(provider: &'static str, request: RequestBuilder, resend: Resend) -> Result<Answer> {
    let mut spare = match resend {
        Resend::Safe => request.try_clone(),
        Resend::Never => None,
    };
    let mut request = request;
    let mut resent = 0;
    loop {
        match request.send().await {
            Ok(response) => {
                return Ok(Answer {
                    response,
                    resent: resent > 0,
                });
            }
            Err(e) if failed_before_an_answer(&e) && resent < MAX_RESENDS => match spare.take() {
                Some(next) => {
                    tracing::debug!(provider, error = %e, "a request failed before any answer; sending it again");
                    spare = next.try_clone();
                    request = next;
                    resent += 1;
                }
                None => return Err(transport_error(provider, e)),
            },
            Err(e) => return Err(transport_error(provider, e)),
        }
    }
}

/// Returns the response if its status is a success; a failed status goes through `on_status`
/// first (return `Some` to map a call-specific status) and then [`status_error`].
pub async fn success(
    provider: &'static str,
    response: Response,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let error = HttpStatusError::from_response(response).await;
    tracing::debug!(provider, status = error.status, body = %error.body, "provider refused the request");
    Err(on_status(&error).unwrap_or_else(|| status_error(provider, error)))
}

/// Sends a request once ([`Resend::Never`]) and returns the response if its status is a
/// success; a failed status goes through `on_status` first (return `Some` to map a
/// call-specific status) and then [`status_error`]. Transport failures (connect, timeout,
/// reset) are [`Error::Unavailable`].
pub async fn send(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<Response> {
    let answer = exchange(provider, request, Resend::Never).await?;
    success(provider, answer.response, on_status).await
}

/// Like [`send`], for a request that is safe to repeat (a read, a delete, an overwrite with
/// the same bytes): a transport failure before any answer sends it again
/// ([`Resend::Safe`]).
pub async fn send_idempotent(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<Response> {
    let answer = exchange(provider, request, Resend::Safe).await?;
    success(provider, answer.response, on_status).await
}

/// Like [`send`], then reads the whole body.
pub async fn send_for_bytes(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<Bytes> {
    let response = send(provider, request, on_status).await?;
    response.bytes().await.map_err(|e| transport_error(provider, e))
}

/// Like [`send`], then decodes the body as JSON (see [`json`]).
pub async fn send_for_json<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<T> {
    json(provider, send(provider, request, on_status).await?).await
}

/// Reads a response's body and decodes it as JSON. A body that does not decode is a provider
/// failure, not a retryable one: the provider answered, just not as documented.
pub async fn json<T: serde::de::DeserializeOwned>(provider: &'static str, response: Response) -> Result<T> {
    let body = response.bytes().await.map_err(|e| transport_error(provider, e))?;
    serde_json::from_slice(&body).map_err(|e| Error::Backend {
        provider,
        message: "the response did not match the documented shape".into(),
        source: Some(e.into()),
    })
}

/// A transport failure: nothing useful came back, so the call may be retried.
pub fn transport_error(provider: &'static str, error: reqwest::Error) -> Error {
    if error.is_builder() {
        return Error::Config {
            reason: format!("could not build a request to {provider}: check the endpoint URL"),
            source: Some(error.into()),
        };
    }
    Error::unavailable(provider, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_callers_can_act_on() {
        assert!(matches!(
            status_error("p", HttpStatusError::new(403, "")),
            Error::Config { .. }
        ));
        assert!(matches!(
            status_error("p", HttpStatusError::new(400, "")),
            Error::Backend { .. }
        ));
        for status in [408, 429, 500, 502, 503, 504, 507, 599] {
            assert!(
                status_error("p", HttpStatusError::new(status, "")).is_retryable(),
                "{status}"
            );
        }
        let e = status_error(
            "p",
            HttpStatusError::new(429, "").with_retry_after(Some(Duration::from_secs(7))),
        );
        assert!(matches!(e, Error::Unavailable { retry_after: Some(d), .. } if d == Duration::from_secs(7)));
    }

    #[test]
    fn permanent_server_errors_are_not_retried() {
        // 501 and 505 refuse the request itself: retrying repeats the refusal.
        for status in [501, 505] {
            let e = status_error("p", HttpStatusError::new(status, ""));
            assert!(!e.is_retryable(), "{status}: {e:?}");
            assert!(matches!(e, Error::Backend { .. }), "{status}: {e:?}");
        }
    }

    /// A server that answers the first request on a connection, then reads the second and
    /// closes the connection without answering it: what a server that closes a kept-alive
    /// connection just as the client reuses it looks like to the client, every time rather
    /// than by chance. Every later connection is answered normally. Returns the address and
    /// a count of the requests answered.
    async fn server_closing_the_reused_connection()
    -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            let mut first = true;
            while let Ok((mut socket, _)) = listener.accept().await {
                let close_second = std::mem::take(&mut first);
                let answered = count.clone();
                tokio::spawn(async move {
                    let mut served = 0;
                    let mut buffer = vec![0u8; 4096];
                    let mut pending = Vec::new();
                    loop {
                        let Ok(n) = socket.read(&mut buffer).await else { return };
                        if n == 0 {
                            return;
                        }
                        pending.extend_from_slice(&buffer[..n]);
                        // Requests here are bodiless GETs: one ends at its blank line.
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            if close_second && served == 1 {
                                return; // drops the socket: the reused connection closes unanswered
                            }
                            served += 1;
                            answered.fetch_add(1, Ordering::SeqCst);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok";
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (address, answered)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotent_requests_survive_a_server_closing_a_reused_connection() {
        let (address, answered) = server_closing_the_reused_connection().await;
        let http = client().expect("client");
        let url = format!("http://{address}/");
        let first = exchange("p", http.get(&url), Resend::Safe).await.expect("first");
        assert!(!first.resent);
        first.response.bytes().await.expect("body"); // back to the pool for reuse
        let second = exchange("p", http.get(&url), Resend::Safe)
            .await
            .expect("the resend is answered");
        assert!(second.resent, "the first copy went out on the closed connection");
        assert_eq!(second.response.bytes().await.expect("body").as_ref(), b"ok");
        assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_requests_are_not_sent_twice() {
        let (address, answered) = server_closing_the_reused_connection().await;
        let http = client().expect("client");
        let url = format!("http://{address}/");
        send("p", http.get(&url), |_| None)
            .await
            .expect("first")
            .bytes()
            .await
            .expect("body");
        let second = send("p", http.get(&url), |_| None).await;
        assert!(matches!(second, Err(Error::Unavailable { .. })), "{second:?}");
        assert_eq!(
            answered.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "nothing was sent again"
        );
    }

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let body = "é".repeat(HttpStatusError::MAX_BODY);
        let e = HttpStatusError::new(500, body);
        assert!(e.body.len() <= HttpStatusError::MAX_BODY);
        assert!(e.body.chars().all(|c| c == 'é'));
    }
}
