use std::path::PathBuf;

/// Why a scenario, a price table or a usage file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CostError {
    /// A scenario field is unknown, of the wrong type, negative or out of range.
    #[error("scenario field `{field}`: {message}")]
    Scenario {
        /// The field, as named in the scenario file.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A price table is malformed.
    #[error("price table {file}: {message}")]
    Prices {
        /// The file (or `built-in <provider>`).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A usage file cannot be priced.
    #[error("usage: {0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl CostError {
    pub(crate) fn scenario(field: &str, message: impl Into<String>) -> Self {
        CostError::Scenario {
            field: field.to_string(),
            message: message.into(),
        }
    }
}
