//! Errors as the API answers them: a stable code, a message, the field for invalid input, and
//! the matching HTTP status.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use thisthat_core::Error;

/// An error response: `{"error": {"code": "already_voted", "message": "…", "field": null}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

/// Every error response.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error, example = json!({
    "error": {
        "code": "invalid_input",
        "message": "invalid photos: a competition needs exactly 3 photos, got 2",
        "field": "photos"
    }
}))]
pub(crate) struct ErrorBody<'a> {
    #[schema(inline)]
    error: ErrorDetail<'a>,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ErrorDetail<'a> {
    #[schema(value_type = ErrorCode)]
    code: &'a str,
    /// For people, not programs. `internal error` on every 500.
    message: &'a str,
    /// For `invalid_input` only: the field or part of the request that was wrong (`body`,
    /// `title`, `photos`, `media_type`, `competition_id`, `choice`, `category`, `cursor`,
    /// `limit`, `platform`, `token`, `signature`). Absent otherwise. Messages are for people and
    /// never name the server's internal types.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false, examples("photos"))]
    field: Option<&'a str>,
}

/// The `code` of an error response: the domain's codes ([`Error::CODES`]) and the server's own
/// ([`ApiError::CODES`]).
pub(crate) struct ErrorCode;

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let codes: Vec<&str> = Error::CODES.iter().chain(&ApiError::CODES).copied().collect();
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some(
                "A stable, machine-readable error code. Statuses: `invalid_input` 400 (403 on \
                 field `signature`), `unauthenticated` 401, `own_competition` 403, `not_found` \
                 404, `method_not_allowed` 405, `timeout` 408, `already_voted`, `closed` and \
                 `conflict` 409, `too_large` 413, `unsupported_media_type` 415, \
                 `unsafe_content` 422, `config` and `backend` 500, `unsupported` 501, \
                 `unavailable` and `busy` 503.",
            ))
            .enum_values(Some(codes))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCode {}

impl ApiError {
    /// The codes of the errors the server answers by itself, beside the domain's
    /// ([`Error::CODES`]).
    pub const CODES: [&'static str; 3] = ["unauthenticated", "method_not_allowed", "timeout"];

    /// 401: no valid identity.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: message.into(),
            field: None,
        }
    }

    /// 400: a request the API could not read (bad JSON, bad multipart).
    pub fn bad_request(field: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_input",
            message: message.into(),
            field: Some(field),
        }
    }

    /// 413: a body over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: message.into(),
            field: None,
        }
    }

    /// 408: the request took longer than `limit` and was abandoned.
    pub fn timeout(limit: std::time::Duration) -> Self {
        ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "timeout",
            message: format!("the request took longer than {} s and was abandoned", limit.as_secs()),
            field: None,
        }
    }

    /// 405: the path exists, but not with this method (the `Allow` header lists the ones it
    /// takes).
    pub fn method_not_allowed(method: &axum::http::Method) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("this path does not take {method}; the Allow header lists what it takes"),
            field: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            // The provider's details stay in the logs, not in a response to a stranger.
            tracing::error!(code = e.code(), error = %e, source = ?std::error::Error::source(&e), "request failed");
        }
        let field = match &e {
            Error::InvalidInput { field, .. } => Some(*field),
            _ => None,
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_string()
        } else {
            e.to_string()
        };
        ApiError {
            status,
            code: e.code(),
            message,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_codes_are_listed() {
        let own = [
            ApiError::unauthenticated("x"),
            ApiError::timeout(std::time::Duration::from_secs(1)),
            ApiError::method_not_allowed(&axum::http::Method::PATCH),
        ];
        let codes: Vec<&str> = own.iter().map(|e| e.code).collect();
        assert_eq!(codes, ["unauthenticated", "timeout", "method_not_allowed"]);
        assert!(codes.iter().all(|c| ApiError::CODES.contains(c)));
        // The others are the domain's.
        for e in [ApiError::bad_request("body", "x"), ApiError::too_large("x")] {
            assert!(Error::CODES.contains(&e.code), "{}", e.code);
        }
    }
}
