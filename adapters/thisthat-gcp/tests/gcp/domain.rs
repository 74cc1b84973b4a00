//! The whole domain on all four Google Cloud adapters, the 1,000-voter race included.

use super::*;

thisthat_testkit::domain_conformance!(Everything::new());
