//! The embedded default backend of thisthat: everything on one machine, no cloud account.
//!
//! - [`SqliteDatabase`]: competitions, votes, devices and the notification outbox in one SQLite
//!   file (WAL). A vote is one savepoint of the writer's group-commit transaction (a lone vote,
//!   its own transaction); the schema itself refuses a second vote and a tally
//!   past the threshold.
//! - [`FileBlobStore`]: photos as files under a directory, written atomically, with signed
//!   URLs for the embedded HTTP server to verify.
//! - [`OutboxNotifier`]: pushes appended to `outbox.jsonl` in a directory (and logged), for a
//!   developer's machine; registered devices in `endpoints.json` beside it.
//! - `ModelClassifier` (cargo feature `model`): names what a photo shows (`tiger cat`,
//!   `espresso`) and the broader categories people use (`cat`, `drink`, `vehicle`) with
//!   EfficientNet-Lite0, an ImageNet model embedded in the binary and run offline by `tract`,
//!   and screens photos for adult content with Yahoo's open_nsfw, embedded and run the same way.
//! - [`PixelClassifier`]: labels a photo with what its pixels honestly show (orientation,
//!   dominant colours), offline; it does not screen content. The fallback when the model is not
//!   compiled in (a public server refuses it unless told to accept unscreened photos).
//!
//! Open them by URL with [`LocalOpener`]: `sqlite:///var/lib/thisthat/thisthat.db` (or
//! `sqlite::memory:`; add `?synchronous=full` for a commit that survives a power loss, see
//! [`Synchronous`]), `outbox:///var/lib/thisthat/outbox`, `model:` (with the `model`
//! feature; `model:?screen=false` without the screen), `pixels:`. The file store needs the public URL of the server that serves it and a
//! signing secret, so it is built in code ([`FileBlobStore::open`]).

mod files;
#[cfg(feature = "model")]
mod model;
#[cfg(feature = "model")]
mod model_categories;
#[cfg(feature = "model")]
mod model_file;
mod outbox;
mod pixels;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
pub use files::FileBlobStore;
#[cfg(feature = "model")]
pub use model::{ModelClassifier, ModelOptions};
pub use outbox::{OutboxEntry, OutboxNotifier};
pub use pixels::PixelClassifier;
pub use sqlite::{SqliteDatabase, SqliteOptions, Synchronous};
use thisthat_core::{
    Result, UrlOpener,
    ports::{Classifier, Database, Notifier},
    registry::{Port, UrlParams},
};
use url::Url;

/// Opens the embedded adapters from `sqlite:`, `outbox:`, `model:` and `pixels:` URLs.
///
/// `sqlite:///path/to/thisthat.db?synchronous=full` opens a [`SqliteDatabase`] whose every
/// commit waits for the disk ([`Synchronous::Full`]); `synchronous=normal` is the default. Any
/// other query parameter, or one given twice, is an [`Error::Config`](thisthat_core::Error::Config).
///
/// `model:` opens a `ModelClassifier` when this crate is built with its `model` feature;
/// without it, it is an [`Error::Config`](thisthat_core::Error::Config) that says so. It screens
/// photos on one inference thread; `model:?screen=false` leaves the screen out (labels only),
/// and `model:?threads=4` classifies four photos at once (each thread costs memory, see
/// `ModelOptions`). Any other query parameter, one given twice, or a `threads` that is not a
/// whole number from 1 to 64 is an [`Error::Config`](thisthat_core::Error::Config).
///
/// `outbox:///dir?webhook={url}` opens an [`OutboxNotifier`] that also POSTs every push to
/// `{url}`, an `http://` or `https://` URL percent-encoded as a query value (see
/// [`OutboxNotifier::with_webhook`]):
/// `outbox:///var/lib/thisthat/outbox?webhook=http%3A%2F%2F127.0.0.1%3A9000%2Fpush`. Any other
/// query parameter, or `webhook` given twice, is an [`Error::Config`](thisthat_core::Error::Config).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOpener;

fn local_path(url: &Url) -> Result<std::path::PathBuf> {
    url.to_file_path()
        .map_err(|_| thisthat_core::Error::config(format!("{url} is not a {}:///absolute/path URL", url.scheme())))
}

/// `model:`, screening unless `?screen=false`, on `?threads=` inference threads (one).
#[cfg(feature = "model")]
fn model_classifier(url: &Url) -> Result<Arc<dyn Classifier>> {
    let params = UrlParams::parse(url, &["screen", "threads"])?;
    let mut options = ModelOptions::default().screen(params.flag("screen", true)?);
    if let Some(threads) = params.get("threads") {
        let threads = threads
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=ModelOptions::MAX_THREADS).contains(n))
            .ok_or_else(|| {
                thisthat_core::Error::config(format!(
                    "model: threads={threads} is not a whole number from 1 to {}: say how many photos to classify at once, e.g. model:?threads=2",
                    ModelOptions::MAX_THREADS
                ))
            })?;
        options = options.threads(threads);
    }
    Ok(Arc::new(ModelClassifier::with_options(options)?))
}

#[cfg(not(feature = "model"))]
fn model_classifier(_: &Url) -> Result<Arc<dyn Classifier>> {
    Err(thisthat_core::Error::config(
        "model: needs the image model, which this build leaves out: build thisthat-local with its `model` cargo feature (or thisthat with `model`)",
    ))
}

#[async_trait]
impl UrlOpener for LocalOpener {
    fn schemes(&self) -> &[(Port, &'static str)] {
        &[
            (Port::Database, "sqlite"),
            (Port::Notifier, "outbox"),
            (Port::Classifier, "pixels"),
            (Port::Classifier, "model"),
        ]
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        let params = UrlParams::parse(url, &["synchronous"])?;
        let mut options = SqliteOptions::default();
        if let Some(synchronous) = params.get("synchronous") {
            options = options.synchronous(Synchronous::from_name(synchronous)?);
        }
        if url.path() == ":memory:" {
            // Nothing reaches a disk, so there is no durability to choose; the parameter is
            // still checked so a misspelt one fails the same way everywhere.
            return Ok(Arc::new(SqliteDatabase::open_in_memory()?));
        }
        let mut plain = url.clone();
        plain.set_query(None);
        Ok(Arc::new(SqliteDatabase::open_with(&local_path(&plain)?, options)?))
    }

    async fn notifier(&self, url: &Url) -> Result<Arc<dyn Notifier>> {
        let mut webhook = None;
        for (name, value) in url.query_pairs() {
            match &*name {
                "webhook" if webhook.is_none() => webhook = Some(value),
                "webhook" => {
                    return Err(thisthat_core::Error::config(
                        "outbox: URLs take at most one webhook= parameter",
                    ));
                }
                _ => {
                    return Err(thisthat_core::Error::config(format!(
                        "outbox: URLs take only a webhook= parameter, not {name}="
                    )));
                }
            }
        }
        let mut plain = url.clone();
        plain.set_query(None);
        let notifier = OutboxNotifier::open(local_path(&plain)?)?;
        Ok(Arc::new(match webhook {
            Some(webhook) => notifier.with_webhook(&webhook)?,
            None => notifier,
        }))
    }

    async fn classifier(&self, url: &Url) -> Result<Arc<dyn Classifier>> {
        // The two classifier schemes this opener lists; the registry sends no other here.
        if url.scheme() == "pixels" {
            Ok(Arc::new(PixelClassifier::new()))
        } else {
            model_classifier(url)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_urls_take_only_a_synchronous_setting() {
        let dir = std::env::temp_dir().join(format!("thisthat-opener-{}", thisthat_core::CompetitionId::new()));
        for good in ["?synchronous=full", "?synchronous=NORMAL", ""] {
            let url = Url::from_file_path(dir.join("thisthat.db")).expect("file url");
            let url = Url::parse(&format!("sqlite://{}{good}", url.path())).expect("url");
            let opened = LocalOpener.database(&url).await;
            assert!(opened.is_ok(), "{url}: {opened:?}");
        }
        for bad in ["?synchronous=off", "?sync=full", "?synchronous=full&synchronous=full"] {
            let url = Url::parse(&format!("sqlite://{}/thisthat.db{bad}", dir.display())).expect("url");
            let opened = LocalOpener.database(&url).await;
            assert!(
                matches!(opened, Err(thisthat_core::Error::Config { .. })),
                "{url}: {opened:?}"
            );
        }
        let memory = LocalOpener
            .database(&Url::parse("sqlite::memory:?synchronous=full").expect("url"))
            .await;
        assert!(memory.is_ok(), "{memory:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each embedded adapter, opened by URL, erased and wrapped in a layer, is still reachable
    /// as itself through the escape hatch.
    #[tokio::test]
    async fn embedded_adapters_are_reachable_through_the_escape_hatch() {
        use thisthat_core::layers::{Layered, Trace};
        let dir = std::env::temp_dir().join(format!("thisthat-native-{}", thisthat_core::CompetitionId::new()));
        let registry = thisthat_core::Registry::new().with(LocalOpener);
        let database: Arc<dyn Database> = Arc::new(Layered::new(
            registry.database("sqlite::memory:").await.expect("sqlite"),
            Trace,
        ));
        assert!(database.native::<SqliteDatabase>().is_some());
        assert!(database.native::<OutboxNotifier>().is_none());
        let outbox = format!("outbox://{}", dir.join("outbox").display());
        let notifier: Arc<dyn Notifier> =
            Arc::new(Layered::new(registry.notifier(&outbox).await.expect("outbox"), Trace));
        assert!(notifier.native::<OutboxNotifier>().is_some());
        let classifier: Arc<dyn Classifier> = Arc::new(Layered::new(
            registry.classifier("pixels:").await.expect("pixels"),
            Trace,
        ));
        assert!(classifier.native::<PixelClassifier>().is_some());
        #[cfg(feature = "model")]
        {
            let model: Arc<dyn Classifier> =
                Arc::new(Layered::new(registry.classifier("model:").await.expect("model"), Trace));
            assert!(model.native::<ModelClassifier>().is_some());
        }
        let blobs: Arc<dyn thisthat_core::ports::BlobStore> = Arc::new(Layered::new(
            Arc::new(FileBlobStore::open(dir.join("blobs"), "http://127.0.0.1:1/blobs/", vec![7; 32]).expect("files")),
            Trace,
        ));
        assert!(blobs.native::<FileBlobStore>().is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn model_urls_open_the_model_or_say_which_feature_it_needs() {
        let url = Url::parse("model:").expect("url");
        let result = LocalOpener.classifier(&url).await;
        if cfg!(feature = "model") {
            assert!(result.is_ok(), "{result:?}");
        } else {
            let Err(thisthat_core::Error::Config { reason, .. }) = result else {
                panic!("{result:?}");
            };
            assert!(reason.contains("`model` cargo feature"), "{reason}");
        }
        let other = thisthat_core::Registry::new()
            .with(LocalOpener)
            .classifier("sqlite::memory:")
            .await;
        assert!(matches!(other, Err(thisthat_core::Error::Config { .. })), "{other:?}");
    }
}
