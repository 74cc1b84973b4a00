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

/// A fresh directory for one test's database file, removed at the end.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        TempDir(std::env::temp_dir().join(format!("thisthat-{name}-{}", thisthat_core::CompetitionId::new())))
    }
    fn db(&self) -> std::path::PathBuf {
        self.0.join("thisthat.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Many voters at once on many competitions, so that the writer's batches mix accepted votes
/// with every kind of rejection: each caller must get exactly its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_voters_each_get_their_own_exact_answer() {
    use thisthat_core::{Error, Status, ports::Database};
    use thisthat_testkit::fixtures;
    const COMPETITIONS: usize = 12;
    const VOTERS: usize = 40;
    const TO_CLOSE: u32 = 24;
    let dir = TempDir::new("sqlite-concurrent");
    let db = Arc::new(SqliteDatabase::open(&dir.db()).expect("open"));
    let competitions: Vec<_> = (0..COMPETITIONS)
        .map(|i| fixtures::competition(&format!("owner{i}"), Status::Open, TO_CLOSE))
        .collect();
    for c in &competitions {
        db.insert_competition(c).await.expect("insert");
    }
    let competitions = Arc::new(competitions);
    // Each voter votes on every competition in its own order, then repeats its first vote;
    // each owner also tries its own competition.
    let mut tasks = Vec::new();
    for v in 0..VOTERS {
        let (db, competitions) = (db.clone(), competitions.clone());
        tasks.push(tokio::spawn(async move {
            let voter = format!("voter{v}");
            let mut answers = Vec::new();
            for k in 0..COMPETITIONS {
                let c = &competitions[(k + v) % COMPETITIONS];
                let vote = fixtures::vote(c, &voter, v % 3);
                answers.push((c.id, db.cast_vote(&vote).await));
            }
            let first = &competitions[v % COMPETITIONS];
            let same = db.cast_vote(&fixtures::vote(first, &voter, v % 3)).await;
            let other = db.cast_vote(&fixtures::vote(first, &voter, (v + 1) % 3)).await;
            (answers, (same, other))
        }));
    }
    for (i, c) in competitions.iter().enumerate() {
        let (db, c) = (db.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let own = db.cast_vote(&fixtures::vote(&c, &format!("owner{i}"), 0)).await;
            (
                vec![(c.id, own)],
                (
                    Ok(thisthat_core::VoteReceipt {
                        tally: c.tally.clone(),
                        closed: None,
                    }),
                    Err(Error::Closed),
                ),
            )
        }));
    }
    let mut totals: std::collections::HashMap<_, Vec<u32>> = std::collections::HashMap::new();
    let mut closes: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    let mut results = Vec::new();
    for t in tasks {
        results.push(
            tokio::time::timeout(std::time::Duration::from_secs(60), t)
                .await
                .expect("every vote is answered")
                .expect("task"),
        );
    }
    for (v, (answers, again)) in results.iter().enumerate() {
        for (competition, answer) in answers {
            match answer {
                Ok(receipt) => {
                    totals.entry(*competition).or_default().push(receipt.tally.total());
                    if receipt.closed.is_some() {
                        *closes.entry(*competition).or_default() += 1;
                    }
                }
                Err(Error::Closed) => {}
                Err(Error::OwnCompetition) if v >= VOTERS => {}
                Err(e) => panic!("voter {v}: unexpected {e:?}"),
            }
        }
        if v < VOTERS {
            // Asked after the first answer came back: the first vote's fate decides these. The
            // same vote again gets the first receipt; another choice is a second vote.
            match (&answers[0].1, &again.0, &again.1) {
                (Ok(first), Ok(same), Err(Error::AlreadyVoted)) if first == same => {}
                (Err(Error::Closed), Err(Error::Closed), Err(Error::Closed)) => {}
                (first, same, other) => panic!("voter {v}: first {first:?}, then {same:?} and {other:?}"),
            }
        }
    }
    let fresh = rusqlite::Connection::open(dir.db()).expect("a second connection");
    for c in competitions.iter() {
        let mut seen = totals.remove(&c.id).unwrap_or_default();
        seen.sort_unstable();
        // Each accepted vote's receipt counts exactly the votes before it and itself.
        assert_eq!(seen, (1..=TO_CLOSE).collect::<Vec<_>>(), "competition {}", c.id);
        assert_eq!(closes.get(&c.id), Some(&1), "closed exactly once");
        let (votes, total, notifications): (i64, i64, i64) = fresh
            .query_row(
                "SELECT (SELECT count(*) FROM votes WHERE competition = ?1),
                        (SELECT total FROM competitions WHERE id = ?1),
                        (SELECT count(*) FROM notifications WHERE competition = ?1)",
                [c.id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("read");
        assert_eq!(
            (votes, total, notifications),
            (i64::from(TO_CLOSE), i64::from(TO_CLOSE), 1)
        );
    }
}

/// A receipt is sent after the commit: a connection of its own, opened once the receipt is in
/// hand, already sees the vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_vote_is_in_the_file_when_its_receipt_arrives() {
    use thisthat_core::{Status, ports::Database};
    use thisthat_testkit::fixtures;
    let dir = TempDir::new("sqlite-receipt");
    let path = dir.db();
    let db = Arc::new(SqliteDatabase::open(&path).expect("open"));
    let competitions: Vec<_> = (0..8)
        .map(|i| fixtures::competition(&format!("owner{i}"), Status::Open, 1_000))
        .collect();
    for c in &competitions {
        db.insert_competition(c).await.expect("insert");
    }
    let tasks: Vec<_> = (0..32)
        .map(|v| {
            let (db, path, c) = (db.clone(), path.clone(), competitions[v % 8].clone());
            tokio::spawn(async move {
                let voter = format!("voter{v}");
                let receipt = db.cast_vote(&fixtures::vote(&c, &voter, 1)).await.expect("vote");
                let fresh = rusqlite::Connection::open(&path).expect("open");
                let stored: Option<i64> = fresh
                    .query_row(
                        "SELECT choice FROM votes WHERE competition = ?1 AND voter = ?2",
                        [c.id.to_string(), voter],
                        |r| r.get(0),
                    )
                    .ok();
                (receipt, stored)
            })
        })
        .collect();
    for t in tasks {
        let (receipt, stored) = tokio::time::timeout(std::time::Duration::from_secs(60), t)
            .await
            .expect("answered")
            .expect("task");
        assert!(receipt.tally.total() >= 1);
        assert_eq!(
            stored,
            Some(1),
            "the vote must be committed before its receipt is returned"
        );
    }
}

/// Dropping the database ends its writer and checkpointer and closes every connection: SQLite
/// then folds the WAL into the file and deletes it, which it does only on the last close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_database_ends_its_threads_and_closes_the_file() {
    use thisthat_core::{Status, ports::Database};
    use thisthat_testkit::fixtures;
    let dir = TempDir::new("sqlite-drop");
    let c = fixtures::competition("owner", Status::Open, 24);
    {
        let db = SqliteDatabase::open(&dir.db()).expect("open");
        let clone = db.clone();
        db.insert_competition(&c).await.expect("insert");
        clone.cast_vote(&fixtures::vote(&c, "v", 1)).await.expect("vote");
        drop(db);
        // One clone left: the database is still open and working.
        assert_eq!(clone.competition(&c.id).await.expect("read").tally.total(), 1);
        assert!(dir.0.join("thisthat.db-wal").exists());
    }
    assert!(
        !dir.0.join("thisthat.db-wal").exists(),
        "the WAL outlived the database: a connection is still open"
    );
    let db = SqliteDatabase::open(&dir.db()).expect("reopen");
    assert_eq!(db.competition(&c.id).await.expect("read").tally.total(), 1);
}
