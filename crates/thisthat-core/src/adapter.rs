//! The toolkit adapter crates share, so that a decision every database or store makes is
//! written once, here, instead of once per provider (the role of Go CDK's `driver` helpers).
//!
//! - [`decide_vote`]: the one vote decision, in one documented precedence, including the
//!   answer to a vote sent again after its reply was lost.
//! - [`Notification::closing`](crate::Notification::closing): the notification a closing vote
//!   records.
//! - [`Status::as_str`](crate::Status::as_str) and [`Status::from_name`](crate::Status::from_name):
//!   how a status is stored.
//! - [`race`] and [`contention_policy`]: the one optimistic loop, whose exhaustion is
//!   [`Error::Busy`] (never retried again by a retry layer).
//! - [`unix_millis`] and [`from_unix_millis`]: how a time is stored, with one overflow rule.
//! - [`hex`]: lower-case hex, as signatures and hashed ids are written.
//! - [`utc_date`]: a time's UTC calendar date, as signatures and price tables write it.
//!
//! ```
//! use thisthat_core::{adapter::{decide_vote, CountedVote, VoteDecision}, CompetitionId, Standing, Status, Tally, UserId, Vote};
//!
//! let standing = Standing {
//!     id: CompetitionId::new(),
//!     owner: UserId::new("alice").unwrap(),
//!     title: None,
//!     status: Status::Open,
//!     photos: 3,
//!     tally: Tally::zero(3),
//!     votes_to_close: 24,
//! };
//! let vote = Vote { competition: standing.id, voter: UserId::new("bob").unwrap(), choice: 1 };
//! let VoteDecision::Count { receipt, .. } = decide_vote(&vote, Some(standing.clone()), None).unwrap() else { unreachable!() };
//! // Bob's phone lost the reply and sends the same vote again: the database found his vote.
//! let earlier = CountedVote { choice: 1, receipt: Some(receipt.clone()) };
//! assert_eq!(decide_vote(&vote, Some(standing), Some(earlier)).unwrap(), VoteDecision::Repeat(receipt));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Entity, Error, Notification, Result, Standing, Vote, VoteReceipt, layers::RetryPolicy};

/// What a database found of a voter's earlier vote on the competition being voted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedVote {
    /// The photo the earlier vote chose.
    pub choice: usize,
    /// The receipt it was answered with, where the database kept it. Votes stored before
    /// receipts were kept have none: repeating one is [`Error::AlreadyVoted`].
    pub receipt: Option<VoteReceipt>,
}

/// What a database must do with a vote, as [`decide_vote`] decides it. Deliberately not
/// `#[non_exhaustive]`: a new kind of decision must stop every adapter from compiling until it
/// handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteDecision {
    /// Count it: in one atomic step, conditioned on the standing that was read, store
    /// `standing`, the vote with `receipt` (so that a repeat can be answered with it), and,
    /// when the vote closed the competition, `notification` as pending.
    Count {
        /// The standing as it must be stored.
        standing: Standing,
        /// The answer to the voter.
        receipt: VoteReceipt,
        /// Set when this vote closed the competition: the notification to record as pending
        /// in the same step (boxed: most votes close nothing).
        notification: Option<Box<Notification>>,
    },
    /// The voter already cast this very vote (same competition, same choice), typically a
    /// mobile client resending after a lost reply: answer with the original receipt and
    /// write nothing.
    Repeat(VoteReceipt),
}

/// The one decision about a vote, from what a database read: the competition's standing (if
/// it exists) and the voter's earlier vote on it (if any).
///
/// The precedence, the same on every backend and checked by the conformance suite:
/// 1. no such competition: [`Error::NotFound`];
/// 2. the voter voted before: the same choice with a kept receipt is a
///    [`VoteDecision::Repeat`], anything else [`Error::AlreadyVoted`];
/// 3. then the rules of [`Standing::apply`] (draft, own competition, closed, choice out of
///    range).
///
/// A repeat is answered before the rules on purpose: the competition may have closed since
/// (the repeated vote may be the one that closed it), and the voter still gets their receipt.
pub fn decide_vote(vote: &Vote, stored: Option<Standing>, earlier: Option<CountedVote>) -> Result<VoteDecision> {
    let Some(mut standing) = stored else {
        return Err(Error::not_found(Entity::Competition, vote.competition));
    };
    if let Some(earlier) = earlier {
        return match earlier.receipt {
            Some(receipt) if earlier.choice == vote.choice => Ok(VoteDecision::Repeat(receipt)),
            _ => Err(Error::AlreadyVoted),
        };
    }
    let receipt = standing.apply(vote)?;
    let notification = receipt
        .closed
        .as_ref()
        .map(|outcome| Box::new(Notification::closing(&standing, outcome)));
    Ok(VoteDecision::Count {
        standing,
        receipt,
        notification,
    })
}

/// One attempt of an adapter's optimistic read-decide-write loop (see [`race`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// It is decided: this is the answer (or [`race`]'s caller's error).
    Done(T),
    /// Another writer changed what was read before the write landed: read again and decide
    /// again.
    LostRace,
}

/// How adapters' optimistic loops back off between lost races: many short waits with full
/// jitter, so that the voters racing on one competition spread out instead of colliding
/// again. 64 attempts cover the 1,000-voter race of the conformance suite many times over
/// (every round one vote wins, and 24 close it).
pub fn contention_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 64,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(100),
    }
}

/// Runs an adapter's optimistic loop: `attempt` reads, decides and writes conditionally;
/// after a lost race it is run again after a jittered wait from `policy`. When
/// `policy.max_attempts` attempts all lost, the answer is [`Error::Busy`], which no retry
/// layer retries, so that a caller's retries never multiply the adapter's.
///
/// The waits use tokio's timer: call it on a tokio runtime.
pub async fn race<T, F, Fut>(provider: &'static str, policy: &RetryPolicy, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Attempt<T>>>,
{
    let attempts = policy.max_attempts.max(1);
    for n in 0..attempts {
        match attempt().await? {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::LostRace if n + 1 < attempts => {
                let wait = policy.backoff(n, None);
                tracing::trace!(provider, attempt = n + 1, ?wait, "lost a race; reading again");
                tokio::time::sleep(wait).await;
            }
            Attempt::LostRace => {}
        }
    }
    Err(Error::Busy {
        provider,
        attempts,
        source: None,
    })
}

/// A time as Unix milliseconds, the form every database stores exactly. One rule for the
/// edges: a time before 1970 is 0, and one past what an `i64` holds (292 million years) is
/// `i64::MAX`, so a stored time always compares the way the times do.
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// The time `ms` Unix milliseconds stand for; negative values are 1970 (the inverse of
/// [`unix_millis`]'s rule). `None` only where the platform's `SystemTime` cannot hold it.
pub fn from_unix_millis(ms: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The UTC calendar date `(year, month, day)` of `seconds` since 1970, as signatures and
/// price tables write dates (no calendar crate needed for that one conversion). Howard
/// Hinnant's days-to-civil algorithm, proleptic Gregorian calendar.
///
/// ```
/// use thisthat_core::adapter::utc_date;
/// assert_eq!(utc_date(0), (1970, 1, 1));
/// assert_eq!(utc_date(1_709_210_096), (2024, 2, 29)); // a leap day
/// ```
pub fn utc_date(seconds: u64) -> (i64, u32, u32) {
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both in range by construction (1..=31 and 1..=12).
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompetitionId, Status, Tally, UserId};

    fn standing() -> Standing {
        Standing {
            id: CompetitionId::new(),
            owner: UserId::new("alice").expect("user"),
            title: Some("Which?".into()),
            status: Status::Open,
            photos: 3,
            tally: Tally::zero(3),
            votes_to_close: 2,
        }
    }

    fn vote(s: &Standing, voter: &str, choice: usize) -> Vote {
        Vote {
            competition: s.id,
            voter: UserId::new(voter).expect("user"),
            choice,
        }
    }

    #[test]
    fn precedence_is_missing_then_earlier_vote_then_rules() {
        let s = standing();
        let missing = decide_vote(&vote(&s, "bob", 0), None, None);
        assert!(matches!(missing, Err(Error::NotFound { .. })), "{missing:?}");
        // The owner "voting again" with another choice: already voted wins over own
        // competition, because the earlier vote is what the database found first.
        let earlier = CountedVote {
            choice: 0,
            receipt: None,
        };
        let again = decide_vote(&vote(&s, "alice", 1), Some(s.clone()), Some(earlier));
        assert!(matches!(again, Err(Error::AlreadyVoted)), "{again:?}");
        let own = decide_vote(&vote(&s, "alice", 1), Some(s.clone()), None);
        assert!(matches!(own, Err(Error::OwnCompetition)), "{own:?}");
        let out_of_range = decide_vote(&vote(&s, "bob", 3), Some(s), None);
        assert!(
            matches!(out_of_range, Err(Error::InvalidInput { field: "choice", .. })),
            "{out_of_range:?}"
        );
    }

    #[test]
    fn the_closing_vote_carries_its_notification_and_a_repeat_its_receipt() {
        let s = standing();
        let Ok(VoteDecision::Count { standing: s, .. }) = decide_vote(&vote(&s, "bob", 0), Some(s.clone()), None)
        else {
            panic!("the first vote counts");
        };
        let Ok(VoteDecision::Count {
            standing: closed,
            receipt,
            notification,
        }) = decide_vote(&vote(&s, "carol", 1), Some(s.clone()), None)
        else {
            panic!("the second vote counts");
        };
        assert_eq!(closed.status, Status::Closed);
        let outcome = receipt.closed.clone().expect("the second of two closes it");
        assert_eq!(
            notification.map(|n| *n),
            Some(Notification {
                competition: s.id,
                owner: s.owner.clone(),
                title: Some("Which?".into()),
                outcome,
                delivered_to: Vec::new(),
            })
        );
        // Carol resends after a lost reply: the competition is closed now, and she still
        // gets the receipt of the vote that closed it.
        let earlier = CountedVote {
            choice: 1,
            receipt: Some(receipt.clone()),
        };
        assert_eq!(
            decide_vote(&vote(&s, "carol", 1), Some(closed.clone()), Some(earlier.clone())).expect("repeat"),
            VoteDecision::Repeat(receipt)
        );
        // The same voter with another choice is still a second vote.
        let other = decide_vote(&vote(&s, "carol", 2), Some(closed), Some(earlier));
        assert!(matches!(other, Err(Error::AlreadyVoted)), "{other:?}");
    }

    #[tokio::test]
    async fn races_end_decided_or_busy_never_retryable() {
        let fast = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let mut tries = 0;
        let won = race("p", &fast, || {
            tries += 1;
            let lost = tries < 3;
            async move { Ok(if lost { Attempt::LostRace } else { Attempt::Done(7) }) }
        })
        .await;
        assert_eq!(won.ok(), Some(7));
        let mut tries = 0;
        let lost: Result<()> = race("p", &fast, || {
            tries += 1;
            async { Ok(Attempt::LostRace) }
        })
        .await;
        assert_eq!(tries, 3);
        assert!(matches!(lost, Err(Error::Busy { attempts: 3, .. })), "{lost:?}");
        assert!(!lost.err().is_some_and(|e| e.is_retryable()));
    }

    #[test]
    fn millis_saturate_at_both_ends_and_round_trip() {
        let now = SystemTime::now();
        let ms = unix_millis(now);
        assert!(ms > 0);
        let back = from_unix_millis(ms).expect("representable");
        assert!(now.duration_since(back).expect("not after") < Duration::from_millis(1));
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_unix_millis(-5), Some(UNIX_EPOCH));
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
