//! A set of four adapters, one per port, from any mix of providers.

use std::sync::Arc;

use crate::{
    layers::{Interceptor, Layered},
    ports::{BlobStore, Classifier, Database, Notifier},
};

/// The four adapters a [`Thisthat`](crate::Thisthat) service runs on. Any mix works: Cloud
/// Storage for photos, DynamoDB for data, SNS for pushes and Vision for labels is as good a
/// `Backend` as four adapters of one provider.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Where photos are stored.
    pub blobs: Arc<dyn BlobStore>,
    /// Where competitions, votes, devices and pending notifications are kept.
    pub database: Arc<dyn Database>,
    /// How owners are notified.
    pub notifier: Arc<dyn Notifier>,
    /// How photos are labelled and screened.
    pub classifier: Arc<dyn Classifier>,
}

impl Backend {
    /// Checks that the classifier screens content, as a deployment open to the public needs:
    /// without screening every photo that decodes is shown to voters, whatever it shows. An
    /// operator who accepts that says so with `allow_unscreened` (it is logged as a warning).
    /// Otherwise a classifier that cannot screen is [`Error::Config`](crate::Error::Config),
    /// naming what to do.
    ///
    /// ```
    /// # fn demo(backend: thisthat_core::Backend) -> thisthat_core::Result<()> {
    /// backend.require_screening(false)?; // refuses to go on unscreened
    /// # Ok(()) }
    /// ```
    pub fn require_screening(&self, allow_unscreened: bool) -> crate::Result<()> {
        if self.classifier.screens_content() {
            return Ok(());
        }
        if allow_unscreened {
            tracing::warn!(
                "serving without content screening: the classifier cannot screen, and allow_unscreened is set"
            );
            return Ok(());
        }
        Err(crate::Error::config(
            "the classifier cannot screen content, and a public deployment must: use one that screens \
             (model:, rekognition://, vision://, azvision://), or accept unscreened photos explicitly \
             (thisthat serve --allow-unscreened, or THISTHAT_ALLOW_UNSCREENED=true)",
        ))
    }

    /// Wraps all four adapters in the same interceptor (retry, tracing, metering, fault
    /// injection). Layers applied later sit outside those applied earlier.
    ///
    /// ```
    /// # fn demo(backend: thisthat_core::Backend) -> thisthat_core::Backend {
    /// use thisthat_core::layers::{Retry, Trace};
    /// backend.layer(Retry::default()).layer(Trace)
    /// # }
    /// ```
    pub fn layer<I: Interceptor + Clone>(self, interceptor: I) -> Backend {
        Backend {
            blobs: Arc::new(Layered::new(self.blobs, interceptor.clone())),
            database: Arc::new(Layered::new(self.database, interceptor.clone())),
            notifier: Arc::new(Layered::new(self.notifier, interceptor.clone())),
            classifier: Arc::new(Layered::new(self.classifier, interceptor)),
        }
    }

    /// The layers the `thisthat` binaries run every port with: [`Retry`](crate::layers::Retry)
    /// with its defaults, outside [`Trace`](crate::layers::Trace) so that every attempt is
    /// traced with its outcome. Adapters leave transient failures to this retry layer (their
    /// own loops end in [`Error::Busy`](crate::Error::Busy), which it does not retry again).
    pub fn with_standard_layers(self) -> Backend {
        self.layer(crate::layers::Trace).layer(crate::layers::Retry::default())
    }
}
