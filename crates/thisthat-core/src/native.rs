//! The escape hatch to the provider's own client, Go CDK's `As`: from a port that has been
//! erased to `Arc<dyn Database>` and wrapped in any number of [layers](crate::layers), reach
//! the adapter behind it and the SDK client it holds, for what the port does not offer
//! (a DynamoDB `DescribeTable`, an S3 lifecycle rule, a Firestore query of your own).
//!
//! Every port trait has a provided method, `as_native(&self, TypeId) -> Option<&dyn Any>`,
//! that answers `None`. An adapter overrides it with [`offer`], naming what it exposes: itself
//! (so its own accessors, such as `DynamoDatabase::table`, are reachable) and its native
//! client. [`Layered`](crate::layers::Layered) forwards the question to the port it wraps,
//! so the answer survives every layer. Users ask with the typed `native::<T>()`, an inherent
//! method of each erased port (`dyn BlobStore`, `dyn Database`, `dyn Notifier`,
//! `dyn Classifier`); it answers `None` when the adapter is of another provider or does not
//! expose `T`, never a panic. Which types each adapter exposes is listed in
//! `docs/architecture.md` and each provider's doc.
//!
//! Code that uses it is tied to that provider, which is the point of an escape hatch: keep it
//! at the edges, and keep the domain on the ports.
//!
//! ```
//! use std::{any::{Any, TypeId}, sync::Arc};
//! use thisthat_core::{
//!     Classification, Result,
//!     layers::{Layered, Retry, Trace},
//!     native::offer,
//!     ports::{Classifier, PhotoInput},
//! };
//!
//! /// A provider's client, as an SDK would have one.
//! #[derive(Debug)]
//! struct VisionClient { region: &'static str }
//!
//! /// An adapter that exposes itself and its client.
//! #[derive(Debug)]
//! struct Vision { client: VisionClient }
//!
//! #[async_trait::async_trait]
//! impl Classifier for Vision {
//!     async fn classify(&self, _photo: &PhotoInput) -> Result<Classification> {
//!         Ok(Classification::default())
//!     }
//!     fn screens_content(&self) -> bool { false }
//!     fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
//!         offer(ty, &[self, &self.client])
//!     }
//! }
//!
//! let vision = Arc::new(Vision { client: VisionClient { region: "eu" } });
//! let traced: Arc<dyn Classifier> = Arc::new(Layered::new(vision, Trace));
//! let classifier: Arc<dyn Classifier> = Arc::new(Layered::new(traced, Retry::default()));
//!
//! // Through both layers, to the client and to the adapter.
//! assert_eq!(classifier.native::<VisionClient>().map(|c| c.region), Some("eu"));
//! assert!(classifier.native::<Vision>().is_some());
//! // A type it does not expose is None.
//! assert!(classifier.native::<String>().is_none());
//! ```
//!
//! The memory adapters (`thisthat-memory`) expose themselves, so a test holding only a
//! `Backend` can still reach, say, `MemoryDatabase::vote_count`.

use std::any::{Any, TypeId};

use crate::ports::{BlobStore, Classifier, Database, Notifier};

/// The one of `exposed` whose type is `ty`, for an adapter's `as_native`: list what the
/// adapter exposes, itself first, then its native client and whatever else a user may need.
/// `None` if none is of that type.
pub fn offer<'a>(ty: TypeId, exposed: &[&'a dyn Any]) -> Option<&'a dyn Any> {
    exposed.iter().copied().find(|value| (**value).type_id() == ty)
}

macro_rules! typed_native {
    ($($port:ident),*) => {$(
        impl dyn $port + '_ {
            #[doc = concat!(
                "The provider's native `T` behind this ", stringify!($port),
                ", through every layer: the adapter itself or its native client, as its docs \
                 list. `None` if this adapter does not expose a `T`. See the \
                 [`native`](crate::native) module."
            )]
            pub fn native<T: Any>(&self) -> Option<&T> {
                self.as_native(TypeId::of::<T>())?.downcast_ref::<T>()
            }
        }
    )*};
}

typed_native!(BlobStore, Database, Notifier, Classifier);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::{
        Device, Endpoint, PushMessage, Result,
        layers::{Layered, Meter, Retry, Trace},
        ports::Delivery,
    };

    #[derive(Debug, PartialEq)]
    struct Client(&'static str);

    /// A notifier that exposes itself and its client, or nothing at all.
    #[derive(Debug)]
    struct Push {
        client: Client,
        exposes: bool,
    }

    #[async_trait]
    impl Notifier for Push {
        async fn register(&self, device: &Device) -> Result<Endpoint> {
            Err(crate::Error::config(format!("register {device:?}")))
        }
        async fn unregister(&self, _endpoint: &Endpoint) -> Result<()> {
            Ok(())
        }
        async fn send(&self, _endpoint: &Endpoint, _message: &PushMessage) -> Result<Delivery> {
            Ok(Delivery::Accepted)
        }
        fn as_native(&self, ty: TypeId) -> Option<&dyn Any> {
            if self.exposes {
                offer(ty, &[self, &self.client])
            } else {
                None
            }
        }
    }

    fn push(exposes: bool) -> Arc<dyn Notifier> {
        Arc::new(Push {
            client: Client("sdk"),
            exposes,
        })
    }

    fn layered(inner: Arc<dyn Notifier>) -> Arc<dyn Notifier> {
        let traced: Arc<dyn Notifier> = Arc::new(Layered::new(inner, Trace));
        Arc::new(Layered::new(
            Arc::new(Layered::new(traced, Meter::new())),
            Retry::default(),
        ))
    }

    #[test]
    fn the_client_and_the_adapter_are_reached_through_layers() {
        let port = layered(push(true));
        assert_eq!(port.native::<Client>(), Some(&Client("sdk")));
        assert_eq!(port.native::<Push>().map(|p| p.client.0), Some("sdk"));
    }

    #[test]
    fn a_type_not_exposed_is_none() {
        let port = layered(push(true));
        assert!(port.native::<String>().is_none());
        // The layers themselves are not what the hatch reaches.
        assert!(port.native::<Layered<dyn Notifier, Trace>>().is_none());
    }

    #[test]
    fn an_adapter_that_exposes_nothing_answers_none() {
        let port = layered(push(false));
        assert!(port.native::<Push>().is_none());
        assert!(port.native::<Client>().is_none());
    }

    #[test]
    fn offer_picks_by_type() {
        let (a, b) = (1u8, "two");
        assert_eq!(
            offer(TypeId::of::<&str>(), &[&a, &b]).and_then(|v| v.downcast_ref::<&str>()),
            Some(&"two")
        );
        assert!(offer(TypeId::of::<u16>(), &[&a, &b]).is_none());
        assert!(offer(TypeId::of::<u8>(), &[]).is_none());
    }
}

/// The mockall mocks answer the hatch as a test tells them to.
#[cfg(all(test, feature = "mock"))]
mod mock_tests {
    use super::*;
    use crate::ports::MockDatabase;

    #[test]
    fn a_mock_exposes_what_it_is_told_to() {
        static CLIENT: &str = "a mocked client";
        let mut mock = MockDatabase::new();
        mock.expect_as_native().returning(|ty| offer(ty, &[&CLIENT]));
        let port: &dyn Database = &mock;
        assert_eq!(port.native::<&str>(), Some(&CLIENT));
        assert!(port.native::<String>().is_none());
    }
}
