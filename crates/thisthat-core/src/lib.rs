//! The domain of thisthat: "This, this or that", where an owner posts three photos, other users
//! vote for the best, and the 24th vote closes the competition and notifies the owner.
//!
//! The domain is written against four [ports]: [`BlobStore`](ports::BlobStore),
//! [`Database`](ports::Database), [`Notifier`](ports::Notifier) and
//! [`Classifier`](ports::Classifier). Adapter crates implement them for a provider; a
//! [`Backend`] holds any four; [`Thisthat`] is the service that runs every use case on them.
//!
//! Most applications depend on the `thisthat` facade crate instead of this one.

pub mod adapter;
pub mod backend;
pub mod clock;
pub mod decode;
pub mod error;
pub mod id;
pub mod key;
pub mod layers;
pub mod media;
pub mod model;
pub mod native;
#[cfg(feature = "openapi")]
mod openapi;
pub mod page;
pub mod ports;
pub mod registry;
pub mod rules;
pub mod service;
pub mod signing;

pub use backend::Backend;
pub use clock::{Clock, SystemClock};
pub use error::{BoxError, Entity, Error, Result};
pub use id::{CompetitionId, UserId};
pub use key::BlobKey;
pub use media::{ImageInfo, MediaType};
pub use model::{
    Category, Classification, Competition, Device, Endpoint, Label, Notification, Outcome, Photo, PhotoVariant,
    Platform, PushMessage, Standing, Status, Tally, Vote, VoteReceipt,
};
pub use page::{Cursor, FeedPage, FeedQuery};
pub use registry::{BackendConfig, Registry, UrlOpener};
pub use rules::Rules;
pub use service::{
    BeginUpload, DeclaredPhoto, DeliveryMode, DeliveryReport, MaintenanceReport, NewCompetition, SweepReport, Thisthat,
    ThisthatBuilder, UploadTicket,
};
