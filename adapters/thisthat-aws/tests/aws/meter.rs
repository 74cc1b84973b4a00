//! The meter against the model on S3 + DynamoDB + SNS (moto) + Rekognition (its wire fake):
//! every port operation the scenarios make is counted as `thisthat-cost`'s model predicts, and
//! the units the adapters report with `bill` are the model's (docs/cost.md).

use thisthat_cost::{
    Mix, Provider, drive,
    model::{Counts, quantities},
};
use thisthat_testkit::DomainHarness;

use crate::domain::OnAws;

#[tokio::test]
async fn metered_calls_and_billed_units_equal_the_model() {
    for scenario in drive::scenarios() {
        let aws = OnAws::new().await;
        let run = drive::metered_equals_modelled(aws.backend(), &scenario)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        drive::billed_equals_modelled(
            &run,
            Provider::Aws,
            &["sns.push", "rekognition.image"],
            &["sns.request", "dynamodb.read_unit", "dynamodb.write_unit"],
        )
        .unwrap_or_else(|e| panic!("{e}"));

        // SNS requests: the model's, and one more per registration, because moto keeps
        // `CustomUserData` out of the endpoint's attributes, so the adapter's check after
        // CreatePlatformEndpoint always finds the owner missing and sets it (docs/aws.md).
        let billed = |unit: &str| -> f64 {
            run.usage
                .ports
                .values()
                .flat_map(|ops| ops.values())
                .filter_map(|o| o.billed.get(unit))
                .sum()
        };
        let modelled: f64 = quantities(&Counts::from_scenario(&run.scenario), &Mix::single(Provider::Aws))
            .iter()
            .filter(|q| q.key == "sns.request")
            .map(|q| q.quantity)
            .sum();
        let registrations = run.usage.calls("notifier", "register") as f64;
        assert_eq!(billed("sns.request"), modelled + registrations, "{}", scenario.name);

        // moto answers a canned `ConsumedCapacity` (docs/aws.md), so its values say nothing;
        // that every database operation reported some proves each request asked for it.
        for (operation, counted) in run.usage.ports.get("database").into_iter().flatten() {
            let units: f64 = counted
                .billed
                .iter()
                .filter(|(unit, _)| unit.starts_with("dynamodb."))
                .map(|(_, n)| n)
                .sum();
            assert!(units > 0.0, "{operation} reported no consumed capacity: {counted:?}");
        }
    }
}
