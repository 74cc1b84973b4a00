//! Plays a [`Scenario`] through the domain, with a [`Meter`] on every port, on any [`Backend`].
//!
//! The meter-versus-model tests run it on the in-memory and embedded backends
//! (`tests/meter_model.rs`) and on every emulator backend (each adapter crate's `meter` test
//! module), the same way: a fresh backend per scenario of [`scenarios`], then
//! [`metered_equals_modelled`], and for a cloud [`billed_equals_modelled`] on the units its
//! adapters report:
//!
//! ```no_run
//! # async fn fresh_backend() -> thisthat_core::Backend { unimplemented!() }
//! # async fn demo() -> Result<(), thisthat_cost::CostError> {
//! use thisthat_cost::{Provider, drive};
//! for scenario in drive::scenarios() {
//!     let run = drive::metered_equals_modelled(fresh_backend().await, &scenario).await?;
//!     drive::billed_equals_modelled(&run, Provider::Aws, &["sns.request"], &["dynamodb.write_unit"])?;
//! }
//! # Ok(()) }
//! ```

use bytes::Bytes;
use thisthat_core::{
    Backend, Device, Error, FeedQuery, NewCompetition, Platform, Result, Rules, Thisthat, UserId,
    layers::{Meter, Usage},
};

use crate::{
    CostError, Mix, Provider, Scenario,
    model::{Counts, port_operations, quantities},
};

/// A scenario small enough to play in a test in about a second: 5 sessions of a feed page and
/// 10 votes on 2 competitions: 48 votes close both, the last 2 are refused as closed; 2 devices
/// per owner.
pub fn small_scenario() -> Scenario {
    let mut s = Scenario::seed();
    s.name = "small".into();
    s.monthly_active_users = 5;
    s.sessions = 5;
    s.votes_per_session = 10;
    s.competitions = 2;
    s.devices_per_owner = 2;
    s
}

/// The scenarios every backend is checked on, each small enough for moto (which answers one
/// request at a time): [`small_scenario`] (both competitions close, 2 votes refused), one that
/// leaves a competition open (30 votes: one closes, the other gets 6), and one with a threshold
/// of 5 on 3 competitions, no devices and 2 feed pages a session.
pub fn scenarios() -> Vec<Scenario> {
    let mut open = small_scenario();
    open.name = "one left open".into();
    open.sessions = 3;
    let mut bigger_threshold = small_scenario();
    bigger_threshold.name = "threshold 5".into();
    bigger_threshold.votes_to_close = 5;
    bigger_threshold.competitions = 3;
    bigger_threshold.devices_per_owner = 0;
    bigger_threshold.feed_pages_per_session = 2;
    vec![small_scenario(), open, bigger_threshold]
}

fn mismatch(scenario: &Scenario, what: String) -> CostError {
    CostError::Usage(format!("scenario `{}`: {what}", scenario.name))
}

/// A scenario played with the meter on, as [`metered_equals_modelled`] checked it.
#[derive(Debug, Clone)]
pub struct MeteredRun {
    /// The scenario as played: its `screening` is the classifier's.
    pub scenario: Scenario,
    /// What the meter counted.
    pub usage: Usage,
}

/// Plays `scenario` on `backend` ([`run`]) and checks the meter against the model: every port
/// operation's calls equal [`port_operations`] exactly, refused votes are counted as refused
/// (`closed`), and upload bytes were metered. Returns the run, for [`billed_equals_modelled`].
///
/// `scenario.screening` is set from the backend's classifier first, so the model predicts what
/// this classifier bills. A backend left with state from an earlier scenario (competitions,
/// devices) still counts the same calls, but give each scenario a fresh one anyway: the
/// meter-versus-model tests do.
pub async fn metered_equals_modelled(backend: Backend, scenario: &Scenario) -> Result<MeteredRun, CostError> {
    let mut scenario = scenario.clone();
    scenario.screening = u64::from(backend.classifier.screens_content());
    let usage = run(backend, &scenario)
        .await
        .map_err(|e| mismatch(&scenario, format!("the scenario did not play: {e}")))?;
    let metered = usage.call_counts();
    let modelled = port_operations(&scenario);
    if metered != modelled {
        return Err(mismatch(
            &scenario,
            format!("metered calls {metered:?} differ from the model's {modelled:?}"),
        ));
    }
    let capacity = scenario.competitions * scenario.votes_to_close;
    let requested = scenario.sessions * scenario.votes_per_session;
    let outcomes = usage
        .operation("database", "cast_vote")
        .map(|o| o.outcomes.clone())
        .unwrap_or_default();
    let outcome = |code: &str| outcomes.get(code).copied().unwrap_or(0);
    if outcome("ok") != requested.min(capacity) || outcome("closed") != requested.saturating_sub(capacity) {
        return Err(mismatch(&scenario, format!("votes by outcome {outcomes:?}")));
    }
    if usage.operation("blob", "put").is_none_or(|o| o.bytes_in == 0) {
        return Err(mismatch(&scenario, "no upload bytes were metered".into()));
    }
    Ok(MeteredRun { scenario, usage })
}

/// Checks the units `provider`'s adapters reported with [`thisthat_core::layers::bill`] against
/// the model's prediction for the same scenario on that provider ([`quantities`] of
/// [`Mix::single`]):
///
/// - each unit of `exact`: the total reported over every port operation equals the model's
///   quantity exactly (a count: requests, documents, images, pushes);
/// - each unit of `uncompared`: reported exactly when the model predicts some, its value not
///   compared, because the emulator does not compute it as the provider would (moto's canned
///   `ConsumedCapacity`): the check proves the adapter reports it, the value is the
///   provider's to give;
/// - no other unit was reported (a new one must be added to the test, and to the model).
pub fn billed_equals_modelled(
    run: &MeteredRun,
    provider: Provider,
    exact: &[&str],
    uncompared: &[&str],
) -> Result<(), CostError> {
    let MeteredRun { scenario, usage } = run;
    let mut reported = std::collections::BTreeMap::<&str, f64>::new();
    for (unit, quantity) in usage
        .ports
        .values()
        .flat_map(|ops| ops.values())
        .flat_map(|o| o.billed.iter())
    {
        *reported.entry(unit.as_str()).or_default() += quantity;
    }
    let modelled: std::collections::BTreeMap<&str, f64> =
        quantities(&Counts::from_scenario(scenario), &Mix::single(provider))
            .into_iter()
            .filter(|q| q.provider == provider)
            .fold(std::collections::BTreeMap::new(), |mut all, q| {
                *all.entry(q.key).or_default() += q.quantity;
                all
            });
    let by_operation: Vec<String> = usage
        .ports
        .iter()
        .flat_map(|(port, ops)| ops.iter().map(move |(op, o)| (port, op, o)))
        .filter(|(_, _, o)| !o.billed.is_empty())
        .map(|(port, op, o)| format!("{port}.{op} ×{}: {:?}", o.calls, o.billed))
        .collect();
    let fail = |what: String| {
        mismatch(
            scenario,
            format!(
                "{what} (reported {reported:?}, by operation {by_operation:?}; the model's {provider} quantities \
                 {modelled:?})"
            ),
        )
    };
    if let Some(unchecked) = reported
        .keys()
        .find(|unit| !exact.contains(unit) && !uncompared.contains(unit))
    {
        return Err(fail(format!(
            "the adapters reported `{unchecked}`, which this check does not name"
        )));
    }
    for unit in uncompared {
        let got = reported.get(unit).copied().unwrap_or(0.0);
        let model = modelled.get(unit).copied().unwrap_or(0.0);
        if (got > 0.0) != (model > 0.0) {
            return Err(fail(format!(
                "the adapters reported {got} `{unit}` where the model predicts {model}"
            )));
        }
    }
    for unit in exact {
        let model = modelled.get(unit).copied().unwrap_or(0.0);
        let got = reported.get(unit).copied().unwrap_or(0.0);
        if got != model {
            return Err(fail(format!(
                "the adapters reported {got} `{unit}`, the model predicts {model}"
            )));
        }
    }
    Ok(())
}

fn user(name: String) -> Result<UserId> {
    UserId::new(name)
}

/// Distinct, valid photos: the testkit's three, then PNGs of growing size.
fn photos(count: u64, competition: u64) -> Vec<Bytes> {
    let three = thisthat_testkit::photos::three();
    (0..count as usize)
        .map(|i| match three.get(i) {
            Some(p) if competition == 0 => p.clone(),
            _ => thisthat_testkit::photos::png_of_size(200 + 10 * i + competition as usize),
        })
        .collect()
}

/// Plays `scenario` on `backend` with a [`Meter`] on every port and returns what it counted.
///
/// Every owner registers `devices_per_owner` devices (tokens unique to the run), then creates a competition (photos
/// through the API). Each session reads `feed_pages_per_session` pages, and each of its votes
/// first asks for the competition's photo URLs. Votes fill the competitions in order, 24
/// distinct voters each (the threshold is the scenario's); votes beyond what the competitions
/// can take go to the first, closed one and are refused. Deliveries are inline.
///
/// Photo bytes are small test photos, not `photo_bytes_original`: the test compares counts.
pub async fn run(backend: Backend, scenario: &Scenario) -> Result<Usage> {
    let meter = Meter::new();
    let rules = Rules {
        votes_to_close: u32::try_from(scenario.votes_to_close)
            .map_err(|_| Error::invalid("votes_to_close", "too large"))?,
        photos_per_competition: scenario.photos_per_competition as usize,
        ..Rules::default()
    };
    let service = Thisthat::builder(backend.layer(meter.clone())).rules(rules).build()?;
    let mut competitions = Vec::new();
    // Tokens unique to this run: a push service that kept an earlier run's registration of the
    // same token (moto does, across tests) would answer it differently, and bill differently.
    let run = thisthat_core::CompetitionId::new();
    for c in 0..scenario.competitions {
        let owner = user(format!("owner-{c}"))?;
        for d in 0..scenario.devices_per_owner {
            service
                .register_device(Device::new(
                    owner.clone(),
                    Platform::Fcm,
                    format!("token-{run}-{c}-{d}"),
                )?)
                .await?;
        }
        let competition = service
            .create_competition(
                &owner,
                NewCompetition {
                    title: Some(format!("competition {c}")),
                    photos: photos(scenario.photos_per_competition, c),
                },
            )
            .await?;
        competitions.push(competition.id);
    }
    let capacity = scenario.competitions * scenario.votes_to_close;
    let mut vote = 0u64;
    for _session in 0..scenario.sessions {
        for _ in 0..scenario.feed_pages_per_session {
            service.feed(&FeedQuery::new()).await?;
        }
        for _ in 0..scenario.votes_per_session {
            let (target, voter) = if vote < capacity {
                (
                    vote / scenario.votes_to_close,
                    format!("voter-{}", vote % scenario.votes_to_close),
                )
            } else {
                (0, format!("late-{vote}"))
            };
            let id = competitions
                .get(target as usize)
                .ok_or_else(|| Error::invalid("competitions", "votes need a competition"))?;
            service.photo_urls(id).await?;
            let choice = (vote % scenario.photos_per_competition) as usize;
            match service.vote(&user(voter)?, id, choice).await {
                Ok(_) => {}
                Err(Error::Closed) if vote >= capacity => {}
                Err(e) => return Err(e),
            }
            vote += 1;
        }
    }
    Ok(meter.usage())
}
