//! FCM on a local wire fake against the notifier suite.

use super::*;

thisthat_testkit::notifier_conformance!(Fcm::new());
