//! Cloud Storage on fake-gcs-server against the blob store suite.

use super::*;

thisthat_testkit::blob_store_conformance!(async { Gcs(gcs().await) });
