//! Small wrappers that add one concern to any port, the way tower layers or object_store's
//! `ThrottledStore` do: retry, tracing, and whatever else a team needs (metering, fault
//! injection), written once for all four ports. [`Meter`] counts every call and what the
//! provider billed for it.
//!
//! A concern is an [`Interceptor`]: it sees every call as a [`Call`] (which port, which
//! operation) and a closure that makes the call, which it may run once, several times, or not
//! at all. [`Layered`] applies an interceptor to a port; [`crate::Backend::layer`] applies it to
//! all four.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
//! use thisthat_core::layers::{Call, Interceptor};
//!
//! /// Counts calls per port: a metering layer in a dozen lines.
//! #[derive(Debug, Clone, Default)]
//! struct CountCalls(Arc<AtomicUsize>);
//!
//! impl Interceptor for CountCalls {
//!     async fn intercept<T, F, Fut>(&self, _call: Call, op: F) -> thisthat_core::Result<T>
//!     where
//!         T: Send,
//!         F: Fn() -> Fut + Send + Sync,
//!         Fut: std::future::Future<Output = thisthat_core::Result<T>> + Send,
//!     {
//!         self.0.fetch_add(1, Ordering::Relaxed);
//!         op().await
//!     }
//! }
//! ```

mod chaos;
mod forward;
mod meter;
mod retry;
mod trace;

use std::{fmt, future::Future, sync::Arc};

pub use chaos::{Chaos, ChaosReport, FaultCounts, Faults};
pub use meter::{Meter, OperationUsage, Usage, bill};
pub use retry::{Retry, RetryPolicy};
pub use trace::Trace;

use crate::Result;

/// One call through a port, as an interceptor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Call {
    /// `blob`, `database`, `notifier` or `classifier`.
    pub port: &'static str,
    /// The trait method called (`put`, `cast_vote`, …).
    pub operation: &'static str,
}

/// A concern wrapped around every call of a port. See the [module docs](self).
pub trait Interceptor: Send + Sync + fmt::Debug + 'static {
    /// Runs `op` (the call itself) with this concern around it. `op` may be called more than
    /// once; each call starts the operation afresh.
    fn intercept<T, F, Fut>(&self, call: Call, op: F) -> impl Future<Output = Result<T>> + Send
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send;
}

/// A port with an [`Interceptor`] around every call. It implements the same port trait as
/// the port it wraps, so layers stack: `Layered<Layered<S3, Retry>, Trace>`.
pub struct Layered<P: ?Sized, I> {
    interceptor: I,
    inner: Arc<P>,
}

impl<P: ?Sized, I> Layered<P, I> {
    /// Wraps `inner` in `interceptor`.
    pub fn new(inner: Arc<P>, interceptor: I) -> Self {
        Layered { interceptor, inner }
    }

    /// The wrapped port.
    pub fn inner(&self) -> &Arc<P> {
        &self.inner
    }
}

impl<P: ?Sized + fmt::Debug, I: fmt::Debug> fmt::Debug for Layered<P, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layered")
            .field("interceptor", &self.interceptor)
            .field("inner", &self.inner)
            .finish()
    }
}
