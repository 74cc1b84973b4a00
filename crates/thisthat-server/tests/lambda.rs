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

/// An EventBridge scheduled event as AWS documents it.
fn scheduled_event() -> Value {
    json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-12-01T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/thisthat-maintenance"], "detail": {}
    })
}

async fn invoke(function: &thisthat_server::LambdaFunction, event: Value) -> Result<Value, thisthat_core::Error> {
    function
        .handle(lambda_http::LambdaEvent::new(event, lambda_http::Context::default()))
        .await
}

/// The API's answer to an HTTP event through the whole function: status and JSON body.
async fn http(function: &thisthat_server::LambdaFunction, event: String) -> (i64, Value) {
    let event: Value = serde_json::from_str(&event).expect("JSON event");
    let response = invoke(function, event)
        .await
        .expect("HTTP events always get a response");
    let body = response["body"].as_str().unwrap_or_default();
    (
        response["statusCode"].as_i64().unwrap_or_default(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// One function serves the API and runs the maintenance: a result push that failed when the
/// closing vote sent it is delivered by the first scheduled event after its lease ran out.
#[tokio::test]
async fn a_scheduled_event_delivers_the_result_whose_first_push_failed() {
    let memory = MemoryBackend::new();
    let clock = Arc::new(thisthat_testkit::faults::ManualClock::new(std::time::SystemTime::now()));
    let backend = memory
        .backend()
        .layer(thisthat_testkit::faults::FailNext::new("notifier", "send", 1));
    let service = Thisthat::builder(backend)
        .clock(clock.clone())
        .build()
        .expect("service");
    let function = thisthat_server::LambdaFunction::new(AppState {
        service,
        auth: Auth::api_gateway(),
        blobs: None,
        clock: Arc::new(thisthat_core::SystemClock),
    });
    let json_headers = json!({"content-type": "application/json"});
    let device = json!({"platform": "fcm", "token": "alice-phone"}).to_string();
    let (status, _) = http(
        &function,
        event(
            "POST",
            "/v1/devices",
            Some("alice"),
            json_headers.clone(),
            Some((device, false)),
        ),
    )
    .await;
    assert_eq!(status, 201);
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
    let (status, created) = http(
        &function,
        event("POST", "/v1/competitions", Some("alice"), headers, Some((body, true))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/competitions/{}/votes", created["id"].as_str().expect("id"));
    for voter in 0..24 {
        let vote = json!({"choice": voter % 3}).to_string();
        let (status, receipt) = http(
            &function,
            event(
                "POST",
                &path,
                Some(&format!("voter-{voter}")),
                json_headers.clone(),
                Some((vote, false)),
            ),
        )
        .await;
        assert_eq!(status, 200, "{receipt}");
    }
    assert!(memory.notifier.sent().is_empty(), "the closing vote's push failed");

    // Still leased by the failed attempt: the maintenance leaves it alone.
    let report = invoke(&function, scheduled_event()).await.expect("maintenance");
    assert_eq!(
        report["maintenance"]["notifications"],
        json!({"delivered": 0, "failed": 0, "devices_removed": 0})
    );
    assert_eq!(report["maintenance"]["sweep"]["orphans_removed"], 0, "{report}");
    clock.advance(std::time::Duration::from_secs(61));
    let report = invoke(&function, scheduled_event()).await.expect("maintenance");
    assert_eq!(
        report["maintenance"]["notifications"],
        json!({"delivered": 1, "failed": 0, "devices_removed": 0})
    );
    let sent = memory.notifier.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0.device.token, "alice-phone");
    assert_eq!(Some(sent[0].1.competition.to_string().as_str()), created["id"].as_str());
    assert!(sent[0].1.body.contains("of 24 votes"), "{:?}", sent[0].1);
    let report = invoke(&function, scheduled_event()).await.expect("maintenance");
    assert_eq!(report["maintenance"]["notifications"]["delivered"], 0, "delivered once");
}

/// An event that is neither an HTTP API request nor a scheduled event is refused, saying what
/// the function takes; it never reaches the router as an empty request.
#[tokio::test]
async fn other_events_are_refused_with_a_typed_error() {
    let function = thisthat_server::LambdaFunction::new(AppState {
        service: Thisthat::builder(MemoryBackend::new().backend())
            .build()
            .expect("service"),
        auth: Auth::api_gateway(),
        blobs: None,
        clock: Arc::new(thisthat_core::SystemClock),
    });
    let sqs = json!({"Records": [{"messageId": "1", "eventSource": "aws:sqs", "body": "{}"}]});
    for event in [
        sqs,
        json!({}),
        json!({"source": "aws.events", "detail-type": "Object Created"}),
    ] {
        match invoke(&function, event.clone()).await {
            Err(thisthat_core::Error::InvalidInput { field: "event", reason }) => {
                assert!(
                    reason.contains("API Gateway HTTP API") && reason.contains("scheduled events"),
                    "{reason}"
                );
            }
            other => panic!("{event} gave {other:?}"),
        }
    }
}
