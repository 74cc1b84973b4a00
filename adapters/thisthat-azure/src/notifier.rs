//! Push notifications through Azure Notification Hubs, over its REST API (no maintained Rust
//! crate exists): one installation per device, sends targeted at the installation.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use thisthat_core::{
    Device, Endpoint, Error, Platform, PushMessage, Result,
    ports::{Delivery, Notifier},
};
use tracing::instrument;
use url::Url;

const PROVIDER: &str = "notification-hubs";

/// The REST API version of installations and sends.
pub const API_VERSION: &str = "2015-01";

/// How long each request's SAS token is valid; tokens are signed per request, locally.
const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// How long after this process registered an installation a 404 on reading it back means
/// "not processed yet" rather than "gone": the hub applies installation writes asynchronously,
/// so a GET right after a PUT can miss it. Minutes, not seconds, because the documentation
/// promises no bound; a device is only ever dropped for a 404 after this.
pub const DEFAULT_REGISTRATION_GRACE: Duration = Duration::from_secs(600);

/// Where a hub is and the shared access key to sign requests with.
#[derive(Clone)]
pub struct NotificationHubsConfig {
    /// The namespace endpoint, `https://{namespace}.servicebus.windows.net/`.
    pub endpoint: Url,
    /// The hub's name.
    pub hub: String,
    /// The access policy's name (`DefaultFullSharedAccessSignature`; sends and installations
    /// need the `Send` and `Manage` rights it has).
    pub key_name: String,
    /// The access policy's key, as the portal shows it.
    pub key: String,
}

impl std::fmt::Debug for NotificationHubsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationHubsConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("hub", &self.hub)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

impl NotificationHubsConfig {
    /// From the hub's connection string
    /// (`Endpoint=sb://{namespace}.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...`)
    /// and its name. The `sb://` endpoint is reached over `https://`.
    pub fn from_connection_string(connection_string: &str, hub: &str) -> Result<Self> {
        let mut endpoint = None;
        let (mut key_name, mut key) = (None, None);
        for part in connection_string.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(Error::config(
                    "a Notification Hubs connection string is `Name=value;...`",
                ));
            };
            match name.to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(value.to_owned()),
                "sharedaccesskeyname" => key_name = Some(value.to_owned()),
                "sharedaccesskey" => key = Some(value.to_owned()),
                _ => {}
            }
        }
        let missing = |what: &str| Error::config(format!("the Notification Hubs connection string has no {what}"));
        let endpoint = endpoint.ok_or_else(|| missing("Endpoint"))?;
        let endpoint = match endpoint.strip_prefix("sb://") {
            Some(rest) => format!("https://{rest}"),
            None => endpoint,
        };
        let endpoint = Url::parse(&endpoint).map_err(|e| Error::Config {
            reason: format!("the Notification Hubs endpoint {endpoint:?} is not a URL"),
            source: Some(e.into()),
        })?;
        if hub.is_empty() {
            return Err(Error::config("the notification hub's name is empty"));
        }
        Ok(NotificationHubsConfig {
            endpoint,
            hub: hub.to_owned(),
            key_name: key_name.ok_or_else(|| missing("SharedAccessKeyName"))?,
            key: key.ok_or_else(|| missing("SharedAccessKey"))?,
        })
    }
}

/// The hub's base URL, `{endpoint}/{hub}`, which is also the resource the SAS token names.
fn hub_url(config: &NotificationHubsConfig) -> String {
    format!("{}/{}", config.endpoint.as_str().trim_end_matches('/'), config.hub)
}

/// A Service Bus SAS token: HMAC-SHA256 (with the key's text as the key) over the URL-encoded,
/// lower-cased resource URI, a newline and the expiry in Unix seconds.
pub fn sas_token(resource: &str, key_name: &str, key: &str, expiry_unix: u64) -> String {
    let encoded = encode(&resource.to_lowercase());
    let signature = crate::auth::sign(key.as_bytes(), &format!("{encoded}\n{expiry_unix}"));
    format!(
        "SharedAccessSignature sr={encoded}&sig={}&se={expiry_unix}&skn={key_name}",
        encode(&signature)
    )
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An installation as the hub returns it (only what thisthat reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Installation {
    #[serde(default)]
    expired_push_channel: bool,
}

/// thisthat's notifier on Azure Notification Hubs.
#[derive(Debug, Clone)]
pub struct NotificationHubsNotifier {
    http: reqwest::Client,
    config: NotificationHubsConfig,
    grace: Duration,
    /// Installations this process registered (and when), so that a 404 while the hub is still
    /// processing the write is not mistaken for a deleted device. Pruned past the grace.
    registered: Arc<Mutex<HashMap<String, Instant>>>,
}

/// The installation id of a device: a hash of who, which platform and which token, so the same
/// registration always lands on the same installation.
fn installation_id(device: &Device) -> String {
    let mut h = Sha256::new();
    h.update(device.user.as_str().as_bytes());
    h.update([0]);
    h.update(device.platform.as_str().as_bytes());
    h.update([0]);
    h.update(device.token.as_bytes());
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The installation platform and the send format of a thisthat platform. APNs production or
/// sandbox is a setting of the hub, not of the installation.
fn platform(p: Platform) -> Result<(&'static str, &'static str)> {
    match p {
        Platform::Apns | Platform::ApnsSandbox => Ok(("apns", "apple")),
        Platform::Fcm => Ok(("fcmv1", "fcmv1")),
        _ => Err(Error::invalid(
            "platform",
            "Notification Hubs supports apns and fcm here",
        )),
    }
}

/// The native payload for a platform: the visible title and body, plus the competition and
/// the idempotency key as data, so the app opens the right competition and can drop a repeat
/// (Notification Hubs itself does not deduplicate).
fn payload(format: &str, message: &PushMessage) -> serde_json::Value {
    let competition = message.competition.to_string();
    match format {
        "apple" => json!({
            "aps": {"alert": {"title": message.title, "body": message.body}},
            "competition": competition,
            "idempotency_key": message.idempotency_key,
        }),
        _ => json!({
            "message": {
                "notification": {"title": message.title, "body": message.body},
                "data": {"competition": competition, "idempotency_key": message.idempotency_key},
            }
        }),
    }
}

impl NotificationHubsNotifier {
    /// A notifier for the hub `config` names.
    pub fn new(config: NotificationHubsConfig) -> Result<Self> {
        Ok(NotificationHubsNotifier {
            http: thisthat_http::client()?,
            config,
            grace: DEFAULT_REGISTRATION_GRACE,
            registered: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Sets how long after registering an installation a 404 on reading it is taken as "not
    /// processed yet" instead of "gone" (default [`DEFAULT_REGISTRATION_GRACE`]).
    pub fn with_registration_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    fn registrations(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this process registered `id` within the grace period.
    fn recently_registered(&self, id: &str) -> bool {
        self.registrations().get(id).is_some_and(|at| at.elapsed() < self.grace)
    }

    /// The HTTP client, for calls the port does not cover.
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder> {
        let hub = hub_url(&self.config);
        let url = Url::parse(&format!("{hub}/{path}?api-version={API_VERSION}")).map_err(|e| Error::Config {
            reason: format!("{hub} is not a usable hub URL"),
            source: Some(e.into()),
        })?;
        let expiry = (SystemTime::now() + TOKEN_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(self
            .http
            .request(method, url)
            .header(
                "Authorization",
                sas_token(&hub, &self.config.key_name, &self.config.key, expiry),
            )
            .header("x-ms-version", API_VERSION))
    }

    /// Whether the installation is gone: its channel expired at the PNS
    /// (`expiredPushChannel`), 410, or 404 when it is not one this process registered within
    /// the grace period (a fresh installation may not be readable yet).
    async fn installation_gone(&self, id: &str) -> Result<bool> {
        let request = self.request(Method::GET, &format!("installations/{id}"))?;
        // 410 is gone outright; whether a 404 is depends on the grace.
        let gone = |e: &thisthat_http::HttpStatusError| match e.status {
            404 => Some(Error::not_found(thisthat_core::Entity::Device, id)),
            410 => Some(Error::conflict("gone")),
            _ => None,
        };
        match thisthat_http::send_for_json::<Installation>(PROVIDER, request, gone).await {
            Ok(installation) => Ok(installation.expired_push_channel),
            Err(Error::Conflict { .. }) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(!self.recently_registered(id)),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Notifier for NotificationHubsNotifier {
    #[instrument(skip(self, device), fields(hub = %self.config.hub))]
    async fn register(&self, device: &Device) -> Result<Endpoint> {
        device.validate()?;
        let (platform, _) = platform(device.platform)?;
        let id = installation_id(device);
        // No user tag: user ids may hold characters tags may not; sends target installations.
        let body = json!({"installationId": id, "platform": platform, "pushChannel": device.token});
        let request = self
            .request(Method::PUT, &format!("installations/{id}"))?
            .header("Content-Type", "application/json")
            .body(body.to_string());
        thisthat_http::send(PROVIDER, request, |_| None).await?;
        let mut registered = self.registrations();
        // Pruned here, so the map holds at most the registrations of one grace period.
        let grace = self.grace;
        registered.retain(|_, at| at.elapsed() < grace);
        registered.insert(id.clone(), Instant::now());
        drop(registered);
        Ok(Endpoint {
            device: device.clone(),
            address: id,
        })
    }

    #[instrument(skip(self, endpoint), fields(hub = %self.config.hub))]
    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        let request = self.request(Method::DELETE, &format!("installations/{}", endpoint.address))?;
        let result = match thisthat_http::send(PROVIDER, request, |e| {
            (e.status == 404).then(|| Error::conflict("gone"))
        })
        .await
        {
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        };
        if result.is_ok() {
            // Deleted on purpose: from now on a 404 for it does mean gone.
            self.registrations().remove(&endpoint.address);
        }
        result
    }

    #[instrument(skip(self, endpoint, message), fields(hub = %self.config.hub, competition = %message.competition))]
    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        // A send to an installation that no longer exists is still accepted by the hub (it
        // matches nothing), so the installation is checked first: that is where a device the
        // PNS has dropped shows (`expiredPushChannel`), or a deleted one (404, once the
        // registration grace has passed).
        if self.installation_gone(&endpoint.address).await? {
            return Ok(Delivery::Gone);
        }
        let (_, format) = platform(endpoint.device.platform)?;
        let mut request = self
            .request(Method::POST, "messages/")?
            .header("Content-Type", "application/json;charset=utf-8")
            .header("ServiceBusNotification-Format", format)
            .header(
                "ServiceBusNotification-Tags",
                format!("$InstallationId:{{{}}}", endpoint.address),
            );
        if format == "apple" {
            // Passed through to APNs, which requires the push type since iOS 13 (and may drop
            // alerts without it); priority 10 is "deliver now", right for a visible alert.
            request = request.header("apns-push-type", "alert").header("apns-priority", "10");
        }
        let request = request.body(payload(format, message).to_string());
        // A 404 here is "no message branch at the URI": the hub or namespace is wrong, which
        // is the configuration's fault, never the device's (a send matching no installation
        // is accepted). Reporting it as gone would delete every valid device.
        thisthat_http::send(PROVIDER, request, |e| {
            (e.status == 404).then(|| Error::Config {
                reason: format!(
                    "Notification Hubs has no hub {:?} at {} (HTTP 404 on send): check the hub name and endpoint",
                    self.config.hub,
                    self.config.endpoint.as_str()
                ),
                source: Some(e.clone().into()),
            })
        })
        .await?;
        // Notification Hubs bills pushes beyond its tier's allowance: one per send accepted.
        thisthat_core::layers::bill("notificationhubs.push", 1.0);
        Ok(Delivery::Accepted)
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
    fn connection_strings_parse() {
        let c = NotificationHubsConfig::from_connection_string(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Full;SharedAccessKey=abc=",
            "hub",
        )
        .expect("parsed");
        assert_eq!(c.endpoint.as_str(), "https://ns.servicebus.windows.net/");
        assert_eq!((c.key_name.as_str(), c.key.as_str()), ("Full", "abc="));
        assert_eq!(hub_url(&c), "https://ns.servicebus.windows.net/hub");
        assert!(NotificationHubsConfig::from_connection_string("Endpoint=sb://x/", "hub").is_err());
    }

    #[test]
    fn sas_tokens_match_an_independently_computed_vector() {
        // Computed outside Rust (python3: hmac/sha256 over quote_plus(lower(uri)) + "\n" +
        // expiry, base64, quote_plus), so a shared mistake in `encode` cannot hide here.
        assert_eq!(
            sas_token("https://ns.servicebus.windows.net/hub", "Full", "key", 1000),
            "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fhub\
             &sig=Kdw%2BRYGqTUFto24Bclx0PT5PSMc2a4inuC%2FelqtCyOs%3D&se=1000&skn=Full"
        );
        assert_eq!(
            sas_token(
                "https://NS.servicebus.windows.net/My-Hub",
                "DefaultFullSharedAccessSignature",
                "aHViLWtleQ==",
                1_767_225_600
            ),
            "SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fmy-hub\
             &sig=zQRumk4noJoxp9fhVcm0q5dxNIqVp29xImhxK6QAIf8%3D&se=1767225600\
             &skn=DefaultFullSharedAccessSignature"
        );
    }

    #[test]
    fn sas_tokens_have_the_documented_shape() {
        let t = sas_token("https://NS.servicebus.windows.net/hub", "Full", "key", 1_000);
        assert!(
            t.starts_with("SharedAccessSignature sr=https%3A%2F%2Fns.servicebus.windows.net%2Fhub&sig="),
            "{t}"
        );
        assert!(t.ends_with("&se=1000&skn=Full"), "{t}");
    }

    #[test]
    fn installation_ids_are_stable_per_device() {
        let d = |token: &str| {
            Device::new(thisthat_core::UserId::new("u").expect("user"), Platform::Fcm, token).expect("device")
        };
        assert_eq!(installation_id(&d("a")), installation_id(&d("a")));
        assert_ne!(installation_id(&d("a")), installation_id(&d("b")));
    }
}
