//! Plays a [`Scenario`] through the domain, with a [`Meter`] on every port, on any [`Backend`].
//!
//! The meter-versus-model tests run it on the in-memory and embedded backends
//! (`tests/meter_model.rs`); an emulator test wires its backend the same way:
//!
//! ```no_run
//! # async fn demo(backend: thisthat_core::Backend) -> thisthat_core::Result<()> {
//! use thisthat_cost::{Scenario, drive, model::port_operations};
//! let scenario = drive::small_scenario();
//! let usage = drive::run(backend, &scenario).await?;
//! assert_eq!(usage.call_counts(), port_operations(&scenario));
//! # Ok(()) }
//! ```

use bytes::Bytes;
use thisthat_core::{
    Backend, Device, Error, FeedQuery, NewCompetition, Platform, Result, Rules, Thisthat, UserId,
    layers::{Meter, Usage},
};

use crate::Scenario;

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
/// Every owner registers `devices_per_owner` devices, then creates a competition (photos
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
    for c in 0..scenario.competitions {
        let owner = user(format!("owner-{c}"))?;
        for d in 0..scenario.devices_per_owner {
            service
                .register_device(Device::new(owner.clone(), Platform::Fcm, format!("token-{c}-{d}"))?)
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
