use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;

use super::{Call, Interceptor};
use crate::{Error, Result};

/// How often [`Chaos`] disturbs the calls of one port operation (or of every operation, see
/// [`Chaos::new`]). The three ratios are shares of calls, each from `0.0` to `1.0`, and add up
/// to at most `1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faults {
    /// The call is not made; it fails with [`Error::Unavailable`] at once, as a provider that
    /// refused it would.
    pub fail: f64,
    /// The call is made, then its reply is lost: the caller gets [`Error::Unavailable`] although
    /// the call took effect, as after a dropped connection.
    pub lose_reply: f64,
    /// The call is made after a wait of up to [`Faults::max_delay`].
    pub delay: f64,
    /// The longest injected wait.
    pub max_delay: Duration,
}

impl Faults {
    /// No faults.
    pub const NONE: Faults = Faults {
        fail: 0.0,
        lose_reply: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
    };

    /// `ratio` of the calls disturbed, split evenly between the three kinds (so 0.2 fails
    /// about 7% of calls, loses the reply of 7% and delays 7% by up to 20 ms).
    pub fn evenly(ratio: f64) -> Faults {
        let third = ratio / 3.0;
        Faults {
            fail: third,
            lose_reply: third,
            delay: third,
            max_delay: Duration::from_millis(20),
        }
    }

    fn check(&self) -> Result<()> {
        let ok = |r: f64| (0.0..=1.0).contains(&r);
        if !(ok(self.fail) && ok(self.lose_reply) && ok(self.delay)) || self.fail + self.lose_reply + self.delay > 1.0 {
            return Err(Error::invalid(
                "faults",
                "each ratio is from 0.0 to 1.0 and together they are at most 1.0",
            ));
        }
        Ok(())
    }
}

/// What [`Chaos`] did, per port and operation (`"database.cast_vote"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChaosReport {
    /// The seed of the run: the same seed replays the same faults (see [`Chaos`]).
    pub seed: u64,
    /// Per `port.operation`: calls seen, and the faults injected into them.
    pub operations: std::collections::BTreeMap<String, FaultCounts>,
}

/// Calls seen and faults injected for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Calls that reached the layer.
    pub calls: u64,
    /// Calls failed before they were made.
    pub failed: u64,
    /// Calls made whose reply was lost.
    pub lost_replies: u64,
    /// Calls delayed.
    pub delayed: u64,
}

impl ChaosReport {
    /// The totals over every operation.
    pub fn total(&self) -> FaultCounts {
        self.operations.values().fold(FaultCounts::default(), |mut t, c| {
            t.calls += c.calls;
            t.failed += c.failed;
            t.lost_replies += c.lost_replies;
            t.delayed += c.delayed;
            t
        })
    }
}

#[derive(Debug)]
struct State {
    /// Per operation: how many calls it has seen, which places each call in its operation's
    /// own sequence of draws.
    counts: HashMap<Call, FaultCounts>,
}

/// A seeded fault injector for any port (an [`Interceptor`]): at a ratio per port and
/// operation it fails a call before it is made, makes it and loses its reply, or delays it.
///
/// Every decision is a function of the seed, the operation and the call's place among that
/// operation's calls, so the same seed gives the same faults to the same sequence of calls,
/// and a failure can be replayed from the seed the run printed ([`Chaos::seed`]). With
/// concurrent callers, which call comes n-th depends on scheduling, so a replay meets the
/// same faults in the same places but not necessarily on the same callers.
///
/// ```
/// use std::time::Duration;
/// use thisthat_core::layers::{Chaos, Faults};
///
/// // 20% of every call disturbed, and a third of notifier sends failing outright.
/// let chaos = Chaos::new(7, Faults::evenly(0.2))
///     .unwrap()
///     .with("notifier", "send", Faults { fail: 0.33, ..Faults::NONE })
///     .unwrap();
/// assert_eq!(chaos.seed(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct Chaos {
    seed: u64,
    default: Faults,
    rules: Vec<(&'static str, Option<&'static str>, Faults)>,
    state: Arc<Mutex<State>>,
}

impl Chaos {
    /// A chaos layer applying `default` to every operation of every port. Invalid ratios are
    /// [`Error::InvalidInput`].
    pub fn new(seed: u64, default: Faults) -> Result<Chaos> {
        default.check()?;
        Ok(Chaos {
            seed,
            default,
            rules: Vec::new(),
            state: Arc::new(Mutex::new(State { counts: HashMap::new() })),
        })
    }

    /// A seed from `THISTHAT_CHAOS_SEED` if set (to replay a run), else a fresh one: print
    /// it with the run's results.
    pub fn seed_from_env() -> Result<u64> {
        match std::env::var("THISTHAT_CHAOS_SEED") {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| Error::invalid("THISTHAT_CHAOS_SEED", "must be a whole number")),
            Err(_) => Ok(fastrand::u64(..)),
        }
    }

    /// Uses `faults` for `port`'s `operation` instead of the default.
    pub fn with(mut self, port: &'static str, operation: &'static str, faults: Faults) -> Result<Chaos> {
        faults.check()?;
        self.rules.push((port, Some(operation), faults));
        Ok(self)
    }

    /// Uses `faults` for every operation of `port` that has no rule of its own.
    pub fn with_port(mut self, port: &'static str, faults: Faults) -> Result<Chaos> {
        faults.check()?;
        self.rules.push((port, None, faults));
        Ok(self)
    }

    /// The seed: the same seed replays the same faults.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What was injected so far.
    pub fn report(&self) -> ChaosReport {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ChaosReport {
            seed: self.seed,
            operations: state
                .counts
                .iter()
                .map(|(call, counts)| (format!("{}.{}", call.port, call.operation), *counts))
                .collect(),
        }
    }

    fn faults_for(&self, call: Call) -> Faults {
        let exact = self
            .rules
            .iter()
            .rev()
            .find(|(port, op, _)| *port == call.port && *op == Some(call.operation));
        let port = || {
            self.rules
                .iter()
                .rev()
                .find(|(port, op, _)| *port == call.port && op.is_none())
        };
        exact.or_else(port).map_or(self.default, |(_, _, f)| *f)
    }

    /// The draw for the n-th call of `call`: two numbers in `0..1` that depend only on the
    /// seed, the operation and n.
    fn draw(&self, call: Call, n: u64) -> (f64, f64) {
        // FNV-1a over the names: unlike std's hasher, the same in every build, so a seed
        // replays the same run whatever compiled it.
        let mut name = 0xcbf2_9ce4_8422_2325u64;
        for byte in call.port.bytes().chain([b'.']).chain(call.operation.bytes()) {
            name = (name ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = fastrand::Rng::with_seed(self.seed ^ name ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (rng.f64(), rng.f64())
    }
}

/// Which fault a call meets.
enum Fault {
    None,
    Fail,
    LoseReply,
    Delay(Duration),
}

fn injected(kind: &str, call: Call) -> Error {
    Error::Unavailable {
        provider: "chaos",
        retry_after: None,
        source: Some(format!("chaos layer: {kind} of {}.{}", call.port, call.operation).into()),
    }
}

impl Interceptor for Chaos {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let faults = self.faults_for(call);
        let fault = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let counts = state.counts.entry(call).or_default();
            let (pick, length) = self.draw(call, counts.calls);
            counts.calls += 1;
            if pick < faults.fail {
                counts.failed += 1;
                Fault::Fail
            } else if pick < faults.fail + faults.lose_reply {
                counts.lost_replies += 1;
                Fault::LoseReply
            } else if pick < faults.fail + faults.lose_reply + faults.delay {
                counts.delayed += 1;
                Fault::Delay(faults.max_delay.mul_f64(length))
            } else {
                Fault::None
            }
        };
        match fault {
            Fault::None => op().await,
            Fault::Fail => Err(injected("a refused call", call)),
            Fault::LoseReply => {
                // The call happens; only its answer is lost. A failure of the call itself is
                // what the caller would have seen anyway.
                op().await?;
                Err(injected("a lost reply", call))
            }
            Fault::Delay(wait) => {
                tokio::time::sleep(wait).await;
                op().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const VOTE: Call = Call {
        port: "database",
        operation: "cast_vote",
    };
    const SEND: Call = Call {
        port: "notifier",
        operation: "send",
    };

    async fn run(chaos: &Chaos, call: Call, n: usize, made: &AtomicU64) -> Vec<&'static str> {
        let mut outcomes = Vec::new();
        for _ in 0..n {
            let result = chaos
                .intercept(call, || async {
                    made.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
                .await;
            outcomes.push(match result {
                Ok(()) => "ok",
                Err(Error::Unavailable { .. }) => "unavailable",
                Err(_) => "other",
            });
        }
        outcomes
    }

    #[tokio::test]
    async fn the_same_seed_replays_the_same_faults() {
        let faults = Faults {
            max_delay: Duration::from_millis(1),
            ..Faults::evenly(0.6)
        };
        let made = AtomicU64::new(0);
        let a = Chaos::new(42, faults).expect("chaos");
        let b = Chaos::new(42, faults).expect("chaos");
        let c = Chaos::new(43, faults).expect("chaos");
        let first = run(&a, VOTE, 200, &made).await;
        assert_eq!(first, run(&b, VOTE, 200, &made).await, "same seed, same run");
        assert_ne!(first, run(&c, VOTE, 200, &made).await, "another seed, another run");
        assert_eq!(a.report().operations, b.report().operations);
        assert_eq!(a.report().seed, 42);
    }

    #[tokio::test]
    async fn ratios_are_honoured_and_lost_replies_still_make_the_call() {
        let faults = Faults {
            fail: 0.2,
            lose_reply: 0.2,
            delay: 0.0,
            max_delay: Duration::ZERO,
        };
        let chaos = Chaos::new(1, faults).expect("chaos");
        let made = AtomicU64::new(0);
        let outcomes = run(&chaos, VOTE, 5000, &made).await;
        let counts = chaos.report().operations["database.cast_vote"];
        assert_eq!(counts.calls, 5000);
        // Within 3 standard deviations of 1,000 (p = 0.2, n = 5,000).
        for injected in [counts.failed, counts.lost_replies] {
            assert!((1000 - 85..=1000 + 85).contains(&injected), "{counts:?}");
        }
        let unavailable = outcomes.iter().filter(|o| **o == "unavailable").count() as u64;
        assert_eq!(unavailable, counts.failed + counts.lost_replies);
        assert_eq!(
            made.load(Ordering::SeqCst),
            5000 - counts.failed,
            "a lost reply's call was made"
        );
    }

    #[tokio::test]
    async fn rules_pick_the_most_specific_faults() {
        let always = Faults {
            fail: 1.0,
            ..Faults::NONE
        };
        let chaos = Chaos::new(5, Faults::NONE)
            .expect("chaos")
            .with_port("notifier", always)
            .expect("rule")
            .with("notifier", "send", Faults::NONE)
            .expect("rule");
        let made = AtomicU64::new(0);
        assert!(run(&chaos, SEND, 10, &made).await.iter().all(|o| *o == "ok"));
        let register = Call {
            port: "notifier",
            operation: "register",
        };
        assert!(
            run(&chaos, register, 10, &made)
                .await
                .iter()
                .all(|o| *o == "unavailable")
        );
        assert!(run(&chaos, VOTE, 10, &made).await.iter().all(|o| *o == "ok"));
    }

    #[test]
    fn bad_ratios_are_refused() {
        for faults in [
            Faults {
                fail: 1.5,
                ..Faults::NONE
            },
            Faults {
                fail: -0.1,
                ..Faults::NONE
            },
            Faults::evenly(1.2),
            Faults {
                fail: f64::NAN,
                ..Faults::NONE
            },
        ] {
            assert!(
                matches!(Chaos::new(1, faults), Err(Error::InvalidInput { field: "faults", .. })),
                "{faults:?}"
            );
        }
    }
}
