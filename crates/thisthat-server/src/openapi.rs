//! The API's OpenAPI 3.1 document, generated from the code: each handler states its
//! operation (`#[utoipa::path]` on the handlers in `routes.rs`), each body its schema (the
//! typed bodies in `wire.rs`, the domain's types with `thisthat-core`'s `openapi` feature, the
//! error body in [`crate::error`]), and [`document_json`] sets what a deployment configures
//! from its [`Rules`].
//!
//! `docs/openapi.json` is this document under the default rules, checked by a test; the
//! server serves its own at `GET /v1/openapi.json`, and `thisthat openapi` prints it.

use thisthat_core::Rules;
use utoipa::{
    IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema,
    openapi::{
        self, ContentBuilder, HeaderBuilder, RefOr, ResponseBuilder, Type,
        encoding::Encoding,
        schema::{AllOfBuilder, ObjectBuilder, Schema},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{error, routes, wire};

/// What the document says before its operations.
const DESCRIPTION: &str = "The versioned JSON API of thisthat: post three photos, let others \
vote, learn which won. Every write needs `Authorization: Bearer <JWT>` whose `sub` claim is the \
caller's user id; reads work without one. Errors are `{\"error\": {\"code\", \"message\", \
\"field\"}}` (see `Error`); `field` is present only for `invalid_input`. Times are Unix \
milliseconds. The limits this document states (photos per competition, title length) are the \
serving deployment's; where a description quotes one in words (three photos, 10 MiB per photo, \
140-character titles, 24 votes to close), it is the default. Unknown paths are `404 \
not_found`; a method a path does not take is `405 method_not_allowed` with an `Allow` header. \
Every 4xx and 5xx answer has a JSON error body. JSON request bodies take exactly the fields \
documented (`additionalProperties: false`): an unknown field is `400 invalid_input` on field \
`body`, a field of the wrong type or out of range is `400 invalid_input` naming that field. \
JSON bodies may be at most 2 MiB (`413 too_large`). A request answered before its body was read \
to its end (refused by authentication, or over a size limit) is answered with `Connection: \
close`: the rest of its body is not read. Every response carries an `x-request-id` header (the \
caller's, if it sent one).";

#[derive(OpenApi)]
#[openapi(
    info(title = "thisthat API", version = "1.0.0", description = DESCRIPTION),
    servers((url = "/", description = "The server that serves this document.")),
    tags(
        (name = "competitions", description = "Create, read, vote on and browse competitions."),
        (name = "uploads", description = "Create a competition with photos uploaded straight to storage."),
        (name = "devices", description = "Push devices for result notifications."),
        (name = "blobs", description = "Signed URLs of the embedded file store (local deployments)."),
        (name = "meta", description = "Liveness and this description."),
    ),
    paths(
        routes::healthz,
        routes::openapi,
        routes::create,
        routes::competition,
        routes::photo_urls,
        routes::original_urls,
        routes::vote,
        routes::begin_upload,
        routes::finish_upload,
        routes::feed,
        routes::register_device,
        routes::unregister_device,
        routes::blob_get,
        routes::blob_put,
    ),
    components(
        // The ones no other schema refers to: the error body (the narrowed ones refer to it
        // by name), and those only parameters or a multipart body use.
        schemas(error::ErrorBody, error::ErrorCode, wire::CreateCompetitionForm, FeedCategory, FeedCursor),
        responses(
            Unauthenticated,
            InternalError,
            Unavailable,
            Timeout,
            BodyTooLarge,
            BadCompetitionId,
            NoSuchCompetition
        ),
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The document of a server that runs under `rules`, as it serves it and `docs/openapi.json`
/// holds it (under the default rules): pretty JSON with a final newline.
///
/// ```
/// let json = thisthat_server::openapi::document_json(&thisthat_core::Rules::default());
/// let doc: serde_json::Value = serde_json::from_str(&json)?;
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert_eq!(doc["paths"]["/v1/competitions/{id}/votes"]["post"]["operationId"], "vote");
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn document_json(rules: &Rules) -> String {
    let mut doc = ApiDoc::openapi();
    apply_rules(&mut doc, rules);
    state_part_types(&mut doc);
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    name_link_fields(&mut doc);
    let mut json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    json.push('\n');
    json
}

/// Renames the fields of every response's links as OpenAPI spells them: utoipa 5 writes a
/// `Link`'s fields in snake case (`operation_id`), which no OpenAPI tool reads, so the stateful
/// tests that follow `beginUpload` to `finishUpload` would not find the link.
fn name_link_fields(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else {
            continue;
        };
        let links = responses
            .values_mut()
            .filter_map(|response| response.get_mut("links").and_then(|l| l.as_object_mut()))
            .flat_map(|links| links.values_mut())
            .filter_map(|link| link.as_object_mut());
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.into(), value);
                }
            }
        }
    }
}

/// What a title may hold: white space at its ends (trimmed away), no control characters in
/// between. Stated so that a generated "valid" title is one the service accepts.
const TITLE_PATTERN: &str = r"^[\t\n\x0b\x0c\r\x85 ]*[^\x00-\x1f\x7f-\x9f]*[\t\n\x0b\x0c\r\x85 ]*$";

/// The limits a deployment configures, on the schemas of the bodies that carry them.
fn apply_rules(doc: &mut openapi::OpenApi, rules: &Rules) {
    let photos = rules.photos_per_competition;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let schemas = &mut components.schemas;
    if let Some(choice) = property(schemas, "VoteRequest", "choice").and_then(object) {
        choice.maximum = Some(photos.saturating_sub(1).into());
    }
    for form in ["BeginUploadRequest", "CreateCompetitionForm"] {
        if let Some(title) = property(schemas, form, "title").and_then(object) {
            title.max_length = Some(rules.max_title_chars);
            title.pattern = Some(TITLE_PATTERN.into());
        }
    }
    for (form, list) in [("BeginUploadRequest", "photos"), ("CreateCompetitionForm", "photo")] {
        if let Some(RefOr::T(Schema::Array(list))) = property(schemas, form, list) {
            list.min_items = Some(photos);
            list.max_items = Some(photos);
        }
    }
}

/// The part content types of the creation form, which the form's schema cannot carry.
fn state_part_types(doc: &mut openapi::OpenApi) {
    let form = doc
        .paths
        .paths
        .get_mut("/v1/competitions")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
        .and_then(|body| body.content.get_mut("multipart/form-data"));
    if let Some(form) = form {
        for (part, content_type) in [
            ("title", "text/plain"),
            ("photo", "image/jpeg, image/png, image/webp, application/octet-stream"),
        ] {
            let mut encoding = Encoding::default();
            encoding.content_type = Some(content_type.into());
            form.encoding.insert(part.into(), encoding);
        }
    }
}

fn property<'a>(
    schemas: &'a mut std::collections::BTreeMap<String, RefOr<Schema>>,
    schema: &str,
    name: &str,
) -> Option<&'a mut RefOr<Schema>> {
    match schemas.get_mut(schema)? {
        RefOr::T(Schema::Object(object)) => object.properties.get_mut(name),
        _ => None,
    }
}

fn object(schema: &mut RefOr<Schema>) -> Option<&mut openapi::schema::Object> {
    match schema {
        RefOr::T(Schema::Object(object)) => Some(object),
        _ => None,
    }
}

/// The bearer scheme every write needs.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A JWT whose `sub` claim is the user id and which has an `exp` claim. Local \
                 servers verify HS256 tokens signed with a shared secret; deployments verify \
                 their identity provider's tokens. Required on every write; optional on reads \
                 (the feed checks a token that is sent and uses it to leave out the caller's \
                 own competitions).",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// The error body narrowed to `codes`: what one status of one operation can answer.
fn error_with(codes: &[&str]) -> RefOr<Schema> {
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.to_vec()));
    let narrowing = ObjectBuilder::new()
        .schema_type(openapi::schema::SchemaType::AnyValue)
        .property(
            "error",
            ObjectBuilder::new()
                .schema_type(openapi::schema::SchemaType::AnyValue)
                .property("code", code),
        );
    AllOfBuilder::new()
        .item(openapi::Ref::from_schema_name(error::ErrorBody::name()))
        .item(narrowing)
        .into()
}

/// Error bodies narrowed to the codes a response can carry, named for the handlers'
/// `responses(...)`: `body = inline(errors::NotFound)`.
pub(crate) mod errors {
    use utoipa::{PartialSchema, ToSchema, openapi::RefOr, openapi::schema::Schema};

    macro_rules! narrowed {
        ($($(#[$doc:meta])* $name:ident = [$($code:literal),+];)*) => {$(
            $(#[$doc])*
            pub(crate) struct $name;

            impl PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    super::error_with(&[$($code),+])
                }
            }

            impl ToSchema for $name {}
        )*};
    }

    narrowed! {
        /// `invalid_input` (400, or 403 on field `signature`).
        InvalidInput = ["invalid_input"];
        /// `own_competition` (403).
        OwnCompetition = ["own_competition"];
        /// `not_found` (404).
        NotFound = ["not_found"];
        /// `already_voted` or `closed` (409): a vote that is refused.
        VoteRefused = ["already_voted", "closed"];
        /// `conflict` (409).
        Conflict = ["conflict"];
        /// `too_large` (413).
        TooLarge = ["too_large"];
        /// `unsupported_media_type` (415).
        UnsupportedMediaType = ["unsupported_media_type"];
        /// `unsafe_content` (422).
        UnsafeContent = ["unsafe_content"];
        /// `unsupported` (501).
        Unsupported = ["unsupported"];
    }
}

/// A response every operation of a kind shares, under `components/responses`.
fn shared_response(
    description: &str,
    codes: &[&str],
    example: serde_json::Value,
    headers: &[(&str, &str, RefOr<Schema>)],
) -> RefOr<openapi::Response> {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(error_with(codes)))
            .example(Some(example))
            .build(),
    );
    for (name, description, schema) in headers {
        response = response.header(
            *name,
            HeaderBuilder::new()
                .schema(schema.clone())
                .description(Some(*description))
                .build(),
        );
    }
    response.build().into()
}

macro_rules! shared_responses {
    ($($name:ident => $body:expr;)*) => {$(
        pub(crate) struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<openapi::Response>) {
                (stringify!($name), $body)
            }
        }
    )*};
}

fn constant(value: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([value]))
        .into()
}

shared_responses! {
    Unauthenticated => shared_response(
        "`unauthenticated`: no `Authorization: Bearer` token where one is required, or a token \
         that was sent is malformed, expired, badly signed or has a `sub` that is not a user id.",
        &["unauthenticated"],
        serde_json::json!({"error": {"code": "unauthenticated", "message": "this needs `Authorization: Bearer <token>`"}}),
        &[
            ("WWW-Authenticate", "`Bearer`.", constant("Bearer")),
            (
                "Connection",
                "`close` when the request had a body that was not read (it was refused before).",
                constant("close"),
            ),
        ],
    );
    InternalError => shared_response(
        "`backend` or `config`: a provider failed or the server is misconfigured. The message \
         is always `internal error`; details stay in the server's logs.",
        &["backend", "config"],
        serde_json::json!({"error": {"code": "backend", "message": "internal error"}}),
        &[],
    );
    Unavailable => shared_response(
        "`unavailable`: a provider is temporarily unavailable (throttled, timed out), or \
         `busy`: it stayed contended through every attempt. The only errors worth retrying.",
        &["unavailable", "busy"],
        serde_json::json!({"error": {"code": "unavailable", "message": "sqlite is temporarily unavailable; retry later"}}),
        &[(
            "Retry-After",
            "Seconds to wait before retrying: `1`.",
            ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).into(),
        )],
    );
    Timeout => shared_response(
        "`timeout`: the request took longer than 30 seconds and was abandoned.",
        &["timeout"],
        serde_json::json!({"error": {"code": "timeout", "message": "the request took longer than 30 s and was abandoned"}}),
        &[],
    );
    BadCompetitionId => shared_response(
        "`invalid_input`: the request could not be read or a value is out of range. `field` \
         names what was wrong (`competition_id`).",
        &["invalid_input"],
        serde_json::json!({"error": {"code": "invalid_input", "message": "invalid competition_id: …", "field": "competition_id"}}),
        &[],
    );
    NoSuchCompetition => shared_response(
        "`not_found`: no such competition (drafts are not visible).",
        &["not_found"],
        serde_json::json!({"error": {"code": "not_found", "message": "competition 01JD4ZQ8VJ5YH0J3W6PX2E9K7M was not found"}}),
        &[],
    );
    BodyTooLarge => shared_response(
        "`too_large`: the JSON body is over 2 MiB.",
        &["too_large"],
        serde_json::json!({"error": {"code": "too_large", "message": "the body is over the size limit of this operation"}}),
        &[],
    );
}

/// Bytes of a blob, in whichever content type the operation states.
pub(crate) struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).into()
    }
}

impl ToSchema for Binary {}

/// A JSON object of any shape: this document, as `GET /v1/openapi.json` answers it.
pub(crate) struct AnyObject;

impl PartialSchema for AnyObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Object).into()
    }
}

impl ToSchema for AnyObject {}

/// The query of a signed URL of the embedded file store, as
/// [`UrlSigner::sign`](thisthat_core::signing::UrlSigner::sign) writes it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
#[allow(dead_code)] // The query is checked whole by the signer; this states its parameters.
pub(crate) struct SignedQuery {
    /// The method the URL was signed for.
    #[param(inline)]
    x_method: SignedMethod,
    /// When the URL stops working, in Unix seconds.
    x_expires: u64,
    /// Upload URLs only: the content type the upload must declare.
    x_content_type: Option<String>,
    /// Upload URLs only: the largest accepted body, in bytes.
    x_max_size: Option<u64>,
    /// HMAC-SHA256 of the signed fields: 64 lower-case hex digits, exactly as handed out.
    #[param(inline)]
    x_signature: Signature,
}

/// The method a signed URL was signed for.
#[derive(ToSchema)]
#[allow(clippy::upper_case_acronyms, dead_code)] // The wire's own spelling; only its schema is used.
enum SignedMethod {
    GET,
    PUT,
}

/// The signature of a signed URL: 64 lower-case hex digits.
struct Signature;

impl PartialSchema for Signature {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .min_length(Some(64))
            .max_length(Some(64))
            .into()
    }
}

impl ToSchema for Signature {}

/// The feed's `category` as sent: at most 64 characters, one of them not white space, no
/// control characters but white space (the service then normalises it).
pub(crate) struct FeedCategory;

impl PartialSchema for FeedCategory {
    fn schema() -> RefOr<Schema> {
        const WHITE: &str = r"\t\n\x0b\x0c\r\x85 \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(thisthat_core::Category::MAX_CHARS))
            .pattern(Some(format!(
                r"^[{WHITE}]*[^\x00-\x20\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]*$"
            )))
            .examples(["cat"])
            .into()
    }
}

impl ToSchema for FeedCategory {}

/// The feed's `cursor`: non-empty URL-safe base64 without padding.
pub(crate) struct FeedCursor;

impl PartialSchema for FeedCursor {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some("^[A-Za-z0-9_-]+$"))
            .into()
    }
}

impl ToSchema for FeedCursor {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document is the generated one: a change to a handler, a body or the
    /// domain's types that changes the API shows in the diff of `docs/openapi.json`.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let generated = document_json(&Rules::default());
        let committed = include_str!("../../../docs/openapi.json");
        assert!(
            generated == committed,
            "docs/openapi.json is not what the code generates: run \
             `cargo run -p thisthat-cli -- openapi > docs/openapi.json` and commit it"
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(target)) = map.get("$ref") {
                        found.push(target);
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let doc: serde_json::Value = serde_json::from_str(&document_json(&Rules::default())).expect("JSON");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "the document refers to its components");
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
    }

    #[test]
    fn links_are_spelled_as_openapi_spells_them() {
        let doc: serde_json::Value = serde_json::from_str(&document_json(&Rules::default())).expect("JSON");
        let link = &doc["paths"]["/v1/uploads"]["post"]["responses"]["201"]["links"]["finishUpload"];
        assert_eq!(link["operationId"], "finishUpload");
        assert_eq!(link["parameters"]["id"], "$response.body#/competition");
        assert!(link.get("operation_id").is_none());
    }

    #[test]
    fn the_rules_set_the_limits() {
        let rules = Rules {
            photos_per_competition: 4,
            max_title_chars: 60,
            ..Rules::default()
        };
        let doc: serde_json::Value = serde_json::from_str(&document_json(&rules)).expect("JSON");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["VoteRequest"]["properties"]["choice"]["maximum"], 3);
        assert_eq!(schemas["BeginUploadRequest"]["properties"]["photos"]["minItems"], 4);
        assert_eq!(schemas["BeginUploadRequest"]["properties"]["photos"]["maxItems"], 4);
        assert_eq!(schemas["CreateCompetitionForm"]["properties"]["photo"]["maxItems"], 4);
        assert_eq!(schemas["BeginUploadRequest"]["properties"]["title"]["maxLength"], 60);
        assert_eq!(schemas["CreateCompetitionForm"]["properties"]["title"]["maxLength"], 60);
    }

    #[test]
    fn every_error_code_is_listed() {
        let doc: serde_json::Value = serde_json::from_str(&document_json(&Rules::default())).expect("JSON");
        let listed = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        for code in thisthat_core::Error::CODES.iter().chain(&error::ApiError::CODES) {
            assert!(listed.as_array().is_some_and(|l| l.iter().any(|c| c == code)), "{code}");
        }
    }
}
