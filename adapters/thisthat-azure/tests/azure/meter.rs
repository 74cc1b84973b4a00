//! The meter against the model on Blob and Table Storage (Azurite) + Notification Hubs and AI
//! Vision (their wire fakes): every port operation the scenarios make is counted as
//! `thisthat-cost`'s model predicts, and the units the adapters report with `bill` are the
//! model's (docs/cost.md).

use thisthat_cost::{Provider, drive};

use super::*;

#[tokio::test]
async fn metered_calls_and_billed_units_equal_the_model() {
    for scenario in drive::scenarios() {
        let azure = Azure::start().await;
        let run = drive::metered_equals_modelled(azure.backend(), &scenario)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drive::billed_equals_modelled(
            &run,
            Provider::Azure,
            &["table.transaction", "notificationhubs.push", "vision.transaction"],
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
