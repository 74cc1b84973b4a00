//! The notifier port on Firebase Cloud Messaging's HTTP v1 API.

use std::{collections::HashSet, sync::Mutex};

use async_trait::async_trait;
use serde::Deserialize;
use thisthat_core::{
    Device, Endpoint, Error, Platform, PushMessage, Result,
    ports::{Delivery, Notifier},
};
use thisthat_http::HttpStatusError;

use crate::auth::TokenSource;

const PROVIDER: &str = "fcm";

/// FCM's production endpoint.
pub const FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

/// Pushes through FCM's `projects/{project}/messages:send`.
///
/// FCM keeps no server-side registry of devices: an [`Endpoint`]'s address is the device's FCM
/// registration token itself, and the list of a user's devices lives in the database port
/// (`save_endpoint`/`endpoints`), like every other adapter's. [`Notifier::register`] therefore
/// makes no request; it checks the token and that the device is an FCM device.
/// [`Notifier::unregister`] cannot revoke a token at Google either; the notifier remembers the
/// tokens unregistered through it (in this process) and answers [`Delivery::Gone`] for them
/// without sending, so a send racing an unregistration does not reach the device. Across
/// processes, the database's endpoint list is what stops sends.
///
/// A token FCM calls `UNREGISTERED` (HTTP 404 with that `errorCode`), `SENDER_ID_MISMATCH`
/// (HTTP 403: the token belongs to another Firebase project) or rejects as not a valid
/// registration token (HTTP 400 `INVALID_ARGUMENT` naming the token) is [`Delivery::Gone`];
/// the service then removes the device. Any other 404 (no FCM error code: a wrong project or
/// endpoint) and refused credentials are [`Error::Config`], never a dead device. Quota (429)
/// and server errors are [`Error::Unavailable`] with FCM's `Retry-After`.
///
/// FCM does not deduplicate sends. The message's idempotency key goes out as the Android
/// `collapse_key` and the APNs `apns-collapse-id` (so a retried push replaces, rather than
/// adds to, the one already shown) and in the data payload.
#[derive(Debug)]
pub struct FcmNotifier {
    http: reqwest::Client,
    endpoint: String,
    project: String,
    tokens: TokenSource,
    unregistered: Mutex<HashSet<String>>,
}

#[derive(Debug, Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Debug, Deserialize)]
struct GoogleErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl GoogleErrorBody {
    fn fcm_error_code(&self) -> Option<&str> {
        self.details.iter().find_map(|d| d.get("errorCode")?.as_str())
    }
}

/// Whether a failed send means the token is dead.
///
/// Only FCM's own error codes say so: a 404 without `errorCode: UNREGISTERED` is not about the
/// token (a wrong project, a wrong endpoint, a proxy's HTML page), and treating it as a dead
/// device would delete every working device of every user.
fn is_gone(e: &HttpStatusError) -> bool {
    let parsed: Option<GoogleError> = serde_json::from_str(&e.body).ok();
    let code = parsed.as_ref().and_then(|p| p.error.fcm_error_code());
    match (e.status, code) {
        (404, Some("UNREGISTERED")) => true,
        // The token was issued for another Firebase project's sender: this project can never
        // reach it, whatever is retried.
        (403, Some("SENDER_ID_MISMATCH")) => true,
        (400, Some("INVALID_ARGUMENT")) => {
            // INVALID_ARGUMENT also covers a malformed message (a bug here, not a dead
            // device): only a complaint about the token makes the device gone.
            let message = parsed
                .as_ref()
                .map(|p| p.error.message.to_ascii_lowercase())
                .unwrap_or_default();
            message.contains("token")
        }
        _ => false,
    }
}

/// The error for a failed send that is not a dead token, where the shared mapping would say
/// the wrong thing: a 404 that is not `UNREGISTERED` means the project or the endpoint is
/// wrong, which no retry fixes.
fn send_error(e: &HttpStatusError) -> Option<Error> {
    (e.status == 404).then(|| Error::Config {
        reason: "FCM answered 404 without naming the token: check the Firebase project id and the FCM endpoint".into(),
        source: Some(Box::new(e.clone())),
    })
}

impl FcmNotifier {
    /// A notifier for the Firebase project `project`, with Application Default Credentials
    /// (the service account needs `roles/firebasecloudmessaging.admin` or
    /// `cloudmessaging.messages.create`).
    pub fn new(project: impl Into<String>) -> Result<Self> {
        Self::with_endpoint(project, FCM_ENDPOINT, TokenSource::adc()?)
    }

    /// A notifier that sends to `endpoint` (FCM, or a local fake in tests) with `tokens`.
    ///
    /// [`Error::Config`] if `tokens` would go to a plain `http://` endpoint in the clear
    /// (Application Default Credentials never do; a static token only to a loopback fake).
    pub fn with_endpoint(project: impl Into<String>, endpoint: &str, tokens: TokenSource) -> Result<Self> {
        crate::install_crypto_provider();
        tokens.check_endpoint(PROVIDER, endpoint)?;
        Ok(FcmNotifier {
            http: thisthat_http::client()?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            project: project.into(),
            tokens,
            unregistered: Mutex::new(HashSet::new()),
        })
    }

    /// The HTTP client, for FCM calls the port does not offer (topics, multicast).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    fn unregistered(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.unregistered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The documented message body.
    fn body(token: &str, message: &PushMessage) -> serde_json::Value {
        // apns-collapse-id may be at most 64 bytes: cut on a character boundary.
        let mut end = message.idempotency_key.len().min(64);
        while !message.idempotency_key.is_char_boundary(end) {
            end -= 1;
        }
        let collapse = &message.idempotency_key[..end];
        serde_json::json!({
            "message": {
                "token": token,
                "notification": { "title": message.title, "body": message.body },
                "data": {
                    "competition": message.competition.to_string(),
                    "idempotency_key": message.idempotency_key,
                },
                "android": { "collapse_key": collapse },
                "apns": { "headers": { "apns-collapse-id": collapse } },
            }
        })
    }
}

#[async_trait]
impl Notifier for FcmNotifier {
    #[tracing::instrument(name = "fcm.register", skip_all, fields(user = %device.user))]
    async fn register(&self, device: &Device) -> Result<Endpoint> {
        device.validate()?;
        if device.platform != Platform::Fcm {
            return Err(Error::invalid(
                "platform",
                format!(
                    "FCM sends to FCM registration tokens; a {} device token needs its app to register with FCM first",
                    device.platform.as_str()
                ),
            ));
        }
        self.unregistered().remove(&device.token);
        Ok(Endpoint {
            device: device.clone(),
            address: device.token.clone(),
        })
    }

    #[tracing::instrument(name = "fcm.unregister", skip_all, fields(user = %endpoint.device.user))]
    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        self.unregistered().insert(endpoint.address.clone());
        Ok(())
    }

    #[tracing::instrument(name = "fcm.send", skip_all, fields(user = %endpoint.device.user, competition = %message.competition))]
    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        if self.unregistered().contains(&endpoint.address) {
            return Ok(Delivery::Gone);
        }
        thisthat_core::model::check_token(&endpoint.address)?;
        let url = format!("{}/v1/projects/{}/messages:send", self.endpoint, self.project);
        let request = self
            .tokens
            .authorize(PROVIDER, self.http.post(url))
            .await?
            .json(&Self::body(&endpoint.address, message));
        let mut gone = false;
        let sent = thisthat_http::send(PROVIDER, request, |e| {
            gone = is_gone(e);
            if gone {
                // A marker error, replaced below: the hook cannot return a Delivery.
                Some(Error::not_found(thisthat_core::Entity::Device, "token"))
            } else {
                send_error(e)
            }
        })
        .await;
        match sent {
            Ok(_) => {
                // FCM charges nothing per message; reported so the model's count is checked.
                thisthat_core::layers::bill("fcm.send", 1.0);
                Ok(Delivery::Accepted)
            }
            Err(_) if gone => Ok(Delivery::Gone),
            Err(e) => Err(e),
        }
    }

    /// Exposes the adapter and its HTTP client (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_ids_are_cut_to_64_bytes_on_a_character_boundary() {
        let message = PushMessage {
            title: "t".into(),
            body: "b".into(),
            competition: thisthat_core::CompetitionId::new(),
            idempotency_key: "é".repeat(40),
        };
        let body = FcmNotifier::body("token", &message);
        let collapse = body["message"]["apns"]["headers"]["apns-collapse-id"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(collapse, "é".repeat(32));
        assert_eq!(
            body["message"]["data"]["idempotency_key"],
            "é".repeat(40),
            "the data keeps the whole key"
        );
    }

    #[test]
    fn only_token_complaints_make_a_device_gone() {
        let unregistered = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert!(is_gone(&HttpStatusError::new(404, unregistered)));
        let bad_token = r#"{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}"#;
        assert!(is_gone(&HttpStatusError::new(400, bad_token)));
        let bad_payload = r#"{"error":{"code":400,"message":"Invalid value at 'message.data[0].value'","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}"#;
        assert!(!is_gone(&HttpStatusError::new(400, bad_payload)));
        assert!(!is_gone(&HttpStatusError::new(429, "{}")));
        let mismatch = r#"{"error":{"code":403,"message":"SenderId mismatch","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"SENDER_ID_MISMATCH"}]}}"#;
        assert!(is_gone(&HttpStatusError::new(403, mismatch)));
        // A 404 that does not name the token: a wrong project or endpoint, not a dead device.
        let wrong_project =
            r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}"#;
        assert!(!is_gone(&HttpStatusError::new(404, wrong_project)));
        assert!(!is_gone(&HttpStatusError::new(404, "<html>Not Found</html>")));
        assert!(!is_gone(&HttpStatusError::new(
            403,
            r#"{"error":{"code":403,"status":"PERMISSION_DENIED"}}"#
        )));
    }
}
