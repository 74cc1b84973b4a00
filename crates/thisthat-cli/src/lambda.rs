//! `thisthat lambda`: the same router as `serve`, run by the Lambda runtime, plus the
//! maintenance on EventBridge's schedule. The Lambda runtime starts the binary with no
//! arguments (cargo-lambda's `bootstrap`); [`command_line`] turns that into `thisthat lambda`.

use std::sync::Arc;

use thisthat_core::{BackendConfig, DeliveryMode, SystemClock, Thisthat};
use thisthat_server::{AppState, Auth, LambdaFunction};

use crate::{AnyResult, config::Config};

/// The variables naming the four adapters. Unlike `serve`, nothing defaults to the embedded
/// backend: a Lambda's disk does not outlive it.
const PORTS: [&str; 4] = [
    "THISTHAT_STORAGE",
    "THISTHAT_DATABASE",
    "THISTHAT_NOTIFIER",
    "THISTHAT_CLASSIFIER",
];

/// A port's URL from its variable, else from the configuration file's `backend.{key}`.
fn required(variable: &str, file: &Option<String>, key: &str) -> AnyResult<String> {
    if let Ok(url) = std::env::var(variable) {
        return Ok(url);
    }
    file.clone().ok_or_else(|| {
        format!(
            "{variable} is not set, nor backend.{key} in the configuration file (THISTHAT_CONFIG): a Lambda takes every port by URL ({}), e.g. THISTHAT_DATABASE=dynamodb://thisthat",
            PORTS.join(", ")
        )
        .into()
    })
}

/// Opens the configured adapters, then hands the API and the maintenance to the Lambda runtime
/// until it stops. Settings come from the variables, then the file (`THISTHAT_CONFIG`): the
/// four ports, `[rules]`, `[service]` and `auth.allow_unscreened`. The rest of `[auth]` is not
/// used: API Gateway's JWT authorizer verifies callers.
pub async fn run(file: &Config, origin: &str) -> AnyResult {
    let backend = &file.backend;
    let config = BackendConfig {
        storage: required(PORTS[0], &backend.storage, "storage")?,
        database: required(PORTS[1], &backend.database, "database")?,
        notifier: required(PORTS[2], &backend.notifier, "notifier")?,
        classifier: required(PORTS[3], &backend.classifier, "classifier")?,
    };
    let rules = file.rules.to_rules(origin)?;
    let delivery = match std::env::var("THISTHAT_DELIVERY").as_deref() {
        Ok("inline") => DeliveryMode::Inline,
        Ok("deferred") => DeliveryMode::Deferred,
        Ok(other) => return Err(format!("THISTHAT_DELIVERY must be inline or deferred, not {other:?}").into()),
        Err(_) => file.service.delivery.into(),
    };
    // Before opening anything: outside Lambda, say so instead of waiting on cloud credentials.
    thisthat_server::lambda::check_runtime_environment()?;
    let backend = crate::embedded::registry().open(&config).await?;
    // Behind API Gateway is always public: it fails closed without screening.
    let allow_unscreened = match std::env::var("THISTHAT_ALLOW_UNSCREENED").as_deref() {
        Ok("true") => true,
        Ok("false") => false,
        Err(_) => file.auth.allow_unscreened,
        Ok(other) => return Err(format!("THISTHAT_ALLOW_UNSCREENED must be true or false, not {other:?}").into()),
    };
    backend.require_screening(allow_unscreened)?;
    let backend = backend.with_standard_layers();
    // Inline delivery (the default): a function may be frozen as soon as it answers, so the
    // closing vote's call delivers the result before returning.
    let service = Thisthat::builder(backend).rules(rules).delivery(delivery).build()?;
    let function = LambdaFunction::new(AppState {
        service,
        auth: Auth::api_gateway(),
        blobs: None,
        clock: Arc::new(SystemClock),
    });
    thisthat_server::run_lambda(function)
        .await
        .map_err(|e| format!("the Lambda runtime stopped: {e}").into())
}

/// The command line to parse: `thisthat lambda` when the Lambda runtime started the binary with
/// no arguments (it sets `AWS_LAMBDA_RUNTIME_API`), the real one otherwise.
pub fn command_line() -> Vec<std::ffi::OsString> {
    let mut arguments: Vec<_> = std::env::args_os().collect();
    if arguments.len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        arguments.push("lambda".into());
    }
    arguments
}
