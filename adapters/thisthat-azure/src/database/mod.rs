//! The database on Azure Table Storage, over [`TableClient`]: the port's implementation
//! here, the entities' codec in `codec.rs`, the vote algorithm in `vote.rs`.
//!
//! One table holds everything, in these partitions (see `docs/azure.md`):
//!
//! | partition | row | what |
//! |---|---|---|
//! | competition id | `competition` | the competition, a property per field (the photos one JSON document) |
//! | competition id | `vote_{voter}` | one vote and its receipt (the row's existence is the "already voted" check) |
//! | competition id | `notification` | the pending result notification, its lease, the devices it reached, whether delivered |
//! | `feed` | inverted id | an open competition, newest first in key order, with a Boolean per category |
//! | `outbox` | competition id | a competition whose notification may be pending |
//! | `user_{user}` | token hash | a registered device |
//!
//! Every field is a property of its own in a native Edm type (`codec.rs`); "none" is an
//! absent property.
//!
//! A vote is one read of the partition (the competition row and this voter's vote row, in one
//! query) plus one entity-group transaction in the competition's partition: insert the vote
//! row, merge the new `Status` and `Tally{i}` with the read ETag as `If-Match`, and at the
//! threshold insert the notification in the same batch. [`decide_vote`] decides from that read, so a vote whose
//! answer was lost and that is sent again (even after it closed the competition) is answered
//! with the receipt kept on its vote row, not `Closed`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use futures::future::join_all;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use thisthat_core::{
    Competition, CompetitionId, Device, Endpoint, Entity as What, Error, FeedPage, FeedQuery, Notification, Outcome,
    Platform, Result, Standing, Status, UserId, Vote, VoteReceipt,
    ports::{Database, NotificationClaim},
};
use tracing::instrument;

use thisthat_core::{
    Tally,
    adapter::{
        Attempt, CountedVote, VoteDecision, contention_policy, decide_vote, from_unix_millis, hex, race, unix_millis,
    },
};

use crate::error::{Refusal, batch_error, corrupt, refusal};
use crate::table::{BatchOp, Entity, PROVIDER, TableClient, quote};

mod codec;
mod vote;

use codec::*;

const COMPETITION: &str = "competition";
const NOTIFICATION: &str = "notification";
const FEED: &str = "feed";
/// The partition listing drafts by id (oldest first), for the sweep: one entity per draft, its
/// row key the draft's id. Written before the draft and removed after it, like a feed entry.
const DRAFTS: &str = "drafts";
const OUTBOX: &str = "outbox";
/// The prefix of a notification's per-device delivery properties.
const DELIVERED_TO: &str = "DeliveredTo_";

/// How old (by its id's ULID timestamp) a feed entry whose competition is missing must be
/// before the feed deletes it. Younger ones may belong to a competition being inserted right
/// now: `insert_competition` lists the entry before it stores the competition.
const ORPHAN_FEED_GRACE: Duration = Duration::from_secs(600);

/// thisthat's database on Azure Table Storage.
#[derive(Debug, Clone)]
pub struct AzureTableDatabase {
    table: TableClient,
}

impl AzureTableDatabase {
    /// The database in `table`, which [`AzureTableDatabase::create_tables`] creates.
    pub fn new(table: TableClient) -> Self {
        AzureTableDatabase { table }
    }

    /// Creates the table for a new deployment (an existing one is left as it is).
    #[instrument(skip(self), fields(table = self.table.table()))]
    pub async fn create_tables(&self) -> Result<()> {
        self.table.create_table().await
    }

    /// The table client, for what the port does not cover.
    pub fn client(&self) -> &TableClient {
        &self.table
    }
}

impl AzureTableDatabase {
    /// The competition and its ETag. Reads that only show the competition ignore the ETag;
    /// writes take it through [`required_etag`].
    async fn read(&self, id: &CompetitionId) -> Result<Option<(Competition, Option<String>)>> {
        let Some(entity) = self.table.get(&id.to_string(), COMPETITION, None).await? else {
            return Ok(None);
        };
        Ok(Some((read_competition(&entity)?, entity.etag)))
    }

    /// The notification entity of `competition`, if it is still pending: NotFound if none was
    /// recorded, Conflict if it was delivered.
    async fn pending_notification(&self, competition: &CompetitionId) -> Result<Entity> {
        let Some(entity) = self.table.get(&competition.to_string(), NOTIFICATION, None).await? else {
            return Err(Error::not_found(What::Notification, competition));
        };
        if entity.bool(DELIVERED) == Some(true) {
            return Err(Error::conflict(format!(
                "the notification of {competition} was already delivered"
            )));
        }
        Ok(entity)
    }

    /// Merges `props` into the notification read with `etag`; a changed ETag (a lease, a
    /// delivery or a completion in between) is a lost race.
    async fn merge_notification(
        &self,
        competition: &CompetitionId,
        props: &Map<String, Value>,
        etag: &str,
    ) -> Result<Attempt<()>> {
        match self
            .table
            .write(
                What::Notification,
                &competition.to_string(),
                NOTIFICATION,
                props,
                true,
                Some(etag),
            )
            .await
        {
            Ok(()) => Ok(Attempt::Done(())),
            Err(Error::Conflict { .. }) => Ok(Attempt::LostRace),
            Err(e) => Err(e),
        }
    }

    async fn mark_outbox(&self, competition: &str) -> Result<()> {
        match self.table.insert(&keys(OUTBOX, competition)).await {
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Claimable notifications (pending, lease run out by `now`), found through the outbox
    /// partition.
    async fn outbox(&self, now: SystemTime, limit: usize) -> Result<Vec<Entity>> {
        let filter = format!("PartitionKey eq {}", quote(OUTBOX));
        let mut found = Vec::new();
        let mut continuation = None;
        loop {
            let (page, next) = self
                .table
                .query(&filter, None, Some(100), continuation.as_ref())
                .await?;
            let ids: Vec<String> = page.iter().filter_map(|e| e.str("RowKey").map(str::to_owned)).collect();
            let rows = join_all(ids.iter().map(|id| self.table.get(id, NOTIFICATION, None))).await;
            for (id, row) in ids.iter().zip(rows) {
                match row? {
                    Some(n) if n.bool(DELIVERED) == Some(true) => {
                        // Delivered but still listed (completion stopped before the cleanup).
                        let _ = self.table.delete(OUTBOX, id, "*").await;
                    }
                    Some(n) if lease_until(&n)? <= now => found.push(n),
                    // Leased by another worker.
                    Some(_) => {}
                    // Listed by a closing vote that lost its race: the close is still to come.
                    None => {}
                }
            }
            match next {
                Some(n) if found.len() < limit => continuation = Some(n),
                _ => return Ok(found),
            }
        }
    }

    /// Replaces the draft read with `etag` by `props`, its published form. A draft deleted in
    /// between is [`Error::NotFound`] (the port's answer for a missing competition); one
    /// changed in between is [`Error::Conflict`].
    async fn replace_draft(&self, competition: &Competition, props: &Map<String, Value>, etag: &str) -> Result<()> {
        self.table
            .write(
                What::Competition,
                &competition.id.to_string(),
                COMPETITION,
                props,
                false,
                Some(etag),
            )
            .await
            .map_err(|e| match e {
                Error::Conflict { source, .. } => Error::Conflict {
                    reason: format!("competition {} changed while it was published", competition.id),
                    source,
                },
                Error::NotFound { .. } => Error::not_found(What::Competition, competition.id),
                other => other,
            })
    }

    async fn add_to_feed(&self, c: &Competition) -> Result<()> {
        match self.table.insert(&feed_props(c)?).await {
            // Already listed (a retried insert or publish): the first entry stands.
            Ok(()) | Err(Error::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Database for AzureTableDatabase {
    #[instrument(skip(self, competition), fields(table = self.table.table(), id = %competition.id))]
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let mut props = keys(&competition.id.to_string(), COMPETITION);
        props.extend(competition_props(competition)?);
        // Listed before it is stored: a crash in between leaves a feed entry that reads as
        // missing and is skipped, never a competition that the feed does not show.
        if competition.status == Status::Open {
            self.add_to_feed(competition).await?;
        }
        if competition.status == Status::Draft {
            match self.table.insert(&keys(DRAFTS, &competition.id.to_string())).await {
                // A retried insert: the first entry stands.
                Ok(()) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.table.insert(&props).await.map_err(|e| match e {
            Error::Conflict { source, .. } => Error::Conflict {
                reason: format!("competition {} exists", competition.id),
                source,
            },
            other => other,
        })
    }

    #[instrument(skip(self, competition), fields(table = self.table.table(), id = %competition.id))]
    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        let Some((stored, etag)) = self.read(&competition.id).await? else {
            return Err(Error::not_found(What::Competition, competition.id));
        };
        if stored.status != Status::Draft {
            return Err(Error::conflict(format!(
                "competition {} is no longer a draft",
                competition.id
            )));
        }
        let etag = required_etag(etag, "competition")?;
        // Encoded first, so a competition the table cannot hold leaves no feed entry.
        let mut props = keys(&competition.id.to_string(), COMPETITION);
        props.extend(competition_props(competition)?);
        self.add_to_feed(competition).await?;
        self.replace_draft(competition, &props, &etag).await?;
        // Left behind if this fails: `expired_drafts` removes entries of what is no draft.
        self.table.delete(DRAFTS, &competition.id.to_string(), "*").await
    }

    #[instrument(skip(self), fields(table = self.table.table()))]
    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let Some((stored, etag)) = self.read(id).await? else {
            return Ok(());
        };
        if stored.status != Status::Draft {
            return Err(Error::conflict(format!("competition {id} is not a draft")));
        }
        let etag = required_etag(etag, "competition")?;
        self.table.delete(&id.to_string(), COMPETITION, &etag).await?;
        self.table.delete(DRAFTS, &id.to_string(), "*").await
    }

    #[instrument(skip(self), fields(table = self.table.table()))]
    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        let filter = format!(
            "PartitionKey eq {} and RowKey lt {}",
            quote(DRAFTS),
            quote(&CompetitionId::first_at(before).to_string())
        );
        let mut drafts = Vec::new();
        let mut continuation = None;
        while drafts.len() < limit {
            let top = (limit - drafts.len()).min(1000);
            let (entries, next) = self
                .table
                .query(&filter, Some("RowKey"), Some(top), continuation.as_ref())
                .await?;
            for entry in entries {
                let Some(id) = entry.str("RowKey").and_then(|id| id.parse::<CompetitionId>().ok()) else {
                    continue;
                };
                match self.read(&id).await? {
                    Some((c, _)) if c.status == Status::Draft => drafts.push(id),
                    // Published or deleted, and its entry left behind by a failure in between
                    // (entries this old are never a write under way).
                    _ => self.table.delete(DRAFTS, &id.to_string(), "*").await?,
                }
            }
            match next {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        Ok(drafts)
    }

    #[instrument(skip(self), fields(table = self.table.table()))]
    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        self.read(id)
            .await?
            .map(|(c, _)| c)
            .ok_or_else(|| Error::not_found(What::Competition, id))
    }

    #[instrument(skip(self), fields(table = self.table.table(), competition = %vote.competition))]
    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        race(PROVIDER, &contention_policy(), || self.try_vote(vote)).await
    }

    #[instrument(skip(self, query), fields(table = self.table.table()))]
    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        let mut filter = format!("PartitionKey eq {}", quote(FEED));
        if let Some(cursor) = &query.cursor {
            filter.push_str(&format!(" and RowKey gt {}", quote(&inverted(&cursor.last_seen()))));
        }
        // The entry's owner and categories are fixed at creation, so the service filters on
        // them before any competition is read; status and tally come from the competition.
        if let Some(viewer) = &query.viewer {
            filter.push_str(&format!(" and {OWNER} ne {}", quote(viewer.as_str())));
        }
        if let Some(category) = &query.category {
            filter.push_str(&format!(" and {} eq true", category_property(category)));
        }
        let mut admitted: Vec<Competition> = Vec::new();
        let mut continuation = None;
        // One more than the page, to know whether another page exists.
        let want = query.limit + 1;
        'pages: loop {
            let (entries, next) = self
                .table
                .query(&filter, None, Some(100), continuation.as_ref())
                .await?;
            let candidates: Vec<CompetitionId> = entries.iter().filter_map(|e| e.str(ID)?.parse().ok()).collect();
            for chunk in candidates.chunks(want) {
                let read = join_all(chunk.iter().map(|id| self.read(id))).await;
                for (id, result) in chunk.iter().zip(read) {
                    match result? {
                        Some((c, _)) if query.admits(&c) => {
                            admitted.push(c);
                            if admitted.len() >= want {
                                break 'pages;
                            }
                        }
                        Some((c, _)) if c.status == Status::Closed => {
                            // A closed competition whose entry was not removed at the close.
                            let _ = self.table.delete(FEED, &inverted(id), "*").await;
                        }
                        Some(_) => {}
                        None => {
                            // Listed, but never stored (an insert that stopped in between) or
                            // deleted. A young entry may be an insert still under way, so only
                            // one older than the grace is removed.
                            let old = created_at(id)
                                .and_then(|t| SystemTime::now().duration_since(t).ok())
                                .is_some_and(|age| age > ORPHAN_FEED_GRACE);
                            if old && let Err(e) = self.table.delete(FEED, &inverted(id), "*").await {
                                tracing::warn!(error = %e, "could not remove a feed entry of a missing competition");
                            }
                        }
                    }
                }
            }
            match next {
                Some(n) => continuation = Some(n),
                None => break,
            }
        }
        Ok(FeedPage::from_one_too_many(admitted, query.limit))
    }

    #[instrument(skip(self, claim), fields(table = self.table.table()))]
    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        let now = claim.now;
        let candidates: Vec<Entity> = match &claim.competition {
            Some(id) => self
                .table
                .get(&id.to_string(), NOTIFICATION, None)
                .await?
                .into_iter()
                .collect(),
            None => self.outbox(now, claim.limit).await?,
        };
        // An absurd lease (past the end of time, or past what Edm.DateTime holds) is the
        // caller's mistake, not a panic.
        let until = claim
            .now
            .checked_add(claim.lease)
            .ok_or_else(|| Error::invalid("lease", "too long"))?;
        let mut lease = Map::new();
        put_time(&mut lease, LEASE_UNTIL, until, "lease")?;
        let mut claimed = Vec::new();
        for entity in candidates {
            if claimed.len() >= claim.limit {
                break;
            }
            if entity.bool(DELIVERED) != Some(false) || lease_until(&entity)? > now {
                continue;
            }
            let (Some(partition), Some(etag)) = (entity.str("PartitionKey"), entity.etag.as_deref()) else {
                continue;
            };
            let notification = notification_of(&entity)?;
            // The ETag makes the claim exclusive: of racing workers, one merge succeeds.
            match self
                .table
                .write(What::Notification, partition, NOTIFICATION, &lease, true, Some(etag))
                .await
            {
                Ok(()) => claimed.push(notification),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }

    #[instrument(skip(self, devices), fields(table = self.table.table(), devices = devices.len()))]
    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let mut props = Map::new();
        for device in devices {
            props.insert(delivered_property(device)?, Value::Bool(true));
        }
        race(PROVIDER, &contention_policy(), || async {
            let entity = self.pending_notification(competition).await?;
            // Only what is not recorded yet: a repeat writes nothing.
            let mut new = props.clone();
            new.retain(|name, _| entity.bool(name) != Some(true));
            if new.is_empty() {
                return Ok(Attempt::Done(()));
            }
            // The ETag keeps a completion (or a lease) in between from being overwritten;
            // the merge adds properties and leaves `LeaseUntil` as it is.
            let etag = required_etag(entity.etag.clone(), "notification")?;
            self.merge_notification(competition, &new, &etag).await
        })
        .await
    }

    #[instrument(skip(self), fields(table = self.table.table()))]
    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()> {
        let mut done = Map::new();
        done.insert(DELIVERED.into(), Value::Bool(true));
        put_time(&mut done, DELIVERED_AT, at, "at")?;
        race(PROVIDER, &contention_policy(), || async {
            let entity = self.pending_notification(competition).await?;
            // Without an ETag the merge could not be conditional; `*` would let two
            // completions both succeed.
            let etag = required_etag(entity.etag.clone(), "notification")?;
            self.merge_notification(competition, &done, &etag).await
        })
        .await?;
        if let Err(e) = self.table.delete(OUTBOX, &competition.to_string(), "*").await {
            tracing::warn!(error = %e, "could not remove a delivered notification from the outbox");
        }
        Ok(())
    }

    #[instrument(skip(self, endpoint), fields(table = self.table.table()))]
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let partition = user_partition(&endpoint.device.user);
        let row = token_row(&endpoint.device.token);
        let props = endpoint_props(endpoint);
        self.table
            .write(What::Device, &partition, &row, &props, false, None)
            .await
    }

    #[instrument(skip(self), fields(table = self.table.table()))]
    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let filter = format!("PartitionKey eq {}", quote(&user_partition(user)));
        let mut out = Vec::new();
        let mut continuation = None;
        loop {
            let (page, next) = self.table.query(&filter, None, None, continuation.as_ref()).await?;
            for entity in page {
                out.push(endpoint_of(&entity)?);
            }
            match next {
                Some(n) => continuation = Some(n),
                None => return Ok(out),
            }
        }
    }

    #[instrument(skip(self, token), fields(table = self.table.table()))]
    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        self.table.delete(&user_partition(user), &token_row(token), "*").await
    }

    /// Exposes the adapter and its `TableClient` (see `docs/architecture.md`).
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self, self.client()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competitions_are_dated_by_their_ulid() {
        let id: CompetitionId = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("id");
        assert_eq!(
            created_at(&id).and_then(|t| t.duration_since(UNIX_EPOCH).ok()),
            Some(Duration::from_millis(1_469_922_850_259))
        );
        let fresh = created_at(&CompetitionId::new()).expect("dated");
        assert!(SystemTime::now().duration_since(fresh).unwrap_or_default() < ORPHAN_FEED_GRACE);
    }

    #[test]
    fn inverted_ids_sort_newest_first() {
        let older = CompetitionId::new();
        let newer = CompetitionId::new();
        assert!(older < newer);
        assert!(inverted(&newer) < inverted(&older));
        assert_eq!(inverted(&older).len(), 26);
    }

    #[test]
    fn keys_hold_only_allowed_characters() {
        let user = UserId::new("auth0|a.b@c:d").expect("user");
        for key in [vote_row(&user), user_partition(&user), token_row("a/b#c?\\")] {
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{key}"
            );
        }
        assert_ne!(
            vote_row(&UserId::new("UPPER").expect("u")),
            vote_row(&UserId::new("upper").expect("u"))
        );
    }
}
