//! Who is calling: `Authorization: Bearer <JWT>` whose `sub` claim is the user, or behind API
//! Gateway, the claims its JWT authorizer already verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thisthat_core::UserId;

use crate::{AppState, error::ApiError};

/// How callers are identified.
#[derive(Clone)]
pub struct Auth {
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    /// Bearer JWTs verified here.
    Verify {
        key: Box<DecodingKey>,
        validation: Box<Validation>,
    },
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
            #[cfg(feature = "lambda")]
            Mode::ApiGateway => f.write_str("Auth(ApiGateway)"),
        }
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
                key: Box::new(DecodingKey::from_secret(secret)),
                validation: Box::new(validation),
            },
        }
    }

    /// Trusts the claims of API Gateway's JWT authorizer (Cognito, Firebase Auth or Entra ID
    /// tokens, verified by the gateway), handed over by the Lambda runtime. Only for a function
    /// that API Gateway alone can invoke, with the authorizer on every write route: a request
    /// without authorizer claims is unauthenticated, and client headers are never trusted.
    #[cfg(feature = "lambda")]
    pub fn api_gateway() -> Self {
        Auth { mode: Mode::ApiGateway }
    }

    /// The caller of a request: `Ok(None)` when it carries no credentials at all.
    fn caller(&self, parts: &Parts) -> Result<Option<UserId>, ApiError> {
        match &self.mode {
            Mode::Verify { key, validation } => match bearer(parts)? {
                None => Ok(None),
                Some(token) => verify(key, validation, token).map(Some),
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

fn verify(key: &DecodingKey, validation: &Validation, token: &str) -> Result<UserId, ApiError> {
    let data = jsonwebtoken::decode::<Claims>(token, key, validation)
        .map_err(|e| ApiError::unauthenticated(format!("the bearer token was refused: {e}")))?;
    UserId::new(data.claims.sub)
        .map_err(|e| ApiError::unauthenticated(format!("the token's sub claim is not a user id: {e}")))
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
        state
            .auth
            .caller(parts)?
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
        state.auth.caller(parts).map(MaybeUser)
    }
}
