//! The domain's nouns: competitions and their photos, votes and tallies, results, devices and
//! notifications. Plain data, serialisable, with the rules that belong to the data itself
//! (what a vote does to a competition) in one place for every adapter to share.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{BlobKey, CompetitionId, Error, MediaType, Result, UserId};

/// A category name: a lower-case label such as `cat` or `coffee`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// The longest category name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Normalises a label name into a category: trimmed, lower-case, inner whitespace folded to
    /// one space. 1 to 64 characters, no control characters.
    ///
    /// ```
    /// use thisthat_core::Category;
    /// assert_eq!(Category::new("  Tabby   Cat ")?.as_str(), "tabby cat");
    /// assert!(Category::new("").is_err());
    /// # Ok::<(), thisthat_core::Error>(())
    /// ```
    pub fn new(name: impl AsRef<str>) -> Result<Self> {
        let folded = name
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        if folded.is_empty() || folded.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid("category", "must be 1 to 64 characters"));
        }
        if folded.chars().any(char::is_control) {
            return Err(Error::invalid("category", "may not contain control characters"));
        }
        Ok(Category(folded))
    }

    /// The category's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Category {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Category::new(s)
    }
}

impl From<Category> for String {
    fn from(c: Category) -> String {
        c.0
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A label a classifier gave a photo, with its confidence in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Label {
    /// The normalised (lower-case) label name.
    pub name: Category,
    /// Confidence in `0.0..=1.0`.
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub confidence: f32,
}

impl Label {
    /// Builds a label from a provider's name and confidence, normalising the name and checking
    /// the confidence. Providers that score in percent (Rekognition) divide by 100 first.
    pub fn new(name: impl AsRef<str>, confidence: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&confidence) {
            return Err(Error::invalid(
                "confidence",
                format!("{confidence} is outside 0.0..=1.0"),
            ));
        }
        Ok(Label {
            name: Category::new(name)?,
            confidence,
        })
    }
}

/// What a [`Classifier`](crate::ports::Classifier) says about one photo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// What the photo shows, most confident first.
    pub labels: Vec<Label>,
    /// Content-moderation labels (`explicit nudity`, `violence`, …) when the classifier screens
    /// content; `None` when it cannot. An empty list means it screened and found nothing.
    pub moderation: Option<Vec<Label>>,
}

/// One stored photo of a competition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Photo {
    /// Where the photo is stored.
    pub key: BlobKey,
    /// Its real format, sniffed from its bytes.
    pub media_type: MediaType,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels, read from the header.
    pub width: u32,
    /// Height in pixels, read from the header.
    pub height: u32,
    /// What the classifier saw in it, most confident first.
    pub labels: Vec<Label>,
    /// The display variant voters are served. `None` on competitions stored before variants
    /// existed, which are served the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<PhotoVariant>,
    /// Whether the original is stored under `key` (the rule `keep_originals`); only the
    /// owner can fetch it. Competitions stored before the rule existed kept theirs.
    #[serde(default = "original_kept_before_the_rule")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub original_kept: bool,
}

fn original_kept_before_the_rule() -> bool {
    true
}

impl Photo {
    /// The key voters are served: the display variant's, or the original's on a competition
    /// stored before variants existed.
    pub fn voter_key(&self) -> &BlobKey {
        self.display.as_ref().map_or(&self.key, |d| &d.key)
    }
}

/// A re-encoded copy of a photo, made when it was accepted: upright, at most
/// `display_max_side` pixels, no metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhotoVariant {
    /// Where it is stored (the original's key with `.display` before its extension).
    pub key: BlobKey,
    /// Its format.
    pub media_type: MediaType,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels, upright.
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
}

/// Where a competition is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "`draft`: created by `POST /v1/uploads`, waiting for its photos (never \
                       answered by reads); `open`: takes votes; `closed`: reached its vote \
                       threshold, the result is fixed."
    )
)]
#[non_exhaustive]
pub enum Status {
    /// Created through the signed-upload flow; waiting for its photos. Not in the feed and
    /// takes no votes.
    Draft,
    /// Takes votes.
    Open,
    /// Reached its vote threshold; the result is fixed.
    Closed,
}

impl Status {
    /// How the status is stored and shown: `draft`, `open` or `closed` (the serde form too).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Open => "open",
            Status::Closed => "closed",
        }
    }

    /// The status stored as `name` ([`Status::as_str`]); `None` for anything else, which an
    /// adapter reports as corrupt data.
    ///
    /// ```
    /// use thisthat_core::Status;
    /// assert_eq!(Status::from_name(Status::Closed.as_str()), Some(Status::Closed));
    /// assert_eq!(Status::from_name("Closed"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Status> {
        match name {
            "draft" => Some(Status::Draft),
            "open" => Some(Status::Open),
            "closed" => Some(Status::Closed),
            _ => None,
        }
    }
}

/// Votes per photo, indexed like the competition's photos.
///
/// ```
/// use thisthat_core::Tally;
/// let tally = Tally::from_counts(vec![3, 5, 5]);
/// assert_eq!(tally.total(), 13);
/// assert_eq!(tally.leaders(), vec![1, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tally(Vec<u32>);

impl Tally {
    /// A tally of zero votes for `photos` photos.
    pub fn zero(photos: usize) -> Self {
        Tally(vec![0; photos])
    }

    /// A tally from counts per photo.
    pub fn from_counts(counts: Vec<u32>) -> Self {
        Tally(counts)
    }

    /// Votes per photo.
    pub fn counts(&self) -> &[u32] {
        &self.0
    }

    /// Votes in all.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }

    /// Every photo with the highest count (more than one is a tie; all of them before any vote).
    pub fn leaders(&self) -> Vec<usize> {
        let max = self.0.iter().copied().max().unwrap_or(0);
        (0..self.0.len()).filter(|&i| self.0[i] == max).collect()
    }
}

/// The fixed result of a closed competition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    /// Votes per photo at the close.
    pub tally: Tally,
    /// Zero-based indexes of every photo with the highest count; more than one is a tie.
    pub winners: Vec<usize>,
}

impl Outcome {
    /// The outcome of a final tally.
    pub fn from_tally(tally: Tally) -> Self {
        let winners = tally.leaders();
        Outcome { tally, winners }
    }

    /// Whether more than one photo shares the highest count.
    pub fn is_tie(&self) -> bool {
        self.winners.len() > 1
    }

    /// A one-line, human-readable summary for the owner's notification.
    ///
    /// ```
    /// use thisthat_core::{Outcome, Tally};
    /// let won = Outcome::from_tally(Tally::from_counts(vec![4, 12, 8]));
    /// assert_eq!(won.summary(), "Photo 2 won with 12 of 24 votes, 4 ahead of the runner-up.");
    /// let tie = Outcome::from_tally(Tally::from_counts(vec![10, 10, 4]));
    /// assert_eq!(tie.summary(), "It's a tie: photos 1 and 2 got 10 of 24 votes each.");
    /// ```
    pub fn summary(&self) -> String {
        let counts = self.tally.counts();
        let total = self.tally.total();
        match self.winners.as_slice() {
            [] => "No photos, no winner.".to_string(),
            [w] => {
                let best = counts.get(*w).copied().unwrap_or(0);
                let runner_up = counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i != w)
                    .map(|(_, c)| *c)
                    .max()
                    .unwrap_or(0);
                format!(
                    "Photo {} won with {best} of {total} votes, {} ahead of the runner-up.",
                    w + 1,
                    best.saturating_sub(runner_up)
                )
            }
            many => {
                let names: Vec<String> = many.iter().map(|w| (w + 1).to_string()).collect();
                let Some((last, rest)) = names.split_last() else {
                    return String::new();
                };
                format!(
                    "It's a tie: photos {} and {last} got {} of {total} votes each.",
                    rest.join(", "),
                    counts.get(many[0]).copied().unwrap_or(0)
                )
            }
        }
    }
}

/// A competition: three photos (by default), their votes, and once closed, the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Competition {
    /// Its id, sortable by creation time.
    pub id: CompetitionId,
    /// Who created it.
    pub owner: UserId,
    /// Optional title, at most 140 characters, no control characters.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub title: Option<String>,
    /// Where it is in its life.
    pub status: Status,
    /// The photos, in the order voters choose from. Empty while a draft.
    pub photos: Vec<Photo>,
    /// Labels above the confidence threshold across all photos, most confident first, without
    /// duplicates.
    pub categories: Vec<Category>,
    /// Votes so far, per photo.
    pub tally: Tally,
    /// The vote that brings the total to this number closes the competition. Fixed at creation,
    /// so changing the configured threshold never reopens or closes an existing competition.
    pub votes_to_close: u32,
    /// The result, set in the same atomic step as the closing vote and never changed after.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub outcome: Option<Outcome>,
    /// When it was created, at millisecond precision (serialised as Unix milliseconds).
    #[serde(with = "unix_ms")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub created_at: SystemTime,
}

/// Times as Unix milliseconds in every serialised form (API JSON, stored documents), which
/// every database and client represents exactly.
pub mod unix_ms {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    /// `t` truncated to whole milliseconds.
    pub fn truncate(t: SystemTime) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis(t))
    }

    fn millis(t: SystemTime) -> u64 {
        t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// Serialises as Unix milliseconds.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(millis(*t))
    }

    /// Deserialises from Unix milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let ms = u64::deserialize(d)?;
        UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| serde::de::Error::custom(format!("{ms} ms after 1970 is not a representable time")))
    }
}

/// A voter's choice of one photo of a competition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// The competition voted on.
    pub competition: CompetitionId,
    /// Who voted.
    pub voter: UserId,
    /// Zero-based index of the chosen photo.
    pub choice: usize,
}

/// What one accepted vote did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"tally": [4, 13, 8], "closed": null})))]
pub struct VoteReceipt {
    /// The tally including this vote.
    pub tally: Tally,
    /// Set when this vote was the one that closed the competition.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub closed: Option<Outcome>,
}

/// The part of a competition a vote reads and changes: who owns it, whether it is open, its
/// tally and threshold. Small enough to keep in a row's columns or an item's attributes, so a
/// database can run a vote without reading or rewriting the whole competition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The competition.
    pub id: CompetitionId,
    /// Its owner, who may not vote.
    pub owner: UserId,
    /// Its title, which the closing vote's notification carries
    /// ([`Notification::closing`]). Standings stored before it was kept read as `None`.
    #[serde(default)]
    pub title: Option<String>,
    /// Draft, open or closed.
    pub status: Status,
    /// How many photos there are to choose from.
    pub photos: usize,
    /// Votes so far, per photo.
    pub tally: Tally,
    /// The vote that brings the total to this closes the competition.
    pub votes_to_close: u32,
}

impl Standing {
    /// Applies `vote` as the rules of the domain say, or says why it must be rejected (leaving
    /// `self` unchanged). Returns the receipt; `self` is then as it must be stored.
    ///
    /// Adapters that read-check-write inside a transaction (SQLite, Firestore, Azure Tables,
    /// in memory) call this inside it, so the rules live in one place; adapters that push
    /// conditions down to the service (DynamoDB) must agree with it, which the conformance
    /// suite checks. Checking for a second vote by the same voter is the database's part.
    pub fn apply(&mut self, vote: &Vote) -> Result<VoteReceipt> {
        if vote.competition != self.id {
            return Err(Error::invalid("competition_id", "the vote is for another competition"));
        }
        if self.status == Status::Draft {
            return Err(Error::not_found(crate::Entity::Competition, self.id));
        }
        if vote.voter == self.owner {
            return Err(Error::OwnCompetition);
        }
        if self.status == Status::Closed || self.tally.total() >= self.votes_to_close {
            return Err(Error::Closed);
        }
        if vote.choice >= self.photos {
            return Err(Error::invalid(
                "choice",
                format!("must be a photo index from 0 to {}", self.photos.saturating_sub(1)),
            ));
        }
        let (id, photos, tallied) = (self.id, self.photos, self.tally.0.len());
        let count = self.tally.0.get_mut(vote.choice).ok_or_else(|| Error::Backend {
            provider: "thisthat",
            message: format!("competition {id} has {photos} photos but a tally of {tallied}"),
            source: None,
        })?;
        *count += 1;
        let closed = (self.tally.total() >= self.votes_to_close).then(|| {
            self.status = Status::Closed;
            Outcome::from_tally(self.tally.clone())
        });
        Ok(VoteReceipt {
            tally: self.tally.clone(),
            closed,
        })
    }
}

impl Competition {
    /// The part of this competition a vote reads and changes.
    pub fn standing(&self) -> Standing {
        Standing {
            id: self.id,
            owner: self.owner.clone(),
            title: self.title.clone(),
            status: self.status,
            photos: self.photos.len(),
            tally: self.tally.clone(),
            votes_to_close: self.votes_to_close,
        }
    }

    /// Applies `vote` to this competition (see [`Standing::apply`]), recording the outcome
    /// when the vote closes it. A rejection leaves `self` unchanged.
    pub fn apply_vote(&mut self, vote: &Vote) -> Result<VoteReceipt> {
        let mut standing = self.standing();
        let receipt = standing.apply(vote)?;
        self.status = standing.status;
        self.tally = standing.tally;
        if let Some(outcome) = &receipt.closed {
            self.outcome = Some(outcome.clone());
        }
        Ok(receipt)
    }
}

/// A push platform a device registers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "`apns`: Apple Push Notification service; `apns_sandbox`: its sandbox; \
                       `fcm`: Firebase Cloud Messaging."
    )
)]
#[non_exhaustive]
pub enum Platform {
    /// Apple Push Notification service (production).
    Apns,
    /// Apple Push Notification service (sandbox).
    ApnsSandbox,
    /// Firebase Cloud Messaging.
    Fcm,
}

impl Platform {
    /// The platform's name as used in configuration and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::ApnsSandbox => "apns_sandbox",
            Platform::Fcm => "fcm",
        }
    }
}

/// A device a user registered to receive notifications.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    /// Whose device.
    pub user: UserId,
    /// Its push platform.
    pub platform: Platform,
    /// The platform's device token. 1 to 4096 printable ASCII characters.
    pub token: String,
}

impl Device {
    /// Validates a registration.
    pub fn new(user: UserId, platform: Platform, token: impl Into<String>) -> Result<Self> {
        let device = Device {
            user,
            platform,
            token: token.into(),
        };
        device.validate()?;
        Ok(device)
    }

    /// Checks the token (the fields are public, so a device built by hand is checked again
    /// before it reaches a provider).
    pub fn validate(&self) -> Result<()> {
        check_token(&self.token)
    }
}

/// Checks a device token: 1 to 4096 printable ASCII characters.
pub fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.len() > 4096 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid("token", "must be 1 to 4096 printable ASCII characters"));
    }
    Ok(())
}

/// A device as a notifier knows it: the registration plus the provider's address for it (an
/// SNS endpoint ARN, a Notification Hubs installation id, or the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The registration.
    pub device: Device,
    /// The notifier's address for the device.
    pub address: String,
}

impl Endpoint {
    /// The short, stable name under which a notification records that it reached this
    /// device ([`Notification::delivered_to`]): hex of the first 16 bytes of SHA-256 over the
    /// platform and token, so that a 4 KB token costs 32 characters in every notification.
    pub fn delivery_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(self.device.platform.as_str())
            .chain_update([0])
            .chain_update(&self.device.token)
            .finalize();
        crate::adapter::hex(&digest[..16])
    }
}

/// A push message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushMessage {
    /// Short title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// The competition it is about, for the app to open.
    pub competition: CompetitionId,
    /// Derived from the competition, so that a provider that dedupes drops a retried send.
    pub idempotency_key: String,
}

/// A result notification that was recorded, atomically with the closing vote, and is waiting
/// for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The closed competition.
    pub competition: CompetitionId,
    /// Who to notify.
    pub owner: UserId,
    /// The competition's title, if any.
    pub title: Option<String>,
    /// The result to announce.
    pub outcome: Outcome,
    /// The devices it has reached so far ([`Endpoint::delivery_key`]), recorded when a delivery
    /// reached some of the owner's devices but not all: a retry sends only to the others.
    /// Empty until then, and in notifications stored before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivered_to: Vec<String>,
}

impl Notification {
    /// The notification recorded when `competition` closes.
    pub fn for_close(competition: &Competition, outcome: &Outcome) -> Self {
        Notification {
            competition: competition.id,
            owner: competition.owner.clone(),
            title: competition.title.clone(),
            outcome: outcome.clone(),
            delivered_to: Vec::new(),
        }
    }

    /// The notification recorded when the competition `standing` describes closes with
    /// `outcome`: what a database that keeps the standing apart from the rest of the
    /// competition records in the closing vote's step (see [`crate::adapter::decide_vote`]).
    pub fn closing(standing: &Standing, outcome: &Outcome) -> Self {
        Notification {
            competition: standing.id,
            owner: standing.owner.clone(),
            title: standing.title.clone(),
            outcome: outcome.clone(),
            delivered_to: Vec::new(),
        }
    }

    /// The idempotency key of its delivery: the same on every retry.
    pub fn idempotency_key(&self) -> String {
        format!("thisthat-result-{}", self.competition)
    }

    /// The push message that announces it.
    pub fn message(&self) -> PushMessage {
        let title = match &self.title {
            Some(t) => format!("Results are in: {t}"),
            None => "Your competition has a result".to_string(),
        };
        PushMessage {
            title,
            body: self.outcome.summary(),
            competition: self.competition,
            idempotency_key: self.idempotency_key(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(votes_to_close: u32) -> Competition {
        let id = CompetitionId::new();
        let photo = |i| Photo {
            key: BlobKey::photo(&id, i, MediaType::Png),
            media_type: MediaType::Png,
            size: 1,
            width: 1,
            height: 1,
            labels: vec![],
            display: None,
            original_kept: true,
        };
        Competition {
            id,
            owner: UserId::new("owner").unwrap(),
            title: None,
            status: Status::Open,
            photos: (0..3).map(photo).collect(),
            categories: vec![],
            tally: Tally::zero(3),
            votes_to_close,
            outcome: None,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn vote(c: &Competition, voter: &str, choice: usize) -> Vote {
        Vote {
            competition: c.id,
            voter: UserId::new(voter).unwrap(),
            choice,
        }
    }

    #[test]
    fn closing_vote_fixes_the_outcome() {
        let mut c = open(2);
        assert!(c.apply_vote(&vote(&c, "a", 0)).unwrap().closed.is_none());
        let r = c.apply_vote(&vote(&c, "b", 0)).unwrap();
        assert_eq!(r.closed.as_ref().map(|o| o.winners.clone()), Some(vec![0]));
        assert_eq!(c.status, Status::Closed);
        assert!(matches!(c.apply_vote(&vote(&c, "c", 1)), Err(Error::Closed)));
        assert_eq!(c.tally.total(), 2);
    }

    #[test]
    fn rejections_leave_state_unchanged() {
        let mut c = open(24);
        let before = c.clone();
        assert!(matches!(
            c.apply_vote(&vote(&c, "owner", 0)),
            Err(Error::OwnCompetition)
        ));
        assert!(matches!(
            c.apply_vote(&vote(&c, "a", 3)),
            Err(Error::InvalidInput { field: "choice", .. })
        ));
        assert_eq!(c, before);
    }

    #[test]
    fn summary_counts_margin_and_three_way_tie() {
        let tie = Outcome::from_tally(Tally::from_counts(vec![8, 8, 8]));
        assert_eq!(tie.summary(), "It's a tie: photos 1, 2 and 3 got 8 of 24 votes each.");
        assert!(tie.is_tie());
    }
}
