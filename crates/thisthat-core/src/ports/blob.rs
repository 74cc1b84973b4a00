use std::{
    ops::Range,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BlobKey, MediaType, Result};

/// Whether a put may replace an existing blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Store only if nothing is stored under the key yet; otherwise fail with
    /// [`Error::Conflict`](crate::Error::Conflict) and change nothing. Atomic: of two racing
    /// creates, exactly one wins.
    Create,
}

/// Options of [`BlobStore::put`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutOptions {
    /// The `Content-Type` stored with the blob and served back on download.
    pub content_type: Option<String>,
    /// Overwrite or create-only.
    pub mode: PutMode,
}

impl PutOptions {
    /// Create-only, with a content type.
    pub fn create(content_type: impl Into<String>) -> Self {
        PutOptions {
            content_type: Some(content_type.into()),
            mode: PutMode::Create,
        }
    }
}

/// Options of [`BlobStore::get`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetOptions {
    /// Only these bytes. A range past the end is cut at the end.
    pub range: Option<Range<u64>>,
}

/// What a store knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Its key.
    pub key: BlobKey,
    /// Its full size in bytes.
    pub size: u64,
    /// The stored `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The provider's version tag, if it has one.
    pub etag: Option<String>,
}

/// A blob's metadata and (some of) its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Metadata of the whole blob.
    pub meta: BlobMeta,
    /// The bytes asked for: all of them, or the requested range.
    pub body: Bytes,
}

/// One page of [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// The blobs on this page, in ascending key order.
    pub blobs: Vec<BlobMeta>,
    /// Where the next page starts (opaque, provider-specific); `None` on the last page.
    pub next: Option<String>,
}

/// What a signed URL lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignedMethod {
    /// Download the blob.
    Get,
    /// Upload the blob with exactly this content type and at most this many bytes. Uploads
    /// are create-only where the provider can enforce it (`If-None-Match: *`,
    /// `ifGenerationMatch=0`, thisthat's own servers): once there, a blob is never replaced
    /// through a signed URL.
    Put {
        /// The content type the upload must declare.
        content_type: String,
        /// The most bytes the upload may carry, where the backend can enforce it (documented
        /// per adapter; the service checks the size again when the upload is finished).
        max_size: u64,
    },
}

/// The `Content-Type` and `Content-Disposition` a download is served with: how a browser
/// that opens the URL on its own treats the bytes.
///
/// [`ServedAs::blob`] is the one decision, made for every blob thisthat hands out: the
/// embedded server applies it to the stored content type, and the service asks cloud stores
/// for it on every signed GET URL ([`SignedUrlRequest::served_as`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedAs {
    /// The `Content-Type` of the response.
    pub content_type: String,
    /// The `Content-Disposition` of the response.
    pub content_disposition: String,
}

impl ServedAs {
    /// How the blob under `key`, stored with `content_type`, is served. An accepted image
    /// type is shown inline under that type; anything else (another type, or none) is an
    /// attachment of unknown type, so a browser never renders it. The file name is the key's
    /// last segment, which [`BlobKey`] restricts to characters safe in a quoted header value.
    ///
    /// ```
    /// use thisthat_core::{BlobKey, ports::ServedAs};
    ///
    /// let key = BlobKey::new("competitions/x/0.display.jpg")?;
    /// let photo = ServedAs::blob(&key, Some("image/jpeg"));
    /// assert_eq!(photo.content_disposition, "inline; filename=\"0.display.jpg\"");
    /// let page = ServedAs::blob(&key, Some("text/html"));
    /// assert_eq!(page.content_type, "application/octet-stream");
    /// assert_eq!(page.content_disposition, "attachment; filename=\"0.display.jpg\"");
    /// # Ok::<(), thisthat_core::Error>(())
    /// ```
    pub fn blob(key: &BlobKey, content_type: Option<&str>) -> Self {
        let name = key.as_str().rsplit('/').next().unwrap_or("photo");
        match content_type.filter(|t| MediaType::from_mime(t).is_ok()) {
            Some(image) => ServedAs {
                content_type: image.to_string(),
                content_disposition: format!("inline; filename=\"{name}\""),
            },
            None => ServedAs {
                content_type: "application/octet-stream".into(),
                content_disposition: format!("attachment; filename=\"{name}\""),
            },
        }
    }

    /// How a photo stored under `key` in `media_type` is served (what [`ServedAs::blob`]
    /// decides for its stored content type).
    pub fn photo(key: &BlobKey, media_type: MediaType) -> Self {
        ServedAs::blob(key, Some(media_type.mime()))
    }
}

/// A request for a signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrlRequest {
    /// Download or upload.
    pub method: SignedMethod,
    /// How long the URL stays valid.
    pub expires_in: Duration,
    /// For a download: the `Content-Type` and `Content-Disposition` the response carries,
    /// signed into the URL where the provider allows it (S3 `response-content-*`, Cloud
    /// Storage `response-content-*`, Azure SAS `rsct`/`rscd`). `None` serves the blob with
    /// what the store holds. Stores that thisthat serves itself (memory, files) ignore it:
    /// their server applies [`ServedAs::blob`] to the stored content type, the decision the
    /// service asks for. Ignored for uploads.
    pub served_as: Option<ServedAs>,
}

impl SignedUrlRequest {
    /// A download URL valid for `expires_in`, served with the store's own headers.
    pub fn get(expires_in: Duration) -> Self {
        SignedUrlRequest {
            method: SignedMethod::Get,
            expires_in,
            served_as: None,
        }
    }

    /// The same request, its download served as `served_as`.
    #[must_use]
    pub fn served_as(mut self, served_as: ServedAs) -> Self {
        self.served_as = Some(served_as);
        self
    }
}

/// A time-limited URL that lets a client download or upload one blob without credentials.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
    /// The HTTP method to use (`GET` or `PUT`).
    pub method: String,
    /// Headers the client must send with the request, exactly as given, as `[name, value]`
    /// pairs.
    pub headers: Vec<(String, String)>,
    /// When it stops working (serialised as Unix milliseconds).
    #[serde(with = "crate::model::unix_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub expires_at: SystemTime,
}

/// Blob storage for photos: S3, Cloud Storage, Azure Blob Storage, a directory, memory.
///
/// Keys are [`BlobKey`]s, already validated. Missing blobs are
/// [`Error::NotFound`](crate::Error::NotFound); deleting a missing blob succeeds.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores `body` under `key`.
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta>;

    /// Reads a blob, or part of it.
    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob>;

    /// Reads a blob's metadata.
    async fn head(&self, key: &BlobKey) -> Result<BlobMeta>;

    /// Deletes a blob. Deleting a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> Result<()>;

    /// One page of the blobs whose keys start with `prefix`, in ascending key order. Pass the
    /// page's [`ListPage::next`] back as `continuation` for the next page.
    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage>;

    /// A signed URL for direct download or upload. Backends with no way to serve one answer
    /// [`Error::Unsupported`](crate::Error::Unsupported).
    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl>;

    /// The adapter itself or its native client, if it exposes one of type `ty`: the escape
    /// hatch of the [`native`](crate::native) module, Go CDK's `As`. Callers use the typed
    /// `native::<T>()` on `dyn BlobStore`; adapters override this with
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
