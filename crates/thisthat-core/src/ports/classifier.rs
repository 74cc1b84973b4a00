use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobKey, Classification, MediaType, Result};

/// A photo to classify: its bytes, and where it is stored so that a classifier that can read
/// from the same storage (Rekognition from S3, Vision from Cloud Storage) need not upload it
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoInput {
    /// The photo's bytes.
    pub bytes: Bytes,
    /// Its sniffed format.
    pub media_type: MediaType,
    /// Where it is stored, if it already is.
    pub key: Option<BlobKey>,
}

/// Image recognition: labels for the photo, and a content screen where the service offers one.
///
/// Label names come back as the provider says them; the service normalises them (lower case,
/// threshold, dedup), so adapters need not.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Classifier: Send + Sync + std::fmt::Debug {
    /// Labels the photo and, if [`Classifier::screens_content`], screens it.
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification>;

    /// Whether [`Classification::moderation`] is filled in.
    fn screens_content(&self) -> bool;

    /// The adapter itself or its native client, if it exposes one of type `ty`: the escape
    /// hatch of the [`native`](crate::native) module, Go CDK's `As`. Callers use the typed
    /// `native::<T>()` on `dyn Classifier`; adapters override this with
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
