//! The database port on SQLite.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use thisthat_core::{
    Competition, CompetitionId, Cursor, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Status,
    UserId, Vote, VoteReceipt,
    ports::{Database, NotificationClaim},
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit
/// a migration that has shipped: add a new one.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE competitions (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('draft', 'open', 'closed')),
    total          INTEGER NOT NULL DEFAULT 0,
    votes_to_close INTEGER NOT NULL,
    body           TEXT NOT NULL,
    -- The schema, not only the code, refuses a vote past the threshold.
    CHECK (total <= votes_to_close)
) STRICT;
CREATE INDEX competitions_feed ON competitions (status, id);

CREATE TABLE categories (
    category    TEXT NOT NULL,
    competition TEXT NOT NULL REFERENCES competitions (id) ON DELETE CASCADE,
    PRIMARY KEY (category, competition)
) STRICT, WITHOUT ROWID;

CREATE TABLE votes (
    competition TEXT NOT NULL REFERENCES competitions (id),
    voter       TEXT NOT NULL,
    choice      INTEGER NOT NULL,
    -- One vote per voter and competition, enforced by the schema.
    PRIMARY KEY (competition, voter)
) STRICT, WITHOUT ROWID;

CREATE TABLE notifications (
    competition     TEXT PRIMARY KEY REFERENCES competitions (id),
    body            TEXT NOT NULL,
    delivered       INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1)),
    leased_until_ms INTEGER
) STRICT;
CREATE INDEX notifications_pending ON notifications (delivered, competition);

CREATE TABLE endpoints (
    user  TEXT NOT NULL,
    token TEXT NOT NULL,
    body  TEXT NOT NULL,
    PRIMARY KEY (user, token)
) STRICT, WITHOUT ROWID;
"#];

/// Competitions, votes, devices and the notification outbox in one SQLite database.
///
/// Every port operation is one SQLite transaction on one connection; writers are serialised by
/// SQLite itself (`BEGIN IMMEDIATE`), and the blocking calls run on tokio's blocking pool so
/// they never stall the async runtime. Durability: WAL with `synchronous=NORMAL` (a power
/// loss may lose the last transactions, never corrupt the file); see `docs/performance.md`.
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    connection: Arc<Mutex<Connection>>,
}

fn sqlite_error(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::unavailable("sqlite", e),
        Some(ErrorCode::ConstraintViolation) => Error::Conflict {
            reason: "a database constraint refused the write".into(),
            source: Some(Box::new(e)),
        },
        _ => Error::backend("sqlite", e),
    }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::backend("sqlite", e)
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Draft => "draft",
        Status::Open => "open",
        _ => "closed",
    }
}

impl SqliteDatabase {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Config {
                reason: format!("cannot create the database directory {}", dir.display()),
                source: Some(Box::new(e)),
            })?;
        }
        let connection = Connection::open(path).map_err(|e| Error::Config {
            reason: format!("cannot open the SQLite database {}", path.display()),
            source: Some(Box::new(e)),
        })?;
        Self::with_connection(connection)
    }

    /// A private database that lives as long as this value (and its clones).
    pub fn open_in_memory() -> Result<Self> {
        Self::with_connection(Connection::open_in_memory().map_err(sqlite_error)?)
    }

    fn with_connection(mut connection: Connection) -> Result<Self> {
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sqlite_error)?;
        connection.busy_timeout(Duration::from_secs(5)).map_err(sqlite_error)?;
        migrate(&mut connection)?;
        Ok(SqliteDatabase {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside a transaction rolls it back when the transaction is dropped, so a
            // poisoned lock still guards a consistent database.
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| Error::backend("sqlite", e))?
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<usize> {
        self.run(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .map(|v| v as usize)
                .map_err(sqlite_error)
        })
        .await
    }
}

fn migrate(connection: &mut Connection) -> Result<()> {
    let tx = immediate(connection)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite_error)?;
    if version as usize > MIGRATIONS.len() {
        return Err(Error::config(format!(
            "the database schema is version {version}, newer than this build knows ({}); upgrade thisthat",
            MIGRATIONS.len()
        )));
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration).map_err(sqlite_error)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sqlite_error)?;
    }
    tx.commit().map_err(sqlite_error)
}

/// Starts a write transaction that takes SQLite's write lock up front, so two writers never
/// both read and then one fails to upgrade (SQLITE_BUSY mid-transaction).
fn immediate(c: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)
}

fn read_competition(c: &Connection, id: &CompetitionId) -> Result<Option<Competition>> {
    let body: Option<String> = c
        .query_row("SELECT body FROM competitions WHERE id = ?1", [id.to_string()], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sqlite_error)?;
    body.map(|b| serde_json::from_str(&b).map_err(json_error)).transpose()
}

fn write_categories(c: &Connection, competition: &Competition) -> Result<()> {
    c.execute(
        "DELETE FROM categories WHERE competition = ?1",
        [competition.id.to_string()],
    )
    .map_err(sqlite_error)?;
    for category in &competition.categories {
        c.execute(
            "INSERT OR IGNORE INTO categories (category, competition) VALUES (?1, ?2)",
            params![category.as_str(), competition.id.to_string()],
        )
        .map_err(sqlite_error)?;
    }
    Ok(())
}

fn update_competition(c: &Connection, competition: &Competition) -> Result<()> {
    let body = serde_json::to_string(competition).map_err(json_error)?;
    c.execute(
        "UPDATE competitions SET status = ?2, total = ?3, body = ?4 WHERE id = ?1",
        params![
            competition.id.to_string(),
            status_name(competition.status),
            competition.tally.total(),
            body
        ],
    )
    .map_err(sqlite_error)?;
    Ok(())
}

#[async_trait]
impl Database for SqliteDatabase {
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let competition = competition.clone();
        self.run(move |c| {
            let tx = immediate(c)?;
            let body = serde_json::to_string(&competition).map_err(json_error)?;
            let inserted = tx
                .execute(
                    "INSERT INTO competitions (id, owner, status, total, votes_to_close, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO NOTHING",
                    params![
                        competition.id.to_string(),
                        competition.owner.as_str(),
                        status_name(competition.status),
                        competition.tally.total(),
                        competition.votes_to_close,
                        body
                    ],
                )
                .map_err(sqlite_error)?;
            if inserted == 0 {
                return Err(Error::conflict(format!("competition {} already exists", competition.id)));
            }
            write_categories(&tx, &competition)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        let competition = competition.clone();
        self.run(move |c| {
            let tx = immediate(c)?;
            let stored = read_competition(&tx, &competition.id)?
                .ok_or_else(|| Error::not_found(Entity::Competition, competition.id))?;
            if stored.status != Status::Draft {
                return Err(Error::conflict("the competition is no longer a draft"));
            }
            update_competition(&tx, &competition)?;
            write_categories(&tx, &competition)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let id = *id;
        self.run(move |c| {
            let tx = immediate(c)?;
            match read_competition(&tx, &id)?.map(|c| c.status) {
                None => return Ok(()),
                Some(Status::Draft) => {}
                Some(_) => return Err(Error::conflict("only drafts can be deleted")),
            }
            tx.execute("DELETE FROM categories WHERE competition = ?1", [id.to_string()])
                .map_err(sqlite_error)?;
            tx.execute("DELETE FROM competitions WHERE id = ?1", [id.to_string()])
                .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let id = *id;
        self.run(move |c| read_competition(c, &id)?.ok_or_else(|| Error::not_found(Entity::Competition, id)))
            .await
    }

    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        let vote = vote.clone();
        self.run(move |c| {
            let tx = immediate(c)?;
            let mut competition = read_competition(&tx, &vote.competition)?
                .ok_or_else(|| Error::not_found(Entity::Competition, vote.competition))?;
            let choice = i64::try_from(vote.choice).unwrap_or(i64::MAX);
            let recorded = tx
                .execute(
                    "INSERT INTO votes (competition, voter, choice) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![vote.competition.to_string(), vote.voter.as_str(), choice],
                )
                .map_err(sqlite_error)?;
            if recorded == 0 {
                return Err(Error::AlreadyVoted);
            }
            // Any rejection returns before commit: dropping `tx` rolls the vote row back.
            let receipt = competition.apply_vote(&vote)?;
            update_competition(&tx, &competition)?;
            if let Some(outcome) = &receipt.closed {
                let notification =
                    serde_json::to_string(&Notification::for_close(&competition, outcome)).map_err(json_error)?;
                tx.execute(
                    "INSERT INTO notifications (competition, body) VALUES (?1, ?2)",
                    params![competition.id.to_string(), notification],
                )
                .map_err(sqlite_error)?;
            }
            tx.commit().map_err(sqlite_error)?;
            Ok(receipt)
        })
        .await
    }

    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        let query = query.clone();
        self.run(move |c| {
            let mut statement = c
                .prepare_cached(
                    "SELECT body FROM competitions c
                     WHERE status = 'open'
                       AND (?1 IS NULL OR id < ?1)
                       AND (?2 IS NULL OR owner <> ?2)
                       AND (?2 IS NULL OR NOT EXISTS (SELECT 1 FROM votes v WHERE v.competition = c.id AND v.voter = ?2))
                       AND (?3 IS NULL OR id IN (SELECT competition FROM categories WHERE category = ?3))
                     ORDER BY id DESC
                     LIMIT ?4",
                )
                .map_err(sqlite_error)?;
            let cursor = query.cursor.map(|c| c.last_seen().to_string());
            let viewer = query.viewer.as_ref().map(UserId::as_str);
            let category = query.category.as_ref().map(|c| c.as_str());
            let rows = statement
                .query_map(params![cursor, viewer, category, (query.limit + 1) as i64], |r| r.get::<_, String>(0))
                .map_err(sqlite_error)?;
            let mut competitions = Vec::with_capacity(query.limit + 1);
            for body in rows {
                competitions.push(serde_json::from_str::<Competition>(&body.map_err(sqlite_error)?).map_err(json_error)?);
            }
            let next = if competitions.len() > query.limit {
                competitions.truncate(query.limit);
                competitions.last().map(|c| Cursor::after(c.id))
            } else {
                None
            };
            Ok(FeedPage { competitions, next })
        })
        .await
    }

    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        let claim = claim.clone();
        self.run(move |c| {
            let tx = immediate(c)?;
            let now = millis(claim.now);
            let until = millis(claim.now + claim.lease);
            let competition = claim.competition.map(|c| c.to_string());
            let bodies: Vec<String> = {
                let mut statement = tx
                    .prepare_cached(
                        "UPDATE notifications SET leased_until_ms = ?1
                         WHERE competition IN (
                             SELECT competition FROM notifications
                             WHERE delivered = 0
                               AND (leased_until_ms IS NULL OR leased_until_ms <= ?2)
                               AND (?3 IS NULL OR competition = ?3)
                             ORDER BY competition LIMIT ?4)
                         RETURNING body",
                    )
                    .map_err(sqlite_error)?;
                let rows = statement
                    .query_map(params![until, now, competition, claim.limit as i64], |r| r.get(0))
                    .map_err(sqlite_error)?;
                rows.collect::<rusqlite::Result<_>>().map_err(sqlite_error)?
            };
            tx.commit().map_err(sqlite_error)?;
            bodies
                .iter()
                .map(|b| serde_json::from_str(b).map_err(json_error))
                .collect()
        })
        .await
    }

    async fn complete_notification(&self, competition: &CompetitionId) -> Result<()> {
        let id = *competition;
        self.run(move |c| {
            let tx = immediate(c)?;
            let delivered: Option<i64> = tx
                .query_row(
                    "SELECT delivered FROM notifications WHERE competition = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sqlite_error)?;
            match delivered {
                None => return Err(Error::not_found(Entity::Notification, id)),
                Some(1) => return Err(Error::conflict("the notification was already delivered")),
                Some(_) => {}
            }
            tx.execute(
                "UPDATE notifications SET delivered = 1 WHERE competition = ?1",
                [id.to_string()],
            )
            .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let endpoint = endpoint.clone();
        self.run(move |c| {
            let body = serde_json::to_string(&endpoint).map_err(json_error)?;
            c.execute(
                "INSERT INTO endpoints (user, token, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user, token) DO UPDATE SET body = excluded.body",
                params![endpoint.device.user.as_str(), endpoint.device.token, body],
            )
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let user = user.clone();
        self.run(move |c| {
            let mut statement = c
                .prepare_cached("SELECT body FROM endpoints WHERE user = ?1 ORDER BY token")
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map([user.as_str()], |r| r.get::<_, String>(0))
                .map_err(sqlite_error)?;
            rows.map(|b| serde_json::from_str(&b.map_err(sqlite_error)?).map_err(json_error))
                .collect()
        })
        .await
    }

    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        let (user, token) = (user.clone(), token.to_string());
        self.run(move |c| {
            c.execute(
                "DELETE FROM endpoints WHERE user = ?1 AND token = ?2",
                params![user.as_str(), token],
            )
            .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }
}
