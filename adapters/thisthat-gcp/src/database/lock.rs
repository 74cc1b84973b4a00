//! In-process turns for the votes of one competition: a lock per competition, striped over
//! [`VOTE_LOCKS`] locks, so that the votes of one process do not fail each other's
//! preconditions. Across processes Firestore's preconditions decide.

use std::{
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use thisthat_core::{CompetitionId, Error, Result};

/// How many locks votes of this process are spread over.
pub(crate) const VOTE_LOCKS: usize = 64;

/// The longest a vote waits for its turn at the in-process lock before it gives up with
/// [`Error::Busy`]: the caller gets an answer rather than an unbounded wait behind a queue of
/// voters.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The striped locks, with a count per lock of the turns that ended: a vote that read before a
/// turn ended read what that turn may have changed.
#[derive(Clone)]
pub(crate) struct VoteLocks {
    locks: Arc<[tokio::sync::Mutex<()>]>,
    turns: Arc<[AtomicU64]>,
}

/// Where a vote stands in its competition's queue: the stripe, and how many turns had ended
/// when it read.
pub(crate) struct Ticket {
    stripe: usize,
    seen: u64,
}

impl VoteLocks {
    pub(crate) fn new() -> Self {
        VoteLocks {
            locks: (0..VOTE_LOCKS).map(|_| tokio::sync::Mutex::new(())).collect(),
            turns: (0..VOTE_LOCKS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Call before reading: notes how many turns of `competition`'s stripe had ended.
    pub(crate) fn ticket(&self, competition: &CompetitionId) -> Ticket {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        competition.hash(&mut hasher);
        let stripe = (hasher.finish() % VOTE_LOCKS as u64) as usize;
        Ticket {
            stripe,
            seen: self.turns[stripe].load(Ordering::Acquire),
        }
    }

    /// Waits at most [`LOCK_WAIT`] for the ticket's turn; see [`take_turn`].
    pub(crate) async fn turn(&self, ticket: Ticket) -> Result<(Turn<'_>, bool)> {
        take_turn(
            &self.locks[ticket.stripe],
            &self.turns[ticket.stripe],
            ticket.seen,
            LOCK_WAIT,
        )
        .await
    }
}

/// A vote's turn at its competition's in-process lock. Ending it (dropping it) counts the
/// turn, before the lock is released, so a vote that read earlier knows to read again.
pub(crate) struct Turn<'a> {
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
        Error::Busy {
            provider: "firestore",
            attempts: 1,
            source: None,
        }
    })?;
    Ok((Turn { _guard: guard, turns }, true))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let waited = waited.err();
        assert!(matches!(waited, Some(Error::Busy { .. })), "{waited:?}");
        assert!(
            !waited.is_some_and(|e| e.is_retryable()),
            "a retry layer does not wait again"
        );
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
}
