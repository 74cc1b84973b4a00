//! Opening adapters from URLs, Go CDK style: `s3://photos`, `dynamodb://thisthat`,
//! `memory://`. Adapter crates plug in a [`UrlOpener`] for their schemes, each registered for
//! the port it opens (Go CDK's `URLMux` registers per API the same way); a team then picks
//! providers per port in configuration, with no code change.

use std::{collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    Backend, Error, Result,
    ports::{BlobStore, Classifier, Database, Notifier},
};

/// The four ports an adapter URL can open: with the URL's scheme, the key of a [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Port {
    /// Blob storage ([`BlobStore`]), named by [`BackendConfig::storage`].
    BlobStore,
    /// The database ([`Database`]), named by [`BackendConfig::database`].
    Database,
    /// The notifier ([`Notifier`]), named by [`BackendConfig::notifier`].
    Notifier,
    /// The classifier ([`Classifier`]), named by [`BackendConfig::classifier`].
    Classifier,
}

impl Port {
    /// Every port, in the order a [`BackendConfig`] names them.
    pub const ALL: [Port; 4] = [Port::BlobStore, Port::Database, Port::Notifier, Port::Classifier];

    /// The [`BackendConfig`] field, and configuration key, that names this port's URL.
    ///
    /// ```
    /// assert_eq!(thisthat_core::registry::Port::BlobStore.field(), "storage");
    /// ```
    pub fn field(self) -> &'static str {
        match self {
            Port::BlobStore => "storage",
            Port::Database => "database",
            Port::Notifier => "notifier",
            Port::Classifier => "classifier",
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Port::BlobStore => "blob storage",
            Port::Database => "a database",
            Port::Notifier => "a notifier",
            Port::Classifier => "a classifier",
        })
    }
}

/// Opens an adapter crate's adapters from URLs of its schemes.
///
/// [`UrlOpener::schemes`] says which scheme opens which port, and a [`Registry`] calls a
/// method only with a URL of a scheme listed for that method's port, so no method checks the
/// scheme. Every method has a default that says the port is not offered, so an opener
/// implements only what it lists.
#[async_trait]
pub trait UrlOpener: Send + Sync {
    /// The URL schemes this opener handles, each with the port it opens:
    /// `(Port::BlobStore, "s3")`, `(Port::Database, "dynamodb")`, … One scheme may open
    /// several ports (`memory://` opens all four).
    fn schemes(&self) -> &[(Port, &'static str)];

    /// Opens blob storage.
    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        Err(not_offered(url, Port::BlobStore))
    }

    /// Opens a database.
    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        Err(not_offered(url, Port::Database))
    }

    /// Opens a notifier.
    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        Err(not_offered(url, Port::Notifier))
    }

    /// Opens a classifier.
    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        Err(not_offered(url, Port::Classifier))
    }
}

fn not_offered(url: &Url, port: Port) -> Error {
    Error::config(format!("the {}:// scheme does not offer {port}", url.scheme()))
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

/// The URL schemes an application knows, each registered for the port it opens and served by
/// an adapter crate's [`UrlOpener`].
///
/// ```
/// # async fn open() -> thisthat_core::Result<()> {
/// use thisthat_core::{Error, Registry, registry::Port};
/// # #[derive(Debug)] struct Nothing;
/// # #[async_trait::async_trait]
/// # impl thisthat_core::UrlOpener for Nothing {
/// #     fn schemes(&self) -> &[(Port, &'static str)] { &[(Port::Database, "nothing")] }
/// # }
/// let registry = Registry::new().with(Nothing);
/// assert_eq!(registry.schemes(Port::Database).collect::<Vec<_>>(), ["nothing"]);
/// // A scheme registered for another port is refused before any opener runs.
/// let refused = registry.blob_store("nothing://x").await;
/// assert!(matches!(refused, Err(Error::Config { .. })));
/// # Ok(()) }
/// ```
#[derive(Default, Clone)]
pub struct Registry {
    openers: BTreeMap<(Port, &'static str), Arc<dyn UrlOpener>>,
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

    /// Adds an opener for all the (port, scheme) pairs it lists; a later opener for the same
    /// pair replaces the earlier one.
    pub fn with(mut self, opener: impl UrlOpener + 'static) -> Self {
        let opener: Arc<dyn UrlOpener> = Arc::new(opener);
        for &key in opener.schemes() {
            self.openers.insert(key, opener.clone());
        }
        self
    }

    /// The schemes this registry can open `port` from, in order.
    pub fn schemes(&self, port: Port) -> impl Iterator<Item = &'static str> + '_ {
        self.openers
            .keys()
            .filter(move |(p, _)| *p == port)
            .map(|(_, scheme)| *scheme)
    }

    fn opener(&self, port: Port, raw: &str) -> Result<(Url, &Arc<dyn UrlOpener>)> {
        let field = port.field();
        let url = Url::parse(raw).map_err(|e| Error::Config {
            reason: format!("{field} = {raw:?} is not a URL such as memory:// or s3://bucket"),
            source: Some(Box::new(e)),
        })?;
        // A lookup by a borrowed scheme: the map's keys are `'static`, the URL's is not.
        let registered = |port: Port, scheme: &str| {
            self.openers
                .iter()
                .find(|((p, s), _)| *p == port && *s == scheme)
                .map(|(_, opener)| opener)
        };
        if let Some(opener) = registered(port, url.scheme()) {
            return Ok((url, opener));
        }
        let scheme = url.scheme();
        let mut known = self
            .schemes(port)
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(", ");
        if known.is_empty() {
            known.push_str("none");
        }
        let elsewhere: Vec<String> = Port::ALL
            .into_iter()
            .filter(|other| registered(*other, scheme).is_some())
            .map(|other| other.to_string())
            .collect();
        Err(Error::config(if elsewhere.is_empty() {
            format!(
                "{field} = {raw:?}: no adapter for the {scheme}:// scheme is registered (known for {port}: {known}); enable the adapter crate's cargo feature and add its opener"
            )
        } else {
            format!(
                "{field} = {raw:?}: {scheme}:// opens {}, not {port}; {port} opens from {known}",
                elsewhere.join(" and ")
            )
        }))
    }

    /// Opens blob storage from a URL such as `s3://photos`.
    pub async fn blob_store(&self, url: &str) -> Result<Arc<dyn BlobStore>> {
        let (url, opener) = self.opener(Port::BlobStore, url)?;
        opener.blob_store(&url).await
    }

    /// Opens a database from a URL such as `sqlite:///var/lib/thisthat.db`.
    pub async fn database(&self, url: &str) -> Result<Arc<dyn Database>> {
        let (url, opener) = self.opener(Port::Database, url)?;
        opener.database(&url).await
    }

    /// Opens a notifier from a URL such as `outbox:///tmp/outbox`.
    pub async fn notifier(&self, url: &str) -> Result<Arc<dyn Notifier>> {
        let (url, opener) = self.opener(Port::Notifier, url)?;
        opener.notifier(&url).await
    }

    /// Opens a classifier from a URL such as `pixels:`.
    pub async fn classifier(&self, url: &str) -> Result<Arc<dyn Classifier>> {
        let (url, opener) = self.opener(Port::Classifier, url)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists two schemes, each for one port, and answers every call it gets with the name of
    /// the method called, so a test sees where the registry sent a URL.
    struct Listed;

    #[async_trait]
    impl UrlOpener for Listed {
        fn schemes(&self) -> &[(Port, &'static str)] {
            &[(Port::BlobStore, "bucket"), (Port::Database, "table")]
        }
        async fn blob_store(&self, _: &Url) -> Result<Arc<dyn BlobStore>> {
            Err(Error::config("blob_store was called"))
        }
        async fn database(&self, _: &Url) -> Result<Arc<dyn Database>> {
            Err(Error::config("database was called"))
        }
    }

    fn reason<T>(result: Result<T>) -> String {
        match result {
            Err(Error::Config { reason, .. }) => reason,
            Err(other) => panic!("not a configuration error: {other:?}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[tokio::test]
    async fn a_url_reaches_the_opener_of_its_port_and_scheme_only() {
        let registry = Registry::new().with(Listed);
        assert_eq!(reason(registry.blob_store("bucket://b").await), "blob_store was called");
        assert_eq!(reason(registry.database("table://t").await), "database was called");
        assert_eq!(
            reason(registry.database("bucket://b").await),
            r#"database = "bucket://b": bucket:// opens blob storage, not a database; a database opens from table://"#
        );
        let unknown = reason(registry.notifier("sns://x").await);
        assert!(
            unknown.starts_with(
                r#"notifier = "sns://x": no adapter for the sns:// scheme is registered (known for a notifier: none)"#
            ),
            "{unknown}"
        );
        assert!(reason(registry.classifier("not a url").await).contains("is not a URL"));
        assert_eq!(registry.schemes(Port::BlobStore).collect::<Vec<_>>(), ["bucket"]);
        assert_eq!(registry.schemes(Port::Classifier).count(), 0);
    }
}
