//! Opening the Azure adapters from URLs (see [`AzureOpener`]).

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use thisthat_core::{
    Error, Result, UrlOpener,
    ports::{BlobStore, Classifier, Database, Notifier},
    registry::{Port, UrlParams, url_host as name},
};
use url::Url;

use crate::{
    AccountKey, AiVisionClassifier, AzureBlobStore, AzureTableDatabase, NotificationHubsConfig,
    NotificationHubsNotifier, Screening, StorageAuth, TableClient,
};

/// Opens the Azure adapters from URLs:
///
/// | URL | adapter |
/// |---|---|
/// | `azblob://{container}?account={account}` | [`AzureBlobStore`] |
/// | `aztable://{table}?account={account}` | [`AzureTableDatabase`] |
/// | `aznotify://{hub}` | [`NotificationHubsNotifier`]; the connection string comes from `AZURE_NOTIFICATION_HUBS_CONNECTION_STRING` |
/// | `azvision://{resource}.cognitiveservices.azure.com?screening=adult` | [`AiVisionClassifier`]; the key from `AZURE_VISION_KEY`, else Entra ID |
///
/// Storage URLs take `endpoint=` (the account URL; default `https://{account}.blob|table.core.windows.net`),
/// `emulator=true` (Azurite's development account and key), `credential=managed-identity`
/// (the default when no key is set; `client_id=` picks a user-assigned identity) or
/// `credential=developer` (Azure CLI / azd sign-in), and `create=true` (create the container
/// or table if missing). An account key is taken from `AZURE_STORAGE_KEY`, never from the URL.
/// `aznotify` and `azvision` take `endpoint=` to point at another host (tests, proxies).
#[derive(Debug, Clone, Default)]
pub struct AzureOpener {
    env: Option<HashMap<String, String>>,
}

impl AzureOpener {
    /// An opener that reads keys from the process environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// An opener that reads keys from `env` instead of the process environment (tests, or
    /// applications that keep settings elsewhere).
    pub fn with_env(env: HashMap<String, String>) -> Self {
        AzureOpener { env: Some(env) }
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
        .filter(|v| !v.is_empty())
    }
}

/// What storage URLs (`azblob`, `aztable`) take.
const STORAGE_PARAMS: &[&str] = &["account", "endpoint", "emulator", "credential", "client_id", "create"];

fn parse_url(raw: &str, field: &str) -> Result<Url> {
    Url::parse(raw).map_err(|e| Error::Config {
        reason: format!("{field}={raw:?} is not a URL"),
        source: Some(e.into()),
    })
}

impl AzureOpener {
    /// The account URL and credentials of a storage URL; `service` is `blob` or `table`.
    fn storage(&self, url: &Url, service: &str) -> Result<(Url, StorageAuth, bool)> {
        let p = UrlParams::parse(url, STORAGE_PARAMS)?;
        let create = p.flag("create", false)?;
        if p.flag("emulator", false)? {
            let endpoint = match p.get("endpoint") {
                Some(e) => parse_url(e, "endpoint")?,
                None => {
                    let port = if service == "blob" { 10000 } else { 10002 };
                    parse_url(&format!("http://127.0.0.1:{port}/{}", crate::DEV_ACCOUNT), "endpoint")?
                }
            };
            return Ok((endpoint, StorageAuth::Key(AccountKey::development()), create));
        }
        let account = p
            .get("account")
            .map(str::to_owned)
            .or_else(|| self.var("AZURE_STORAGE_ACCOUNT"))
            .ok_or_else(|| Error::config(format!("{url}: add ?account=NAME (or set AZURE_STORAGE_ACCOUNT)")))?;
        let endpoint = match p.get("endpoint") {
            Some(e) => parse_url(e, "endpoint")?,
            None => parse_url(&format!("https://{account}.{service}.core.windows.net"), "endpoint")?,
        };
        let auth = match (self.var("AZURE_STORAGE_KEY"), p.get("credential")) {
            (Some(key), None | Some("key")) => StorageAuth::Key(AccountKey::new(account, &key)?),
            (None, Some("key")) => return Err(Error::config("credential=key needs AZURE_STORAGE_KEY")),
            (_, Some("developer")) => StorageAuth::developer_tools()?,
            (_, None | Some("managed-identity")) => {
                StorageAuth::managed_identity(p.get("client_id").map(str::to_owned))?
            }
            (_, Some(other)) => {
                return Err(Error::config(format!(
                    "credential={other} is not one of key, managed-identity, developer"
                )));
            }
        };
        Ok((endpoint, auth, create))
    }
}

#[async_trait]
impl UrlOpener for AzureOpener {
    fn schemes(&self) -> &[(Port, &'static str)] {
        &[
            (Port::BlobStore, "azblob"),
            (Port::Database, "aztable"),
            (Port::Notifier, "aznotify"),
            (Port::Classifier, "azvision"),
        ]
    }

    async fn blob_store(&self, url: &Url) -> Result<Arc<dyn BlobStore>> {
        let (endpoint, auth, create) = self.storage(url, "blob")?;
        let store = AzureBlobStore::new(endpoint, &name(url, "container")?, auth)?;
        if create {
            store.create_container().await?;
        }
        Ok(Arc::new(store))
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        let (endpoint, auth, create) = self.storage(url, "table")?;
        let db = AzureTableDatabase::new(TableClient::new(endpoint, &name(url, "table")?, auth)?);
        if create {
            db.create_tables().await?;
        }
        Ok(Arc::new(db))
    }

    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        let hub = name(url, "hub")?;
        let connection = self.var("AZURE_NOTIFICATION_HUBS_CONNECTION_STRING").ok_or_else(|| {
            Error::config("aznotify:// needs AZURE_NOTIFICATION_HUBS_CONNECTION_STRING (the hub's access policy)")
        })?;
        let mut config = NotificationHubsConfig::from_connection_string(&connection, &hub)?;
        if let Some(endpoint) = UrlParams::parse(url, &["endpoint"])?.get("endpoint") {
            config.endpoint = parse_url(endpoint, "endpoint")?;
        }
        Ok(Arc::new(NotificationHubsNotifier::new(config)?))
    }

    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        let p = UrlParams::parse(url, &["endpoint", "screening", "client_id"])?;
        let endpoint = match p.get("endpoint") {
            Some(e) => parse_url(e, "endpoint")?,
            None => parse_url(&format!("https://{}/", name(url, "resource")?), "endpoint")?,
        };
        let screening = match p.get("screening") {
            None | Some("adult") => Screening::AdultV32,
            Some("none") => Screening::None,
            Some(other) => return Err(Error::config(format!("screening={other} is not adult or none"))),
        };
        let classifier = match self.var("AZURE_VISION_KEY") {
            Some(key) => AiVisionClassifier::with_key(endpoint, key, screening)?,
            None => {
                let StorageAuth::Token(credential) =
                    StorageAuth::managed_identity(p.get("client_id").map(str::to_owned))?
                else {
                    return Err(Error::config("no managed identity"));
                };
                AiVisionClassifier::with_credential(endpoint, credential, screening)?
            }
        };
        Ok(Arc::new(classifier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn misspelt_or_repeated_parameters_are_refused() {
        let opener = AzureOpener::with_env(HashMap::new());
        for raw in [
            "azblob://photos?emulater=true",
            "azblob://photos?emulator=true&emulator=true",
            "azblob://photos?emulator=maybe",
        ] {
            assert!(
                matches!(opener.storage(&url(raw), "blob"), Err(Error::Config { .. })),
                "{raw}"
            );
        }
    }

    #[test]
    fn storage_urls_pick_endpoint_and_credentials() {
        let opener = AzureOpener::with_env(HashMap::from([(
            "AZURE_STORAGE_KEY".to_owned(),
            crate::DEV_ACCOUNT_KEY.to_owned(),
        )]));
        let (endpoint, auth, create) = opener
            .storage(&url("aztable://thisthat?account=acct"), "table")
            .expect("opened");
        assert_eq!(endpoint.as_str(), "https://acct.table.core.windows.net/");
        assert!(matches!(auth, StorageAuth::Key(k) if k.account() == "acct"));
        assert!(!create);
        let (endpoint, _, create) = opener
            .storage(&url("azblob://photos?emulator=true&create=true"), "blob")
            .expect("opened");
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:10000/devstoreaccount1");
        assert!(create);
        let none = AzureOpener::with_env(HashMap::new());
        assert!(none.storage(&url("azblob://photos"), "blob").is_err(), "no account");
        assert!(
            none.storage(&url("azblob://photos?account=a&credential=key"), "blob")
                .is_err()
        );
        assert!(
            none.storage(&url("azblob://photos?account=a&credential=magic"), "blob")
                .is_err()
        );
    }

    #[tokio::test]
    async fn each_scheme_offers_only_its_port() {
        let opener = AzureOpener::with_env(HashMap::new());
        let registry = thisthat_core::Registry::new().with(AzureOpener::with_env(HashMap::new()));
        assert!(registry.database("azblob://photos?emulator=true").await.is_err());
        assert!(registry.blob_store("aztable://t?emulator=true").await.is_err());
        let missing = opener.notifier(&url("aznotify://hub")).await;
        assert!(matches!(missing, Err(Error::Config { .. })), "{missing:?}");
        assert!(
            opener
                .classifier(&url("azvision://r.cognitiveservices.azure.com?screening=maybe"))
                .await
                .is_err()
        );
    }
}
