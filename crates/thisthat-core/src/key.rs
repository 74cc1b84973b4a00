//! Blob keys: the names photos are stored under.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CompetitionId, Error, MediaType, Result};

/// Where every blob the SDK stores lives: `competitions/{id}/...`.
pub const PHOTO_PREFIX: &str = "competitions/";

/// The key of a blob in a [`BlobStore`](crate::ports::BlobStore).
///
/// The SDK builds the keys of photos itself ([`BlobKey::photo`]); a key never contains
/// caller-supplied path segments. Keys are restricted to characters every provider stores
/// unchanged and every file system accepts: ASCII letters, digits and `!-_.*'()`, in
/// `/`-separated segments that are neither empty, `.` nor `..`, at most 1024 bytes in all.
///
/// ```
/// use thisthat_core::BlobKey;
/// assert!(BlobKey::new("competitions/01JD4ZQ8VJ5YH0J3W6PX2E9K7M/0.jpg").is_ok());
/// assert!(BlobKey::new("../secrets").is_err());
/// assert!(BlobKey::new("/absolute").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobKey(String);

impl BlobKey {
    /// Longest accepted key, in bytes (S3's and Azure's limit is 1024).
    pub const MAX_LEN: usize = 1024;

    /// Validates a key.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.is_empty() || key.len() > Self::MAX_LEN {
            return Err(Error::invalid("key", "must be 1 to 1024 bytes"));
        }
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(Error::invalid(
                    "key",
                    "segments between '/' may not be empty, '.' or '..'",
                ));
            }
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
            {
                return Err(Error::invalid(
                    "key",
                    format!("character {c:?} is not allowed; use ASCII letters, digits and !-_.*'()"),
                ));
            }
        }
        Ok(BlobKey(key))
    }

    /// The key of photo `index` of a competition: `competitions/{id}/{index}.{ext}`.
    pub fn photo(competition: &CompetitionId, index: usize, media_type: MediaType) -> Self {
        BlobKey(format!(
            "{PHOTO_PREFIX}{competition}/{index}.{}",
            media_type.extension()
        ))
    }

    /// The competition this key belongs to, for keys the SDK built
    /// (`competitions/{id}/...`); `None` for any other key.
    ///
    /// ```
    /// use thisthat_core::{BlobKey, CompetitionId, MediaType};
    /// let id = CompetitionId::new();
    /// assert_eq!(BlobKey::photo(&id, 0, MediaType::Png).competition(), Some(id));
    /// assert_eq!(BlobKey::new("other/thing").unwrap().competition(), None);
    /// ```
    pub fn competition(&self) -> Option<CompetitionId> {
        let rest = self.0.strip_prefix(PHOTO_PREFIX)?;
        let (id, _) = rest.split_once('/')?;
        id.parse().ok()
    }

    /// The key of the display variant of photo `index`: `competitions/{id}/{index}.display.{ext}`,
    /// beside the original (so one prefix lists, and one cleanup deletes, both).
    pub fn display(competition: &CompetitionId, index: usize, media_type: MediaType) -> Self {
        BlobKey(format!(
            "competitions/{competition}/{index}.display.{}",
            media_type.extension()
        ))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        BlobKey::new(s)
    }
}

impl std::str::FromStr for BlobKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BlobKey::new(s)
    }
}

impl From<BlobKey> for String {
    fn from(k: BlobKey) -> String {
        k.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escapes_and_odd_characters() {
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "./a", "a b", "a\\b", "a?b", "a#b", "é", "a\0b", "%2e%2e",
        ] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?}");
        }
        assert!(BlobKey::new("x".repeat(1025)).is_err());
    }

    #[test]
    fn accepts_the_safe_set() {
        for good in ["a", "a/b/c", "a.b", "..a", "a..", "!-_.*'()", &"x".repeat(1024)] {
            assert!(BlobKey::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn photo_keys_are_valid_keys() {
        let id = CompetitionId::new();
        let k = BlobKey::photo(&id, 2, MediaType::Webp);
        assert_eq!(BlobKey::new(k.as_str()).ok(), Some(k.clone()));
        let d = BlobKey::display(&id, 2, MediaType::Jpeg);
        assert_eq!(BlobKey::new(d.as_str()).ok(), Some(d.clone()));
        assert_ne!(d, BlobKey::photo(&id, 2, MediaType::Jpeg));
    }
}
