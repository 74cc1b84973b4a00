//! The feed: queries, opaque cursors and pages.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Category, Competition, CompetitionId, Error, Result, UserId};

/// An opaque position in the feed. Hand it back to get the next page; its contents are not
/// part of the API and may change.
///
/// ```
/// use thisthat_core::{Cursor, CompetitionId};
/// let c = Cursor::after(CompetitionId::new());
/// let parsed: Cursor = c.to_string().parse()?;
/// assert_eq!(c, parsed);
/// assert!("garbage".parse::<Cursor>().is_err());
/// # Ok::<(), thisthat_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    after: CompetitionId,
}

const CURSOR_PREFIX: &str = "v1:";

impl Cursor {
    /// The position just past `id` in newest-first order.
    pub fn after(id: CompetitionId) -> Self {
        Cursor { after: id }
    }

    /// The last competition of the previous page; the next page holds older ones only.
    pub fn last_seen(&self) -> CompetitionId {
        self.after
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let raw = format!("{CURSOR_PREFIX}{}", self.after);
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }
}

impl std::str::FromStr for Cursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::invalid("cursor", "not a cursor this API handed out");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let id = raw.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
        Ok(Cursor {
            after: id.parse().map_err(|_| invalid())?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which open competitions to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    /// Who is looking: their own competitions are left out, and, where the database can do it
    /// cheaply, those they already voted on.
    pub viewer: Option<UserId>,
    /// Only competitions with this category.
    pub category: Option<Category>,
    /// Continue after this position.
    pub cursor: Option<Cursor>,
    /// At most this many competitions (1 to 100).
    pub limit: usize,
}

impl FeedQuery {
    /// Largest page size.
    pub const MAX_LIMIT: usize = 100;

    /// The first page of everything open, 20 at a time.
    pub fn new() -> Self {
        FeedQuery {
            viewer: None,
            category: None,
            cursor: None,
            limit: 20,
        }
    }

    /// Checks the limit.
    pub fn validate(&self) -> Result<()> {
        if !(1..=Self::MAX_LIMIT).contains(&self.limit) {
            return Err(Error::invalid("limit", "must be 1 to 100"));
        }
        Ok(())
    }

    /// Whether `c` belongs in this feed, ignoring the cursor and the already-voted filter.
    /// Databases that filter in memory share this definition.
    pub fn admits(&self, c: &Competition) -> bool {
        c.status == crate::Status::Open
            && self.viewer.as_ref() != Some(&c.owner)
            && self.category.as_ref().is_none_or(|cat| c.categories.contains(cat))
            && self.cursor.is_none_or(|cur| c.id < cur.last_seen())
    }
}

impl Default for FeedQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// One page of the feed, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedPage {
    /// The competitions on this page.
    pub competitions: Vec<Competition>,
    /// The `cursor` of the next page; `null` (`None`) on the last page.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = true))]
    pub next: Option<Cursor>,
}

impl FeedPage {
    /// The page made of the first `limit` of `competitions`, newest first. Databases read one
    /// more than the page holds: if it is there, another page follows, starting after the last
    /// one kept.
    pub fn from_one_too_many(mut competitions: Vec<Competition>, limit: usize) -> Self {
        let next = if competitions.len() > limit {
            competitions.truncate(limit);
            competitions.last().map(|c| Cursor::after(c.id))
        } else {
            None
        };
        FeedPage { competitions, next }
    }
}
