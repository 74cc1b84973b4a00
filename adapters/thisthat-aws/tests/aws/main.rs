//! The AWS adapters against moto (and, for what moto lacks, a wire fake): one test binary so
//! that the AWS SDK is linked once. Run through `scripts/with-emulators aws -- cargo test -p
//! thisthat-aws`, which starts moto and sets `THISTHAT_MOTO_URL`; without it every test here
//! fails, by design, rather than skipping.
//!
//! One module per port (`blob`, `database`, `notifier`, `classifier`), the whole domain
//! (`domain`), the fakes for what moto lacks (`fakes`), and what is AWS's own: request counts
//! through a proxy (`round_trips`), opening from URLs (`opener`), the SDK clients behind the
//! ports (`native`) and reaching moto (`support`).

mod blob;
mod classifier;
mod database;
mod domain;
mod fakes;
mod meter;
mod native;
mod notifier;
mod opener;
mod round_trips;
mod support;
