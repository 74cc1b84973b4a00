//! [`Meter`]: counts what every port call did, and what the provider billed for it.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use serde::{Deserialize, Serialize};

use super::{Call, Interceptor};
use crate::{Error, Result};

/// Counts every port call: per port and operation, the calls, their outcomes (`ok` or the
/// [`Error::code`]), the body bytes that went in and came out, and the units the provider
/// billed as the adapter reported them with [`bill`].
///
/// Clones share their counts, so a meter can be layered on a backend and read elsewhere:
///
/// ```
/// use thisthat_core::layers::Meter;
/// # fn demo(backend: thisthat_core::Backend) {
/// let meter = Meter::new();
/// let backend = backend.layer(meter.clone());
/// // … run the service on `backend` …
/// let usage = meter.usage();
/// println!("{} votes cast", usage.calls("database", "cast_vote"));
/// # }
/// ```
///
/// Put it outside [`Retry`](super::Retry) to count what the application asked for, inside to
/// count every attempt the provider saw (and billed).
#[derive(Debug, Clone, Default)]
pub struct Meter {
    counts: Arc<Mutex<Usage>>,
}

impl Meter {
    /// A meter with nothing counted yet.
    pub fn new() -> Self {
        Meter {
            counts: Arc::new(Mutex::new(Usage::default())),
        }
    }

    /// A snapshot of everything counted so far.
    pub fn usage(&self) -> Usage {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Interceptor for Meter {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        let sink = Arc::new(Mutex::new(Sink::default()));
        // `op()` is called inside the scope: forwarding code reports body sizes when called.
        let result = SINK.scope(sink.clone(), async { op().await }).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let reported = std::mem::take(&mut *sink.lock().unwrap_or_else(PoisonError::into_inner));
        let mut usage = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counted(counted(&mut usage.ports, call.port), call.operation);
        entry.calls += 1;
        *counted(&mut entry.outcomes, outcome) += 1;
        entry.bytes_in += reported.bytes_in;
        entry.bytes_out += reported.bytes_out;
        for (unit, quantity) in reported.billed {
            *entry.billed.entry(unit.to_string()).or_default() += quantity;
        }
        result
    }
}

/// The count under `key`, started at its default the first time. `entry` would allocate the
/// key's `String` on every call, and a meter sits around every port call (three lookups each).
fn counted<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("the key was inserted above")
}

/// What one call reported while a [`Meter`] was around it.
#[derive(Debug, Default)]
struct Sink {
    bytes_in: u64,
    bytes_out: u64,
    billed: BTreeMap<&'static str, f64>,
}

tokio::task_local! {
    static SINK: Arc<Mutex<Sink>>;
}

fn with_sink(f: impl FnOnce(&mut Sink)) {
    // Outside a meter there is nobody to tell: reporting is then free and does nothing.
    let _ = SINK.try_with(|sink| f(&mut sink.lock().unwrap_or_else(PoisonError::into_inner)));
}

/// Reports units the provider bills for the call in progress, for example
/// `bill("dynamodb.write_unit", 6.0)` from `ConsumedCapacity`, `bill("firestore.read", 2.0)`, or
/// `bill("rekognition.image", 1.0)`. Unit names are the price keys of `thisthat-cost`'s price
/// tables (`crates/thisthat-cost/prices/*.toml`), so a metered run is priced with no
/// translation; the domain never sees them.
///
/// Call it from inside the port method, on the task that runs it (a spawned task does not see
/// the meter). Reports add up: an adapter that sends two requests reports each. Outside a
/// [`Meter`] it does nothing. A unit an adapter cannot know is simply not reported, and
/// `thisthat cost` uses its model's estimate for it.
pub fn bill(unit: &'static str, quantity: f64) {
    if quantity.is_finite() && quantity > 0.0 {
        with_sink(|sink| *sink.billed.entry(unit).or_default() += quantity);
    }
}

/// The body bytes the call carries in (a blob put, a classifier's photo). Set, not added: the
/// forwarding code reports it on every attempt and at every layer, with the same value.
pub(crate) fn bytes_in(bytes: usize) {
    with_sink(|sink| sink.bytes_in = bytes as u64);
}

/// The body bytes the call brought back (a blob get). Set, like [`bytes_in`].
pub(crate) fn bytes_out(bytes: usize) {
    with_sink(|sink| sink.bytes_out = bytes as u64);
}

/// What a [`Meter`] counted, as JSON on disk: `{"version": 1, "ports": {"database":
/// {"cast_vote": {"calls": 24, "outcomes": {"ok": 24}, …}}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// The format's version, [`Usage::VERSION`] when written by this build.
    pub version: u32,
    /// Port (`blob`, `database`, `notifier`, `classifier`) → operation → what it did.
    pub ports: BTreeMap<String, BTreeMap<String, OperationUsage>>,
}

impl Default for Usage {
    fn default() -> Self {
        Usage {
            version: Usage::VERSION,
            ports: BTreeMap::new(),
        }
    }
}

/// What one operation of one port did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationUsage {
    /// How many times it was called.
    pub calls: u64,
    /// Calls by outcome: `ok`, or an [`Error::code`] such as `closed`.
    pub outcomes: BTreeMap<String, u64>,
    /// Body bytes sent: blob puts, classifier photos.
    pub bytes_in: u64,
    /// Body bytes received: blob gets.
    pub bytes_out: u64,
    /// Provider-billed units the adapter reported with [`bill`], by price key.
    pub billed: BTreeMap<String, f64>,
}

impl Usage {
    /// The format version this build writes and reads.
    pub const VERSION: u32 = 1;

    /// How many times `port`'s `operation` was called (0 if never).
    pub fn calls(&self, port: &str, operation: &str) -> u64 {
        self.operation(port, operation).map_or(0, |o| o.calls)
    }

    /// The counts of one operation, if it was ever called.
    pub fn operation(&self, port: &str, operation: &str) -> Option<&OperationUsage> {
        self.ports.get(port)?.get(operation)
    }

    /// Every operation called, as `(port, operation, calls)`.
    pub fn call_counts(&self) -> BTreeMap<(String, String), u64> {
        self.ports
            .iter()
            .flat_map(|(port, ops)| ops.iter().map(move |(op, u)| ((port.clone(), op.clone()), u.calls)))
            .collect()
    }

    /// The snapshot as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a snapshot written by [`Usage::to_json`]. One from a newer version of thisthat is
    /// refused (its counts may mean something this build does not know), as is any unknown
    /// field.
    pub fn from_json(json: &str) -> Result<Usage> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::invalid("usage", format!("not a usage file: {e}")))?;
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Error::invalid("version", "a usage file needs a numeric \"version\""))?;
        if version > u64::from(Usage::VERSION) {
            return Err(Error::invalid(
                "version",
                format!(
                    "this usage file is version {version}, written by a newer thisthat; this one reads version {} (upgrade thisthat to read it)",
                    Usage::VERSION
                ),
            ));
        }
        serde_json::from_value(value).map_err(|e| Error::invalid("usage", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use bytes::Bytes;

    use super::*;
    use crate::{
        Classification, MediaType,
        layers::{Layered, Retry, RetryPolicy},
        ports::{Classifier, PhotoInput},
    };

    /// A classifier that bills like Rekognition with screening: two images per photo. It fails
    /// with `Unavailable` for its first `fail_first` calls, so retries can be counted.
    #[derive(Debug, Default)]
    struct BillingClassifier {
        fail_first: Mutex<u32>,
    }

    #[async_trait]
    impl Classifier for BillingClassifier {
        async fn classify(&self, _photo: &PhotoInput) -> Result<Classification> {
            bill("rekognition.image", 2.0);
            let mut left = self.fail_first.lock().unwrap_or_else(PoisonError::into_inner);
            if *left > 0 {
                *left -= 1;
                return Err(Error::unavailable("fake", "throttled"));
            }
            Ok(Classification {
                labels: vec![],
                moderation: Some(vec![]),
            })
        }
        fn screens_content(&self) -> bool {
            true
        }
    }

    fn photo(len: usize) -> PhotoInput {
        PhotoInput {
            bytes: Bytes::from(vec![0u8; len]),
            media_type: MediaType::Png,
            key: None,
        }
    }

    fn fast_retry() -> Retry {
        Retry::new(RetryPolicy {
            max_attempts: 4,
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(1),
        })
    }

    #[tokio::test]
    async fn counts_calls_outcomes_bytes_and_billed_units() {
        let meter = Meter::new();
        let classifier = Layered::new(Arc::new(BillingClassifier::default()), meter.clone());
        classifier.classify(&photo(10)).await.expect("classify");
        classifier.classify(&photo(30)).await.expect("classify");
        let usage = meter.usage();
        let op = usage.operation("classifier", "classify").expect("counted");
        assert_eq!(op.calls, 2);
        assert_eq!(op.outcomes.get("ok"), Some(&2));
        assert_eq!(op.bytes_in, 40);
        assert_eq!(op.billed.get("rekognition.image"), Some(&4.0));
    }

    #[tokio::test]
    async fn inside_a_retry_every_attempt_is_counted_and_billed() {
        let meter = Meter::new();
        let inner = Layered::new(
            Arc::new(BillingClassifier {
                fail_first: Mutex::new(2),
            }),
            meter.clone(),
        );
        let classifier = Layered::new(Arc::new(inner), fast_retry());
        classifier.classify(&photo(5)).await.expect("third attempt succeeds");
        let usage = meter.usage();
        let op = usage.operation("classifier", "classify").expect("counted");
        assert_eq!(op.calls, 3);
        assert_eq!(op.outcomes.get("unavailable"), Some(&2));
        assert_eq!(op.outcomes.get("ok"), Some(&1));
        assert_eq!(
            op.billed.get("rekognition.image"),
            Some(&6.0),
            "the provider billed all three"
        );
        assert_eq!(op.bytes_in, 15);
    }

    #[tokio::test]
    async fn outside_a_retry_one_call_is_counted_and_bytes_are_not_doubled() {
        let meter = Meter::new();
        let inner = Layered::new(
            Arc::new(BillingClassifier {
                fail_first: Mutex::new(1),
            }),
            fast_retry(),
        );
        let classifier = Layered::new(Arc::new(inner), meter.clone());
        classifier.classify(&photo(7)).await.expect("second attempt succeeds");
        let op = meter
            .usage()
            .operation("classifier", "classify")
            .cloned()
            .expect("counted");
        assert_eq!(op.calls, 1);
        assert_eq!(op.outcomes.get("ok"), Some(&1));
        assert_eq!(op.bytes_in, 7, "both layers report the same body once");
        assert_eq!(op.billed.get("rekognition.image"), Some(&4.0));
    }

    #[test]
    fn billing_outside_a_meter_does_nothing_and_bad_quantities_are_ignored() {
        bill("rekognition.image", 1.0);
        bill("rekognition.image", f64::NAN);
        bill("rekognition.image", -1.0);
    }

    #[tokio::test]
    async fn usage_round_trips_and_a_newer_version_is_refused() {
        let meter = Meter::new();
        let classifier = Layered::new(Arc::new(BillingClassifier::default()), meter.clone());
        classifier.classify(&photo(1)).await.expect("classify");
        let usage = meter.usage();
        let json = usage.to_json();
        assert_eq!(Usage::from_json(&json).expect("reads its own"), usage);
        let newer = json.replacen("\"version\": 1", "\"version\": 2", 1);
        let err = Usage::from_json(&newer).expect_err("newer refused");
        assert!(err.to_string().contains("newer thisthat"), "{err}");
        let unknown = json.replacen("\"ports\"", "\"extra\": 1, \"ports\"", 1);
        assert!(Usage::from_json(&unknown).is_err(), "unknown fields refused");
        assert!(Usage::from_json("{}").is_err(), "no version refused");
    }
}
