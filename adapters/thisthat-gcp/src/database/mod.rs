//! The database port on Firestore.
//!
//! The `firestore` crate sets up the gRPC channel, the emulator (`FIRESTORE_EMULATOR_HOST`)
//! and authentication; the port's operations are written against Firestore's own RPCs
//! (`BatchGetDocuments`, `Commit`, `RunQuery`, in [`rpc`]) so that each is exactly the
//! requests `docs/gcp.md` counts, with the preconditions it names. [`codec`] maps documents
//! to domain types, [`vote`] is the vote algorithm, [`lock`] the in-process turns of votes.
//!
//! Documents (all under collections named `{prefix}competitions`, `{prefix}notifications`,
//! `{prefix}endpoints`; the prefix isolates deployments or test cases sharing a database),
//! each field in Firestore's native types and "none" an absent field:
//!
//! - `competitions/{id}`: the competition's own fields (`owner`, `title`, `status`, `photos`
//!   as an array of maps with their `labels`, `categories` as an array of strings for the
//!   feed's `array-contains` filter, `tally` as an array of integers, `votes_to_close`,
//!   `outcome` as a map with a `tally` and a `winners` array, `created_at` in Unix ms). A
//!   vote writes `status`, `tally` and `outcome` only.
//! - `competitions/{id}/votes/{voter}`: one per vote, created with the precondition "must not
//!   exist" (the voter id base64url-encoded and prefixed with `v`: user ids may hold `.`, so
//!   one could be `.` or `..`, or look like `__x__`, none of which Firestore takes as an id),
//!   holding `voter`, `choice` and the receipt: `tally` (integers) and `closed` (boolean).
//! - `notifications/{competition}`: the pending result, created by the closing vote's commit:
//!   `competition`, `owner`, `title`, `outcome` (a map), `delivered_to` (an array of device
//!   keys, absent until a delivery reaches some devices), `delivered`, `leased_until_ms`,
//!   and `delivered_at_ms` once completed.
//! - `endpoints/{sha256(user, token)}`: a registered device: `device` (a map of `user`,
//!   `platform`, `token`) and `address` (tokens are too long for ids).

mod codec;
mod lock;
mod rpc;
mod vote;

use std::{collections::HashMap, time::SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use firestore::gcloud_sdk::google::firestore::v1::{
    ArrayValue, Cursor as QueryCursor, Document, Precondition, StructuredQuery, Value, document_transform,
    structured_query, value::ValueType,
};
use sha2::{Digest, Sha256};
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Status, UserId,
    Vote, VoteReceipt,
    adapter::{self, Attempt},
    ports::{Database, NotificationClaim},
};
use tonic::Code;

use self::{
    codec::{
        boolean, claimable, competition_fields, competition_of, decode, delivered, endpoint_fields, id_of, integer,
        status_of, string,
    },
    lock::VoteLocks,
    rpc::{Rpc, all_of, contended, delete, exists, field_filter, order, updated_at, upsert},
};
use crate::error::{firestore_crate, firestore_status};

/// Competitions, votes, devices and pending notifications in Firestore.
///
/// A vote is one optimistic transaction: one read of the competition and the voter's vote
/// document, then one atomic `Commit` whose every write is conditioned on what was read. It
/// creates the vote document (precondition: it does not exist) with the vote's receipt,
/// writes the standing (precondition: the competition's update time is the one read) and, for
/// the closing vote, creates the pending notification (precondition: it does not exist). If
/// another vote landed in between, a precondition fails, nothing is written, and the vote is
/// read and decided again through [`thisthat_core::adapter::race`] with
/// [`thisthat_core::adapter::contention_policy`] (64 attempts; running out is
/// [`Error::Busy`]). The same vote sent again finds its vote document and is answered with the
/// stored receipt. Nothing is locked in Firestore, so a rejection is one read and a crashed
/// voter holds nothing up. Inside one process the votes of one competition take turns (a
/// lock per competition, striped over 64 locks, waited for at most 60 s) so that they do not
/// fail each other's preconditions; across processes the preconditions decide. See
/// `docs/gcp.md` for why this and not a `BeginTransaction` read-write transaction.
#[derive(Clone)]
pub struct FirestoreDatabase {
    rpc: Rpc,
    prefix: String,
    vote_locks: VoteLocks,
}

impl std::fmt::Debug for FirestoreDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirestoreDatabase")
            .field("database", self.rpc.db.get_database_path())
            .field("prefix", &self.prefix)
            .finish()
    }
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
            .with_request_timeout(rpc::CALL_TIMEOUT);
        let db = firestore::FirestoreDb::with_options(options)
            .await
            .map_err(firestore_crate)?;
        Ok(FirestoreDatabase {
            rpc: Rpc::new(db),
            prefix: prefix.to_string(),
            vote_locks: VoteLocks::new(),
        })
    }

    /// The `firestore` crate's client, for queries and writes the port does not offer.
    pub fn client(&self) -> &firestore::FirestoreDb {
        &self.rpc.db
    }

    /// The collection prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many Firestore requests this database (and its clones) has sent: every
    /// `BatchGetDocuments`, `Commit` and `RunQuery`. For metering, and for the
    /// tests that hold each operation to the request count `docs/gcp.md` gives.
    pub fn requests_sent(&self) -> u64 {
        self.rpc.requests_sent()
    }

    fn collection(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn competition_name(&self, id: &CompetitionId) -> String {
        format!("{}/{}/{id}", self.rpc.documents_path(), self.collection("competitions"))
    }

    fn vote_name(&self, vote: &Vote) -> String {
        let voter = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vote.voter.as_str());
        format!("{}/votes/v{voter}", self.competition_name(&vote.competition))
    }

    fn notification_name(&self, id: &CompetitionId) -> String {
        format!(
            "{}/{}/{id}",
            self.rpc.documents_path(),
            self.collection("notifications")
        )
    }

    fn endpoint_name(&self, user: &UserId, token: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(user.as_str().as_bytes());
        hash.update([0]);
        hash.update(token.as_bytes());
        let id = adapter::hex(&hash.finalize());
        format!("{}/{}/{id}", self.rpc.documents_path(), self.collection("endpoints"))
    }

    /// The precondition that guards a write of the notification document `name` (its update
    /// time) if it is still pending: [`Error::NotFound`] if none was recorded,
    /// [`Error::Conflict`] if it was completed (the outer error is the read's).
    async fn pending(
        &self,
        name: &str,
        competition: &CompetitionId,
    ) -> std::result::Result<Result<Option<Precondition>>, tonic::Status> {
        let Some(stored) = self.rpc.get_raw(name).await? else {
            return Ok(Err(Error::not_found(Entity::Notification, competition)));
        };
        Ok(match delivered(&stored) {
            Ok(false) => updated_at(&stored),
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

/// The precondition that guards a write of the draft `stored` (its update time), or the
/// `conflict` `not_a_draft` when it is no longer a draft.
fn draft_guard(stored: &Document, not_a_draft: &'static str) -> Result<Option<Precondition>> {
    match status_of(stored)? {
        Status::Draft => updated_at(stored),
        _ => Err(Error::conflict(not_a_draft)),
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
        match self.rpc.commit(vec![write]).await {
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
            let Some(stored) = self.rpc.get_raw(&name).await? else {
                return Ok(Err(Error::not_found(Entity::Competition, competition.id)));
            };
            // Only if nobody changed it since it was read: two finishes race to here.
            let guard = match draft_guard(&stored, "the competition is no longer a draft") {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = upsert(name.clone(), fields.clone(), None, guard);
            self.rpc.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.delete_draft", skip_all, fields(competition = %id))]
    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let name = self.competition_name(id);
        self.retrying(|| async {
            let Some(stored) = self.rpc.get_raw(&name).await? else {
                return Ok(Ok(()));
            };
            let guard = match draft_guard(&stored, "only drafts can be deleted") {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = delete(name.clone(), guard);
            self.rpc.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.expired_drafts", skip_all)]
    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Equality on `status` ordered by name needs only the automatic single-field index.
        let bound = self.competition_name(&CompetitionId::first_at(before));
        let docs = self
            .rpc
            .run_query(
                self.collection("competitions"),
                StructuredQuery {
                    r#where: all_of(vec![
                        field_filter(
                            "status",
                            structured_query::field_filter::Operator::Equal,
                            string(Status::Draft.as_str()),
                        ),
                        field_filter(
                            "__name__",
                            structured_query::field_filter::Operator::LessThan,
                            Value {
                                value_type: Some(ValueType::ReferenceValue(bound)),
                            },
                        ),
                    ]),
                    order_by: vec![order("__name__", structured_query::Direction::Ascending)],
                    limit: Some(i32::try_from(limit).unwrap_or(i32::MAX)),
                    ..Default::default()
                },
            )
            .await?;
        docs.iter().map(id_of).collect()
    }

    #[tracing::instrument(name = "firestore.competition", skip_all, fields(competition = %id))]
    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let doc = self
            .rpc
            .get(&self.competition_name(id))
            .await?
            .ok_or_else(|| Error::not_found(Entity::Competition, id))?;
        competition_of(*id, &doc)
    }

    #[tracing::instrument(name = "firestore.cast_vote", skip_all, fields(competition = %vote.competition))]
    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        self.vote(vote).await
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
                .rpc
                .run_query(
                    self.collection("competitions"),
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
                let c = competition_of(id_of(doc)?, doc)?;
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
            Some(id) => self.rpc.get(&self.notification_name(&id)).await?.into_iter().collect(),
            None => {
                self.rpc
                    .run_query(
                        self.collection("notifications"),
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
                Some(&["leased_until_ms"]),
                guard,
            );
            match self.rpc.commit(vec![write]).await {
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
            let guard = match self.pending(&name, competition).await? {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            // arrayUnion adds only the devices not recorded yet, so recording one twice
            // changes nothing; the empty mask leaves every other field (the lease) alone, and
            // the update time guard fails the write if the notification was completed since.
            let mut write = upsert(name.clone(), HashMap::new(), Some(&[]), guard);
            write.update_transforms = vec![document_transform::FieldTransform {
                field_path: "delivered_to".to_string(),
                transform_type: Some(
                    document_transform::field_transform::TransformType::AppendMissingElements(ArrayValue {
                        values: devices.iter().map(|d| string(d.as_str())).collect(),
                    }),
                ),
            }];
            self.rpc.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.complete_notification", skip_all, fields(competition = %competition))]
    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()> {
        let name = self.notification_name(competition);
        self.retrying(|| async {
            let guard = match self.pending(&name, competition).await? {
                Ok(guard) => guard,
                Err(e) => return Ok(Err(e)),
            };
            let write = upsert(
                name.clone(),
                HashMap::from([
                    ("delivered".to_string(), boolean(true)),
                    ("delivered_at_ms".to_string(), integer(adapter::unix_millis(at))),
                ]),
                Some(&["delivered", "delivered_at_ms"]),
                guard,
            );
            self.rpc.commit(vec![write]).await.map(Ok)
        })
        .await
    }

    #[tracing::instrument(name = "firestore.save_endpoint", skip_all)]
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let write = upsert(
            self.endpoint_name(&endpoint.device.user, &endpoint.device.token),
            endpoint_fields(endpoint)?,
            None,
            None,
        );
        self.rpc.commit(vec![write]).await.map_err(firestore_status)
    }

    #[tracing::instrument(name = "firestore.endpoints", skip_all)]
    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let docs = self
            .rpc
            .run_query(
                self.collection("endpoints"),
                StructuredQuery {
                    r#where: Some(field_filter(
                        "device.user",
                        structured_query::field_filter::Operator::Equal,
                        string(user.as_str()),
                    )),
                    ..Default::default()
                },
            )
            .await?;
        docs.iter().map(decode).collect()
    }

    #[tracing::instrument(name = "firestore.delete_endpoint", skip_all)]
    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        let write = delete(self.endpoint_name(user, token), None);
        self.rpc.commit(vec![write]).await.map_err(firestore_status)
    }

    /// Exposes the adapter and its `FirestoreDb` (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}
