//! `thisthat.toml`: one file that configures `serve`, `lambda`, `deliver`, `sweep`, `cost` and
//! `token`, named by `--config` or `THISTHAT_CONFIG` (no file is looked for otherwise).
//!
//! Every setting is taken from, in this order, the first that has it: a flag, its environment
//! variable, the file, the built-in default. The file's keys, their defaults and which flag
//! and variable override each are in `thisthat.example.toml` at the repository root and in
//! `docs/configuration.md`.
//!
//! The types live here, in the command, rather than in the `thisthat` facade: most of the
//! file is about running this binary (where it listens, its data directory, auth, metrics,
//! the maintenance interval), which a library user building their own server decides in their
//! own code, and the facade would otherwise gain the TOML parser and `thisthat-server` for
//! every user. What a library user does need is already there: [`Rules`] and
//! [`DeliveryMode`] for `Thisthat::builder`, and `thisthat::registry()` for the URLs.
//!
//! Durations are whole seconds (`notification_lease = 60`), the one unit every duration here
//! is naturally counted in; a string such as `"90s"` is refused with the key named.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use thisthat_core::{DeliveryMode, Rules};

/// Where the keys of the file are described, for error messages.
const DESCRIBED: &str = "every key is described in thisthat.example.toml and docs/configuration.md";

/// A configuration file that cannot be used: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}; fix --config or THISTHAT_CONFIG")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, has an unknown key, or a value of the wrong type.
    #[error("{origin}: {key}: {message}{at}; fix or remove it ({DESCRIBED})")]
    Refused {
        /// The file.
        origin: String,
        /// The key path, such as `rules.votes_to_close`, or `(the file)` for a syntax error.
        key: String,
        /// What is wrong.
        message: String,
        /// ` (line N)` when the parser knows where.
        at: String,
    },
    /// Settings that parse but do not make sense (alone or together).
    #[error("{origin}: {key} {message}")]
    Invalid {
        /// The file, or `the configuration` when flags or variables are to blame.
        origin: String,
        /// The key path.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The whole file. Every section and key may be left out; see each for its default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[backend]`: the four adapters by URL.
    pub backend: BackendSection,
    /// `[rules]`: the domain's numbers ([`Rules`]).
    pub rules: RulesSection,
    /// `[service]`: how the service runs.
    pub service: ServiceSection,
    /// `[maintenance]`: the background maintenance of `serve`.
    pub maintenance: MaintenanceSection,
    /// `[auth]`: how `serve` verifies bearer tokens.
    pub auth: AuthSection,
    /// `[server]`: where `serve` listens and keeps its state.
    pub server: ServerSection,
    /// `[metrics]`: the meter's outputs.
    pub metrics: MetricsSection,
    /// `[cost]`: what `thisthat cost` prices with.
    pub cost: CostSection,
}

/// `[backend]`: each port's adapter by URL (`s3://…`, `firestore://…`, `sqlite:///…`, …).
/// Left out, `serve`, `deliver` and `sweep` use the embedded adapter under the data
/// directory; `lambda` needs all four.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSection {
    /// Blob storage (`--storage`, `THISTHAT_STORAGE`).
    pub storage: Option<String>,
    /// Database (`--database`, `THISTHAT_DATABASE`).
    pub database: Option<String>,
    /// Notifier (`--notifier`, `THISTHAT_NOTIFIER`).
    pub notifier: Option<String>,
    /// Classifier (`--classifier`, `THISTHAT_CLASSIFIER`).
    pub classifier: Option<String>,
}

/// `[rules]`: every field of [`Rules`], with its default; durations in whole seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesSection {
    /// [`Rules::photos_per_competition`].
    pub photos_per_competition: usize,
    /// [`Rules::votes_to_close`].
    pub votes_to_close: u32,
    /// [`Rules::max_photo_bytes`].
    pub max_photo_bytes: u64,
    /// [`Rules::category_confidence`].
    pub category_confidence: f32,
    /// [`Rules::unsafe_confidence`].
    pub unsafe_confidence: f32,
    /// [`Rules::max_title_chars`].
    pub max_title_chars: usize,
    /// [`Rules::upload_url_ttl`], in seconds.
    pub upload_url_ttl: u64,
    /// [`Rules::download_url_ttl`], in seconds.
    pub download_url_ttl: u64,
    /// [`Rules::notification_lease`], in seconds.
    pub notification_lease: u64,
    /// [`Rules::orphan_grace`], in seconds.
    pub orphan_grace: u64,
    /// [`Rules::max_photo_pixels`].
    pub max_photo_pixels: u64,
    /// [`Rules::max_decode_bytes`].
    pub max_decode_bytes: u64,
    /// [`Rules::display_max_side`].
    pub display_max_side: u32,
    /// [`Rules::keep_originals`].
    pub keep_originals: bool,
}

impl Default for RulesSection {
    /// [`Rules::default`], so the file's defaults are the contract's by construction.
    fn default() -> Self {
        let r = Rules::default();
        RulesSection {
            photos_per_competition: r.photos_per_competition,
            votes_to_close: r.votes_to_close,
            max_photo_bytes: r.max_photo_bytes,
            category_confidence: r.category_confidence,
            unsafe_confidence: r.unsafe_confidence,
            max_title_chars: r.max_title_chars,
            upload_url_ttl: r.upload_url_ttl.as_secs(),
            download_url_ttl: r.download_url_ttl.as_secs(),
            notification_lease: r.notification_lease.as_secs(),
            orphan_grace: r.orphan_grace.as_secs(),
            max_photo_pixels: r.max_photo_pixels,
            max_decode_bytes: r.max_decode_bytes,
            display_max_side: r.display_max_side,
            keep_originals: r.keep_originals,
        }
    }
}

impl RulesSection {
    /// The rules these keys describe, checked by [`Rules::validate`]; a refusal names the key.
    pub fn to_rules(&self, origin: &str) -> Result<Rules, ConfigError> {
        // A struct literal with every field: a field added to Rules does not compile here
        // until the file has its key.
        let rules = Rules {
            photos_per_competition: self.photos_per_competition,
            votes_to_close: self.votes_to_close,
            max_photo_bytes: self.max_photo_bytes,
            category_confidence: self.category_confidence,
            unsafe_confidence: self.unsafe_confidence,
            max_title_chars: self.max_title_chars,
            upload_url_ttl: Duration::from_secs(self.upload_url_ttl),
            download_url_ttl: Duration::from_secs(self.download_url_ttl),
            notification_lease: Duration::from_secs(self.notification_lease),
            orphan_grace: Duration::from_secs(self.orphan_grace),
            max_photo_pixels: self.max_photo_pixels,
            max_decode_bytes: self.max_decode_bytes,
            display_max_side: self.display_max_side,
            keep_originals: self.keep_originals,
        };
        rules.validate().map_err(|e| {
            // Every reason Rules::validate gives starts with the field's name.
            let reason = match &e {
                thisthat_core::Error::Config { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            let (field, rest) = reason.split_once(' ').unwrap_or((reason.as_str(), ""));
            ConfigError::Invalid {
                origin: origin.to_owned(),
                key: format!("rules.{field}"),
                message: format!("{rest}: fix it, or remove the key for its default"),
            }
        })?;
        Ok(rules)
    }
}

/// When the owner's result push is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// The closing vote's request delivers it (what fails is left for maintenance).
    #[default]
    Inline,
    /// Only the maintenance pass delivers.
    Deferred,
}

impl From<Delivery> for DeliveryMode {
    fn from(delivery: Delivery) -> Self {
        match delivery {
            Delivery::Inline => DeliveryMode::Inline,
            Delivery::Deferred => DeliveryMode::Deferred,
        }
    }
}

/// `[service]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSection {
    /// `inline` (default) or `deferred` (`--delivery`, `THISTHAT_DELIVERY`).
    pub delivery: Delivery,
}

/// `[maintenance]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Seconds between `serve`'s background passes, 0 for none; default 60
    /// (`--maintenance-interval`, `THISTHAT_MAINTENANCE_INTERVAL`).
    pub interval: u64,
}

impl Default for MaintenanceSection {
    fn default() -> Self {
        MaintenanceSection { interval: 60 }
    }
}

/// `[auth]`: without `jwks_url`, `serve` verifies HS256 tokens signed with the data
/// directory's `jwt.key` (`thisthat token`); with it, the identity provider's. `lambda`
/// ignores this section: API Gateway's JWT authorizer verifies its callers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// The identity provider's JWKS URL (`--jwks-url`, `THISTHAT_JWKS_URL`); needs `issuer`.
    pub jwks_url: Option<String>,
    /// The `iss` its tokens carry (`--jwt-issuer`, `THISTHAT_JWT_ISSUER`).
    pub issuer: Option<String>,
    /// The `aud` its tokens carry, if any (`--jwt-audience`, `THISTHAT_JWT_AUDIENCE`).
    pub audience: Option<String>,
    /// Serve publicly although the classifier cannot screen content
    /// (`--allow-unscreened`, `THISTHAT_ALLOW_UNSCREENED`). Default false.
    pub allow_unscreened: bool,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Where `serve` listens (`--addr`, `THISTHAT_ADDR`, then `PORT`); default 127.0.0.1:8080.
    pub addr: Option<SocketAddr>,
    /// Where the embedded database, photos, outbox and secrets live (`--data-dir`,
    /// `THISTHAT_DATA_DIR`). Default `thisthat-data`, relative to the working directory.
    pub data_dir: PathBuf,
    /// The address clients reach the server at, for the URLs it signs (`--public-url`,
    /// `THISTHAT_PUBLIC_URL`); default the listen address.
    pub public_url: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            addr: None,
            data_dir: PathBuf::from("thisthat-data"),
            public_url: None,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve Prometheus text at `GET /metrics` here (`--metrics-addr`,
    /// `THISTHAT_METRICS_ADDR`); off by default.
    pub addr: Option<SocketAddr>,
    /// Write the usage snapshot here when `serve` stops (`--usage-out`, `THISTHAT_USAGE_OUT`).
    pub usage_out: Option<PathBuf>,
}

/// `[cost]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostSection {
    /// `seed` (default) or a scenario TOML file (`--scenario`).
    pub scenario: String,
    /// A directory of newer price tables (`--prices`); default the built-in ones.
    pub prices: Option<PathBuf>,
}

impl Default for CostSection {
    fn default() -> Self {
        CostSection {
            scenario: "seed".into(),
            prices: None,
        }
    }
}

impl Config {
    /// Reads the file at `path`, or the defaults with no path.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses a file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let refused = |key: String, e: toml::de::Error| {
            let at = e
                .span()
                .map(|span| {
                    let line = text
                        .get(..span.start)
                        .map_or(1, |before| before.matches('\n').count() + 1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            ConfigError::Refused {
                origin: origin.to_owned(),
                key,
                message: e.message().to_owned(),
                at,
            }
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| refused("(the file)".into(), e))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            refused(key, e.into_inner())
        })?;
        config.rules.to_rules(origin)?;
        Ok(config)
    }
}

/// A flag or variable given (`Some`) wins over the file's value.
pub fn pick<T: Clone>(given: &Option<T>, file: &Option<T>) -> Option<T> {
    given.clone().or_else(|| file.clone())
}

/// `--config` (or `THISTHAT_CONFIG`), read.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigFlag {
    /// Read settings from this TOML file (see thisthat.example.toml); flags and variables
    /// override it.
    #[arg(long = "config", env = "THISTHAT_CONFIG", global = true, value_name = "FILE")]
    pub path: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../thisthat.example.toml");

    /// The example with every `# key = value` line (a key at its default) uncommented.
    fn example_with_defaults() -> String {
        uncomment(EXAMPLE, "# ")
    }

    /// The example with every `# e.g. key = value` line (a key with no default) uncommented.
    fn example_with_examples() -> String {
        uncomment(EXAMPLE, "# e.g. ")
    }

    fn uncomment(text: &str, marker: &str) -> String {
        text.lines()
            .map(|line| match line.strip_prefix(marker) {
                Some(rest) if is_assignment(rest) => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_assignment(text: &str) -> bool {
        text.split_once(" = ")
            .is_some_and(|(key, _)| !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    }

    #[test]
    fn the_example_file_documents_the_defaults_and_parses_with_every_key() {
        assert_eq!(
            Config::parse(EXAMPLE, "example").expect("the example parses as shipped"),
            Config::default()
        );
        let defaults = example_with_defaults();
        assert_ne!(defaults, EXAMPLE, "the example shows defaults as `# key = value`");
        let parsed = Config::parse(&defaults, "example with its defaults").expect("defaults parse");
        assert_eq!(
            parsed,
            Config::default(),
            "a default in the example is not the real one"
        );
        assert_eq!(parsed.rules.to_rules("example").expect("rules"), Rules::default());
        let examples = Config::parse(&example_with_examples(), "example with its examples").expect("examples parse");
        assert_ne!(examples, Config::default(), "the examples set something");
    }

    /// Every key of [`Config`] is in the example, as a default or as an example, under its
    /// section, so a key added to the code and not to the file fails here.
    #[test]
    fn the_example_file_names_every_key() {
        let all = serde_json::to_value(Config::default()).expect("json");
        let mut missing = Vec::new();
        let mut section = String::new();
        let mut shown = std::collections::BTreeSet::new();
        for line in EXAMPLE.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            }
            let rest = line
                .strip_prefix("# e.g. ")
                .or_else(|| line.strip_prefix("# "))
                .unwrap_or("");
            if is_assignment(rest) {
                let key = rest.split_once(" = ").map(|(k, _)| k).unwrap_or_default();
                shown.insert(format!("{section}.{key}"));
            }
        }
        for (section, keys) in all.as_object().expect("object") {
            for key in keys.as_object().expect("section").keys() {
                let path = format!("{section}.{key}");
                if !shown.contains(&path) {
                    missing.push(path);
                }
            }
        }
        assert!(missing.is_empty(), "not in thisthat.example.toml: {missing:?}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_path() {
        let error = Config::parse("[rules]\nvotes_to_closee = 3\n", "t.toml")
            .expect_err("an unknown key")
            .to_string();
        assert!(
            error.starts_with("t.toml: rules.votes_to_closee: unknown field"),
            "{error}"
        );
        assert!(
            error.contains("(line 2)") && error.contains("docs/configuration.md"),
            "{error}"
        );
        let error = Config::parse("[sever]\naddr = \"127.0.0.1:1\"\n", "t.toml")
            .expect_err("an unknown section")
            .to_string();
        assert!(error.contains("sever: unknown field"), "{error}");
    }

    #[test]
    fn a_bad_value_is_refused_with_its_key() {
        for (text, key, says) in [
            (
                "[rules]\nvotes_to_close = \"ten\"\n",
                "rules.votes_to_close:",
                "invalid type",
            ),
            (
                "[rules]\nnotification_lease = \"90s\"\n",
                "rules.notification_lease:",
                "invalid type",
            ),
            ("[rules]\nvotes_to_close = 0\n", "rules.votes_to_close", "at least 1"),
            (
                "[rules]\nnotification_lease = 0\n",
                "rules.notification_lease",
                "1 second to 7 days",
            ),
            (
                "[service]\ndelivery = \"later\"\n",
                "service.delivery:",
                "unknown variant",
            ),
            (
                "[server]\naddr = \"localhost\"\n",
                "server.addr:",
                "invalid socket address",
            ),
            ("[rules\n", "(the file):", ""),
        ] {
            let error = Config::parse(text, "t.toml").expect_err(text).to_string();
            assert!(
                error.starts_with(&format!("t.toml: {key}")) && error.contains(says),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn rules_are_read_in_seconds() {
        let config = Config::parse("[rules]\nnotification_lease = 2\nvotes_to_close = 3\n", "t").expect("parse");
        let rules = config.rules.to_rules("t").expect("rules");
        assert_eq!(rules.notification_lease, Duration::from_secs(2));
        assert_eq!(rules.votes_to_close, 3);
        assert_eq!(rules.photos_per_competition, Rules::default().photos_per_competition);
    }

    #[test]
    fn a_missing_file_says_which_and_what_to_do() {
        let error = Config::load(Some(Path::new("/nonexistent/thisthat.toml")))
            .expect_err("missing")
            .to_string();
        assert!(
            error.contains("/nonexistent/thisthat.toml") && error.contains("THISTHAT_CONFIG"),
            "{error}"
        );
    }
}
