//! The in-memory adapters against every conformance suite: the reference run that every
//! other adapter's run mirrors.

use std::sync::Arc;

use thisthat_testkit::memory::{MemoryClassifier, MemoryDatabase, MemoryHarness};

mod blob {
    use super::*;
    thisthat_testkit::blob_store_conformance!(async { MemoryHarness::new() });
}

mod database {
    use super::*;
    thisthat_testkit::database_conformance!(async { Arc::new(MemoryDatabase::new()) });
}

mod notifier {
    use super::*;
    thisthat_testkit::notifier_conformance!(async { MemoryHarness::new() });
}

mod classifier {
    use super::*;
    thisthat_testkit::classifier_conformance!(async { Arc::new(MemoryClassifier::new()) });
}

mod domain {
    use super::*;
    thisthat_testkit::domain_conformance!(async { MemoryHarness::new() });
}
