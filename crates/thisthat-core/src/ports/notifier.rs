use async_trait::async_trait;

use crate::{Device, Endpoint, PushMessage, Result};

/// What became of one push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The provider accepted it.
    Accepted,
    /// The provider says the device is gone (token expired, app uninstalled, endpoint
    /// disabled). The service removes the device instead of retrying it forever.
    Gone,
}

/// Push notifications: SNS, Firebase Cloud Messaging, Azure Notification Hubs, an outbox file.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// Registers a device with the provider and returns the address to send to (an SNS
    /// endpoint ARN, a Notification Hubs installation id, or the token itself). Registering the
    /// same device again returns an equivalent endpoint.
    async fn register(&self, device: &Device) -> Result<Endpoint>;

    /// Removes a device from the provider. Removing one that is already gone succeeds.
    async fn unregister(&self, endpoint: &Endpoint) -> Result<()>;

    /// Sends one message to one device. Passes the message's idempotency key to providers that
    /// dedupe on one.
    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery>;

    /// The adapter itself or its native client, if it exposes one of type `ty`: the escape
    /// hatch of the [`native`](crate::native) module, Go CDK's `As`. Callers use the typed
    /// `native::<T>()` on `dyn Notifier`; adapters override this with
    /// [`offer`](crate::native::offer), and wrappers forward it to the port they wrap. The
    /// default exposes nothing.
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall cannot mock a lifetime elided inside `Option`"
    )]
    fn as_native<'a>(&'a self, ty: std::any::TypeId) -> Option<&'a dyn std::any::Any> {
        let _ = ty;
        None
    }
}
