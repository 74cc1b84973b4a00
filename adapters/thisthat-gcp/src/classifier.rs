//! The classifier port on Cloud Vision's `images:annotate` REST call.

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use thisthat_core::{
    Classification, Error, Label, Result,
    media::sniff,
    ports::{Classifier, PhotoInput},
};

use crate::auth::TokenSource;

const PROVIDER: &str = "vision";

/// Cloud Vision's production endpoint.
pub const VISION_ENDPOINT: &str = "https://vision.googleapis.com";

/// At most this many labels per photo.
const MAX_LABELS: u32 = 20;

/// Labels and a content screen from Cloud Vision: `LABEL_DETECTION` and
/// `SAFE_SEARCH_DETECTION` in one `images:annotate` request per photo.
///
/// Label names come back as Vision says them (`Cat`, `Whiskers`) with their score; the service
/// lower-cases them and applies its thresholds. SafeSearch gives likelihoods, not scores; the
/// `adult`, `violence` and `racy` categories become moderation labels with the confidence
/// `POSSIBLE` 0.5, `LIKELY` 0.8, `VERY_LIKELY` 0.95 (lower likelihoods are left out), so with
/// the default unsafe threshold of 0.7, `LIKELY` and `VERY_LIKELY` reject a photo.
///
/// With [`VisionClassifier::reading_from_bucket`], a photo already stored in that Cloud Storage
/// bucket is sent as a `gcsImageUri` instead of its bytes (Vision reads it with the caller's
/// credentials, which then need `storage.objects.get` on the bucket).
#[derive(Debug, Clone)]
pub struct VisionClassifier {
    http: reqwest::Client,
    endpoint: String,
    tokens: TokenSource,
    bucket: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnnotateResponse {
    #[serde(default)]
    responses: Vec<ImageResponse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageResponse {
    #[serde(default)]
    label_annotations: Vec<EntityAnnotation>,
    safe_search_annotation: Option<SafeSearch>,
    error: Option<RpcStatus>,
}

#[derive(Debug, Deserialize)]
struct EntityAnnotation {
    #[serde(default)]
    description: String,
    #[serde(default)]
    score: f32,
}

#[derive(Debug, Deserialize)]
struct SafeSearch {
    #[serde(default)]
    adult: String,
    #[serde(default)]
    violence: String,
    #[serde(default)]
    racy: String,
}

#[derive(Debug, Deserialize, thiserror::Error)]
#[error("Vision refused the image (code {code}): {message}")]
struct RpcStatus {
    #[serde(default)]
    code: i32,
    #[serde(default)]
    message: String,
}

/// The confidence a SafeSearch likelihood stands for, or `None` below `POSSIBLE`.
fn likelihood(name: &str) -> Option<f32> {
    match name {
        "POSSIBLE" => Some(0.5),
        "LIKELY" => Some(0.8),
        "VERY_LIKELY" => Some(0.95),
        _ => None,
    }
}

/// The error for a per-image failure Vision reports inside a 200, by its `google.rpc.Code`.
fn image_error(status: RpcStatus) -> Error {
    match status.code {
        // INVALID_ARGUMENT: Vision could not decode the image.
        3 => Error::UnsupportedMediaType {
            detected: format!("an image Vision could not read ({})", status.message),
        },
        // DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE: Vision's trouble, not
        // the photo's; the same request may well succeed later.
        4 | 8 | 13 | 14 => Error::Unavailable {
            provider: PROVIDER,
            retry_after: None,
            source: Some(Box::new(status)),
        },
        // PERMISSION_DENIED: typically no read access to the bucket a `gcsImageUri` names.
        7 => Error::Config {
            reason:
                "Vision may not read the image: check that the credentials can read the bucket (storage.objects.get)"
                    .into(),
            source: Some(Box::new(status)),
        },
        _ => Error::Backend {
            provider: PROVIDER,
            message: "Vision could not annotate the image".into(),
            source: Some(Box::new(status)),
        },
    }
}

impl VisionClassifier {
    /// A classifier with Application Default Credentials (the service account needs the
    /// Cloud Vision API enabled in its project; no role is needed for `images:annotate`
    /// beyond `serviceusage.services.use`).
    pub fn new() -> Result<Self> {
        Self::with_endpoint(VISION_ENDPOINT, TokenSource::adc()?)
    }

    /// A classifier that calls `endpoint` (Vision, or a local fake in tests) with `tokens`.
    ///
    /// [`Error::Config`] if `tokens` would go to a plain `http://` endpoint in the clear
    /// (Application Default Credentials never do; a static token only to a loopback fake).
    pub fn with_endpoint(endpoint: &str, tokens: TokenSource) -> Result<Self> {
        crate::install_crypto_provider();
        tokens.check_endpoint(PROVIDER, endpoint)?;
        Ok(VisionClassifier {
            http: thisthat_http::client()?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            tokens,
            bucket: None,
        })
    }

    /// Sends photos stored in `bucket` as `gs://{bucket}/{key}` instead of their bytes.
    pub fn reading_from_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = Some(bucket.into());
        self
    }

    /// The HTTP client, for Vision features the port does not use.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    fn image(&self, photo: &PhotoInput) -> serde_json::Value {
        match (&self.bucket, &photo.key) {
            (Some(bucket), Some(key)) => {
                serde_json::json!({ "source": { "gcsImageUri": format!("gs://{bucket}/{key}") } })
            }
            _ => serde_json::json!({
                "content": base64::engine::general_purpose::STANDARD.encode(&photo.bytes)
            }),
        }
    }
}

#[async_trait]
impl Classifier for VisionClassifier {
    #[tracing::instrument(name = "vision.classify", skip_all, fields(size = photo.bytes.len()))]
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        // Refuse what is not an accepted image before paying for a request.
        sniff(&photo.bytes)?;
        let body = serde_json::json!({
            "requests": [{
                "image": self.image(photo),
                "features": [
                    { "type": "LABEL_DETECTION", "maxResults": MAX_LABELS },
                    { "type": "SAFE_SEARCH_DETECTION" },
                ],
            }]
        });
        let url = format!("{}/v1/images:annotate", self.endpoint);
        let request = self.tokens.authorize(PROVIDER, self.http.post(url)).await?.json(&body);
        let response: AnnotateResponse = thisthat_http::send_for_json(PROVIDER, request, |_| None).await?;
        let Some(image) = response.responses.into_iter().next() else {
            return Err(Error::Backend {
                provider: PROVIDER,
                message: "images:annotate answered no response for the image".into(),
                source: None,
            });
        };
        if let Some(status) = image.error {
            return Err(image_error(status));
        }
        // Vision bills each feature run on an image, under the price table's keys.
        thisthat_core::layers::bill("vision.label", 1.0);
        thisthat_core::layers::bill("vision.safe_search", 1.0);
        let labels = image
            .label_annotations
            .into_iter()
            .filter(|a| a.score.is_finite())
            .filter_map(|a| Label::new(a.description.trim(), a.score.clamp(0.0, 1.0)).ok())
            .collect();
        let safe = image.safe_search_annotation.ok_or_else(|| Error::Backend {
            provider: PROVIDER,
            message: "images:annotate answered without the SafeSearch annotation it was asked for".into(),
            source: None,
        })?;
        let mut moderation = Vec::new();
        for (name, value) in [
            ("adult", &safe.adult),
            ("violence", &safe.violence),
            ("racy", &safe.racy),
        ] {
            if let Some(confidence) = likelihood(value) {
                moderation.push(Label::new(name, confidence)?);
            }
        }
        Ok(Classification {
            labels,
            moderation: Some(moderation),
        })
    }

    fn screens_content(&self) -> bool {
        true
    }

    /// Exposes the adapter and its HTTP client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
