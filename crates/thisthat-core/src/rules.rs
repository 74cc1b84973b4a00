//! The configurable numbers of the domain, with the contract's defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The rules a service enforces. Every field has the domain contract's default; a team changes
/// what it needs.
///
/// ```
/// use thisthat_core::Rules;
/// let rules = Rules { votes_to_close: 10, ..Rules::default() };
/// assert_eq!(rules.photos_per_competition, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rules {
    /// Exactly this many photos per competition. Default `3`.
    pub photos_per_competition: usize,
    /// The vote that brings the total to this closes the competition. Default `24`.
    pub votes_to_close: u32,
    /// Largest accepted photo, in bytes. Default 10 MiB.
    pub max_photo_bytes: u64,
    /// Labels at or above this confidence become categories. Default `0.7`.
    pub category_confidence: f32,
    /// Moderation labels at or above this confidence reject the competition. Default `0.7`.
    pub unsafe_confidence: f32,
    /// Longest title, in characters. Default `140`.
    pub max_title_chars: usize,
    /// How long signed upload URLs stay valid. Default 15 minutes.
    pub upload_url_ttl: Duration,
    /// How long signed download URLs stay valid. Default 1 hour.
    pub download_url_ttl: Duration,
    /// How long a worker holds a claimed notification before another may retry it. Default 1
    /// minute.
    pub notification_lease: Duration,
    /// How old a blob no competition refers to must be before the maintenance pass removes it
    /// (a younger one may belong to a creation still under way). Default 1 hour.
    pub orphan_grace: Duration,
    /// Most pixels (width × height, from the header) a photo may have; more is
    /// [`Error::TooLarge`](crate::Error::TooLarge) before any decoding. Default 40 million (a
    /// 12-megapixel phone photo is 12 million; a decompression bomb declares billions).
    pub max_photo_pixels: u64,
    /// Most memory the decoder may allocate for one photo, in bytes. Default 192 MiB (the
    /// pixel budget as 8-bit RGBA, with room to spare). Peak decoding memory is at most this
    /// many bytes times the service's decode concurrency.
    pub max_decode_bytes: u64,
    /// Longest side, in pixels, of the display variant voters download. Default `1280`.
    pub display_max_side: u32,
    /// Whether the original of each photo is stored beside its display variant (only the owner
    /// can fetch it). With `false` only the variant is kept. Default `true`.
    pub keep_originals: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            photos_per_competition: 3,
            votes_to_close: 24,
            max_photo_bytes: 10 * 1024 * 1024,
            category_confidence: 0.7,
            unsafe_confidence: 0.7,
            max_title_chars: 140,
            upload_url_ttl: Duration::from_secs(15 * 60),
            download_url_ttl: Duration::from_secs(60 * 60),
            notification_lease: Duration::from_secs(60),
            orphan_grace: Duration::from_secs(60 * 60),
            max_photo_pixels: 40_000_000,
            max_decode_bytes: 192 * 1024 * 1024,
            display_max_side: 1280,
            keep_originals: true,
        }
    }
}

impl Rules {
    /// Checks that the rules make sense together.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error;
        if !(1..=16).contains(&self.photos_per_competition) {
            return Err(Error::config("photos_per_competition must be 1 to 16"));
        }
        if self.votes_to_close == 0 {
            return Err(Error::config("votes_to_close must be at least 1"));
        }
        if self.max_photo_bytes == 0 {
            return Err(Error::config("max_photo_bytes must be at least 1"));
        }
        if self.max_photo_pixels == 0 {
            return Err(Error::config("max_photo_pixels must be at least 1"));
        }
        if self.max_decode_bytes < 1024 * 1024 {
            return Err(Error::config("max_decode_bytes must be at least 1 MiB"));
        }
        if !(16..=8192).contains(&self.display_max_side) {
            return Err(Error::config("display_max_side must be 16 to 8192 pixels"));
        }
        const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
        for (name, d) in [
            ("upload_url_ttl", self.upload_url_ttl),
            ("download_url_ttl", self.download_url_ttl),
            ("notification_lease", self.notification_lease),
        ] {
            if d < Duration::from_secs(1) || d > WEEK {
                return Err(Error::config(format!("{name} must be from 1 second to 7 days")));
            }
        }
        if self.max_title_chars == 0 || self.max_title_chars > 10_000 {
            return Err(Error::config("max_title_chars must be 1 to 10000"));
        }
        for (name, v) in [
            ("category_confidence", self.category_confidence),
            ("unsafe_confidence", self.unsafe_confidence),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(format!("{name} must be within 0.0..=1.0")));
            }
        }
        Ok(())
    }
}
