//! How Azure's answers become [`thisthat_core::Error`]s, where a call does not leave it to
//! `thisthat_http::status_error`: a missing table, a refused entity-group transaction, a stored
//! entity that cannot be read. (Blob Storage's mapping of the SDK's errors stays with the blob
//! adapter, `blob::map_error`.)

use thisthat_core::{Entity as What, Error, Vote};
use thisthat_http::HttpStatusError;

use crate::table::BatchFailure;

/// The provider name Table Storage errors carry.
pub(crate) const TABLE_PROVIDER: &str = "azure-table";
const PROVIDER: &str = TABLE_PROVIDER;

/// A 404 whose error code is `TableNotFound`: the table itself is missing, which no retry
/// fixes and which is not a missing entity either; the deployment has not created it.
pub(crate) fn missing_table(table: &str, e: &HttpStatusError) -> Option<Error> {
    (e.status == 404 && e.body.contains("TableNotFound")).then(|| Error::Config {
        reason: format!(
            "the table {table:?} does not exist: create it (AzureTableDatabase::create_tables, or aztable://...?create=true)"
        ),
        source: Some(e.clone().into()),
    })
}

pub(crate) fn corrupt(what: &str, e: impl Into<thisthat_core::BoxError>) -> Error {
    Error::Backend {
        provider: PROVIDER,
        message: format!("a stored {what} could not be read"),
        source: Some(e.into()),
    }
}

/// What a refused vote batch means. The batch is the vote insert (index 0), the standing
/// merge (1) and, for a closing vote, the notification insert (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Anything the next read decides: the standing changed (412), or a conflict, including
    /// the vote insert refused as existing (the same voter's vote landed between the read and
    /// the batch: the next read finds it and answers a repeat with its receipt).
    ReadAgain,
    /// The competition was deleted since the read (a deleted draft).
    Missing,
    /// The table is gone: the deployment's fault.
    NoTable,
    /// Any other status.
    Other,
}

pub(crate) fn refusal(failure: &BatchFailure) -> Refusal {
    match (failure.status, failure.index, failure.code.as_str()) {
        (409 | 412, _, _) => Refusal::ReadAgain,
        (404, _, "TableNotFound") => Refusal::NoTable,
        (404, _, _) => Refusal::Missing,
        _ => Refusal::Other,
    }
}

/// The error a refused vote batch is, when the next read does not decide it
/// ([`Refusal::ReadAgain`]).
pub(crate) fn batch_error(vote: &Vote, table: &str, failure: BatchFailure) -> Error {
    match refusal(&failure) {
        Refusal::Missing => Error::not_found(What::Competition, vote.competition),
        Refusal::NoTable => Error::Config {
            reason: format!("the table {table:?} does not exist: create it"),
            source: Some(failure.into()),
        },
        Refusal::ReadAgain | Refusal::Other => {
            match thisthat_http::status_error(PROVIDER, HttpStatusError::new(failure.status, failure.code.clone())) {
                Error::Backend { provider, message, .. } => Error::Backend {
                    provider,
                    message,
                    source: Some(failure.into()),
                },
                other => other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, index: Option<usize>, code: &str) -> BatchFailure {
        BatchFailure {
            index,
            status,
            code: code.into(),
        }
    }

    #[test]
    fn conflicts_and_lost_conditions_are_decided_by_the_next_read() {
        // The vote row landed in between (a resend racing its first send), no index, another
        // operation, another code or the standing changed: the next read decides.
        for f in [
            failure(409, Some(0), "EntityAlreadyExists"),
            failure(409, None, "EntityAlreadyExists"),
            failure(409, Some(2), "EntityAlreadyExists"),
            failure(409, Some(0), "SomethingElse"),
            failure(412, Some(1), "UpdateConditionNotSatisfied"),
        ] {
            assert_eq!(refusal(&f), Refusal::ReadAgain, "{f:?}");
        }
        assert_eq!(refusal(&failure(404, Some(1), "ResourceNotFound")), Refusal::Missing);
        assert_eq!(refusal(&failure(404, None, "TableNotFound")), Refusal::NoTable);
        assert_eq!(refusal(&failure(500, None, "InternalError")), Refusal::Other);
    }
}
