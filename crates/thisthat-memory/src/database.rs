use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::SystemTime,
};

use async_trait::async_trait;
use thisthat_core::{
    Competition, CompetitionId, Endpoint, Entity, Error, FeedPage, FeedQuery, Notification, Result, Status, UserId,
    Vote, VoteReceipt,
    adapter::{CountedVote, VoteDecision, decide_vote},
    ports::{Database, NotificationClaim},
};

#[derive(Debug)]
enum Delivery {
    Pending { leased_until: Option<SystemTime> },
    Done,
}

#[derive(Debug, Default)]
struct State {
    competitions: BTreeMap<CompetitionId, Competition>,
    /// Each counted vote with its choice and receipt, so that a repeat gets the same answer.
    votes: HashMap<(CompetitionId, UserId), (usize, VoteReceipt)>,
    notifications: BTreeMap<CompetitionId, (Notification, Delivery)>,
    endpoints: BTreeMap<(UserId, String), Endpoint>,
}

/// Competitions, votes, devices and the notification outbox in maps under one lock: every
/// operation is one atomic step, as the [`Database`] port requires.
#[derive(Debug, Default)]
pub struct MemoryDatabase {
    state: Mutex<State>,
}

impl MemoryDatabase {
    /// An empty database.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every operation validates before it writes, so a panic mid-operation (there is none
        // on any input) could not leave a half-written state behind.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many votes are recorded in all.
    pub fn vote_count(&self) -> usize {
        self.lock().votes.len()
    }

    /// How many notifications are still pending.
    pub fn pending_notifications(&self) -> usize {
        self.lock()
            .notifications
            .values()
            .filter(|(_, d)| matches!(d, Delivery::Pending { .. }))
            .count()
    }
}

#[async_trait]
impl Database for MemoryDatabase {
    async fn insert_competition(&self, competition: &Competition) -> Result<()> {
        let mut state = self.lock();
        if state.competitions.contains_key(&competition.id) {
            return Err(Error::conflict(format!(
                "competition {} already exists",
                competition.id
            )));
        }
        state.competitions.insert(competition.id, competition.clone());
        Ok(())
    }

    async fn publish_competition(&self, competition: &Competition) -> Result<()> {
        let mut state = self.lock();
        let stored = state
            .competitions
            .get_mut(&competition.id)
            .ok_or_else(|| Error::not_found(Entity::Competition, competition.id))?;
        if stored.status != Status::Draft {
            return Err(Error::conflict("the competition is no longer a draft"));
        }
        *stored = competition.clone();
        Ok(())
    }

    async fn delete_draft(&self, id: &CompetitionId) -> Result<()> {
        let mut state = self.lock();
        match state.competitions.get(id).map(|c| c.status) {
            None => Ok(()),
            Some(Status::Draft) => {
                state.competitions.remove(id);
                Ok(())
            }
            Some(_) => Err(Error::conflict("only drafts can be deleted")),
        }
    }

    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>> {
        let bound = CompetitionId::first_at(before);
        let mut drafts: Vec<CompetitionId> = self
            .lock()
            .competitions
            .values()
            .filter(|c| c.status == Status::Draft && c.id < bound)
            .map(|c| c.id)
            .collect();
        drafts.sort();
        drafts.truncate(limit);
        Ok(drafts)
    }

    async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        self.lock()
            .competitions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(Entity::Competition, id))
    }

    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        let mut state = self.lock();
        let State {
            competitions,
            votes,
            notifications,
            ..
        } = &mut *state;
        let key = (vote.competition, vote.voter.clone());
        let stored = competitions.get(&vote.competition).map(Competition::standing);
        let earlier = votes.get(&key).map(|(choice, receipt)| CountedVote {
            choice: *choice,
            receipt: Some(receipt.clone()),
        });
        let (standing, receipt, notification) = match decide_vote(vote, stored, earlier)? {
            VoteDecision::Repeat(receipt) => return Ok(receipt),
            VoteDecision::Count {
                standing,
                receipt,
                notification,
            } => (standing, receipt, notification),
        };
        let competition = competitions
            .get_mut(&vote.competition)
            .ok_or_else(|| Error::not_found(Entity::Competition, vote.competition))?;
        competition.status = standing.status;
        competition.tally = standing.tally;
        competition.outcome = receipt.closed.clone();
        if let Some(notification) = notification {
            notifications.insert(
                vote.competition,
                (*notification, Delivery::Pending { leased_until: None }),
            );
        }
        votes.insert(key, (vote.choice, receipt.clone()));
        Ok(receipt)
    }

    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        let state = self.lock();
        let page: Vec<Competition> = state
            .competitions
            .values()
            .rev()
            .filter(|c| query.admits(c))
            .filter(|c| {
                query
                    .viewer
                    .as_ref()
                    .is_none_or(|v| !state.votes.contains_key(&(c.id, v.clone())))
            })
            .take(query.limit + 1)
            .cloned()
            .collect();
        Ok(FeedPage::from_one_too_many(page, query.limit))
    }

    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>> {
        let mut state = self.lock();
        let mut claimed = Vec::new();
        for (id, (notification, delivery)) in state.notifications.iter_mut() {
            if claimed.len() >= claim.limit {
                break;
            }
            if claim.competition.is_some_and(|c| c != *id) {
                continue;
            }
            if let Delivery::Pending { leased_until } = delivery
                && leased_until.is_none_or(|until| until <= claim.now)
            {
                *leased_until = Some(claim.now.checked_add(claim.lease).unwrap_or(claim.now));
                claimed.push(notification.clone());
            }
        }
        Ok(claimed)
    }

    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()> {
        let mut state = self.lock();
        let (notification, delivery) = state
            .notifications
            .get_mut(competition)
            .ok_or_else(|| Error::not_found(Entity::Notification, competition))?;
        if matches!(delivery, Delivery::Done) {
            return Err(Error::conflict("the notification was already delivered"));
        }
        for device in devices {
            if !notification.delivered_to.contains(device) {
                notification.delivered_to.push(device.clone());
            }
        }
        Ok(())
    }

    async fn complete_notification(&self, competition: &CompetitionId, _at: SystemTime) -> Result<()> {
        let mut state = self.lock();
        let (_, delivery) = state
            .notifications
            .get_mut(competition)
            .ok_or_else(|| Error::not_found(Entity::Notification, competition))?;
        if matches!(delivery, Delivery::Done) {
            return Err(Error::conflict("the notification was already delivered"));
        }
        *delivery = Delivery::Done;
        Ok(())
    }

    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()> {
        let key = (endpoint.device.user.clone(), endpoint.device.token.clone());
        self.lock().endpoints.insert(key, endpoint.clone());
        Ok(())
    }

    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>> {
        let state = self.lock();
        Ok(state
            .endpoints
            .iter()
            .filter(|((u, _), _)| u == user)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()> {
        self.lock().endpoints.remove(&(user.clone(), token.to_string()));
        Ok(())
    }

    /// Exposes the adapter itself, for its inspection methods.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }
}
