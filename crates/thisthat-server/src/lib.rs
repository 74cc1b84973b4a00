//! The HTTP API of thisthat: a versioned JSON API over the [`Thisthat`] service, the same
//! router locally (`thisthat serve`) and on AWS Lambda ([`lambda`], feature `lambda`), where
//! the same function also runs the scheduled maintenance.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/competitions` | create from a multipart body: `title` (optional) and three `photo` parts |
//! | `POST /v1/uploads` | begin a signed upload: `{"title", "photos": [{"media_type": "image/png"}, …]}` |
//! | `POST /v1/uploads/{id}/finish` | finish it once the photos are uploaded |
//! | `GET /v1/competitions/{id}` | one competition |
//! | `GET /v1/competitions/{id}/photos` | signed download URLs of its photos (display variants, no metadata) |
//! | `GET /v1/competitions/{id}/originals` | the owner only: signed download URLs of the originals as uploaded |
//! | `POST /v1/competitions/{id}/votes` | vote: `{"choice": 0}` |
//! | `GET /v1/feed?category=&cursor=&limit=` | open competitions, newest first |
//! | `POST /v1/devices`, `DELETE /v1/devices/{token}` | register or forget a push device |
//! | `GET`/`PUT /blobs/{key}?…signature…` | signed URLs of the embedded file store |
//! | `GET /v1/openapi.json`, `GET /healthz` | the API description ([`openapi`], generated from the handlers); liveness |
//!
//! Every write needs `Authorization: Bearer <JWT>`; reads work without one. Errors are
//! `{"error": {"code", "message", "field"}}` with the status of [`thisthat_core::Error::http_status`].

pub mod auth;
pub mod error;
mod input;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod openapi;
mod routes;
mod wire;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, HttpBody},
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, Request, header::CONNECTION},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use thisthat_core::{Clock, Thisthat, ports::BlobStore, signing::UrlSigner};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use auth::{Auth, JwksConfig, MaybeUser, User, issue_hs256};
/// The router type [`router`] returns.
pub use axum::Router;
pub use error::ApiError;
#[cfg(feature = "lambda")]
pub use lambda::{LambdaFunction, run_lambda};

/// A blob store the server serves signed URLs for (the embedded file store), with the signer
/// that signed them.
#[derive(Debug, Clone)]
pub struct BlobServer {
    /// The store.
    pub store: Arc<dyn BlobStore>,
    /// The signer its URLs were signed with.
    pub signer: UrlSigner,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service.
    pub service: Thisthat,
    /// How callers are authenticated.
    pub auth: Auth,
    /// The blob store whose signed URLs this server answers, if it serves one.
    pub blobs: Option<BlobServer>,
    /// The clock signed URLs are checked against.
    pub clock: Arc<dyn Clock>,
}

/// Competition creations handled at once: each may hold three photos in memory.
const CREATES_AT_ONCE: usize = 8;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long a request may take before it is answered `408 timeout`.
const REQUEST_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The whole API as an axum router.
pub fn router(state: AppState) -> Router {
    let photo_limit = usize::try_from(state.service.rules().max_photo_bytes).unwrap_or(usize::MAX);
    // Three photos at the limit plus room for the multipart framing and the title.
    let create_limit = photo_limit
        .saturating_mul(state.service.rules().photos_per_competition)
        .saturating_add(64 * 1024);
    // The document of this server's own limits, generated on its first request rather than
    // on every start (a Lambda function pays its start on each cold start).
    // axum clones a handler for each request it serves: one `Arc` is all this one holds.
    let document = Arc::new((
        state.service.rules().clone(),
        std::sync::OnceLock::<bytes::Bytes>::new(),
    ));
    let openapi = move || {
        let (rules, json) = &*document;
        routes::openapi(json.get_or_init(|| openapi::document_json(rules).into()).clone())
    };
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/competitions",
            // At most CREATES_AT_ONCE bodies of up to `create_limit` in memory at a time; further
            // creations wait their turn (and time out after 30 s like every request).
            post(routes::create).layer(
                tower::ServiceBuilder::new()
                    .layer(tower::limit::ConcurrencyLimitLayer::new(CREATES_AT_ONCE))
                    .layer(DefaultBodyLimit::max(create_limit)),
            ),
        )
        .route("/v1/competitions/{id}", get(routes::competition))
        .route("/v1/competitions/{id}/photos", get(routes::photo_urls))
        .route("/v1/competitions/{id}/originals", get(routes::original_urls))
        .route("/v1/competitions/{id}/votes", post(routes::vote))
        .route("/v1/uploads", post(routes::begin_upload))
        .route("/v1/uploads/{id}/finish", post(routes::finish_upload))
        .route("/v1/feed", get(routes::feed))
        .route("/v1/devices", post(routes::register_device))
        .route("/v1/devices/{token}", delete(routes::unregister_device))
        // Uploads are bounded in `blob_put`, by the smaller of the URL's limit and the
        // server's (`DefaultBodyLimit` does not apply to a streamed body).
        .route("/blobs/{*key}", get(routes::blob_get).put(routes::blob_put))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state)
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn(close_if_body_unread))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Answers `408 timeout` (JSON, like every error) to a request still running after
/// [`REQUEST_TIME_LIMIT`].
async fn time_limit(request: Request<Body>, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIME_LIMIT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout(REQUEST_TIME_LIMIT).into_response(),
    }
}

/// Marks the answer to a request whose body was not read to its end (refused before it was
/// read, or cut off at a size limit) `Connection: close`. The unread rest of the body is
/// still on the connection, so it cannot carry another request; hyper would close it after
/// the answer anyway, but without the header a client that expects the connection to stay
/// open (and is still sending its upload) sees it dropped instead of reading the answer.
async fn close_if_body_unread(request: Request<Body>, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let body = Body::new(ReadToEnd {
        body,
        read: read.clone(),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if !read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records whether it was read to its end.
struct ReadToEnd {
    body: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for ReadToEnd {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.body.is_end_stream() {
            this.read.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets requests in flight
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
