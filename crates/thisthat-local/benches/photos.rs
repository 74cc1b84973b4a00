//! What accepting a photo costs and saves: for the repo's sample photos and a generated
//! 4032 × 3024 phone-sized JPEG (with GPS EXIF), the bytes of the original against its
//! display variant, the bytes a classifier is handed before (the original) and after, the time
//! to decode, check, resize and encode one photo, the variant's size as a lossless WebP and
//! as JPEG at other qualities (the format choice), and the peak memory while three phone
//! photos are processed at once: on three threads, and through `Thisthat::create_competition`
//! on the in-memory backend.
//!
//! `cargo bench -p thisthat-local --bench photos` (release build). The last line is
//! `RESULT {json}`; `docs/photos.md` and `docs/performance.md` record the numbers with the
//! machine and the commit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use image::{DynamicImage, ImageEncoder};
use thisthat_core::{
    NewCompetition, Rules, Thisthat,
    decode::{DecodeLimits, check_and_render, classifies_original},
};
use thisthat_testkit::{fixtures::user, memory::MemoryBackend, photos};

mod common;
use common::rss_kib;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Resets the peak resident set to the current one (Linux: `clear_refs` value 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The variant's pixels (decoded again from the original, as the service renders them), to
/// encode in other formats for comparison.
fn variant_pixels(original: &[u8], max_side: u32) -> image::RgbImage {
    let image = thisthat_core::decode::decode(original).expect("decodes");
    let image = if image.width().max(image.height()) > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image
    };
    DynamicImage::ImageRgb8(image.to_rgb8()).to_rgb8()
}

fn jpeg_bytes(pixels: &image::RgbImage, quality: u8) -> usize {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(pixels)
        .expect("jpeg");
    out.len()
}

fn webp_lossless_bytes(pixels: &image::RgbImage) -> usize {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            pixels.as_raw(),
            pixels.width(),
            pixels.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("webp");
    out.len()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rules = Rules::default();
    let limits = DecodeLimits::from_rules(&rules);
    let side = rules.display_max_side;
    let phone = photos::phone_jpeg();
    let samples: Vec<(&str, Bytes)> = vec![
        ("chelsea.png", photos::cat_png()),
        ("coffee.png", photos::coffee_png()),
        ("rocket.jpg", photos::rocket_jpeg()),
        ("pixel.webp", photos::pixel_webp()),
        ("phone 4032x3024 jpeg (generated, GPS EXIF)", phone.clone()),
    ];

    let mut rows = Vec::new();
    for (name, original) in &samples {
        let runs = if original.len() > 1_000_000 { 7 } else { 21 };
        let mut times = Vec::with_capacity(runs);
        let mut checked = None;
        for _ in 0..runs {
            let start = Instant::now();
            let c = check_and_render(0, original, &limits, side).expect("accepted");
            times.push(start.elapsed());
            checked = Some(c);
        }
        let checked = checked.expect("ran");
        let to_classifier = if classifies_original(&checked.info, original.len(), side) {
            original.len()
        } else {
            checked.display.bytes.len()
        };
        let pixels = variant_pixels(original, side);
        let row = serde_json::json!({
            "photo": name,
            "original": { "bytes": original.len(), "width": checked.info.width, "height": checked.info.height },
            "display": { "bytes": checked.display.bytes.len(), "width": checked.display.width, "height": checked.display.height },
            "classifier_bytes_before": original.len(),
            "classifier_bytes_after": to_classifier,
            "check_and_render_ms_median": median(times).as_secs_f64() * 1000.0,
            "runs": runs,
            "variant_as": {
                "jpeg_q70": jpeg_bytes(&pixels, 70),
                "jpeg_q80": jpeg_bytes(&pixels, 80),
                "jpeg_q90": jpeg_bytes(&pixels, 90),
                "webp_lossless": webp_lossless_bytes(&pixels),
            },
        });
        println!("{row}");
        rows.push(row);
    }

    // Three phone photos at once on three threads: the decoder's own peak.
    reset_peak();
    let (before, _) = rss_kib();
    let start = Instant::now();
    std::thread::scope(|s| {
        for i in 0..3 {
            let phone = &phone;
            s.spawn(move || check_and_render(i, phone, &limits, side).expect("accepted"));
        }
    });
    let threads_wall = start.elapsed();
    let (_, peak) = rss_kib();
    let threads = serde_json::json!({
        "rss_before_mib": before as f64 / 1024.0,
        "peak_mib": peak as f64 / 1024.0,
        "peak_over_before_mib": (peak.saturating_sub(before)) as f64 / 1024.0,
        "wall_ms": threads_wall.as_secs_f64() * 1000.0,
    });
    println!("three at once on three threads: {threads}");

    // The same through the service (decode concurrency: the machine's cores).
    let memory = MemoryBackend::new();
    let service = Thisthat::builder(memory.backend()).build().expect("service");
    reset_peak();
    let (before, _) = rss_kib();
    let start = Instant::now();
    let c = service
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: None,
                photos: vec![phone.clone(), phone.clone(), phone.clone()],
            },
        )
        .await
        .expect("created");
    let service_wall = start.elapsed();
    let (_, peak) = rss_kib();
    let view_bytes: u64 = c.photos.iter().filter_map(|p| p.display.as_ref()).map(|d| d.size).sum();
    let through_service = serde_json::json!({
        "decode_concurrency": std::thread::available_parallelism().map_or(2, |n| n.get()),
        "rss_before_mib": before as f64 / 1024.0,
        "peak_mib": peak as f64 / 1024.0,
        "peak_over_before_mib": (peak.saturating_sub(before)) as f64 / 1024.0,
        "wall_ms": service_wall.as_secs_f64() * 1000.0,
        "vote_view_bytes_originals": phone.len() * 3,
        "vote_view_bytes_variants": view_bytes,
    });
    println!("three phone photos through create_competition: {through_service}");

    let three_samples: u64 = photos::three().iter().map(|b| b.len() as u64).sum();
    let c = service
        .create_competition(
            &user("owner"),
            NewCompetition {
                title: None,
                photos: photos::three(),
            },
        )
        .await
        .expect("created");
    let sample_view: u64 = c.photos.iter().filter_map(|p| p.display.as_ref()).map(|d| d.size).sum();
    let result = serde_json::json!({
        "photos": rows,
        "three_at_once_threads": threads,
        "three_at_once_service": through_service,
        "sample_vote_view_bytes_originals": three_samples,
        "sample_vote_view_bytes_variants": sample_view,
    });
    println!("RESULT {result}");
}
