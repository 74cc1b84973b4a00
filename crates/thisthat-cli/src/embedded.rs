//! The embedded default backend, assembled: SQLite and files under a data directory, pushes to
//! an outbox file, labels from the image model (EfficientNet-Lite0, run in-process).

use std::{net::SocketAddr, path::Path, sync::Arc};

use thisthat_core::ports::Classifier;
use thisthat_core::{Backend, Clock, Registry, SystemClock, Thisthat};
use thisthat_local::{FileBlobStore, OutboxNotifier, SqliteDatabase};
use thisthat_server::{AppState, Auth, BlobServer};

use crate::config::{Config, ConfigError, pick};

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
/// `model:`, `pixels:`, `memory://`, and each cloud adapter's schemes once their crates are in),
/// and the service's settings. Each flag (or its variable) overrides the configuration file's
/// key named in its help; [`Overrides::resolve`] merges them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Blob storage instead of files under the data directory [file: backend.storage].
    #[arg(long, env = "THISTHAT_STORAGE")]
    pub storage: Option<String>,
    /// Database instead of SQLite in the data directory [file: backend.database].
    #[arg(long, env = "THISTHAT_DATABASE")]
    pub database: Option<String>,
    /// Notifier instead of the outbox file [file: backend.notifier].
    #[arg(long, env = "THISTHAT_NOTIFIER")]
    pub notifier: Option<String>,
    /// Classifier instead of the image model (`pixels:` labels shape and colours only)
    /// [file: backend.classifier].
    #[arg(long, env = "THISTHAT_CLASSIFIER")]
    pub classifier: Option<String>,
    /// The address clients reach this server at, for the photo upload and download URLs it
    /// signs (default: the listen address). Set it behind a proxy or when listening on 0.0.0.0
    /// [file: server.public_url].
    #[arg(long, env = "THISTHAT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Verify bearer tokens against this identity provider's JWKS instead of the local
    /// secret (Cognito, Firebase Auth, Entra ID); needs `--jwt-issuer` [file: auth.jwks_url].
    #[arg(long, env = "THISTHAT_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// The `iss` the identity provider's tokens carry [file: auth.issuer].
    #[arg(long, env = "THISTHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` the identity provider's tokens carry, if any [file: auth.audience].
    #[arg(long, env = "THISTHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// With production auth (`--jwks-url`), serve even though the classifier cannot screen
    /// content (the embedded ones cannot): every photo that decodes is shown to voters.
    /// `--allow-unscreened=false` turns off a file's `true` [file: auth.allow_unscreened].
    #[arg(
        long,
        env = "THISTHAT_ALLOW_UNSCREENED",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub allow_unscreened: Option<bool>,
    /// When the owner's result push is sent: by the closing vote's request (`inline`), or only
    /// by the maintenance pass (`deferred`) [default: inline] [file: service.delivery].
    #[arg(long, env = "THISTHAT_DELIVERY", value_enum)]
    pub delivery: Option<crate::config::Delivery>,
}

/// Everything [`Embedded::open`] needs, from flags, variables, the file and the defaults
/// (`Default`: the embedded backend, local auth, the default rules, as `thisthat demo` runs).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Each port's URL, or `None` for the embedded adapter.
    pub storage: Option<String>,
    /// See [`Settings::storage`].
    pub database: Option<String>,
    /// See [`Settings::storage`].
    pub notifier: Option<String>,
    /// See [`Settings::storage`].
    pub classifier: Option<String>,
    /// See [`Overrides::public_url`].
    pub public_url: Option<String>,
    /// Production auth, or `None` for the local secret.
    pub jwks: Option<thisthat_server::JwksConfig>,
    /// See [`Overrides::allow_unscreened`].
    pub allow_unscreened: bool,
    /// The service's rules.
    pub rules: thisthat_core::Rules,
    /// When result pushes are sent.
    pub delivery: thisthat_core::DeliveryMode,
}

impl Overrides {
    /// These flags over `file`'s settings (`origin` names the file in errors).
    pub fn resolve(&self, file: &Config, origin: &str) -> Result<Settings, ConfigError> {
        let jwks_url = pick(&self.jwks_url, &file.auth.jwks_url);
        let issuer = pick(&self.jwt_issuer, &file.auth.issuer);
        let audience = pick(&self.jwt_audience, &file.auth.audience);
        let jwks = match (jwks_url, issuer) {
            (Some(url), Some(issuer)) => Some(thisthat_server::JwksConfig { url, issuer, audience }),
            (None, None) if audience.is_none() => None,
            (None, _) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    key: "auth.jwks_url".into(),
                    message: "is missing: auth.issuer or auth.audience (--jwt-issuer, --jwt-audience) only \
                              make sense with the identity provider's JWKS URL (--jwks-url, THISTHAT_JWKS_URL)"
                        .into(),
                });
            }
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    key: "auth.issuer".into(),
                    message: "is missing: with a JWKS URL, set the `iss` its tokens carry (--jwt-issuer, \
                              THISTHAT_JWT_ISSUER)"
                        .into(),
                });
            }
        };
        Ok(Settings {
            storage: pick(&self.storage, &file.backend.storage),
            database: pick(&self.database, &file.backend.database),
            notifier: pick(&self.notifier, &file.backend.notifier),
            classifier: pick(&self.classifier, &file.backend.classifier),
            public_url: pick(&self.public_url, &file.server.public_url),
            jwks,
            allow_unscreened: self.allow_unscreened.unwrap_or(file.auth.allow_unscreened),
            rules: file.rules.to_rules(origin)?,
            delivery: self.delivery.unwrap_or(file.service.delivery).into(),
        })
    }
}

/// Every adapter this build of the command can open by URL: the embedded ones, in memory, and
/// each cloud provider compiled in by cargo feature.
pub fn registry() -> Registry {
    thisthat::registry()
}

/// The embedded default's classifier: the image model.
///
/// `ModelClassifier::new` returns at once and loads the model (most of a start-up) in the
/// background: the server listens and answers at once, and a creation that arrives before the
/// model is ready waits for it.
#[cfg(feature = "model")]
fn embedded_classifier() -> thisthat_core::Result<Arc<dyn Classifier>> {
    Ok(Arc::new(thisthat_local::ModelClassifier::new()?))
}

/// The embedded default's classifier in a build without the image model (the `model`
/// feature): photos are classified by their colours.
#[cfg(not(feature = "model"))]
fn embedded_classifier() -> thisthat_core::Result<Arc<dyn Classifier>> {
    tracing::warn!(
        "this build has no image model (the `model` cargo feature): the embedded default classifies photos by their colours (pixels:)"
    );
    Ok(Arc::new(thisthat_local::PixelClassifier::new()))
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
        overrides: &Settings,
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
        let classifier: Arc<dyn Classifier> = match &overrides.classifier {
            Some(url) => registry.classifier(url).await?,
            None => embedded_classifier()?,
        };
        let backend = Backend {
            blobs,
            database,
            notifier,
            classifier,
        };
        // Production auth means a public deployment: it fails closed without screening.
        if overrides.jwks.is_some() {
            backend.require_screening(overrides.allow_unscreened)?;
        }
        // The meter innermost: it counts every attempt, as providers bill them.
        let meter = thisthat_core::layers::Meter::new();
        let backend = backend.layer(meter.clone()).with_standard_layers();
        let service = Thisthat::builder(backend)
            .rules(overrides.rules.clone())
            .delivery(overrides.delivery)
            .build()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let state = AppState {
            service,
            auth: match &overrides.jwks {
                Some(jwks) => Auth::jwks(jwks.clone())?,
                None => Auth::hs256(&secrets.jwt),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Config {
        Config::parse(text, "t.toml").expect("parse")
    }

    #[test]
    fn a_flag_or_variable_wins_over_the_file_and_the_file_over_the_defaults() {
        let config = file(
            "[backend]\nstorage = \"memory://\"\ndatabase = \"sqlite::memory:\"\n\
             [service]\ndelivery = \"deferred\"\n[auth]\nallow_unscreened = true\n[rules]\nvotes_to_close = 5\n",
        );
        let given = Overrides {
            storage: Some("s3://given".into()),
            allow_unscreened: Some(false),
            delivery: Some(crate::config::Delivery::Inline),
            ..Overrides::default()
        };
        let settings = given.resolve(&config, "t.toml").expect("resolve");
        assert_eq!(settings.storage.as_deref(), Some("s3://given"));
        assert_eq!(settings.database.as_deref(), Some("sqlite::memory:"), "from the file");
        assert_eq!(settings.notifier, None, "the embedded default");
        assert!(!settings.allow_unscreened);
        assert_eq!(settings.delivery, thisthat_core::DeliveryMode::Inline);
        assert_eq!(settings.rules.votes_to_close, 5);
        let settings = Overrides::default().resolve(&config, "t.toml").expect("resolve");
        assert_eq!(settings.storage.as_deref(), Some("memory://"));
        assert!(settings.allow_unscreened);
        assert_eq!(settings.delivery, thisthat_core::DeliveryMode::Deferred);
        let settings = Overrides::default()
            .resolve(&Config::default(), "the configuration")
            .expect("resolve");
        assert_eq!(settings.storage, None);
        assert_eq!(settings.delivery, thisthat_core::DeliveryMode::Inline);
        assert_eq!(settings.rules, thisthat_core::Rules::default());
    }

    #[test]
    fn jwks_settings_combine_across_flags_and_file_and_half_of_them_is_refused() {
        let config = file("[auth]\njwks_url = \"https://idp.example.invalid/jwks.json\"\n");
        let given = Overrides {
            jwt_issuer: Some("https://idp.example.invalid/".into()),
            ..Overrides::default()
        };
        let jwks = given.resolve(&config, "t.toml").expect("resolve").jwks.expect("jwks");
        assert_eq!(jwks.url, "https://idp.example.invalid/jwks.json");
        assert_eq!(jwks.issuer, "https://idp.example.invalid/");
        let error = Overrides::default()
            .resolve(&config, "t.toml")
            .expect_err("no issuer")
            .to_string();
        assert!(
            error.starts_with("t.toml: auth.issuer is missing") && error.contains("--jwt-issuer"),
            "{error}"
        );
        let error = given
            .resolve(&Config::default(), "t.toml")
            .expect_err("no url")
            .to_string();
        assert!(
            error.contains("auth.jwks_url is missing") && error.contains("--jwks-url"),
            "{error}"
        );
    }
}
