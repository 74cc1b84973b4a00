//! The notifier port on a developer's machine: pushes go to a file instead of a phone.

use std::{
    collections::BTreeMap,
    io::{BufRead, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thisthat_core::{
    Clock, CompetitionId, Device, Endpoint, Error, Platform, PushMessage, Result, SystemClock, UserId,
    ports::{Delivery, Notifier},
};

/// The file of registered devices, under the notifier's directory.
const ENDPOINTS_FILE: &str = "endpoints.json";
/// The file every push is appended to, one JSON object per line.
const OUTBOX_FILE: &str = "outbox.jsonl";

fn io_error(e: std::io::Error) -> Error {
    Error::backend("outbox", e)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::backend("outbox", e)
}

/// One push as written to `outbox.jsonl`: one JSON object per line.
///
/// ```json
/// {"time":1767225600000,"endpoint":"outbox:fcm:abc","user":"alice","platform":"fcm","title":"Results are in","body":"Photo 2 won","competition":"01J...","idempotency_key":"thisthat-result-01J..."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// When it was sent (serialised as Unix milliseconds).
    #[serde(with = "thisthat_core::model::unix_ms")]
    pub time: SystemTime,
    /// The endpoint's address (`outbox:{platform}:{token}`).
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
///   the address `outbox:{platform}:{token}`; [`Notifier::unregister`] removes it.
/// - [`Notifier::send`] answers [`Delivery::Gone`] for a device that is not registered or was
///   [revoked](OutboxNotifier::revoke), as a provider does for an uninstalled app.
/// - [`OutboxNotifier::read_outbox`] reads back what was sent.
///
/// Writes are serialised by one mutex, so concurrent sends in one process never interleave:
/// each push is one `write_all` of a whole line, flushed. One process per directory: two
/// processes registering devices in the same directory can lose each other's registrations.
///
/// Not yet done: forwarding each push to a webhook (for a developer who wants to see it on a
/// real device through their own relay).
#[derive(Debug, Clone)]
pub struct OutboxNotifier {
    inner: Arc<Inner>,
    clock: Arc<dyn Clock>,
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
        })
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

    /// The address a device gets: `outbox:{platform}:{token}`.
    pub fn address(device: &Device) -> String {
        format!("outbox:{}:{}", device.platform.as_str(), device.token)
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

/// Appends one line to `outbox.jsonl`: one `write_all` of the whole line, then a flush.
fn append(path: &Path, entry: &OutboxEntry) -> Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(json_error)?;
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
        self.blocking(move |inner| {
            // Held while appending, so that a concurrent revoke or unregister is either
            // before the send (Gone) or after it, and lines never interleave.
            let registered = inner.lock();
            if registered.get(&entry.endpoint).is_none_or(|r| r.revoked) {
                tracing::info!(endpoint = %entry.endpoint, competition = %entry.competition, "outbox: device gone, push not sent");
                return Ok(Delivery::Gone);
            }
            append(&inner.dir.join(OUTBOX_FILE), &entry)?;
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
        .await
    }
}
