//! Wire fakes for the two Azure services that have no emulator. Each handler checks requests
//! against the documented REST API (paths, API versions, headers, the SAS signature recomputed
//! from the key, bodies) and answers as the service documents, errors included. Anything else
//! is a violation, which every test asserts there are none of.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use thisthat_azure::NotificationHubsConfig;
use thisthat_core::PushMessage;
use thisthat_testkit::wire::{RecordedRequest, Reply, WireFake};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub const HUB: &str = "thisthat-hub";
pub const KEY_NAME: &str = "DefaultFullSharedAccessSignature";
pub const HUB_KEY: &str = "aHViLWtleS1mb3ItdGhlLXdpcmUtZmFrZQ==";

#[derive(Default)]
struct HubState {
    installations: HashMap<String, Value>,
    delivered: Vec<(String, PushMessage)>,
    /// Replies the next sends get instead of 201 (throttling, outages).
    scripted: VecDeque<Reply>,
    /// Whether installation writes are applied later, as the hub documents: a GET right after
    /// a PUT answers 404 until [`HubFake::settle`].
    asynchronous: bool,
    /// Installations written but not yet processed (only when `asynchronous`).
    pending: HashSet<String>,
    /// Replies the next installation reads get instead of the stored installation.
    scripted_reads: VecDeque<Reply>,
}

/// Notification Hubs: installations and native sends, on `/{hub}/...`.
pub struct HubFake {
    pub fake: WireFake,
    state: Arc<Mutex<HubState>>,
}

impl HubFake {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(HubState::default()));
        let handler_state = state.clone();
        let fake = WireFake::start(move |req| hub(req, &handler_state)).await;
        HubFake { fake, state }
    }

    /// The configuration of a notifier for this fake, signing with `key`.
    pub fn config(&self, key: &str) -> NotificationHubsConfig {
        NotificationHubsConfig {
            endpoint: self.fake.url().parse().expect("fake url"),
            hub: HUB.into(),
            key_name: KEY_NAME.into(),
            key: key.into(),
        }
    }

    pub fn delivered(&self, installation: &str) -> Vec<PushMessage> {
        lock(&self.state)
            .delivered
            .iter()
            .filter(|(id, _)| id == installation)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The PNS dropped the device: the hub marks the installation's channel expired.
    pub fn expire(&self, installation: &str) {
        if let Some(i) = lock(&self.state).installations.get_mut(installation) {
            i["expiredPushChannel"] = Value::Bool(true);
        }
    }

    pub fn installation(&self, id: &str) -> Option<Value> {
        lock(&self.state).installations.get(id).cloned()
    }

    pub fn script(&self, reply: Reply) {
        lock(&self.state).scripted.push_back(reply);
    }

    /// The next installation read is answered with `reply`.
    pub fn script_read(&self, reply: Reply) {
        lock(&self.state).scripted_reads.push_back(reply);
    }

    /// From now on installation writes become readable only at [`HubFake::settle`].
    pub fn process_asynchronously(&self) {
        lock(&self.state).asynchronous = true;
    }

    /// The hub finishes processing every pending installation write.
    pub fn settle(&self) {
        lock(&self.state).pending.clear();
    }
}

/// Checks the `SharedAccessSignature` header: resource, expiry, key name and the HMAC over the
/// encoded resource and expiry. `Ok(false)` is a wrong signature (the service answers 401).
fn check_sas(req: &RecordedRequest, base: &str) -> Result<bool, String> {
    let header = req.header("authorization").ok_or("no Authorization header")?;
    let fields = header
        .strip_prefix("SharedAccessSignature ")
        .ok_or("Authorization is not a SharedAccessSignature")?;
    let mut parts = HashMap::new();
    for pair in fields.split('&') {
        let (k, v) = pair.split_once('=').ok_or("a SAS field without =")?;
        parts.insert(k, v);
    }
    let (Some(sr), Some(sig), Some(se), Some(skn)) =
        (parts.get("sr"), parts.get("sig"), parts.get("se"), parts.get("skn"))
    else {
        return Err(format!("SAS fields missing: {fields}"));
    };
    let resource = format!("{base}/{HUB}").to_lowercase();
    if *sr != encode(&resource) {
        return Err(format!("sr is {sr}, not the URL-encoded hub URI {resource}"));
    }
    let expiry: u64 = se.parse().map_err(|_| "se is not Unix seconds")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if expiry <= now {
        return Err("the SAS token has expired".into());
    }
    if *skn != KEY_NAME {
        return Ok(false);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(HUB_KEY.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{sr}\n{se}").as_bytes());
    let expected = encode(&base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    Ok(*sig == expected)
}

fn hub(req: &RecordedRequest, state: &Mutex<HubState>) -> Result<Reply, String> {
    if req.query_param("api-version").as_deref() != Some("2015-01") {
        return Err(format!("api-version must be 2015-01, got {:?}", req.query));
    }
    let base = format!("http://{}", req.header("host").ok_or("no Host header")?);
    if !check_sas(req, &base)? {
        return Ok(Reply::json(
            401,
            json!({"Code": 401, "Detail": "InvalidSignature: The token has an invalid signature."}),
        ));
    }
    let path = req
        .path
        .strip_prefix(&format!("/{HUB}/"))
        .ok_or_else(|| format!("path {} is not under /{HUB}/", req.path))?;
    let mut state = lock(state);
    if let Some(id) = path.strip_prefix("installations/") {
        return match req.method.as_str() {
            "PUT" => {
                if !req
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("application/json"))
                {
                    return Err("an installation is sent as application/json".into());
                }
                let body = req.json()?;
                if body["installationId"] != id {
                    return Err(format!(
                        "installationId {} differs from the path {id}",
                        body["installationId"]
                    ));
                }
                if !matches!(
                    body["platform"].as_str(),
                    Some("apns" | "fcmv1" | "gcm" | "wns" | "adm" | "baidu")
                ) {
                    return Err(format!("unknown platform {}", body["platform"]));
                }
                if body["pushChannel"].as_str().is_none_or(|c| c.is_empty()) {
                    return Err("pushChannel is required".into());
                }
                let mut stored = body.clone();
                stored["expiredPushChannel"] = Value::Bool(false);
                state.installations.insert(id.to_owned(), stored);
                if state.asynchronous {
                    state.pending.insert(id.to_owned());
                }
                Ok(Reply::status(200))
            }
            "GET" if !state.scripted_reads.is_empty() => {
                Ok(state.scripted_reads.pop_front().unwrap_or(Reply::status(500)))
            }
            "GET" => Ok(match state.installations.get(id) {
                Some(i) if !state.pending.contains(id) => Reply::json(200, i.clone()),
                _ => Reply::status(404),
            }),
            "DELETE" => Ok(match state.installations.remove(id) {
                Some(_) if state.pending.remove(id) => Reply::status(204),
                Some(_) => Reply::status(204),
                None => Reply::status(404),
            }),
            other => Err(format!("{other} is not an installation method")),
        };
    }
    if path != "messages/" || req.method != "POST" {
        return Err(format!("{} /{HUB}/{path} is not a Notification Hubs call", req.method));
    }
    let format = req
        .header("servicebusnotification-format")
        .ok_or("no ServiceBusNotification-Format")?;
    let tags = req
        .header("servicebusnotification-tags")
        .ok_or("no ServiceBusNotification-Tags")?;
    let id = tags
        .strip_prefix("$InstallationId:{")
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("tags {tags:?} do not target one installation"))?;
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return Err("a native notification is application/json".into());
    }
    if format == "apple" {
        // APNs requires the push type (iOS 13+) and it must match the payload: an alert here.
        if req.header("apns-push-type") != Some("alert") {
            return Err(format!(
                "an apple alert needs apns-push-type: alert, got {:?}",
                req.header("apns-push-type")
            ));
        }
        if req.header("apns-priority") != Some("10") {
            return Err(format!(
                "an apple alert is sent with apns-priority 10, got {:?}",
                req.header("apns-priority")
            ));
        }
    }
    let body = req.json()?;
    let (title, text, data) = match format {
        "apple" => (&body["aps"]["alert"]["title"], &body["aps"]["alert"]["body"], &body),
        "fcmv1" => (
            &body["message"]["notification"]["title"],
            &body["message"]["notification"]["body"],
            &body["message"]["data"],
        ),
        other => return Err(format!("format {other} is not one thisthat registers")),
    };
    let message = PushMessage {
        title: title.as_str().ok_or("no title")?.to_owned(),
        body: text.as_str().ok_or("no body")?.to_owned(),
        competition: data["competition"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .ok_or("no competition in the data")?,
        idempotency_key: data["idempotency_key"].as_str().ok_or("no idempotency_key")?.to_owned(),
    };
    if let Some(reply) = state.scripted.pop_front() {
        return Ok(reply);
    }
    // The hub accepts a send that matches no installation (or one of another platform) and
    // delivers it nowhere, as the service does.
    // A pending installation matches nothing yet.
    let processed = !state.pending.contains(id);
    let platform_matches = processed
        && state.installations.get(id).is_some_and(|i| {
            i["expiredPushChannel"] == false
                && matches!(
                    (i["platform"].as_str(), format),
                    (Some("apns"), "apple") | (Some("fcmv1"), "fcmv1")
                )
        });
    if platform_matches {
        state.delivered.push((id.to_owned(), message));
    }
    Ok(Reply::status(201))
}

pub const VISION_KEY: &str = "vision-key-for-the-wire-fake";
/// The Entra ID token the fake accepts instead of the key.
pub const VISION_TOKEN: &str = "entra-token-for-ai-vision";

#[derive(Default)]
struct VisionState {
    flagged: Option<Bytes>,
    scripted: VecDeque<Reply>,
}

/// AI Vision: Image Analysis 4.0 tags and 3.2 Adult.
pub struct VisionFake {
    pub fake: WireFake,
    state: Arc<Mutex<VisionState>>,
}

impl VisionFake {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(VisionState::default()));
        let handler_state = state.clone();
        let fake = WireFake::start(move |req| vision(req, &handler_state)).await;
        VisionFake { fake, state }
    }

    /// Photos equal to `bytes` get a high adult score.
    pub fn flag(&self, bytes: Bytes) {
        lock(&self.state).flagged = Some(bytes);
    }

    pub fn script(&self, reply: Reply) {
        lock(&self.state).scripted.push_back(reply);
    }
}

fn vision(req: &RecordedRequest, state: &Mutex<VisionState>) -> Result<Reply, String> {
    if req.method != "POST" {
        return Err(format!("{} is not an analyze call", req.method));
    }
    let authorised = req.header("ocp-apim-subscription-key") == Some(VISION_KEY)
        || req.header("authorization") == Some(&format!("Bearer {VISION_TOKEN}"));
    if !authorised {
        return Ok(Reply::json(
            401,
            json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}}),
        ));
    }
    if req.header("content-type") != Some("application/octet-stream") {
        return Err("image bytes are sent as application/octet-stream".into());
    }
    let mut state = lock(state);
    if let Some(reply) = state.scripted.pop_front() {
        return Ok(reply);
    }
    let invalid = |code: &str, message: &str| {
        Reply::json(
            400,
            json!({"error": {"code": "InvalidRequest", "message": message, "innererror": {"code": code, "message": message}}}),
        )
    };
    let Ok(info) = thisthat_core::media::sniff(&req.body) else {
        return Ok(invalid("InvalidImageFormat", "Image format is not valid."));
    };
    match req.path.as_str() {
        "/computervision/imageanalysis:analyze" => {
            // 4.0: JPEG, PNG, GIF, BMP, WEBP, ICO, TIFF, MPO, up to 20 MB (20,971,520 bytes).
            if req.body.len() > 20 * 1024 * 1024 {
                return Ok(invalid(
                    "InvalidImageSize",
                    "The image size is not allowed to be zero or larger than 20971520 bytes.",
                ));
            }
            if req.query_param("api-version").as_deref() != Some("2024-02-01") {
                return Err(format!("api-version must be 2024-02-01: {}", req.query));
            }
            if req.query_param("features").as_deref() != Some("tags") {
                return Err(format!("features must be tags: {}", req.query));
            }
            Ok(Reply::json(
                200,
                json!({
                    "modelVersion": "2023-10-01",
                    "metadata": {"width": info.width, "height": info.height},
                    "tagsResult": {"values": [
                        {"name": "cat", "confidence": 0.98},
                        {"name": "Indoor", "confidence": 0.81},
                        {"name": "whisker", "confidence": 0.42}
                    ]}
                }),
            ))
        }
        "/vision/v3.2/analyze" => {
            if req.query_param("visualFeatures").as_deref() != Some("Adult") {
                return Err(format!("visualFeatures must be Adult: {}", req.query));
            }
            // 3.2 reads JPEG, PNG, GIF and BMP only, of less than 4 MB.
            if info.media_type == thisthat_core::MediaType::Webp {
                return Ok(invalid("InvalidImageFormat", "Input data is not a valid image."));
            }
            if req.body.len() >= 4 * 1024 * 1024 {
                return Ok(invalid(
                    "InvalidImageSize",
                    "Input image is too large. The image size must be less than 4MB.",
                ));
            }
            let flagged = state.flagged.as_ref().is_some_and(|f| *f == req.body);
            let score = if flagged { 0.96 } else { 0.01 };
            Ok(Reply::json(
                200,
                json!({
                    "adult": {
                        "isAdultContent": flagged, "isRacyContent": false, "isGoryContent": false,
                        "adultScore": score, "racyScore": 0.02, "goreScore": 0.001
                    },
                    "requestId": "0d6c6e5e-0000-0000-0000-000000000000",
                    "metadata": {"width": info.width, "height": info.height, "format": "Png"},
                    "modelVersion": "2021-05-01"
                }),
            ))
        }
        other => Err(format!("{other} is not an AI Vision path")),
    }
}
