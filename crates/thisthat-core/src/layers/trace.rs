use std::future::Future;

use tracing::Instrument as _;

use super::{Call, Interceptor};
use crate::Result;

/// Puts every port call in a `tracing` span (`thisthat.port` with `port` and `operation`) and
/// logs failures with their error code, so a slow DynamoDB call or a throttled S3 shows up in
/// whatever subscriber the application installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace;

impl Interceptor for Trace {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let span = tracing::debug_span!("thisthat.port", port = call.port, operation = call.operation);
        let result = op().instrument(span.clone()).await;
        if let Err(e) = &result {
            span.in_scope(|| tracing::debug!(code = e.code(), error = %e, "port call failed"));
        }
        result
    }
}
