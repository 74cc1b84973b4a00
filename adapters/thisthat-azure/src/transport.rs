//! The bridge that lets the Azure SDK crates send their requests through thisthat's HTTP client
//! (reqwest 0.12 with rustls on ring), so the workspace links one TLS stack and no aws-lc-rs:
//! `azure_core`'s own reqwest transport is reqwest 0.13, whose rustls feature pulls aws-lc-rs.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use azure_core::{
    error::ErrorKind,
    http::{
        AsyncRawResponse, Body, HttpClient, Method, Request,
        headers::{HeaderName, HeaderValue, Headers},
    },
};
use futures::TryStreamExt;

/// An `azure_core` HTTP client over a `reqwest` 0.12 client. Redirects are not followed by
/// the Azure SDK's design; `thisthat_http::client()` keeps reqwest's default, which storage
/// endpoints never use.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Wraps `client`.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }

    /// An `azure_core` transport option using this client.
    pub fn transport(client: reqwest::Client) -> azure_core::http::Transport {
        azure_core::http::Transport::new(Arc::new(ReqwestTransport::new(client)))
    }
}

fn method(m: Method) -> azure_core::Result<reqwest::Method> {
    Ok(match m {
        Method::Delete => reqwest::Method::DELETE,
        Method::Get => reqwest::Method::GET,
        Method::Head => reqwest::Method::HEAD,
        Method::Patch => reqwest::Method::PATCH,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        other => {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                format!("HTTP method {other:?} is not supported by the thisthat transport"),
            ));
        }
    })
}

#[async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut builder = self.client.request(method(request.method())?, request.url().clone());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let builder = match request.body().clone() {
            Body::Bytes(bytes) => builder.body(bytes),
            Body::SeekableStream(stream) => builder.body(reqwest::Body::wrap_stream(stream)),
        };
        let response = builder.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            azure_core::Error::with_error(kind, e, "the HTTP request failed")
        })?;
        let status = response.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                Some((HeaderName::from(k.as_str().to_owned()), HeaderValue::from(v.to_owned())))
            })
            .collect();
        let body = Box::pin(
            response
                .bytes_stream()
                .map_err(|e| azure_core::Error::with_error(ErrorKind::Io, e, "reading the response body failed")),
        );
        Ok(AsyncRawResponse::new(status.into(), Headers::from(headers), body))
    }
}

/// `azure_core` client options whose transport is thisthat's HTTP client.
pub fn client_options() -> thisthat_core::Result<azure_core::http::ClientOptions> {
    Ok(azure_core::http::ClientOptions {
        transport: Some(ReqwestTransport::transport(thisthat_http::client()?)),
        ..Default::default()
    })
}
