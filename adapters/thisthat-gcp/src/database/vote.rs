//! The vote algorithm: one batch read of the competition and the voter's vote document, the
//! one decision ([`adapter::decide_vote`]), then one atomic `Commit` whose every write is
//! conditioned on what was read; a lost race reads and decides again through
//! [`adapter::race`].

use firestore::gcloud_sdk::google::firestore::v1::{Document, Write};
use thisthat_core::{
    Competition, Error, Result, Vote, VoteReceipt,
    adapter::{self, Attempt, VoteDecision},
};

use super::{
    FirestoreDatabase,
    codec::{STANDING_FIELDS, competition_of, counted_vote, notification_fields, standing_fields, vote_fields},
    rpc::{contended, exists, unanswered, updated_at, upsert},
};
use crate::error::firestore_status;

/// How often a vote's commit that ended without an answer is read again and, if it did not
/// land, sent again inside the adapter before the error goes to the caller.
const UNANSWERED_RETRIES: u32 = 2;

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

impl FirestoreDatabase {
    /// The two documents a vote reads: the competition and the voter's vote, in one request.
    async fn read_for_vote(&self, vote: &Vote) -> Result<[Option<Document>; 2]> {
        let names = [self.competition_name(&vote.competition), self.vote_name(vote)];
        let mut docs = self.rpc.batch_get(&names).await.map_err(firestore_status)?.into_iter();
        Ok([docs.next().flatten(), docs.next().flatten()])
    }

    /// Decides a vote from what was read: its rejection, its earlier receipt, or the receipt
    /// and the writes of the one atomic commit that records it. Every write is conditioned on
    /// what was read, so the commit holds only if nothing changed in between.
    fn plan(&self, vote: &Vote, docs: &[Option<Document>; 2]) -> Result<Plan> {
        let stored: Option<Competition> = docs[0]
            .as_ref()
            .map(|doc| competition_of(vote.competition, doc))
            .transpose()?;
        let earlier = docs[1]
            .as_ref()
            .map(|doc| counted_vote(doc, stored.as_ref()))
            .transpose()?;
        let decision = adapter::decide_vote(vote, stored.as_ref().map(Competition::standing), earlier)?;
        let (standing, receipt, notification) = match decision {
            VoteDecision::Repeat(receipt) => return Ok(Plan::Repeat(receipt)),
            VoteDecision::Count {
                standing,
                receipt,
                notification,
            } => (standing, receipt, notification),
        };
        let Some(competition) = &docs[0] else {
            return Err(Error::not_found(thisthat_core::Entity::Competition, vote.competition));
        };
        let mut writes = vec![
            // The vote document must not exist: one vote per voter, whatever races. It keeps
            // the receipt, so that the same vote sent again is answered with it.
            upsert(
                self.vote_name(vote),
                vote_fields(vote.voter.as_str(), vote.choice, &receipt),
                None,
                exists(false),
            ),
            // The standing, only if the competition is exactly as read: a vote counted
            // elsewhere in between changes its update time and fails this commit.
            upsert(
                competition.name.clone(),
                standing_fields(&standing, receipt.closed.as_ref())?,
                Some(&STANDING_FIELDS),
                updated_at(competition)?,
            ),
        ];
        if let Some(notification) = notification {
            writes.push(upsert(
                self.notification_name(&vote.competition),
                notification_fields(&notification)?,
                None,
                exists(false),
            ));
        }
        Ok(Plan::Count(receipt, writes))
    }

    /// Casts a vote (see [`FirestoreDatabase`]'s docs for the design).
    pub(super) async fn vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        // Read first, outside the lock: rejections (already voted, closed, the owner) and
        // repeats are final after this one request and never wait behind other voters.
        let ticket = self.vote_locks.ticket(&vote.competition);
        let docs = self.read_for_vote(vote).await?;
        let (receipt, writes) = match self.plan(vote, &docs)? {
            Plan::Repeat(receipt) => return Ok(receipt),
            Plan::Count(receipt, writes) => (receipt, writes),
        };
        let (_turn, stale) = self.vote_locks.turn(ticket).await?;
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
                None => match self.plan(vote, &self.read_for_vote(vote).await?)? {
                    // An earlier commit of this vote landed although its answer was lost.
                    Plan::Repeat(receipt) => return Ok(Attempt::Done(receipt)),
                    Plan::Count(receipt, writes) => (receipt, writes),
                },
            };
            match self.rpc.commit(writes).await {
                Ok(()) => Ok(Attempt::Done(receipt)),
                // The commit may have landed with its reply lost. The vote document's "must
                // not exist" precondition makes sending it again safe; reading again first
                // tells a vote that landed (answered with its stored receipt) from one that
                // did not.
                Err(s) if unanswered(&s) && attempt.unanswered < UNANSWERED_RETRIES => {
                    attempt.unanswered += 1;
                    tracing::debug!(status = %s, "a vote's commit ended without an answer; reading whether it landed");
                    Ok(Attempt::LostRace)
                }
                // A precondition failed: someone else's vote (in another process) landed since
                // the read. Read again and decide again.
                Err(s) if contended(&s) => Ok(Attempt::LostRace),
                Err(s) => Err(firestore_status(s)),
            }
        })
        .await
    }
}
