use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{
    Competition, CompetitionId, Endpoint, FeedPage, FeedQuery, Notification, Result, UserId, Vote, VoteReceipt,
};

/// Which pending notifications [`Database::claim_notifications`] should claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationClaim {
    /// Only this competition's notification, if set.
    pub competition: Option<CompetitionId>,
    /// The current time; notifications whose lease ended before it may be claimed.
    pub now: SystemTime,
    /// How long the claim holds off other workers.
    pub lease: Duration,
    /// At most this many.
    pub limit: usize,
}

/// The database, as the domain's operations rather than generic get and put.
///
/// Each method is one thing the domain needs done atomically, so that each backend runs it its
/// native way in as few round trips as it allows: a vote is one savepoint of the SQLite
/// writer's group-commit transaction (a lone vote, its own transaction), one
/// DynamoDB `UpdateItem` (two for the closing vote), one read and one Firestore commit, one
/// read and one Azure Table batch (`docs/architecture.md` has the table). The rules themselves
/// live in [`crate::adapter::decide_vote`] and [`crate::Standing::apply`], and the conformance
/// suite holds every adapter to them; `docs/architecture.md` says why the port has this shape.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Database: Send + Sync + std::fmt::Debug {
    /// Stores a new competition (open, or a draft of the signed-upload flow).
    /// [`Error::Conflict`](crate::Error::Conflict) if the id exists.
    async fn insert_competition(&self, competition: &Competition) -> Result<()>;

    /// Replaces a draft with its finished, open form. [`Error::NotFound`](crate::Error::NotFound)
    /// if there is no such competition, [`Error::Conflict`](crate::Error::Conflict) if it is no
    /// longer a draft (finished twice, concurrently).
    async fn publish_competition(&self, competition: &Competition) -> Result<()>;

    /// Deletes a draft that will not be finished. Deleting a missing draft succeeds; a
    /// competition that is no longer a draft is [`Error::Conflict`](crate::Error::Conflict).
    async fn delete_draft(&self, id: &CompetitionId) -> Result<()>;

    /// Up to `limit` drafts created before `before`, oldest first: drafts of the signed-upload
    /// flow nobody finished, for [`Thisthat::sweep`](crate::Thisthat::sweep) to delete once
    /// their upload URLs have expired, including drafts to which nothing was ever uploaded.
    /// A draft's creation time is its [`CompetitionId`]'s (ids are minted at creation), so a
    /// backend can answer from its id index.
    async fn expired_drafts(&self, before: SystemTime, limit: usize) -> Result<Vec<CompetitionId>>;

    /// Reads a competition. [`Error::NotFound`](crate::Error::NotFound) if missing.
    async fn competition(&self, id: &CompetitionId) -> Result<Competition>;

    /// Records and counts one vote in one atomic step, as [`crate::adapter::decide_vote`]
    /// defines. The same vote sent again (same voter, same choice) is answered with its
    /// original receipt and changes nothing.
    ///
    /// Rejects with [`Error::NotFound`](crate::Error::NotFound) (also for drafts),
    /// [`Error::AlreadyVoted`](crate::Error::AlreadyVoted),
    /// [`Error::OwnCompetition`](crate::Error::OwnCompetition),
    /// [`Error::Closed`](crate::Error::Closed) or an invalid `choice`, changing nothing. The vote
    /// that reaches the competition's threshold closes it, stores its outcome and records its
    /// pending [`Notification`] in the same atomic step.
    async fn cast_vote(&self, vote: &Vote) -> Result<VoteReceipt>;

    /// One page of open competitions, newest first (see [`FeedQuery::admits`]).
    async fn feed(&self, query: &FeedQuery) -> Result<FeedPage>;

    /// Claims pending notifications whose lease has run out (or that were never claimed), and
    /// leases them to the caller, so that concurrent workers do not deliver the same one at
    /// the same time.
    async fn claim_notifications(&self, claim: &NotificationClaim) -> Result<Vec<Notification>>;

    /// Records that a pending notification reached these devices
    /// ([`Endpoint::delivery_key`]), when a delivery reached some of the owner's devices but
    /// not all: later claims return it with them in [`Notification::delivered_to`], so a retry
    /// sends only to the others. Adding a device already recorded changes nothing; the lease
    /// is left as it is. [`Error::NotFound`](crate::Error::NotFound) if none was recorded,
    /// [`Error::Conflict`](crate::Error::Conflict) if it was already completed.
    async fn record_deliveries(&self, competition: &CompetitionId, devices: &[String]) -> Result<()>;

    /// Marks a notification delivered, at `at` (the service's clock).
    /// [`Error::Conflict`](crate::Error::Conflict) if it already was: a notification is never
    /// marked delivered twice. [`Error::NotFound`](crate::Error::NotFound) if none was recorded.
    async fn complete_notification(&self, competition: &CompetitionId, at: SystemTime) -> Result<()>;

    /// Saves a registered device, replacing an earlier registration of the same user and token.
    async fn save_endpoint(&self, endpoint: &Endpoint) -> Result<()>;

    /// A user's registered devices.
    async fn endpoints(&self, user: &UserId) -> Result<Vec<Endpoint>>;

    /// Forgets a device. Forgetting a missing one succeeds.
    async fn delete_endpoint(&self, user: &UserId, token: &str) -> Result<()>;

    /// The adapter itself or its native client, if it exposes one of type `ty`: the escape
    /// hatch of the [`native`](crate::native) module, Go CDK's `As`. Callers use the typed
    /// `native::<T>()` on `dyn Database`; adapters override this with
    /// [`offer`](crate::native::offer), and wrappers forward it to the port they wrap. The
    /// default exposes nothing.
    #[expect(
        clippy::needless_lifetimes,
        reason = "mockall cannot mock a lifetime elided inside `Option`"
    )]
    fn as_native<'a>(&'a self, ty: std::any::TypeId) -> Option<&'a dyn std::any::Any> {
        let _ = ty;
        None
    }
}
