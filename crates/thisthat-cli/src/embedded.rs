//! The embedded default backend, assembled: SQLite and files under a data directory, pushes to
//! an outbox file, labels from the image model (EfficientNet-Lite0, run in-process).

use std::{net::SocketAddr, path::Path, sync::Arc};

use thisthat_core::ports::Classifier;
use thisthat_core::{Backend, Clock, Registry, SystemClock, Thisthat};
use thisthat_local::{FileBlobStore, ModelClassifier, OutboxNotifier, SqliteDatabase};
use thisthat_server::{AppState, Auth, BlobServer};

/// The two secrets of a local server, created on first start and kept in the data directory.
pub struct Secrets {
    /// Signs and verifies the HS256 bearer tokens of local users.
    pub jwt: Vec<u8>,
    /// Signs the file store's upload and download URLs.
    pub urls: Vec<u8>,
}

impl Secrets {
    /// Reads `jwt.key` and `url.key` from `dir`, creating them (32 random bytes each, readable
    /// by the owner only) if missing.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Secrets> {
        // The data directory holds the secrets, the database and device tokens: owner only.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(Secrets {
            jwt: secret(&dir.join("jwt.key"))?,
            urls: secret(&dir.join("url.key"))?,
        })
    }

    /// Reads the token secret of an existing data directory, for `thisthat token`: creating one
    /// there would only print tokens the running server rejects.
    pub fn jwt_of(dir: &Path) -> std::io::Result<Vec<u8>> {
        let path = dir.join("jwt.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
            Ok(_) => Err(std::io::Error::other(format!(
                "{} is shorter than 32 bytes",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(std::io::Error::other(format!(
                "{} does not exist: pass the --data-dir of a server that has started once",
                path.display()
            ))),
            Err(e) => Err(e),
        }
    }
}

fn secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(bytes),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is shorter than 32 bytes; delete it to make a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(format!("no randomness for a new secret: {e}")))?;
    // Written whole under a temporary name, then linked into place: a process starting at the
    // same moment sees either no key or the whole key, and the one that loses the race reads
    // the winner's.
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp)?;
    std::io::Write::write_all(&mut file, &bytes)?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

/// Adapters to use instead of the embedded ones, by URL (`sqlite:///…`, `outbox:///…`,
/// `model:`, `pixels:`, `memory://`, and each cloud adapter's schemes once their crates are in).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Blob storage instead of files under the data directory.
    #[arg(long, env = "THISTHAT_STORAGE")]
    pub storage: Option<String>,
    /// Database instead of SQLite in the data directory.
    #[arg(long, env = "THISTHAT_DATABASE")]
    pub database: Option<String>,
    /// Notifier instead of the outbox file.
    #[arg(long, env = "THISTHAT_NOTIFIER")]
    pub notifier: Option<String>,
    /// Classifier instead of the image model (`pixels:` labels shape and colours only).
    #[arg(long, env = "THISTHAT_CLASSIFIER")]
    pub classifier: Option<String>,
    /// The address clients reach this server at, for the photo upload and download URLs it
    /// signs (default: the listen address). Set it behind a proxy or when listening on 0.0.0.0.
    #[arg(long, env = "THISTHAT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Verify bearer tokens against this identity provider's JWKS instead of the local
    /// secret (Cognito, Firebase Auth, Entra ID); needs `--jwt-issuer`.
    #[arg(long, env = "THISTHAT_JWKS_URL", requires = "jwt_issuer")]
    pub jwks_url: Option<String>,
    /// The `iss` the identity provider's tokens carry.
    #[arg(long, env = "THISTHAT_JWT_ISSUER", requires = "jwks_url")]
    pub jwt_issuer: Option<String>,
    /// The `aud` the identity provider's tokens carry, if any.
    #[arg(long, env = "THISTHAT_JWT_AUDIENCE", requires = "jwks_url")]
    pub jwt_audience: Option<String>,
    /// With production auth (`--jwks-url`), serve even though the classifier cannot screen
    /// content (the embedded ones cannot): every photo that decodes is shown to voters.
    #[arg(long, env = "THISTHAT_ALLOW_UNSCREENED")]
    pub allow_unscreened: bool,
}

/// Every adapter this build of the command can open by URL: the embedded ones, in memory, and
/// each cloud provider compiled in by cargo feature.
pub fn registry() -> Registry {
    thisthat::registry()
}

/// The embedded backend and the API state over it.
pub struct Embedded {
    /// The outbox pushes are written to, unless another notifier was chosen.
    pub outbox: Option<Arc<OutboxNotifier>>,
    /// The secrets.
    pub secrets: Secrets,
    /// Counts every port call (`serve --metrics-addr`, `--usage-out`).
    pub meter: thisthat_core::layers::Meter,
    state: AppState,
}

impl Embedded {
    /// Opens (creating if needed) the embedded backend under `data_dir`, with signed URLs
    /// pointing at the server on `addr`.
    pub async fn open(
        data_dir: &Path,
        addr: SocketAddr,
        overrides: &Overrides,
    ) -> Result<Embedded, Box<dyn std::error::Error + Send + Sync>> {
        let secrets = Secrets::load_or_create(data_dir)?;
        // Each port is an embedded adapter unless an override names another one; an overridden
        // port opens nothing of its embedded adapter (no SQLite file, no outbox).
        let registry = registry();
        let (blobs, blob_server): (Arc<dyn thisthat_core::ports::BlobStore>, _) = match &overrides.storage {
            Some(url) => (registry.blob_store(url).await?, None),
            None => {
                let base = match &overrides.public_url {
                    Some(public) => format!("{}/blobs/", public.trim_end_matches('/')),
                    None => format!("http://{addr}/blobs/"),
                };
                let files = Arc::new(FileBlobStore::open(
                    data_dir.join("blobs"),
                    &base,
                    secrets.urls.clone(),
                )?);
                (
                    files.clone(),
                    Some(BlobServer {
                        store: files.clone(),
                        signer: files.signer().clone(),
                    }),
                )
            }
        };
        let database: Arc<dyn thisthat_core::ports::Database> = match &overrides.database {
            Some(url) => registry.database(url).await?,
            None => Arc::new(SqliteDatabase::open(&data_dir.join("thisthat.db"))?),
        };
        let (notifier, outbox): (Arc<dyn thisthat_core::ports::Notifier>, _) = match &overrides.notifier {
            Some(url) => (registry.notifier(url).await?, None),
            None => {
                let outbox = Arc::new(OutboxNotifier::open(data_dir.join("outbox"))?);
                (outbox.clone(), Some(outbox))
            }
        };
        // `ModelClassifier::new` returns at once and loads the model (most of a start-up) in the
        // background: the server listens and answers at once, and a creation that arrives
        // before the model is ready waits for it.
        let classifier: Arc<dyn Classifier> = match &overrides.classifier {
            Some(url) => registry.classifier(url).await?,
            None => Arc::new(ModelClassifier::new()?),
        };
        let backend = Backend {
            blobs,
            database,
            notifier,
            classifier,
        };
        // Production auth means a public deployment: it fails closed without screening.
        if overrides.jwks_url.is_some() {
            backend.require_screening(overrides.allow_unscreened)?;
        }
        // The meter innermost: it counts every attempt, as providers bill them.
        let meter = thisthat_core::layers::Meter::new();
        let backend = backend.layer(meter.clone()).with_standard_layers();
        let service = Thisthat::builder(backend).build()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = AppState {
            service,
            auth: match (&overrides.jwks_url, &overrides.jwt_issuer) {
                (Some(url), Some(issuer)) => thisthat_server::Auth::jwks(thisthat_server::JwksConfig {
                    url: url.clone(),
                    issuer: issuer.clone(),
                    audience: overrides.jwt_audience.clone(),
                })?,
                _ => Auth::hs256(&secrets.jwt),
            },
            blobs: blob_server,
            clock,
        };
        Ok(Embedded {
            outbox,
            secrets,
            meter,
            state,
        })
    }

    /// The API over this backend.
    pub fn router(&self) -> thisthat_server::Router {
        thisthat_server::router(self.state.clone())
    }

    /// The service every request runs on (the maintenance pass runs on it too).
    pub fn service(&self) -> &thisthat_core::Thisthat {
        &self.state.service
    }
}
