//! Decoding photos into pixels, with limits, for adapters that need pixels (the offline
//! classifiers) or another format (Rekognition reads only JPEG and PNG). Behind the `decode`
//! feature so that the domain itself never links an image decoder.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, metadata::Orientation};

use crate::{Error, Result};

/// Images wider or taller than this are not decoded.
pub const MAX_SIDE: u32 = 16_384;
/// Images whose decoded pixels would take more than this are not decoded.
pub const MAX_DECODED_BYTES: u64 = 96 * 1024 * 1024;

/// Decodes a photo, turned upright as its EXIF orientation says. `None` when it cannot be
/// decoded (a variant of the format this decoder lacks, a damaged body, or over the limits
/// above, so that a small file claiming huge dimensions cannot exhaust memory).
pub fn decode(bytes: &[u8]) -> Option<DynamicImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().ok()?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return None;
    }
    let turn = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).ok()?;
    image.apply_orientation(turn);
    Some(image)
}

/// Re-encodes a photo as a JPEG (quality 90) whose longer side is at most `max_side`, for
/// services that cannot read its format (Rekognition and WebP). Transparent pixels become
/// black, as JPEG has no alpha.
///
/// ```
/// # let webp = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../thisthat-testkit/photos/pixel.webp")).unwrap();
/// let jpeg = thisthat_core::decode::to_jpeg(&webp, 2048)?;
/// assert_eq!(thisthat_core::media::sniff(&jpeg)?.media_type, thisthat_core::MediaType::Jpeg);
/// # Ok::<(), thisthat_core::Error>(())
/// ```
pub fn to_jpeg(bytes: &[u8], max_side: u32) -> Result<Vec<u8>> {
    let image = decode(bytes).ok_or_else(|| Error::UnsupportedMediaType {
        detected: "an image that could not be decoded (damaged, an unsupported variant, or too large)".into(),
    })?;
    let image = if image.width().max(image.height()) > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&image.to_rgb8())
        .map_err(|e| Error::backend("thisthat", e))?;
    Ok(jpeg)
}
