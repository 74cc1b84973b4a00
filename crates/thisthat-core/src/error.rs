//! The one error type of thisthat: one variant per thing a caller can act on.

use std::time::Duration;

/// A boxed error from an adapter's provider, kept as the [`std::error::Error::source`] of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, thisthat_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in thisthat, from the service down to each port.
///
/// Adapters map their provider's errors onto these variants so that a caller can act on
/// the variant alone (return a 404, ask the user to pick another photo, retry later) whatever
/// cloud sits underneath. The provider's own error stays reachable through
/// [`std::error::Error::source`].
///
/// Only [`Error::Unavailable`] is worth retrying; [`Error::is_retryable`] says so, and the retry
/// layer ([`crate::layers::Retry`]) retries nothing else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value passed in was malformed or out of range. Fix the request; retrying won't help.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument that was wrong, in the API's terms (`photos`, `title`, `competition_id`).
        field: &'static str,
        /// What was wrong with it and what would be accepted.
        reason: String,
    },

    /// The thing asked for does not exist.
    #[error("{entity} {id} was not found")]
    NotFound {
        /// What kind of thing was looked up.
        entity: Entity,
        /// The id or key that was looked up.
        id: String,
    },

    /// This voter has already voted on this competition; their first vote stands.
    ///
    /// A vote that is retried after an unclear failure also ends here when the first attempt
    /// was in fact recorded.
    #[error("user has already voted on this competition")]
    AlreadyVoted,

    /// Owners cannot vote on their own competition.
    #[error("owners cannot vote on their own competition")]
    OwnCompetition,

    /// The competition is closed (it reached its vote threshold) and takes no more votes.
    #[error("the competition is closed")]
    Closed,

    /// The bytes are not an image format thisthat accepts (JPEG, PNG, WebP). The format is
    /// sniffed from the bytes; the declared content type and file name are never trusted.
    #[error("unsupported media type: {detected}; upload a JPEG, PNG or WebP image")]
    UnsupportedMediaType {
        /// What the bytes looked like, or what was declared when that did not match them.
        detected: String,
    },

    /// A photo or request is larger than the configured limit.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// What was too large (`photo 2`, `upload`).
        what: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// The classifier flagged a photo as unsafe; the whole competition was rejected and nothing
    /// of it was kept.
    #[error("photo {photo} was flagged as unsafe ({label}, confidence {confidence:.2})")]
    UnsafeContent {
        /// Zero-based index of the flagged photo.
        photo: usize,
        /// The moderation label that flagged it.
        label: String,
        /// The classifier's confidence in that label.
        confidence: f32,
    },

    /// A write lost a race or its precondition failed (for example put-if-absent on an
    /// existing key, or finishing an upload twice). Re-read and decide again.
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicted.
        reason: String,
        /// The provider's error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A provider is temporarily unavailable (throttled, timed out, 5xx). Retrying later may
    /// succeed; this is the only kind the retry layer retries.
    #[error("{provider} is temporarily unavailable; retry later")]
    Unavailable {
        /// The provider or service that failed (`s3`, `dynamodb`, `sqlite`).
        provider: &'static str,
        /// How long the provider asked callers to wait, if it said.
        retry_after: Option<Duration>,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },

    /// An adapter's own attempts ran out: a race it kept losing (many voters on one
    /// competition) or a provider that stayed unavailable through its retries. Unlike
    /// [`Error::Unavailable`] no retry layer retries it, so that retries never multiply
    /// (OpenDAL calls such errors persistent); a caller may try again later (HTTP 503).
    #[error("{provider} stayed busy through {attempts} attempts; try again later")]
    Busy {
        /// The provider or service.
        provider: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error, if it had one.
        #[source]
        source: Option<BoxError>,
    },

    /// The adapter cannot do this at all (for example signed URLs on a backend that has no way
    /// to serve them). Choose another adapter for this port.
    #[error("{adapter} does not support {operation}")]
    Unsupported {
        /// The adapter asked.
        adapter: &'static str,
        /// What it was asked to do.
        operation: &'static str,
    },

    /// The configuration is wrong: an unknown adapter URL scheme, a missing setting, credentials
    /// the provider refused. Fix the configuration; retrying won't help.
    #[error("configuration error: {reason}")]
    Config {
        /// What is wrong and how to fix it.
        reason: String,
        /// The provider's error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A provider failed in a way none of the other variants describes. The source says how.
    #[error("{provider} failed: {message}")]
    Backend {
        /// The provider or service that failed.
        provider: &'static str,
        /// A short description of the failure.
        message: String,
        /// The provider's error.
        #[source]
        source: Option<BoxError>,
    },
}

/// What kind of thing an [`Error::NotFound`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A competition.
    Competition,
    /// A stored photo or other blob.
    Blob,
    /// A registered device.
    Device,
    /// A pending notification.
    Notification,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::Competition => "competition",
            Entity::Blob => "blob",
            Entity::Device => "device",
            Entity::Notification => "notification",
        })
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: Entity, id: impl std::fmt::Display) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::Conflict`] without a provider source.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Error::Conflict {
            reason: reason.into(),
            source: None,
        }
    }

    /// Shorthand for [`Error::Unavailable`] carrying the provider's error.
    pub fn unavailable(provider: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            provider,
            retry_after: None,
            source: Some(source.into()),
        }
    }

    /// Shorthand for [`Error::Backend`] carrying the provider's error.
    pub fn backend(provider: &'static str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Error::Backend {
            provider,
            message: source.to_string(),
            source: Some(source),
        }
    }

    /// Shorthand for [`Error::Config`] without a provider source.
    pub fn config(reason: impl Into<String>) -> Self {
        Error::Config {
            reason: reason.into(),
            source: None,
        }
    }

    /// Whether a retry layer should retry the same call. True only for [`Error::Unavailable`]
    /// ([`Error::Busy`] already was retried, by the adapter).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The HTTP status that stands for this error in thisthat's APIs: 400 invalid input,
    /// 403 a refused signature or the owner's own vote, 404, 409 (already voted, closed,
    /// conflict), 413, 415, 422 unsafe content, 503 unavailable, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidInput { field: "signature", .. } | Error::OwnCompetition => 403,
            Error::InvalidInput { .. } => 400,
            Error::NotFound { .. } => 404,
            Error::AlreadyVoted | Error::Closed | Error::Conflict { .. } => 409,
            Error::TooLarge { .. } => 413,
            Error::UnsupportedMediaType { .. } => 415,
            Error::UnsafeContent { .. } => 422,
            Error::Unavailable { .. } | Error::Busy { .. } => 503,
            Error::Unsupported { .. } => 501,
            Error::Config { .. } | Error::Backend { .. } => 500,
        }
    }

    /// Every [`Error::code`], in the order of the variants: what an API document lists as the
    /// codes a client may meet.
    pub const CODES: [&'static str; 14] = [
        "invalid_input",
        "not_found",
        "already_voted",
        "own_competition",
        "closed",
        "unsupported_media_type",
        "too_large",
        "unsafe_content",
        "conflict",
        "unavailable",
        "busy",
        "unsupported",
        "config",
        "backend",
    ];

    /// A stable, machine-readable code for this kind of error (`not_found`, `already_voted`, …),
    /// for APIs and logs. Codes never change once published.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyVoted => "already_voted",
            Error::OwnCompetition => "own_competition",
            Error::Closed => "closed",
            Error::UnsupportedMediaType { .. } => "unsupported_media_type",
            Error::TooLarge { .. } => "too_large",
            Error::UnsafeContent { .. } => "unsafe_content",
            Error::Conflict { .. } => "conflict",
            Error::Unavailable { .. } => "unavailable",
            Error::Busy { .. } => "busy",
            Error::Unsupported { .. } => "unsupported",
            Error::Config { .. } => "config",
            Error::Backend { .. } => "backend",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_retryable() {
        assert!(Error::unavailable("s3", "throttled").is_retryable());
        assert!(!Error::AlreadyVoted.is_retryable());
        assert!(!Error::conflict("x").is_retryable());
        assert!(!Error::backend("s3", "denied").is_retryable());
        let exhausted = Error::Busy {
            provider: "firestore",
            attempts: 64,
            source: None,
        };
        assert!(!exhausted.is_retryable(), "an exhausted loop is not retried again");
        assert_eq!(exhausted.http_status(), 503);
    }

    #[test]
    fn every_code_is_listed_once() {
        let one_of_each = [
            Error::invalid("title", "x"),
            Error::not_found(Entity::Competition, "x"),
            Error::AlreadyVoted,
            Error::OwnCompetition,
            Error::Closed,
            Error::UnsupportedMediaType { detected: "gif".into() },
            Error::TooLarge {
                what: "photo".into(),
                size: 2,
                limit: 1,
            },
            Error::UnsafeContent {
                photo: 0,
                label: "violence".into(),
                confidence: 0.9,
            },
            Error::conflict("x"),
            Error::unavailable("s3", "throttled"),
            Error::Busy {
                provider: "firestore",
                attempts: 1,
                source: None,
            },
            Error::Unsupported {
                adapter: "memory",
                operation: "signed URLs",
            },
            Error::config("x"),
            Error::backend("s3", "denied"),
        ];
        let codes: Vec<&str> = one_of_each.iter().map(Error::code).collect();
        assert_eq!(codes, Error::CODES);
    }

    #[test]
    fn provider_error_stays_reachable_as_source() {
        use std::error::Error as _;
        let e = Error::unavailable("dynamodb", "ProvisionedThroughputExceeded");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("ProvisionedThroughputExceeded")
        );
    }
}
