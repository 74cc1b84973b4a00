//! Production auth: tokens of an identity provider verified against the keys it publishes
//! (a JWKS served on loopback, as Cognito, Firebase Auth and Entra ID publish theirs).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{Router, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use thisthat_core::Thisthat;
use thisthat_server::{AppState, Auth, JwksConfig};
use thisthat_testkit::memory::MemoryBackend;

const ISSUER: &str = "https://issuer.example/pool-1";
const AUDIENCE: &str = "thisthat-app";

struct Setup {
    api: String,
    jwks_fetches: Arc<AtomicUsize>,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn setup() -> Setup {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    [("content-type", "application/json")],
                    include_str!("fixtures/test-jwks.json"),
                )
            }
        }),
    );
    let jwks_base = serve(jwks).await;
    let auth = Auth::jwks(JwksConfig {
        url: format!("{jwks_base}/.well-known/jwks.json"),
        issuer: ISSUER.into(),
        audience: Some(AUDIENCE.into()),
    })
    .expect("jwks");
    let service = Thisthat::builder(MemoryBackend::new().backend())
        .build()
        .expect("service");
    let state = AppState {
        service,
        auth,
        blobs: None,
        clock: Arc::new(thisthat_core::SystemClock),
    };
    Setup {
        api: serve(thisthat_server::router(state)).await,
        jwks_fetches: fetches,
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn rs256(kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/test-rsa.pem")).expect("test key");
    jsonwebtoken::encode(&header, &claims, &key).expect("token")
}

fn claims() -> Value {
    json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600})
}

async fn register(setup: &Setup, token: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/v1/devices", setup.api))
        .bearer_auth(token)
        .json(&json!({"platform": "fcm", "token": "phone"}))
        .send()
        .await
        .expect("send")
        .status()
}

#[tokio::test]
async fn a_providers_token_is_accepted_and_its_keys_fetched_once() {
    let s = setup().await;
    assert_eq!(register(&s, &rs256("test-key-1", claims())).await, StatusCode::CREATED);
    assert_eq!(register(&s, &rs256("test-key-1", claims())).await, StatusCode::CREATED);
    assert_eq!(s.jwks_fetches.load(Ordering::SeqCst), 1, "keys are cached");
}

#[tokio::test]
async fn wrong_issuer_audience_expiry_key_or_algorithm_are_refused() {
    let s = setup().await;
    let mut wrong_issuer = claims();
    wrong_issuer["iss"] = json!("https://attacker.example");
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("another-app");
    let mut expired = claims();
    expired["exp"] = json!(now() - 3600);
    let mut no_sub = claims();
    no_sub.as_object_mut().expect("object").remove("sub");
    for (what, token) in [
        ("wrong issuer", rs256("test-key-1", wrong_issuer)),
        ("wrong audience", rs256("test-key-1", wrong_audience)),
        ("expired", rs256("test-key-1", expired)),
        ("no sub", rs256("test-key-1", no_sub)),
        ("unknown key", rs256("rotated-away", claims())),
    ] {
        assert_eq!(register(&s, &token).await, StatusCode::UNAUTHORIZED, "{what}");
    }
    // The public key used as an HMAC secret: the classic algorithm-confusion forgery.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-key-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(include_bytes!("fixtures/test-jwks.json")),
    )
    .expect("token");
    assert_eq!(
        register(&s, &confused).await,
        StatusCode::UNAUTHORIZED,
        "algorithm confusion"
    );
    let valid = rs256("test-key-1", claims());
    let (head, _) = valid.rsplit_once('.').expect("three parts");
    assert_eq!(
        register(&s, &format!("{head}.AAAA")).await,
        StatusCode::UNAUTHORIZED,
        "bad signature"
    );
    assert!(
        s.jwks_fetches.load(Ordering::SeqCst) <= 2,
        "an unknown key refetches at most once per interval"
    );
}

#[tokio::test]
async fn an_unreachable_key_server_is_503_not_401() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let auth = Auth::jwks(JwksConfig {
        url: format!("http://127.0.0.1:{port}/jwks.json"),
        issuer: ISSUER.into(),
        audience: None,
    })
    .expect("jwks");
    let service = Thisthat::builder(MemoryBackend::new().backend())
        .build()
        .expect("service");
    let api = serve(thisthat_server::router(AppState {
        service,
        auth,
        blobs: None,
        clock: Arc::new(thisthat_core::SystemClock),
    }))
    .await;
    let s = Setup {
        api,
        jwks_fetches: Arc::new(AtomicUsize::new(0)),
    };
    assert_eq!(
        register(&s, &rs256("test-key-1", claims())).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[test]
fn key_sets_are_fetched_over_https_only_except_on_loopback() {
    let config = |url: &str| JwksConfig {
        url: url.into(),
        issuer: ISSUER.into(),
        audience: None,
    };
    assert!(Auth::jwks(config("http://issuer.example/jwks.json")).is_err());
    assert!(Auth::jwks(config("not a url")).is_err());
    assert!(Auth::jwks(config("https://issuer.example/jwks.json")).is_ok());
    assert!(Auth::jwks(config("http://127.0.0.1:9/jwks.json")).is_ok());
}
