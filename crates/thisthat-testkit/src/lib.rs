//! The test kit of thisthat: in-memory adapters for all four ports, the conformance suites
//! every adapter passes, fault injection, and ready-made photos and fixtures for people who
//! test code built on thisthat.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> thisthat_core::Result<()> {
//! use thisthat_core::{NewCompetition, Thisthat};
//! use thisthat_testkit::{fixtures::user, memory::MemoryBackend, photos};
//!
//! let memory = MemoryBackend::new();
//! let service = Thisthat::builder(memory.backend()).build()?;
//! let c = service.create_competition(&user("alice"), NewCompetition { title: None, photos: photos::three() }).await?;
//! service.vote(&user("bob"), &c.id, 2).await?;
//! assert_eq!(memory.database.vote_count(), 1);
//! # Ok(()) }
//! ```

pub mod conformance;
pub mod faults;
pub mod fixtures;
pub mod memory;
pub mod photos;
pub mod wire;

pub use conformance::{
    BlobHarness, ClassifierHarness, DatabaseHarness, DirectResponse, DomainHarness, NotifierHarness, ServedHeaders,
    SignedUrls,
};
