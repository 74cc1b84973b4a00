//! The SQLite database against the database conformance suite, and the whole domain on
//! SQLite with the in-memory blob store, notifier and classifier.

use std::sync::Arc;

use async_trait::async_trait;
use thisthat_core::{Backend, Endpoint, PushMessage, Result};
use thisthat_local::SqliteDatabase;
use thisthat_testkit::{DomainHarness, SignedUrls, memory::MemoryHarness};

mod database {
    use super::*;
    thisthat_testkit::database_conformance!(async { Arc::new(SqliteDatabase::open_in_memory().expect("open")) });
}

/// SQLite under the memory harness's other three adapters.
struct SqliteDomain {
    memory: MemoryHarness,
    database: Arc<SqliteDatabase>,
}

#[async_trait]
impl DomainHarness for SqliteDomain {
    fn backend(&self) -> Backend {
        Backend {
            database: self.database.clone(),
            ..self.memory.memory.backend()
        }
    }
    fn signed_urls(&self) -> SignedUrls {
        DomainHarness::signed_urls(&self.memory)
    }
    async fn direct(
        &self,
        url: &thisthat_core::ports::SignedUrl,
        body: Option<bytes::Bytes>,
    ) -> Result<thisthat_testkit::DirectResponse> {
        DomainHarness::direct(&self.memory, url, body).await
    }
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>> {
        DomainHarness::delivered(&self.memory, endpoint).await
    }
    async fn expire(&self, endpoint: &Endpoint) -> Result<()> {
        DomainHarness::expire(&self.memory, endpoint).await
    }
    async fn unsafe_photo(&self) -> Option<bytes::Bytes> {
        self.memory.unsafe_photo().await
    }
}

mod domain {
    use super::*;
    thisthat_testkit::domain_conformance!(async {
        SqliteDomain {
            memory: MemoryHarness::new(),
            database: Arc::new(SqliteDatabase::open_in_memory().expect("open")),
        }
    });
}

#[tokio::test]
async fn a_file_database_survives_reopening_and_migrates_once() {
    let dir = std::env::temp_dir().join(format!("thisthat-sqlite-{}", thisthat_core::CompetitionId::new()));
    let path = dir.join("nested/thisthat.db");
    let c = thisthat_testkit::fixtures::competition("owner", thisthat_core::Status::Open, 24);
    {
        let db = SqliteDatabase::open(&path).expect("open");
        use thisthat_core::ports::Database;
        db.insert_competition(&c).await.expect("insert");
        db.cast_vote(&thisthat_testkit::fixtures::vote(&c, "v", 1))
            .await
            .expect("vote");
    }
    let db = SqliteDatabase::open(&path).expect("reopen");
    assert_eq!(
        db.schema_version().await.expect("version"),
        SqliteDatabase::SCHEMA_VERSION
    );
    use thisthat_core::ports::Database;
    assert_eq!(db.competition(&c.id).await.expect("read").tally.counts(), &[0, 1, 0]);
    std::fs::remove_dir_all(&dir).expect("clean up");
}
