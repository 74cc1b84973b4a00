//! The bodies of thisthat's fuzz targets: each takes arbitrary bytes, feeds them to one input
//! parser as an outside client could, and checks what must hold whatever the bytes (no panic,
//! a typed error, a canonical form, no server error). The `cargo fuzz` targets in `fuzz/`
//! call these; `scripts/fuzz SECONDS` runs them, and `tests/corpus.rs` replays the committed
//! corpora in every test run. See `docs/reliability.md`, "Fuzzing".

use std::{
    str::FromStr,
    sync::OnceLock,
    time::{Duration, SystemTime},
};

use axum::body::Body;
use thisthat_core::{
    BlobKey, Cursor, Error, Registry, Rules, Thisthat, UserId,
    decode::{self, DecodeLimits},
    media,
    ports::{SignedMethod, SignedUrlRequest},
    registry::{UrlParams, url_host},
    signing::UrlSigner,
};
use thisthat_memory::{MemoryBackend, MemoryOpener};
use thisthat_server::{AppState, Auth, Router};
use tower::ServiceExt as _;

/// The secret the server targets' tokens are signed with.
const SECRET: &[u8] = b"thisthat-fuzz-secret-of-32-bytes";
/// The boundary the multipart target's bodies are framed with (the corpus uses it).
pub const BOUNDARY: &str = "thisthat-fuzz";

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The targets by name, for the corpus replay.
pub const TARGETS: [(&str, Target); 6] = [
    ("photo", photo),
    ("multipart", multipart),
    ("authorization", authorization),
    ("cursor", cursor),
    ("signed_url", signed_url),
    ("adapter_url", adapter_url),
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// Photo sniffing and decoding: a photo is accepted only whole (no bytes after its end),
/// within the limits, with a display variant that is an image of the size it claims; anything
/// else is `UnsupportedMediaType` or `TooLarge`.
pub fn photo(data: &[u8]) {
    let _ = media::sniff(data);
    // A smaller budget than the default keeps each run fast; the checks are the same.
    let limits = DecodeLimits {
        max_pixels: 4_000_000,
        max_alloc: 64 << 20,
    };
    match decode::check_and_render(0, data, &limits, 1280) {
        Ok(checked) => {
            assert_eq!(
                decode::image_end(data, checked.info.media_type),
                Some(data.len()),
                "an accepted photo has nothing after its end"
            );
            let display = &checked.display;
            assert!(display.width.max(display.height) <= 1280);
            let seen = media::sniff(&display.bytes).expect("the variant is an image");
            assert_eq!(
                (seen.media_type, seen.width, seen.height),
                (display.media_type, display.width, display.height)
            );
        }
        Err(Error::UnsupportedMediaType { .. } | Error::TooLarge { .. }) => {}
        Err(other) => panic!("a photo is refused as unsupported or too large, not {other:?}"),
    }
}

fn service() -> Thisthat {
    Thisthat::builder(MemoryBackend::new().backend())
        .rules(Rules::default())
        .build()
        .expect("default rules")
}

fn router() -> Router {
    thisthat_server::router(AppState {
        service: service(),
        auth: Auth::hs256(SECRET),
        blobs: None,
        clock: std::sync::Arc::new(thisthat_core::SystemClock),
    })
}

/// Sends `request` through a fresh embedded server; every answer is a success or a client
/// error with a JSON body, never a server error.
fn answer(request: axum::http::Request<Body>) -> axum::http::StatusCode {
    runtime().block_on(async {
        let response = router().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        assert!(
            !status.is_server_error(),
            "{status} for a client's input: {}",
            String::from_utf8_lossy(&body)
        );
        if status.is_client_error() {
            assert!(
                body.first() == Some(&b'{'),
                "{status} answered in JSON, not {:?}",
                String::from_utf8_lossy(&body)
            );
        }
        status
    })
}

fn token() -> String {
    let user = UserId::new("fuzzer").expect("a user id");
    thisthat_server::issue_hs256(SECRET, &user, Duration::from_secs(3600)).expect("a token")
}

/// The multipart create body: whatever the bytes, `POST /v1/competitions` answers 201 or a
/// client error in JSON.
pub fn multipart(data: &[u8]) {
    let request = axum::http::Request::post("/v1/competitions")
        .header("authorization", format!("Bearer {}", token()))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(data.to_vec()))
        .expect("a request");
    let status = answer(request);
    assert!(status.as_u16() == 201 || status.is_client_error(), "{status}");
}

/// The bearer token and `Authorization` header: whatever the header, a vote answers a client
/// error in JSON (no token of ours can be forged), never a server error.
pub fn authorization(data: &[u8]) {
    let Ok(header) = axum::http::HeaderValue::from_bytes(data) else {
        return;
    };
    let request = axum::http::Request::post(format!(
        "/v1/competitions/{}/votes",
        thisthat_core::CompetitionId::new()
    ))
    .header("authorization", header)
    .header("content-type", "application/json")
    .body(Body::from(r#"{"choice":0}"#))
    .expect("a request");
    let status = answer(request);
    assert!(status.is_client_error(), "{status}");
}

/// The feed cursor: one canonical form. A string that parses is exactly the cursor's own
/// rendering; anything else is refused as invalid input on `cursor`.
pub fn cursor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Cursor::from_str(text) {
        Ok(cursor) => assert_eq!(cursor.to_string(), text, "a cursor has one form"),
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "cursor"),
        Err(other) => panic!("a bad cursor is invalid input, not {other:?}"),
    }
}

/// Signed-URL verification: a URL is granted only for the blob, method and form it was signed
/// for. The bytes are both a URL to verify and a key to sign and verify.
pub fn signed_url(data: &[u8]) {
    let signer = UrlSigner::new(vec![7; 32], "http://127.0.0.1:1/blobs/").expect("a signer");
    let now = SystemTime::now();
    let (method, rest) = match data.split_first() {
        Some((m, rest)) => (if m % 2 == 0 { "GET" } else { "PUT" }, rest),
        None => ("GET", data),
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(grant) = signer.verify(method, text, now) {
        // Only what the signer made verifies; this URL then re-signs to itself.
        let request = SignedUrlRequest {
            method: match (method, &grant.content_type, grant.max_size) {
                ("PUT", Some(content_type), Some(max_size)) => SignedMethod::Put {
                    content_type: content_type.clone(),
                    max_size,
                },
                _ => SignedMethod::Get,
            },
            expires_in: Duration::from_secs(60),
            served_as: None,
        };
        assert!(signer.sign(&grant.key, &request, now).is_ok());
    }
    let Ok(key) = BlobKey::new(text) else {
        return;
    };
    let get = SignedUrlRequest {
        method: SignedMethod::Get,
        expires_in: Duration::from_secs(60),
        served_as: None,
    };
    let url = signer.sign(&key, &get, now).expect("a valid key signs");
    let grant = signer.verify("GET", &url.url, now).expect("a signed URL verifies");
    assert_eq!(grant.key, key);
    assert!(
        signer.verify("PUT", &url.url, now).is_err(),
        "a GET URL does not upload"
    );
    assert!(
        signer.verify("GET", &format!("{}0", url.url), now).is_err(),
        "a changed signature is refused"
    );
    let later = now + Duration::from_secs(3600);
    assert!(
        signer.verify("GET", &url.url, later).is_err(),
        "an expired URL is refused"
    );
}

/// Adapter URL parsing: the query parser every opener uses, the bucket/table name, and the
/// registry's dispatch by scheme. Whatever the URL, a typed error or a consistent answer.
pub fn adapter_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = url::Url::parse(text) {
        let allowed = ["create", "region", "endpoint", "path_style"];
        match UrlParams::parse(&url, &allowed) {
            Ok(params) => {
                for (name, value) in url.query_pairs() {
                    assert_eq!(params.get(&name), Some(value.as_ref()));
                }
                match params.flag("create", false) {
                    Ok(_) | Err(Error::Config { .. }) => {}
                    Err(other) => panic!("a bad flag is a configuration error, not {other:?}"),
                }
            }
            Err(Error::Config { .. }) => {}
            Err(other) => panic!("a bad URL is a configuration error, not {other:?}"),
        }
        match url_host(&url, "bucket") {
            Ok(host) => assert!(!host.is_empty()),
            Err(Error::Config { .. }) => {}
            Err(other) => panic!("a URL without a host is a configuration error, not {other:?}"),
        }
    }
    let registry = Registry::new().with(MemoryOpener);
    runtime().block_on(async {
        match registry.blob_store(text).await {
            // The URL parser (WHATWG's rules) trims leading control characters and spaces,
            // so the scheme is the parsed URL's, not the text's first bytes.
            Ok(_) => assert!(
                url::Url::parse(text).is_ok_and(|u| u.scheme() == "memory"),
                "only memory:// is registered"
            ),
            Err(Error::Config { .. }) => {}
            Err(other) => panic!("an unusable URL is a configuration error, not {other:?}"),
        }
    });
}
