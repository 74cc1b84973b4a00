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
    BeginUpload, Category, Competition, CompetitionId, Cursor, DeclaredPhoto, Device, FeedQuery, MediaType,
    NewCompetition, Platform, VoteReceipt, ports::ServedAs,
};

use crate::{
    AppState,
    auth::{MaybeUser, User},
    error::ApiError,
    input::{self, FeedParams},
};

type ApiResult<T> = Result<T, ApiError>;

type JsonBody = Result<Json<Value>, JsonRejection>;
type IdPath = Result<Path<String>, PathRejection>;

fn competition_id(path: IdPath) -> ApiResult<CompetitionId> {
    Ok(input::segment(path, "competition_id")?.parse()?)
}

pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [("content-type", "application/json")],
        include_str!("../../../docs/openapi.json"),
    )
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

pub(crate) async fn competition(State(state): State<AppState>, id: IdPath) -> ApiResult<Json<Competition>> {
    Ok(Json(state.service.competition(&competition_id(id)?).await?))
}

pub(crate) async fn photo_urls(State(state): State<AppState>, id: IdPath) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.service.photo_urls(&competition_id(id)?).await?))
}

pub(crate) async fn original_urls(
    State(state): State<AppState>,
    User(owner): User,
    id: IdPath,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.service.original_urls(&owner, &competition_id(id)?).await?))
}

pub(crate) async fn vote(
    State(state): State<AppState>,
    User(voter): User,
    id: IdPath,
    body: JsonBody,
) -> ApiResult<Json<VoteReceipt>> {
    let id = competition_id(id)?;
    let choice = input::object(body, &["choice"])?.index("choice")?;
    Ok(Json(state.service.vote(&voter, &id, choice).await?))
}

pub(crate) async fn begin_upload(
    State(state): State<AppState>,
    User(owner): User,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    let mut body = input::object(body, &["title", "photos"])?;
    let title = body.optional_string("title")?;
    let photos = body
        .objects("photos", &["media_type"])?
        .into_iter()
        .map(|mut p| {
            let media_type = MediaType::from_mime(&p.string("media_type")?)?;
            Ok(DeclaredPhoto { media_type })
        })
        .collect::<Result<Vec<_>, thisthat_core::Error>>()?;
    let ticket = state
        .service
        .begin_upload(&owner, BeginUpload { title, photos })
        .await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

pub(crate) async fn finish_upload(
    State(state): State<AppState>,
    User(owner): User,
    id: IdPath,
) -> ApiResult<Json<Competition>> {
    Ok(Json(state.service.finish_upload(&owner, &competition_id(id)?).await?))
}

pub(crate) async fn feed(
    State(state): State<AppState>,
    MaybeUser(viewer): MaybeUser,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<impl IntoResponse> {
    let params = FeedParams::parse(uri.query())?;
    let query = FeedQuery {
        viewer,
        category: params.category.map(Category::new).transpose()?,
        cursor: params.cursor.map(|c| c.parse::<Cursor>()).transpose()?,
        limit: params.limit.unwrap_or(20),
    };
    let page = state.service.feed(&query).await?;
    Ok(Json(
        serde_json::json!({ "competitions": page.competitions, "next": page.next }),
    ))
}

pub(crate) async fn register_device(
    State(state): State<AppState>,
    User(user): User,
    body: JsonBody,
) -> ApiResult<impl IntoResponse> {
    let mut body = input::object(body, &["platform", "token"])?;
    // Platform's own names (its serde form), so that a new platform needs no change here.
    let platform: Platform = serde_json::from_value(Value::String(body.string("platform")?))
        .map_err(|_| thisthat_core::Error::invalid("platform", "must be `apns`, `apns_sandbox` or `fcm`"))?;
    let endpoint = state
        .service
        .register_device(Device::new(user, platform, body.string("token")?)?)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "platform": endpoint.device.platform, "token": endpoint.device.token })),
    ))
}

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
