//! The meter against the model on S3 + DynamoDB + SNS (moto) + Rekognition (its wire fake):
//! every port operation the scenarios make is counted as `thisthat-cost`'s model predicts, and
//! the units the adapters report with `bill` are the model's (docs/cost.md).

use thisthat_cost::{Provider, drive};
use thisthat_testkit::DomainHarness;

use crate::domain::OnAws;

#[tokio::test]
async fn metered_calls_and_billed_units_equal_the_model() {
    for scenario in drive::scenarios() {
        let aws = OnAws::new().await;
        let run = drive::metered_equals_modelled(aws.backend(), &scenario)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drive::billed_equals_modelled(&run, Provider::Aws, &[]).unwrap_or_else(|e| panic!("{e}"));
    }
}
