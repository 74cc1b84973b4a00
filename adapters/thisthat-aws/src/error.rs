//! AWS errors mapped onto thisthat's, in one place for all four services.

use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use thisthat_core::Error;

/// Error codes that mean "slow down or try again", across S3, DynamoDB, SNS and Rekognition.
const RETRYABLE: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "InternalServerError",
    "InternalError",
    "InternalFailure",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "TransactionConflictException",
    "TransactionInProgressException",
    "LimitExceededException",
    "KMSThrottlingException",
    "KMSThrottling",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

/// Error codes that mean the credentials or permissions are wrong: fix the configuration.
const CONFIG: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "ResourceNotFoundException",
    "NoSuchBucket",
];

/// Maps any AWS SDK error onto thisthat's error for the things every call shares: transport
/// failures and throttling are retryable, refused credentials and missing tables or buckets are
/// configuration, the rest is a provider failure carrying the AWS error. Call-specific codes
/// (a missing key, a failed condition) are mapped by the adapter before it falls back to this.
pub(crate) fn map<E>(service: &'static str, error: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return Error::unavailable(service, error);
        }
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            return Error::unavailable(service, error);
        }
        // The SDK reports missing credentials, an unresolvable region or endpoint this way
        // too: retrying cannot fix those.
        SdkError::DispatchFailure(_) => {
            return Error::Config {
                reason: format!(
                    "could not send a {service} request: check the credentials, region and endpoint (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL)"
                ),
                source: Some(error.into()),
            };
        }
        SdkError::ConstructionFailure(_) => {
            return Error::Config {
                reason: format!("could not build a {service} request: check the region, endpoint and credentials"),
                source: Some(error.into()),
            };
        }
        _ => {}
    }
    let code = error.code().unwrap_or_default().to_owned();
    let status = error.raw_response().map(|r| r.status().as_u16()).unwrap_or_default();
    if RETRYABLE.contains(&code.as_str()) || status == 429 || status >= 500 {
        Error::unavailable(service, error)
    } else if CONFIG.contains(&code.as_str()) || status == 401 || status == 403 {
        Error::Config {
            reason: format!(
                "{service} refused the request ({code}): check the credentials, IAM permissions (docs/aws.md) and that the resource exists"
            ),
            source: Some(error.into()),
        }
    } else {
        Error::backend(service, error)
    }
}

/// The error code of an SDK error, if the service sent one.
pub(crate) fn code<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> Option<&str> {
    error.code()
}
