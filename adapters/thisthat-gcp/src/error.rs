//! Provider errors mapped onto [`thisthat_core::Error`].

use std::time::Duration;

use thisthat_core::Error;
use tonic::Code;

/// Maps a Firestore gRPC status onto the error a caller can act on. Call-specific codes
/// (`ALREADY_EXISTS` for a create, `FAILED_PRECONDITION` for a conditional write) are mapped
/// by the caller first.
pub(crate) fn firestore_status(status: tonic::Status) -> Error {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => Error::Config {
            reason: format!(
                "Firestore refused the credentials ({:?}): check Application Default Credentials and the role roles/datastore.user",
                status.code()
            ),
            source: Some(Box::new(status)),
        },
        Code::Aborted
        | Code::Unavailable
        | Code::ResourceExhausted
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::Internal => Error::Unavailable {
            provider: "firestore",
            retry_after: matches!(status.code(), Code::ResourceExhausted).then(|| Duration::from_secs(1)),
            source: Some(Box::new(status)),
        },
        Code::NotFound => Error::Backend {
            provider: "firestore",
            message: "the database or collection does not exist".into(),
            source: Some(Box::new(status)),
        },
        _ => Error::Backend {
            provider: "firestore",
            message: format!("unexpected {:?}", status.code()),
            source: Some(Box::new(status)),
        },
    }
}

/// Maps a failure of the `firestore` crate itself (connecting, serialising).
pub(crate) fn firestore_crate(e: firestore::errors::FirestoreError) -> Error {
    use firestore::errors::FirestoreError as F;
    match e {
        F::NetworkError(_) => Error::unavailable("firestore", e),
        F::SystemError(_) | F::InvalidParametersError(_) => Error::Config {
            reason: "could not set up the Firestore client".into(),
            source: Some(Box::new(e)),
        },
        other => Error::backend("firestore", other),
    }
}

/// A stored document that does not decode as this crate writes it.
pub(crate) fn corrupt(what: impl Into<String>) -> Error {
    Error::Backend {
        provider: "firestore",
        message: what.into(),
        source: None,
    }
}
