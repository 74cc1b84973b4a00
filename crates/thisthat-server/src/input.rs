//! Reading what a request carries (JSON bodies, path segments, query strings) into the
//! handlers' inputs, with errors in the API's own words.
//!
//! Bodies are read as JSON values and their fields taken out by hand rather than through
//! `serde` derives: a derive's errors name Rust types ("invalid type: integer `-1`, expected
//! usize"), and those must never reach a client. Every failure here is `400 invalid_input`
//! naming the field that was wrong (or `413 too_large` for a body over the limit).

use axum::{
    Json,
    extract::{
        Path,
        rejection::{JsonRejection, PathRejection},
    },
    http::StatusCode,
};
use serde_json::{Map, Value};
use thisthat_core::Error;

use crate::error::ApiError;

/// A JSON object body whose fields are all among the ones an operation takes.
pub(crate) struct Fields {
    map: Map<String, Value>,
}

/// Reads a JSON body that must be an object with no fields but `allowed`.
pub(crate) fn object(body: Result<Json<Value>, JsonRejection>, allowed: &[&str]) -> Result<Fields, ApiError> {
    let value = body.map(|Json(v)| v).map_err(rejected)?;
    fields_of(value, "body", allowed)
}

fn fields_of(value: Value, field: &'static str, allowed: &[&str]) -> Result<Fields, ApiError> {
    let Value::Object(map) = value else {
        return Err(Error::invalid(field, format!("must be a JSON object with {}", listed(allowed))).into());
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::invalid(
            field,
            format!("has an unknown field {unknown:?}; it takes {}", listed(allowed)),
        )
        .into());
    }
    Ok(Fields { map })
}

fn listed(allowed: &[&str]) -> String {
    allowed.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
}

impl Fields {
    fn take(&mut self, name: &'static str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// A required field holding a whole number from 0. A number written with a zero fraction
    /// (`2.0`) is that whole number, as JSON Schema counts integers.
    pub(crate) fn index(&mut self, name: &'static str) -> Result<usize, Error> {
        let must = || Error::invalid(name, "must be a whole number from 0 (the first photo)");
        let Some(Value::Number(n)) = self.take(name) else {
            return Err(must());
        };
        let whole = n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                .and_then(|f| format!("{f:.0}").parse().ok())
        });
        whole.and_then(|n| usize::try_from(n).ok()).ok_or_else(must)
    }

    /// A required string field.
    pub(crate) fn string(&mut self, name: &'static str) -> Result<String, Error> {
        self.optional_string(name)?
            .ok_or_else(|| Error::invalid(name, "is required, as a string"))
    }

    /// A string field that may be absent or `null`.
    pub(crate) fn optional_string(&mut self, name: &'static str) -> Result<Option<String>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(name, "must be a string")),
        }
    }

    /// A required array of objects, each with no fields but `allowed`.
    pub(crate) fn objects(&mut self, name: &'static str, allowed: &[&str]) -> Result<Vec<Fields>, ApiError> {
        let Some(Value::Array(items)) = self.take(name) else {
            return Err(Error::invalid(name, format!("must be an array of objects with {}", listed(allowed))).into());
        };
        items.into_iter().map(|item| fields_of(item, name, allowed)).collect()
    }
}

/// Why a JSON body could not be read, in the API's words: serde's own messages stay out.
fn rejected(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::bad_request("body", "send the body as JSON, with `Content-Type: application/json`")
        }
        JsonRejection::JsonSyntaxError(e) => {
            let at = syntax_error_of(&e)
                .map(|e| format!(" (line {}, column {})", e.line(), e.column()))
                .unwrap_or_default();
            ApiError::bad_request("body", format!("the body is not valid JSON{at}"))
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large("the body is over the size limit of this operation")
        }
        _ => ApiError::bad_request("body", "the body could not be read as JSON"),
    }
}

fn syntax_error_of(e: &dyn std::error::Error) -> Option<&serde_json::Error> {
    let mut cause = e.source();
    while let Some(e) = cause {
        if let Some(json) = e.downcast_ref::<serde_json::Error>() {
            return Some(json);
        }
        cause = e.source();
    }
    None
}

/// A path segment the router matched; `field` names it in the error when it is not UTF-8
/// once percent-decoded.
pub(crate) fn segment(path: Result<Path<String>, PathRejection>, field: &'static str) -> Result<String, ApiError> {
    path.map(|Path(s)| s)
        .map_err(|_| Error::invalid(field, "is not valid UTF-8 once percent-decoded").into())
}

/// The feed's query string: `category`, `cursor` and `limit`, each at most once. Other
/// parameters are ignored, as HTTP caches and tracking links add them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FeedParams {
    pub(crate) category: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// The longest category name, here as sent in the query.
const MAX_CATEGORY_CHARS: usize = thisthat_core::Category::MAX_CHARS;

impl FeedParams {
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, Error> {
        let mut params = FeedParams::default();
        let mut limit = None;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let (slot, field) = match &*name {
                "category" => (&mut params.category, "category"),
                "cursor" => (&mut params.cursor, "cursor"),
                "limit" => (&mut limit, "limit"),
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(Error::invalid(field, "is given more than once"));
            }
        }
        // Counted as sent, before normalising: the document can state that bound (a category
        // padded past it with white space would otherwise pass).
        if params
            .category
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CATEGORY_CHARS)
        {
            return Err(Error::invalid(
                "category",
                format!("must be 1 to {MAX_CATEGORY_CHARS} characters"),
            ));
        }
        params.limit = limit
            .map(|l| {
                l.parse::<usize>()
                    .map_err(|_| Error::invalid("limit", "must be a whole number from 1 to 100"))
            })
            .transpose()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_params_are_read_once_each() {
        let p = FeedParams::parse(Some("category=jacket&limit=5&utm=x")).expect("params");
        assert_eq!(p.category.as_deref(), Some("jacket"));
        assert_eq!(p.limit, Some(5));
        assert_eq!(p.cursor, None);
        let padded = format!("category=%C2%85{}", "a".repeat(64));
        for bad in [
            "limit=-1",
            "limit=1.5",
            "limit=",
            "limit=a",
            "cursor=a&cursor=b",
            &padded,
        ] {
            let e = FeedParams::parse(Some(bad)).expect_err(bad);
            assert!(!e.to_string().contains("usize"), "{e}");
        }
    }
}
