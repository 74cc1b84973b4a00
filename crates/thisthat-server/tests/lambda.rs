//! The router as a Lambda function: API Gateway HTTP API (payload v2) events in their
//! documented shape, through lambda_http's own event parsing, into the same router.
#![cfg(feature = "lambda")]

use std::sync::Arc;

use axum::body::Body;
use base64::Engine as _;
use serde_json::{Value, json};
use thisthat_core::{Backend, Thisthat};
use thisthat_server::{AppState, Auth};
use thisthat_testkit::{memory::MemoryBackend, photos};
use tower::ServiceExt as _;

fn router() -> thisthat_server::Router {
    let memory = MemoryBackend::new();
    let backend: Backend = memory.backend();
    let service = Thisthat::builder(backend).build().expect("service");
    thisthat_server::router(AppState {
        service,
        auth: Auth::api_gateway(),
        blobs: None,
        clock: Arc::new(thisthat_core::SystemClock),
    })
}

/// An API Gateway HTTP API v2 event as AWS documents it, with a JWT authorizer's claims when
/// `sub` is given.
fn event(method: &str, path: &str, sub: Option<&str>, headers: Value, body: Option<(String, bool)>) -> String {
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "r3pmxmplak",
        "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
        "domainPrefix": "r3pmxmplak",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "thisthat-app/1.0"},
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "$default",
        "stage": "$default",
        "time": "27/Nov/2026:23:30:00 +0000",
        "timeEpoch": 1795822200000u64
    });
    if let Some(sub) = sub {
        context["authorizer"] = json!({"jwt": {"claims": {"sub": sub, "iss": "https://cognito-idp.us-east-2.amazonaws.com/us-east-2_EXAMPLE", "token_use": "access"}, "scopes": null}});
    }
    let (body, encoded) = body.unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": encoded
    })
    .to_string()
}

async fn call(router: &thisthat_server::Router, event: String) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event).expect("a valid API Gateway v2 event");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_authorizers_sub_is_the_user() {
    let router = router();
    let body = json!({"platform": "fcm", "token": "alice-phone"}).to_string();
    let (status, reply) = call(
        &router,
        event(
            "POST",
            "/v1/devices",
            Some("alice"),
            json!({"content-type": "application/json"}),
            Some((body, false)),
        ),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["token"], "alice-phone");
}

#[tokio::test]
async fn without_authorizer_claims_writes_are_refused_and_headers_are_not_trusted() {
    let router = router();
    let body = json!({"platform": "fcm", "token": "t"}).to_string();
    let forged = json!({"content-type": "application/json", "authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."});
    let (status, reply) = call(&router, event("POST", "/v1/devices", None, forged, Some((body, false)))).await;
    assert_eq!(status, 401, "{reply}");
    assert_eq!(reply["error"]["code"], "unauthenticated");
    let (status, _) = call(&router, event("GET", "/v1/feed", None, json!({}), None)).await;
    assert_eq!(status, 200, "reads need no identity");
}

#[tokio::test]
async fn a_base64_multipart_create_and_a_vote_through_events() {
    let router = router();
    let boundary = "thisthatboundary";
    let mut multipart = Vec::new();
    for (i, photo) in photos::three().into_iter().enumerate() {
        multipart.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{i}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        multipart.extend_from_slice(&photo);
        multipart.extend_from_slice(b"\r\n");
    }
    multipart.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let body = base64::engine::general_purpose::STANDARD.encode(&multipart);
    let headers = json!({"content-type": format!("multipart/form-data; boundary={boundary}")});
    let (status, created) = call(
        &router,
        event("POST", "/v1/competitions", Some("alice"), headers, Some((body, true))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    let vote = json!({"choice": 2}).to_string();
    let path = format!("/v1/competitions/{id}/votes");
    let (status, receipt) = call(
        &router,
        event(
            "POST",
            &path,
            Some("bob"),
            json!({"content-type": "application/json"}),
            Some((vote.clone(), false)),
        ),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["tally"], json!([0, 0, 1]));
    let (status, refused) = call(
        &router,
        event(
            "POST",
            &path,
            Some("alice"),
            json!({"content-type": "application/json"}),
            Some((vote, false)),
        ),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("own_competition"))
    );
}
