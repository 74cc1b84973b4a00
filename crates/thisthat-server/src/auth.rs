//! Who is calling: `Authorization: Bearer <JWT>`, whose `sub` claim is the user.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thisthat_core::UserId;

use crate::{AppState, error::ApiError};

/// How tokens are verified.
#[derive(Clone)]
pub struct Auth {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

impl Auth {
    /// HS256 tokens signed with a shared secret: for local development and tests. Production
    /// deployments verify tokens of their identity provider (Cognito, Firebase Auth, Entra ID).
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        Auth {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    fn user(&self, token: &str) -> Result<UserId, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| ApiError::unauthenticated(format!("the bearer token was refused: {e}")))?;
        UserId::new(data.claims.sub)
            .map_err(|e| ApiError::unauthenticated(format!("the token's sub claim is not a user id: {e}")))
    }
}

/// Issues an HS256 token for `user`, valid for `ttl`: what `thisthat demo` and tests use to act
/// as users of a local server.
pub fn issue_hs256(secret: &[u8], user: &UserId, ttl: Duration) -> Result<String, thisthat_core::Error> {
    let exp = (SystemTime::now() + ttl)
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
        let token =
            bearer(parts)?.ok_or_else(|| ApiError::unauthenticated("this needs `Authorization: Bearer <token>`"))?;
        state.auth.user(token).map(User)
    }
}

/// The caller if a token was sent (it must then be valid); reads work without one.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<UserId>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(MaybeUser(None)),
            Some(token) => state.auth.user(token).map(|u| MaybeUser(Some(u))),
        }
    }
}
