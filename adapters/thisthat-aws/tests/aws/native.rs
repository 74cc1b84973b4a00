//! The escape hatch (`thisthat_core::native`): from the erased, layered ports a deployment
//! opens by URL, through to the AWS SDK clients, each making one call of its own on moto.

use thisthat_aws::{DynamoDatabase, S3BlobStore, SnsNotifier, sdk};
use thisthat_core::layers::Meter;

use crate::support::unique;

/// Opened by URL and layered as the `thisthat` binaries do (`Meter` innermost, then `Trace`
/// and `Retry`), every port still reaches its adapter and SDK client, and each client works.
#[tokio::test]
async fn the_sdk_clients_are_reached_through_the_layers() {
    let name = unique("native");
    let (_, backend, application) = crate::opener::open_from_urls(&name).await;
    let backend = backend.layer(Meter::new()).with_standard_layers();

    // DynamoDB: the adapter names its table; its client describes it.
    let dynamo: &DynamoDatabase = backend.database.native().expect("the DynamoDB adapter");
    let client: &sdk::dynamodb::Client = backend.database.native().expect("the DynamoDB client");
    let described = client
        .describe_table()
        .table_name(dynamo.table())
        .send()
        .await
        .expect("DescribeTable through the native client");
    assert_eq!(described.table().and_then(|t| t.table_name()), Some(name.as_str()));

    // S3: the bucket the URL named is there for the native client.
    let s3: &S3BlobStore = backend.blobs.native().expect("the S3 adapter");
    let client: &sdk::s3::Client = backend.blobs.native().expect("the S3 client");
    assert_eq!(s3.bucket(), name);
    client
        .head_bucket()
        .bucket(s3.bucket())
        .send()
        .await
        .expect("HeadBucket through the native client");

    // SNS: the platform application the URL named is listed by the native client.
    let sns: &sdk::sns::Client = backend.notifier.native().expect("the SNS client");
    let listed = sns
        .list_platform_applications()
        .send()
        .await
        .expect("ListPlatformApplications through the native client");
    assert!(
        listed
            .platform_applications()
            .iter()
            .any(|a| a.platform_application_arn() == Some(application.as_str()))
    );
    assert!(backend.notifier.native::<SnsNotifier>().is_some());

    assert!(backend.classifier.native::<sdk::rekognition::Client>().is_some());

    // Another port's client, or a type no adapter exposes, is None.
    assert!(backend.database.native::<sdk::s3::Client>().is_none());
    assert!(backend.blobs.native::<DynamoDatabase>().is_none());
    assert!(backend.classifier.native::<String>().is_none());
}
