//! The vote algorithm: one read of the competition and the voter's row, the decision
//! ([`decide_vote`]), one entity-group batch guarded by the read's ETag. `mod.rs` runs it in
//! [`race`](thisthat_core::adapter::race).

use super::*;

impl AzureTableDatabase {
    /// One attempt at a vote: [`Attempt::LostRace`] when another vote changed the standing
    /// (or this voter's row) in between.
    pub(super) async fn try_vote(&self, vote: &Vote) -> Result<Attempt<VoteReceipt>> {
        let partition = vote.competition.to_string();
        let vote_key = vote_row(&vote.voter);
        // One request reads both rows a vote decides on: the competition and this voter's
        // vote, if any (whose receipt answers a repeat).
        let filter = format!(
            "PartitionKey eq {} and (RowKey eq {} or RowKey eq {})",
            quote(&partition),
            quote(COMPETITION),
            quote(&vote_key)
        );
        let (mut competition, mut voted) = (None, None);
        let mut continuation = None;
        loop {
            // The service may end a page early with a continuation; for two rows of one
            // partition that is rare, and following it keeps the answer complete.
            let (rows, next) = self.table.query(&filter, None, None, continuation.as_ref()).await?;
            for row in rows {
                match row.str("RowKey") {
                    Some(COMPETITION) => competition = Some(row),
                    Some(key) if key == vote_key => voted = Some(row),
                    _ => {}
                }
            }
            match next {
                Some(n) => continuation = Some(n),
                None => break,
            }
        }
        let standing: Option<Standing> = competition.as_ref().map(standing_of).transpose()?;
        let earlier = match (&voted, &competition) {
            (Some(row), Some(c)) => Some(counted_vote(row, c)?),
            // No competition: `decide_vote` answers NotFound before looking at a vote.
            _ => None,
        };
        let (standing, receipt, notification) = match decide_vote(vote, standing, earlier)? {
            VoteDecision::Repeat(receipt) => return Ok(Attempt::Done(receipt)),
            VoteDecision::Count {
                standing,
                receipt,
                notification,
            } => (standing, receipt, notification),
        };
        let Some(entity) = competition else {
            return Err(Error::not_found(What::Competition, vote.competition));
        };
        let etag = required_etag(entity.etag.clone(), "competition")?;
        // The receipt is kept on the vote row, for a repeat of this vote.
        let mut ops = vec![BatchOp::Insert(vote_props(vote, &receipt)?)];
        // The new status and tally, and at the close the outcome, in the same merge.
        let update = standing_props(&standing, receipt.closed.as_ref())?;
        if let (Some(_), Some(notification)) = (&receipt.closed, notification) {
            let n = notification_props(&notification)?;
            ops.push(BatchOp::Merge {
                partition: partition.clone(),
                row: COMPETITION.into(),
                props: update,
                if_match: etag,
            });
            ops.push(BatchOp::Insert(n));
            // Listed in the outbox before the batch, so no crash can leave a pending
            // notification that `claim_notifications` does not find. If the batch then loses
            // its race, the entry waits for whichever vote does close the competition.
            self.mark_outbox(&partition).await?;
        } else {
            ops.push(BatchOp::Merge {
                partition: partition.clone(),
                row: COMPETITION.into(),
                props: update,
                if_match: etag,
            });
        }
        match self.table.batch(&ops).await? {
            Ok(()) => {
                if receipt.closed.is_some() {
                    // Off the feed; readers also check the status, so a failure here only
                    // leaves an entry they skip.
                    if let Err(e) = self.table.delete(FEED, &inverted(&vote.competition), "*").await {
                        tracing::warn!(error = %e, "could not remove a closed competition from the feed");
                    }
                }
                Ok(Attempt::Done(receipt))
            }
            Err(failure) => match refusal(&failure) {
                Refusal::ReadAgain => Ok(Attempt::LostRace),
                _ => Err(batch_error(vote, self.table.table(), failure)),
            },
        }
    }
}
