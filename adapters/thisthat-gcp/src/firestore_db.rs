//! The database port on Firestore.
//!
//! The `firestore` crate sets up the gRPC channel, the emulator (`FIRESTORE_EMULATOR_HOST`)
//! and authentication; the port's operations are written against Firestore's own RPCs
//! (`BatchGetDocuments`, `Commit`, `RunQuery`) so that each is exactly the requests
//! `docs/gcp.md` counts, with the preconditions it names.
//!
//! Documents (all under collections named `{prefix}competitions`, `{prefix}notifications`,
//! `{prefix}endpoints`; the prefix isolates deployments or test cases sharing a database):
//!
//! - `competitions/{id}`: the competition as JSON (`body`, written when it is inserted or
//!   published) plus its standing as fields a vote reads and writes (`owner`, `status`,
//!   `photos`, `tally`, `votes_to_close`, `outcome`), `title` for the closing vote's
//!   notification, and `categories` for the feed's `array-contains` filter. A vote never
//!   rewrites the body.
//! - `competitions/{id}/votes/{voter}`: one per vote, created with the precondition "must not
//!   exist" (the voter id base64url-encoded and prefixed with `v`: user ids may hold `.`, so
//!   one could be `.` or `..`, or look like `__x__`, none of which Firestore takes as an id).
//! - `notifications/{competition}`: the pending result, created by the closing vote's commit.
//! - `endpoints/{sha256(user, token)}`: a registered device (tokens are too long for ids).

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use base64::Engine as _;
use firestore::gcloud_sdk::{
    google::firestore::v1::{
        ArrayValue, BatchGetDocumentsRequest, CommitRequest, Cursor as QueryCursor, Document, DocumentMask,
        Precondition, RunQueryRequest, StructuredQuery, Value, Write, batch_get_documents_response, document_transform,
        firestore_client::FirestoreClient, precondition, run_query_request, structured_query, value::ValueType, write,
    },
    prost_types::Timestamp,
};
use futures::StreamExt as _;
use sha2::{Digest, Sha256};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Outcome, Result, Standing,
    Status, Tally, UserId, Vote, VoteReceipt,
    adapter::{self, Attempt, CountedVote, VoteDecision},
    ports::{Database, NotificationClaim},
};
use tonic::Code;

use crate::error::{corrupt, firestore_crate, firestore_status};

type Client = FirestoreClient<firestore::gcloud_sdk::GoogleAuthMiddleware>;

/// How many locks votes of this process are spread over (see [`FirestoreDatabase::cast_vote`]).
const VOTE_LOCKS: usize = 64;

/// The longest one raw Firestore call (a whole `BatchGetDocuments`, `Commit` or `RunQuery`,
/// streamed reply included) may take. The `firestore` crate's request timeout covers only the
/// crate's own calls, not the raw gRPC ones this adapter makes, and a vote holds its
/// competition's in-process lock across them: without a bound, one hung connection would hold
/// up every later vote on that competition in this process.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a vote waits for its turn at the in-process lock before it is reported as
/// [`Error::Unavailable`]: the caller gets an answer it can retry rather than an unbounded
/// wait behind a queue of voters.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Competitions, votes, devices and pending notifications in Firestore.
///
/// A vote is one optimistic transaction: one read of the competition and the voter's vote
/// document, then one atomic `Commit` whose every write is conditioned on what was read. It
/// creates the vote document (precondition: it does not exist), writes the standing
/// (precondition: the competition's update time is the one read) and, for the closing vote,
/// creates the pending notification (precondition: it does not exist). If another vote landed
/// in between, a precondition fails, nothing is written, and the vote is read and decided
/// again, at most 40 times. Nothing is locked, so a rejection is one read and a
/// crashed voter holds nothing up. Inside one process the votes of one competition take turns
/// (a lock per competition, striped over 64 locks) so that they do not fail each other's
/// preconditions; across processes the preconditions decide. See `docs/gcp.md` for why this
/// and not a `BeginTransaction` read-write transaction.
#[derive(Clone)]
pub struct FirestoreDatabase {
    db: firestore::FirestoreDb,
    prefix: String,
    vote_locks: Arc<[tokio::sync::Mutex<()>]>,
    /// Per lock, how many turns have ended: a vote that read before a turn ended read what
    /// that turn may have changed.
    vote_turns: Arc<[AtomicU64]>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for FirestoreDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreDatabase")
            .field("database", self.db.get_database_path())
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn string(v: impl Into<String>) -> Value {
    Value {
        value_type: Some(ValueType::StringValue(v.into())),
    }
}

fn integer(v: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(v)),
    }
}

fn boolean(v: bool) -> Value {
    Value {
        value_type: Some(ValueType::BooleanValue(v)),
    }
}

fn null() -> Value {
    Value {
        value_type: Some(ValueType::NullValue(0)),
    }
}

fn array(values: Vec<Value>) -> Value {
    Value {
        value_type: Some(ValueType::ArrayValue(ArrayValue { values })),
    }
}

fn status_of(name: &str) -> Result<Status> {
    Status::from_name(name).ok_or_else(|| corrupt(format!("unknown status {name:?} in a competition document")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend("firestore", e))
}

/// Reading the fields this adapter writes.
struct Fields<'a>(&'a Document);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&ValueType> {
        self.0.fields.get(name)?.value_type.as_ref()
    }

    fn string(&self, name: &str) -> Result<&str> {
        match self.get(name) {
            Some(ValueType::StringValue(s)) => Ok(s),
            _ => Err(corrupt(format!("{} has no string field {name}", self.0.name))),
        }
    }

    fn optional_string(&self, name: &str) -> Result<Option<&str>> {
        match self.get(name) {
            None | Some(ValueType::NullValue(_)) => Ok(None),
            Some(ValueType::StringValue(s)) => Ok(Some(s)),
            _ => Err(corrupt(format!(
                "{} has a field {name} that is not a string",
                self.0.name
            ))),
        }
    }

    fn integer(&self, name: &str) -> Result<i64> {
        match self.get(name) {
            Some(ValueType::IntegerValue(i)) => Ok(*i),
            _ => Err(corrupt(format!("{} has no integer field {name}", self.0.name))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool> {
        match self.get(name) {
            Some(ValueType::BooleanValue(b)) => Ok(*b),
            _ => Err(corrupt(format!("{} has no boolean field {name}", self.0.name))),
        }
    }

    /// A list of strings; absent is empty.
    fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(ValueType::ArrayValue(values)) => values
                .values
                .iter()
                .map(|v| match &v.value_type {
                    Some(ValueType::StringValue(s)) => Ok(s.clone()),
                    _ => Err(corrupt(format!("{} has a non-string in {name}", self.0.name))),
                })
                .collect(),
            Some(_) => Err(corrupt(format!(
                "{} has a field {name} that is not a list",
                self.0.name
            ))),
        }
    }

    fn tally(&self) -> Result<Tally> {
        let Some(ValueType::ArrayValue(values)) = self.get("tally") else {
            return Err(corrupt(format!("{} has no tally", self.0.name)));
        };
        let counts = values
            .values
            .iter()
            .map(|v| match v.value_type {
                Some(ValueType::IntegerValue(i)) => u32::try_from(i).map_err(|_| corrupt("a tally count out of range")),
                _ => Err(corrupt("a tally count that is not an integer")),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tally::from_counts(counts))
    }
}

fn standing_of(id: CompetitionId, doc: &Document) -> Result<Standing> {
    let f = Fields(doc);
    Ok(Standing {
        id,
        owner: UserId::new(f.string("owner")?).map_err(|_| corrupt("a competition owner that is not a user id"))?,
        title: f.optional_string("title")?.map(String::from),
        status: status_of(f.string("status")?)?,
        photos: usize::try_from(f.integer("photos")?).map_err(|_| corrupt("a negative photo count"))?,
        tally: f.tally()?,
        votes_to_close: u32::try_from(f.integer("votes_to_close")?)
            .map_err(|_| corrupt("a vote threshold out of range"))?,
    })
}

/// The competition a document holds: its body with the standing's fields laid over it.
fn competition_of(doc: &Document) -> Result<Competition> {
    let f = Fields(doc);
    let mut competition: Competition =
        serde_json::from_str(f.string("body")?).map_err(|e| Error::backend("firestore", e))?;
    competition.status = status_of(f.string("status")?)?;
    competition.tally = f.tally()?;
    competition.outcome = f
        .optional_string("outcome")?
        .map(serde_json::from_str::<Outcome>)
        .transpose()
        .map_err(|e| Error::backend("firestore", e))?;
    Ok(competition)
}

/// The standing's fields (what a vote writes).
fn standing_fields(standing: &Standing, outcome: Option<&Outcome>) -> Result<HashMap<String, Value>> {
    Ok(HashMap::from([
        ("status".to_string(), string(standing.status.as_str())),
        (
            "tally".to_string(),
            array(standing.tally.counts().iter().map(|c| integer(i64::from(*c))).collect()),
        ),
        (
            "outcome".to_string(),
            match outcome {
                Some(o) => string(json(o)?),
                None => null(),
            },
        ),
    ]))
}

fn competition_fields(c: &Competition) -> Result<HashMap<String, Value>> {
    let mut fields = standing_fields(&c.standing(), c.outcome.as_ref())?;
    fields.extend([
        ("owner".to_string(), string(c.owner.as_str())),
        ("photos".to_string(), integer(c.photos.len() as i64)),
        ("votes_to_close".to_string(), integer(i64::from(c.votes_to_close))),
        (
            "title".to_string(),
            match &c.title {
                Some(t) => string(t.as_str()),
                None => null(),
            },
        ),
        (
            "categories".to_string(),
            array(c.categories.iter().map(|cat| string(cat.as_str())).collect()),
        ),
        ("body".to_string(), string(json(c)?)),
    ]);
    Ok(fields)
}

fn exists(exists: bool) -> Option<Precondition> {
    Some(Precondition {
        condition_type: Some(precondition::ConditionType::Exists(exists)),
    })
}

/// The precondition "the document is exactly as read". Firestore sends every document it
/// returns with its update time; one without it cannot be guarded, and writing it
/// unconditionally would silently drop the optimistic check, so that is an error.
fn updated_at(doc: &Document) -> Result<Option<Precondition>> {
    let time: Timestamp = doc
        .update_time
        .ok_or_else(|| corrupt(format!("{} was read without its update time", doc.name)))?;
    Ok(Some(Precondition {
        condition_type: Some(precondition::ConditionType::UpdateTime(time)),
    }))
}

/// Runs one raw gRPC call within `limit` (in practice [`CALL_TIMEOUT`]); running out of time is
/// `DEADLINE_EXCEEDED`, which maps to [`Error::Unavailable`] like Firestore's own deadline.
async fn timed<T>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = std::result::Result<T, tonic::Status>>,
) -> std::result::Result<T, tonic::Status> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(format!(
            "{what} did not finish within {limit:?}"
        )))
    })
}

/// A vote's turn at its competition's in-process lock. Ending it (dropping it) counts the
/// turn, before the lock is released, so a vote that read earlier knows to read again.
struct Turn<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    turns: &'a AtomicU64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Runs before the fields drop, so while the lock is still held.
        self.turns.fetch_add(1, Ordering::Release);
    }
}

/// Waits at most `wait` for a vote's turn at the in-process lock, and says whether what the
/// vote read is stale: it is if any turn ended since `seen` (the count before the read), and
/// it is taken to be if the vote had to wait. Without the count, a vote whose read raced a
/// finishing turn would find the lock free, commit what it read, fail the precondition and
/// back off.
async fn take_turn<'a>(
    lock: &'a tokio::sync::Mutex<()>,
    turns: &'a AtomicU64,
    seen: u64,
    wait: Duration,
) -> Result<(Turn<'a>, bool)> {
    if let Ok(guard) = lock.try_lock() {
        let stale = turns.load(Ordering::Acquire) != seen;
        return Ok((Turn { _guard: guard, turns }, stale));
    }
    let guard = tokio::time::timeout(wait, lock.lock()).await.map_err(|_| {
        tracing::warn!(
            ?wait,
            "a vote waited too long for its turn behind this process's other votes"
        );
        Error::Unavailable {
            provider: "firestore",
            retry_after: Some(Duration::from_millis(100)),
            source: None,
        }
    })?;
    Ok((Turn { _guard: guard, turns }, true))
}

/// What a vote document says of the voter's earlier vote: its choice and the receipt kept
/// with it (votes stored before receipts were kept have none).
fn counted_vote(doc: &Document) -> Result<CountedVote> {
    let f = Fields(doc);
    let choice = usize::try_from(f.integer("choice")?).map_err(|_| corrupt("a negative choice"))?;
    let receipt = f
        .optional_string("receipt")?
        .map(serde_json::from_str::<VoteReceipt>)
        .transpose()
        .map_err(|e| Error::backend("firestore", e))?;
    Ok(CountedVote { choice, receipt })
}

/// A vote decided from what was read.
enum Plan {
    /// The voter's same vote was counted before: its receipt is the answer.
    Repeat(VoteReceipt),
    /// Count it: the receipt, and the writes of the one atomic commit that records it.
    Count(VoteReceipt, Vec<Write>),
}

/// What a vote carries from one attempt of its race to the next.
struct VoteAttempt {
    /// A decision still to commit; `None` when the next attempt reads again.
    decided: Option<(VoteReceipt, Vec<Write>)>,
    /// How many of its commits ended without an answer.
    unanswered: u32,
}

/// A commit that ended without telling whether it was applied.
fn unanswered(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal
    )
}

/// How often a vote's commit that ended without an answer is checked and sent again inside
/// the adapter before the error goes to the caller.
const UNANSWERED_RETRIES: u32 = 2;

/// A pending notification a claim may lease now: `None` if it is delivered or leased.
fn claimable(doc: &Document, now: i64) -> Result<Option<Notification>> {
    let f = Fields(doc);
    if f.boolean("delivered")? || f.integer("leased_until_ms")? > now {
        return Ok(None);
    }
    let mut notification: Notification =
        serde_json::from_str(f.string("body")?).map_err(|e| Error::backend("firestore", e))?;
    notification.delivered_to = f.strings("delivered_to")?;
    Ok(Some(notification))
}

fn upsert(name: String, fields: HashMap<String, Value>, mask: Option<Vec<&str>>, pre: Option<Precondition>) -> Write {
    Write {
        update_mask: mask.map(|m| DocumentMask {
            field_paths: m.into_iter().map(String::from).collect(),
        }),
        current_document: pre,
        operation: Some(write::Operation::Update(Document {
            name,
            fields,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn field_filter(field: &str, op: structured_query::field_filter::Operator, value: Value) -> structured_query::Filter {
    structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::FieldFilter(
            structured_query::FieldFilter {
                field: Some(structured_query::FieldReference {
                    field_path: field.to_string(),
                }),
                op: op as i32,
                value: Some(value),
            },
        )),
    }
}

fn all_of(mut filters: Vec<structured_query::Filter>) -> Option<structured_query::Filter> {
    if filters.len() <= 1 {
        return filters.pop();
    }
    Some(structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::CompositeFilter(
            structured_query::CompositeFilter {
                op: structured_query::composite_filter::Operator::And as i32,
                filters,
            },
        )),
    })
}

fn order(field: &str, direction: structured_query::Direction) -> structured_query::Order {
    structured_query::Order {
        field: Some(structured_query::FieldReference {
            field_path: field.to_string(),
        }),
        direction: direction as i32,
    }
}

/// A write that lost a race: Firestore aborted it under contention, or a precondition on the
/// document's update time failed because another writer got there first.
fn contended(status: &tonic::Status) -> bool {
    matches!(status.code(), Code::Aborted | Code::FailedPrecondition)
}

impl FirestoreDatabase {
    /// Opens the `(default)` database of `project`, with Application Default Credentials, or
    /// the emulator when `FIRESTORE_EMULATOR_HOST` is set. Collections are named without a
    /// prefix.
    pub async fn open(project: &str) -> Result<Self> {
        Self::open_database(project, firestore::FIREBASE_DEFAULT_DATABASE_ID, "").await
    }

    /// Opens database `database_id` of `project`, naming its collections `{prefix}competitions`
    /// and so on, so that several deployments (or test cases) can share one database.
    pub async fn open_database(project: &str, database_id: &str, prefix: &str) -> Result<Self> {
        crate::install_crypto_provider();
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(
                "prefix",
                "a collection prefix may hold ASCII letters, digits, '_' and '-' only",
            ));
        }
        let options = firestore::FirestoreDbOptions::new(project.to_string())
            .with_database_id(database_id.to_string())
            .with_request_timeout(Duration::from_secs(30));
        let db = firestore::FirestoreDb::with_options(options)
            .await
            .map_err(firestore_crate)?;
        Ok(FirestoreDatabase {
            db,
            prefix: prefix.to_string(),
            vote_locks: (0..VOTE_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            vote_turns: (0..VOTE_LOCKS).map(|_| AtomicU64::new(0)).collect(),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The `firestore` crate's client, for queries and writes the port does not offer.
    pub fn client(&self) -> &firestore::FirestoreDb {
        &self.db
    }

    /// The collection prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many Firestore requests this database (and its clones) has sent: every
    /// `BatchGetDocuments`, `Commit` and `RunQuery`. For metering, and for the
    /// tests that hold each operation to the request count `docs/gcp.md` gives.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The gRPC client for one request (cheap: clones share the channel), counted.
    fn grpc(&self) -> Client {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.db.client().get()
    }

    fn database(&self) -> String {
        self.db.get_database_path().clone()
    }

    fn collection(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn competition_name(&self, id: &CompetitionId) -> String {
        format!(
            "{}/{}/{id}",
            self.db.get_documents_path(),
            self.collection("competitions")
        )
    }

    fn vote_name(&self, vote: &Vote) -> String {
        let voter = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vote.voter.as_str());
        format!("{}/votes/v{voter}", self.competition_name(&vote.competition))
    }

    fn notification_name(&self, id: &CompetitionId) -> String {
        format!(
            "{}/{}/{id}",
            self.db.get_documents_path(),
            self.collection("notifications")
        )
    }

    fn endpoint_name(&self, user: &UserId, token: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(user.as_str().as_bytes());
        hash.update([0]);
        hash.update(token.as_bytes());
        let id = adapter::hex(&hash.finalize());
        format!("{}/{}/{id}", self.db.get_documents_path(), self.collection("endpoints"))
    }

    /// Reads documents (missing ones are `None`), in the order asked, in one request.
    async fn batch_get(&self, names: &[String]) -> std::result::Result<Vec<Option<Document>>, tonic::Status> {
        let request = BatchGetDocumentsRequest {
            database: self.database(),
            documents: names.to_vec(),
            ..Default::default()
        };
        let mut found: HashMap<String, Document> = HashMap::new();
        timed(CALL_TIMEOUT, "BatchGetDocuments", async {
            let mut stream = self.grpc().batch_get_documents(request).await?.into_inner();
            while let Some(response) = stream.next().await {
                if let Some(batch_get_documents_response::Result::Found(doc)) = response?.result {
                    found.insert(doc.name.clone(), doc);
                }
            }
            Ok(())
        })
        .await?;
        Ok(names.iter().map(|n| found.remove(n)).collect())
    }

    async fn get_raw(&self, name: &str) -> std::result::Result<Option<Document>, tonic::Status> {
        Ok(self.batch_get(&[name.to_string()]).await?.pop().flatten())
    }

    async fn get(&self, name: &str) -> Result<Option<Document>> {
        self.get_raw(name).await.map_err(firestore_status)
    }

    /// Applies `writes` atomically: all of them, or (a precondition failing) none.
    async fn commit(&self, writes: Vec<Write>) -> std::result::Result<(), tonic::Status> {
        let request = CommitRequest {
            database: self.database(),
            writes,
            ..Default::default()
        };
        timed(CALL_TIMEOUT, "Commit", self.grpc().commit(request))
            .await
            .map(|_| ())
    }

    async fn run_query(&self, collection: &str, query: StructuredQuery) -> Result<Vec<Document>> {
        let query = StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: self.collection(collection),
                all_descendants: false,
            }],
            ..query
        };
        let request = RunQueryRequest {
            parent: self.db.get_documents_path().clone(),
            query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
            ..Default::default()
        };
        timed(CALL_TIMEOUT, "RunQuery", async {
            let mut stream = self.grpc().run_query(request).await?.into_inner();
            let mut docs = Vec::new();
            while let Some(response) = stream.next().await {
                if let Some(doc) = response?.document {
                    docs.push(doc);
                }
            }
            Ok(docs)
        })
        .await
        .map_err(firestore_status)
    }

    /// The two documents a vote reads: the competition and the voter's vote, in one request.
    async fn read_for_vote(&self, vote: &Vote) -> Result<[Option<Document>; 2]> {
        let names = [self.competition_name(&vote.competition), self.vote_name(vote)];
        let mut docs = self.batch_get(&names).await.map_err(firestore_status)?.into_iter();
        Ok([docs.next().flatten(), docs.next().flatten()])
    }

    /// Decides a vote from what was read: its rejection, or the receipt and the writes of the
    /// one atomic commit that records it. Every write is conditioned on what was read, so the
    /// commit holds only if nothing changed in between.
    fn decide_vote(&self, vote: &Vote, docs: &[Option<Document>; 2]) -> Result<Plan> {
        let stored = docs[0]
            .as_ref()
            .map(|doc| standing_of(vote.competition, doc))
            .transpose()?;
        let earlier = docs[1].as_ref().map(counted_vote).transpose()?;
        let (standing, receipt, notification) = match adapter::decide_vote(vote, stored, earlier)? {
            VoteDecision::Repeat(receipt) => return Ok(Plan::Repeat(receipt)),
            VoteDecision::Count {
                standing,
                receipt,
                notification,
            } => (standing, receipt, notification),
        };
        let Some(competition) = &docs[0] else {
            return Err(Error::not_found(Entity::Competition, vote.competition));
        };
        let choice = i64::try_from(vote.choice).unwrap_or(i64::MAX);
        let mut writes = vec![
            // The vote document must not exist: one vote per voter, whatever races.
            upsert(
                self.vote_name(vote),
                HashMap::from([
                    ("voter".to_string(), string(vote.voter.as_str())),
                    ("choice".to_string(), integer(choice)),
                    // What this vote did, so that the same vote sent again is answered with it.
                    ("receipt".to_string(), string(json(&receipt)?)),
                ]),
                None,
                exists(false),
            ),
            // The standing, only if the competition is exactly as read: a vote counted
            // elsewhere in between changes its update time and fails this commit.
            upsert(
                competition.name.clone(),
                standing_fields(&standing, receipt.closed.as_ref())?,
                Some(vec!["status", "tally", "outcome"]),
                updated_at(competition)?,
            ),
        ];
        if let Some(notification) = notification {
            writes.push(upsert(
                self.notification_name(&vote.competition),
                HashMap::from([
                    ("body".to_string(), string(json(&*notification)?)),
                    ("delivered".to_string(), boolean(false)),
                    ("leased_until_ms".to_string(), integer(0)),
                ]),
                None,
                exists(false),
            ));
        }
        Ok(Plan::Count(receipt, writes))
    }

    /// The notification document `name` if it is still pending: [`Error::NotFound`] if none
    /// was recorded, [`Error::Conflict`] if it was completed (the outer error is the read's).
    async fn pending(
        &self,
        name: &str,
        competition: &CompetitionId,
    ) -> std::result::Result<Result<Document>, tonic::Status> {
        let Some(stored) = self.get_raw(name).await? else {
            return Ok(Err(Error::not_found(Entity::Notification, competition)));
        };
        Ok(match Fields(&stored).boolean("delivered") {
            Ok(false) => Ok(stored),
            Ok(true) => Err(Error::conflict("the notification was already delivered")),
            Err(e) => Err(e),
        })
    }

    /// Runs `step` (read, decide, write conditionally) through [`adapter::race`] until it does
    /// not lose a race; a `step` whose write failed a precondition or was aborted lost one.
    async fn retrying<T, F, Fut>(&self, mut step: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Result<T>, tonic::Status>>,
    {
        adapter::race("firestore", &adapter::contention_policy(), || {
            let attempt = step();
            async move {
                match attempt.await {
                    Ok(decided) => decided.map(Attempt::Done),
                    Err(status) if contended(&status) => Ok(Attempt::LostRace),
                    Err(status) => Err(firestore_status(status)),
                }
            }
        })
        .await
    }
}

#[async_trait]
impl Database for FirestoreDatabase {
    #[tracing::instrument(name = "firestore.insert_competition", skip_all, fields(competition = %competition.id))]
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let write = upsert(
            self.competition_name(&competition.id),
            competition_fields(competition)?,
            None,
            exists(false),
        );
        match self.commit(vec![write]).await {
            Ok(()) => Ok(()),
            Err(s) if matches!(s.code(), Code::AlreadyExists | Code::FailedPrecondition) => Err(Error::Conflict {
                reason: format!("competition {} already exists", competition.id),
                source: Some(Box::new(s)),
            }),
            Err(s) => Err(firestore_status(s)),
        }
    }

    #[tracing::instrument(name = "firestore.publish_competition", skip_all, fields(competition = %competition.id))]
    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        let name = self.competition_name(&competition.id);
        let fields = competition_fields(competition)?;
        self.retrying(|| async {
            let Some(stored) = self.get_raw(&name).await? else {
                return Ok(Err(Error::not_found(Entity::Competition, competition.id)));
            };
            match Fields(&stored).string("status").map(status_of) {
                Ok(Ok(Status::Draft)) => {}
                Ok(Ok(_)) => return Ok(Err(Error::conflict("the competition is no longer a draft"))),
                Ok(Err(e)) | Err(e) => return Ok(Err(e)),
            }
            // Only if nobody changed it since it was read: two finishes race to here.
            let guard = match updated_at(&stored) {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = upsert(name.clone(), fields.clone(), None, guard);
            self.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.delete_draft", skip_all, fields(competition = %id))]
    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let name = self.competition_name(id);
        self.retrying(|| async {
            let Some(stored) = self.get_raw(&name).await? else {
                return Ok(Ok(()));
            };
            match Fields(&stored).string("status").map(status_of) {
                Ok(Ok(Status::Draft)) => {}
                Ok(Ok(_)) => return Ok(Err(Error::conflict("only drafts can be deleted"))),
                Ok(Err(e)) | Err(e) => return Ok(Err(e)),
            }
            let guard = match updated_at(&stored) {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = Write {
                current_document: guard,
                operation: Some(write::Operation::Delete(name.clone())),
                ..Default::default()
            };
            self.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.competition", skip_all, fields(competition = %id))]
    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let doc = self
            .get(&self.competition_name(id))
            .await?
            .ok_or_else(|| Error::not_found(Entity::Competition, id))?;
        competition_of(&doc)
    }

    #[tracing::instrument(name = "firestore.cast_vote", skip_all, fields(competition = %vote.competition))]
    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        // Read first, outside the lock: most rejections (already voted, closed, the owner)
        // and repeats are final after this one request and never wait behind other voters.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        vote.competition.hash(&mut hasher);
        let stripe = (hasher.finish() % VOTE_LOCKS as u64) as usize;
        // Noted before the read: a turn that ends after this may have changed what is read.
        let seen = self.vote_turns[stripe].load(Ordering::Acquire);
        let docs = self.read_for_vote(vote).await?;
        let (receipt, writes) = match self.decide_vote(vote, &docs)? {
            Plan::Repeat(receipt) => return Ok(receipt),
            Plan::Count(receipt, writes) => (receipt, writes),
        };
        let (_turn, stale) = take_turn(&self.vote_locks[stripe], &self.vote_turns[stripe], seen, LOCK_WAIT).await?;
        // Another vote of this process took its turn since the read: what was read is likely
        // stale, and committing it would only fail its precondition, so the first attempt
        // reads again.
        let attempt = tokio::sync::Mutex::new(VoteAttempt {
            decided: (!stale).then_some((receipt, writes)),
            unanswered: 0,
        });
        adapter::race("firestore", &adapter::contention_policy(), || async {
            let mut attempt = attempt.lock().await;
            let (receipt, writes) = match attempt.decided.take() {
                Some(decided) => decided,
                None => match self.decide_vote(vote, &self.read_for_vote(vote).await?)? {
                    // An earlier commit of this vote landed although its answer was lost.
                    Plan::Repeat(receipt) => return Ok(Attempt::Done(receipt)),
                    Plan::Count(receipt, writes) => (receipt, writes),
                },
            };
            match self.commit(writes).await {
                Ok(()) => Ok(Attempt::Done(receipt)),
                // The commit may have landed with its reply lost. The vote document's "must not
                // exist" precondition makes sending it again safe; reading again first tells a
                // vote that landed (answered with its stored receipt) from one that did not.
                Err(s) if unanswered(&s) && attempt.unanswered < UNANSWERED_RETRIES => {
                    attempt.unanswered += 1;
                    tracing::debug!(status = %s, "a vote's commit ended without an answer; reading whether it landed");
                    Ok(Attempt::LostRace)
                }
                // A precondition failed: someone else's vote (in another process) landed since
                // the read. Read again and decide again.
                Err(s) if matches!(s.code(), Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted) => {
                    Ok(Attempt::LostRace)
                }
                Err(s) => Err(firestore_status(s)),
            }
        })
        .await
    }

    #[tracing::instrument(name = "firestore.feed", skip_all)]
    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        let mut filters = vec![field_filter(
            "status",
            structured_query::field_filter::Operator::Equal,
            string("open"),
        )];
        if let Some(category) = &query.category {
            filters.push(field_filter(
                "categories",
                structured_query::field_filter::Operator::ArrayContains,
                string(category.as_str()),
            ));
        }
        let filter = all_of(filters);
        let mut after = query.cursor.map(|c| c.last_seen());
        let mut competitions: Vec<Competition> = Vec::with_capacity(query.limit + 1);
        // The viewer's own competitions are dropped after reading (Firestore cannot filter on
        // "not equal" while ordering by id), so a page may need more than one read; each asks
        // for what is still missing plus one (to know whether there is a next page), at least
        // ten, and a short read is the end of the feed.
        let admits = FeedQuery {
            cursor: None,
            ..query.clone()
        };
        loop {
            let want = query.limit + 1 - competitions.len();
            let batch = i32::try_from(want.max(10)).unwrap_or(i32::MAX);
            let docs = self
                .run_query(
                    "competitions",
                    StructuredQuery {
                        r#where: filter.clone(),
                        order_by: vec![order("__name__", structured_query::Direction::Descending)],
                        start_at: after.map(|id| QueryCursor {
                            values: vec![Value {
                                value_type: Some(ValueType::ReferenceValue(self.competition_name(&id))),
                            }],
                            before: false,
                        }),
                        limit: Some(batch),
                        ..Default::default()
                    },
                )
                .await?;
            let exhausted = docs.len() < batch as usize;
            for doc in &docs {
                let c = competition_of(doc)?;
                after = Some(c.id);
                if admits.admits(&c) && competitions.len() <= query.limit {
                    competitions.push(c);
                }
            }
            if competitions.len() > query.limit || exhausted {
                break;
            }
        }
        Ok(FeedPage::from_one_too_many(competitions, query.limit))
    }

    #[tracing::instrument(name = "firestore.claim_notifications", skip_all)]
    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        if claim.limit == 0 {
            // Asked for nothing: claim nothing, even the one competition named.
            return Ok(Vec::new());
        }
        let now = adapter::unix_millis(claim.now);
        // A lease past what SystemTime can hold is no lease, as in the reference database.
        let until = adapter::unix_millis(claim.now.checked_add(claim.lease).unwrap_or(claim.now));
        let candidates = match claim.competition {
            Some(id) => self.get(&self.notification_name(&id)).await?.into_iter().collect(),
            None => {
                self.run_query(
                    "notifications",
                    StructuredQuery {
                        r#where: all_of(vec![
                            field_filter(
                                "delivered",
                                structured_query::field_filter::Operator::Equal,
                                boolean(false),
                            ),
                            field_filter(
                                "leased_until_ms",
                                structured_query::field_filter::Operator::LessThanOrEqual,
                                integer(now),
                            ),
                        ]),
                        order_by: vec![order("leased_until_ms", structured_query::Direction::Ascending)],
                        limit: Some(i32::try_from(claim.limit).unwrap_or(i32::MAX)),
                        ..Default::default()
                    },
                )
                .await?
            }
        };
        // Each candidate is leased by a write that holds only if nobody changed the document
        // since it was read: of racing workers, one lease per notification holds.
        // A document that does not decode is logged and skipped: one bad document must not
        // stop every other notification's delivery.
        let leases = futures::future::join_all(candidates.into_iter().map(|doc| async move {
            let decoded = claimable(&doc, now).and_then(|n| Ok((n, updated_at(&doc)?)));
            let (notification, guard) = match decoded {
                Ok((Some(notification), guard)) => (notification, guard),
                Ok((None, _)) => return Ok(None),
                Err(e) => {
                    tracing::warn!(document = %doc.name, error = %e, "skipping a pending notification that does not decode");
                    return Ok(None);
                }
            };
            let write = upsert(
                doc.name.clone(),
                HashMap::from([("leased_until_ms".to_string(), integer(until))]),
                Some(vec!["leased_until_ms"]),
                guard,
            );
            match self.commit(vec![write]).await {
                Ok(()) => Ok(Some(notification)),
                Err(s) if contended(&s) => Ok(None),
                Err(s) => Err(firestore_status(s)),
            }
        }))
        .await;
        // Leases that were taken are handed out even if another commit failed: dropping them
        // would leave those notifications leased, and undelivered, until the lease ends.
        let mut claimed = Vec::new();
        let mut failure = None;
        for lease in leases {
            match lease {
                Ok(Some(n)) => claimed.push(n),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not lease a pending notification");
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) if claimed.is_empty() => Err(e),
            _ => Ok(claimed),
        }
    }

    #[tracing::instrument(name = "firestore.record_deliveries", skip_all, fields(competition = %competition))]
    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let name = self.notification_name(competition);
        self.retrying(|| async {
            let stored = match self.pending(&name, competition).await? {
                Ok(stored) => stored,
                Err(e) => return Ok(Err(e)),
            };
            let guard = match updated_at(&stored) {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            // arrayUnion adds only the devices not recorded yet, so recording one twice
            // changes nothing; the empty mask leaves every other field (the lease) alone, and
            // the update time guard fails the write if the notification was completed since.
            let mut write = upsert(name.clone(), HashMap::new(), Some(Vec::new()), guard);
            write.update_transforms = vec![document_transform::FieldTransform {
                field_path: "delivered_to".to_string(),
                transform_type: Some(
                    document_transform::field_transform::TransformType::AppendMissingElements(ArrayValue {
                        values: devices.iter().map(|d| string(d.as_str())).collect(),
                    }),
                ),
            }];
            self.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.complete_notification", skip_all, fields(competition = %competition))]
    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()> {
        let name = self.notification_name(competition);
        self.retrying(|| async {
            let stored = match self.pending(&name, competition).await? {
                Ok(stored) => stored,
                Err(e) => return Ok(Err(e)),
            };
            let guard = match updated_at(&stored) {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = upsert(
                name.clone(),
                HashMap::from([
                    ("delivered".to_string(), boolean(true)),
                    ("delivered_at_ms".to_string(), integer(adapter::unix_millis(at))),
                ]),
                Some(vec!["delivered", "delivered_at_ms"]),
                guard,
            );
            self.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.save_endpoint", skip_all)]
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let write = upsert(
            self.endpoint_name(&endpoint.device.user, &endpoint.device.token),
            HashMap::from([
                ("user".to_string(), string(endpoint.device.user.as_str())),
                ("body".to_string(), string(json(endpoint)?)),
            ]),
            None,
            None,
        );
        self.commit(vec![write]).await.map_err(firestore_status)
    }

    #[tracing::instrument(name = "firestore.endpoints", skip_all)]
    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let docs = self
            .run_query(
                "endpoints",
                StructuredQuery {
                    r#where: Some(field_filter(
                        "user",
                        structured_query::field_filter::Operator::Equal,
                        string(user.as_str()),
                    )),
                    ..Default::default()
                },
            )
            .await?;
        docs.iter()
            .map(|d| serde_json::from_str(Fields(d).string("body")?).map_err(|e| Error::backend("firestore", e)))
            .collect()
    }

    #[tracing::instrument(name = "firestore.delete_endpoint", skip_all)]
    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        let write = Write {
            operation: Some(write::Operation::Delete(self.endpoint_name(user, token))),
            ..Default::default()
        };
        self.commit(vec![write]).await.map_err(firestore_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn raw_calls_that_hang_end_as_unavailable() {
        let hung = timed(
            Duration::from_millis(20),
            "Commit",
            std::future::pending::<std::result::Result<(), tonic::Status>>(),
        );
        let status = tokio::time::timeout(Duration::from_secs(5), hung)
            .await
            .expect("the call is bounded")
            .expect_err("a hung call fails");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(matches!(firestore_status(status), Error::Unavailable { .. }));
        let quick = timed(Duration::from_secs(5), "Commit", async { Ok(7) }).await;
        assert_eq!(quick.expect("in time"), 7);
    }

    #[tokio::test]
    async fn a_vote_waits_a_bounded_time_for_its_turn() {
        let lock = tokio::sync::Mutex::new(());
        let turns = AtomicU64::new(0);
        let held = lock.lock().await;
        let waited = tokio::time::timeout(
            Duration::from_secs(5),
            take_turn(&lock, &turns, 0, Duration::from_millis(20)),
        )
        .await
        .expect("the wait is bounded");
        assert!(matches!(waited, Err(Error::Unavailable { .. })), "{:?}", waited.err());
        drop(held);
        assert!(take_turn(&lock, &turns, 0, Duration::from_millis(20)).await.is_ok());
    }

    #[tokio::test]
    async fn a_turn_knows_whether_what_was_read_is_stale() {
        let lock = tokio::sync::Mutex::new(());
        let turns = AtomicU64::new(0);
        let seen = turns.load(Ordering::Acquire);
        let (turn, stale) = take_turn(&lock, &turns, seen, Duration::from_secs(1))
            .await
            .expect("turn");
        assert!(!stale, "nobody went in between");
        drop(turn);
        // A vote that read before that turn ended finds the lock free, but its read stale.
        let (turn, stale) = take_turn(&lock, &turns, seen, Duration::from_secs(1))
            .await
            .expect("turn");
        assert!(stale, "a turn ended since the read");
        drop(turn);
        let seen = turns.load(Ordering::Acquire);
        let (turn, _) = take_turn(&lock, &turns, seen, Duration::from_secs(1))
            .await
            .expect("turn");
        let waiter = async {
            take_turn(&lock, &turns, seen, Duration::from_secs(5))
                .await
                .map(|(_, s)| s)
        };
        let (stale, ()) = tokio::join!(waiter, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(turn);
        });
        assert!(stale.expect("turn"), "a vote that waited reads again");
    }

    #[test]
    fn a_document_without_an_update_time_cannot_be_guarded() {
        let mut doc = Document {
            name: "projects/p/databases/(default)/documents/competitions/x".into(),
            ..Default::default()
        };
        let unguarded = updated_at(&doc);
        assert!(matches!(unguarded, Err(Error::Backend { .. })), "{unguarded:?}");
        doc.update_time = Some(Timestamp { seconds: 1, nanos: 2 });
        let guard = updated_at(&doc).expect("guarded").expect("a precondition");
        assert!(matches!(
            guard.condition_type,
            Some(precondition::ConditionType::UpdateTime(Timestamp {
                seconds: 1,
                nanos: 2
            }))
        ));
    }
}
