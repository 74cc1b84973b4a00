//! Real photos for tests, shipped with the crate (see `photos/LICENSES.md`).

use bytes::Bytes;

/// A cat (Chelsea), PNG, 451×300. CC0.
pub fn cat_png() -> Bytes {
    Bytes::from_static(include_bytes!("../photos/chelsea.png"))
}

/// A cup of coffee, PNG, 600×400. CC0.
pub fn coffee_png() -> Bytes {
    Bytes::from_static(include_bytes!("../photos/coffee.png"))
}

/// A Falcon 9 rocket, JPEG, 640×427. Public domain.
pub fn rocket_jpeg() -> Bytes {
    Bytes::from_static(include_bytes!("../photos/rocket.jpg"))
}

/// A 1×1 lossless WebP.
pub fn pixel_webp() -> Bytes {
    Bytes::from_static(include_bytes!("../photos/pixel.webp"))
}

/// Three different photos, one per accepted format: a ready-made valid competition.
pub fn three() -> Vec<Bytes> {
    vec![cat_png(), rocket_jpeg(), pixel_webp()]
}

/// Bytes that are no image at all.
pub fn not_an_image() -> Bytes {
    Bytes::from_static(b"%PDF-1.7\nthis is a document, not a photo\n")
}

/// A GIF: a real image, in a format thisthat does not accept.
pub fn gif() -> Bytes {
    Bytes::from_static(
        b"GIF89a\x01\0\x01\0\x80\0\0\0\0\0\xff\xff\xff!\xf9\x04\x01\0\0\0\0,\0\0\0\0\x01\0\x01\0\0\x02\x02D\x01\0;",
    )
}

/// A valid PNG header followed by padding up to `size` bytes: sniffs as a PNG of that size,
/// for size-limit tests without real multi-megabyte photos.
pub fn png_of_size(size: usize) -> Bytes {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\x90\x91h6".to_vec();
    bytes.resize(size.max(bytes.len()), 0);
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use thisthat_core::{MediaType, media::sniff};

    #[test]
    fn samples_sniff_as_their_formats() {
        assert_eq!(
            sniff(&super::cat_png()).map(|i| (i.media_type, i.width, i.height)).ok(),
            Some((MediaType::Png, 451, 300))
        );
        assert_eq!(
            sniff(&super::rocket_jpeg()).map(|i| i.media_type).ok(),
            Some(MediaType::Jpeg)
        );
        assert_eq!(
            sniff(&super::pixel_webp()).map(|i| (i.media_type, i.width)).ok(),
            Some((MediaType::Webp, 1))
        );
        assert_eq!(
            sniff(&super::png_of_size(5000)).map(|i| i.media_type).ok(),
            Some(MediaType::Png)
        );
        assert!(sniff(&super::gif()).is_err());
        assert!(sniff(&super::not_an_image()).is_err());
    }
}
