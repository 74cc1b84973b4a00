//! Fault injection: an [`Interceptor`] that makes chosen port calls fail, to test what the
//! domain does when a provider is down or a process dies between two steps.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use thisthat_core::{
    Clock, Error, Result,
    layers::{Call, Interceptor},
};

/// Fails the next `count` calls of one operation with [`Error::Unavailable`], without making
/// them; every other call goes through.
///
/// ```
/// use std::sync::Arc;
/// use thisthat_core::layers::Layered;
/// use thisthat_testkit::{faults::FailNext, memory::MemoryNotifier};
/// let flaky = Layered::new(Arc::new(MemoryNotifier::new()), FailNext::new("notifier", "send", 2));
/// ```
#[derive(Debug, Clone)]
pub struct FailNext {
    port: &'static str,
    operation: &'static str,
    remaining: Arc<AtomicUsize>,
}

impl FailNext {
    /// Fails the next `count` calls of `port`'s `operation` (`"notifier"`, `"send"`).
    pub fn new(port: &'static str, operation: &'static str, count: usize) -> Self {
        FailNext {
            port,
            operation,
            remaining: Arc::new(AtomicUsize::new(count)),
        }
    }

    /// How many failures are still to come.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::SeqCst)
    }
}

impl Interceptor for FailNext {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        if call.port == self.port && call.operation == self.operation {
            let took = self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if took.is_ok() {
                return Err(Error::Unavailable {
                    provider: "fault injection",
                    retry_after: None,
                    source: Some(format!("injected failure of {}.{}", call.port, call.operation).into()),
                });
            }
        }
        op().await
    }
}

/// Makes the next `count` calls of one operation, then loses their answers and reports
/// [`Error::Unavailable`] instead: the "unclear failure" of a timeout after the provider acted.
/// Tests use it to show that retries after such a failure change nothing twice.
#[derive(Debug, Clone)]
pub struct LoseReply {
    port: &'static str,
    operation: &'static str,
    remaining: Arc<AtomicUsize>,
}

impl LoseReply {
    /// Loses the answers of the next `count` calls of `port`'s `operation`.
    pub fn new(port: &'static str, operation: &'static str, count: usize) -> Self {
        LoseReply {
            port,
            operation,
            remaining: Arc::new(AtomicUsize::new(count)),
        }
    }

    /// How many answers are still to be lost.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::SeqCst)
    }
}

impl Interceptor for LoseReply {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let result = op().await;
        if call.port == self.port
            && call.operation == self.operation
            && result.is_ok()
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Error::Unavailable {
                provider: "fault injection",
                retry_after: None,
                source: Some(
                    format!(
                        "the answer of {}.{} was lost after it succeeded",
                        call.port, call.operation
                    )
                    .into(),
                ),
            });
        }
        result
    }
}

/// A clock that moves only when told, to step past leases and expiries in tests.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<SystemTime>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: std::sync::Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
