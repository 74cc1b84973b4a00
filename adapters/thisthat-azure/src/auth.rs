//! Storage credentials and the signatures made with an account key: account SAS (how the Blob
//! crate is authorised when a key is configured), service SAS (signed URLs for clients) and
//! Shared Key Lite (Table requests). All string-to-sign formats are the documented ones for
//! service version 2020-12-06 and later.

use std::{sync::Arc, time::SystemTime};

use azure_core::{credentials::TokenCredential, time::OffsetDateTime};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thisthat_core::{Error, Result, ports::ServedAs};

/// The SAS version thisthat signs with: its string-to-sign (with the encryption-scope line) is
/// stable and every service version since accepts it.
pub(crate) const SAS_VERSION: &str = "2020-12-06";

/// The OAuth scope of Azure Storage (Blob and Table).
pub(crate) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// A storage account's name and one of its two access keys.
#[derive(Clone)]
pub struct AccountKey {
    account: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in logs.
        f.debug_struct("AccountKey")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// An account and its base64 key, as the portal shows them.
    pub fn new(account: impl Into<String>, base64_key: &str) -> Result<Self> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(base64_key.trim())
            .map_err(|e| Error::Config {
                reason: "the storage account key is not base64".into(),
                source: Some(e.into()),
            })?;
        let account = account.into();
        if account.is_empty() {
            return Err(Error::config("the storage account name is empty"));
        }
        Ok(AccountKey { account, key })
    }

    /// Azurite's development account, `devstoreaccount1`, with its published key.
    pub fn development() -> Self {
        AccountKey::new(crate::DEV_ACCOUNT, crate::DEV_ACCOUNT_KEY).unwrap_or_else(|_| AccountKey {
            account: crate::DEV_ACCOUNT.into(),
            key: Vec::new(),
        })
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    pub(crate) fn sign(&self, string_to_sign: &str) -> String {
        sign(&self.key, string_to_sign)
    }

    /// An account SAS (query string, without `?`) for `services` (`b`, `t`, `bt`) valid until
    /// `expiry`, with every permission the adapters use.
    pub(crate) fn account_sas(&self, services: &str, expiry: SystemTime) -> String {
        let (sp, srt, se) = ("racwdlup", "sco", sas_time(expiry));
        // Fields: account, permissions, services, resource types, start, expiry, IP,
        // protocol, version, encryption scope, and a final newline.
        let to_sign = format!(
            "{}\n{sp}\n{services}\n{srt}\n\n{se}\n\n\n{SAS_VERSION}\n\n",
            self.account
        );
        let sig = self.sign(&to_sign);
        query(&[
            ("sv", SAS_VERSION),
            ("ss", services),
            ("srt", srt),
            ("sp", sp),
            ("se", &se),
            ("sig", &sig),
        ])
    }

    /// A service SAS (query string) for one blob. With `served_as`, the download is answered
    /// with that `Content-Type` (`rsct`) and `Content-Disposition` (`rscd`), both signed.
    /// `sig` is last, where a tampered URL is easiest to spot.
    pub(crate) fn blob_sas(
        &self,
        container: &str,
        blob: &str,
        permissions: &str,
        expiry: SystemTime,
        served_as: Option<&ServedAs>,
    ) -> String {
        let se = sas_time(expiry);
        let resource = format!("/blob/{}/{container}/{blob}", self.account);
        let (rscd, rsct) = served_as.map_or(("", ""), |s| (s.content_disposition.as_str(), s.content_type.as_str()));
        // Fields (Create a service SAS, version 2020-12-06 and later): permissions, start,
        // expiry, canonicalised resource, identifier, IP, protocol, version, resource,
        // snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct; the values as sent,
        // before URL encoding.
        let to_sign = format!("{permissions}\n\n{se}\n{resource}\n\n\n\n{SAS_VERSION}\nb\n\n\n\n{rscd}\n\n\n{rsct}");
        let sig = self.sign(&to_sign);
        let mut pairs = vec![("sv", SAS_VERSION), ("sr", "b"), ("sp", permissions), ("se", &se)];
        if served_as.is_some() {
            pairs.extend([("rscd", rscd), ("rsct", rsct)]);
        }
        pairs.push(("sig", &sig));
        query(&pairs)
    }

    /// The `Authorization` header of a Table request under Shared Key Lite: HMAC over the
    /// `x-ms-date` value and the canonicalised resource (`/{account}{path}`).
    pub(crate) fn shared_key_lite(&self, date: &str, path: &str) -> String {
        let to_sign = format!("{date}\n/{}{path}", self.account);
        format!("SharedKeyLite {}:{}", self.account, self.sign(&to_sign))
    }
}

pub(crate) fn sign(key: &[u8], string_to_sign: &str) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// `YYYY-MM-DDThh:mm:ssZ`, the SAS time format.
pub(crate) fn sas_time(t: SystemTime) -> String {
    let dt = OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// How the storage adapters authenticate.
#[derive(Clone)]
pub enum StorageAuth {
    /// An account key: requests are signed locally (account SAS for blobs, Shared Key Lite
    /// for tables) and signed URLs are service SAS.
    Key(AccountKey),
    /// A Microsoft Entra ID credential (managed identity, workload identity, developer
    /// tools): bearer tokens, and user-delegation SAS for signed URLs.
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageAuth::Key(k) => f.debug_tuple("Key").field(k).finish(),
            StorageAuth::Token(_) => f.write_str("Token"),
        }
    }
}

impl StorageAuth {
    /// Entra ID through any `azure_identity` credential.
    pub fn token(credential: Arc<dyn TokenCredential>) -> Self {
        StorageAuth::Token(credential)
    }

    /// The managed identity of the Azure host (App Service, Functions, Container Apps, VMs,
    /// AKS), or the user-assigned identity with `client_id`; its requests go through
    /// thisthat's HTTP client.
    pub fn managed_identity(client_id: Option<String>) -> Result<Self> {
        let options = azure_identity::ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(azure_identity::UserAssignedId::ClientId),
            client_options: crate::transport::client_options()?,
        };
        let credential = azure_identity::ManagedIdentityCredential::new(Some(options)).map_err(identity_error)?;
        Ok(StorageAuth::Token(credential))
    }

    /// The identity a developer is signed in with (Azure CLI, Azure Developer CLI).
    pub fn developer_tools() -> Result<Self> {
        let credential = azure_identity::DeveloperToolsCredential::new(None).map_err(identity_error)?;
        Ok(StorageAuth::Token(credential))
    }

    /// A bearer token for Azure Storage.
    pub(crate) async fn bearer(credential: &dyn TokenCredential) -> Result<String> {
        let token = credential
            .get_token(&[STORAGE_SCOPE], None)
            .await
            .map_err(identity_error)?;
        Ok(format!("Bearer {}", token.token.secret()))
    }
}

pub(crate) fn identity_error(e: azure_core::Error) -> Error {
    Error::Config {
        reason: "Entra ID did not issue a token: check the identity and its role assignments".into(),
        source: Some(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_time_is_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
        assert_eq!(sas_time(t), "2026-09-21T14:13:20Z");
    }

    #[test]
    fn signatures_depend_on_the_key() {
        let a = AccountKey::development();
        let b = AccountKey::new("devstoreaccount1", "AAAA").expect("key");
        assert_ne!(a.sign("x"), b.sign("x"));
        assert_eq!(a.sign("x"), a.sign("x"));
        assert!(AccountKey::new("a", "not base64!").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", StorageAuth::Key(AccountKey::development()));
        assert!(!shown.contains("Eby8"), "{shown}");
    }
}
