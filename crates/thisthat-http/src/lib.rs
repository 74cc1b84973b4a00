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

/// Sends a request and returns the response if its status is a success; a failed status goes
/// through `on_status` first (return `Some` to map a call-specific status) and then
/// [`status_error`]. Transport failures (connect, timeout, reset) are [`Error::Unavailable`].
pub async fn send(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<Response> {
    let response = request.send().await.map_err(|e| transport_error(provider, e))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let error = HttpStatusError::from_response(response).await;
    tracing::debug!(provider, status = error.status, body = %error.body, "provider refused the request");
    Err(on_status(&error).unwrap_or_else(|| status_error(provider, error)))
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

/// Like [`send`], then decodes the body as JSON. A body that does not decode is a provider
/// failure, not a retryable one: the provider answered, just not as documented.
pub async fn send_for_json<T: serde::de::DeserializeOwned>(
    provider: &'static str,
    request: RequestBuilder,
    on_status: impl FnOnce(&HttpStatusError) -> Option<Error>,
) -> Result<T> {
    let body = send_for_bytes(provider, request, on_status).await?;
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

    #[test]
    fn long_bodies_are_cut_on_a_character_boundary() {
        let body = "é".repeat(HttpStatusError::MAX_BODY);
        let e = HttpStatusError::new(500, body);
        assert!(e.body.len() <= HttpStatusError::MAX_BODY);
        assert!(e.body.chars().all(|c| c == 'é'));
    }
}
