//! The handlers: each reads its input, calls the service once, and answers JSON.

use axum::{
    Json,
    extract::{
        Multipart, OriginalUri, Path, State,
        multipart::MultipartRejection,
        rejection::{JsonRejection, PathRejection},
    },
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde_json::Value;
use thisthat_core::{
    BlobKey, Category, Competition, CompetitionId, Cursor, Device, FeedPage, FeedQuery, NewCompetition, UploadTicket,
    VoteReceipt,
    ports::{ServedAs, SignedUrl},
};

use crate::{
    AppState,
    auth::{MaybeUser, User},
    error::ApiError,
    input::{self, FeedParams},
    openapi::{AnyObject, Binary, FeedCategory, FeedCursor, SignedQuery, errors},
    wire::{BeginUploadRequest, CreateCompetitionForm, DeviceRegistration, DeviceToken, VoteRequest},
};

type ApiResult<T> = Result<T, ApiError>;

type JsonBody = Result<Json<Value>, JsonRejection>;
type IdPath = Result<Path<String>, PathRejection>;

fn competition_id(path: IdPath) -> ApiResult<CompetitionId> {
    Ok(input::segment(path, "competition_id")?.parse()?)
}

/// The description of a competition id in a path.
const ID: &str = "The competition's id: a ULID in its canonical 26-character upper-case form. \
                  Anything else is `400 invalid_input` on field `competition_id`.";

/// Liveness
///
/// Answers `ok` while the process serves requests. Needs no token.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "meta",
    responses((status = 200, description = "The server is up.", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// This API description
///
/// This OpenAPI 3.1 document. Needs no token.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", tag = "meta",
    responses((status = 200, description = "The OpenAPI document.", body = inline(AnyObject))))]
pub(crate) async fn openapi(document: bytes::Bytes) -> impl IntoResponse {
    ([("content-type", "application/json")], document)
}

pub(crate) async fn not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    thisthat_core::Error::not_found(thisthat_core::Entity::Blob, uri.path()).into()
}

pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::method_not_allowed(&method)
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(e.body_text())
    } else {
        ApiError::bad_request("body", e.body_text())
    }
}

/// Create a competition from photos sent through the API
///
/// Creates and opens a competition from a `multipart/form-data` body: an optional `title` part
/// and one `photo` part per photo (exactly three under the default rules), in the order voters
/// will see them. Each photo's format is sniffed from its bytes (JPEG, PNG or WebP); part content
/// types and file names are not trusted. Every check runs before anything is stored, decoding
/// each photo whole under limits; then each photo's display variant (and, unless
/// `keep_originals` is off, its original) is stored, and the photos are classified and screened;
/// if any step fails nothing is kept. Parts with any other name are `400 invalid_input` on field
/// `body`. A body that is not `multipart/form-data` (with its boundary) is `400 invalid_input` on
/// field `body`. The whole body may be at most the per-photo limit (10 MiB by default) times the
/// photo count plus 64 KiB.
#[utoipa::path(post, path = "/v1/competitions", operation_id = "createCompetition", tag = "competitions",
    security(("bearerAuth" = [])),
    request_body(content = CreateCompetitionForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The competition, open for votes.", body = Competition),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`photos`, `title`, `body`). Wrong photo count, a title over 140 \
            characters or with control characters, or a malformed multipart body.",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid photos: …", "field": "photos"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 408, response = crate::openapi::Timeout),
        (status = 413, description = "`too_large`: a photo is over the per-photo limit (10 MiB by default), or the \
            body is over the request limit, or a photo has more pixels than the budget (40 megapixels by default) \
            or would take more memory to decode than allowed.",
            body = inline(errors::TooLarge),
            example = json!({"error": {"code": "too_large", "message": "photo 1 is 12582912 bytes, over the limit of 10485760 bytes"}})),
        (status = 415, description = UNDECODABLE, body = inline(errors::UnsupportedMediaType),
            example = json!({"error": {"code": "unsupported_media_type", "message": "unsupported media type: photo 2: gif; upload a JPEG, PNG or WebP image"}})),
        (status = 422, description = "`unsafe_content`: the classifier flagged a photo as unsafe; the whole \
            competition was rejected and nothing of it kept.",
            body = inline(errors::UnsafeContent),
            example = json!({"error": {"code": "unsafe_content", "message": "photo 0 was flagged as unsafe (violence, confidence 0.93)"}})),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    User(owner): User,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<impl IntoResponse> {
    let mut multipart = multipart.map_err(|_| {
        ApiError::bad_request(
            "body",
            "send the photos as `multipart/form-data` (with its boundary), one `photo` part each",
        )
    })?;
    let mut new = NewCompetition::default();
    let max_parts = state.service.rules().photos_per_competition + 1;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("title") => new.title = Some(field.text().await.map_err(multipart_error)?),
            Some("photo") if new.photos.len() < max_parts => {
                new.photos.push(field.bytes().await.map_err(multipart_error)?)
            }
            // More photos than a competition takes: the service answers the count error
            // without this handler buffering any more of them.
            Some("photo") => break,
            other => {
                return Err(ApiError::bad_request(
                    "body",
                    format!("unexpected multipart field {other:?}; send `title` and `photo` parts"),
                ));
            }
        }
    }
    let competition = state.service.create_competition(&owner, new).await?;
    Ok((StatusCode::CREATED, Json(competition)))
}

/// The 415 of an operation that decodes photos.
const UNDECODABLE: &str = "`unsupported_media_type`: a photo is not one whole JPEG, PNG or WebP image \
    (judged by its bytes, and by decoding all of it): another format, cut short, damaged, with bytes \
    after the image's end, or dimensions that disagree with its header.";

/// The 501 of an operation that signs URLs.
const CANNOT_SIGN: &str = "`unsupported`: the server's blob store cannot sign URLs.";

/// One competition
///
/// Reads an open or closed competition: its photos, categories, tally and, once closed, its
/// outcome. Drafts are not visible. Works without a token (a token sent here is not looked at).
#[utoipa::path(get, path = "/v1/competitions/{id}", operation_id = "getCompetition", tag = "competitions",
    security((), ("bearerAuth" = [])),
    params(("id" = CompetitionId, Path, description = ID)),
    responses(
        (status = 200, description = "The competition.", body = Competition),
        (status = 400, response = crate::openapi::BadCompetitionId),
        (status = 404, response = crate::openapi::NoSuchCompetition),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn competition(State(state): State<AppState>, id: IdPath) -> ApiResult<Json<Competition>> {
    Ok(Json(state.service.competition(&competition_id(id)?).await?))
}

/// Signed download URLs of a competition's photos (display variants)
///
/// One signed, time-limited `GET` URL per photo, in the competition's photo order (valid for one
/// hour by default), to its display variant: a JPEG re-encoded when the photo was accepted,
/// turned upright, at most 1280 px on its longest side by default (`display_max_side`), with no
/// metadata at all (no EXIF, GPS, XMP or ICC data). Competitions stored before variants existed
/// are served their originals. Storage is never public; these URLs are how clients show photos.
/// Works without a token (a token sent here is not looked at). The owner gets the originals from
/// `/v1/competitions/{id}/originals`.
#[utoipa::path(get, path = "/v1/competitions/{id}/photos", operation_id = "getPhotoUrls", tag = "competitions",
    security((), ("bearerAuth" = [])),
    params(("id" = CompetitionId, Path, description = ID)),
    responses(
        (status = 200, description = "One signed download URL per photo, in order.", body = Vec<SignedUrl>),
        (status = 400, response = crate::openapi::BadCompetitionId),
        (status = 404, response = crate::openapi::NoSuchCompetition),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 501, description = CANNOT_SIGN, body = inline(errors::Unsupported),
            example = json!({"error": {"code": "unsupported", "message": "memory does not support signed URLs"}})),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn photo_urls(State(state): State<AppState>, id: IdPath) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.service.photo_urls(&competition_id(id)?).await?))
}

/// The owner only: signed download URLs of a competition's originals
///
/// One signed, time-limited `GET` URL per photo, in order, to the photo as it was uploaded
/// (metadata and all). Only the competition's owner gets them; for anyone else the competition
/// does not exist (`404`). A competition created with `keep_originals` off has no originals
/// (`404`, entity blob).
#[utoipa::path(get, path = "/v1/competitions/{id}/originals", operation_id = "getOriginalUrls", tag = "competitions",
    security(("bearerAuth" = [])),
    params(("id" = CompetitionId, Path, description = ID)),
    responses(
        (status = 200, description = "One signed download URL per photo, in order.", body = Vec<SignedUrl>),
        (status = 400, response = crate::openapi::BadCompetitionId),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`not_found`: no such competition, not the caller's competition, or its \
            originals are not kept.",
            body = inline(errors::NotFound),
            example = json!({"error": {"code": "not_found", "message": "competition 01JD4ZQ8VJ5YH0J3W6PX2E9K7M was not found"}})),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 501, description = CANNOT_SIGN, body = inline(errors::Unsupported),
            example = json!({"error": {"code": "unsupported", "message": "memory does not support signed URLs"}})),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn original_urls(
    State(state): State<AppState>,
    User(owner): User,
    id: IdPath,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.service.original_urls(&owner, &competition_id(id)?).await?))
}

/// Vote for one photo
///
/// Casts the caller's vote for the photo at zero-based index `choice`, atomically, and answers
/// the tally including it. The vote that brings the total to the competition's `votes_to_close`
/// closes it and fixes its outcome (then in `closed`). Each user votes once per competition;
/// owners cannot vote on their own. A body that is not JSON (or lacks `Content-Type:
/// application/json`) is `400 invalid_input` on field `body`.
#[utoipa::path(post, path = "/v1/competitions/{id}/votes", operation_id = "vote", tag = "competitions",
    security(("bearerAuth" = [])),
    params(("id" = CompetitionId, Path, description = ID)),
    request_body = VoteRequest,
    responses(
        (status = 200, description = "The vote counted.", body = VoteReceipt),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong: `choice` when it is missing, not a whole number from 0 (`-1`, `1.5`, \
            `\"a\"`, `null`, `true`) or past the last photo; `competition_id`; `body` for an unknown field or a \
            body that is not a JSON object.",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid choice: …", "field": "choice"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, description = "`own_competition`: owners cannot vote on their own competition.",
            body = inline(errors::OwnCompetition),
            example = json!({"error": {"code": "own_competition", "message": "owners cannot vote on their own competition"}})),
        (status = 404, response = crate::openapi::NoSuchCompetition),
        (status = 408, response = crate::openapi::Timeout),
        (status = 409, description = "`already_voted`: the caller already voted on this competition (their first \
            vote stands), or `closed`: the competition reached its threshold and takes no more votes.",
            body = inline(errors::VoteRefused),
            example = json!({"error": {"code": "already_voted", "message": "user has already voted on this competition"}})),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn vote(
    State(state): State<AppState>,
    User(voter): User,
    id: IdPath,
    body: JsonBody,
) -> ApiResult<Json<VoteReceipt>> {
    let id = competition_id(id)?;
    let VoteRequest { choice } = VoteRequest::read(body)?;
    Ok(Json(state.service.vote(&voter, &id, choice).await?))
}

/// Begin a signed upload
///
/// First step of the signed-upload flow, for photos that go straight to storage rather than
/// through the API. Reserves a competition as a `draft` and answers one signed `PUT` URL per
/// declared photo (valid for 15 minutes by default), each bound to the declared content type and
/// the per-photo size limit. Upload each photo to its URL with exactly the headers given, then
/// call `POST /v1/uploads/{id}/finish`. A body that is not JSON (or lacks `Content-Type:
/// application/json`) is `400 invalid_input` on field `body`, and so is an unknown field; a field
/// of the wrong type is `400` on that field.
#[utoipa::path(post, path = "/v1/uploads", operation_id = "beginUpload", tag = "uploads",
    security(("bearerAuth" = [])),
    request_body = BeginUploadRequest,
    responses(
        (status = 201, description = "The draft's id and where to upload each photo.", body = UploadTicket,
            links(("finishUpload" = (
                operation_id = "finishUpload",
                parameters(("id" = "$response.body#/competition")),
                description = "Finish the draft once its photos are uploaded."
            )))),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`photos`, `title`, `media_type`, `body`). Not exactly three photos, a \
            title over 140 characters or with control characters, a `media_type` that is not a string, an \
            unknown field (`body`, or `photos` inside a photo).",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid photos: …", "field": "photos"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 408, response = crate::openapi::Timeout),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 415, description = "`unsupported_media_type`: a declared `media_type` is not `image/jpeg`, \
            `image/png` or `image/webp`.",
            body = inline(errors::UnsupportedMediaType),
            example = json!({"error": {"code": "unsupported_media_type", "message": "unsupported media type: declared \"image/gif\"; upload a JPEG, PNG or WebP image"}})),
        (status = 500, response = crate::openapi::InternalError),
        (status = 501, description = CANNOT_SIGN, body = inline(errors::Unsupported),
            example = json!({"error": {"code": "unsupported", "message": "memory does not support signed URLs"}})),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn begin_upload(
    State(state): State<AppState>,
    User(owner): User,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<UploadTicket>)> {
    let upload = BeginUploadRequest::read(body)?;
    let ticket = state.service.begin_upload(&owner, upload.into()).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

/// Finish a signed upload
///
/// Second step of the signed-upload flow: checks each uploaded photo (size, real format, that it
/// matches the declared format, and that all of it decodes under limits), stores its display
/// variant, classifies and screens them, and opens the competition. Takes no body. A photo not
/// uploaded yet is `400` and leaves the draft as it is, so the client can upload it and call
/// again. A photo that is too large, of the wrong format, damaged, or unsafe (`413`, `415`,
/// `422`) rejects the competition for good: its uploads and its draft are deleted. Other failures
/// (`500`, `503`) leave the draft to finish again.
#[utoipa::path(post, path = "/v1/uploads/{id}/finish", operation_id = "finishUpload", tag = "uploads",
    security(("bearerAuth" = [])),
    params(("id" = CompetitionId, Path, description = "The `competition` of the caller's upload ticket. \
        The competition's id: a ULID in its canonical 26-character upper-case form. Anything else is \
        `400 invalid_input` on field `competition_id`.")),
    responses(
        (status = 200, description = "The competition, now open for votes.", body = Competition),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`photos`, `competition_id`). `photos`: a photo has not been uploaded \
            yet; upload it, then finish again.",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid photos: …", "field": "photos"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 404, description = "`not_found`: no such draft, or it belongs to another user.",
            body = inline(errors::NotFound),
            example = json!({"error": {"code": "not_found", "message": "competition 01JD4ZQ8VJ5YH0J3W6PX2E9K7M was not found"}})),
        (status = 408, response = crate::openapi::Timeout),
        (status = 409, description = "`conflict`: the competition is already finished.",
            body = inline(errors::Conflict),
            example = json!({"error": {"code": "conflict", "message": "conflict: the competition is already finished"}})),
        (status = 413, description = "`too_large`: an uploaded photo is over the per-photo limit; the upload was \
            rejected, or a photo has more pixels than the budget (40 megapixels by default) or would take more \
            memory to decode than allowed.",
            body = inline(errors::TooLarge),
            example = json!({"error": {"code": "too_large", "message": "…"}})),
        (status = 415, description = UNDECODABLE, body = inline(errors::UnsupportedMediaType),
            example = json!({"error": {"code": "unsupported_media_type", "message": "unsupported media type: photo 1 is image/png but was declared as image/jpeg; upload a JPEG, PNG or WebP image"}})),
        (status = 422, description = "`unsafe_content`: the classifier flagged a photo as unsafe; the upload was \
            rejected.",
            body = inline(errors::UnsafeContent),
            example = json!({"error": {"code": "unsafe_content", "message": "…"}})),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn finish_upload(
    State(state): State<AppState>,
    User(owner): User,
    id: IdPath,
) -> ApiResult<Json<Competition>> {
    Ok(Json(state.service.finish_upload(&owner, &competition_id(id)?).await?))
}

/// Open competitions, newest first
///
/// One page of open competitions, newest first. Works without a token; with one (which must then
/// be valid), the caller's own competitions are left out, and where the database can do it
/// cheaply, those the caller already voted on. Pass `next` back as `cursor` for the next page. A
/// parameter that cannot be read (for example a `limit` that is not a whole number from 1 to
/// 100) is `400 invalid_input` on that parameter's field.
#[utoipa::path(get, path = "/v1/feed", operation_id = "feed", tag = "competitions",
    security((), ("bearerAuth" = [])),
    params(
        ("category" = Option<FeedCategory>, Query, description = "Only competitions with this category. At \
            most 64 characters as sent, at least one of them not white space, no control characters but white \
            space; then normalised as categories are (trimmed, lower-case, inner white space folded to one space)."),
        ("cursor" = Option<FeedCursor>, Query, description = "The `next` of the previous page, as handed out: \
            non-empty URL-safe base64 without padding. Opaque; anything this API did not hand out (the empty \
            string included) is `400` on field `cursor`. Each query parameter may be given once; a repeated one \
            is `400` on its field."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "At most this many \
            competitions: a whole number from 1 to 100; 20 when absent. Anything else is `400` on field `limit`."),
    ),
    responses(
        (status = 200, description = "One page of the feed.", body = FeedPage),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`limit`, `category`, `cursor`).",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid limit: …", "field": "limit"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn feed(
    State(state): State<AppState>,
    MaybeUser(viewer): MaybeUser,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<FeedPage>> {
    let params = FeedParams::parse(uri.query())?;
    let query = FeedQuery {
        viewer,
        category: params.category.map(Category::new).transpose()?,
        cursor: params.cursor.map(|c| c.parse::<Cursor>()).transpose()?,
        limit: params.limit.unwrap_or(20),
    };
    Ok(Json(state.service.feed(&query).await?))
}

/// Register a push device
///
/// Registers one of the caller's devices to receive the result notifications of their
/// competitions. Registering the same token again replaces the earlier registration. A body that
/// is not JSON (or lacks `Content-Type: application/json`) is `400 invalid_input` on field
/// `body`, and so is an unknown field; a field of the wrong type is `400` on that field.
#[utoipa::path(post, path = "/v1/devices", operation_id = "registerDevice", tag = "devices",
    security(("bearerAuth" = [])),
    request_body = DeviceRegistration,
    responses(
        (status = 201, description = "The device is registered.", body = DeviceRegistration),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`platform`, `token`, `body`). A `platform` that is not one of the three \
            is `platform`; a `token` that is not 1 to 4096 printable ASCII characters is `token`; an unknown \
            field or a body that is not a JSON object is `body`.",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid token: …", "field": "token"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 408, response = crate::openapi::Timeout),
        (status = 413, response = crate::openapi::BodyTooLarge),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn register_device(
    State(state): State<AppState>,
    User(user): User,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<DeviceRegistration>)> {
    let DeviceRegistration { platform, token } = DeviceRegistration::read(body)?;
    let endpoint = state
        .service
        .register_device(Device::new(user, platform, token)?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeviceRegistration {
            platform: endpoint.device.platform,
            token: endpoint.device.token,
        }),
    ))
}

/// Forget a push device
///
/// Forgets one of the caller's devices by its token. Forgetting a device that is not registered
/// succeeds.
#[utoipa::path(delete, path = "/v1/devices/{token}", operation_id = "unregisterDevice", tag = "devices",
    security(("bearerAuth" = [])),
    params(("token" = DeviceToken, Path, description = "The platform's device token (percent-encoded as a path segment).")),
    responses(
        (status = 204, description = "The device is forgotten (or was never registered)."),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`token`).",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid token: …", "field": "token"}})),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn unregister_device(
    State(state): State<AppState>,
    User(user): User,
    token: IdPath,
) -> ApiResult<StatusCode> {
    let token = input::segment(token, "token")?;
    state.service.unregister_device(&user, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn blob_server(state: &AppState) -> ApiResult<&crate::BlobServer> {
    state.blobs.as_ref().ok_or_else(|| {
        thisthat_core::Error::not_found(thisthat_core::Entity::Blob, "this server serves no blobs").into()
    })
}

/// The full URL the client used, on the signer's origin (the server's public address), with
/// the path and query exactly as sent: parsing them into a `Url` would resolve `.` and `..`
/// segments and re-encode characters, and the signer must judge the URL as sent (it accepts
/// only the one form it signs).
fn signed_url(server: &crate::BlobServer, uri: &axum::http::Uri) -> String {
    let origin = &server.signer.base()[..url::Position::BeforePath];
    match uri.query() {
        Some(query) => format!("{origin}{}?{query}", uri.path()),
        None => format!("{origin}{}", uri.path()),
    }
}

/// The 403 of a signed URL.
const BAD_SIGNATURE: &str = "`invalid_input` on field `signature`: the URL was tampered with, has expired, or \
    was used with another method than it was signed for.";

/// Download through a signed URL
///
/// Serves a signed download URL of the embedded file store (as handed out by `GET
/// /v1/competitions/{id}/photos`). The signature is the credential; no token is needed. The URL
/// must be used exactly as handed out. A signed URL has one form, the one handed out: the same
/// signature in upper case or percent-encoded, a parameter repeated, reordered or added, or a
/// path with `.` or `..` segments (also percent-encoded) is `403` on field `signature`, never
/// resolved to another blob.
#[utoipa::path(get, path = "/blobs/{key}", operation_id = "getBlob", tag = "blobs",
    params(
        ("key" = BlobKey, Path, description = BLOB_KEY),
        SignedQuery,
    ),
    responses(
        (status = 200, description = "The blob. Accepted image types are sent with their stored content type and \
            `Content-Disposition: inline`; anything else as `application/octet-stream` and `attachment`.",
            content(
                (inline(Binary) = "image/jpeg"),
                (inline(Binary) = "image/png"),
                (inline(Binary) = "image/webp"),
                (inline(Binary) = "application/octet-stream"),
            ),
            headers(
                ("Cache-Control" = String, description = "`private, max-age=300`."),
                ("X-Content-Type-Options" = String, description = "`nosniff`: browsers never guess another type \
                    (a PNG that is also HTML stays an image)."),
                ("Content-Disposition" = String, description = "`inline; filename=\"{last segment of the key}\"` \
                    for images, `attachment; …` otherwise."),
                ("Content-Security-Policy" = String, description = "`default-src 'none'; sandbox`: opened on its \
                    own, the blob runs and loads nothing."),
            )),
        (status = 403, description = BAD_SIGNATURE, body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid signature: expired", "field": "signature"}})),
        (status = 404, description = "`not_found`: no such blob, or this server serves no blobs.",
            body = inline(errors::NotFound),
            example = json!({"error": {"code": "not_found", "message": "blob competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.jpg was not found"}})),
        (status = 408, response = crate::openapi::Timeout),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn blob_get(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<impl IntoResponse> {
    let server = blob_server(&state)?;
    let url = signed_url(server, &uri);
    let now = state.clock.now();
    let (served, body) = thisthat_core::signing::download(&*server.store, &server.signer, now, &url).await?;
    Ok((photo_headers(served), body))
}

/// The headers every blob is served with. Browsers must never guess another type (`nosniff`:
/// a PNG that is also HTML stays an image) nor render what is not one of the accepted image
/// types: the content type and disposition are [`ServedAs::blob`]'s decision, the one cloud
/// stores are asked for on their signed URLs.
fn photo_headers(served: ServedAs) -> [(&'static str, String); 5] {
    [
        ("content-type", served.content_type),
        ("x-content-type-options", "nosniff".into()),
        ("content-disposition", served.content_disposition),
        // Opened on its own, the blob may run nothing and load nothing.
        ("content-security-policy", "default-src 'none'; sandbox".into()),
        ("cache-control", "private, max-age=300".into()),
    ]
}

/// The path parameter of a blob.
const BLOB_KEY: &str = "The blob key, e.g. `competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.jpg`. It spans the \
    rest of the path and may contain `/`; use the URL exactly as it was handed out.";

/// Upload through a signed URL
///
/// Stores the body under a signed upload URL of the embedded file store (as handed out by `POST
/// /v1/uploads`). The signature is the credential; no token is needed. Send exactly the headers
/// the ticket lists (the `Content-Type` the URL was signed for). Uploads are create-only: a blob
/// that is already there is never replaced. A signed URL has one form, the one handed out: the
/// same signature in upper case or percent-encoded, a parameter repeated, reordered or added, or
/// a path with `.` or `..` segments (also percent-encoded) is `403` on field `signature`, never
/// resolved to another blob. The body may be at most the URL's `x-max-size` and never more than
/// the server's per-photo limit (10 MiB by default), whatever the URL states: over either it is
/// `413 too_large`, before the body is read when its `Content-Length` says so (and the
/// connection is then closed).
#[utoipa::path(put, path = "/blobs/{key}", operation_id = "putBlob", tag = "blobs",
    params(
        ("key" = BlobKey, Path, description = BLOB_KEY),
        SignedQuery,
    ),
    request_body(content(
        (inline(Binary) = "image/jpeg"),
        (inline(Binary) = "image/png"),
        (inline(Binary) = "image/webp"),
    )),
    responses(
        (status = 201, description = "Stored."),
        (status = 400, description = "`invalid_input`: the request could not be read or a value is out of range. \
            `field` names what was wrong (`body`). The body could not be read.",
            body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid body: …", "field": "body"}})),
        (status = 403, description = BAD_SIGNATURE, body = inline(errors::InvalidInput),
            example = json!({"error": {"code": "invalid_input", "message": "invalid signature: expired", "field": "signature"}})),
        (status = 404, description = "`not_found`: this server serves no blobs.", body = inline(errors::NotFound),
            example = json!({"error": {"code": "not_found", "message": "…"}})),
        (status = 408, response = crate::openapi::Timeout),
        (status = 409, description = "`conflict`: a blob is already stored under this key.",
            body = inline(errors::Conflict), example = json!({"error": {"code": "conflict", "message": "…"}})),
        (status = 413, description = "`too_large`: the body is over the URL's `x-max-size` (or the server's \
            per-photo limit).",
            body = inline(errors::TooLarge),
            example = json!({"error": {"code": "too_large", "message": "upload is 12582912 bytes, over the limit of 10485760 bytes"}})),
        (status = 415, description = "`unsupported_media_type`: the `Content-Type` is not the one the URL was \
            signed for.",
            body = inline(errors::UnsupportedMediaType),
            example = json!({"error": {"code": "unsupported_media_type", "message": "…"}})),
        (status = 500, response = crate::openapi::InternalError),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
pub(crate) async fn blob_put(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<StatusCode> {
    let server = blob_server(&state)?;
    let url = signed_url(server, &uri);
    let now = state.clock.now();
    // The signature first: a stranger with a made-up URL gets nothing read into memory.
    let grant = server.signer.verify("PUT", &url, now)?;
    // The server's own limit bounds every upload, whatever a URL states: a URL signed under
    // another configuration (or with a leaked secret) cannot make this server buffer more.
    let server_limit = state.service.rules().max_photo_bytes;
    let limit = grant.max_size.map_or(server_limit, |m| m.min(server_limit));
    let too_large = |size: u64| {
        ApiError::from(thisthat_core::Error::TooLarge {
            what: "upload".into(),
            size,
            limit,
        })
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&d| d > limit) {
        // Refused before reading a byte of it (and the connection closed after the answer).
        return Err(too_large(declared));
    }
    let body = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| too_large(limit.saturating_add(1)))?;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    thisthat_core::signing::serve(
        &*server.store,
        &server.signer,
        now,
        "PUT",
        &url,
        content_type,
        Some(body),
    )
    .await?;
    Ok(StatusCode::CREATED)
}

#[cfg(test)]
mod tests {
    use thisthat_core::{BlobKey, ports::ServedAs};

    #[test]
    fn photos_are_served_inline_and_anything_else_as_an_attachment() {
        let key = BlobKey::new("competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.display.jpg").expect("key");
        let headers = super::photo_headers(ServedAs::blob(&key, Some("image/jpeg")));
        assert_eq!(headers[0].1, "image/jpeg");
        assert_eq!(headers[1].1, "nosniff");
        assert_eq!(headers[2].1, "inline; filename=\"0.display.jpg\"");
        for other in [Some("text/html"), None] {
            let headers = super::photo_headers(ServedAs::blob(&key, other));
            assert_eq!(headers[0].1, "application/octet-stream");
            assert_eq!(headers[2].1, "attachment; filename=\"0.display.jpg\"");
        }
    }
}
