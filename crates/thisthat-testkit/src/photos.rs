//! Photos for tests: the real sample photos (`thisthat_memory::samples`, re-exported here) and
//! generated ones (hostile files, metadata, sizes).

use bytes::Bytes;
pub use thisthat_memory::samples::*;

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

/// A valid 16×16 PNG padded to exactly `size` bytes (with a private ancillary chunk, which
/// decoders skip, before its end): a whole, decodable image of any size, for size-limit tests
/// without real multi-megabyte photos. Asked for less than its natural size (about 200 bytes), it is that size.
/// Different sizes are different bytes, so a fake classifier can flag one of them.
pub fn png_of_size(size: usize) -> Bytes {
    let mut pixels = image::RgbImage::new(16, 16);
    for (x, y, p) in pixels.enumerate_pixels_mut() {
        *p = image::Rgb([(x * 16) as u8, (y * 16) as u8, 128]);
    }
    let mut png = encode_png(&pixels);
    let natural = png.len();
    if size >= natural + 12 {
        let iend = natural - 12;
        let padding = chunk(b"thIs", &vec![0; size - natural - 12]);
        png.splice(iend..iend, padding);
    }
    Bytes::from(png)
}

/// A PNG header that sniffs as 16×16 followed by zeros instead of image data, `size` bytes in
/// all: for classifiers handed an image they cannot decode. The service itself refuses it.
pub fn undecodable_png(size: usize) -> Bytes {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\x90\x91h6".to_vec();
    bytes.resize(size.max(bytes.len()), 0);
    Bytes::from(bytes)
}

fn encode_png(pixels: &image::RgbImage) -> Vec<u8> {
    let mut png = Vec::new();
    pixels
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    png
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and `IHDR` chunk declaring `width` × `height` 8-bit RGB.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png
}

/// A complete, valid PNG of `width` × `height` 16-bit RGBA pixels, all zero (transparent
/// black), whose zlib stream is written by hand: one fixed-Huffman deflate block of
/// 258-byte back-references, 13 bits for every 258 zero bytes. A decompression bomb: 27
/// megapixels (within the pixel budget) in about 1.3 MB that inflate to over 200 MB.
pub fn zero_png_rgba16(width: u32, height: u32) -> Bytes {
    let raw = u64::from(height) * (1 + u64::from(width) * 8);
    let mut bits = BitWriter::default();
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    // Fixed codes are sent most significant bit first.
    let code = |bits: &mut BitWriter, value: u32, len: u32| {
        for i in (0..len).rev() {
            bits.put((value >> i) & 1, 1);
        }
    };
    let literal_zero = |bits: &mut BitWriter| code(bits, 0x30, 8);
    literal_zero(&mut bits);
    let mut left = raw - 1;
    while left >= 258 {
        code(&mut bits, 0xC5, 8); // length 258 (symbol 285)
        code(&mut bits, 0, 5); // distance 1
        left -= 258;
    }
    for _ in 0..left {
        literal_zero(&mut bits);
    }
    code(&mut bits, 0, 7); // end of block
    let mut zlib = vec![0x78, 0x01];
    zlib.extend(bits.finish());
    // Adler-32 of `raw` zeros: a stays 1, b adds 1 per byte.
    let adler = ((raw % 65_521) << 16) | 1;
    zlib.extend_from_slice(&(adler as u32).to_be_bytes());
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &zlib));
    png.extend(chunk(b"IEND", &[]));
    Bytes::from(png)
}

/// Bits packed least significant first, as deflate wants them.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    current: u32,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        for i in 0..count {
            self.current |= ((value >> i) & 1) << self.used;
            self.used += 1;
            if self.used == 8 {
                self.bytes.push(self.current as u8);
                self.current = 0;
                self.used = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.used > 0 {
            self.bytes.push(self.current as u8);
        }
        self.bytes
    }
}

/// How thisthat must refuse a [`Hostile`] photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`thisthat_core::Error::UnsupportedMediaType`]: not one whole image.
    UnsupportedMediaType,
    /// [`thisthat_core::Error::TooLarge`]: more pixels or decoding memory than allowed.
    TooLarge,
}

/// A photo a hostile client might send, and how it must be refused.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// What it is, for assertion messages.
    pub name: &'static str,
    /// Its bytes.
    pub bytes: Bytes,
    /// The error it must be refused with (under the default rules).
    pub refusal: Refusal,
}

/// Photos that are not usable images, generated in code: each has a header that sniffs as
/// an accepted format, so only decoding the whole image under limits refuses it. Among them
/// the three of issue 13 (a PNG cut after 100 bytes, a PNG header followed by HTML and a
/// script, a 74-byte PNG declaring 60,000 × 60,000 pixels).
///
/// ```
/// let hostile = thisthat_testkit::photos::hostile();
/// assert!(hostile.iter().all(|h| thisthat_core::media::sniff(&h.bytes).is_ok() || h.name.contains("zero")));
/// ```
pub fn hostile() -> Vec<Hostile> {
    use Refusal::{TooLarge, UnsupportedMediaType as Unsupported};
    let cat = cat_png();
    let rocket = rocket_jpeg();
    let h = |name, bytes: Vec<u8>, refusal| Hostile {
        name,
        bytes: Bytes::from(bytes),
        refusal,
    };
    let appended = |image: &[u8], tail: &[u8]| [image, tail].concat();
    let script = b"<html><body><script>alert(document.cookie)</script></body></html>".as_slice();

    // Image data that fails its chunk's CRC (and its zlib stream) halfway through.
    let mut damaged_png = cat.to_vec();
    let middle = damaged_png.len() / 2;
    for b in &mut damaged_png[middle..middle + 64] {
        *b ^= 0x5A;
    }
    // A frame header whose component count is zero: no decoder can make pixels of it.
    let mut damaged_jpeg = rocket.to_vec();
    if let Some(sof) = damaged_jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
    {
        damaged_jpeg[sof + 9] = 0;
    }
    // The issue's bomb: a whole, well-formed 74-byte PNG whose header declares 60,000².
    let mut bomb = png_header(60_000, 60_000);
    bomb.extend(chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x60, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    ));
    bomb.extend(chunk(b"IEND", &[]));
    // A JPEG whose frame header claims 65,000 × 65,000 (4.2 gigapixels).
    let mut huge_jpeg = rocket.to_vec();
    if let Some(sof) = huge_jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
    {
        huge_jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    }
    // A real 16×16 PNG whose header was rewritten (CRC and all) to say 32×32.
    let mut lying = png_of_size(0).to_vec();
    let ihdr = chunk(b"IHDR", &[0, 0, 0, 32, 0, 0, 0, 32, 8, 2, 0, 0, 0]);
    lying.splice(8..33, ihdr);
    let mut wide = png_header(1_000_000, 1);
    wide.extend(chunk(b"IEND", &[]));
    let mut zero = png_header(0, 16);
    zero.extend(chunk(b"IEND", &[]));

    vec![
        h("a PNG cut after 100 bytes", cat[..100].to_vec(), Unsupported),
        h(
            "a PNG cut in its image data",
            cat[..cat.len() / 2].to_vec(),
            Unsupported,
        ),
        h(
            "a PNG without its last byte",
            cat[..cat.len() - 1].to_vec(),
            Unsupported,
        ),
        h(
            "a JPEG cut before its end",
            rocket[..rocket.len() * 2 / 3].to_vec(),
            Unsupported,
        ),
        h("a PNG with damaged image data", damaged_png, Unsupported),
        h("a JPEG with a damaged frame header", damaged_jpeg, Unsupported),
        h("a PNG with HTML after its end", appended(&cat, script), Unsupported),
        h(
            "a JPEG with a ZIP archive after its end",
            appended(&rocket, b"PK\x03\x04\x14\0\0\0\x08\0payload"),
            Unsupported,
        ),
        h(
            "a WebP with bytes after its RIFF size",
            appended(&pixel_webp(), b"\0\0\0\0extra"),
            Unsupported,
        ),
        h(
            "a PNG header followed by HTML and a script",
            appended(&png_header(16, 16), script),
            Unsupported,
        ),
        h("a 74-byte PNG declaring 60,000 x 60,000 pixels", bomb, TooLarge),
        h("a JPEG declaring 65,000 x 65,000 pixels", huge_jpeg, TooLarge),
        h("a PNG 1,000,000 pixels wide", wide, TooLarge),
        h("a PNG whose header says 32x32 for 16x16 pixels", lying, Unsupported),
        h(
            "a 1.3 MB PNG inflating to 216 MB (5200 x 5200 16-bit RGBA, within the pixel budget)",
            zero_png_rgba16(5200, 5200).to_vec(),
            TooLarge,
        ),
        h("a PNG of zero width", zero, Unsupported),
    ]
}

/// An EXIF block (little-endian TIFF) with orientation 6 (turn 90° clockwise to show) and a
/// GPS position: 51°30'0" N, 0°7'0" E.
fn exif_with_gps() -> Vec<u8> {
    let mut t = b"II\x2a\0\x08\0\0\0".to_vec();
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    };
    // IFD0 at 8: orientation, and the GPS IFD's offset (38).
    t.extend_from_slice(&2u16.to_le_bytes());
    entry(&mut t, 0x0112, 3, 1, [6, 0, 0, 0]);
    entry(&mut t, 0x8825, 4, 1, 38u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    // The GPS IFD at 38: N, latitude at 92, E, longitude at 116.
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, 92u32.to_le_bytes());
    entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, 5, 3, 116u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    for (n, d) in [(51u32, 1u32), (30, 1), (0, 1), (0, 1), (7, 1), (0, 1)] {
        t.extend_from_slice(&n.to_le_bytes());
        t.extend_from_slice(&d.to_le_bytes());
    }
    [b"Exif\0\0".as_slice(), &t].concat()
}

/// An XMP packet that repeats the GPS position, as phones write it.
const XMP: &[u8] = b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:exif='http://ns.adobe.com/exif/1.0/' exif:GPSLatitude='51,30.0N' exif:GPSLongitude='0,7.0E'/></rdf:RDF></x:xmpmeta>";

/// A JPEG `width` × `height` (as stored; shown turned 90° clockwise, so `height` × `width`)
/// carrying an EXIF block with a GPS position and an XMP packet repeating it: what a phone
/// uploads. Its pixels are smooth gradients with fine detail, so it compresses about as a
/// photo does. [`metadata_markers`] finds the metadata in it.
pub fn jpeg_with_gps(width: u32, height: u32) -> Bytes {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        let ripple = ((x ^ y) & 15) as u8;
        image::Rgb([
            ((x * 255 / width.max(1)) as u8).wrapping_add(ripple),
            ((y * 255 / height.max(1)) as u8).wrapping_sub(ripple),
            (((x + y) / 7) as u8).wrapping_add(ripple * 3),
        ])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 92)
        .encode_image(&pixels)
        .expect("encoding a JPEG in memory cannot fail");
    let segment = |payload: &[u8]| {
        let mut s = vec![0xFF, 0xE1];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    };
    // Right after SOI, where cameras put them.
    let mut metadata = segment(&exif_with_gps());
    metadata.extend(segment(XMP));
    jpeg.splice(2..2, metadata);
    Bytes::from(jpeg)
}

/// A phone-sized photo: 4032 × 3024 with GPS EXIF and XMP ([`jpeg_with_gps`]).
pub fn phone_jpeg() -> Bytes {
    jpeg_with_gps(4032, 3024)
}

/// A 256 × 256 PNG of three shaded skin-coloured ellipses on a dark background: no person,
/// nothing explicit, but a picture Yahoo's open_nsfw scores as "not safe" (0.99), since large
/// smooth skin-toned areas are what it over-scores. The positive case for a classifier that
/// screens offline; `tools/open_nsfw/reference.py` draws the same pixels.
pub fn skin_blobs_png() -> Bytes {
    const BACKGROUND: [f32; 3] = [42.0, 45.0, 22.0];
    const SKIN: [f32; 3] = [179.0, 129.0, 85.0];
    // Centre x, centre y, radius x, radius y; later ellipses are drawn on top.
    const BLOBS: [[f32; 4]; 3] = [
        [179.0, 107.0, 90.0, 99.0],
        [124.0, 107.0, 63.0, 64.0],
        [50.0, 165.0, 28.0, 108.0],
    ];
    let pixels = image::RgbImage::from_fn(256, 256, |x, y| {
        let (x, y) = (x as f32, y as f32);
        let mut colour = BACKGROUND;
        for [cx, cy, rx, ry] in BLOBS {
            let d = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2);
            if d < 1.0 {
                // Bright at the centre, half as bright at the rim: a rounded surface.
                let shade = (1.15 - 0.5 * d).clamp(0.0, 1.0);
                colour = SKIN.map(|c| c * (0.5 + 0.5 * shade));
            }
        }
        image::Rgb(colour.map(|c| c as u8))
    });
    Bytes::from(encode_png(&pixels))
}

/// The metadata found in an image's bytes, by name: EXIF, XMP, an ICC profile, an APP1–APP15
/// segment (JPEG), text or EXIF chunks (PNG), and the GPS position [`jpeg_with_gps`] writes.
/// Empty when there is none.
pub fn metadata_markers(bytes: &[u8]) -> Vec<&'static str> {
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let mut found = Vec::new();
    for (name, needle) in [
        ("EXIF", b"Exif\0\0".as_slice()),
        ("XMP", b"http://ns.adobe.com/xap".as_slice()),
        ("ICC profile", b"ICC_PROFILE".as_slice()),
        ("PNG eXIf chunk", b"eXIf".as_slice()),
        ("PNG text chunk", b"tEXt".as_slice()),
        ("PNG iTXt chunk", b"iTXt".as_slice()),
        ("GPS (XMP)", b"GPSLatitude".as_slice()),
        ("GPS (EXIF latitude 51/1)", &[51, 0, 0, 0, 1, 0, 0, 0]),
    ] {
        if contains(needle) {
            found.push(name);
        }
    }
    // In JPEG entropy data 0xFF is always followed by 0x00 or a restart marker, so any
    // 0xFF 0xE1..0xEF is an application segment.
    if bytes.starts_with(&[0xFF, 0xD8]) && bytes.windows(2).any(|w| w[0] == 0xFF && (0xE1..=0xEF).contains(&w[1])) {
        found.push("JPEG APP1-APP15 segment");
    }
    found
}

#[cfg(test)]
mod tests {
    use thisthat_core::{
        Error,
        decode::{DecodeLimits, check_and_render},
    };

    #[test]
    fn every_hostile_photo_is_refused_as_it_says() {
        for h in super::hostile() {
            let r = check_and_render(0, &h.bytes, &DecodeLimits::default(), 1280);
            let ok = match h.refusal {
                super::Refusal::UnsupportedMediaType => matches!(r, Err(Error::UnsupportedMediaType { .. })),
                super::Refusal::TooLarge => matches!(r, Err(Error::TooLarge { .. })),
            };
            assert!(ok, "{}: {r:?}", h.name);
        }
    }

    #[test]
    fn the_hand_written_zlib_stream_decodes() {
        // The bomb's generator at a size that may be decoded: a whole, valid PNG.
        let small = super::zero_png_rgba16(300, 200);
        let checked = check_and_render(0, &small, &DecodeLimits::default(), 1280).expect("valid");
        assert_eq!((checked.display.width, checked.display.height), (300, 200));
        let bomb = super::zero_png_rgba16(5200, 5200);
        assert!(bomb.len() < 1_500_000, "{}", bomb.len());
    }

    #[test]
    fn the_gps_photo_has_metadata_and_its_variant_none() {
        let photo = super::jpeg_with_gps(64, 48);
        assert_eq!(
            super::metadata_markers(&photo),
            [
                "EXIF",
                "XMP",
                "GPS (XMP)",
                "GPS (EXIF latitude 51/1)",
                "JPEG APP1-APP15 segment"
            ]
        );
        let checked = check_and_render(0, &photo, &DecodeLimits::default(), 1280).expect("accepted");
        // Orientation 6: shown turned, 48 wide and 64 high.
        assert_eq!((checked.display.width, checked.display.height), (48, 64));
        assert_eq!(super::metadata_markers(&checked.display.bytes), Vec::<&str>::new());
    }

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
        assert_eq!(sniff(&super::undecodable_png(4096)).map(|i| i.width).ok(), Some(16));
        let natural = super::png_of_size(0).len();
        for size in [0, 100, 999, 5000, 4321] {
            let png = super::png_of_size(size);
            assert_eq!(png.len(), if size < natural + 12 { natural } else { size });
            assert!(thisthat_core::decode::check_and_render(0, &png, &Default::default(), 1280).is_ok());
        }
        assert!(sniff(&super::not_an_image()).is_err());
    }
}
