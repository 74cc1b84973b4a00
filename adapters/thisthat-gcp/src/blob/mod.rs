//! The blob-store port on Cloud Storage, over the documented JSON API.
//!
//! Why not a storage crate: the official `google-cloud-storage` does metadata, list and delete
//! over gRPC only (no emulator speaks it), and the community `gcloud-storage` brings a second
//! auth stack and a second `reqwest`. The six calls the port needs are small and documented,
//! so they go through the workspace's shared REST plumbing (`thisthat-http`) with a token from
//! the same google-cloud-auth that Firestore uses. See `docs/gcp.md`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use firestore::gcloud_sdk::google_cloud_auth::{self, signer::Signer};
use md5::{Digest as _, Md5};
use percent_encoding::utf8_percent_encode;
use thisthat_core::{
    BlobKey, Entity, Error, Result,
    ports::{
        Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, SignedMethod, SignedUrl, SignedUrlRequest,
    },
};
use thisthat_http::{HttpStatusError, Resend};

use crate::auth::TokenSource;

mod codec;
mod signing;

use codec::{ObjectList, ObjectResource, SEGMENT, boundary, cut, header_string};
use signing::{V4Request, signing_error};

const PROVIDER: &str = "cloud storage";

/// The production endpoint of the JSON API (and of signed URLs).
pub const GCS_ENDPOINT: &str = "https://storage.googleapis.com";

/// The longest a V4 signed URL may live: seven days.
pub const MAX_SIGNED_URL_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How a [`GcsBlobStore`] reaches its bucket.
#[derive(Debug, Clone)]
pub struct GcsOptions {
    /// The bucket.
    pub bucket: String,
    /// The JSON API's base URL: `https://storage.googleapis.com`, or an emulator such as
    /// `http://127.0.0.1:4443`.
    pub endpoint: String,
    /// Where bearer tokens come from.
    pub tokens: TokenSource,
    /// What signs V4 URLs: a service account key, or the IAM `signBlob` API for credentials
    /// without a key (Cloud Run, GKE workload identity). `None` makes
    /// [`BlobStore::signed_url`] a configuration error.
    pub signer: Option<Signer>,
    /// Why there is no signer, when building one failed ([`GcsOptions::from_env`] keeps the
    /// reason here rather than failing a store that may never sign): [`BlobStore::signed_url`]
    /// reports it. `None` when no signer was asked for.
    pub signer_error: Option<String>,
}

impl GcsOptions {
    /// The bucket on production Cloud Storage, with Application Default Credentials for
    /// tokens and signing; or, when `STORAGE_EMULATOR_HOST` is set, on that emulator with no
    /// token, signing only with the key `GOOGLE_APPLICATION_CREDENTIALS` names, if any (see
    /// also [`GcsOptions::signer_from_key`]).
    pub fn from_env(bucket: impl Into<String>) -> Result<Self> {
        crate::install_crypto_provider();
        let emulator = std::env::var("STORAGE_EMULATOR_HOST").ok().filter(|h| !h.is_empty());
        let (endpoint, tokens) = match emulator {
            Some(host) if host.contains("://") => (host.trim_end_matches('/').to_string(), TokenSource::Anonymous),
            Some(host) => (format!("http://{}", host.trim_end_matches('/')), TokenSource::Anonymous),
            None => (GCS_ENDPOINT.to_string(), TokenSource::adc()?),
        };
        Ok(GcsOptions::at(bucket, endpoint, tokens))
    }

    /// The bucket behind `endpoint` (the JSON API's base URL: Cloud Storage's, an emulator's or
    /// a proxy's), calling it with `tokens`. It signs URLs as [`GcsOptions::from_env`] does:
    /// with Application Default Credentials on Cloud Storage itself, elsewhere only with the
    /// key `GOOGLE_APPLICATION_CREDENTIALS` names.
    pub fn at(bucket: impl Into<String>, endpoint: impl Into<String>, tokens: TokenSource) -> Self {
        crate::install_crypto_provider();
        let endpoint = endpoint.into().trim_end_matches('/').to_owned();
        // Signing is optional: a deployment that never hands out URLs needs no signer. On an
        // emulator only a key file signs: without one, ADC falls back to the metadata server,
        // which google-cloud-auth contacts as soon as the signer is built, and an emulator
        // run is not on Google Cloud.
        let key_file = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some();
        let (signer, signer_error) = if endpoint == GCS_ENDPOINT || key_file {
            match google_cloud_auth::credentials::Builder::default().build_signer() {
                Ok(signer) => (Some(signer), None),
                Err(e) => (None, Some(error_chain(&e))),
            }
        } else {
            (None, None)
        };
        GcsOptions {
            bucket: bucket.into(),
            endpoint,
            tokens,
            signer,
            signer_error,
        }
    }

    /// A signer from a service account key (the JSON file's contents), which signs locally.
    pub fn signer_from_key(service_account_key: serde_json::Value) -> Result<Signer> {
        crate::install_crypto_provider();
        google_cloud_auth::credentials::service_account::Builder::new(service_account_key)
            .build_signer()
            .map_err(|e| Error::Config {
                reason: "the service account key cannot sign URLs".into(),
                source: Some(Box::new(e)),
            })
    }
}

/// Photos in a Cloud Storage bucket.
///
/// Puts are multipart uploads (metadata and bytes in one request), create-only ones with
/// `ifGenerationMatch=0`, which Cloud Storage checks atomically: of racing creates exactly one
/// gets generation 1 and the rest get HTTP 412. Signed URLs are V4 (`GOOG4-RSA-SHA256`); an
/// upload URL binds the content type, `x-goog-content-length-range` (the size limit) and
/// `x-goog-if-generation-match: 0` (create-only), all as signed headers the client must send.
#[derive(Debug, Clone)]
pub struct GcsBlobStore {
    http: reqwest::Client,
    options: GcsOptions,
}

impl GcsBlobStore {
    /// A store on `options.bucket`. The bucket must exist (see [`GcsBlobStore::create_bucket`]).
    ///
    /// [`Error::Config`] if `options.tokens` would go to a plain `http://` endpoint in the
    /// clear (Application Default Credentials never do; a static token only to a loopback
    /// emulator).
    pub fn new(options: GcsOptions) -> Result<Self> {
        crate::install_crypto_provider();
        options.tokens.check_endpoint(PROVIDER, &options.endpoint)?;
        Ok(GcsBlobStore {
            http: thisthat_http::client()?,
            options,
        })
    }

    /// The HTTP client, for calls the port does not offer.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// How this store was configured.
    pub fn options(&self) -> &GcsOptions {
        &self.options
    }

    /// Creates the bucket in `project` (for emulators and tests; production buckets are
    /// created with their retention, location and IAM by infrastructure code).
    /// [`Error::Conflict`] if it exists.
    pub async fn create_bucket(&self, project: &str) -> Result<()> {
        let url = format!("{}/storage/v1/b", self.options.endpoint);
        let request = self
            .authorized(self.http.post(url).query(&[("project", project)]))
            .await?
            .json(&serde_json::json!({ "name": self.options.bucket }));
        thisthat_http::send(PROVIDER, request, |e| {
            (e.status == 409).then(|| Error::conflict(format!("bucket {} exists", self.options.bucket)))
        })
        .await?;
        Ok(())
    }

    async fn authorized(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        self.options.tokens.authorize(PROVIDER, request).await
    }

    fn object_url(&self, key: &BlobKey) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.options.endpoint,
            utf8_percent_encode(&self.options.bucket, SEGMENT),
            utf8_percent_encode(key.as_str(), SEGMENT)
        )
    }

    /// A 404 on an object call means the object (or the bucket) is missing; a missing bucket
    /// is a configuration error, which the JSON API tells apart only by its message.
    fn not_found(&self, key: &BlobKey, e: &HttpStatusError) -> Option<Error> {
        if e.status != 404 {
            return None;
        }
        if e.body.contains("bucket") && e.body.contains("does not exist") {
            return Some(self.missing_bucket());
        }
        Some(Error::not_found(Entity::Blob, key))
    }

    /// A create-only upload was sent twice (its first copy failed in transport) and the
    /// second was refused because an object exists. That object is this upload's first copy
    /// if it holds the same bytes: then the upload succeeded. Anything else is someone
    /// else's object, and the create lost the race.
    async fn landed_earlier(&self, key: &BlobKey, body: &[u8]) -> Result<BlobMeta> {
        let request = self.authorized(self.http.get(self.object_url(key))).await?;
        let response = thisthat_http::send_idempotent(PROVIDER, request, |e| self.not_found(key, e)).await?;
        let object: ObjectResource = thisthat_http::json(PROVIDER, response).await?;
        let ours = base64::engine::general_purpose::STANDARD.encode(Md5::digest(body));
        if object.md5_hash.as_deref() == Some(ours.as_str()) {
            tracing::debug!(%key, "a create-only upload sent twice: the first copy landed");
            object.meta(key.clone())
        } else {
            Err(Error::conflict(format!("{key} already exists")))
        }
    }

    fn missing_bucket(&self) -> Error {
        Error::config(format!(
            "the Cloud Storage bucket {} does not exist",
            self.options.bucket
        ))
    }
}

#[async_trait]
impl BlobStore for GcsBlobStore {
    #[tracing::instrument(name = "gcs.put", skip_all, fields(bucket = %self.options.bucket, key = %key, size = body.len()))]
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        let mut metadata = serde_json::json!({ "name": key.as_str() });
        if let Some(content_type) = &options.content_type {
            metadata["contentType"] = content_type.clone().into();
        }
        let boundary = boundary(&body);
        let media_type = options.content_type.as_deref().unwrap_or("application/octet-stream");
        let mut multipart = Vec::with_capacity(body.len() + 512);
        multipart.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n").as_bytes(),
        );
        multipart.extend_from_slice(&body);
        multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

        let mut query = vec![("uploadType", "multipart")];
        let create = options.mode == PutMode::Create;
        if create {
            // Generation 0 means "no live object": Cloud Storage refuses the write with 412
            // if one exists, atomically.
            query.push(("ifGenerationMatch", "0"));
        }
        let url = format!(
            "{}/upload/storage/v1/b/{}/o",
            self.options.endpoint,
            utf8_percent_encode(&self.options.bucket, SEGMENT)
        );
        let request = self
            .authorized(self.http.post(url).query(&query))
            .await?
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(multipart);
        // Safe to send twice: an overwrite with the same bytes leaves what one would, and a
        // create-only upload refused on its second copy is checked below.
        let answer = thisthat_http::exchange(PROVIDER, request, Resend::Safe).await?;
        if create && answer.resent && answer.response.status() == reqwest::StatusCode::PRECONDITION_FAILED {
            return self.landed_earlier(key, &body).await;
        }
        let response = thisthat_http::success(PROVIDER, answer.response, |e| match e.status {
            412 if create => Some(Error::conflict(format!("{key} already exists"))),
            404 => Some(self.missing_bucket()),
            _ => None,
        })
        .await?;
        let object: ObjectResource = thisthat_http::json(PROVIDER, response).await?;
        object.meta(key.clone())
    }

    #[tracing::instrument(name = "gcs.get", skip_all, fields(bucket = %self.options.bucket, key = %key))]
    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let mut request = self
            .authorized(self.http.get(self.object_url(key)).query(&[("alt", "media")]))
            .await?;
        if let Some(range) = &options.range {
            if range.start > range.end {
                return Err(Error::invalid("range", "the range starts after it ends"));
            }
            if range.start == range.end {
                // An empty range: nothing to download, but the blob must exist.
                let meta = self.head(key).await?;
                return Ok(Blob {
                    meta,
                    body: Bytes::new(),
                });
            }
            // A range past the end is answered 416, and fake-gcs-server closes the connection
            // after every 416 without saying so; hyper may then hand the next request to the
            // closing connection, where it fails or, seen here, waits until the timeout with
            // nothing sent. Asking for the connection to be closed after a ranged read means
            // it is never reused. Ranged reads are rare (nothing on the API's request path
            // makes one), so the fresh connection the next request opens costs little.
            request = request
                .header(
                    reqwest::header::RANGE,
                    format!("bytes={}-{}", range.start, range.end - 1),
                )
                .header(reqwest::header::CONNECTION, "close");
        }
        let response = match thisthat_http::send_idempotent(PROVIDER, request, |e| match e.status {
            // The range starts at or past the end: the port cuts ranges at the end, so that
            // is an empty body (the marker is replaced below).
            416 => Some(Error::invalid("range", "past the end")),
            _ => self.not_found(key, e),
        })
        .await
        {
            Ok(response) => response,
            Err(Error::InvalidInput { field: "range", .. }) => {
                let meta = self.head(key).await?;
                return Ok(Blob {
                    meta,
                    body: Bytes::new(),
                });
            }
            Err(e) => return Err(e),
        };
        let headers = response.headers().clone();
        let partial = response.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        let body = response
            .bytes()
            .await
            .map_err(|e| thisthat_http::transport_error(PROVIDER, e))?;
        let (body, size) = cut(body, options.range.as_ref(), partial, &headers)?;
        Ok(Blob {
            meta: BlobMeta {
                key: key.clone(),
                size,
                content_type: header_string(&headers, reqwest::header::CONTENT_TYPE),
                etag: header_string(&headers, reqwest::header::ETAG),
            },
            body,
        })
    }

    #[tracing::instrument(name = "gcs.head", skip_all, fields(bucket = %self.options.bucket, key = %key))]
    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let request = self.authorized(self.http.get(self.object_url(key))).await?;
        let response = thisthat_http::send_idempotent(PROVIDER, request, |e| self.not_found(key, e)).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| thisthat_http::transport_error(PROVIDER, e))?;
        let object: ObjectResource = serde_json::from_slice(&body).map_err(|e| Error::Backend {
            provider: PROVIDER,
            message: "the object resource did not match the documented shape".into(),
            source: Some(Box::new(e)),
        })?;
        object.meta(key.clone())
    }

    #[tracing::instrument(name = "gcs.delete", skip_all, fields(bucket = %self.options.bucket, key = %key))]
    async fn delete(&self, key: &BlobKey) -> Result<()> {
        let request = self.authorized(self.http.delete(self.object_url(key))).await?;
        // A delete repeated after a lost answer finds nothing, which is what it wanted.
        match thisthat_http::send_idempotent(PROVIDER, request, |e| self.not_found(key, e)).await {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "gcs.list", skip_all, fields(bucket = %self.options.bucket, prefix = %prefix))]
    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let url = format!(
            "{}/storage/v1/b/{}/o",
            self.options.endpoint,
            utf8_percent_encode(&self.options.bucket, SEGMENT)
        );
        let mut query = vec![("prefix", prefix.to_string()), ("maxResults", "1000".to_string())];
        if let Some(token) = continuation {
            query.push(("pageToken", token));
        }
        let request = self.authorized(self.http.get(url).query(&query)).await?;
        let response =
            thisthat_http::send_idempotent(PROVIDER, request, |e| (e.status == 404).then(|| self.missing_bucket()))
                .await?;
        let list: ObjectList = thisthat_http::json(PROVIDER, response).await?;
        let mut blobs = Vec::with_capacity(list.items.len());
        for object in list.items {
            // Objects written by something else under names the SDK never builds cannot be
            // addressed through the port; they are left out rather than failing the listing.
            match BlobKey::new(object.name.clone()) {
                Ok(key) => blobs.push(object.meta(key)?),
                Err(_) => tracing::debug!(name = %object.name, "skipping an object whose name is not a thisthat key"),
            }
        }
        Ok(ListPage {
            blobs,
            next: list.next_page_token.filter(|t| !t.is_empty()),
        })
    }

    #[tracing::instrument(name = "gcs.signed_url", skip_all, fields(bucket = %self.options.bucket, key = %key))]
    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        let signer = self.options.signer.as_ref().ok_or_else(|| {
            let why = match &self.options.signer_error {
                Some(reason) => format!(" (building one failed: {reason})"),
                None => String::new(),
            };
            Error::config(format!(
                "Cloud Storage signed URLs need a signer{why}: Application Default Credentials with a service account (a key, or a metadata-server identity with roles/iam.serviceAccountTokenCreator on itself)",
            ))
        })?;
        let (method, headers) = match &request.method {
            SignedMethod::Get => ("GET", Vec::new()),
            SignedMethod::Put { content_type, max_size } => (
                "PUT",
                vec![
                    ("content-type".to_string(), content_type.clone()),
                    ("x-goog-content-length-range".to_string(), format!("0,{max_size}")),
                    ("x-goog-if-generation-match".to_string(), "0".to_string()),
                ],
            ),
            _ => {
                return Err(Error::Unsupported {
                    adapter: "GcsBlobStore",
                    operation: "this signed URL method",
                });
            }
        };
        // Query parameters under the signature, so a holder of the URL cannot change how the
        // download is served.
        let query: Vec<(&str, String)> = match (&request.method, &request.served_as) {
            (SignedMethod::Get, Some(served)) => vec![
                ("response-content-disposition", served.content_disposition.clone()),
                ("response-content-type", served.content_type.clone()),
            ],
            _ => Vec::new(),
        };
        let email = signer.client_email().await.map_err(signing_error)?;
        let now = SystemTime::now();
        let parts = V4Request {
            method,
            endpoint: &self.options.endpoint,
            bucket: &self.options.bucket,
            object: key.as_str(),
            headers: &headers,
            query: &query,
            email: &email,
            now,
            expires_in: request.expires_in,
        }
        .prepare()?;
        let signature = signer
            .sign(parts.string_to_sign.as_bytes())
            .await
            .map_err(signing_error)?;
        let hex = thisthat_core::adapter::hex(&signature);
        Ok(SignedUrl {
            url: format!("{}&X-Goog-Signature={hex}", parts.unsigned_url),
            method: method.to_string(),
            headers,
            expires_at: parts.expires_at,
        })
    }

    /// Exposes the adapter and its HTTP client and options (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client(), self.options()])
    }
}

/// An error and its sources, one line, for a reason kept as text.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_signer_says_why_it_is_missing() {
        let store = GcsBlobStore::new(GcsOptions {
            bucket: "photos".into(),
            endpoint: GCS_ENDPOINT.into(),
            tokens: TokenSource::Anonymous,
            signer: None,
            signer_error: Some("the metadata server has no service account".into()),
        })
        .expect("store");
        let request = SignedUrlRequest {
            method: SignedMethod::Get,
            expires_in: Duration::from_secs(60),
            served_as: None,
        };
        let key = BlobKey::new("a/b").expect("key");
        match store.signed_url(&key, &request).await {
            Err(Error::Config { reason, .. }) => {
                assert!(
                    reason.contains("the metadata server has no service account"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
