//! `thisthat lambda`: the same router as `serve`, run by the Lambda runtime.

use std::sync::Arc;

use thisthat_core::{BackendConfig, SystemClock, Thisthat};
use thisthat_server::{AppState, Auth};

use crate::AnyResult;

/// The variables naming the four adapters. Unlike `serve`, nothing defaults to the embedded
/// backend: a Lambda's disk does not outlive it.
const PORTS: [&str; 4] = [
    "THISTHAT_STORAGE",
    "THISTHAT_DATABASE",
    "THISTHAT_NOTIFIER",
    "THISTHAT_CLASSIFIER",
];

fn required(variable: &str) -> AnyResult<String> {
    std::env::var(variable).map_err(|_| {
        format!(
            "{variable} is not set: a Lambda takes every port by URL ({}), e.g. THISTHAT_DATABASE=dynamodb://thisthat",
            PORTS.join(", ")
        )
        .into()
    })
}

/// Opens the configured adapters, then hands the router to the Lambda runtime until it stops.
pub async fn run() -> AnyResult {
    let config = BackendConfig {
        storage: required(PORTS[0])?,
        database: required(PORTS[1])?,
        notifier: required(PORTS[2])?,
        classifier: required(PORTS[3])?,
    };
    let backend = crate::embedded::registry().open(&config).await?;
    // Behind API Gateway is always public: it fails closed without screening.
    let allow_unscreened = match std::env::var("THISTHAT_ALLOW_UNSCREENED").as_deref() {
        Ok("true") => true,
        Ok("false") | Err(_) => false,
        Ok(other) => return Err(format!("THISTHAT_ALLOW_UNSCREENED must be true or false, not {other:?}").into()),
    };
    backend.require_screening(allow_unscreened)?;
    let backend = backend.layer(thisthat_core::layers::Trace);
    // Inline delivery (the default): a function may be frozen as soon as it answers, so the
    // closing vote's call delivers the result before returning.
    let service = Thisthat::builder(backend).build()?;
    let router = thisthat_server::router(AppState {
        service,
        auth: Auth::api_gateway(),
        blobs: None,
        clock: Arc::new(SystemClock),
    });
    thisthat_server::run_lambda(router)
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}").into())
}
