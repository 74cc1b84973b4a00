//! The Rekognition classifier.

use async_trait::async_trait;
use aws_sdk_rekognition::{
    Client,
    primitives::Blob,
    types::{Image, S3Object},
};
use thisthat_core::{
    Classification, Error, Label, MediaType, Result,
    layers::bill,
    media::sniff,
    ports::{Classifier, PhotoInput},
};
use tracing::Instrument;

use crate::error;

const SERVICE: &str = "rekognition";
/// Rekognition bills each image an API analysed (its price key), reported on each answer.
const IMAGE: &str = "rekognition.image";

/// The largest photo Rekognition takes as bytes in the request (5 MB); larger ones must be read
/// from S3, which takes up to 15 MB.
pub const MAX_INLINE_BYTES: usize = 5 * 1024 * 1024;

/// Image recognition with Rekognition: `DetectLabels` for what the photo shows and, unless
/// turned off, `DetectModerationLabels` for the unsafe-content screen. Confidences come back
/// as percentages and are scaled to 0..1.
///
/// When the photos live in S3 (tell it the bucket with [`RekognitionClassifier::reading_from`])
/// Rekognition reads them there instead of receiving them in the request: smaller requests,
/// and photos up to 15 MB. The bucket must be in the same region as Rekognition.
#[derive(Debug, Clone)]
pub struct RekognitionClassifier {
    client: Client,
    bucket: Option<(String, String)>,
    screen: bool,
    max_labels: i32,
    min_confidence: f32,
}

impl RekognitionClassifier {
    /// A classifier with the given client that screens content, up to 20 labels at 50 % or
    /// more.
    pub fn from_client(client: Client) -> Self {
        RekognitionClassifier {
            client,
            bucket: None,
            screen: true,
            max_labels: 20,
            min_confidence: 50.0,
        }
    }

    /// A classifier configured from the standard AWS chain.
    pub async fn new() -> Self {
        Self::from_client(Client::new(&crate::load_config().await))
    }

    /// Reads stored photos from `bucket` (where an [`crate::S3BlobStore`] keeps them, under
    /// `prefix`) instead of sending their bytes.
    pub fn reading_from(mut self, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        self.bucket = Some((bucket.into(), prefix));
        self
    }

    /// Whether to call `DetectModerationLabels` (on by default). Without it the service cannot
    /// reject unsafe photos.
    pub fn screening(mut self, screen: bool) -> Self {
        self.screen = screen;
        self
    }

    /// The Rekognition client, for anything thisthat does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn image(&self, photo: &PhotoInput) -> Result<Image> {
        // The format comes from the bytes, never from what the caller says; Rekognition reads
        // JPEG and PNG only, so anything else thisthat accepts (WebP) is sent as a JPEG.
        let format = sniff(&photo.bytes)?.media_type;
        let readable = matches!(format, MediaType::Jpeg | MediaType::Png);
        if readable && let (Some((bucket, prefix)), Some(key)) = (&self.bucket, &photo.key) {
            let object = S3Object::builder()
                .bucket(bucket)
                .name(format!("{prefix}{}", key.as_str()))
                .build();
            return Ok(Image::builder().s3_object(object).build());
        }
        let bytes = if readable {
            photo.bytes.to_vec()
        } else {
            thisthat_core::decode::to_jpeg(&photo.bytes, REENCODED_SIDE)?
        };
        if bytes.len() > MAX_INLINE_BYTES {
            return Err(Error::TooLarge {
                what: "photo sent to Rekognition (with rekognition://?bucket=, stored JPEG and PNG photos up to 15 MB are read from S3)".into(),
                size: bytes.len() as u64,
                limit: MAX_INLINE_BYTES as u64,
            });
        }
        Ok(Image::builder().bytes(Blob::new(bytes)).build())
    }
}

/// A Rekognition label as a domain label; names the domain cannot hold are dropped.
fn label(name: Option<&str>, confidence: Option<f32>) -> Option<Label> {
    Label::new(name?, (confidence? / 100.0).clamp(0.0, 1.0)).ok()
}

/// The longest side a photo Rekognition cannot read is scaled to before it is sent as JPEG:
/// labels need no more, and the result stays far below the 5 MB inline limit.
const REENCODED_SIDE: u32 = 2048;

/// Rekognition's errors about the image itself, mapped; `None` for the rest.
fn image_error(code: Option<&str>, size: usize) -> Option<Error> {
    match code? {
        "InvalidImageFormatException" => Some(Error::UnsupportedMediaType {
            detected: "a photo Rekognition cannot read (InvalidImageFormatException)".into(),
        }),
        "ImageTooLargeException" => Some(Error::TooLarge {
            what: "photo for Rekognition".into(),
            size: size as u64,
            limit: MAX_INLINE_BYTES as u64,
        }),
        // A wrong bucket or prefix, a bucket in another region, or no s3:GetObject for the
        // caller: the configuration, not the photo (which must not be rejected for it).
        "InvalidS3ObjectException" => Some(Error::Config {
            reason: "Rekognition cannot read the photo from S3: check the bucket and prefix (rekognition://?bucket=&prefix=), \
                     that the bucket is in Rekognition's region, and s3:GetObject for this role"
                .into(),
            source: None,
        }),
        _ => None,
    }
}

#[async_trait]
impl Classifier for RekognitionClassifier {
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        let image = self.image(photo)?;
        let size = photo.bytes.len();
        async {
            let labels = self
                .client
                .detect_labels()
                .image(image.clone())
                .max_labels(self.max_labels)
                .min_confidence(self.min_confidence)
                .send()
                .await
                .map_err(|e| image_error(error::code(&e), size).unwrap_or_else(|| error::map(SERVICE, e)))?;
            // Rekognition bills each image an API analysed: one for labels, one for the screen.
            bill(IMAGE, 1.0);
            let mut labels: Vec<Label> = labels
                .labels()
                .iter()
                .filter_map(|l| label(l.name(), l.confidence()))
                .collect();
            labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
            let moderation = if self.screen {
                let found = self
                    .client
                    .detect_moderation_labels()
                    .image(image)
                    .min_confidence(self.min_confidence)
                    .send()
                    .await
                    .map_err(|e| image_error(error::code(&e), size).unwrap_or_else(|| error::map(SERVICE, e)))?;
                bill(IMAGE, 1.0);
                Some(
                    found
                        .moderation_labels()
                        .iter()
                        .filter_map(|l| label(l.name(), l.confidence()))
                        .collect(),
                )
            } else {
                None
            };
            Ok(Classification { labels, moderation })
        }
        .instrument(tracing::debug_span!(
            "rekognition",
            operation = "classify",
            screen = self.screen
        ))
        .await
    }

    fn screens_content(&self) -> bool {
        self.screen
    }

    /// Exposes the adapter and its Rekognition client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
