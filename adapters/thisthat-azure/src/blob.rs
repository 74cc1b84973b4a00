//! Blob storage on the official `azure_storage_blob` 1.x crate.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use azure_core::{
    error::ErrorKind,
    http::{
        Context, Etag, Request, RequestContent, Url,
        policies::{Policy, PolicyResult},
    },
    time::OffsetDateTime,
};
use azure_storage_blob::{
    BlobContainerClient, BlobContainerClientOptions, BlobServiceClient, BlobServiceClientOptions,
    models::{
        BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders, BlobContainerClientListBlobsOptions,
        BlockBlobClientUploadOptions, HttpRange, KeyInfo,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use thisthat_core::{
    BlobKey, Entity, Error, Result,
    ports::{
        Blob, BlobMeta, BlobStore, GetOptions, ListPage, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrl,
        SignedUrlRequest,
    },
};
use tracing::instrument;

use crate::auth::{AccountKey, StorageAuth};

const PROVIDER: &str = "azure-blob";

/// How long the account SAS that authorises the adapter's own requests lives; a new one is
/// signed (locally, no request) well before it runs out.
const ACCOUNT_SAS_LIFETIME: Duration = Duration::from_secs(3600);

/// Photos in one Azure Blob Storage container.
///
/// ```no_run
/// # async fn f() -> thisthat_core::Result<()> {
/// use thisthat_azure::{AzureBlobStore, StorageAuth};
/// let store = AzureBlobStore::new(
///     "https://myaccount.blob.core.windows.net".parse().expect("url"),
///     "photos",
///     StorageAuth::managed_identity(None)?,
/// )?;
/// # Ok(()) }
/// ```
pub struct AzureBlobStore {
    container: BlobContainerClient,
    service: BlobServiceClient,
    name: String,
    account: String,
    auth: StorageAuth,
    page_size: i32,
}

impl std::fmt::Debug for AzureBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBlobStore")
            .field("container", &self.container.url().as_str())
            .field("auth", &self.auth)
            .finish()
    }
}

/// Adds a freshly signed account SAS to every request: the 1.x crate authenticates with Entra
/// ID tokens or a SAS in the URL, not with Shared Key.
#[derive(Debug)]
struct AccountSasPolicy {
    key: AccountKey,
    cached: Mutex<Option<(SystemTime, String)>>,
}

impl AccountSasPolicy {
    fn sas(&self) -> String {
        let now = SystemTime::now();
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((expiry, sas)) if *expiry > now + ACCOUNT_SAS_LIFETIME / 2 => sas.clone(),
            _ => {
                let expiry = now + ACCOUNT_SAS_LIFETIME;
                let sas = self.key.account_sas("b", expiry);
                *cached = Some((expiry, sas.clone()));
                sas
            }
        }
    }
}

#[async_trait]
impl Policy for AccountSasPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let sas = self.sas();
        let url = request.url_mut();
        let query = match url.query() {
            Some(q) if !q.is_empty() && !q.contains("sig=") => format!("{q}&{sas}"),
            Some(q) if q.contains("sig=") => q.to_owned(),
            _ => sas,
        };
        url.set_query(Some(&query));
        match next.split_first() {
            Some((first, rest)) => first.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(ErrorKind::Other, "no transport policy")),
        }
    }
}

impl AzureBlobStore {
    /// A store over `container` in the account at `account_url` (`https://{account}.blob.core.windows.net`,
    /// or Azurite's `http://127.0.0.1:10000/devstoreaccount1`).
    pub fn new(account_url: Url, container: &str, auth: StorageAuth) -> Result<Self> {
        let mut options = crate::transport::client_options()?;
        let credential = match &auth {
            StorageAuth::Key(key) => {
                options.per_call_policies.push(Arc::new(AccountSasPolicy {
                    key: key.clone(),
                    cached: Mutex::new(None),
                }));
                None
            }
            StorageAuth::Token(credential) => Some(credential.clone()),
        };
        let account = match &auth {
            StorageAuth::Key(key) => key.account().to_owned(),
            StorageAuth::Token(_) => account_from_url(&account_url)?,
        };
        let mut container_url = account_url.clone();
        container_url
            .path_segments_mut()
            .map_err(|()| Error::config(format!("{account_url} cannot be a storage account URL")))?
            .pop_if_empty()
            .push(container);
        let config = |e: azure_core::Error| Error::Config {
            reason: format!("cannot open blob container {container} at {account_url}"),
            source: Some(e.into()),
        };
        let container_client = BlobContainerClient::new(
            container_url,
            credential.clone(),
            Some(BlobContainerClientOptions {
                client_options: options.clone(),
                ..Default::default()
            }),
        )
        .map_err(config)?;
        let service = BlobServiceClient::new(
            account_url.clone(),
            credential,
            Some(BlobServiceClientOptions {
                client_options: options,
                ..Default::default()
            }),
        )
        .map_err(config)?;
        Ok(AzureBlobStore {
            container: container_client,
            service,
            name: container.to_owned(),
            account,
            auth,
            page_size: 1000,
        })
    }

    /// Lists at most `n` blobs per page (1 to 5000; the default is 1000, the service's
    /// largest page).
    pub fn with_list_page_size(mut self, n: u16) -> Self {
        self.page_size = i32::from(n.clamp(1, 5000));
        self
    }

    /// The container client, for what the port does not cover.
    pub fn client(&self) -> &BlobContainerClient {
        &self.container
    }

    /// Creates the container if it does not exist yet (deployment, tests).
    #[instrument(skip(self), fields(container = %self.name))]
    pub async fn create_container(&self) -> Result<()> {
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(map_error(e, None)),
        }
    }

    fn blob_url(&self, key: &BlobKey) -> Url {
        self.container.blob_client(key.as_str()).url().clone()
    }

    async fn sas_query(
        &self,
        key: &BlobKey,
        permissions: &str,
        expiry: SystemTime,
        served_as: Option<&ServedAs>,
    ) -> Result<String> {
        match &self.auth {
            StorageAuth::Key(k) => Ok(k.blob_sas(&self.name, key.as_str(), permissions, expiry, served_as)),
            StorageAuth::Token(_) => {
                // User-delegation SAS: a key issued to this identity for at most the URL's
                // lifetime, then the SAS signed with it (the azure_storage_sas crate).
                let now = OffsetDateTime::now_utc();
                let expiry = OffsetDateTime::from(expiry);
                let info = KeyInfo {
                    start: Some(now - azure_core::time::Duration::minutes(5)),
                    expiry: Some(expiry),
                    ..Default::default()
                };
                let content: RequestContent<KeyInfo, azure_core::http::XmlFormat> =
                    info.try_into().map_err(|e| map_error(e, None))?;
                let udk = self
                    .service
                    .get_user_delegation_key(content, None)
                    .await
                    .map_err(|e| map_error(e, None))?
                    .into_model()
                    .map_err(|e| map_error(e, None))?;
                let builder = azure_storage_sas::SasBuilder::new(self.account.clone(), &udk, expiry)
                    .map_err(|e| Error::backend(PROVIDER, e))?
                    .blob(self.name.clone(), key.as_str());
                let builder = if permissions == "r" {
                    builder.read()
                } else {
                    builder.create()
                };
                let builder = match served_as {
                    Some(served) => builder
                        .content_type(served.content_type.clone())
                        .content_disposition(served.content_disposition.clone()),
                    None => builder,
                };
                Ok(builder.build())
            }
        }
    }
}

fn account_from_url(url: &Url) -> Result<String> {
    url.host_str()
        .and_then(|h| h.split('.').next())
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::config(format!("{url}: no account name in the host")))
}

fn status(e: &azure_core::Error) -> Option<u16> {
    e.http_status().map(u16::from)
}

/// Whether the service said the container itself is missing (`ContainerNotFound`), which is
/// the deployment's fault (a wrong name, or never created), not a missing blob.
fn container_missing(e: &azure_core::Error) -> bool {
    matches!(e.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "ContainerNotFound")
}

/// Maps an SDK error: a missing container is configuration, 404 is a missing blob, 409/412 a
/// lost create, then the statuses every provider shares (`thisthat_http::status_error`); no
/// response at all is retryable.
fn map_error(e: azure_core::Error, key: Option<&BlobKey>) -> Error {
    if container_missing(&e) {
        return Error::Config {
            reason: "the blob container does not exist: create it (AzureBlobStore::create_container, or azblob://...?create=true)".into(),
            source: Some(e.into()),
        };
    }
    match e.kind() {
        ErrorKind::HttpResponse { status, error_code, .. } => {
            let code = u16::from(*status);
            match (code, key) {
                (404, Some(key)) => Error::not_found(Entity::Blob, key),
                (409 | 412, _) => Error::Conflict {
                    reason: format!(
                        "blob storage refused the write ({})",
                        error_code.as_deref().unwrap_or("conflict")
                    ),
                    source: Some(e.into()),
                },
                _ => {
                    let http = thisthat_http::HttpStatusError::new(code, error_code.clone().unwrap_or_default());
                    match thisthat_http::status_error(PROVIDER, http) {
                        Error::Config { reason, .. } => Error::Config {
                            reason,
                            source: Some(e.into()),
                        },
                        other => other,
                    }
                }
            }
        }
        ErrorKind::Io | ErrorKind::Connection => Error::unavailable(PROVIDER, e),
        ErrorKind::Credential => Error::Config {
            reason: "blob storage credentials failed".into(),
            source: Some(e.into()),
        },
        _ => Error::backend(PROVIDER, e),
    }
}

/// The total size from `Content-Range: bytes 2-4/10`.
fn total_from_content_range(value: &str) -> Option<u64> {
    value.rsplit('/').next()?.trim().parse().ok()
}

#[async_trait]
impl BlobStore for AzureBlobStore {
    #[instrument(skip(self, body, options), fields(container = %self.name, key = %key, size = body.len()))]
    async fn put(&self, key: &BlobKey, body: Bytes, options: &PutOptions) -> Result<BlobMeta> {
        let size = body.len() as u64;
        let upload = BlockBlobClientUploadOptions {
            blob_content_type: options.content_type.clone(),
            if_none_match: matches!(options.mode, PutMode::Create).then(|| Etag::from("*")),
            ..Default::default()
        };
        let result = self
            .container
            .blob_client(key.as_str())
            .upload(RequestContent::from(body.to_vec()), Some(upload))
            .await
            .map_err(|e| map_error(e, Some(key)))?;
        Ok(BlobMeta {
            key: key.clone(),
            size,
            content_type: options.content_type.clone(),
            etag: result.etag.map(|e| e.to_string()),
        })
    }

    #[instrument(skip(self, options), fields(container = %self.name, key = %key))]
    async fn get(&self, key: &BlobKey, options: &GetOptions) -> Result<Blob> {
        let range = match &options.range {
            Some(r) if r.end <= r.start => {
                // An empty range reads nothing; the service has no way to ask for zero bytes.
                // A reversed one is the caller's mistake, judged as the port does: after both
                // ends are cut at the blob's end (so 12..11 of a 10-byte blob is just empty).
                let meta = self.head(key).await?;
                if r.start.min(meta.size) > r.end.min(meta.size) {
                    return Err(Error::invalid("range", "start is after end"));
                }
                return Ok(Blob {
                    meta,
                    body: Bytes::new(),
                });
            }
            Some(r) => Some(HttpRange::new(r.start, r.end - r.start)),
            None => None,
        };
        let ranged = range.is_some();
        let download = BlobClientDownloadOptions {
            range,
            ..Default::default()
        };
        let result = match self.container.blob_client(key.as_str()).download(Some(download)).await {
            Ok(result) => result,
            // A range starting at or past the end: the blob exists, the answer is no bytes.
            Err(e) if status(&e) == Some(416) => {
                let meta = self.head(key).await?;
                return Ok(Blob {
                    meta,
                    body: Bytes::new(),
                });
            }
            Err(e) => return Err(map_error(e, Some(key))),
        };
        let content_range = result
            .headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case("content-range"))
            .and_then(|(_, v)| total_from_content_range(v.as_str()));
        let properties = result.properties;
        let body = result.body.collect().await.map_err(|e| map_error(e, Some(key)))?;
        let size = match (ranged, content_range) {
            (true, Some(total)) => total,
            _ => properties
                .content_length
                .unwrap_or(body.len() as u64)
                .max(body.len() as u64),
        };
        Ok(Blob {
            meta: BlobMeta {
                key: key.clone(),
                size,
                content_type: properties.content_type,
                etag: properties.etag.map(|e| e.to_string()),
            },
            body,
        })
    }

    #[instrument(skip(self), fields(container = %self.name, key = %key))]
    async fn head(&self, key: &BlobKey) -> Result<BlobMeta> {
        let response = self
            .container
            .blob_client(key.as_str())
            .get_properties(None)
            .await
            .map_err(|e| map_error(e, Some(key)))?;
        let bad = |e: azure_core::Error| Error::backend(PROVIDER, e);
        Ok(BlobMeta {
            key: key.clone(),
            size: response.content_length().map_err(bad)?.unwrap_or(0),
            content_type: response.content_type().map_err(bad)?,
            etag: response.etag().map_err(bad)?.map(|e| e.to_string()),
        })
    }

    #[instrument(skip(self), fields(container = %self.name, key = %key))]
    async fn delete(&self, key: &BlobKey) -> Result<()> {
        match self.container.blob_client(key.as_str()).delete(None).await {
            Ok(_) => Ok(()),
            // A missing blob is deleted already; a missing container is not fine (map_error).
            Err(e) if status(&e) == Some(404) && !container_missing(&e) => Ok(()),
            Err(e) => Err(map_error(e, Some(key))),
        }
    }

    #[instrument(skip(self), fields(container = %self.name))]
    async fn list(&self, prefix: &str, continuation: Option<String>) -> Result<ListPage> {
        let options = BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            marker: continuation,
            maxresults: Some(self.page_size),
            ..Default::default()
        };
        let pager = self
            .container
            .list_blobs(Some(options))
            .map_err(|e| map_error(e, None))?;
        let Some(page) = pager.into_pages().next().await else {
            return Ok(ListPage::default());
        };
        let page = page
            .map_err(|e| map_error(e, None))?
            .into_model()
            .map_err(|e| map_error(e, None))?;
        let mut blobs = Vec::with_capacity(page.blob_items.len());
        for item in page.blob_items {
            let Some(name) = item.name else { continue };
            // Only keys thisthat wrote are listed; anything else in the container is skipped.
            let Ok(key) = BlobKey::new(name) else { continue };
            let properties = item.properties;
            blobs.push(BlobMeta {
                key,
                size: properties.as_ref().and_then(|p| p.content_length).unwrap_or(0),
                content_type: properties.as_ref().and_then(|p| p.content_type.clone()),
                etag: properties.and_then(|p| p.etag).map(|e| e.to_string()),
            });
        }
        Ok(ListPage {
            blobs,
            next: page.next_marker.filter(|m| !m.is_empty()),
        })
    }

    #[instrument(skip(self, request), fields(container = %self.name, key = %key))]
    async fn signed_url(&self, key: &BlobKey, request: &SignedUrlRequest) -> Result<SignedUrl> {
        // Whole seconds, `now` included: the SAS `se` has no finer resolution and is written
        // truncated, so an `expires_at` with a fraction would report the URL as living longer
        // than it does.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| Error::backend(PROVIDER, e))?;
        let expires_at = UNIX_EPOCH
            .checked_add(Duration::from_secs(now.as_secs()))
            .and_then(|t| t.checked_add(Duration::from_secs(request.expires_in.as_secs())))
            .ok_or_else(|| Error::invalid("expires_in", "too long"))?;
        let (method, permissions, headers, served_as) = match &request.method {
            SignedMethod::Get => ("GET", "r", Vec::new(), request.served_as.as_ref()),
            // `c` (create) without `w`: the SAS itself refuses to overwrite an existing blob,
            // and If-None-Match makes the same explicit. A SAS cannot bind the content type or
            // the size; finish_upload checks both.
            SignedMethod::Put { content_type, .. } => (
                "PUT",
                "c",
                vec![
                    ("x-ms-blob-type".to_owned(), "BlockBlob".to_owned()),
                    ("content-type".to_owned(), content_type.clone()),
                    ("if-none-match".to_owned(), "*".to_owned()),
                ],
                None,
            ),
            _ => {
                return Err(Error::Unsupported {
                    adapter: "azure blob storage",
                    operation: "this kind of signed URL",
                });
            }
        };
        let mut url = self.blob_url(key);
        url.set_query(Some(&self.sas_query(key, permissions, expires_at, served_as).await?));
        Ok(SignedUrl {
            url: url.to_string(),
            method: method.into(),
            headers,
            expires_at,
        })
    }

    /// Exposes the adapter and its container client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_gives_the_total() {
        assert_eq!(total_from_content_range("bytes 2-4/10"), Some(10));
        assert_eq!(total_from_content_range("bytes 2-4/*"), None);
    }
}
