//! From a scenario to port operations (what the meter counts) and from those to the units each
//! provider bills (what the price tables price).
//!
//! The request patterns come from the adapters as they are documented and counted against the
//! emulators (`docs/aws.md`, `docs/gcp.md`, `docs/azure.md`, `docs/performance.md` "Requests per
//! vote"). Item and document sizes are estimates and are marked as such where used.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;
use thisthat_core::layers::Usage;

use crate::{CostError, Scenario};

/// A cloud, or Cloudflare (storage only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services.
    Aws,
    /// Google Cloud.
    Gcp,
    /// Microsoft Azure.
    Azure,
    /// Cloudflare (R2 storage through `s3://` URLs with a custom endpoint).
    Cloudflare,
    /// The embedded default (SQLite, files, outbox, offline model) on one small VM, priced as
    /// an AWS Lightsail instance. Only as a whole stack.
    Embedded,
}

impl Provider {
    /// The three clouds, which can host every port and the compute.
    pub const CLOUDS: [Provider; 3] = [Provider::Aws, Provider::Gcp, Provider::Azure];

    /// `aws`, `gcp`, `azure` or `cloudflare`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Gcp => "gcp",
            Provider::Azure => "azure",
            Provider::Cloudflare => "cloudflare",
            Provider::Embedded => "embedded",
        }
    }

    /// The provider a name stands for.
    pub fn parse(name: &str) -> Option<Provider> {
        match name {
            "aws" => Some(Provider::Aws),
            "gcp" => Some(Provider::Gcp),
            "azure" => Some(Provider::Azure),
            "cloudflare" => Some(Provider::Cloudflare),
            "embedded" => Some(Provider::Embedded),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which provider runs each port, and the compute (the API's function or container).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Mix {
    /// Photos: S3, Cloud Storage, Blob Storage or R2.
    pub storage: Provider,
    /// DynamoDB, Firestore or Table Storage.
    pub database: Provider,
    /// SNS, FCM or Notification Hubs.
    pub notifier: Provider,
    /// Rekognition, Vision or AI Vision.
    pub classifier: Provider,
    /// Lambda + API Gateway, Cloud Run, or Azure Functions.
    pub compute: Provider,
}

impl Mix {
    /// Everything on one cloud.
    pub fn single(cloud: Provider) -> Mix {
        Mix {
            storage: cloud,
            database: cloud,
            notifier: cloud,
            classifier: cloud,
            compute: cloud,
        }
    }

    /// Whether every port and the compute are on one provider.
    pub fn is_single_cloud(&self) -> bool {
        *self == Mix::single(self.compute)
    }

    /// Every mix: storage on any of the three clouds or R2, everything else on any cloud
    /// (4 × 3⁴ = 324), and the embedded default on one VM (325 in all).
    pub fn all() -> Vec<Mix> {
        let mut mixes = vec![Mix::single(Provider::Embedded)];
        for storage in [Provider::Aws, Provider::Gcp, Provider::Azure, Provider::Cloudflare] {
            for database in Provider::CLOUDS {
                for notifier in Provider::CLOUDS {
                    for classifier in Provider::CLOUDS {
                        for compute in Provider::CLOUDS {
                            mixes.push(Mix {
                                storage,
                                database,
                                notifier,
                                classifier,
                                compute,
                            });
                        }
                    }
                }
            }
        }
        mixes
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Mix::single(Provider::Embedded) {
            return f.write_str("embedded default on one VM");
        }
        if self.is_single_cloud() {
            return write!(f, "all {}", self.compute);
        }
        write!(
            f,
            "storage {} / database {} / notifier {} / classifier {} / compute {}",
            self.storage, self.database, self.notifier, self.classifier, self.compute
        )
    }
}

/// A month of the app as counts: what the API and every port did, and the few sizes and
/// settings the prices depend on. Made from a [`Scenario`] or from a metered [`Usage`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    /// Requests reaching the API (front door and compute).
    pub api_requests: f64,
    /// Vote requests, accepted or not.
    pub vote_requests: f64,
    /// Votes counted.
    pub accepted_votes: f64,
    /// Votes that closed a competition.
    pub closing_votes: f64,
    /// Votes refused (closed, repeated voter, …): each still costs a database request.
    pub rejected_votes: f64,
    /// Competitions created.
    pub competitions: f64,
    /// Photos uploaded.
    pub photos: f64,
    /// Blob writes: each photo's display variant, and its original when kept.
    pub blob_writes: f64,
    /// Photos downloaded by voters' apps through signed URLs.
    pub photo_views: f64,
    /// Signed URLs made (signed locally: no request).
    pub signed_urls: f64,
    /// Competitions read (to hand out photo URLs).
    pub competition_reads: f64,
    /// Feed pages read.
    pub feed_pages: f64,
    /// Competitions the feed pages found. From a scenario: as many as are open when each
    /// session starts, up to a page and one ([`feed_documents`]); from a metered run: full
    /// pages (an estimate).
    pub feed_documents: f64,
    /// Feed pages that found nothing (Firestore still bills such a query one read).
    pub feed_empty_pages: f64,
    /// Devices registered.
    pub registrations: f64,
    /// Pushes sent (one per owner device per closed competition).
    pub pushes: f64,
    /// Classifier calls through the port (one per photo).
    pub classifications: f64,
    /// Bytes uploaded.
    pub upload_bytes: f64,
    /// Bytes downloaded by voters.
    pub view_bytes: f64,
    /// Bytes of photos kept (steady state over the retention).
    pub stored_photo_bytes: f64,
    /// Competitions kept (steady state over the retention).
    pub stored_competitions: f64,
    /// Units adapters reported themselves through `thisthat_core::layers::bill`, by price key
    /// (scaled like the rest): they replace the model's estimate for that key.
    pub billed: BTreeMap<String, f64>,
    /// The scenario's settings the prices need.
    #[serde(skip)]
    pub settings: Scenario,
}

/// Port operations of a scenario, as `(port, operation) → calls`: exactly what
/// [`thisthat_core::layers::Meter`] counts when `thisthat_cost::drive::run` plays the scenario (proven by
/// `tests/meter_model.rs`). Operations with no calls are left out.
pub fn port_operations(s: &Scenario) -> BTreeMap<(String, String), u64> {
    let votes = s.sessions * s.votes_per_session;
    let accepted = votes.min(s.competitions * s.votes_to_close);
    let closing = (accepted / s.votes_to_close).min(s.competitions);
    let photos = s.competitions * s.photos_per_competition;
    let registrations = s.competitions * s.devices_per_owner;
    let ops = [
        // Each photo's display variant, and its original unless the rules drop it.
        ("blob", "put", photos * (1 + s.keep_originals)),
        ("blob", "signed_url", votes * s.photos_per_competition),
        ("classifier", "classify", photos),
        ("database", "insert_competition", s.competitions),
        ("database", "competition", votes),
        ("database", "cast_vote", votes),
        ("database", "feed", s.sessions * s.feed_pages_per_session),
        ("database", "save_endpoint", registrations),
        ("database", "claim_notifications", closing),
        ("database", "endpoints", closing),
        ("database", "complete_notification", closing),
        ("notifier", "register", registrations),
        ("notifier", "send", closing * s.devices_per_owner),
    ];
    ops.into_iter()
        .filter(|(_, _, n)| *n > 0)
        .map(|(p, o, n)| ((p.to_string(), o.to_string()), n))
        .collect()
}

/// Competitions the month's feed pages find, and the pages that find none: each page asks
/// for a page and one more (to know whether another page follows) and gets what is open.
/// Competitions are all created first and fill in turn, `votes_to_close` votes
/// each (as `thisthat_cost::drive::run` plays them): at the start of session `k`,
/// `min(competitions, ⌊k × votes_per_session / votes_to_close⌋)` have closed. Counted in closed
/// form over the last page-and-one competitions to close, so a month of millions of sessions
/// costs no more than a small one.
pub fn feed_documents(s: &Scenario) -> (f64, f64) {
    let (sessions, pages, c, v, t) = (
        s.sessions,
        s.feed_pages_per_session,
        s.competitions,
        s.votes_per_session,
        s.votes_to_close.max(1),
    );
    let full = s.feed_page_size + 1;
    // Sessions whose start saw at most `m` competitions closed.
    let seen_at_most = |m: u64| -> u64 {
        if v == 0 {
            return sessions;
        }
        sessions.min(((m + 1).saturating_mul(t) - 1) / v + 1)
    };
    let mut reads = 0u64;
    let mut counted = 0u64;
    // While at least a page and one are open, each page reads a full one.
    if c >= full {
        counted = seen_at_most(c - full);
        reads += counted * full;
    }
    // Then one fewer each time one closes, down to one open.
    for closed in c.saturating_sub(full - 1)..c {
        let upto = seen_at_most(closed);
        reads += (upto - counted) * (c - closed);
        counted = upto;
    }
    // Then nothing is open.
    let empty = sessions - counted;
    ((reads * pages) as f64, (empty * pages) as f64)
}

impl Counts {
    /// The month a scenario describes.
    pub fn from_scenario(s: &Scenario) -> Counts {
        let ops = port_operations(s);
        let (found, empty) = feed_documents(s);
        let op = |p: &str, o: &str| ops.get(&(p.to_string(), o.to_string())).copied().unwrap_or(0) as f64;
        let votes = op("database", "cast_vote");
        let closing = op("database", "claim_notifications");
        let accepted = votes.min((s.competitions * s.votes_to_close) as f64);
        let writes = op("blob", "put");
        let uploaded = (s.competitions * s.photos_per_competition) as f64;
        let stored_per_photo = (s.photo_bytes_original * s.keep_originals + s.photo_bytes_display) as f64;
        let views = votes * s.photo_views_per_vote as f64;
        // Login, feed, the photo URLs before each vote, the vote, creation, registrations.
        let api_requests = (s.sessions * (s.logins_per_session + s.feed_pages_per_session)) as f64
            + 2.0 * votes
            + s.competitions as f64
            + op("notifier", "register");
        Counts {
            api_requests,
            vote_requests: votes,
            accepted_votes: accepted,
            closing_votes: closing,
            rejected_votes: votes - accepted,
            competitions: s.competitions as f64,
            photos: uploaded,
            blob_writes: writes,
            photo_views: views,
            signed_urls: op("blob", "signed_url"),
            competition_reads: op("database", "competition"),
            feed_pages: op("database", "feed"),
            feed_documents: found,
            feed_empty_pages: empty,
            registrations: op("notifier", "register"),
            pushes: op("notifier", "send"),
            classifications: op("classifier", "classify"),
            upload_bytes: uploaded * s.photo_bytes_original as f64,
            view_bytes: views * s.photo_bytes_display as f64,
            stored_photo_bytes: uploaded * stored_per_photo * s.retention_months.max(1) as f64,
            stored_competitions: s.competitions as f64 * s.retention_months.max(1) as f64,
            billed: BTreeMap::new(),
            settings: s.clone(),
        }
    }

    /// A metered run, multiplied by `scale` to make a month. What the meter cannot see (logins,
    /// what voters' apps download) is derived: one login per feed page, one API request per
    /// photo-URL hand-out (one competition read each), and `settings.photo_views_per_vote`
    /// downloads of `settings.photo_bytes_display` per vote. Sizes and compute settings come
    /// from `settings`.
    pub fn from_usage(usage: &Usage, scale: f64, settings: &Scenario) -> Result<Counts, CostError> {
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CostError::Usage(format!(
                "--scale must be a positive number, not {scale}"
            )));
        }
        if usage.ports.is_empty() {
            return Err(CostError::Usage("the usage file counted no port calls".into()));
        }
        let op = |p: &str, o: &str| usage.calls(p, o) as f64 * scale;
        let votes = op("database", "cast_vote");
        let accepted = usage
            .operation("database", "cast_vote")
            .and_then(|o| o.outcomes.get("ok"))
            .copied()
            .unwrap_or(0) as f64
            * scale;
        // One classification per photo; one write per stored original or variant.
        let photos = op("classifier", "classify");
        let blob_writes = op("blob", "put");
        let upload_bytes = usage.operation("blob", "put").map_or(0, |o| o.bytes_in) as f64 * scale;
        let views = votes * settings.photo_views_per_vote as f64;
        let competitions = op("database", "insert_competition");
        let feed = op("database", "feed");
        let api_requests = 2.0 * feed + 2.0 * votes + competitions + op("notifier", "register");
        Ok(Counts {
            api_requests,
            vote_requests: votes,
            accepted_votes: accepted,
            closing_votes: op("database", "claim_notifications"),
            rejected_votes: votes - accepted,
            competitions,
            photos,
            blob_writes,
            photo_views: views,
            signed_urls: op("blob", "signed_url"),
            competition_reads: op("database", "competition"),
            feed_pages: feed,
            feed_documents: feed * (settings.feed_page_size + 1) as f64,
            feed_empty_pages: 0.0,
            registrations: op("notifier", "register"),
            pushes: op("notifier", "send"),
            classifications: op("classifier", "classify"),
            upload_bytes,
            view_bytes: views * settings.photo_bytes_display as f64,
            stored_photo_bytes: upload_bytes * settings.retention_months.max(1) as f64,
            stored_competitions: competitions * settings.retention_months.max(1) as f64,
            billed: usage
                .ports
                .values()
                .flat_map(|ops| ops.values())
                .flat_map(|o| o.billed.iter())
                .fold(BTreeMap::new(), |mut all, (unit, n)| {
                    *all.entry(unit.clone()).or_default() += n * scale;
                    all
                }),
            settings: settings.clone(),
        })
    }
}

/// Bytes in a GB as the providers bill storage and transfer (binary).
pub const GB: f64 = 1_073_741_824.0;

/// One quantity a provider bills, before prices and free tiers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantity {
    /// Who bills it.
    pub provider: Provider,
    /// The price key in that provider's table.
    pub key: &'static str,
    /// How many units.
    pub quantity: f64,
}

/// DynamoDB item size (an estimate from `docs/aws.md`: the competition item starts around
/// 1.2 KB and each ballot adds about 200 bytes, "around 6 KB" at 24 votes).
fn dynamodb_item_bytes(ballots: u64) -> f64 {
    1_200.0 + 200.0 * ballots as f64
}

fn write_units(bytes: f64) -> f64 {
    (bytes / 1024.0).ceil().max(1.0)
}

fn read_units(bytes: f64) -> f64 {
    (bytes / 4096.0).ceil().max(1.0)
}

/// Database requests per operation kind, for inter-cloud traffic.
fn database_calls(c: &Counts) -> f64 {
    c.competitions
        + c.vote_requests
        + c.closing_votes
        + c.competition_reads
        + c.feed_pages
        + c.registrations
        + 3.0 * c.closing_votes
}

/// What `mix` bills for the month `c`, provider by provider, before prices and free tiers.
pub fn quantities(c: &Counts, mix: &Mix) -> Vec<Quantity> {
    let s = &c.settings;
    let mut out: Vec<Quantity> = Vec::new();
    let mut add = |provider: Provider, key: &'static str, quantity: f64| {
        if quantity > 0.0 {
            out.push(Quantity {
                provider,
                key,
                quantity,
            });
        }
    };
    if *mix == Mix::single(Provider::Embedded) {
        // One VM runs everything: the instance, and every byte in or out of it past the
        // plan's allowance (photos shown, API answers, uploads). No capacity check: one VM,
        // no redundancy; pushes land in the outbox and need a notifier to reach phones.
        add(Provider::Aws, "lightsail.instance", 1.0);
        let bytes = c.view_bytes + c.api_requests * s.api_response_bytes as f64 + c.upload_bytes;
        add(Provider::Aws, "lightsail.transfer", bytes / GB);
        return out;
    }
    let screen = s.screening as f64;

    // Storage: one write-class request per blob written (each photo's original when kept, and
    // its display variant), one read-class request per photo a voter downloads, bytes kept
    // over the retention, and the downloads as egress.
    let (write, read, stored) = match mix.storage {
        Provider::Aws => ("s3.write_request", "s3.read_request", "s3.storage"),
        Provider::Gcp => ("gcs.class_a", "gcs.class_b", "gcs.storage"),
        Provider::Azure | Provider::Embedded => ("blob.write_operation", "blob.read_operation", "blob.storage"),
        Provider::Cloudflare => ("r2.class_a", "r2.class_b", "r2.storage"),
    };
    add(mix.storage, write, c.blob_writes);
    add(mix.storage, read, c.photo_views);
    add(mix.storage, stored, c.stored_photo_bytes / GB);
    add(mix.storage, "egress", c.view_bytes / GB);

    // Database.
    let vtc = s.votes_to_close;
    let closed_item = dynamodb_item_bytes(vtc) + 1_000.0;
    match mix.database {
        Provider::Aws => {
            // Votes 1..vtc-1 write the item with k ballots; the closing vote is two updates
            // (refused, then the close); a refusal still bills the item's size.
            let per_competition: f64 = (1..vtc).map(|k| write_units(dynamodb_item_bytes(k))).sum::<f64>()
                + write_units(dynamodb_item_bytes(vtc - 1))
                + write_units(closed_item);
            let full = c.closing_votes;
            let partial_votes = (c.accepted_votes - full * vtc as f64).max(0.0);
            let wru = c.competitions * write_units(dynamodb_item_bytes(0))
                + full * per_competition
                + partial_votes * write_units(dynamodb_item_bytes(vtc / 2))
                + c.rejected_votes * write_units(closed_item)
                // The delivery's claim and completion update the closed item.
                + c.closing_votes * 2.0 * write_units(closed_item)
                + c.registrations;
            // A feed page: the index query, then the items it found.
            let rru = c.competition_reads * read_units(dynamodb_item_bytes(vtc / 2))
                + c.feed_pages
                + c.feed_documents
                + c.closing_votes;
            add(Provider::Aws, "dynamodb.write_unit", wru);
            add(Provider::Aws, "dynamodb.read_unit", rru);
            add(
                Provider::Aws,
                "dynamodb.storage",
                c.stored_competitions * closed_item / GB,
            );
        }
        Provider::Gcp => {
            // docs/gcp.md: a vote reads 2 documents (the competition and the voter's ballot,
            // found or not) and commits 2 writes (3 closing); a refusal reads 2. The feed reads
            // what is open. A delivery reads the notification to lease it, the owner's devices
            // (a query: at least one read) and the notification again to complete it.
            let reads = 2.0 * c.vote_requests
                + c.competition_reads
                + c.feed_documents
                + c.feed_empty_pages
                + c.closing_votes * (2.0 + s.devices_per_owner.max(1) as f64);
            let writes =
                c.competitions + 2.0 * c.accepted_votes + c.closing_votes + 2.0 * c.closing_votes + c.registrations;
            add(Provider::Gcp, "firestore.read", reads);
            add(Provider::Gcp, "firestore.write", writes);
            add(
                Provider::Gcp,
                "firestore.storage",
                c.stored_competitions * closed_item / GB,
            );
        }
        _ => {
            // docs/azure.md: 2 requests per accepted vote, 4 closing, 1 per refusal; creation
            // writes the feed entry and the competition. A feed page is its query and a read of
            // each competition it found. A delivery: the lease (read, merge), the owner's
            // devices (a query), the completion (read, merge, the outbox entry's delete).
            let transactions = 2.0 * c.competitions
                + 2.0 * (c.accepted_votes - c.closing_votes)
                + 4.0 * c.closing_votes
                + c.rejected_votes
                + c.competition_reads
                + c.feed_pages
                + c.feed_documents
                + 6.0 * c.closing_votes
                + c.registrations;
            add(Provider::Azure, "table.transaction", transactions);
            add(
                Provider::Azure,
                "table.storage",
                c.stored_competitions * closed_item / GB,
            );
        }
    }

    // Notifier: SNS reads the endpoint's attributes before each publish (2 requests, 1
    // delivery) and registers with 2 requests; FCM charges nothing; Notification Hubs bills
    // pushes.
    match mix.notifier {
        Provider::Aws => {
            add(Provider::Aws, "sns.request", 2.0 * c.pushes + 2.0 * c.registrations);
            add(Provider::Aws, "sns.push", c.pushes);
        }
        Provider::Gcp => add(Provider::Gcp, "fcm.send", c.pushes),
        _ => {
            add(Provider::Azure, "notificationhubs.push", c.pushes);
            // The Free tier holds 500 devices and 1 million pushes a month; more of either
            // need a paid namespace (Basic, which includes 10 million pushes).
            if c.registrations * s.retention_months.max(1) as f64 > 500.0 || c.pushes > 1_000_000.0 {
                add(Provider::Azure, "notificationhubs.basic_namespace", 1.0);
            }
        }
    }

    // Classifier: labels, plus the screen when on. Rekognition and AI Vision bill a call
    // each; Vision bills a feature each (SafeSearch free alongside labels).
    let classifier_calls = match mix.classifier {
        Provider::Aws => {
            add(Provider::Aws, "rekognition.image", c.classifications * (1.0 + screen));
            1.0 + screen
        }
        Provider::Gcp => {
            add(Provider::Gcp, "vision.label", c.classifications);
            add(Provider::Gcp, "vision.safe_search", c.classifications * screen);
            1.0
        }
        _ => {
            add(
                Provider::Azure,
                "vision.transaction",
                c.classifications * (1.0 + screen),
            );
            1.0 + screen
        }
    };

    // Compute and front door, with concurrency 1 (an upper bound for Cloud Run, which can
    // share an instance between requests).
    let seconds = c.api_requests * s.request_ms as f64 / 1000.0;
    let memory_gb = s.memory_mb as f64 / 1024.0;
    match mix.compute {
        Provider::Aws => {
            add(Provider::Aws, "apigateway.http_request", c.api_requests);
            add(Provider::Aws, "lambda.request", c.api_requests);
            add(Provider::Aws, "lambda.gb_second", seconds * memory_gb);
        }
        Provider::Gcp => {
            add(Provider::Gcp, "cloudrun.request", c.api_requests);
            add(Provider::Gcp, "cloudrun.vcpu_second", seconds);
            add(Provider::Gcp, "cloudrun.gib_second", seconds * memory_gb);
        }
        _ => {
            let rounded = (s.memory_mb as f64 / 128.0).ceil() * 128.0 / 1024.0;
            add(Provider::Azure, "functions.execution", c.api_requests);
            add(Provider::Azure, "functions.gb_second", seconds * rounded);
        }
    }
    add(mix.compute, "egress", c.api_requests * s.api_response_bytes as f64 / GB);

    // Between clouds: whatever the compute sends to a port on another provider leaves the
    // compute's cloud, and the answers leave the port's.
    let call_gb = s.call_bytes as f64 / GB;
    if mix.storage != mix.compute {
        add(mix.compute, "egress", c.upload_bytes / GB);
    }
    if mix.database != mix.compute {
        let calls = database_calls(c);
        add(mix.compute, "egress", calls * call_gb);
        add(mix.database, "egress", calls * call_gb);
    }
    if mix.notifier != mix.compute {
        add(mix.compute, "egress", (c.pushes + c.registrations) * call_gb);
    }
    if mix.classifier != mix.compute {
        add(mix.compute, "egress", c.upload_bytes * classifier_calls / GB);
        add(mix.classifier, "egress", c.classifications * classifier_calls * call_gb);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Scenario {
        let mut s = Scenario::seed();
        s.monthly_active_users = 5;
        s.sessions = 5;
        s.votes_per_session = 6;
        s.competitions = 1;
        s.devices_per_owner = 2;
        s
    }

    #[test]
    fn port_operations_of_a_tiny_month_by_hand() {
        // 5 sessions × 6 votes = 30 vote requests on 1 competition: 24 counted (the 24th
        // closes it), 6 refused as closed.
        let ops = port_operations(&tiny());
        let get = |p: &str, o: &str| ops.get(&(p.to_string(), o.to_string())).copied().unwrap_or(0);
        assert_eq!(get("database", "cast_vote"), 30);
        assert_eq!(get("database", "competition"), 30);
        assert_eq!(get("blob", "signed_url"), 90);
        assert_eq!(get("blob", "put"), 6, "each photo's original and its display variant");
        assert_eq!(get("classifier", "classify"), 3);
        assert_eq!(get("database", "claim_notifications"), 1);
        assert_eq!(get("notifier", "send"), 2);
        assert_eq!(get("notifier", "register"), 2);
        assert_eq!(get("database", "feed"), 5);
        let c = Counts::from_scenario(&tiny());
        assert_eq!((c.accepted_votes, c.rejected_votes, c.closing_votes), (24.0, 6.0, 1.0));
        // 5 logins + 5 feed pages + 30 × 2 + 1 creation + 2 registrations.
        assert_eq!(c.api_requests, 73.0);
    }

    #[test]
    fn feed_documents_in_closed_form_equal_counting_session_by_session() {
        let by_session = |s: &Scenario| -> (f64, f64) {
            let open: Vec<u64> = (0..s.sessions)
                .map(|k| {
                    let closed = s.competitions.min(k * s.votes_per_session / s.votes_to_close);
                    (s.competitions - closed).min(s.feed_page_size + 1)
                })
                .collect();
            let pages = s.feed_pages_per_session;
            (
                (open.iter().sum::<u64>() * pages) as f64,
                (open.iter().filter(|o| **o == 0).count() as u64 * pages) as f64,
            )
        };
        let mut s = tiny();
        for (competitions, votes, page, sessions) in [
            (1, 6, 20, 5),
            (2, 10, 20, 5),
            (30, 7, 3, 200),
            (0, 5, 20, 4),
            (50, 0, 20, 3),
        ] {
            s.competitions = competitions;
            s.votes_per_session = votes;
            s.feed_page_size = page;
            s.sessions = sessions;
            s.feed_pages_per_session = 2;
            assert_eq!(
                feed_documents(&s),
                by_session(&s),
                "{competitions} {votes} {page} {sessions}"
            );
        }
        // The seed: 1,500 competitions closed after 1,800 of its 15,000 sessions.
        assert_eq!(feed_documents(&Scenario::seed()), by_session(&Scenario::seed()));
    }

    #[test]
    fn all_aws_quantities_of_a_tiny_month_by_hand() {
        let c = Counts::from_scenario(&tiny());
        let q = quantities(&c, &Mix::single(Provider::Aws));
        let get = |k: &str| q.iter().filter(|x| x.key == k).map(|x| x.quantity).sum::<f64>();
        assert_eq!(
            get("s3.write_request"),
            6.0,
            "each photo's original and its display variant"
        );
        assert_eq!(get("s3.read_request"), 90.0);
        assert_eq!(get("rekognition.image"), 6.0, "labels and screen per photo");
        assert_eq!(get("sns.request"), 8.0, "2 per push, 2 per registration");
        assert_eq!(get("sns.push"), 2.0);
        assert_eq!(get("lambda.request"), 73.0);
        assert_eq!(get("apigateway.http_request"), 73.0);
        // The insert (2 WRU), votes 1–23 at ceil((1200 + 200k) / 1024) WRU, the closing vote's
        // refused update (6 WRU at 23 ballots) and the close (7 WRU), 6 refusals on the closed
        // item (7 each), the claim and the completion (7 each), 2 device items (1 each).
        let votes: f64 = (1..24u64).map(|k| ((1200.0 + 200.0 * k as f64) / 1024.0).ceil()).sum();
        assert_eq!(votes, 92.0);
        let expected = 2.0 + votes + 6.0 + 7.0 + 6.0 * 7.0 + 2.0 * 7.0 + 2.0;
        assert_eq!(get("dynamodb.write_unit"), expected);
        assert!(q.iter().all(|x| x.key != "egress" || x.provider == Provider::Aws));
    }

    #[test]
    fn mixing_clouds_adds_transfer_between_them() {
        let c = Counts::from_scenario(&tiny());
        let mut mix = Mix::single(Provider::Aws);
        let alone: f64 = quantities(&c, &mix)
            .iter()
            .filter(|q| q.key == "egress")
            .map(|q| q.quantity)
            .sum();
        mix.classifier = Provider::Gcp;
        let mixed: f64 = quantities(&c, &mix)
            .iter()
            .filter(|q| q.key == "egress")
            .map(|q| q.quantity)
            .sum();
        let photo_gb = 3.0 * 2_000_000.0 / GB;
        assert!(
            (mixed - alone - photo_gb - 3.0 * 2_000.0 / GB).abs() < 1e-12,
            "{mixed} {alone}"
        );
        assert_eq!(Mix::all().len(), 325);
        let embedded = quantities(&c, &Mix::single(Provider::Embedded));
        assert_eq!(embedded.len(), 2, "one VM and its transfer");
    }
}
