//! Vision on a local wire fake against the classifier suite.

use super::*;

thisthat_testkit::classifier_conformance!(Vision::new());
