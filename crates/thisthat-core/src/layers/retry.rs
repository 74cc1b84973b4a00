use std::{future::Future, time::Duration};

use super::{Call, Interceptor};
use crate::Result;

/// How [`Retry`] retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. Default `4`.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled each time. Default 50 ms.
    pub initial_backoff: Duration,
    /// Longest backoff. Default 2 s.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential with full jitter, or the
    /// provider's `retry_after` when it gave one and it is longer.
    pub fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff);
        // Full jitter spreads retries of many clients that failed together.
        let jittered = ceiling.mul_f64(fastrand::f64());
        retry_after.map_or(jittered, |after| after.max(jittered))
    }
}

/// Retries calls that failed with [`Error::Unavailable`](crate::Error::Unavailable), and only
/// those, with exponential backoff and jitter.
///
/// Every port operation is safe to retry: writes are conditional (a vote that did land comes
/// back as [`Error::AlreadyVoted`](crate::Error::AlreadyVoted), a create as
/// [`Error::Conflict`](crate::Error::Conflict)) and pushes carry an idempotency key.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    policy: RetryPolicy,
}

impl Retry {
    /// A retry layer with this policy.
    pub fn new(policy: RetryPolicy) -> Self {
        Retry { policy }
    }
}

impl Interceptor for Retry {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Err(crate::Error::Unavailable { retry_after, .. }) if attempt < self.policy.max_attempts => {
                    let wait = self.policy.backoff(attempt - 1, retry_after);
                    tracing::debug!(
                        port = call.port,
                        operation = call.operation,
                        attempt,
                        ?wait,
                        "retrying unavailable call"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Error;

    fn fast() -> Retry {
        Retry::new(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        })
    }

    const CALL: Call = Call {
        port: "test",
        operation: "op",
    };

    #[tokio::test]
    async fn retries_unavailable_until_success() {
        let calls = AtomicU32::new(0);
        let result = fast()
            .intercept(CALL, || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Error::unavailable("test", "busy")),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = fast()
            .intercept(CALL, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::unavailable("test", "busy"))
            })
            .await;
        assert!(matches!(result, Err(Error::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn never_retries_other_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = fast()
            .intercept(CALL, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::AlreadyVoted)
            })
            .await;
        assert!(matches!(result, Err(Error::AlreadyVoted)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::default();
        for retry in 0..40 {
            assert!(p.backoff(retry, None) <= p.max_backoff);
        }
        assert!(p.backoff(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }
}
