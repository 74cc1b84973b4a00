//! The bodies the API takes and answers that are not the domain's own types: each is read
//! (or written) by its handler and states its OpenAPI schema, so the document describes what
//! the code reads.
//!
//! Limits that a deployment configures ([`Rules`](thisthat_core::Rules): the photo count, the
//! title length) are not written here; [`crate::openapi::document_json`] sets them from the
//! server's rules.

use axum::{Json, extract::rejection::JsonRejection};
use serde::Serialize;
use serde_json::Value;
use thisthat_core::{BeginUpload, DeclaredPhoto, MediaType, Platform};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr, Type,
        schema::{ArrayBuilder, ObjectBuilder, Schema},
    },
};

use crate::{error::ApiError, input};

type JsonBody = Result<Json<Value>, JsonRejection>;

/// A vote. Any other field is `400 invalid_input` on field `body`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"choice": 0}))]
pub(crate) struct VoteRequest {
    /// Zero-based index of the chosen photo: a whole number from 0 to the photo count less one
    /// (`2.0` is 2, as JSON Schema counts integers). A number with a fraction, a string, `null`
    /// or `true` is `400 invalid_input` on field `choice`, as is an index past the last photo.
    #[schema(minimum = 0)]
    pub(crate) choice: usize,
}

impl VoteRequest {
    pub(crate) fn read(body: JsonBody) -> Result<Self, ApiError> {
        let mut fields = input::object(body, &["choice"])?;
        Ok(VoteRequest {
            choice: fields.index("choice")?,
        })
    }
}

/// The first step of a signed upload. Any other field is `400 invalid_input` on field `body`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Which jacket?",
    "photos": [{"media_type": "image/jpeg"}, {"media_type": "image/png"}, {"media_type": "image/webp"}]
}))]
pub(crate) struct BeginUploadRequest {
    /// Optional title, at most 140 characters (by default) once trimmed, no control characters
    /// but leading or trailing white space. Blank or `null` is no title.
    pub(crate) title: Option<String>,
    /// One entry per photo, in order: exactly three under the default rules.
    pub(crate) photos: Vec<DeclaredPhotoRequest>,
}

/// One photo of a signed upload, before its bytes are there.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DeclaredPhoto)]
pub(crate) struct DeclaredPhotoRequest {
    /// The photo's MIME type, as [`declared_media_type`] states it.
    #[schema(schema_with = declared_media_type)]
    pub(crate) media_type: MediaType,
}

fn declared_media_type() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The photo's MIME type: `image/jpeg`, `image/png` or `image/webp` (the server also \
             takes them in any case and with parameters after `;`). Anything else is `415`; a \
             non-string is `400` on field `media_type`. Checked against the bytes when the upload \
             finishes.",
        ))
        .enum_values(Some(MediaType::ALL.map(MediaType::mime)))
        .examples(["image/png"])
}

impl BeginUploadRequest {
    /// Reads a body that must hold `title` (optional) and `photos`.
    pub(crate) fn read(body: JsonBody) -> Result<Self, ApiError> {
        let mut body = input::object(body, &["title", "photos"])?;
        let title = body.optional_string("title")?;
        let photos = body
            .objects("photos", &["media_type"])?
            .into_iter()
            .map(|mut p| {
                let media_type = MediaType::from_mime(&p.string("media_type")?)?;
                Ok(DeclaredPhotoRequest { media_type })
            })
            .collect::<Result<Vec<_>, thisthat_core::Error>>()?;
        Ok(BeginUploadRequest { title, photos })
    }
}

impl From<BeginUploadRequest> for BeginUpload {
    fn from(request: BeginUploadRequest) -> Self {
        BeginUpload {
            title: request.title,
            photos: request
                .photos
                .into_iter()
                .map(|p| DeclaredPhoto {
                    media_type: p.media_type,
                })
                .collect(),
        }
    }
}

/// The parts of a creation's form: `title` at most once and `photo` exactly three times (by
/// default). A part with any other name is `400 invalid_input` on field `body`. Read part by
/// part by the handler, which stops buffering at one photo more than a competition takes.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // The form is read part by part; this states its shape.
pub(crate) struct CreateCompetitionForm {
    /// Optional title, at most 140 characters (by default) once trimmed, no control characters
    /// but leading or trailing white space. Blank is no title.
    #[schema(required = false)]
    title: String,
    /// The photos, as [`photo_parts`] states them.
    #[schema(schema_with = photo_parts)]
    photo: Vec<Vec<u8>>,
}

fn photo_parts() -> ArrayBuilder {
    ArrayBuilder::new()
        .description(Some(
            "The photos, one `photo` part each, in order: exactly three under the default rules. \
             JPEG, PNG or WebP, at most 10 MiB each by default.",
        ))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/octet-stream"),
        )
}

/// A push device of the caller, as registered and as answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Device, example = json!({"platform": "fcm", "token": "dGhpcyBpcyBhIHRva2Vu"}))]
pub(crate) struct DeviceRegistration {
    /// Its push platform.
    pub(crate) platform: Platform,
    /// The platform's device token.
    #[schema(value_type = DeviceToken)]
    pub(crate) token: String,
}

impl DeviceRegistration {
    pub(crate) fn read(body: JsonBody) -> Result<Self, ApiError> {
        let mut body = input::object(body, &["platform", "token"])?;
        // Platform's own names (its serde form), so that a new platform needs no change here.
        let platform: Platform = serde_json::from_value(Value::String(body.string("platform")?))
            .map_err(|_| thisthat_core::Error::invalid("platform", "must be `apns`, `apns_sandbox` or `fcm`"))?;
        Ok(DeviceRegistration {
            platform,
            token: body.string("token")?,
        })
    }
}

/// A platform's device token, as [`thisthat_core::model::check_token`] accepts it.
pub(crate) struct DeviceToken;

impl PartialSchema for DeviceToken {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The platform's device token: 1 to 4096 printable ASCII characters.",
            ))
            .min_length(Some(1))
            .max_length(Some(4096))
            .pattern(Some("^[!-~]+$"))
            .into()
    }
}

impl ToSchema for DeviceToken {}
