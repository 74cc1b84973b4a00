//! The vote algorithm: one conditional `UpdateItem` with the ballot on the competition's
//! item, a second one for the closing vote, and the one decision
//! ([`thisthat_core::adapter::decide_vote`]) on whatever a condition refused.

use std::sync::Mutex;

use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use thisthat_core::{
    Error, Result, Status, Vote, VoteReceipt,
    adapter::{Attempt, VoteDecision, contention_policy, decide_vote, race},
};

use super::{
    Capacity, DynamoDatabase, Item, SERVICE, billed,
    codec::{PENDING, ballot, competition_pk, earlier_vote, n, outcome_attribute, s, standing_from, tally},
    conditional,
};

/// A vote's choice is written into the update expression as a list index, so an absurd one
/// is never sent: it is checked against the stored photo count after a read instead.
pub(super) const MAX_INDEX_IN_EXPRESSION: usize = 64;

impl DynamoDatabase {
    /// Counts `vote`: attempts ([`DynamoDatabase::try_vote`]) run through
    /// [`race`] with [`contention_policy`], so that a vote that keeps losing to other closers
    /// ends as [`Error::Busy`].
    pub(super) async fn vote(&self, vote: &Vote) -> Result<VoteReceipt> {
        let known = Mutex::new(None);
        race(SERVICE, &contention_policy(), || self.try_vote(vote, &known)).await
    }

    /// Tries to count `vote` as one that does not close the competition. `Err(item)` is the
    /// competition as it was when the condition failed (`None`: there is none).
    ///
    /// The ballot's turn is copied from `remaining` by the update itself: DynamoDB reads every
    /// operand of an update from the item as it was before it, so the turn is the number of
    /// votes that remained when this one counted, which is what makes its receipt
    /// recoverable later ([`earlier_vote`]).
    pub(super) async fn count(&self, vote: &Vote) -> Result<std::result::Result<VoteReceipt, Option<Item>>> {
        let index = vote.choice;
        let result = self
            .update(&vote.competition)
            .update_expression(format!(
                "SET #ballots.#voter = :ballot, #turns.#voter = #remaining, #tally[{index}] = #tally[{index}] + :one, \
                 #remaining = #remaining - :one"
            ))
            .condition_expression(
                "#status = :open AND #owner <> :voter AND attribute_not_exists(#ballots.#voter) \
                 AND #remaining > :one AND #photos > :choice",
            )
            .expression_attribute_names("#tally", "tally")
            .expression_attribute_names("#ballots", "ballots")
            .expression_attribute_names("#turns", "turns")
            .expression_attribute_names("#voter", vote.voter.as_str())
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#photos", "photo_count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":choice", n(index))
            .expression_attribute_values(":ballot", ballot(index, false))
            .expression_attribute_values(":open", s(Status::Open.as_str()))
            .expression_attribute_values(":voter", s(vote.voter.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match conditional(result)? {
            Ok(output) => {
                billed(Capacity::Write, output.consumed_capacity());
                let item = output.attributes.unwrap_or_default();
                Ok(Ok(VoteReceipt {
                    tally: tally(&item)?,
                    closed: None,
                }))
            }
            Err(item) => Ok(Err(item)),
        }
    }

    /// Counts the closing vote, closes the competition, stores its outcome and records the
    /// pending notification, on condition that one vote remains (no other vote can then have
    /// changed the tally the outcome was computed from). `Err(item)` as in
    /// [`DynamoDatabase::count`].
    pub(super) async fn close(
        &self,
        vote: &Vote,
        receipt: &VoteReceipt,
    ) -> Result<std::result::Result<(), Option<Item>>> {
        let index = vote.choice;
        let outcome = receipt
            .closed
            .as_ref()
            .ok_or_else(|| Error::backend(SERVICE, "a closing vote's receipt has no outcome"))?;
        let result = self
            .update(&vote.competition)
            .update_expression(format!(
                "SET #tally[{index}] = #tally[{index}] + :one, #ballots.#voter = :ballot, #turns.#voter = :one, \
                 #remaining = :zero, #status = :closed, #outcome = :outcome, #pending = :pending REMOVE #feed"
            ))
            .condition_expression(
                "#status = :open AND #owner <> :voter AND attribute_not_exists(#ballots.#voter) AND #remaining = :one",
            )
            .expression_attribute_names("#tally", "tally")
            .expression_attribute_names("#ballots", "ballots")
            .expression_attribute_names("#turns", "turns")
            .expression_attribute_names("#voter", vote.voter.as_str())
            .expression_attribute_names("#remaining", "remaining")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#outcome", "outcome")
            .expression_attribute_names("#pending", "pending")
            .expression_attribute_names("#feed", "feed")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":ballot", ballot(index, true))
            .expression_attribute_values(":open", s(Status::Open.as_str()))
            .expression_attribute_values(":closed", s(Status::Closed.as_str()))
            .expression_attribute_values(":voter", s(vote.voter.as_str()))
            .expression_attribute_values(":outcome", outcome_attribute(outcome))
            .expression_attribute_values(":pending", s(PENDING))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(conditional(result)?.map(|output| billed(Capacity::Write, output.consumed_capacity())))
    }

    /// One attempt at a vote (see [`race`]): the blind count, or, when it was refused, the one
    /// decision ([`decide_vote`]) on the item it was refused on, and the close if it closes.
    /// `known` carries a refused close's item to the next attempt, which then decides on it
    /// instead of asking again.
    pub(super) async fn try_vote(
        &self,
        vote: &Vote,
        known: &Mutex<Option<Option<Item>>>,
    ) -> Result<Attempt<VoteReceipt>> {
        let carried = known.lock().map(|mut k| k.take()).unwrap_or_default();
        let item = match carried {
            Some(item) => item,
            None if vote.choice < MAX_INDEX_IN_EXPRESSION => match self.count(vote).await? {
                Ok(receipt) => return Ok(Attempt::Done(receipt)),
                Err(item) => item,
            },
            None => self.get(competition_pk(&vote.competition)).await?,
        };
        let (standing, earlier) = match &item {
            Some(item) => (Some(standing_from(item)?), earlier_vote(item, &vote.voter)?),
            None => (None, None),
        };
        match decide_vote(vote, standing, earlier)? {
            VoteDecision::Repeat(receipt) => Ok(Attempt::Done(receipt)),
            VoteDecision::Count {
                receipt,
                notification: Some(_),
                ..
            } => match self.close(vote, &receipt).await? {
                Ok(()) => Ok(Attempt::Done(receipt)),
                Err(refused) => {
                    if let Ok(mut k) = known.lock() {
                        *k = Some(refused);
                    }
                    Ok(Attempt::LostRace)
                }
            },
            VoteDecision::Count { .. } if vote.choice >= MAX_INDEX_IN_EXPRESSION => Err(Error::Unsupported {
                adapter: "dynamodb",
                operation: "votes on a competition of more than 64 photos",
            }),
            // The rules allow a vote the blind count refused: the competition changed between
            // the two (it cannot, since the refusal carries the state it was refused on, but
            // trying again is the safe answer).
            VoteDecision::Count { .. } => Ok(Attempt::LostRace),
        }
    }
}
