//! One AWS Lambda function for the whole service: API Gateway's HTTP requests go through the
//! router, EventBridge's scheduled events run the maintenance.
//!
//! A deployment then has one function, one image and one set of permissions. The event's shape
//! decides what an invocation is ([`Invocation::of`]); an event that is neither is refused with
//! an [`Error::InvalidInput`] naming what the function accepts, never answered as if it were
//! an HTTP request.

use std::{future::poll_fn, sync::Arc};

use lambda_http::{Adapter, Context, LambdaEvent, Service as _, lambda_runtime::Diagnostic, request::LambdaRequest};
use serde_json::{Value, json};
use thisthat_core::{Error, MaintenanceReport, Thisthat};

use crate::{AppState, Router};

/// What one invocation asks for, told apart by the event's documented shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invocation {
    /// An API Gateway HTTP API request (payload format 2.0: `"version": "2.0"` and a
    /// `requestContext.http`).
    Http,
    /// An EventBridge scheduled event (`"source": "aws.events"`,
    /// `"detail-type": "Scheduled Event"`): run the maintenance.
    Scheduled,
}

impl Invocation {
    /// Which kind of invocation `event` is, or an [`Error::InvalidInput`] (field `event`) that
    /// says what arrived and what the function accepts.
    ///
    /// Checked before any parsing because API Gateway's request type has defaults for every
    /// field: an EventBridge event, or `{}`, would otherwise parse as an empty HTTP request.
    pub fn of(event: &Value) -> Result<Invocation, Error> {
        let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
        if text("/source") == Some("aws.events") && text("/detail-type") == Some("Scheduled Event") {
            return Ok(Invocation::Scheduled);
        }
        if text("/version") == Some("2.0") && event.pointer("/requestContext/http").is_some_and(Value::is_object) {
            return Ok(Invocation::Http);
        }
        let described = match (text("/source"), text("/detail-type")) {
            (Some(source), Some(kind)) => format!("an event from {source} ({kind})"),
            (Some(source), None) => format!("an event from {source}"),
            _ => match event {
                Value::Object(fields) => format!(
                    "an object with the fields [{}]",
                    fields.keys().take(8).map(String::as_str).collect::<Vec<_>>().join(", ")
                ),
                _ => "not a JSON object".to_owned(),
            },
        };
        Err(Error::invalid(
            "event",
            format!(
                "this function takes API Gateway HTTP API requests (payload format 2.0) and EventBridge \
                 scheduled events (source aws.events, detail-type Scheduled Event); it was sent {described}"
            ),
        ))
    }
}

/// The API and the maintenance as one Lambda function handler.
#[derive(Debug, Clone)]
pub struct LambdaFunction {
    router: Router,
    service: Thisthat,
}

impl LambdaFunction {
    /// The function over `state`: its router answers HTTP requests, its service runs the
    /// maintenance. Use [`crate::Auth::api_gateway`] so that the gateway's JWT authorizer
    /// identifies callers.
    pub fn new(state: AppState) -> LambdaFunction {
        let service = state.service.clone();
        LambdaFunction {
            router: crate::router(state),
            service,
        }
    }

    /// Handles one invocation: the HTTP response for an API Gateway request (as API Gateway
    /// expects it), or what the maintenance did for a scheduled event
    /// (`{"maintenance": {"notifications": {"delivered", "failed", "devices_removed"},
    /// "sweep": {"blobs_seen", "orphans_removed", "drafts_expired"}}}`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an event that is neither (see [`Invocation::of`]) or an
    /// HTTP event that does not parse; the maintenance's own error if it failed. HTTP
    /// requests themselves never fail here: API errors are HTTP responses.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let LambdaEvent { payload, context } = event;
        match Invocation::of(&payload) {
            Ok(Invocation::Http) => self.answer(payload, context).await,
            Ok(Invocation::Scheduled) => {
                let report = run_scheduled_maintenance(&self.service).await?;
                Ok(json!({"maintenance": {
                    "notifications": {
                        "delivered": report.delivery.delivered,
                        "failed": report.delivery.failed,
                        "devices_removed": report.delivery.devices_removed,
                    },
                    "sweep": {
                        "blobs_seen": report.sweep.blobs_seen,
                        "orphans_removed": report.sweep.orphans_removed,
                        "drafts_expired": report.sweep.drafts_expired,
                    },
                }}))
            }
            Err(e) => {
                tracing::warn!(request_id = %context.request_id, error = %e, "refused an event this function does not handle");
                Err(e)
            }
        }
    }

    async fn answer(&self, payload: Value, context: Context) -> Result<Value, Error> {
        let request: LambdaRequest = serde_json::from_value(payload)
            .map_err(|e| Error::invalid("event", format!("not an API Gateway HTTP API request: {e}")))?;
        // lambda_http's own adapter, the one `lambda_http::run` uses, so an HTTP request is
        // turned into axum's and back exactly as when the function served HTTP alone (the
        // authorizer's claims and the Lambda context land in the request's extensions).
        let mut adapter = Adapter::from(self.router.clone());
        let ready: Result<(), std::convert::Infallible> = poll_fn(|cx| adapter.poll_ready(cx)).await;
        let response = match ready {
            Ok(()) => adapter.call(LambdaEvent::new(request, context)).await,
            Err(never) => match never {},
        };
        let response = match response {
            Ok(response) => response,
            Err(never) => match never {},
        };
        serde_json::to_value(response).map_err(|e| Error::backend("lambda", e))
    }
}

/// The maintenance an EventBridge schedule runs: one [`Thisthat::maintain`] pass (pending
/// notifications delivered, orphaned blobs and expired drafts swept). It logs what it did
/// and returns it.
pub async fn run_scheduled_maintenance(service: &Thisthat) -> Result<MaintenanceReport, Error> {
    match service.maintain().await {
        Ok(report) => Ok(report),
        Err(e) => {
            tracing::error!(error = %e, code = e.code(), "scheduled maintenance failed; the next run retries");
            Err(e)
        }
    }
}

/// An [`Error`] as the Lambda runtime reports it: `errorType` is `thisthat.{code}`
/// (`thisthat.invalid_input`), `errorMessage` the error and its causes.
struct Failure(Error);

impl From<Failure> for Diagnostic {
    fn from(Failure(error): Failure) -> Diagnostic {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Diagnostic {
            error_type: format!("thisthat.{}", error.code()),
            error_message: message,
        }
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

/// The variables Lambda sets for a function's runtime, which the runtime client needs.
const RUNTIME_VARIABLES: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
];

/// Checks that this process runs under the Lambda runtime: the runtime client panics on a
/// missing variable, so this says which ones are missing instead ([`Error::Config`]).
pub fn check_runtime_environment() -> Result<(), Error> {
    let missing: Vec<&str> = RUNTIME_VARIABLES
        .into_iter()
        .filter(|variable| std::env::var_os(variable).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::config(format!(
            "not running under the Lambda runtime: {} not set (Lambda sets them; to run the API \
             elsewhere use `thisthat serve`, or `cargo lambda watch` to emulate Lambda)",
            missing.join(", ")
        )));
    }
    let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(Error::config(format!(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE={memory:?} is not a number of megabytes"
        )));
    }
    Ok(())
}

/// Runs `function` under the Lambda runtime until the runtime API stops answering.
///
/// # Errors
///
/// [`Error::Config`] when the Lambda runtime's variables are missing
/// ([`check_runtime_environment`]); the runtime's error when it stops.
pub async fn run_lambda(function: LambdaFunction) -> Result<(), lambda_http::Error> {
    check_runtime_environment()?;
    let function = Arc::new(function);
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event: LambdaEvent<Value>| {
        let function = function.clone();
        async move { function.handle(event).await.map_err(Failure) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_their_shape() {
        let scheduled = json!({"version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-12-01T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/thisthat-maintenance"], "detail": {}});
        assert_eq!(Invocation::of(&scheduled).ok(), Some(Invocation::Scheduled));
        let http = json!({"version": "2.0", "routeKey": "$default", "rawPath": "/v1/feed",
            "requestContext": {"http": {"method": "GET", "path": "/v1/feed"}}});
        assert_eq!(Invocation::of(&http).ok(), Some(Invocation::Http));
    }

    #[test]
    fn other_events_are_refused_saying_what_arrived() {
        let cases = [
            (
                json!({"source": "aws.s3", "detail-type": "Object Created"}),
                "aws.s3 (Object Created)",
            ),
            (
                json!({"source": "aws.events", "detail-type": "EC2 Instance State-change Notification"}),
                "aws.events",
            ),
            (json!({"Records": [{"eventSource": "aws:sqs"}]}), "[Records]"),
            (json!({}), "the fields []"),
            (json!("hello"), "not a JSON object"),
            // An API Gateway REST (payload 1.0) request is not the HTTP API this function serves.
            (
                json!({"resource": "/", "httpMethod": "GET", "requestContext": {}}),
                "httpMethod",
            ),
        ];
        for (event, said) in cases {
            match Invocation::of(&event) {
                Err(Error::InvalidInput { field: "event", reason }) => {
                    assert!(reason.contains(said), "{reason}");
                    assert!(reason.contains("scheduled events"), "{reason}");
                }
                other => panic!("{event} gave {other:?}"),
            }
        }
    }

    #[test]
    fn failures_reach_the_runtime_with_their_code() {
        let diagnostic = Diagnostic::from(Failure(Error::unavailable("dynamodb", "throttled")));
        assert_eq!(diagnostic.error_type, "thisthat.unavailable");
        assert_eq!(
            diagnostic.error_message,
            "dynamodb is temporarily unavailable; retry later: throttled"
        );
    }
}
