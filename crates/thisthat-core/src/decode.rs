//! Decoding photos into pixels, under limits: the check every photo passes at creation
//! ([`check_and_render`]: the whole image decoded, its structure complete, nothing after its
//! end, within a pixel budget and a memory cap) and the display variant voters are served
//! (upright, at most [`Rules::display_max_side`](crate::Rules::display_max_side), re-encoded as
//! a JPEG without any metadata). Also [`decode`] and [`to_jpeg`] for adapters that need pixels
//! (the offline classifiers) or another format (Rekognition reads only JPEG and PNG).
//!
//! Always compiled: the guarantee that every stored photo is a whole, decodable image has to
//! hold on every backend, so it cannot depend on which adapters a build links. (The `decode`
//! cargo feature is kept, empty, so that crates which name it still build.)

use std::io::Cursor;

use bytes::Bytes;
use image::{
    DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage, error::LimitErrorKind, metadata::Orientation,
};

use crate::{
    Error, MediaType, Result, Rules,
    media::{self, ImageInfo},
};

/// Images wider or taller than this are not decoded.
pub const MAX_SIDE: u32 = 16_384;
/// Images whose decoded pixels would take more than this are not decoded by [`decode`].
pub const MAX_DECODED_BYTES: u64 = 96 * 1024 * 1024;
/// The quality display variants are encoded at: the usual web default; q90 costs about half
/// as many bytes again (measured in `docs/photos.md`).
pub const DISPLAY_JPEG_QUALITY: u8 = 80;

/// The format of every display variant. JPEG, not WebP: the `image` crate's WebP encoder is
/// lossless only, which makes photos several times larger (measured in `docs/photos.md`), and
/// every classifier reads JPEG (Rekognition reads no WebP).
pub const DISPLAY_MEDIA_TYPE: MediaType = MediaType::Jpeg;

/// The limits a photo is decoded under, from [`Rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width × height, from the header) a photo may have.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate for one photo.
    pub max_alloc: u64,
}

impl DecodeLimits {
    /// The limits the rules set ([`Rules::max_photo_pixels`], [`Rules::max_decode_bytes`]).
    pub fn from_rules(rules: &Rules) -> Self {
        DecodeLimits {
            max_pixels: rules.max_photo_pixels,
            max_alloc: rules.max_decode_bytes,
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::from_rules(&Rules::default())
    }
}

/// The display variant of a photo: what voters download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The encoded variant (a baseline JPEG with no EXIF, XMP or ICC segment).
    pub bytes: Bytes,
    /// Its format.
    pub media_type: MediaType,
    /// Width in pixels, upright.
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
}

/// What [`check_and_render`] found and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedPhoto {
    /// The original's format and header dimensions (which the decoder agreed with).
    pub info: ImageInfo,
    /// The display variant.
    pub display: Rendered,
}

fn unsupported(detected: String) -> Error {
    Error::UnsupportedMediaType { detected }
}

/// Where the image's own structure says it ends: after PNG's `IEND` chunk, JPEG's `EOI`
/// marker, or WebP's RIFF size. `None` when the structure is cut short or broken before that.
///
/// ```
/// use thisthat_core::{MediaType, decode::image_end};
/// let png = b"\x89PNG\r\n\x1a\n\0\0\0\0IEND\xaeB`\x82";
/// assert_eq!(image_end(png, MediaType::Png), Some(png.len()));
/// assert_eq!(image_end(&png[..15], MediaType::Png), None);
/// ```
pub fn image_end(bytes: &[u8], media_type: MediaType) -> Option<usize> {
    match media_type {
        MediaType::Png => png_end(bytes),
        MediaType::Jpeg => jpeg_end(bytes),
        MediaType::Webp => webp_end(bytes),
    }
}

fn be32(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(b)).ok()
}

fn png_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 8;
    loop {
        let len = be32(bytes, at)?;
        let kind = bytes.get(at + 4..at + 8)?;
        // length, type, data, CRC
        let end = at.checked_add(12)?.checked_add(len)?;
        if end > bytes.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(end);
        }
        at = end;
    }
}

fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        // Any number of 0xFF fill bytes may precede a marker.
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = bytes[at];
        at += 1;
        match marker {
            0xD9 => return Some(at),
            0x01 | 0xD0..=0xD7 => continue,
            0x00 => return None,
            _ => {
                let len = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
                if len < 2 || at + len > bytes.len() {
                    return None;
                }
                at += len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker that is neither a stuffed
                    // 0xFF00 nor a restart marker.
                    loop {
                        if *bytes.get(at)? == 0xFF {
                            match *bytes.get(at + 1)? {
                                0x00 | 0xD0..=0xD7 => at += 2,
                                _ => break,
                            }
                        } else {
                            at += 1;
                        }
                    }
                }
            }
        }
    }
}

fn webp_end(bytes: &[u8]) -> Option<usize> {
    if bytes.get(..4)? != b"RIFF" {
        return None;
    }
    let size: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    let end = usize::try_from(u32::from_le_bytes(size)).ok()?.checked_add(8)?;
    (end <= bytes.len()).then_some(end)
}

fn decode_error(index: usize, info: &ImageInfo, limits: &DecodeLimits, e: ImageError) -> Error {
    match e {
        ImageError::Limits(l) if matches!(l.kind(), LimitErrorKind::InsufficientMemory) => Error::TooLarge {
            what: format!("photo {index} decoded ({}x{} pixels)", info.width, info.height),
            size: limits.max_alloc.saturating_add(1),
            limit: limits.max_alloc,
        },
        other => unsupported(format!(
            "photo {index}: a {} that does not decode ({other})",
            info.media_type
        )),
    }
}

/// Checks that `bytes` are one whole image within `limits`, and renders its display variant
/// with a longest side of at most `display_max_side`.
///
/// In order: the header is sniffed ([`media::sniff`]); the header's pixel count must be within
/// [`DecodeLimits::max_pixels`] and each side within [`MAX_SIDE`] ([`Error::TooLarge`]); the
/// structure must run to its end marker with no byte after it (so a cut-off upload, or an image
/// with a script or archive appended, is refused); the whole image is decoded with the decoder
/// allocating at most [`DecodeLimits::max_alloc`] ([`Error::TooLarge`] past it); the decoded
/// size must agree with the header. The variant is turned upright as the EXIF orientation
/// says, shrunk, composited over white if transparent, and encoded as a JPEG with no
/// metadata at all: nothing of the original's EXIF (GPS position, camera), XMP or ICC data
/// reaches it. Anything else wrong is [`Error::UnsupportedMediaType`]. `index` names the
/// photo in errors.
///
/// CPU-bound (tens to hundreds of milliseconds for a phone photo): call it off the async
/// worker threads, as the service does.
///
/// ```
/// # let cat = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../thisthat-memory/photos/chelsea.png")).unwrap();
/// use thisthat_core::decode::{check_and_render, DecodeLimits};
/// let checked = check_and_render(0, &cat, &DecodeLimits::default(), 200)?;
/// assert_eq!((checked.info.width, checked.info.height), (451, 300));
/// assert_eq!((checked.display.width, checked.display.height), (200, 133));
/// assert!(check_and_render(0, &cat[..cat.len() - 1], &DecodeLimits::default(), 200).is_err());
/// # Ok::<(), thisthat_core::Error>(())
/// ```
pub fn check_and_render(
    index: usize,
    bytes: &[u8],
    limits: &DecodeLimits,
    display_max_side: u32,
) -> Result<CheckedPhoto> {
    let info = media::sniff(bytes).map_err(|e| match e {
        Error::UnsupportedMediaType { detected } => unsupported(format!("photo {index}: {detected}")),
        other => other,
    })?;
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_pixels || info.width.max(info.height) > MAX_SIDE {
        // The error speaks in bytes: the pixels as decoded to RGB, against the budget's.
        return Err(Error::TooLarge {
            what: format!(
                "photo {index} decoded ({}x{} pixels at 3 bytes each; at most {} pixels and {MAX_SIDE} a side)",
                info.width, info.height, limits.max_pixels
            ),
            size: pixels.saturating_mul(3),
            limit: limits.max_pixels.saturating_mul(3),
        });
    }
    match image_end(bytes, info.media_type) {
        None => {
            return Err(unsupported(format!(
                "photo {index}: a {} cut short or damaged before its end",
                info.media_type
            )));
        }
        Some(end) if end != bytes.len() => {
            return Err(unsupported(format!(
                "photo {index}: a {} followed by {} more bytes after its end",
                info.media_type,
                bytes.len() - end
            )));
        }
        Some(_) => {}
    }
    let format = match info.media_type {
        MediaType::Jpeg => image::ImageFormat::Jpeg,
        MediaType::Png => image::ImageFormat::Png,
        MediaType::Webp => image::ImageFormat::WebP,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = Limits::default();
    image_limits.max_image_width = Some(MAX_SIDE);
    image_limits.max_image_height = Some(MAX_SIDE);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let fail = |e| decode_error(index, &info, limits, e);
    let mut decoder = reader.into_decoder().map_err(fail)?;
    if decoder.dimensions() != (info.width, info.height) {
        let (w, h) = decoder.dimensions();
        return Err(unsupported(format!(
            "photo {index}: a {} whose header says {}x{} but whose image is {w}x{h}",
            info.media_type, info.width, info.height
        )));
    }
    if decoder.total_bytes() > limits.max_alloc {
        return Err(Error::TooLarge {
            what: format!("photo {index} decoded ({}x{} pixels)", info.width, info.height),
            size: decoder.total_bytes(),
            limit: limits.max_alloc,
        });
    }
    let turn = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(fail)?;
    if (image.width(), image.height()) != (info.width, info.height) {
        return Err(unsupported(format!(
            "photo {index}: a {} that decoded to other dimensions than its header's",
            info.media_type
        )));
    }
    let display = render(image, turn, display_max_side)?;
    Ok(CheckedPhoto { info, display })
}

/// Shrinks, turns upright, flattens and encodes the display variant.
fn render(image: DynamicImage, turn: Orientation, max_side: u32) -> Result<Rendered> {
    let mut image = if image.width().max(image.height()) > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image
    };
    image.apply_orientation(turn);
    let rgb = flatten_on_white(image);
    let mut jpeg = Vec::new();
    // Only the JFIF header is written: this encoder adds EXIF or ICC segments only when asked.
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, DISPLAY_JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| Error::backend("thisthat", e))?;
    Ok(Rendered {
        bytes: Bytes::from(jpeg),
        media_type: DISPLAY_MEDIA_TYPE,
        width: rgb.width(),
        height: rgb.height(),
    })
}

/// JPEG has no alpha: transparent pixels are shown over white, as a browser shows a
/// transparent PNG on a white page (dropping the channel would show whatever colour the
/// transparent pixels happen to hold, often black).
fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (out, px) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(px[3]);
        for c in 0..3 {
            let v = (u16::from(px[c]) * a + 255 * (255 - a) + 127) / 255;
            out[c] = u8::try_from(v).unwrap_or(u8::MAX);
        }
    }
    rgb
}

/// A photo at most this large, and no larger than the display variant in pixels, is sent to
/// the classifier as uploaded: re-encoding it would save little and could only blur what the
/// classifier sees. Anything larger is classified on its display variant, so a cloud
/// classifier receives a few hundred KB instead of a multi-megabyte original.
pub const CLASSIFY_ORIGINAL_MAX_BYTES: usize = 512 * 1024;

/// Whether the classifier is handed the original (see [`CLASSIFY_ORIGINAL_MAX_BYTES`]) rather
/// than the display variant.
///
/// ```
/// use thisthat_core::{MediaType, decode::classifies_original, media::ImageInfo};
/// let phone = ImageInfo { media_type: MediaType::Jpeg, width: 4032, height: 3024 };
/// assert!(!classifies_original(&phone, 3_000_000, 1280));
/// let small = ImageInfo { media_type: MediaType::Png, width: 451, height: 300 };
/// assert!(classifies_original(&small, 240_000, 1280));
/// ```
pub fn classifies_original(info: &ImageInfo, original_bytes: usize, display_max_side: u32) -> bool {
    info.width.max(info.height) <= display_max_side && original_bytes <= CLASSIFY_ORIGINAL_MAX_BYTES
}

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
/// # let webp = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../thisthat-memory/photos/pixel.webp")).unwrap();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../thisthat-memory/photos/chelsea.png"
        ))
        .unwrap_or_default()
    }

    fn rocket() -> Vec<u8> {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../thisthat-memory/photos/rocket.jpg"
        ))
        .unwrap_or_default()
    }

    #[test]
    fn ends_are_found_exactly() {
        let cat = cat();
        let rocket = rocket();
        assert_eq!(image_end(&cat, MediaType::Png), Some(cat.len()));
        assert_eq!(image_end(&rocket, MediaType::Jpeg), Some(rocket.len()));
        for cut in [9, 100, cat.len() / 2, cat.len() - 1] {
            assert_eq!(image_end(&cat[..cut], MediaType::Png), None, "cut at {cut}");
        }
        for cut in [3, 100, rocket.len() / 2, rocket.len() - 1] {
            assert_eq!(image_end(&rocket[..cut], MediaType::Jpeg), None, "cut at {cut}");
        }
    }

    #[test]
    fn the_memory_cap_refuses_before_decoding() {
        let limits = DecodeLimits {
            max_pixels: 40_000_000,
            max_alloc: 100_000,
        };
        let r = check_and_render(2, &cat(), &limits, 1280);
        assert!(
            matches!(&r, Err(Error::TooLarge { what, limit: 100_000, .. }) if what.starts_with("photo 2 decoded")),
            "{r:?}"
        );
    }

    #[test]
    fn the_variant_has_only_the_jfif_header() {
        let checked = check_and_render(0, &rocket(), &DecodeLimits::default(), 320);
        let Ok(checked) = checked else { panic!("{checked:?}") };
        assert_eq!(checked.display.width.max(checked.display.height), 320);
        let bytes = &checked.display.bytes;
        // SOI, then APP0 "JFIF", then no APP1..APP15 segment anywhere before the scan.
        assert_eq!(&bytes[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(&bytes[6..10], b"JFIF");
        assert!(!bytes.windows(2).any(|w| w[0] == 0xFF && (0xE1..=0xEF).contains(&w[1])));
    }

    #[test]
    fn transparent_pixels_are_shown_on_white() {
        let mut rgba = image::RgbaImage::new(4, 4);
        rgba.put_pixel(0, 0, image::Rgba([255, 0, 0, 255]));
        let rgb = flatten_on_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(rgb.get_pixel(3, 3).0, [255, 255, 255]);
    }
}
