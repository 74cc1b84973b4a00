//! The embedded default backend of thisthat: everything on one machine, no cloud account.
//!
//! - [`SqliteDatabase`]: competitions, votes, devices and the notification outbox in one SQLite
//!   file (WAL). A vote is one transaction; the schema itself refuses a second vote and a tally
//!   past the threshold.
//! - [`FileBlobStore`]: photos as files under a directory, written atomically, with signed
//!   URLs for the embedded HTTP server to verify.
//! - [`OutboxNotifier`]: pushes appended to `outbox.jsonl` in a directory (and logged), for a
//!   developer's machine; registered devices in `endpoints.json` beside it.
//! - [`PixelClassifier`]: labels a photo with what its pixels honestly show (orientation,
//!   dominant colours), offline; it does not screen content.
//!
//! Open it by URL with [`LocalOpener`]: `sqlite:///var/lib/thisthat/thisthat.db`, or
//! `sqlite::memory:` for a private in-memory database.

mod files;
mod outbox;
mod pixels;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
pub use files::FileBlobStore;
pub use outbox::{OutboxEntry, OutboxNotifier};
pub use pixels::PixelClassifier;
pub use sqlite::SqliteDatabase;
use thisthat_core::{Result, UrlOpener, ports::Database};
use url::Url;

/// Opens the embedded adapters from `sqlite:` URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOpener;

#[async_trait]
impl UrlOpener for LocalOpener {
    fn schemes(&self) -> &[&'static str] {
        &["sqlite"]
    }

    async fn database(&self, url: &Url) -> Result<Arc<dyn Database>> {
        if url.path() == ":memory:" {
            return Ok(Arc::new(SqliteDatabase::open_in_memory()?));
        }
        let path = url
            .to_file_path()
            .map_err(|_| thisthat_core::Error::config(format!("{url} is not a sqlite:///absolute/path URL")))?;
        Ok(Arc::new(SqliteDatabase::open(&path)?))
    }
}
