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
    /// background). When nothing else is configured, google-cloud-auth falls back to the
    /// metadata server without contacting it here, so off Google Cloud this usually succeeds
    /// and missing credentials show up at the first request that needs a token (as
    /// [`Error::Unavailable`] while the metadata server cannot be reached, or
    /// [`Error::Config`]). It fails with [`Error::Config`] only for credentials that are
    /// configured but unusable (a malformed key file, say).
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

    /// Refuses to send this token source's tokens to `endpoint` in the clear: Google's
    /// endpoints are all HTTPS, so a plain `http://` one is an emulator or a local fake, and a
    /// real token must not travel over it. Application Default Credentials never go to an
    /// `http://` endpoint; a [`TokenSource::Static`] token goes only to a loopback one (the
    /// fakes tests run); [`TokenSource::Anonymous`] goes anywhere.
    pub(crate) fn check_endpoint(&self, provider: &'static str, endpoint: &str) -> Result<()> {
        let url = url::Url::parse(endpoint).map_err(|e| Error::Config {
            reason: format!("the {provider} endpoint {endpoint:?} is not a URL"),
            source: Some(Box::new(e)),
        })?;
        match url.scheme() {
            "https" => Ok(()),
            "http" => {
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                match self {
                    TokenSource::Anonymous => Ok(()),
                    TokenSource::Static(_) if loopback => Ok(()),
                    _ => Err(Error::config(format!(
                        "the {provider} endpoint {endpoint} is plain http://: a Google token would travel in the clear; use an https:// endpoint, or TokenSource::Anonymous for an emulator"
                    ))),
                }
            }
            other => Err(Error::config(format!(
                "the {provider} endpoint {endpoint:?} must be http:// or https://, not {other}:"
            ))),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_never_go_to_plain_http_endpoints() {
        let adc = TokenSource::adc().expect("ADC builds without contacting anything");
        let fixed = TokenSource::Static("t".into());
        for (tokens, endpoint, allowed) in [
            (&adc, "https://storage.googleapis.com", true),
            (&adc, "http://127.0.0.1:4443", false),
            (&adc, "http://storage.example.com", false),
            (&fixed, "http://127.0.0.1:4443", true),
            (&fixed, "http://[::1]:4443", true),
            (&fixed, "http://localhost:4443", true),
            (&fixed, "http://storage.example.com", false),
            (&TokenSource::Anonymous, "http://storage.example.com", true),
            (&TokenSource::Anonymous, "ftp://storage.example.com", false),
        ] {
            let checked = tokens.check_endpoint("test", endpoint);
            assert_eq!(checked.is_ok(), allowed, "{tokens:?} to {endpoint}: {checked:?}");
            if let Err(e) = checked {
                assert!(matches!(e, Error::Config { .. }), "{e:?}");
            }
        }
    }
}
