//! Labels from Azure AI Vision over its REST API: Image Analysis 4.0 `tags`, and, where asked
//! for, the content screen of Image Analysis 3.2 (`visualFeatures=Adult`), since 4.0 has no
//! adult-content feature.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde::Deserialize;
use thisthat_core::{
    Classification, Error, Label, MediaType, Result,
    layers::bill,
    media::sniff,
    ports::{Classifier, PhotoInput},
};
use tracing::instrument;
use url::Url;

/// AI Vision bills each analysis call (its price key, the Computer Vision "transaction"): the
/// tags and the adult screen are a call each, reported when answered.
const TRANSACTION: &str = "vision.transaction";

const PROVIDER: &str = "azure-ai-vision";

/// The Image Analysis 4.0 API version used for tags.
pub const ANALYZE_API_VERSION: &str = "2024-02-01";

/// The largest photo Image Analysis 3.2 reads: its documented limit is "less than 4 MB", and
/// 4,000,000 bytes stays under that whichever megabyte the service counts in. (4.0 reads up
/// to 20 MB, more than any photo thisthat accepts.)
const V32_MAX_BYTES: usize = 4_000_000;

/// The longest side of a photo re-encoded for Image Analysis 3.2: a screen needs no more, and
/// the JPEG stays far below the size limit.
const V32_REENCODED_SIDE: u32 = 2048;

/// The OAuth scope of Azure AI services.
const COGNITIVE_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// Whether and how photos are screened for unsafe content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Screening {
    /// No screen: [`Classifier::screens_content`] is false.
    None,
    /// Image Analysis 3.2 `analyze?visualFeatures=Adult` on the same resource: its adult and
    /// gore scores become moderation labels `adult` and `gore`. (Its racy score is left out: a
    /// swimsuit is not a reason to reject a competition.)
    #[default]
    AdultV32,
}

/// How requests to the Vision resource are authorised.
#[derive(Clone)]
enum VisionAuth {
    Key(String),
    Token(Arc<dyn TokenCredential>),
}

/// thisthat's classifier on Azure AI Vision.
#[derive(Clone)]
pub struct AiVisionClassifier {
    http: reqwest::Client,
    endpoint: Url,
    auth: VisionAuth,
    screening: Screening,
}

impl std::fmt::Debug for AiVisionClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiVisionClassifier")
            .field("endpoint", &self.endpoint.as_str())
            .field("screening", &self.screening)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnalyzeResult {
    tags_result: Option<TagsResult>,
}

#[derive(Debug, Deserialize)]
struct TagsResult {
    values: Vec<Tag>,
}

#[derive(Debug, Deserialize)]
struct Tag {
    name: String,
    confidence: f32,
}

#[derive(Debug, Deserialize)]
struct V32Result {
    adult: Option<Adult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Adult {
    adult_score: f32,
    gore_score: f32,
}

impl AiVisionClassifier {
    /// A classifier on the Vision resource at `endpoint` (`https://{resource}.cognitiveservices.azure.com/`)
    /// with one of its keys.
    pub fn with_key(endpoint: Url, key: impl Into<String>, screening: Screening) -> Result<Self> {
        Self::new(endpoint, VisionAuth::Key(key.into()), screening)
    }

    /// A classifier authorised by Entra ID (the identity needs the `Cognitive Services User` role).
    pub fn with_credential(endpoint: Url, credential: Arc<dyn TokenCredential>, screening: Screening) -> Result<Self> {
        Self::new(endpoint, VisionAuth::Token(credential), screening)
    }

    fn new(endpoint: Url, auth: VisionAuth, screening: Screening) -> Result<Self> {
        if endpoint.cannot_be_a_base() {
            return Err(Error::config(format!("{endpoint} is not a Vision endpoint")));
        }
        Ok(AiVisionClassifier {
            http: thisthat_http::client()?,
            endpoint,
            auth,
            screening,
        })
    }

    /// The HTTP client, for calls the port does not cover.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    async fn post(&self, path_and_query: &str, bytes: bytes::Bytes) -> Result<reqwest::RequestBuilder> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        let url = Url::parse(&format!("{base}/{path_and_query}")).map_err(|e| Error::Config {
            reason: format!("{base} is not a usable Vision endpoint"),
            source: Some(e.into()),
        })?;
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        Ok(match &self.auth {
            VisionAuth::Key(key) => request.header("Ocp-Apim-Subscription-Key", key),
            VisionAuth::Token(credential) => {
                let token = credential
                    .get_token(&[COGNITIVE_SCOPE], None)
                    .await
                    .map_err(crate::auth::identity_error)?;
                request.bearer_auth(token.token.secret())
            }
        })
    }

    async fn tags(&self, bytes: bytes::Bytes) -> Result<Vec<Label>> {
        let request = self
            .post(
                &format!("computervision/imageanalysis:analyze?api-version={ANALYZE_API_VERSION}&features=tags"),
                bytes,
            )
            .await?;
        let result: AnalyzeResult = thisthat_http::send_for_json(PROVIDER, request, refused_photo).await?;
        bill(TRANSACTION, 1.0);
        let mut labels = Vec::new();
        for tag in result.tags_result.map(|t| t.values).unwrap_or_default() {
            // A name the domain cannot hold (empty, control characters) is dropped, not fatal.
            if let Ok(label) = Label::new(&tag.name, tag.confidence.clamp(0.0, 1.0)) {
                labels.push(label);
            }
        }
        labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        Ok(labels)
    }

    async fn screen(&self, bytes: bytes::Bytes, format: MediaType) -> Result<Vec<Label>> {
        let bytes = for_v32(bytes, format).await?;
        let request = self.post("vision/v3.2/analyze?visualFeatures=Adult", bytes).await?;
        let result: V32Result = thisthat_http::send_for_json(PROVIDER, request, refused_photo).await?;
        bill(TRANSACTION, 1.0);
        let adult = result.adult.ok_or_else(|| Error::Backend {
            provider: PROVIDER,
            message: "the Adult analysis was missing from the answer".into(),
            source: None,
        })?;
        Ok([("adult", adult.adult_score), ("gore", adult.gore_score)]
            .into_iter()
            .filter_map(|(name, score)| Label::new(name, score.clamp(0.0, 1.0)).ok())
            .collect())
    }
}

/// The photo as Image Analysis 3.2 can read it: it takes JPEG, PNG, GIF and BMP under 4 MB,
/// while thisthat accepts WebP and photos up to 10 MiB, so anything else is re-encoded as a
/// JPEG (off the async threads: decoding a large photo takes a while).
async fn for_v32(bytes: bytes::Bytes, format: MediaType) -> Result<bytes::Bytes> {
    let readable = matches!(format, MediaType::Jpeg | MediaType::Png);
    if readable && bytes.len() < V32_MAX_BYTES {
        return Ok(bytes);
    }
    let jpeg = tokio::task::spawn_blocking(move || thisthat_core::decode::to_jpeg(&bytes, V32_REENCODED_SIDE))
        .await
        .map_err(|e| Error::backend(PROVIDER, e))??;
    if jpeg.len() >= V32_MAX_BYTES {
        // Not expected at 2048 pixels, but sending it would only earn InvalidImageSize.
        return Err(Error::TooLarge {
            what: "photo re-encoded for the AI Vision 3.2 screen".into(),
            size: jpeg.len() as u64,
            limit: V32_MAX_BYTES as u64,
        });
    }
    Ok(bytes::Bytes::from(jpeg))
}

/// 400 and 415 about the image itself are the photo's fault, not the service's.
fn refused_photo(e: &thisthat_http::HttpStatusError) -> Option<Error> {
    match e.status {
        415 => Some(Error::UnsupportedMediaType {
            detected: "an image AI Vision cannot read".into(),
        }),
        400 if e.body.contains("InvalidImage") => Some(Error::invalid(
            "photo",
            format!("AI Vision refused the image: {}", e.body),
        )),
        _ => None,
    }
}

#[async_trait]
impl Classifier for AiVisionClassifier {
    #[instrument(skip(self, photo), fields(size = photo.bytes.len()))]
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        // Checked here, so that what is not an image never leaves the process; the format is
        // the bytes', never what the caller says.
        let format = sniff(&photo.bytes)?.media_type;
        match self.screening {
            Screening::None => Ok(Classification {
                labels: self.tags(photo.bytes.clone()).await?,
                moderation: None,
            }),
            _ => {
                let (labels, moderation) =
                    futures::future::join(self.tags(photo.bytes.clone()), self.screen(photo.bytes.clone(), format))
                        .await;
                Ok(Classification {
                    labels: labels?,
                    moderation: Some(moderation?),
                })
            }
        }
    }

    fn screens_content(&self) -> bool {
        !matches!(self.screening, Screening::None)
    }

    /// Exposes the adapter and its HTTP client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
