//! Notification Hubs on its wire fake (`fakes.rs`) against the notifier suite.

use super::*;

thisthat_testkit::notifier_conformance!(Hub::start());
