//! The classifier port offline, with only what the pixels themselves say.
//!
//! The offline classifier that names what a photo shows is `ModelClassifier` (EfficientNet-Lite0
//! through `tract`), behind the `model` cargo feature so that nobody who does not want the
//! model pays for it. Whenever that feature is off, this is the honest fallback: it labels a
//! photo with what can be derived from its pixels, its shape and its dominant colours, and
//! never invents object names it cannot see. It does not screen content.

use async_trait::async_trait;
use bytes::Bytes;
use image::DynamicImage;
use thisthat_core::{
    Classification, Error, Label, Result,
    media::sniff,
    ports::{Classifier, PhotoInput},
};

/// The side of the thumbnail the colours are counted on.
const THUMBNAIL: u32 = 32;
/// Decodes at once, process-wide: each may hold [`thisthat_core::decode::MAX_DECODED_BYTES`] (and a rotated copy),
/// so the number in flight, not the number of requests, bounds the memory decoding takes.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// A second colour is reported only when at least this share of the pixels has it.
const SECOND_COLOUR_SHARE: f32 = 0.15;
/// Pixels more transparent than this (alpha out of 255) are not counted.
const MIN_ALPHA: u8 = 128;

/// A named colour of the palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Colour {
    Red,
    Orange,
    Yellow,
    Green,
    Blue,
    Purple,
    Pink,
    Brown,
    Black,
    White,
    Grey,
}

impl Colour {
    const ALL: [Colour; 11] = [
        Colour::Red,
        Colour::Orange,
        Colour::Yellow,
        Colour::Green,
        Colour::Blue,
        Colour::Purple,
        Colour::Pink,
        Colour::Brown,
        Colour::Black,
        Colour::White,
        Colour::Grey,
    ];

    fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Orange => "orange",
            Colour::Yellow => "yellow",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Purple => "purple",
            Colour::Pink => "pink",
            Colour::Brown => "brown",
            Colour::Black => "black",
            Colour::White => "white",
            Colour::Grey => "grey",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The named colour an sRGB pixel is closest to, by hue, saturation and value.
    fn of(r: u8, g: u8, b: u8) -> Colour {
        let (r, g, b) = (f32::from(r) / 255.0, f32::from(g) / 255.0, f32::from(b) / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let (value, chroma) = (max, max - min);
        let saturation = if max > 0.0 { chroma / max } else { 0.0 };
        if value < 0.2 {
            return Colour::Black;
        }
        if saturation < 0.18 || chroma < 0.08 {
            return match value {
                v if v >= 0.85 => Colour::White,
                v if v < 0.25 => Colour::Black,
                _ => Colour::Grey,
            };
        }
        let hue = if chroma == 0.0 {
            0.0
        } else if max == r {
            60.0 * ((g - b) / chroma).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / chroma + 2.0)
        } else {
            60.0 * ((r - g) / chroma + 4.0)
        };
        match hue {
            // Dark oranges and dark reds-into-oranges are what people call brown.
            h if (12.0..45.0).contains(&h) && value < 0.6 => Colour::Brown,
            h if !(12.0..345.0).contains(&h) => {
                if saturation < 0.45 && value > 0.7 {
                    Colour::Pink
                } else {
                    Colour::Red
                }
            }
            h if h < 40.0 => Colour::Orange,
            h if h < 70.0 => Colour::Yellow,
            h if h < 165.0 => Colour::Green,
            h if h < 255.0 => Colour::Blue,
            h if h < 290.0 => Colour::Purple,
            _ => Colour::Pink,
        }
    }
}

/// `landscape`, `portrait` or `square`.
fn orientation(width: u32, height: u32) -> &'static str {
    match width.cmp(&height) {
        std::cmp::Ordering::Greater => "landscape",
        std::cmp::Ordering::Less => "portrait",
        std::cmp::Ordering::Equal => "square",
    }
}

pub(crate) use thisthat_core::decode::decode;

/// The share of the (opaque) pixels in each named colour, largest first, without empty ones.
fn colour_shares(image: &DynamicImage) -> Vec<(Colour, f32)> {
    let thumbnail = image.thumbnail(THUMBNAIL, THUMBNAIL).to_rgba8();
    let mut counts = [0u32; Colour::ALL.len()];
    let mut total = 0u32;
    for pixel in thumbnail.pixels() {
        let [r, g, b, a] = pixel.0;
        if a < MIN_ALPHA {
            continue;
        }
        counts[Colour::of(r, g, b).index()] += 1;
        total += 1;
    }
    if total == 0 {
        return Vec::new();
    }
    let mut shares: Vec<(Colour, f32)> = Colour::ALL
        .into_iter()
        .filter(|c| counts[c.index()] > 0)
        .map(|c| (c, counts[c.index()] as f32 / total as f32))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    shares
}

fn classify_bytes(bytes: &[u8]) -> Result<Classification> {
    // The format comes from the bytes, never from what the caller declared.
    let info = sniff(bytes)?;
    let Some(image) = decode(bytes) else {
        tracing::debug!(
            media_type = %info.media_type,
            "pixels: cannot decode this image; labelling its shape only"
        );
        return Ok(Classification {
            labels: vec![Label::new(orientation(info.width, info.height), 1.0)?],
            moderation: None,
        });
    };
    let mut labels = vec![Label::new(orientation(image.width(), image.height()), 1.0)?];
    let shares = colour_shares(&image);
    if let Some(&(top, top_share)) = shares.first() {
        labels.push(Label::new(top.name(), top_share.clamp(0.0, 1.0))?);
        if let Some(&(second, second_share)) = shares.get(1) {
            // Never more than what the top colour left, whatever the rounding.
            let second_share = second_share.min(1.0 - top_share).clamp(0.0, 1.0);
            if second_share >= SECOND_COLOUR_SHARE {
                labels.push(Label::new(second.name(), second_share)?);
            }
        }
    }
    Ok(Classification {
        labels,
        moderation: None,
    })
}

/// An offline classifier that labels a photo with what its pixels honestly show: its
/// orientation (`landscape`, `portrait` or `square`, confidence 1.0) and its one or two
/// dominant colours (`red`, `orange`, `yellow`, `green`, `blue`, `purple`, `pink`, `brown`,
/// `black`, `white`, `grey`), each with the share of the photo's pixels that has it as its
/// confidence.
///
/// It never names objects and cannot screen content ([`Classifier::screens_content`] is
/// false, [`Classification::moderation`] is `None`), so a service using it accepts every
/// photo. Bytes that are not a JPEG, PNG or WebP are
/// [`Error::UnsupportedMediaType`]; an accepted image it cannot decode gets its orientation
/// only, read from the header.
///
/// Decoding runs on tokio's blocking pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelClassifier;

impl PixelClassifier {
    /// The classifier.
    pub fn new() -> Self {
        PixelClassifier
    }
}

#[async_trait]
impl Classifier for PixelClassifier {
    /// Exposes the adapter itself (`native::<PixelClassifier>()`), for what the port does not offer.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }

    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        let bytes: Bytes = photo.bytes.clone();
        let _decoding = DECODES.acquire().await.map_err(|e| Error::backend("pixels", e))?;
        tokio::task::spawn_blocking(move || classify_bytes(&bytes))
            .await
            .map_err(|e| Error::backend("pixels", e))?
    }

    fn screens_content(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Colour;

    #[test]
    fn pixels_fall_into_their_named_colours() {
        for (rgb, colour) in [
            ((255, 0, 0), Colour::Red),
            ((200, 30, 40), Colour::Red),
            ((255, 140, 0), Colour::Orange),
            ((255, 230, 20), Colour::Yellow),
            ((30, 160, 40), Colour::Green),
            ((20, 60, 220), Colour::Blue),
            ((120, 40, 200), Colour::Purple),
            ((255, 105, 180), Colour::Pink),
            ((255, 170, 170), Colour::Pink),
            ((120, 70, 30), Colour::Brown),
            ((5, 5, 5), Colour::Black),
            ((250, 250, 250), Colour::White),
            ((128, 128, 128), Colour::Grey),
        ] {
            assert_eq!(Colour::of(rgb.0, rgb.1, rgb.2), colour, "{rgb:?}");
        }
    }
}
