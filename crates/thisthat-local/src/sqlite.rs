//! The database port on SQLite.

use std::{
    collections::VecDeque,
    ffi::c_int,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Standing, Status,
    UserId, Vote, VoteReceipt,
    adapter::{CountedVote, VoteDecision, decide_vote},
    ports::{Database, NotificationClaim},
};
use tokio::sync::{mpsc, oneshot};

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
    r#"
-- v3: each vote keeps its receipt (the tally after it, and whether it closed the competition),
-- so the same vote sent again is answered with it. Votes from before have none: repeating one
-- is "already voted".
ALTER TABLE votes ADD COLUMN receipt_tally TEXT;
ALTER TABLE votes ADD COLUMN closed_it INTEGER NOT NULL DEFAULT 0 CHECK (closed_it IN (0, 1));
"#,
];

/// How hard SQLite works to keep a committed write through a power loss.
///
/// Either way the database is in WAL mode and a crash of the process never loses a committed
/// write; the setting decides what an operating-system crash or a power loss may take. Choose it
/// in code ([`SqliteOptions::synchronous`]) or in the URL: `sqlite:///path?synchronous=full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `PRAGMA synchronous = NORMAL`, the default: the WAL is flushed to disk at checkpoints, not
    /// at every commit, so a power loss may lose the last transactions (never corrupt the file).
    #[default]
    Normal,
    /// `PRAGMA synchronous = FULL`: every commit waits for the disk, so a vote whose receipt was
    /// returned survives a power loss too. Several votes committed together share that wait.
    Full,
}

impl Synchronous {
    /// Reads a `synchronous=` URL value: `normal` or `full`, in any case.
    pub fn from_name(name: &str) -> Result<Self> {
        if name.eq_ignore_ascii_case("normal") {
            Ok(Synchronous::Normal)
        } else if name.eq_ignore_ascii_case("full") {
            Ok(Synchronous::Full)
        } else {
            Err(Error::config(format!(
                "synchronous={name} is not a setting thisthat offers; use synchronous=normal (the default) or synchronous=full"
            )))
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How [`SqliteDatabase::open_with`] opens a database. `SqliteOptions::default()` is what
/// [`SqliteDatabase::open`] uses.
///
/// ```
/// use thisthat_local::{SqliteOptions, Synchronous};
/// let options = SqliteOptions::default().synchronous(Synchronous::Full);
/// assert_eq!(options.durability(), Synchronous::Full);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqliteOptions {
    synchronous: Synchronous,
}

impl SqliteOptions {
    /// Sets the durability of a commit (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// The durability these options ask for.
    pub fn durability(&self) -> Synchronous {
        self.synchronous
    }
}

/// How many jobs may wait for the writer before a caller waits for room: enough for every
/// caller of a busy server to have one vote queued, small enough that a stalled disk pushes
/// back on callers instead of growing memory.
const QUEUE: usize = 1024;

/// At most this many queued jobs are taken into one batch, so the first vote of a batch never
/// waits behind an unbounded number of others.
const MAX_BATCH: usize = 256;

/// Read connections of a file database, one per core the reads can use at once.
const READERS: usize = 2;

/// WAL frames (pages) after which the checkpointer thread copies the log into the database
/// file: SQLite's own default threshold, but in the background instead of inside a commit.
const CHECKPOINT_FRAMES: c_int = 1_000;

/// WAL frames after which the writer checkpoints the log itself, waiting for the checkpointer
/// if it is mid-way. Under writes that never pause, the background checkpoints never catch up
/// with the end of the log, so SQLite could never start it again from the beginning; this
/// bounds the WAL file to about 40 MB.
const WAL_LIMIT_FRAMES: c_int = 10_000;

/// Competitions, votes, devices and the notification outbox in one SQLite database.
///
/// **Writes** have one connection, and one writer at a time. Votes that arrive while a write is
/// running wait in a bounded queue; the writer thread takes every job waiting at that moment
/// (up to 256) and applies the votes among them in one transaction, each vote inside its own
/// savepoint: a rejected vote rolls back to its savepoint and is answered with its own error,
/// the others commit together, and every receipt is sent only after that `COMMIT`, so a
/// returned receipt is a durable vote. Sharing one commit (one WAL append, one fsync at
/// [`Synchronous::Full`]) between the votes that arrived together is what lets many concurrent
/// voters go faster than one transaction per vote. A vote that finds nothing queued and nobody
/// writing does not wait for the thread: it takes the connection and commits on its own
/// thread, which spares a lone caller two thread hand-offs per vote (`docs/performance.md`).
///
/// The other writes (creating, publishing and deleting competitions, notifications, devices)
/// go through the same queue, each in its own transaction, in the order they were submitted.
/// A second writing connection would gain nothing (SQLite lets one connection write at a
/// time) and would turn that wait into `SQLITE_BUSY` retries between our own connections.
///
/// **Reads** of a file database use their own connections (WAL lets them read while the writer
/// writes) and see every write whose answer was returned. An in-memory database has only the
/// writer's connection, so its reads queue there too.
///
/// **Checkpoints** (copying the WAL into the database file, two fsyncs at `NORMAL`) run on a
/// thread of their own once the WAL holds 1,000 pages, instead of inside the commit that
/// crossed the line as SQLite does by default; past 10,000 pages (about 40 MB) the writer
/// checkpoints itself, so the WAL stays bounded under writes that never pause.
///
/// The queue holds 1,024 jobs; a caller beyond that waits for room. Dropping the last clone
/// ends the writer thread once it has answered the jobs already queued, stops the
/// checkpointer and closes the file. If a write panics, the transaction in progress is rolled
/// back and its callers get [`Error::Backend`]; the writer carries on with the next jobs.
///
/// Durability: WAL with `synchronous=NORMAL` by default (a power loss may lose the last
/// transactions, never corrupt the file), or `FULL` ([`SqliteOptions`]).
#[derive(Debug, Clone)]
pub struct SqliteDatabase {
    shared: Arc<Shared>,
}

/// What the clones of one database share; dropping it stops the writer.
#[derive(Debug)]
struct Shared {
    /// `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    /// The only connection that writes. The writer thread holds it while it applies a batch;
    /// a vote that finds it free and nothing queued takes it itself (see `vote_in_place`).
    connection: Arc<Mutex<Connection>>,
    /// Empty for an in-memory database, whose reads go through the writer.
    readers: Vec<Mutex<Connection>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// `None` for an in-memory database, which has no log to checkpoint.
    checkpointer: Option<Checkpointer>,
}

/// The thread that copies the WAL into the database file off the commit path, with its own
/// connection: at `synchronous=NORMAL` a checkpoint is two fsyncs, which inside a commit cost
/// more than everything else a vote does (`docs/performance.md`).
#[derive(Debug)]
struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(connection: Connection) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("thisthat-sqlite-checkpointer".into())
            .spawn(move || {
                loop {
                    // Woken by the writer's WAL hook, or by `stop`; a spurious wake-up only runs
                    // a checkpoint with nothing to do.
                    std::thread::park();
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    // PASSIVE never waits for the writer or the readers; what it cannot copy now
                    // the next one does.
                    if let Err(e) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, "sqlite: background checkpoint failed; the next one retries");
                    }
                }
            })
            .map_err(|e| Error::backend("sqlite", e))?;
        Ok(Checkpointer { stop, thread })
    }

    /// Asks for a checkpoint after a commit left `frames` frames in the WAL, or takes one
    /// itself past [`WAL_LIMIT_FRAMES`]. Runs on the writing connection, right after a commit.
    fn hook(&self) -> impl FnMut(&mut rusqlite::hooks::Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
        let checkpointer = self.thread.thread().clone();
        // One background checkpoint per 1,000 frames appended, as often as SQLite's own; waking
        // it after every commit instead cost two fsyncs per vote.
        let mut asked_at = 0;
        move |wal, frames| {
            let step = frames / CHECKPOINT_FRAMES;
            if step < asked_at {
                // The log started again from the beginning.
                asked_at = step;
            }
            if frames >= WAL_LIMIT_FRAMES {
                // RESTART waits (within the busy timeout) for the background checkpoint and the
                // readers, so the next write starts the log from the beginning again.
                if let Err(e) = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::RESTART) {
                    tracing::debug!(error = %e, frames, "sqlite: the writer's checkpoint failed; the next commit retries");
                }
            } else if step > asked_at {
                asked_at = step;
                checkpointer.unpark();
            }
            Ok(())
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The readers close first so the writer's connection is the last one: SQLite then
        // checkpoints the WAL into the database file and removes it.
        self.readers.clear();
        // Closing the queue ends the writer's loop once it has answered what was queued.
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            // The writer never holds a clone of the database, so this drop never runs on it.
            let _ = writer.join();
        }
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }
}

/// Something for the writer to do.
enum Job {
    /// A vote, applied in a savepoint of the current batch's transaction.
    Vote(Vote, oneshot::Sender<Result<VoteReceipt>>),
    /// Any other use of the writing connection, in its own transaction. The closure sends its
    /// own answer; a closure dropped unrun (the writer panicked) drops its answer's sender, and
    /// the caller gets an error.
    Other(Box<dyn FnOnce(&mut Connection) + Send>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Vote(vote, _) => f.debug_tuple("Vote").field(vote).finish(),
            Job::Other(_) => f.write_str("Other"),
        }
    }
}

/// The answer when the writer went away before answering: it panicked while running this job
/// (its transaction rolled back), or the database is being dropped.
fn writer_gone() -> Error {
    Error::Backend {
        provider: "sqlite",
        message: "the SQLite writer stopped before answering (it panicked, or the database was closed); \
                  an uncommitted write was rolled back: read the data back before retrying"
            .into(),
        source: None,
    }
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

    /// Opens (creating if needed) the database file at `path` and brings its schema up to date,
    /// with the default [`SqliteOptions`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database file at `path` with `options` and brings its
    /// schema up to date.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Config {
                reason: format!("cannot create the database directory {}", dir.display()),
                source: Some(Box::new(e)),
            })?;
        }
        let cannot_open = |e: rusqlite::Error| Error::Config {
            reason: format!("cannot open the SQLite database {}", path.display()),
            source: Some(Box::new(e)),
        };
        let writer = Connection::open(path).map_err(cannot_open)?;
        let mut writer = prepare_writer(writer, options)?;
        let checkpointer = Checkpointer::start(Connection::open(path).map_err(cannot_open)?)?;
        // Replaces SQLite's own hook, which checkpoints inside the commit that crossed 1,000 frames.
        writer.wal_hook(Some(checkpointer.hook())).map_err(sqlite_error)?;
        // Opened after the writer switched the file to WAL and migrated it, so every reader
        // reads the current schema without ever blocking the writer.
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path).map_err(cannot_open)?;
                reader.busy_timeout(Duration::from_secs(5)).map_err(sqlite_error)?;
                // Reads never write: a mistake here fails loudly instead of racing the writer.
                reader.pragma_update(None, "query_only", true).map_err(sqlite_error)?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>>>()?;
        Self::start(writer, readers, Some(checkpointer))
    }

    /// A private database that lives as long as this value (and its clones).
    pub fn open_in_memory() -> Result<Self> {
        let writer = prepare_writer(
            Connection::open_in_memory().map_err(sqlite_error)?,
            SqliteOptions::default(),
        )?;
        // A second connection would open a different, empty database: reads use the writer's.
        Self::start(writer, Vec::new(), None)
    }

    fn start(writer: Connection, readers: Vec<Mutex<Connection>>, checkpointer: Option<Checkpointer>) -> Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let connection = Arc::new(Mutex::new(writer));
        let writing = connection.clone();
        let writer = std::thread::Builder::new()
            .name("thisthat-sqlite-writer".into())
            .spawn(move || write_loop(&writing, queue))
            .map_err(|e| Error::backend("sqlite", e))?;
        Ok(SqliteDatabase {
            shared: Arc::new(Shared {
                jobs: Some(jobs),
                connection,
                readers,
                writer: Some(writer),
                checkpointer,
            }),
        })
    }

    /// Applies `vote` on the caller's own thread when no other write is queued or running:
    /// a lone caller then pays no hand-off to the writer thread and back, which on two busy
    /// cores cost more than the vote itself (`docs/performance.md`). `None` sends it to the
    /// writer: another write holds the connection or is queued (so this vote joins its batch),
    /// or the runtime cannot block in place.
    fn vote_in_place(&self, vote: &Vote) -> Option<Result<VoteReceipt>> {
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        if !matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::MultiThread)) {
            return None;
        }
        let jobs = self.shared.jobs.as_ref()?;
        if jobs.capacity() < jobs.max_capacity() {
            return None;
        }
        let mut connection = match self.shared.connection.try_lock() {
            Ok(guard) => guard,
            // `guarded` rolled back what the panicking holder left open.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(tokio::task::block_in_place(move || {
            let mut receipt = None;
            guarded(&mut connection, |c| {
                receipt = apply_votes(c, std::slice::from_ref(vote)).pop()
            });
            receipt.unwrap_or_else(|| Err(writer_gone()))
        }))
    }

    async fn submit(&self, job: Job) -> Result<()> {
        let jobs = self.shared.jobs.as_ref().ok_or_else(writer_gone)?;
        jobs.send(job).await.map_err(|_| writer_gone())
    }

    /// Runs `f` on the writer's connection, in turn with the votes and the other writes.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        self.submit(Job::Other(Box::new(move |c| {
            let _ = answer.send(f(c));
        })))
        .await?;
        answered.await.map_err(|_| writer_gone())?
    }

    /// Runs `f` on a read connection (the writer's, for an in-memory database).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.shared.readers.is_empty() {
            return self.write(move |c| f(c)).await;
        }
        let shared = self.shared.clone();
        let work = move || {
            // Any free reader, else wait for the first: a read is tens of microseconds.
            let free = shared.readers.iter().find_map(|r| match r.try_lock() {
                Ok(guard) => Some(guard),
                // A panic mid-read leaves nothing half-done: reads do not write.
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            });
            let guard = match free {
                Some(guard) => guard,
                None => shared
                    .readers
                    .first()
                    .ok_or_else(writer_gone)?
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            };
            f(&guard)
        };
        // On a multi-threaded runtime, run in place (the runtime moves this worker's other
        // tasks elsewhere): a read is ~20 µs of SQLite, and handing it to the blocking pool
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
        self.read(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .map(|v| v as usize)
                .map_err(sqlite_error)
        })
        .await
    }
}

fn prepare_writer(mut connection: Connection, options: SqliteOptions) -> Result<Connection> {
    // The busy timeout first: switching to WAL needs a lock another process may hold.
    connection.busy_timeout(Duration::from_secs(5)).map_err(sqlite_error)?;
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
            options.synchronous.pragma()
        ))
        .map_err(sqlite_error)?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// The writer thread: takes every job waiting at that moment, applies the votes among them in
/// one transaction and the other writes one by one, in the order they came, until the last
/// clone of the database is dropped.
fn write_loop(connection: &Mutex<Connection>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Held for the whole batch; a vote applied in place holds it for one transaction.
        let mut connection = connection.lock().unwrap_or_else(|p| p.into_inner());
        let mut votes = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Vote(vote, answer) => votes.push((vote, answer)),
                Job::Other(work) => {
                    // Votes queued before this write commit before it runs, keeping the order.
                    commit_votes(&mut connection, std::mem::take(&mut votes));
                    guarded(&mut connection, work);
                }
            }
        }
        commit_votes(&mut connection, votes);
    }
}

type VoteAnswer = oneshot::Sender<Result<VoteReceipt>>;

/// Applies `votes` together and answers each with its own receipt or error, after the commit.
fn commit_votes(connection: &mut Connection, votes: Vec<(Vote, VoteAnswer)>) {
    if votes.is_empty() {
        return;
    }
    guarded(connection, move |c| {
        let _span = tracing::debug_span!("sqlite.votes", votes = votes.len()).entered();
        let (votes, answers): (Vec<_>, Vec<_>) = votes.into_iter().unzip();
        let receipts = apply_votes(c, &votes);
        for (answer, receipt) in answers.into_iter().zip(receipts) {
            // A caller that stopped waiting does not stop the others.
            let _ = answer.send(receipt);
        }
    });
}

/// Runs `work`, catching a panic so that the writer lives on: the transaction `work` left open
/// is rolled back, and the answers it still held are dropped, which tells their callers.
fn guarded(connection: &mut Connection, work: impl FnOnce(&mut Connection)) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection)));
    if outcome.is_err() {
        tracing::error!(
            "the SQLite writer panicked; its transaction was rolled back and its callers answered with an error"
        );
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
        }
    }
}

// The statements with a row limit. SQLite (since 3.5x) codes a bare `LIMIT ?n` as the constant
// bound at preparation and marks the statement to be prepared again whenever `?n` is bound
// anew; rusqlite clears a cached statement's bindings when it returns to the cache, which
// counts as a new binding, so every use of such a statement parsed and planned it again: 84 k
// instructions per claim of a closed competition's notification (`docs/performance.md`,
// "Where a vote's CPU goes"). `CAST(?n AS INTEGER)` is not a bare parameter: prepared once.

/// The oldest drafts created before `?1`, at most `?2`.
const EXPIRED_DRAFTS_SQL: &str =
    "SELECT id FROM competitions WHERE status = 'draft' AND id < ?1 ORDER BY id LIMIT CAST(?2 AS INTEGER)";

/// A page of the feed: open competitions before the cursor `?1`, not `?2`'s own nor voted on by
/// `?2`, in category `?3`, at most `?4`.
const FEED_SQL: &str = "SELECT body, status, tally, outcome FROM competitions c
     WHERE status = 'open'
       AND (?1 IS NULL OR id < ?1)
       AND (?2 IS NULL OR owner <> ?2)
       AND (?2 IS NULL OR NOT EXISTS (SELECT 1 FROM votes v WHERE v.competition = c.id AND v.voter = ?2))
       AND (?3 IS NULL OR id IN (SELECT competition FROM categories WHERE category = ?3))
     ORDER BY id DESC
     LIMIT CAST(?4 AS INTEGER)";

/// Leases until `?1` the undelivered notifications whose lease ended by `?2` (of competition
/// `?3` only, unless it is null), at most `?4` competitions' worth.
const CLAIM_SQL: &str = "UPDATE notifications SET leased_until_ms = ?1
     WHERE competition IN (
         SELECT competition FROM notifications
         WHERE delivered = 0
           AND (leased_until_ms IS NULL OR leased_until_ms <= ?2)
           AND (?3 IS NULL OR competition = ?3)
         ORDER BY competition LIMIT CAST(?4 AS INTEGER))
     RETURNING body";

/// Runs one statement without results, prepared once per connection.
fn exec(c: &Connection, sql: &str) -> Result<()> {
    c.prepare_cached(sql)
        .map_err(sqlite_error)?
        .execute([])
        .map_err(sqlite_error)
        .map(drop)
}

/// The same failure, for another caller whose write it also undid.
fn again(e: &Error) -> Error {
    let mut message = format!("the transaction this write shared failed: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    match e {
        Error::Unavailable { retry_after, .. } => Error::Unavailable {
            provider: "sqlite",
            retry_after: *retry_after,
            source: Some(message.into()),
        },
        _ => Error::Backend {
            provider: "sqlite",
            message,
            source: None,
        },
    }
}

/// Applies `votes` in as few transactions as it can (one, unless a vote's failure took the
/// transaction down with it), and answers each: its receipt if its transaction committed, its
/// own rejection, or the error that undid its transaction.
///
/// Each vote runs in a savepoint, so a rejected vote (already voted, own competition, closed,
/// a bad choice, a constraint the schema enforces) rolls back only its own changes. Most
/// SQLite errors leave the transaction open; a few (an I/O error, a full disk, a trigger's
/// `RAISE(ROLLBACK)`) roll all of it back. Then the vote that failed gets its error and the
/// ones before it are applied again in a new transaction: an accepted vote is never answered
/// from a transaction that did not commit, and never fails for another vote's fault.
fn apply_votes(c: &Connection, votes: &[Vote]) -> Vec<Result<VoteReceipt>> {
    let mut answers: Vec<Option<Result<VoteReceipt>>> = votes.iter().map(|_| None).collect();
    let mut todo: VecDeque<usize> = (0..votes.len()).collect();
    while !todo.is_empty() {
        if let Err(e) = exec(c, "BEGIN IMMEDIATE") {
            for i in todo.drain(..) {
                answers[i] = Some(Err(again(&e)));
            }
            break;
        }
        let mut applied: Vec<(usize, Result<VoteReceipt>)> = Vec::with_capacity(todo.len());
        let mut lost = false;
        // A transaction of one vote needs no savepoint: rolling it all back is the same.
        let alone = todo.len() == 1;
        while let Some(i) = todo.pop_front() {
            let answer = if alone {
                match cast_one(c, &votes[i]) {
                    Ok(receipt) => Ok(Ok(receipt)),
                    Err(refused) => Err(refused),
                }
            } else {
                vote_in_savepoint(c, &votes[i])
            };
            match answer {
                Ok(answer) => applied.push((i, answer)),
                Err(culprit) => {
                    answers[i] = Some(Err(culprit));
                    lost = true;
                    break;
                }
            }
        }
        if lost {
            if !c.is_autocommit() {
                let _ = exec(c, "ROLLBACK");
            }
            // Everything before the culprit again, in its order; each pass answers one culprit,
            // so this ends.
            for (i, _) in applied.into_iter().rev() {
                todo.push_front(i);
            }
            continue;
        }
        match exec(c, "COMMIT") {
            Ok(()) => {
                for (i, answer) in applied {
                    answers[i] = Some(answer);
                }
            }
            Err(e) => {
                if !c.is_autocommit() {
                    let _ = exec(c, "ROLLBACK");
                }
                for (i, _) in applied {
                    answers[i] = Some(Err(again(&e)));
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(Error::Backend {
                    provider: "sqlite",
                    message: "a vote of the batch was left unanswered".into(),
                    source: None,
                })
            })
        })
        .collect()
}

/// One vote in its own savepoint of the open transaction. `Ok` is the vote's own answer with the
/// transaction still open (a rejection rolled back to the savepoint); `Err` means the
/// transaction is gone or cannot be trusted, and is this vote's answer.
fn vote_in_savepoint(c: &Connection, vote: &Vote) -> std::result::Result<Result<VoteReceipt>, Error> {
    exec(c, "SAVEPOINT vote")?;
    match cast_one(c, vote) {
        Ok(receipt) => {
            exec(c, "RELEASE vote")?;
            Ok(Ok(receipt))
        }
        // SQLite rolled the whole transaction back.
        Err(refused) if c.is_autocommit() => Err(refused),
        Err(refused) => match exec(c, "ROLLBACK TO vote").and_then(|()| exec(c, "RELEASE vote")) {
            Ok(()) => Ok(Err(refused)),
            Err(_) => Err(refused),
        },
    }
}

/// Reads, decides ([`decide_vote`]) and writes one vote inside the caller's transaction. A
/// rejection may leave the vote row written: the caller rolls back to its savepoint.
fn cast_one(c: &Connection, vote: &Vote) -> Result<VoteReceipt> {
    // Only the standing is read and written: the photos, title and categories in the body
    // never change after publishing. The vote is first decided as its voter's first: nearly
    // every vote is, and the insert below finds an earlier one anyway (its key conflicts),
    // so the earlier vote is read only when there is one or the vote is refused.
    let stored = read_standing(c, &vote.competition)?;
    let (standing, receipt, notification) = match decide_vote(vote, stored, None) {
        Ok(VoteDecision::Count {
            standing,
            receipt,
            notification,
        }) => (standing, receipt, notification),
        Ok(VoteDecision::Repeat(receipt)) => return Ok(receipt),
        // No earlier vote can be found on a competition that does not exist (or is a draft,
        // which takes no votes).
        Err(missing @ Error::NotFound { .. }) => return Err(missing),
        // Refused as a first vote (the competition closed, say): a retry of a vote that
        // counted is still answered its receipt.
        Err(_) => return decide_with_earlier_vote(c, vote),
    };
    let choice = i64::try_from(vote.choice).unwrap_or(i64::MAX);
    let tally = serde_json::to_string(&standing.tally).map_err(json_error)?;
    let recorded = c
        .prepare_cached(
            "INSERT INTO votes (competition, voter, choice, receipt_tally, closed_it) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
        )
        .map_err(sqlite_error)?
        .execute(params![
            vote.competition.to_string(),
            vote.voter.as_str(),
            choice,
            tally,
            receipt.closed.is_some()
        ])
        .map_err(sqlite_error)?;
    if recorded == 0 {
        // The voter voted before: nothing was written, and their earlier vote decides.
        return decide_with_earlier_vote(c, vote);
    }
    if receipt.closed.is_none() {
        // The status is unchanged: leaving it out of the UPDATE leaves the feed index's page
        // clean, one page less for the commit to write.
        c.prepare_cached("UPDATE competitions SET total = ?2, tally = ?3 WHERE id = ?1")
            .map_err(sqlite_error)?
            .execute(params![standing.id.to_string(), standing.tally.total(), tally])
            .map_err(sqlite_error)?;
    } else {
        write_standing(c, &standing, receipt.closed.as_ref())?;
    }
    if let Some(notification) = notification {
        let body = serde_json::to_string(&notification).map_err(json_error)?;
        c.prepare_cached("INSERT INTO notifications (competition, body) VALUES (?1, ?2)")
            .map_err(sqlite_error)?
            .execute(params![standing.id.to_string(), body])
            .map_err(sqlite_error)?;
    }
    Ok(receipt)
}

/// A vote that cannot count as its voter's first, decided as [`decide_vote`] decides with the
/// earlier vote read: the same vote again is answered its first receipt, another is refused,
/// and without an earlier vote the refusal of a first vote stands.
fn decide_with_earlier_vote(c: &Connection, vote: &Vote) -> Result<VoteReceipt> {
    let earlier = read_earlier_vote(c, vote)?;
    match decide_vote(vote, read_standing(c, &vote.competition)?, earlier)? {
        VoteDecision::Repeat(receipt) => Ok(receipt),
        // Counted now, when it could not count a moment ago in the same write transaction:
        // cannot happen; refusing is the safe answer, and writes nothing.
        VoteDecision::Count { .. } => Err(Error::AlreadyVoted),
    }
}

/// The voter's earlier vote on the competition, with its receipt if it was kept (schema v3).
fn read_earlier_vote(c: &Connection, vote: &Vote) -> Result<Option<CountedVote>> {
    let row: Option<(i64, Option<String>, bool)> = c
        .prepare_cached("SELECT choice, receipt_tally, closed_it FROM votes WHERE competition = ?1 AND voter = ?2")
        .map_err(sqlite_error)?
        .query_row(params![vote.competition.to_string(), vote.voter.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(sqlite_error)?;
    let Some((choice, tally, closed_it)) = row else {
        return Ok(None);
    };
    let receipt = match tally {
        Some(tally) => {
            let closed = if closed_it {
                let outcome: Option<String> = c
                    .prepare_cached("SELECT outcome FROM competitions WHERE id = ?1")
                    .map_err(sqlite_error)?
                    .query_row([vote.competition.to_string()], |r| r.get(0))
                    .map_err(sqlite_error)?;
                outcome
                    .map(|o| serde_json::from_str(&o))
                    .transpose()
                    .map_err(json_error)?
            } else {
                None
            };
            Some(VoteReceipt {
                tally: serde_json::from_str(&tally).map_err(json_error)?,
                closed,
            })
        }
        None => None,
    };
    Ok(Some(CountedVote {
        choice: usize::try_from(choice).unwrap_or(usize::MAX),
        receipt,
    }))
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

/// The standing a vote decides on. Its title only when this vote can be the closing one
/// (`total + 1 = votes_to_close`), the one vote whose notification carries it: reading it
/// parses the whole JSON body, which was about 7% of a vote's instructions under callgrind
/// (docs/performance.md, "Where a vote's instructions go"); SQLite evaluates a `CASE` branch
/// only when it is taken.
fn read_standing(c: &Connection, id: &CompetitionId) -> Result<Option<Standing>> {
    let row = c
        .prepare_cached(
            "SELECT owner, status, photo_count, tally, votes_to_close, \
             CASE WHEN total + 1 >= votes_to_close THEN json_extract(body, '$.title') END \
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
    /// Exposes the adapter itself (`native::<SqliteDatabase>()`), for what the port does not offer.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }

    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let competition = competition.clone();
        self.write(move |c| {
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
        self.write(move |c| {
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
        self.write(move |c| {
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

    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        let bound = CompetitionId::first_at(before).to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            // The feed's index (status, id) answers this: ids sort by creation time.
            let mut statement = c.prepare_cached(EXPIRED_DRAFTS_SQL).map_err(sqlite_error)?;
            let ids = statement
                .query_map(rusqlite::params![bound, limit], |row| row.get::<_, String>(0))
                .map_err(sqlite_error)?;
            ids.map(|id| {
                id.map_err(sqlite_error)?
                    .parse::<CompetitionId>()
                    .map_err(|e| Error::backend("sqlite", e))
            })
            .collect()
        })
        .await
    }

    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let id = *id;
        self.read(move |c| read_competition(c, &id)?.ok_or_else(|| Error::not_found(Entity::Competition, id)))
            .await
    }

    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        if let Some(receipt) = self.vote_in_place(vote) {
            return receipt;
        }
        // The writer answers after the commit of the batch this vote joined (see the type's
        // documentation).
        let (answer, answered) = oneshot::channel();
        self.submit(Job::Vote(vote.clone(), answer)).await?;
        answered.await.map_err(|_| writer_gone())?
    }

    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        let query = query.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(FEED_SQL).map_err(sqlite_error)?;
            let cursor = query.cursor.map(|c| c.last_seen().to_string());
            let viewer = query.viewer.as_ref().map(UserId::as_str);
            let category = query.category.as_ref().map(|c| c.as_str());
            let rows = statement
                .query_map(
                    params![cursor, viewer, category, (query.limit + 1) as i64],
                    competition_from_row,
                )
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
        self.write(move |c| {
            let tx = immediate(c)?;
            let now = millis(claim.now);
            let until = millis(claim.now + claim.lease);
            let competition = claim.competition.map(|c| c.to_string());
            let bodies: Vec<String> = {
                let mut statement = tx.prepare_cached(CLAIM_SQL).map_err(sqlite_error)?;
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
        self.write(move |c| {
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
        self.write(move |c| {
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
        self.write(move |c| {
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
        self.read(move |c| {
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
        self.write(move |c| {
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
    use thisthat_testkit::fixtures;

    /// An in-memory database with one open competition per `(owner, votes_to_close)`.
    async fn with_competitions(specs: &[(&str, u32)]) -> (SqliteDatabase, Vec<Competition>) {
        let db = SqliteDatabase::open_in_memory().unwrap();
        let mut competitions = Vec::new();
        for (owner, votes_to_close) in specs {
            let c = fixtures::competition(owner, Status::Open, *votes_to_close);
            db.insert_competition(&c).await.unwrap();
            competitions.push(c);
        }
        (db, competitions)
    }

    /// Applies `votes` as one batch on the writer's connection, as the writer does with the
    /// votes it finds queued together.
    async fn batch(db: &SqliteDatabase, votes: Vec<Vote>) -> Vec<Result<VoteReceipt>> {
        db.write(move |c| Ok(apply_votes(c, &votes))).await.unwrap()
    }

    async fn voters(db: &SqliteDatabase, competition: &Competition) -> Vec<String> {
        let id = competition.id.to_string();
        db.read(move |c| {
            let mut statement = c
                .prepare("SELECT voter FROM votes WHERE competition = ?1 ORDER BY voter")
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map([id], |r| r.get::<_, String>(0))
                .map_err(sqlite_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_error)
        })
        .await
        .unwrap()
    }

    fn total(answer: &Result<VoteReceipt>) -> Option<u32> {
        answer.as_ref().ok().map(|r| r.tally.total())
    }

    /// Every statement with a row limit is prepared once however often its limit is bound anew,
    /// while the same statement with a bare `LIMIT ?n` is prepared again on every use (see
    /// `CLAIM_SQL`): if a later SQLite stops doing that, the control below says so.
    #[tokio::test]
    async fn a_statement_with_a_row_limit_is_prepared_once() {
        let db = SqliteDatabase::open_in_memory().unwrap();
        let bare_limit = "SELECT id FROM competitions ORDER BY id LIMIT ?1";
        let reprepared = db
            .write(move |c| {
                let mut counts = Vec::new();
                for sql in [EXPIRED_DRAFTS_SQL, FEED_SQL, CLAIM_SQL, bare_limit] {
                    for limit in 1..=4_i64 {
                        let mut statement = c.prepare_cached(sql).map_err(sqlite_error)?;
                        // The limit is the last parameter; the others alternate between a
                        // value and null, as a feed page with and without a cursor does.
                        let n = statement.parameter_count();
                        let params = (1..=n).map(|i| {
                            if i == n || limit % 2 == 0 {
                                rusqlite::types::Value::Integer(limit)
                            } else {
                                rusqlite::types::Value::Null
                            }
                        });
                        let mut rows = statement
                            .query(rusqlite::params_from_iter(params))
                            .map_err(sqlite_error)?;
                        while rows.next().map_err(sqlite_error)?.is_some() {}
                    }
                    let statement = c.prepare_cached(sql).map_err(sqlite_error)?;
                    counts.push(statement.get_status(rusqlite::StatementStatus::RePrepare));
                }
                Ok(counts)
            })
            .await
            .unwrap();
        assert_eq!(
            reprepared[..3],
            [0, 0, 0],
            "drafts, feed, claim: prepared again {reprepared:?}"
        );
        assert!(
            reprepared[3] >= 2,
            "a bare LIMIT ?1 is prepared again on each new binding: {reprepared:?}"
        );
    }

    #[tokio::test]
    async fn each_vote_of_a_batch_gets_its_own_answer_and_a_rejection_changes_nothing() {
        let (db, cs) = with_competitions(&[("alice", 3), ("owner-b", 24)]).await;
        let (a, b) = (&cs[0], &cs[1]);
        let mut ghost = fixtures::vote(a, "bob", 0);
        ghost.competition = CompetitionId::new();
        let answers = batch(
            &db,
            vec![
                fixtures::vote(a, "bob", 0),
                fixtures::vote(a, "alice", 0),
                fixtures::vote(a, "bob", 1),
                // Refused for its choice (before anything is written; a refusal after a write
                // is rolled back to its savepoint), so carol's valid vote right after is not
                // "already voted".
                fixtures::vote(a, "carol", 9),
                fixtures::vote(a, "carol", 1),
                fixtures::vote(a, "dave", 2),
                fixtures::vote(a, "erin", 0),
                fixtures::vote(b, "bob", 0),
                ghost,
            ],
        )
        .await;
        assert_eq!(total(&answers[0]), Some(1), "{answers:?}");
        assert!(matches!(answers[1], Err(Error::OwnCompetition)), "{:?}", answers[1]);
        assert!(matches!(answers[2], Err(Error::AlreadyVoted)), "{:?}", answers[2]);
        assert!(
            matches!(answers[3], Err(Error::InvalidInput { field: "choice", .. })),
            "{:?}",
            answers[3]
        );
        assert_eq!(total(&answers[4]), Some(2), "{:?}", answers[4]);
        let closing = answers[5].as_ref().unwrap();
        assert_eq!(closing.tally.counts(), &[1, 1, 1]);
        assert!(closing.closed.is_some(), "the third vote closes a 3-vote competition");
        assert!(matches!(answers[6], Err(Error::Closed)), "{:?}", answers[6]);
        assert_eq!(answers[7].as_ref().unwrap().tally.counts(), &[1, 0, 0]);
        assert!(matches!(answers[8], Err(Error::NotFound { .. })), "{:?}", answers[8]);

        assert_eq!(voters(&db, a).await, ["bob", "carol", "dave"]);
        assert_eq!(voters(&db, b).await, ["bob"]);
        let stored = db.competition(&a.id).await.unwrap();
        assert_eq!((stored.status, stored.tally.counts()), (Status::Closed, &[1, 1, 1][..]));
        let claim = NotificationClaim {
            competition: None,
            now: SystemTime::now(),
            lease: Duration::from_secs(60),
            limit: 10,
        };
        let pending = db.claim_notifications(&claim).await.unwrap();
        assert_eq!(pending.len(), 1, "exactly one close: {pending:?}");
        assert_eq!(pending[0].competition, a.id);
    }

    #[tokio::test]
    async fn a_vote_a_constraint_refuses_does_not_take_the_batch_with_it() {
        let (db, cs) = with_competitions(&[("alice", 24)]).await;
        let a = &cs[0];
        // A statement-level failure: SQLite undoes the statement, the transaction stays.
        db.write(|c| {
            c.execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON votes WHEN NEW.voter = 'mallory'
                 BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END;",
            )
            .map_err(sqlite_error)
        })
        .await
        .unwrap();
        let answers = batch(
            &db,
            vec![
                fixtures::vote(a, "bob", 0),
                fixtures::vote(a, "mallory", 1),
                fixtures::vote(a, "carol", 2),
            ],
        )
        .await;
        assert_eq!(total(&answers[0]), Some(1), "{answers:?}");
        assert!(matches!(answers[1], Err(Error::Conflict { .. })), "{:?}", answers[1]);
        assert_eq!(total(&answers[2]), Some(2), "{answers:?}");
        assert_eq!(voters(&db, a).await, ["bob", "carol"]);
        assert_eq!(db.competition(&a.id).await.unwrap().tally.total(), 2);
    }

    #[tokio::test]
    async fn a_vote_that_rolls_back_the_whole_transaction_fails_alone() {
        let (db, cs) = with_competitions(&[("alice", 24)]).await;
        let a = &cs[0];
        // RAISE(ROLLBACK) ends the whole transaction, the batch's earlier votes with it: they
        // must be applied again, not answered from a transaction that never committed.
        db.write(|c| {
            c.execute_batch(
                "CREATE TRIGGER wreck BEFORE INSERT ON votes WHEN NEW.voter = 'mallory'
                 BEGIN SELECT RAISE(ROLLBACK, 'rolls everything back'); END;",
            )
            .map_err(sqlite_error)
        })
        .await
        .unwrap();
        let answers = batch(
            &db,
            vec![
                fixtures::vote(a, "bob", 0),
                fixtures::vote(a, "carol", 1),
                fixtures::vote(a, "mallory", 1),
                fixtures::vote(a, "dave", 2),
                fixtures::vote(a, "mallory", 2),
                fixtures::vote(a, "erin", 0),
            ],
        )
        .await;
        let totals: Vec<_> = answers.iter().map(total).collect();
        assert_eq!(totals, [Some(1), Some(2), None, Some(3), None, Some(4)], "{answers:?}");
        assert!(matches!(answers[2], Err(Error::Conflict { .. })), "{:?}", answers[2]);
        assert!(matches!(answers[4], Err(Error::Conflict { .. })), "{:?}", answers[4]);
        assert_eq!(voters(&db, a).await, ["bob", "carol", "dave", "erin"]);
        assert_eq!(db.competition(&a.id).await.unwrap().tally.counts(), &[2, 1, 1]);
    }

    #[tokio::test]
    async fn a_repeat_of_a_vote_kept_without_its_receipt_is_already_voted() {
        let (db, cs) = with_competitions(&[("alice", 24)]).await;
        let vote = fixtures::vote(&cs[0], "bob", 0);
        db.cast_vote(&vote).await.unwrap();
        // As a database from before schema v3 holds it: the insert conflicts, and the earlier
        // vote has no receipt to answer with.
        db.write(|c| exec(c, "UPDATE votes SET receipt_tally = NULL"))
            .await
            .unwrap();
        let again = db.cast_vote(&vote).await;
        assert!(matches!(again, Err(Error::AlreadyVoted)), "{again:?}");
        assert_eq!(db.competition(&cs[0].id).await.unwrap().tally.total(), 1);
        assert_eq!(voters(&db, &cs[0]).await, ["bob"]);
    }

    #[tokio::test]
    async fn a_panic_in_the_writer_answers_with_an_error_and_the_writer_carries_on() {
        let (db, cs) = with_competitions(&[("alice", 24)]).await;
        let a = cs[0].clone();
        let vote = fixtures::vote(&a, "bob", 0);
        let inside = vote.clone();
        let panicked = db
            .write(move |c| -> Result<()> {
                exec(c, "BEGIN IMMEDIATE")?;
                cast_one(c, &inside)?;
                panic!("a bug in the middle of a transaction");
            })
            .await;
        assert!(matches!(panicked, Err(Error::Backend { .. })), "{panicked:?}");
        // The half-done vote was rolled back, and the writer still answers.
        assert!(voters(&db, &a).await.is_empty());
        assert_eq!(db.cast_vote(&vote).await.unwrap().tally.total(), 1);
        assert_eq!(voters(&db, &a).await, ["bob"]);
    }

    #[tokio::test]
    async fn full_durability_reaches_the_connection() {
        let dir = std::env::temp_dir().join(format!("thisthat-sqlite-sync-{}", CompetitionId::new()));
        let path = dir.join("thisthat.db");
        let synchronous = |db: SqliteDatabase| async move {
            db.write(|c| {
                c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
                    .map_err(sqlite_error)
            })
            .await
            .unwrap()
        };
        // SQLite's numbers: 1 is NORMAL, 2 is FULL.
        assert_eq!(synchronous(SqliteDatabase::open(&path).unwrap()).await, 1);
        let full = SqliteOptions::default().synchronous(Synchronous::Full);
        assert_eq!(synchronous(SqliteDatabase::open_with(&path, full).unwrap()).await, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn synchronous_names_are_normal_or_full() {
        assert_eq!(Synchronous::from_name("FULL").unwrap(), Synchronous::Full);
        assert_eq!(Synchronous::from_name("normal").unwrap(), Synchronous::Normal);
        let Err(Error::Config { reason, .. }) = Synchronous::from_name("off") else {
            panic!("off is not offered");
        };
        assert!(reason.contains("synchronous=full"), "{reason}");
    }

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
