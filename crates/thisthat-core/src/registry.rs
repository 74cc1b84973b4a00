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

/// An adapter URL's query parameters, checked against the ones its scheme takes, so that a
/// misspelt setting (`?crate=true`) is refused instead of silently ignored. Shared by every
/// provider's opener.
///
/// ```
/// use thisthat_core::registry::UrlParams;
/// let url = url::Url::parse("s3://photos?create=true").unwrap();
/// let params = UrlParams::parse(&url, &["create", "region"])?;
/// assert!(params.flag("create", false)?);
/// assert_eq!(params.get("region"), None);
/// assert!(UrlParams::parse(&url::Url::parse("s3://photos?crate=1").unwrap(), &["create"]).is_err());
/// # Ok::<(), thisthat_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParams {
    url: String,
    pairs: Vec<(String, String)>,
}

impl UrlParams {
    /// Reads `url`'s query, refusing parameters not in `allowed` and parameters given twice.
    pub fn parse(url: &Url, allowed: &[&str]) -> Result<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (name, value) in url.query_pairs() {
            if !allowed.contains(&name.as_ref()) {
                let takes = if allowed.is_empty() {
                    "no parameters".to_owned()
                } else {
                    format!("only {}", allowed.join(", "))
                };
                return Err(Error::config(format!(
                    "{url}: {}:// URLs take {takes}, not {name}=",
                    url.scheme()
                )));
            }
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(Error::config(format!("{url}: {name}= is given twice")));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(UrlParams {
            url: url.to_string(),
            pairs,
        })
    }

    /// A parameter's value, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A yes/no parameter (`true`/`false`, `1`/`0`, `yes`/`no`), `default` if absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(Error::config(format!(
                "{}: {name}={other} is not true or false",
                self.url
            ))),
        }
    }
}

/// The URL's host, which adapter URLs use to name their bucket, table or project
/// (`s3://photos`); a configuration error naming `what` if there is none.
pub fn url_host(url: &Url, what: &str) -> Result<String> {
    match url.host_str() {
        Some(host) if !host.is_empty() => Ok(host.to_owned()),
        _ => Err(Error::config(format!(
            "{url}: name the {what} as the URL's host, as in {}://my-{what}",
            url.scheme()
        ))),
    }
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
