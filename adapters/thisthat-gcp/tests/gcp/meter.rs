//! The meter against the model on Cloud Storage (fake-gcs-server) + Firestore (its emulator) +
//! FCM and Vision (their wire fakes): every port operation the scenarios make is counted as
//! `thisthat-cost`'s model predicts, and the units the adapters report with `bill` are the
//! model's (docs/cost.md).

use thisthat_cost::{Provider, drive};

use super::*;

#[tokio::test]
async fn metered_calls_and_billed_units_equal_the_model() {
    for scenario in drive::scenarios() {
        let gcp = Everything::new().await;
        let run = drive::metered_equals_modelled(gcp.backend(), &scenario)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drive::billed_equals_modelled(
            &run,
            Provider::Gcp,
            &[
                "firestore.read",
                "firestore.write",
                "firestore.delete",
                "fcm.send",
                "vision.label",
                "vision.safe_search",
            ],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
