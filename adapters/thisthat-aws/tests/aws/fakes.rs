//! A stand-in for Rekognition on the wire, for what moto lacks: moto answers `DetectLabels`
//! with one canned label whatever the image and does not implement `DetectModerationLabels`.
//! The fake checks each request against Rekognition's documented JSON protocol (target header,
//! content type, SigV4 authorization shape, one image source, JPEG or PNG bytes only) and
//! answers the documented response shapes and error bodies.

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use thisthat_core::media::sniff;
use thisthat_testkit::wire::{RecordedRequest, Reply, WireFake};

/// A running fake and the error it should answer next, if any.
pub struct FakeRekognition {
    pub wire: WireFake,
    fail_next: Arc<Mutex<Option<(u16, &'static str)>>>,
}

impl FakeRekognition {
    /// Starts a fake that flags `flagged` (exact bytes) as graphic violence.
    pub async fn start(flagged: Option<Bytes>) -> Self {
        let fail_next: Arc<Mutex<Option<(u16, &'static str)>>> = Arc::new(Mutex::new(None));
        let failing = fail_next.clone();
        let wire = WireFake::start(move |request| {
            if let Some((status, code)) = failing.lock().expect("lock").take() {
                return Ok(error(status, code, "injected by the test"));
            }
            answer(request, flagged.as_deref())
        })
        .await;
        FakeRekognition { wire, fail_next }
    }

    /// Makes the next request fail with `status` and the error type `code`.
    pub fn fail_next(&self, status: u16, code: &'static str) {
        *self.fail_next.lock().expect("lock") = Some((status, code));
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, serde_json::json!({"__type": code, "Message": message}))
        .header("x-amzn-errortype", code)
        .header("content-type", "application/x-amz-json-1.1")
}

fn answer(request: &RecordedRequest, flagged: Option<&[u8]>) -> Result<Reply, String> {
    if request.method != "POST" || request.path != "/" {
        return Err(format!("expected POST /, got {} {}", request.method, request.path));
    }
    if request.header("content-type") != Some("application/x-amz-json-1.1") {
        return Err(format!("content-type {:?}", request.header("content-type")));
    }
    let authorization = request.header("authorization").ok_or("no authorization header")?;
    let signature = authorization.rsplit("Signature=").next().unwrap_or_default();
    if !authorization.starts_with("AWS4-HMAC-SHA256 Credential=")
        || !authorization.contains("/us-east-1/rekognition/aws4_request")
        || !authorization.contains("SignedHeaders=")
        || signature.len() != 64
        || !signature.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(format!("not a SigV4 authorization for rekognition: {authorization}"));
    }
    if request.header("x-amz-date").is_none() {
        return Err("no x-amz-date".into());
    }
    let body = request.json()?;
    let image = body.get("Image").and_then(|i| i.as_object()).ok_or("no Image")?;
    let bytes = match (image.get("Bytes"), image.get("S3Object")) {
        (Some(b), None) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b.as_str().ok_or("Bytes is not a string")?)
                .map_err(|e| format!("Bytes is not base64: {e}"))?,
        ),
        (None, Some(o)) => {
            if o.get("Bucket").and_then(|b| b.as_str()).is_none() || o.get("Name").and_then(|n| n.as_str()).is_none() {
                return Err(format!("S3Object needs Bucket and Name: {o}"));
            }
            None
        }
        _ => return Err("Image needs exactly one of Bytes and S3Object".into()),
    };
    if let Some(bytes) = &bytes {
        // Rekognition reads JPEG and PNG only; anything else is its documented 400.
        let readable = sniff(bytes)
            .map(|i| {
                matches!(
                    i.media_type,
                    thisthat_core::MediaType::Jpeg | thisthat_core::MediaType::Png
                )
            })
            .unwrap_or(false);
        if !readable {
            return Ok(error(
                400,
                "InvalidImageFormatException",
                "Request has invalid image format",
            ));
        }
    }
    if let Some(confidence) = body.get("MinConfidence")
        && !confidence.as_f64().is_some_and(|c| (0.0..=100.0).contains(&c))
    {
        return Err(format!("MinConfidence {confidence} is not 0 to 100"));
    }
    match request.header("x-amz-target") {
        Some("RekognitionService.DetectLabels") => {
            if !matches!(body.get("MaxLabels").and_then(|m| m.as_u64()), Some(1..)) {
                return Err("MaxLabels must be a positive integer".into());
            }
            Ok(Reply::json(
                200,
                serde_json::json!({
                    "Labels": [
                        {"Name": "Animal", "Confidence": 99.2, "Instances": [], "Parents": []},
                        {"Name": "Cat", "Confidence": 97.5, "Instances": [], "Parents": [{"Name": "Animal"}]},
                    ],
                    "LabelModelVersion": "3.0",
                }),
            ))
        }
        Some("RekognitionService.DetectModerationLabels") => {
            let unsafe_content = bytes.is_some() && bytes.as_deref() == flagged;
            let labels = if unsafe_content {
                serde_json::json!([
                    {"Confidence": 95.5, "Name": "Graphic Violence", "ParentName": "Violence", "TaxonomyLevel": 2},
                    {"Confidence": 95.5, "Name": "Violence", "ParentName": "", "TaxonomyLevel": 1},
                ])
            } else {
                serde_json::json!([])
            };
            Ok(Reply::json(
                200,
                serde_json::json!({"ModerationLabels": labels, "ModerationModelVersion": "7.0"}),
            ))
        }
        other => Err(format!("unexpected x-amz-target {other:?}")),
    }
}
