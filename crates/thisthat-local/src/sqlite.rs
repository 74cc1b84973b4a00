//! The database port on SQLite.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Standing, Status,
    UserId, Vote, VoteReceipt,
    ports::{Database, NotificationClaim},
};

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Never edit
/// a migration that has shipped: add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
-- v2: a vote reads and writes only the competition's standing, kept in columns; the JSON body
-- keeps what never changes after publishing (photos, title, categories, ...).
ALTER TABLE competitions ADD COLUMN photo_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE competitions ADD COLUMN tally TEXT NOT NULL DEFAULT '[]';
ALTER TABLE competitions ADD COLUMN outcome TEXT;
UPDATE competitions SET
    photo_count = json_array_length(body, '$.photos'),
    tally = json_extract(body, '$.tally'),
    outcome = json_extract(body, '$.outcome');
"#,
];

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

fn status_from(name: &str) -> Result<Status> {
    match name {
        "draft" => Ok(Status::Draft),
        "open" => Ok(Status::Open),
        "closed" => Ok(Status::Closed),
        other => Err(Error::Backend {
            provider: "sqlite",
            message: format!("unknown status {other:?} in the database"),
            source: None,
        }),
    }
}

/// The columns that make a competition: the body, with the standing columns laid over it.
const COMPETITION_COLUMNS: &str = "body, status, tally, outcome";

fn competition_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, Option<String>)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn assemble((body, status, tally, outcome): (String, String, String, Option<String>)) -> Result<Competition> {
    let mut competition: Competition = serde_json::from_str(&body).map_err(json_error)?;
    competition.status = status_from(&status)?;
    competition.tally = serde_json::from_str(&tally).map_err(json_error)?;
    competition.outcome = outcome
        .map(|o| serde_json::from_str(&o).map_err(json_error))
        .transpose()?;
    Ok(competition)
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Draft => "draft",
        Status::Open => "open",
        _ => "closed",
    }
}

impl SqliteDatabase {
    /// The schema version this build brings a database to.
    pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

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
        // The busy timeout first: switching to WAL needs a lock another process may hold.
        connection.busy_timeout(Duration::from_secs(5)).map_err(sqlite_error)?;
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sqlite_error)?;
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
        let work = move || {
            // A panic inside a transaction rolls it back when the transaction is dropped, so a
            // poisoned lock still guards a consistent database.
            let mut guard = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        };
        // On a multi-threaded runtime, run in place (the runtime moves this worker's other
        // tasks elsewhere): a vote is ~20 µs of SQLite, and handing it to the blocking pool
        // and back cost more than that (see docs/performance.md). A current-thread runtime
        // cannot block in place, so it uses the blocking pool.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
            _ => tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| Error::backend("sqlite", e))?,
        }
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
    let row = c
        .prepare_cached(&format!("SELECT {COMPETITION_COLUMNS} FROM competitions WHERE id = ?1"))
        .map_err(sqlite_error)?
        .query_row([id.to_string()], competition_from_row)
        .optional()
        .map_err(sqlite_error)?;
    row.map(assemble).transpose()
}

fn read_standing(c: &Connection, id: &CompetitionId) -> Result<Option<Standing>> {
    let row = c
        .prepare_cached(
            "SELECT owner, status, photo_count, tally, votes_to_close, json_extract(body, '$.title') \
             FROM competitions WHERE id = ?1",
        )
        .map_err(sqlite_error)?
        .query_row([id.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .optional()
        .map_err(sqlite_error)?;
    let Some((owner, status, photos, tally, votes_to_close, title)) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str| Error::Backend {
        provider: "sqlite",
        message: format!("competition {id} has a bad {what}"),
        source: None,
    };
    Ok(Some(Standing {
        id: *id,
        owner: UserId::new(owner).map_err(|_| corrupt("owner"))?,
        title,
        status: status_from(&status)?,
        photos: usize::try_from(photos).map_err(|_| corrupt("photo count"))?,
        tally: serde_json::from_str(&tally).map_err(json_error)?,
        votes_to_close,
    }))
}

fn write_standing(c: &Connection, standing: &Standing, outcome: Option<&thisthat_core::Outcome>) -> Result<()> {
    let tally = serde_json::to_string(&standing.tally).map_err(json_error)?;
    let outcome = outcome.map(serde_json::to_string).transpose().map_err(json_error)?;
    c.prepare_cached("UPDATE competitions SET status = ?2, total = ?3, tally = ?4, outcome = ?5 WHERE id = ?1")
        .map_err(sqlite_error)?
        .execute(params![
            standing.id.to_string(),
            status_name(standing.status),
            standing.tally.total(),
            tally,
            outcome
        ])
        .map_err(sqlite_error)?;
    Ok(())
}

fn write_categories(c: &Connection, competition: &Competition) -> Result<()> {
    c.prepare_cached("DELETE FROM categories WHERE competition = ?1")
        .map_err(sqlite_error)?
        .execute([competition.id.to_string()])
        .map_err(sqlite_error)?;
    for category in &competition.categories {
        c.prepare_cached("INSERT OR IGNORE INTO categories (category, competition) VALUES (?1, ?2)")
            .map_err(sqlite_error)?
            .execute(params![category.as_str(), competition.id.to_string()])
            .map_err(sqlite_error)?;
    }
    Ok(())
}

fn update_competition(c: &Connection, competition: &Competition) -> Result<()> {
    let body = serde_json::to_string(competition).map_err(json_error)?;
    c.prepare_cached("UPDATE competitions SET body = ?2, photo_count = ?3 WHERE id = ?1")
        .map_err(sqlite_error)?
        .execute(params![
            competition.id.to_string(),
            body,
            competition.photos.len() as i64
        ])
        .map_err(sqlite_error)?;
    write_standing(c, &competition.standing(), competition.outcome.as_ref())
}

#[async_trait]
impl Database for SqliteDatabase {
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let competition = competition.clone();
        self.run(move |c| {
            let tx = immediate(c)?;
            let body = serde_json::to_string(&competition).map_err(json_error)?;
            let inserted = tx.prepare_cached("INSERT INTO competitions (id, owner, status, total, votes_to_close, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO NOTHING").map_err(sqlite_error)?.execute(
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
            write_standing(&tx, &competition.standing(), competition.outcome.as_ref())?;
            tx.prepare_cached("UPDATE competitions SET photo_count = ?2 WHERE id = ?1")
                .map_err(sqlite_error)?
                .execute(params![competition.id.to_string(), competition.photos.len() as i64])
                .map_err(sqlite_error)?;
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
            tx.prepare_cached("DELETE FROM categories WHERE competition = ?1")
                .map_err(sqlite_error)?
                .execute([id.to_string()])
                .map_err(sqlite_error)?;
            tx.prepare_cached("DELETE FROM competitions WHERE id = ?1")
                .map_err(sqlite_error)?
                .execute([id.to_string()])
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
            // Only the standing is read and written: the photos, title and categories in the
            // body never change after publishing.
            let mut standing = read_standing(&tx, &vote.competition)?
                .ok_or_else(|| Error::not_found(Entity::Competition, vote.competition))?;
            let choice = i64::try_from(vote.choice).unwrap_or(i64::MAX);
            let recorded = tx
                .prepare_cached(
                    "INSERT INTO votes (competition, voter, choice) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .map_err(sqlite_error)?
                .execute(params![vote.competition.to_string(), vote.voter.as_str(), choice])
                .map_err(sqlite_error)?;
            if recorded == 0 {
                return Err(Error::AlreadyVoted);
            }
            // Any rejection returns before commit: dropping `tx` rolls the vote row back.
            let receipt = standing.apply(&vote)?;
            write_standing(&tx, &standing, receipt.closed.as_ref())?;
            if let Some(outcome) = &receipt.closed {
                let title: Option<String> = tx
                    .prepare_cached("SELECT json_extract(body, '$.title') FROM competitions WHERE id = ?1")
                    .map_err(sqlite_error)?
                    .query_row([vote.competition.to_string()], |r| r.get(0))
                    .map_err(sqlite_error)?;
                let notification = Notification {
                    competition: standing.id,
                    owner: standing.owner.clone(),
                    title,
                    outcome: outcome.clone(),
                    delivered_to: Vec::new(),
                };
                let body = serde_json::to_string(&notification).map_err(json_error)?;
                tx.prepare_cached("INSERT INTO notifications (competition, body) VALUES (?1, ?2)")
                    .map_err(sqlite_error)?
                    .execute(params![standing.id.to_string(), body])
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
                    "SELECT body, status, tally, outcome FROM competitions c
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
                .query_map(params![cursor, viewer, category, (query.limit + 1) as i64], competition_from_row)
                .map_err(sqlite_error)?;
            let mut competitions = Vec::with_capacity(query.limit + 1);
            for body in rows {
                competitions.push(assemble(body.map_err(sqlite_error)?)?);
            }
            Ok(FeedPage::from_one_too_many(competitions, query.limit))
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

    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let id = *competition;
        let devices = devices.to_vec();
        self.run(move |c| {
            let tx = immediate(c)?;
            let row: Option<(String, i64)> = tx
                .prepare_cached("SELECT body, delivered FROM notifications WHERE competition = ?1")
                .map_err(sqlite_error)?
                .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(sqlite_error)?;
            let body = match row {
                None => return Err(Error::not_found(Entity::Notification, id)),
                Some((_, 1)) => return Err(Error::conflict("the notification was already delivered")),
                Some((body, _)) => body,
            };
            let mut notification: Notification = serde_json::from_str(&body).map_err(json_error)?;
            for device in devices {
                if !notification.delivered_to.contains(&device) {
                    notification.delivered_to.push(device);
                }
            }
            let body = serde_json::to_string(&notification).map_err(json_error)?;
            tx.prepare_cached("UPDATE notifications SET body = ?2 WHERE competition = ?1")
                .map_err(sqlite_error)?
                .execute(params![id.to_string(), body])
                .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn complete_notification(&self, competition: &CompetitionId, _at: SystemTime) -> Result<()> {
        let id = *competition;
        self.run(move |c| {
            let tx = immediate(c)?;
            let delivered: Option<i64> = tx
                .prepare_cached("SELECT delivered FROM notifications WHERE competition = ?1")
                .map_err(sqlite_error)?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()
                .map_err(sqlite_error)?;
            match delivered {
                None => return Err(Error::not_found(Entity::Notification, id)),
                Some(1) => return Err(Error::conflict("the notification was already delivered")),
                Some(_) => {}
            }
            tx.prepare_cached("UPDATE notifications SET delivered = 1 WHERE competition = ?1")
                .map_err(sqlite_error)?
                .execute([id.to_string()])
                .map_err(sqlite_error)?;
            tx.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let endpoint = endpoint.clone();
        self.run(move |c| {
            let body = serde_json::to_string(&endpoint).map_err(json_error)?;
            c.prepare_cached(
                "INSERT INTO endpoints (user, token, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user, token) DO UPDATE SET body = excluded.body",
            )
            .map_err(sqlite_error)?
            .execute(params![endpoint.device.user.as_str(), endpoint.device.token, body])
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
            c.prepare_cached("DELETE FROM endpoints WHERE user = ?1 AND token = ?2")
                .map_err(sqlite_error)?
                .execute(params![user.as_str(), token])
                .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_migrates_with_its_standing() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        let id = CompetitionId::new();
        let body = format!(
            r#"{{"id":"{id}","owner":"alice","title":"old","status":"open","photos":[{{"key":"competitions/{id}/0.png","media_type":"png","size":1,"width":1,"height":1,"labels":[]}},{{"key":"competitions/{id}/1.png","media_type":"png","size":1,"width":1,"height":1,"labels":[]}}],"categories":[],"tally":[2,5],"votes_to_close":24,"outcome":null,"created_at":0}}"#
        );
        c.execute(
            "INSERT INTO competitions (id, owner, status, total, votes_to_close, body) VALUES (?1, 'alice', 'open', 7, 24, ?2)",
            params![id.to_string(), body],
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let standing = read_standing(&c, &id).unwrap().unwrap();
        assert_eq!((standing.photos, standing.tally.counts().to_vec()), (2, vec![2, 5]));
        let competition = read_competition(&c, &id).unwrap().unwrap();
        assert_eq!(competition.title.as_deref(), Some("old"));
        assert_eq!(competition.tally.total(), 7);
    }
}
