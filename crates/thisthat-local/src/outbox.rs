//! The notifier port on a developer's machine: pushes go to a file instead of a phone, and
//! optionally to a webhook.

use std::{
    collections::BTreeMap,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::{
    StatusCode,
    header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER},
};
use serde::{Deserialize, Serialize};
use thisthat_core::{
    Clock, CompetitionId, Device, Endpoint, Error, Platform, PushMessage, Result, SystemClock, UserId,
    ports::{Delivery, Notifier},
};
use url::{Host, Url};

/// The file of registered devices, under the notifier's directory.
const ENDPOINTS_FILE: &str = "endpoints.json";
/// The file every push is appended to, one JSON object per line.
const OUTBOX_FILE: &str = "outbox.jsonl";
/// How long one POST to the webhook may take, connecting and reading the answer included.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a refusing webhook's answer goes into the error message, in bytes.
const WEBHOOK_EXCERPT: usize = 200;

fn io_error(e: std::io::Error) -> Error {
    Error::backend("outbox", e)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::backend("outbox", e)
}

/// One push as written to `outbox.jsonl`: one JSON object per line.
///
/// ```json
/// {"time":1767225600000,"endpoint":"outbox:alice:fcm:abc","user":"alice","platform":"fcm","title":"Results are in","body":"Photo 2 won","competition":"01J...","idempotency_key":"thisthat-result-01J..."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// When it was sent (serialised as Unix milliseconds).
    #[serde(with = "thisthat_core::model::unix_ms")]
    pub time: SystemTime,
    /// The endpoint's address (`outbox:{user}:{platform}:{token}`).
    pub endpoint: String,
    /// Whose device it went to.
    pub user: UserId,
    /// The device's push platform.
    pub platform: Platform,
    /// The push's title.
    pub title: String,
    /// The push's body.
    pub body: String,
    /// The competition it is about.
    pub competition: CompetitionId,
    /// The push's idempotency key.
    pub idempotency_key: String,
}

impl OutboxEntry {
    /// The push message this entry records.
    pub fn message(&self) -> PushMessage {
        PushMessage {
            title: self.title.clone(),
            body: self.body.clone(),
            competition: self.competition,
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

/// One registered device as kept in `endpoints.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Registration {
    address: String,
    device: Device,
    /// Made stale by [`OutboxNotifier::revoke`]: sends report [`Delivery::Gone`] until the
    /// device registers again.
    revoked: bool,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// The registered devices by address, mirroring `endpoints.json`. The mutex also
    /// serialises every write to the directory.
    registered: Mutex<BTreeMap<String, Registration>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Registration>> {
        self.registered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces `endpoints.json` atomically (a temporary file, flushed, then renamed), so a
    /// reader never sees half of it.
    fn persist(&self, registered: &BTreeMap<String, Registration>) -> Result<()> {
        let list: Vec<&Registration> = registered.values().collect();
        let mut json = serde_json::to_vec_pretty(&list).map_err(json_error)?;
        json.push(b'\n');
        let temp = self.dir.join(format!(".{ENDPOINTS_FILE}.tmp-{}", CompetitionId::new()));
        let result = (|| {
            let mut file = std::fs::File::create_new(&temp).map_err(io_error)?;
            file.write_all(&json).map_err(io_error)?;
            file.sync_data().map_err(io_error)?;
            std::fs::rename(&temp, self.dir.join(ENDPOINTS_FILE)).map_err(io_error)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Applies `change` to a copy of the registrations, persists the copy, and only then
    /// makes it current, so a failed write leaves memory and disk in agreement.
    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Registration>) -> bool) -> Result<()> {
        let mut registered = self.lock();
        let mut next = registered.clone();
        if !change(&mut next) {
            return Ok(());
        }
        self.persist(&next)?;
        *registered = next;
        Ok(())
    }
}

/// Push notifications for a developer's machine: every push is appended to `outbox.jsonl` in
/// a directory and logged with `tracing::info!`, instead of reaching a phone.
///
/// - [`Notifier::register`] records the device in `endpoints.json` in the same directory, with
///   the address `outbox:{user}:{platform}:{token}`; [`Notifier::unregister`] removes it.
/// - [`Notifier::send`] answers [`Delivery::Gone`] for a device that is not registered or was
///   [revoked](OutboxNotifier::revoke), as a provider does for an uninstalled app.
/// - [`OutboxNotifier::read_outbox`] reads back what was sent.
///
/// Writes are serialised by one mutex, so concurrent sends in one process never interleave:
/// each push is one `write_all` of a whole line, flushed. One process per directory: two
/// processes registering devices in the same directory can lose each other's registrations.
///
/// # Webhook
///
/// With [`OutboxNotifier::with_webhook`] (or `outbox:///dir?webhook=…` through
/// [`LocalOpener`](crate::LocalOpener)), every accepted push is also POSTed to a URL, for a
/// developer who wants to see it on a real device through their own relay. The request body
/// is the same JSON object as the push's line in `outbox.jsonl` (an [`OutboxEntry`]), with
/// `Content-Type: application/json` and `Idempotency-Key: {the push's idempotency key}`, and
/// the request may take 5 seconds in all. Pushes to a gone device are not posted. Redirects
/// are not followed.
///
/// - A 2xx answer: [`Delivery::Accepted`].
/// - No connection, a timeout, 429 or 5xx: [`Error::Unavailable`] (provider `webhook`, with
///   `retry_after` from a `Retry-After: {seconds}` header), so the service leaves the
///   notification pending and delivers it again later.
/// - Any other answer (4xx, 3xx): [`Error::Backend`] with the status in its message.
///
/// The line is written to `outbox.jsonl` before the POST, so a push sent again after the
/// webhook failed is written again: **the outbox file may hold a push more than once when a
/// webhook failed**, every copy with the same idempotency key. The webhook may likewise
/// receive a push more than once (an answer lost to a timeout after the relay acted on it);
/// the `Idempotency-Key` header is what lets the receiver drop the duplicates.
#[derive(Debug, Clone)]
pub struct OutboxNotifier {
    inner: Arc<Inner>,
    clock: Arc<dyn Clock>,
    webhook: Option<Arc<Webhook>>,
}

/// Where accepted pushes are also POSTed.
struct Webhook {
    url: Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    // Only the origin: the path or query of a relay's URL often carries a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("origin", &self.url.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    fn new(url: &str) -> Result<Self> {
        let url = Url::parse(url).map_err(|e| Error::Config {
            reason: format!("the outbox webhook is not a URL: {e}"),
            source: Some(Box::new(e)),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::config(format!(
                "the outbox webhook must be an http:// or https:// URL with a host, not a {}: URL",
                url.scheme()
            )));
        }
        let mut client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if is_loopback(&url) {
            // A proxy from the environment cannot reach this machine's loopback interface.
            client = client.no_proxy();
        }
        let client = client.build().map_err(|e| Error::Config {
            reason: "cannot build the outbox webhook's HTTP client".into(),
            source: Some(Box::new(e)),
        })?;
        Ok(Webhook { url, client })
    }

    /// POSTs one push's JSON and maps the answer (see [`OutboxNotifier`]'s docs).
    async fn post(&self, json: Bytes, idempotency_key: HeaderValue) -> Result<()> {
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("idempotency-key", idempotency_key)
            .body(json)
            .send()
            .await
            .map_err(|e| {
                // Without the URL, which may carry a secret, in errors and logs.
                let e = e.without_url();
                if e.is_builder() {
                    Error::backend("webhook", e)
                } else {
                    Error::unavailable("webhook", e)
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Error::Unavailable {
                provider: "webhook",
                retry_after: retry_after(response.headers()),
                source: Some(format!("the webhook answered {status}").into()),
            });
        }
        let excerpt = excerpt(response).await;
        Err(Error::Backend {
            provider: "webhook",
            message: format!("the webhook refused the push with {status}{excerpt}"),
            source: None,
        })
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// A `Retry-After` given in seconds. The HTTP-date form is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The start of a refusing webhook's answer on one line, as `": {text}"`, or nothing.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < WEBHOOK_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(WEBHOOK_EXCERPT);
    let text = String::from_utf8_lossy(&bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() { text } else { format!(": {text}") }
}

impl OutboxNotifier {
    /// A notifier writing to `dir` (created if missing), keeping the devices registered there
    /// before.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::Config {
            reason: format!("cannot create the outbox directory {}", dir.display()),
            source: Some(Box::new(e)),
        })?;
        let registered = match std::fs::read(dir.join(ENDPOINTS_FILE)) {
            Ok(bytes) => {
                let list: Vec<Registration> = serde_json::from_slice(&bytes).map_err(|e| Error::Backend {
                    provider: "outbox",
                    message: format!("{} is not a list of endpoints: {e}", dir.join(ENDPOINTS_FILE).display()),
                    source: Some(Box::new(e)),
                })?;
                list.into_iter().map(|r| (r.address.clone(), r)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(io_error(e)),
        };
        Ok(OutboxNotifier {
            inner: Arc::new(Inner {
                dir,
                registered: Mutex::new(registered),
            }),
            clock: Arc::new(SystemClock),
            webhook: None,
        })
    }

    /// Also POSTs every accepted push to `url`, an `http://` or `https://` URL; anything else
    /// is an [`Error::Config`]. What is sent and how the answer is reported is described under
    /// [Webhook](OutboxNotifier#webhook).
    pub fn with_webhook(mut self, url: &str) -> Result<Self> {
        self.webhook = Some(Arc::new(Webhook::new(url)?));
        Ok(self)
    }

    /// Uses `clock` for the time of each push.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The directory holding `endpoints.json` and `outbox.jsonl`.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file pushes are appended to.
    pub fn outbox_path(&self) -> PathBuf {
        self.inner.dir.join(OUTBOX_FILE)
    }

    /// The address a device gets: `outbox:{user}:{platform}:{token}`. The user is part of it so
    /// that one user registering or removing a token never touches another user's device.
    pub fn address(device: &Device) -> String {
        format!("outbox:{}:{}:{}", device.user, device.platform.as_str(), device.token)
    }

    /// Makes the endpoint's token stale, as when the app is uninstalled: later sends report
    /// [`Delivery::Gone`] until the device registers again. Persisted in `endpoints.json`.
    /// Revoking an unknown endpoint does nothing. Blocking (a small file write), for tests and
    /// developer tools.
    pub fn revoke(&self, endpoint: &Endpoint) -> Result<()> {
        self.inner
            .update(|registered| match registered.get_mut(&endpoint.address) {
                Some(r) if !r.revoked => {
                    r.revoked = true;
                    true
                }
                _ => false,
            })
    }

    /// Every push sent so far, oldest first. A line that is not an entry (one torn by a crash
    /// mid-write, or edited by hand) is skipped with a warning. Blocking (reads the whole
    /// file), for tests and developer tools.
    pub fn read_outbox(&self) -> Result<Vec<OutboxEntry>> {
        let path = self.outbox_path();
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(e)),
        };
        let mut entries = Vec::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(io_error)?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    tracing::warn!(path = %path.display(), line = n + 1, error = %e, "skipping a malformed outbox line")
                }
            }
        }
        Ok(entries)
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T> + Send + 'static) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::backend("outbox", e))?
    }
}

/// Appends one entry's JSON as a line to `outbox.jsonl`: one `write_all` of the whole line,
/// then a flush.
fn append(path: &Path, json: &[u8]) -> Result<()> {
    let mut line = Vec::with_capacity(json.len() + 1);
    line.extend_from_slice(json);
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error)?;
    file.write_all(&line).map_err(io_error)?;
    file.flush().map_err(io_error)
}

#[async_trait]
impl Notifier for OutboxNotifier {
    /// Exposes the adapter itself (`native::<OutboxNotifier>()`), for what the port does not offer.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }

    async fn register(&self, device: &Device) -> Result<Endpoint> {
        device.validate()?;
        let address = Self::address(device);
        let registration = Registration {
            address: address.clone(),
            device: device.clone(),
            revoked: false,
        };
        self.blocking(move |inner| {
            inner.update(|registered| {
                if registered.get(&registration.address) == Some(&registration) {
                    return false;
                }
                registered.insert(registration.address.clone(), registration);
                true
            })
        })
        .await?;
        Ok(Endpoint {
            device: device.clone(),
            address,
        })
    }

    async fn unregister(&self, endpoint: &Endpoint) -> Result<()> {
        let address = endpoint.address.clone();
        self.blocking(move |inner| inner.update(|registered| registered.remove(&address).is_some()))
            .await
    }

    async fn send(&self, endpoint: &Endpoint, message: &PushMessage) -> Result<Delivery> {
        let entry = OutboxEntry {
            time: self.clock.now(),
            endpoint: endpoint.address.clone(),
            user: endpoint.device.user.clone(),
            platform: endpoint.device.platform,
            title: message.title.clone(),
            body: message.body.clone(),
            competition: message.competition,
            idempotency_key: message.idempotency_key.clone(),
        };
        // Checked before anything is written: a push that cannot go to the webhook is not
        // written to the outbox either.
        let idempotency_key = match &self.webhook {
            Some(_) => Some(HeaderValue::from_str(&entry.idempotency_key).map_err(|_| {
                Error::invalid(
                    "idempotency_key",
                    "must be printable ASCII to go in the webhook's Idempotency-Key header",
                )
            })?),
            None => None,
        };
        // The same bytes go into the outbox line and the webhook's request body.
        let json = Bytes::from(serde_json::to_vec(&entry).map_err(json_error)?);
        let line = json.clone();
        let logged = entry.clone();
        let delivery = self
            .blocking(move |inner| {
                // Held while appending, so that a concurrent revoke or unregister is either
                // before the send (Gone) or after it, and lines never interleave.
                let registered = inner.lock();
                if registered.get(&entry.endpoint).is_none_or(|r| r.revoked) {
                    tracing::info!(endpoint = %entry.endpoint, competition = %entry.competition, "outbox: device gone, push not sent");
                    return Ok(Delivery::Gone);
                }
                append(&inner.dir.join(OUTBOX_FILE), &line)?;
                drop(registered);
            tracing::info!(
                endpoint = %entry.endpoint,
                user = %entry.user,
                competition = %entry.competition,
                idempotency_key = %entry.idempotency_key,
                title = %entry.title,
                body = %entry.body,
                "outbox: push sent"
            );
            Ok(Delivery::Accepted)
        })
        .await?;
        let (Delivery::Accepted, Some(webhook), Some(idempotency_key)) = (delivery, &self.webhook, idempotency_key)
        else {
            return Ok(delivery);
        };
        match webhook.post(json, idempotency_key).await {
            Ok(()) => {
                tracing::info!(endpoint = %logged.endpoint, idempotency_key = %logged.idempotency_key, "outbox: push posted to the webhook");
                Ok(Delivery::Accepted)
            }
            Err(e) => {
                tracing::warn!(
                    endpoint = %logged.endpoint,
                    idempotency_key = %logged.idempotency_key,
                    error = %e,
                    retryable = e.is_retryable(),
                    "outbox: the webhook did not take the push (it is in outbox.jsonl)"
                );
                Err(e)
            }
        }
    }
}
