//! Opening adapters from URLs, Go CDK style: `s3://photos`, `dynamodb://thisthat`,
//! `memory://`. Adapter crates plug in a [`UrlOpener`] for their schemes; a team then picks
//! providers per port in configuration, with no code change.

use std::{collections::BTreeMap, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    Backend, Error, Result,
    ports::{BlobStore, Classifier, Database, Notifier},
};

/// Opens an adapter crate's adapters from URLs of its schemes. Every method has a default that
/// says the scheme does not offer that port, so an opener implements only what it has.
#[async_trait]
pub trait UrlOpener: Send + Sync {
    /// The URL schemes this opener handles (`s3`, `dynamodb`, …).
    fn schemes(&self) -> &[&'static str];

    /// Opens blob storage.
    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        Err(not_offered(url, "blob storage"))
    }

    /// Opens a database.
    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        Err(not_offered(url, "a database"))
    }

    /// Opens a notifier.
    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        Err(not_offered(url, "a notifier"))
    }

    /// Opens a classifier.
    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        Err(not_offered(url, "a classifier"))
    }
}

fn not_offered(url: &Url, what: &str) -> Error {
    Error::config(format!("the {}:// scheme does not offer {what}", url.scheme()))
}

/// Which adapter serves each port, as URLs. Deserialises from any serde format, so it can sit
/// in a TOML file or come from environment variables.
///
/// ```
/// let config: thisthat_core::BackendConfig = serde_json::from_str(r#"{
///     "storage": "memory://", "database": "memory://",
///     "notifier": "memory://", "classifier": "memory://"
/// }"#)?;
/// assert_eq!(config.storage, "memory://");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// Blob storage URL.
    pub storage: String,
    /// Database URL.
    pub database: String,
    /// Notifier URL.
    pub notifier: String,
    /// Classifier URL.
    pub classifier: String,
}

/// The URL schemes an application knows, each served by an adapter crate's [`UrlOpener`].
#[derive(Default, Clone)]
pub struct Registry {
    openers: BTreeMap<&'static str, Arc<dyn UrlOpener>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("schemes", &self.openers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an opener for all its schemes; a later opener for the same scheme replaces the
    /// earlier one.
    pub fn with(mut self, opener: impl UrlOpener + 'static) -> Self {
        let opener: Arc<dyn UrlOpener> = Arc::new(opener);
        for scheme in opener.schemes() {
            self.openers.insert(scheme, opener.clone());
        }
        self
    }

    /// The schemes this registry can open.
    pub fn schemes(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.openers.keys().copied()
    }

    fn opener(&self, field: &'static str, raw: &str) -> Result<(Url, &Arc<dyn UrlOpener>)> {
        let url = Url::parse(raw).map_err(|e| Error::Config {
            reason: format!("{field} = {raw:?} is not a URL such as memory:// or s3://bucket"),
            source: Some(Box::new(e)),
        })?;
        let opener = self.openers.get(url.scheme()).ok_or_else(|| {
            let known: Vec<_> = self.schemes().collect();
            Error::config(format!(
                "{field} = {raw:?}: no adapter for the {}:// scheme is registered (known: {}); enable the adapter crate's cargo feature and add its opener",
                url.scheme(),
                known.join(", ")
            ))
        })?;
        Ok((url, opener))
    }

    /// Opens blob storage from a URL such as `s3://photos`.
    pub async fn blob_store(&self, url: &str) -> Result<Arc<dyn BlobStore>> {
        let (url, opener) = self.opener("storage", url)?;
        opener.blob_store(&url).await
    }

    /// Opens a database from a URL such as `sqlite:///var/lib/thisthat.db`.
    pub async fn database(&self, url: &str) -> Result<Arc<dyn Database>> {
        let (url, opener) = self.opener("database", url)?;
        opener.database(&url).await
    }

    /// Opens a notifier from a URL such as `outbox:///tmp/outbox`.
    pub async fn notifier(&self, url: &str) -> Result<Arc<dyn Notifier>> {
        let (url, opener) = self.opener("notifier", url)?;
        opener.notifier(&url).await
    }

    /// Opens a classifier from a URL such as `pixels:`.
    pub async fn classifier(&self, url: &str) -> Result<Arc<dyn Classifier>> {
        let (url, opener) = self.opener("classifier", url)?;
        opener.classifier(&url).await
    }

    /// Opens the four adapters a configuration names.
    pub async fn open(&self, config: &BackendConfig) -> Result<Backend> {
        Ok(Backend {
            blobs: self.blob_store(&config.storage).await?,
            database: self.database(&config.database).await?,
            notifier: self.notifier(&config.notifier).await?,
            classifier: self.classifier(&config.classifier).await?,
        })
    }
}
