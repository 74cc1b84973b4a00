//! Image format sniffing: the format of a photo comes from its bytes, never from a declared
//! content type or file name.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An image format thisthat accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A photo's real format, sniffed from its bytes.")
)]
#[non_exhaustive]
pub enum MediaType {
    /// JPEG (`image/jpeg`).
    Jpeg,
    /// PNG (`image/png`).
    Png,
    /// WebP (`image/webp`).
    Webp,
}

impl MediaType {
    /// Every accepted format.
    pub const ALL: [MediaType; 3] = [MediaType::Jpeg, MediaType::Png, MediaType::Webp];

    /// The MIME type, as sent in `Content-Type`.
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Webp => "image/webp",
        }
    }

    /// The file extension used in blob keys.
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
            MediaType::Webp => "webp",
        }
    }

    /// Parses a MIME type (parameters such as `; charset` are ignored).
    ///
    /// ```
    /// use thisthat_core::MediaType;
    /// assert_eq!(MediaType::from_mime("image/png")?, MediaType::Png);
    /// assert!(MediaType::from_mime("image/gif").is_err());
    /// # Ok::<(), thisthat_core::Error>(())
    /// ```
    pub fn from_mime(mime: &str) -> Result<Self> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        MediaType::ALL
            .into_iter()
            .find(|t| t.mime().eq_ignore_ascii_case(essence))
            .ok_or_else(|| Error::UnsupportedMediaType {
                detected: format!("declared {essence:?}"),
            })
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mime())
    }
}

/// What sniffing a photo's bytes found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The real format.
    pub media_type: MediaType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// How many leading bytes [`sniff`] may need. A JPEG with a large EXIF block puts its frame
/// header far in, so callers that read a prefix of a stored blob read this much.
pub const SNIFF_PREFIX: usize = 256 * 1024;

/// Detects an image's format and dimensions from its leading bytes without decoding it.
///
/// Accepts JPEG, PNG and WebP whose header yields non-zero dimensions; anything else (other
/// formats, truncated or forged headers) is [`Error::UnsupportedMediaType`].
///
/// ```
/// use thisthat_core::{media::sniff, MediaType};
/// // A 1x1 PNG header.
/// let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
/// assert_eq!(sniff(png)?.media_type, MediaType::Png);
/// assert!(sniff(b"GIF89a....").is_err());
/// # Ok::<(), thisthat_core::Error>(())
/// ```
pub fn sniff(bytes: &[u8]) -> Result<ImageInfo> {
    let unsupported = |detected: &str| Error::UnsupportedMediaType {
        detected: detected.to_string(),
    };
    let kind = imagesize::image_type(bytes).map_err(|_| unsupported("unknown bytes"))?;
    let media_type = match kind {
        imagesize::ImageType::Jpeg => MediaType::Jpeg,
        imagesize::ImageType::Png => MediaType::Png,
        imagesize::ImageType::Webp => MediaType::Webp,
        other => return Err(unsupported(&format!("{other:?}").to_lowercase())),
    };
    // A magic number alone is easy to forge; a header that also yields dimensions is not.
    let size = imagesize::blob_size(bytes)
        .map_err(|_| unsupported(&format!("{} with an unreadable header", media_type.mime())))?;
    let (width, height) = (u32::try_from(size.width), u32::try_from(size.height));
    match (width, height) {
        (Ok(width), Ok(height)) if width > 0 && height > 0 => Ok(ImageInfo {
            media_type,
            width,
            height,
        }),
        _ => Err(unsupported(&format!(
            "{} with impossible dimensions",
            media_type.mime()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_number_alone_is_not_enough() {
        assert!(sniff(b"\xFF\xD8\xFF\xE0 this is not really a jpeg").is_err());
        assert!(sniff(b"\x89PNG\r\n\x1a\n").is_err());
        assert!(sniff(b"").is_err());
        assert!(sniff(b"RIFF\0\0\0\0WEBP").is_err());
    }

    #[test]
    fn other_formats_are_unsupported() {
        let gif =
            b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;";
        assert!(matches!(sniff(gif), Err(Error::UnsupportedMediaType { .. })));
    }
}
