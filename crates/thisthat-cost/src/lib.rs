//! What thisthat costs on each provider and on every mix of providers, and which is cheapest.
//!
//! Three parts, each usable alone:
//!
//! - [`Scenario`]: a month of the app (users, sessions, votes, competitions, photo sizes, …),
//!   with the article's month built in as [`Scenario::seed`].
//! - [`model`]: the scenario as port operations (what [`thisthat_core::layers::Meter`] counts,
//!   and what a test proves it counts exactly), then as the units each provider bills for them.
//! - [`prices`] and [`price_all`]: dated price tables (one TOML file per provider, each price
//!   with its source) and every mix of providers priced from them. A price the tables lack is
//!   never taken as zero: the mixes that need it are refused, saying which price is missing.
//!
//! ```
//! use thisthat_cost::{Scenario, prices::PriceBook, price_all, FreeTier};
//! let book = PriceBook::builtin().expect("the built-in tables parse");
//! let report = price_all(&Scenario::seed(), &book, FreeTier::On);
//! let cheapest = report.cheapest().expect("some mix can be priced");
//! println!("cheapest: {} at ${:.2} a month", cheapest.mix, cheapest.monthly_usd.unwrap_or_default());
//! ```

mod chart;
#[cfg(feature = "drive")]
pub mod drive;
mod error;
pub mod model;
pub mod prices;
mod pricing;
mod scenario;

pub use chart::{ChartSeries, chart_svg, cost_curve};
pub use error::CostError;
pub use model::{Counts, Mix, Provider};
pub use pricing::{FreeTier, Line, PricedMix, Report, price_all, price_all_counts, price_counts};
pub use scenario::Scenario;
