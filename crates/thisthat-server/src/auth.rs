//! Who is calling: `Authorization: Bearer <JWT>` whose `sub` claim is the user, or behind API
//! Gateway, the claims its JWT authorizer already verified.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thisthat_core::UserId;

use crate::{AppState, error::ApiError};

/// How callers are identified.
#[derive(Clone)]
pub struct Auth {
    mode: Mode,
    verified: Arc<VerifiedTokens>,
}

/// Bearer tokens this server has verified, by the whole token, with the user and the expiry
/// they carry. A client sends the same token with every request until it expires, and checking
/// its signature again was a fifth of a vote's instructions under HS256
/// (`docs/performance.md`), more under an identity provider's RSA keys. Only a token that
/// passed every check is kept, and only until its `exp`; then it is verified again, in full.
/// When [`Jwks`] replaces the identity provider's keys, every kept token is forgotten, so a
/// token signed with a key the provider withdrew is refused from then on, as without the table.
struct VerifiedTokens {
    table: std::sync::Mutex<Table>,
}

#[derive(Default)]
struct Table {
    tokens: HashMap<Box<str>, (UserId, u64)>,
    /// How many times the table was emptied because the keys changed: a verification that
    /// began under other keys is not kept.
    generation: u64,
}

impl VerifiedTokens {
    /// At most this many tokens are kept (about 1 MB of local HS256 tokens, a few MB of an
    /// identity provider's, which run to 1–2 KB); a full table is emptied, so a caller with
    /// many valid tokens costs verifications, never more memory.
    const MAX: usize = 4096;

    fn new() -> Self {
        VerifiedTokens {
            table: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding it leaves a table that is still consistent.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user of `token` if it was verified and has not expired at `now` (Unix seconds).
    fn get(&self, token: &str, now: u64) -> Option<UserId> {
        match self.lock().tokens.get(token) {
            Some((user, exp)) if now < *exp => Some(user.clone()),
            _ => None,
        }
    }

    /// The generation a verification starts under, for [`VerifiedTokens::put`].
    fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps `token`, verified under `generation`, unless the keys changed since.
    fn put(&self, token: &str, user: &UserId, exp: u64, generation: u64) {
        let mut table = self.lock();
        if table.generation != generation {
            return;
        }
        if table.tokens.len() >= Self::MAX {
            table.tokens.clear();
        }
        table.tokens.insert(token.into(), (user.clone(), exp));
    }

    /// Forgets every token: the keys they were verified with changed.
    fn forget_all(&self) {
        let mut table = self.lock();
        table.tokens.clear();
        table.generation += 1;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Clone)]
enum Mode {
    /// Bearer JWTs verified here. Shared, since the state is cloned for every request.
    Verify {
        key: Arc<DecodingKey>,
        validation: Arc<Validation>,
    },
    /// Bearer JWTs signed by an identity provider whose public keys are published as a JWKS.
    Jwks(Arc<Jwks>),
    /// Behind API Gateway with a JWT authorizer: the gateway verified the token, and the Lambda
    /// runtime hands its claims over in the request context.
    #[cfg(feature = "lambda")]
    ApiGateway,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.mode {
            Mode::Verify { validation, .. } => f
                .debug_struct("Auth")
                .field("algorithms", &validation.algorithms)
                .finish_non_exhaustive(),
            Mode::Jwks(jwks) => f
                .debug_struct("Auth")
                .field("jwks", &jwks.config.url)
                .finish_non_exhaustive(),
            #[cfg(feature = "lambda")]
            Mode::ApiGateway => f.write_str("Auth(ApiGateway)"),
        }
    }
}

/// Where an identity provider publishes its signing keys, and what its tokens must say.
///
/// - Cognito: `https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json`,
///   issuer `https://cognito-idp.{region}.amazonaws.com/{pool}`.
/// - Firebase Auth: `https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com`,
///   issuer `https://securetoken.google.com/{project}`, audience `{project}`.
/// - Entra ID: `https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys`, issuer
///   `https://login.microsoftonline.com/{tenant}/v2.0`, audience the app's client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// The JWKS URL.
    pub url: String,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry, if the provider sets one.
    pub audience: Option<String>,
}

/// A provider's signing keys by key id, with the algorithm each is for.
type KeysById = HashMap<String, (DecodingKey, Algorithm)>;

/// Signing keys fetched from a JWKS URL, refreshed when a token names a key not seen yet
/// (providers rotate keys), at most every [`Jwks::REFRESH_INTERVAL`].
struct Jwks {
    config: JwksConfig,
    client: reqwest::Client,
    keys: tokio::sync::RwLock<(KeysById, Option<Instant>)>,
    /// The tokens verified with these keys, forgotten when the keys are replaced.
    verified: Arc<VerifiedTokens>,
}

impl Jwks {
    const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), ApiError> {
        if let Some(found) = self.keys.read().await.0.get(kid) {
            return Ok(found.clone());
        }
        let mut keys = self.keys.write().await;
        let stale = keys.1.is_none_or(|fetched| fetched.elapsed() >= Self::REFRESH_INTERVAL);
        if !keys.0.contains_key(kid) && stale {
            // The attempt counts whether it works or not: tokens with made-up key ids must not
            // make the server hammer the identity provider.
            keys.1 = Some(Instant::now());
            let fetched = self.fetch().await?;
            keys.0 = fetched;
            self.verified.forget_all();
        }
        keys.0
            .get(kid)
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("the token was signed with a key the issuer does not publish"))
    }

    async fn fetch(&self) -> Result<KeysById, ApiError> {
        let unavailable = |e: reqwest::Error| ApiError::from(thisthat_core::Error::unavailable("jwks", e));
        let set: jsonwebtoken::jwk::JwkSet = self
            .client
            .get(&self.config.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
                continue;
            };
            if matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            ) {
                continue;
            }
            // The algorithm the key declares; only keys that declare none get the usual one for
            // their type.
            let algorithm = match (
                jwk.common.key_algorithm.map(|a| a.to_string().parse::<Algorithm>()),
                &jwk.algorithm,
            ) {
                (Some(Ok(declared)), _) => declared,
                (Some(Err(_)), _) => continue,
                (None, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                (None, _) => continue,
            };
            keys.insert(kid.clone(), (key, algorithm));
        }
        tracing::info!(url = %self.config.url, keys = keys.len(), "fetched the identity provider's signing keys");
        Ok(keys)
    }

    async fn verify(&self, token: &str) -> Result<(UserId, u64), ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthenticated(format!("the bearer token was refused: {e}")))?;
        let kid = header
            .kid
            .ok_or_else(|| ApiError::unauthenticated("the bearer token names no signing key (kid)"))?;
        let (key, algorithm) = self.key(&kid).await?;
        if header.alg != algorithm {
            return Err(ApiError::unauthenticated(
                "the token's algorithm does not match its key",
            ));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[&self.config.issuer]);
        match &self.config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        verify(&key, &validation, token)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

impl Auth {
    /// HS256 tokens signed with a shared secret: for local development and tests. Production
    /// deployments let API Gateway verify their identity provider's tokens
    /// ([`Auth::api_gateway`], feature `lambda`).
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            mode: Mode::Verify {
                key: Arc::new(DecodingKey::from_secret(secret)),
                validation: Arc::new(validation),
            },
            verified: Arc::new(VerifiedTokens::new()),
        }
    }

    /// Bearer JWTs from an identity provider (Cognito, Firebase Auth, Entra ID), verified
    /// against the keys it publishes at `config.url`, with its issuer and audience checked.
    /// Keys are fetched on first use and again when a token names an unknown key.
    /// The URL must be https (plain http only on loopback, for tests): keys fetched in the
    /// clear could be swapped by anyone on the path.
    pub fn jwks(config: JwksConfig) -> Result<Self, thisthat_core::Error> {
        let url = url::Url::parse(&config.url)
            .map_err(|e| thisthat_core::Error::config(format!("the JWKS URL {:?} is not a URL: {e}", config.url)))?;
        let loopback = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || url.host_str() == Some("localhost");
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(thisthat_core::Error::config(format!(
                "the JWKS URL {} must be https",
                config.url
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let verified = Arc::new(VerifiedTokens::new());
        Ok(Auth {
            mode: Mode::Jwks(Arc::new(Jwks {
                config,
                client,
                keys: Default::default(),
                verified: verified.clone(),
            })),
            verified,
        })
    }

    /// Trusts the claims of API Gateway's JWT authorizer (Cognito, Firebase Auth or Entra ID
    /// tokens, verified by the gateway), handed over by the Lambda runtime. Only for a function
    /// that API Gateway alone can invoke, with the authorizer on every write route: a request
    /// without authorizer claims is unauthenticated, and client headers are never trusted.
    #[cfg(feature = "lambda")]
    pub fn api_gateway() -> Self {
        Auth {
            mode: Mode::ApiGateway,
            verified: Arc::new(VerifiedTokens::new()),
        }
    }

    /// The caller of a request: `Ok(None)` when it carries no credentials at all.
    async fn caller(&self, parts: &Parts) -> Result<Option<UserId>, ApiError> {
        match &self.mode {
            Mode::Verify { key, validation } => match bearer(parts)? {
                None => Ok(None),
                Some(token) => self
                    .remembered(token, async { verify(key, validation, token) })
                    .await
                    .map(Some),
            },
            Mode::Jwks(jwks) => match bearer(parts)? {
                None => Ok(None),
                Some(token) => self.remembered(token, jwks.verify(token)).await.map(Some),
            },
            #[cfg(feature = "lambda")]
            Mode::ApiGateway => {
                let sub = parts
                    .extensions
                    .get::<lambda_http::request::RequestContext>()
                    .and_then(|context| context.authorizer())
                    .and_then(|authorizer| authorizer.jwt.as_ref())
                    .and_then(|jwt| jwt.claims.get("sub"));
                let Some(sub) = sub else { return Ok(None) };
                UserId::new(sub.as_str())
                    .map(Some)
                    .map_err(|e| ApiError::unauthenticated(format!("the authorizer's sub claim is not a user id: {e}")))
            }
        }
    }
}

impl Auth {
    /// The user of `token`: from the tokens verified before, or by `verification`, whose
    /// answer is then kept until the token's `exp`.
    async fn remembered(
        &self,
        token: &str,
        verification: impl std::future::Future<Output = Result<(UserId, u64), ApiError>>,
    ) -> Result<UserId, ApiError> {
        if let Some(user) = self.verified.get(token, unix_now()) {
            return Ok(user);
        }
        let generation = self.verified.generation();
        let (user, exp) = verification.await?;
        self.verified.put(token, &user, exp, generation);
        Ok(user)
    }
}

/// The user and the expiry (Unix seconds) of a token that passes `validation` under `key`.
fn verify(key: &DecodingKey, validation: &Validation, token: &str) -> Result<(UserId, u64), ApiError> {
    let data = jsonwebtoken::decode::<Claims>(token, key, validation)
        .map_err(|e| ApiError::unauthenticated(format!("the bearer token was refused: {e}")))?;
    let user = UserId::new(data.claims.sub)
        .map_err(|e| ApiError::unauthenticated(format!("the token's sub claim is not a user id: {e}")))?;
    Ok((user, data.claims.exp))
}

/// Issues an HS256 token for `user`, valid for `ttl`: what `thisthat demo` and tests use to act
/// as users of a local server.
pub fn issue_hs256(secret: &[u8], user: &UserId, ttl: Duration) -> Result<String, thisthat_core::Error> {
    let exp = SystemTime::now()
        .checked_add(ttl)
        .ok_or_else(|| thisthat_core::Error::invalid("ttl", "is too far in the future"))?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: user.to_string(),
        exp,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| thisthat_core::Error::backend("jwt", e))
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthenticated("expected `Authorization: Bearer <token>`")),
    }
}

/// The authenticated caller. Every write requires one.
#[derive(Debug, Clone)]
pub struct User(pub UserId);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state
            .auth
            .caller(parts)
            .await?
            .map(User)
            .ok_or_else(|| ApiError::unauthenticated("this needs `Authorization: Bearer <token>`"))
    }
}

/// The caller if credentials were sent (they must then be valid); reads work without.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<UserId>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.auth.caller(parts).await.map(MaybeUser)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_verified_token_is_kept_until_its_expiry_only() {
        let tokens = VerifiedTokens::new();
        let alice = UserId::new("alice").expect("user");
        tokens.put("t", &alice, 100, 0);
        assert_eq!(tokens.get("t", 99), Some(alice));
        assert_eq!(tokens.get("t", 100), None, "expired at its exp");
        assert_eq!(tokens.get("other", 99), None);
    }

    #[test]
    fn a_full_table_is_emptied() {
        let tokens = VerifiedTokens::new();
        let alice = UserId::new("alice").expect("user");
        for i in 0..=VerifiedTokens::MAX {
            tokens.put(&format!("t{i}"), &alice, u64::MAX, 0);
        }
        assert_eq!(tokens.lock().tokens.len(), 1);
        assert!(tokens.get(&format!("t{}", VerifiedTokens::MAX), 0).is_some());
    }

    #[test]
    fn new_keys_forget_every_token_and_any_verification_under_the_old_ones() {
        let tokens = VerifiedTokens::new();
        let alice = UserId::new("alice").expect("user");
        let before = tokens.generation();
        tokens.put("kept", &alice, u64::MAX, before);
        let started_before = tokens.generation();
        tokens.forget_all();
        assert_eq!(tokens.get("kept", 0), None, "forgotten when the keys change");
        tokens.put("in flight", &alice, u64::MAX, started_before);
        assert_eq!(tokens.get("in flight", 0), None, "verified under the old keys");
        tokens.put("new", &alice, u64::MAX, tokens.generation());
        assert_eq!(tokens.get("new", 0), Some(alice));
    }

    #[tokio::test]
    async fn only_a_token_that_passed_is_remembered() {
        let auth = Auth::hs256(b"secret");
        let checks = AtomicUsize::new(0);
        let alice = UserId::new("alice").expect("user");
        let refused = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            Err::<(UserId, u64), _>(ApiError::unauthenticated("bad signature"))
        };
        for _ in 0..2 {
            assert!(auth.remembered("forged", refused()).await.is_err());
        }
        assert_eq!(
            checks.load(Ordering::SeqCst),
            2,
            "a refused token is checked every time"
        );
        let passed = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            Ok((UserId::new("alice").expect("user"), unix_now() + 3600))
        };
        for _ in 0..3 {
            assert_eq!(auth.remembered("good", passed()).await.expect("user"), alice);
        }
        assert_eq!(checks.load(Ordering::SeqCst), 3, "a verified token is checked once");
        let expired = || async { Ok((UserId::new("bob").expect("user"), unix_now().saturating_sub(1))) };
        auth.remembered("old", expired())
            .await
            .expect("the verification's answer");
        assert!(auth.verified.get("old", unix_now()).is_none(), "kept past its exp");
    }
}
