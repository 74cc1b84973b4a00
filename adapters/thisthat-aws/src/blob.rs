//! S3 blob storage.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::{
    Client,
    operation::{get_object::GetObjectError, head_object::HeadObjectError, put_object::PutObjectError},
    presigning::PresigningConfig,
    primitives::ByteStream,
};
use bytes::Bytes;
use thisthat_core::{
    BlobKey, Entity, Error, Result,
    ports::{
        Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, SignedMethod, SignedUrl, SignedUrlRequest,
    },
};
use tracing::Instrument;

use crate::error;

const SERVICE: &str = "s3";

/// S3's longest presigned-URL lifetime with SigV4 (7 days). Longer requests are refused, not
/// silently shortened.
pub const MAX_SIGNED_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Blob storage in an S3 bucket, optionally under a key prefix so that several deployments
/// can share one bucket.
///
/// Create-only puts send `If-None-Match: *`, which S3 enforces atomically (a racing second
/// create gets `412`, mapped to [`Error::Conflict`]). Signed PUT URLs bind the content type
/// and `If-None-Match: *` into the signature, so a client cannot upload another type or
/// replace a photo once it landed; S3 cannot bind a *maximum* size into a presigned PUT, so
/// the service checks the size when the upload is finished (see `docs/aws.md`).
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3BlobStore {
    /// A store in `bucket` with the given client.
    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
            prefix: String::new(),
        }
    }

    /// A store in `bucket`, configured from the standard AWS chain ([`crate::load_config`]).
    pub async fn new(bucket: impl Into<String>) -> Self {
        Self::from_client(Client::new(&crate::load_config().await), bucket)
    }

    /// Keeps every key under `prefix` (a trailing `/` is added if missing).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.prefix = prefix;
        self
    }

    /// The S3 client, for anything thisthat does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key a blob key is stored under.
    pub fn object_key(&self, key: &BlobKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Creates the bucket (for tests and first deployments; production buckets are usually
    /// made by infrastructure code). An existing bucket owned by the caller is fine.
    pub async fn create_bucket(&self) -> Result<()> {
        let mut request = self.client.create_bucket().bucket(&self.bucket);
        // Outside us-east-1, S3 refuses a creation that does not name the client's region
        // (IllegalLocationConstraintException). R2's `auto` is not a location: R2 places the
        // bucket itself when none is named.
        let region = self.client.config().region().map(|r| r.as_ref().to_owned());
        if let Some(region) = region.filter(|r| r != "us-east-1" && r != "auto") {
            request = request.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(error::code(&e), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(error::map(SERVICE, e)),
        }
    }

    /// A configuration error if the bucket does not exist.
    async fn bucket_missing(&self) -> Result<Option<Error>> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(Some(Error::config(format!(
                "the S3 bucket {} does not exist: create it, or fix the s3:// URL",
                self.bucket
            )))),
            Err(e) => Err(error::map(SERVICE, e)),
        }
    }

    fn blob_key(&self, object_key: &str) -> Result<BlobKey> {
        let key = object_key.strip_prefix(&self.prefix).unwrap_or(object_key);
        BlobKey::new(key)
    }

    fn span(&self, operation: &'static str, key: &str) -> tracing::Span {
        tracing::debug_span!("s3", operation, bucket = %self.bucket, key)
    }
}

fn not_found(key: &BlobKey) -> Error {
    Error::not_found(Entity::Blob, key)
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        let size = body.len() as u64;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(body))
            .set_content_type(options.content_type.clone());
        if options.mode == PutMode::Create {
            request = request.if_none_match("*");
        }
        let output = request
            .send()
            .instrument(self.span("put", key.as_str()))
            .await
            .map_err(|e| match error::code(&e) {
                Some("PreconditionFailed") | Some("ConditionalRequestConflict") => {
                    Error::conflict(format!("blob {key} already exists"))
                }
                _ => error::map::<PutObjectError>(SERVICE, e),
            })?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
            content_type: options.content_type.clone(),
            etag: output.e_tag,
        })
    }

    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let mut request = self.client.get_object().bucket(&self.bucket).key(self.object_key(key));
        if let Some(range) = &options.range {
            if range.start > range.end {
                return Err(Error::invalid("range", "start is after end"));
            }
            if range.start == range.end {
                // HTTP cannot ask for zero bytes; the port answers an empty range with none.
                return Ok(Blob {
                    meta: self.head(key).await?,
                    body: Bytes::new(),
                });
            }
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let output = match request.send().instrument(self.span("get", key.as_str())).await {
            Ok(output) => output,
            Err(e) => {
                return match e.as_service_error() {
                    Some(GetObjectError::NoSuchKey(_)) => Err(not_found(key)),
                    // A range starting at or past the end (S3's 416): the port cuts ranges at
                    // the end, so that is an empty body.
                    _ if error::code(&e) == Some("InvalidRange") => Ok(Blob {
                        meta: self.head(key).await?,
                        body: Bytes::new(),
                    }),
                    _ => Err(error::map(SERVICE, e)),
                };
            }
        };
        // A ranged answer says the whole size after the slash of `Content-Range: bytes a-b/size`.
        let size = output
            .content_range()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|total| total.parse().ok())
            .or(output.content_length().and_then(|l| u64::try_from(l).ok()))
            .unwrap_or_default();
        let meta = BlobMeta {
            key: key.clone(),
            size,
            content_type: output.content_type.clone(),
            etag: output.e_tag.clone(),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| Error::unavailable(SERVICE, e))?
            .into_bytes();
        Ok(Blob { meta, body })
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let output = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .instrument(self.span("head", key.as_str()))
            .await
            .map_err(|e| match e.as_service_error() {
                Some(HeadObjectError::NotFound(_)) => not_found(key),
                _ => error::map(SERVICE, e),
            });
        let output = match output {
            Ok(output) => output,
            Err(Error::NotFound { .. }) => {
                // HEAD answers a bare 404 for a missing bucket too; tell the two apart, so
                // that a misconfigured bucket is not taken for a photo not uploaded yet.
                return Err(self.bucket_missing().await?.unwrap_or_else(|| not_found(key)));
            }
            Err(e) => return Err(e),
        };
        Ok(BlobMeta {
            key: key.clone(),
            size: output
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or_default(),
            content_type: output.content_type,
            etag: output.e_tag,
        })
    }

    async fn delete(&self, key: &BlobKey) -> Result<()> {
        // S3 deletes are idempotent: a missing key answers 204 like a present one.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .instrument(self.span("delete", key.as_str()))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.prefix))
            .set_continuation_token(continuation)
            .send()
            .instrument(self.span("list", prefix))
            .await
            .map_err(|e| error::map(SERVICE, e))?;
        let blobs = output
            .contents()
            .iter()
            .filter_map(|object| {
                let key = self.blob_key(object.key()?).ok()?;
                Some(BlobMeta {
                    key,
                    size: object.size().and_then(|s| u64::try_from(s).ok()).unwrap_or_default(),
                    // ListObjectsV2 does not return content types; `head` does.
                    content_type: None,
                    etag: object.e_tag().map(str::to_owned),
                })
            })
            .collect();
        Ok(ListPage {
            blobs,
            next: output.next_continuation_token,
        })
    }

    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        if request.expires_in.is_zero() || request.expires_in > MAX_SIGNED_URL_TTL {
            return Err(Error::invalid(
                "expires_in",
                "S3 signed URLs last from 1 second to 7 days",
            ));
        }
        let config = PresigningConfig::expires_in(request.expires_in)
            .map_err(|e| Error::invalid("expires_in", e.to_string()))?;
        let expires_at = SystemTime::now() + request.expires_in;
        let presigned = match &request.method {
            // `response-content-type` and `response-content-disposition` are query
            // parameters under the signature: S3 answers them instead of the stored headers.
            SignedMethod::Get => self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .set_response_content_type(request.served_as.as_ref().map(|s| s.content_type.clone()))
                .set_response_content_disposition(request.served_as.as_ref().map(|s| s.content_disposition.clone()))
                .presigned(config)
                .await
                .map_err(|e| error::map(SERVICE, e))?,
            SignedMethod::Put { content_type, .. } => self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .content_type(content_type)
                .if_none_match("*")
                .presigned(config)
                .await
                .map_err(|e| error::map(SERVICE, e))?,
            _ => {
                return Err(Error::Unsupported {
                    adapter: "s3",
                    operation: "this signed URL method",
                });
            }
        };
        Ok(SignedUrl {
            url: presigned.uri().to_owned(),
            method: presigned.method().to_owned(),
            headers: presigned
                .headers()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
            expires_at,
        })
    }

    /// Exposes the adapter and its S3 client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
