//! AI Vision on its wire fake (`fakes.rs`) against the classifier suite, with the 3.2 Adult
//! screen and without it.

use super::*;

thisthat_testkit::classifier_conformance!(Vision::start(Screening::AdultV32));

mod without_screening {
    use super::*;
    thisthat_testkit::classifier_conformance!(Vision::start(Screening::None));
}
