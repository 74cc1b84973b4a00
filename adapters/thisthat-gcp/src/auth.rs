//! Bearer tokens for the REST adapters (Cloud Storage, FCM, Vision), from the same
//! google-cloud-auth the `firestore` crate uses for gRPC.

use firestore::gcloud_sdk::google_cloud_auth::credentials::{AccessTokenCredentials, Builder};
use thisthat_core::{Error, Result};

/// The OAuth scope every Google API thisthat calls accepts (FCM's own
/// `firebase.messaging` scope is a subset of it).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where a REST adapter gets the bearer token it sends.
#[derive(Clone)]
#[non_exhaustive]
pub enum TokenSource {
    /// Application Default Credentials (a service account key named by
    /// `GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth application-default login`, workload
    /// identity, or the metadata server), refreshed and cached by google-cloud-auth.
    Adc(AccessTokenCredentials),
    /// A fixed token: for emulators and local fakes, or a token the caller refreshes itself.
    Static(String),
    /// No `Authorization` header at all (emulators that check nothing).
    Anonymous,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token.
        f.write_str(match self {
            TokenSource::Adc(_) => "TokenSource::Adc",
            TokenSource::Static(_) => "TokenSource::Static([censored])",
            TokenSource::Anonymous => "TokenSource::Anonymous",
        })
    }
}

impl TokenSource {
    /// Application Default Credentials for the `cloud-platform` scope.
    ///
    /// Must be called inside a tokio runtime (google-cloud-auth refreshes tokens in the
    /// background). Fails with [`Error::Config`] when no credentials are found.
    pub fn adc() -> Result<Self> {
        crate::install_crypto_provider();
        let credentials = Builder::default()
            .with_scopes([CLOUD_PLATFORM_SCOPE])
            .build_access_token_credentials()
            .map_err(|e| Error::Config {
                reason: "no Google credentials found: set GOOGLE_APPLICATION_CREDENTIALS to a service account key, run `gcloud auth application-default login`, or run on Google Cloud with a service account attached".into(),
                source: Some(Box::new(e)),
            })?;
        Ok(TokenSource::Adc(credentials))
    }

    /// The value of the `Authorization` header, if any.
    pub(crate) async fn authorization(&self, provider: &'static str) -> Result<Option<String>> {
        match self {
            TokenSource::Adc(credentials) => {
                let token = credentials.access_token().await.map_err(|e| {
                    if e.is_transient() {
                        Error::unavailable(provider, e)
                    } else {
                        Error::Config {
                            reason: format!("could not get a Google access token for {provider}"),
                            source: Some(Box::new(e)),
                        }
                    }
                })?;
                Ok(Some(format!("Bearer {}", token.token)))
            }
            TokenSource::Static(token) => Ok(Some(format!("Bearer {token}"))),
            TokenSource::Anonymous => Ok(None),
        }
    }

    /// Adds the `Authorization` header to a request.
    pub(crate) async fn authorize(
        &self,
        provider: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder> {
        Ok(match self.authorization(provider).await? {
            Some(value) => request.header(reqwest::header::AUTHORIZATION, value),
            None => request,
        })
    }
}
