//! The soak case of the domain suite: many competitions and racing voters, 20% chaos on every
//! port, service instances crashing mid-call and replaced, then recovery by the maintenance
//! pass; at the end every promise is checked against what is stored. See
//! [`soak_under_chaos`].

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use thisthat_core::{
    Backend, Competition, CompetitionId, DeliveryMode, Device, Endpoint, Error, NewCompetition, Result, Status,
    Thisthat, UserId, VoteReceipt,
    key::PHOTO_PREFIX,
    layers::{Call, Chaos, ChaosReport, Faults, Interceptor, Retry, RetryPolicy},
};
use tokio::sync::{Notify, watch};

use super::{DomainHarness, SignedUrls};
use crate::{
    faults::ManualClock,
    fixtures::{device, user},
    photos,
};

/// Competitions created (the issue asks for at least 50).
const COMPETITIONS: usize = 50;
/// Voters per competition: more than the 24 that close it, so some are told it is closed.
const VOTERS: usize = 30;
/// Drafts of the signed-upload flow left unfinished, each with one photo uploaded.
const DRAFTS: usize = 4;
/// Competitions created through the signed-upload flow, finished.
const UPLOADED: usize = 3;
/// Service instances serving clients at any time.
const INSTANCES: usize = 4;
/// A client call is followed by a crash of one instance every this many finished calls.
const CRASH_EVERY: u64 = 41;
/// Clients in flight at once.
const IN_FLIGHT: usize = 48;
/// How often a client tries one call before the case fails: far above what 20% chaos needs,
/// so reaching it means a call that can never succeed, not bad luck.
const CLIENT_ATTEMPTS: u32 = 60;
/// Maintenance passes before the case fails.
const MAINTENANCE_PASSES: usize = 40;
/// The share of calls of every port operation that chaos disturbs.
const CHAOS: f64 = 0.2;

/// What a run did, printed at the end (and recorded in `docs/reliability.md`).
#[derive(Debug, Default)]
struct Figures {
    client_calls: AtomicU64,
    client_retries: AtomicU64,
    crashes: AtomicU64,
    calls_cut_by_crashes: AtomicU64,
}

/// One running service instance (a process, a Lambda) and its kill switch.
struct Instance {
    service: Thisthat,
    dead: watch::Sender<bool>,
}

/// The instances clients talk to, by slot. Slot 0 is reserved for the first competition's
/// voters and starts as an instance that hangs in its first delivery, so that one crash is
/// certainly between a close and its delivery.
struct Fleet {
    chaotic: Backend,
    clock: Arc<ManualClock>,
    slots: Mutex<Vec<Arc<Instance>>>,
    figures: Figures,
    seed: u64,
}

impl Fleet {
    fn instance(&self, slot: usize) -> Arc<Instance> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())[slot].clone()
    }

    /// Kills the instance in `slot` (its calls in flight are dropped at their next await, as
    /// in a process that died) and starts a new one in its place.
    fn crash(&self, slot: usize) {
        let fresh = Arc::new(instance(self.chaotic.clone(), &self.clock));
        let old = std::mem::replace(&mut self.slots.lock().unwrap_or_else(|p| p.into_inner())[slot], fresh);
        old.dead.send_replace(true);
        self.figures.crashes.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one client call the way a mobile client does: on the instance in `slot`, again
    /// (on whatever instance serves the slot then) when it is `Unavailable` or `Busy` or its
    /// instance died under it. Any other answer is the call's.
    async fn call<T, F, Fut>(&self, slot: usize, what: &str, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(Thisthat) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        for _ in 0..CLIENT_ATTEMPTS {
            let instance = self.instance(slot);
            let mut dead = instance.dead.subscribe();
            let mut task = tokio::spawn(op(instance.service.clone()));
            let outcome = tokio::select! {
                joined = &mut task => joined.unwrap_or_else(|e| panic!("{what}: the call panicked: {e} (seed {})", self.seed)),
                _ = dead.wait_for(|dead| *dead) => {
                    task.abort();
                    self.figures.calls_cut_by_crashes.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let finished = self.figures.client_calls.fetch_add(1, Ordering::Relaxed) + 1;
            if finished.is_multiple_of(CRASH_EVERY) {
                // Slot 0 crashes on its own schedule (see `Fleet`).
                self.crash(1 + (finished / CRASH_EVERY) as usize % (INSTANCES - 1));
            }
            match outcome {
                Err(Error::Unavailable { .. } | Error::Busy { .. }) => {
                    self.figures.client_retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(1..10))).await;
                }
                other => return other,
            }
        }
        panic!(
            "{what}: still unavailable after {CLIENT_ATTEMPTS} attempts (seed {})",
            self.seed
        )
    }
}

fn instance(backend: Backend, clock: &Arc<ManualClock>) -> Instance {
    let service = Thisthat::builder(backend)
        .clock(clock.clone())
        .delivery(DeliveryMode::Inline)
        .build()
        .expect("the default rules are valid");
    Instance {
        service,
        dead: watch::channel(false).0,
    }
}

/// Hangs the first `claim_notifications` it sees for ever (the instance is then killed): a
/// crash after a close was recorded and before its result was delivered.
#[derive(Debug, Clone, Default)]
struct HangInDelivery {
    hung: Arc<AtomicBool>,
    noticed: Arc<Notify>,
}

impl Interceptor for HangInDelivery {
    async fn intercept<T, F, Fut>(&self, call: Call, op: F) -> Result<T>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T>> + Send,
    {
        if call.operation == "claim_notifications" && !self.hung.swap(true, Ordering::SeqCst) {
            self.noticed.notify_one();
            std::future::pending::<()>().await;
        }
        op().await
    }
}

/// What one voter's client ended with.
enum Ballot {
    Counted(VoteReceipt),
    TooLate,
}

/// The soak: 50 competitions with 30 racing voters each, and a few competitions made through
/// signed uploads, finished or left as drafts, with 20% of the calls of every port operation
/// failed, answered and lost, or delayed (a seeded [`Chaos`]; replay a run with
/// `THISTHAT_CHAOS_SEED`), the shipped retry layer above it, and clients that retry an
/// unavailable call as a phone does. After every 41st call an instance dies with its calls in
/// flight and a new one takes its place; one of them dies between a close and its delivery.
/// Maintenance passes (under chaos too) then recover. Checked against what is stored at the
/// end:
///
/// - every accepted receipt's vote is stored exactly once (casting it again returns the same
///   receipt, another choice is refused (checked for one voter per competition), the tally
///   counts it once);
/// - each tally equals its stored votes, and no competition has more votes than its threshold;
/// - each closed competition's owner got exactly one notification per device, counted at the
///   notifier by idempotency key;
/// - no blob is left without a competition, and no competition without its photos.
pub async fn soak_under_chaos(h: &impl DomainHarness) {
    let started = Instant::now();
    let seed = Chaos::seed_from_env().expect("THISTHAT_CHAOS_SEED is a whole number");
    println!("soak: chaos seed {seed} (replay with THISTHAT_CHAOS_SEED={seed})");
    let base = h.backend();
    let chaos = Chaos::new(
        seed,
        Faults {
            max_delay: Duration::from_millis(5),
            ..Faults::evenly(CHAOS)
        },
    )
    .expect("valid ratios");
    // The shipped layers' retry, with backoffs cut to milliseconds to keep the run short.
    let retry = Retry::new(RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(8),
    });
    let chaotic = base.clone().layer(chaos.clone()).layer(retry);
    let clock = Arc::new(ManualClock::new(crate::fixtures::now_ms()));
    let hang = HangInDelivery::default();
    let mut slots = vec![Arc::new(instance(base.clone().layer(hang.clone()), &clock))];
    slots.extend((1..INSTANCES).map(|_| Arc::new(instance(chaotic.clone(), &clock))));
    let fleet = Arc::new(Fleet {
        chaotic,
        clock: clock.clone(),
        slots: Mutex::new(slots),
        figures: Figures::default(),
        seed,
    });
    let watcher = {
        let (fleet, hang) = (fleet.clone(), hang.clone());
        tokio::spawn(async move {
            hang.noticed.notified().await;
            fleet.crash(0);
        })
    };
    let other_slot = |n: usize| 1 + n % (INSTANCES - 1);

    // Owners register their phones: 1 to 3 devices each.
    let owners: Vec<(UserId, Vec<Device>)> = (0..COMPETITIONS)
        .map(|i| {
            let name = format!("owner-{i}");
            let devices = (0..1 + i % 3).map(|_| device(&name)).collect();
            (user(&name), devices)
        })
        .collect();
    let registrations = owners
        .iter()
        .enumerate()
        .flat_map(|(i, (_, devices))| devices.iter().map(move |d| (i, d.clone())));
    stream::iter(registrations)
        .for_each_concurrent(IN_FLIGHT, |(i, d)| {
            let fleet = fleet.clone();
            async move {
                fleet
                    .call(other_slot(i), "register a device", move |s| {
                        let d = d.clone();
                        async move { s.register_device(d).await }
                    })
                    .await
                    .unwrap_or_else(|e| panic!("register: {e:?} (seed {seed})"));
            }
        })
        .await;

    // They create their competitions, and a few start drafts they never finish.
    let competitions: Vec<Competition> = stream::iter(owners.iter().enumerate())
        .map(|(i, (owner, _))| {
            let (fleet, owner) = (fleet.clone(), owner.clone());
            async move {
                fleet
                    .call(other_slot(i), "create a competition", move |s| {
                        let owner = owner.clone();
                        async move {
                            let new = NewCompetition {
                                title: Some(format!("Soak {i}")),
                                photos: photos::three(),
                            };
                            s.create_competition(&owner, new).await
                        }
                    })
                    .await
                    .unwrap_or_else(|e| panic!("create: {e:?} (seed {seed})"))
            }
        })
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut drafts = Vec::new();
    let mut uploaded = Vec::new();
    if h.signed_urls() != SignedUrls::Unsupported {
        for i in 0..UPLOADED {
            let owner = user(&format!("uploader-{i}"));
            let ticket = fleet
                .call(other_slot(i), "begin an upload", |s| {
                    let owner = owner.clone();
                    async move { s.begin_upload(&owner, super::domain::declared()).await }
                })
                .await
                .unwrap_or_else(|e| panic!("begin upload: {e:?} (seed {seed})"));
            for (url, bytes) in ticket.uploads.iter().zip(photos::three()) {
                let upload = h.direct(url, Some(bytes)).await.expect("upload a photo");
                assert!(upload.is_success(), "upload status {}", upload.status);
            }
            let id = ticket.competition;
            let finished = fleet
                .call(other_slot(i), "finish an upload", |s| {
                    let owner = owner.clone();
                    async move { s.finish_upload(&owner, &id).await }
                })
                .await
                .unwrap_or_else(|e| panic!("finish upload: {e:?} (seed {seed})"));
            assert_eq!(finished.status, Status::Open);
            uploaded.push(finished);
        }
        for i in 0..DRAFTS {
            let ticket = fleet
                .call(other_slot(i), "begin an upload", |s| async move {
                    s.begin_upload(&user("drafter"), super::domain::declared()).await
                })
                .await
                .unwrap_or_else(|e| panic!("begin upload: {e:?} (seed {seed})"));
            let upload = h
                .direct(&ticket.uploads[0], Some(photos::three().remove(0)))
                .await
                .expect("upload a draft's first photo");
            assert!(upload.is_success(), "upload status {}", upload.status);
            drafts.push(ticket.competition);
        }
    }

    // Voters race, all competitions at once. The first competition's voters use slot 0.
    let ballots = (0..VOTERS).flat_map(|v| (0..COMPETITIONS).map(move |c| (c, v)));
    let results: Vec<(usize, UserId, usize, Ballot)> = stream::iter(ballots)
        .map(|(c, v)| {
            let fleet = fleet.clone();
            let id = competitions[c].id;
            let voter = user(&format!("voter-{v}"));
            let choice = (v * 7 + c) % 3;
            let slot = if c == 0 { 0 } else { other_slot(v) };
            async move {
                let answer = fleet
                    .call(slot, "vote", |s| {
                        let voter = voter.clone();
                        async move { s.vote(&voter, &id, choice).await }
                    })
                    .await;
                let ballot = match answer {
                    Ok(receipt) => Ballot::Counted(receipt),
                    Err(Error::Closed) => Ballot::TooLate,
                    Err(e) => panic!("vote {v} on competition {c}: {e:?} (seed {seed})"),
                };
                (c, voter, choice, ballot)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    assert!(
        hang.hung.load(Ordering::SeqCst),
        "the first competition closed on the instance that hangs in delivery"
    );
    watcher.await.expect("the hung instance was replaced");

    // Recovery: maintenance passes, under chaos too, until one finds nothing left to do.
    let rules = fleet.instance(1).service.rules().clone();
    clock.advance(rules.orphan_grace + rules.upload_url_ttl + rules.notification_lease + Duration::from_secs(60));
    let mut passes = 0;
    let mut recovered = thisthat_core::MaintenanceReport::default();
    loop {
        passes += 1;
        assert!(
            passes <= MAINTENANCE_PASSES,
            "maintenance still busy after {MAINTENANCE_PASSES} passes (seed {seed})"
        );
        let claims_lost_before = lost_claims(&chaos);
        let pass = fleet.instance(1).service.maintain().await;
        // A pass that failed, or a delivery that failed in it, is retried after its lease.
        clock.advance(rules.notification_lease + Duration::from_secs(1));
        let Ok(pass) = pass else { continue };
        recovered.delivery.delivered += pass.delivery.delivered;
        recovered.sweep.orphans_removed += pass.sweep.orphans_removed;
        recovered.sweep.drafts_expired += pass.sweep.drafts_expired;
        let did =
            pass.delivery.delivered + pass.delivery.failed + pass.sweep.orphans_removed + pass.sweep.drafts_expired;
        // A claim whose answer was lost leased its notifications all the same: this pass could
        // not see them, the next one (a lease later) does. Such a pass proves nothing idle.
        if did == 0 && lost_claims(&chaos) == claims_lost_before {
            break;
        }
    }
    let faults = chaos.report();

    // What is stored, read without chaos.
    let ran = started.elapsed();
    let calm = instance(base.clone(), &clock).service;
    let idle = calm.maintain().await.expect("a calm maintenance pass");
    assert_eq!(
        (
            idle.delivery.delivered,
            idle.sweep.orphans_removed,
            idle.sweep.drafts_expired
        ),
        (0, 0, 0),
        "nothing was left to recover: {idle:?} (seed {seed})"
    );
    check_votes(&calm, &competitions, &results, seed).await;
    check_notifications(h, &calm, &competitions, &owners, seed).await;
    check_blobs(&calm, competitions.iter().chain(&uploaded), &drafts, seed).await;

    print_figures(&fleet.figures, &faults, &results, passes, &recovered, ran, started);
}

/// Claims of notifications whose answer chaos has lost so far.
fn lost_claims(chaos: &Chaos) -> u64 {
    chaos
        .report()
        .operations
        .get("database.claim_notifications")
        .map_or(0, |counts| counts.lost_replies)
}

/// Checks every competition's stored votes against what its voters were told, several
/// competitions at a time.
async fn check_votes(
    calm: &Thisthat,
    competitions: &[Competition],
    results: &[(usize, UserId, usize, Ballot)],
    seed: u64,
) {
    stream::iter(competitions.iter().enumerate())
        .for_each_concurrent(8, |(c, competition)| {
            let mine: Vec<_> = results.iter().filter(|r| r.0 == c).collect();
            check_competition_votes(calm, c, competition, mine, seed)
        })
        .await;
}

async fn check_competition_votes(
    calm: &Thisthat,
    c: usize,
    competition: &Competition,
    mine: Vec<&(usize, UserId, usize, Ballot)>,
    seed: u64,
) {
    let database = &calm.backend().database;
    let stored = database.competition(&competition.id).await.expect("read a competition");
    let mut expected = vec![0u32; 3];
    for (_, _, choice, ballot) in &mine {
        if let Ballot::Counted(_) = ballot {
            expected[*choice] += 1;
        }
    }
    assert_eq!(
        stored.tally.counts(),
        expected.as_slice(),
        "competition {c}: the tally equals its accepted votes (seed {seed})"
    );
    assert_eq!(
        stored.tally.total(),
        stored.votes_to_close,
        "competition {c}: {VOTERS} voters close it, and no vote counts after the close (seed {seed})"
    );
    assert_eq!(stored.status, Status::Closed, "competition {c} (seed {seed})");
    let closing = mine
        .iter()
        .filter(|r| matches!(&r.3, Ballot::Counted(receipt) if receipt.closed.is_some()))
        .count();
    assert_eq!(closing, 1, "competition {c}: one receipt says it closed (seed {seed})");
    let cast = |voter: &UserId, choice: usize| {
        let vote = thisthat_core::Vote {
            competition: competition.id,
            voter: voter.clone(),
            choice,
        };
        async move { database.cast_vote(&vote).await }
    };
    let mut other_choice_checked = false;
    for (_, voter, choice, ballot) in mine {
        let again = cast(voter, *choice).await;
        match ballot {
            Ballot::Counted(receipt) => {
                assert_eq!(
                    again.as_ref().ok(),
                    Some(receipt),
                    "{voter} on competition {c}: the vote is stored with its receipt (seed {seed})"
                );
                // One voter per competition is enough here (the database suite covers the
                // rule); on moto every call costs tens of milliseconds.
                if !std::mem::replace(&mut other_choice_checked, true) {
                    let other = cast(voter, (choice + 1) % 3).await;
                    assert!(
                        matches!(other, Err(Error::AlreadyVoted)),
                        "{voter} on competition {c}: {other:?} (seed {seed})"
                    );
                }
            }
            Ballot::TooLate => assert!(
                matches!(again, Err(Error::Closed)),
                "{voter} on competition {c} was told it closed, so its vote is not stored: {again:?} (seed {seed})"
            ),
        }
    }
    let after = database.competition(&competition.id).await.expect("read a competition");
    assert_eq!(after.tally, stored.tally, "re-casting changed nothing (seed {seed})");
}

async fn check_notifications(
    h: &impl DomainHarness,
    calm: &Thisthat,
    competitions: &[Competition],
    owners: &[(UserId, Vec<Device>)],
    seed: u64,
) {
    for (c, (competition, (owner, devices))) in competitions.iter().zip(owners).enumerate() {
        let endpoints: Vec<Endpoint> = calm.backend().database.endpoints(owner).await.expect("endpoints");
        let tokens: HashSet<&str> = endpoints.iter().map(|e| e.device.token.as_str()).collect();
        let registered: HashSet<&str> = devices.iter().map(|d| d.token.as_str()).collect();
        assert_eq!(
            tokens, registered,
            "competition {c}: every device registered once (seed {seed})"
        );
        for endpoint in &endpoints {
            let got = h.delivered(endpoint).await.expect("inspect the notifier");
            let keys: BTreeMap<&str, usize> = got.iter().fold(BTreeMap::new(), |mut keys, m| {
                assert_eq!(m.competition, competition.id, "only its owner's result (seed {seed})");
                *keys.entry(m.idempotency_key.as_str()).or_default() += 1;
                keys
            });
            assert_eq!(
                keys.len(),
                1,
                "competition {c}: one notification per device, by idempotency key: {keys:?} (seed {seed})"
            );
        }
    }
}

async fn check_blobs(
    calm: &Thisthat,
    competitions: impl Iterator<Item = &Competition>,
    drafts: &[CompetitionId],
    seed: u64,
) {
    let backend = calm.backend();
    let mut by_competition: HashMap<CompetitionId, Status> = HashMap::new();
    let mut continuation = None;
    loop {
        let page = backend
            .blobs
            .list(PHOTO_PREFIX, continuation.take())
            .await
            .expect("list");
        for blob in page.blobs {
            let id = blob.key.competition().expect("an SDK-built key");
            if let std::collections::hash_map::Entry::Vacant(slot) = by_competition.entry(id) {
                let stored = backend.database.competition(&id).await;
                let status = stored
                    .unwrap_or_else(|e| panic!("blob {} has no competition: {e:?} (seed {seed})", blob.key))
                    .status;
                slot.insert(status);
            }
            assert_ne!(
                by_competition[&id],
                Status::Draft,
                "blob {} belongs to an expired draft (seed {seed})",
                blob.key
            );
        }
        match page.next {
            Some(next) => continuation = Some(next),
            None => break,
        }
    }
    for competition in competitions {
        for photo in &competition.photos {
            let mut keys = vec![photo.voter_key()];
            if photo.original_kept {
                keys.push(&photo.key);
            }
            for key in keys {
                backend
                    .blobs
                    .head(key)
                    .await
                    .unwrap_or_else(|e| panic!("{key} of a stored competition is missing: {e:?} (seed {seed})"));
            }
        }
    }
    for draft in drafts {
        let gone = backend.database.competition(draft).await;
        assert!(
            matches!(gone, Err(Error::NotFound { .. })),
            "an expired draft is deleted: {gone:?} (seed {seed})"
        );
    }
}

fn print_figures(
    figures: &Figures,
    faults: &ChaosReport,
    results: &[(usize, UserId, usize, Ballot)],
    passes: usize,
    recovered: &thisthat_core::MaintenanceReport,
    ran: Duration,
    started: Instant,
) {
    let total = faults.total();
    let ballots = results.len();
    let counted = results.iter().filter(|r| matches!(r.3, Ballot::Counted(_))).count();
    println!(
        "soak: seed {seed}: {COMPETITIONS} competitions, {UPLOADED} uploaded, {DRAFTS} drafts, {ballots} voters ({counted} counted, {} told it closed); \
         port calls {calls}: {failed} failed, {lost} replies lost, {delayed} delayed; \
         client calls {client}, client retries {retries}; crashes {crashes}, calls cut by a crash {cut}; \
         maintenance passes {passes}: {delivered} delivered, {orphans} orphaned blobs removed, {expired} drafts expired; \
         {ran:.1} s, then {checks:.1} s of checks",
        ballots - counted,
        seed = faults.seed,
        calls = total.calls,
        failed = total.failed,
        lost = total.lost_replies,
        delayed = total.delayed,
        client = figures.client_calls.load(Ordering::Relaxed),
        retries = figures.client_retries.load(Ordering::Relaxed),
        crashes = figures.crashes.load(Ordering::Relaxed),
        cut = figures.calls_cut_by_crashes.load(Ordering::Relaxed),
        delivered = recovered.delivery.delivered,
        orphans = recovered.sweep.orphans_removed,
        expired = recovered.sweep.drafts_expired,
        ran = ran.as_secs_f64(),
        checks = (started.elapsed() - ran).as_secs_f64(),
    );
}
