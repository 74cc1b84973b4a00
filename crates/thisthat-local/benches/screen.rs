//! What the embedded content screen (open_nsfw beside EfficientNet-Lite0) costs: the time from
//! `ModelClassifier::with_screen` to the first answer (the models' load, which a creation that
//! arrives first waits for), the time per photo classified alone and for a creation's three
//! photos at once, and the process's peak resident memory.
//!
//! `cargo bench -p thisthat-local --features model --bench screen` screens;
//! `THISTHAT_BENCH_SCREEN=off` runs the same with labels only, so the difference of the two
//! runs is the screen's cost. The last line is `RESULT {json}`; `docs/performance.md` records
//! the numbers with the machine and the commit.

use std::time::{Duration, Instant};

use bytes::Bytes;
use thisthat_core::{
    MediaType,
    ports::{Classifier, PhotoInput},
};
use thisthat_local::{ModelClassifier, ModelOptions};
use thisthat_testkit::photos;

mod common;
use common::{memory_kib, rss_kib};

const ROUNDS: usize = 10;

fn median(mut times: Vec<Duration>) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// The process's resident set now and at its peak, in MiB.
fn rss_mib() -> (f64, f64) {
    let (rss, peak) = rss_kib();
    (rss as f64 / 1024.0, peak as f64 / 1024.0)
}

fn input(bytes: Bytes) -> PhotoInput {
    let media_type = thisthat_core::media::sniff(&bytes)
        .map(|i| i.media_type)
        .unwrap_or(MediaType::Png);
    PhotoInput {
        bytes,
        media_type,
        key: None,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let screen = std::env::var("THISTHAT_BENCH_SCREEN").map_or(true, |v| v != "off");
    let threads: usize = std::env::var("THISTHAT_BENCH_THREADS")
        .ok()
        .map_or(1, |v| v.parse().expect("THISTHAT_BENCH_THREADS is a number"));
    let photos: Vec<PhotoInput> = [
        photos::cat_png(),
        photos::coffee_png(),
        photos::rocket_jpeg(),
        photos::skin_blobs_png(),
    ]
    .into_iter()
    .map(input)
    .collect();

    let started = Instant::now();
    let options = ModelOptions::default().screen(screen).threads(threads);
    let threads = options.thread_count();
    let classifier = ModelClassifier::with_options(options).expect("model");
    classifier.classify(&photos[0]).await.expect("first photo");
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let loaded = memory_kib();
    assert_eq!(classifier.screens_content(), screen);

    let mut alone = Vec::new();
    let mut three = Vec::new();
    for _ in 0..ROUNDS {
        for photo in &photos {
            let t = Instant::now();
            let c = classifier.classify(photo).await.expect("classify");
            alone.push(t.elapsed());
            assert_eq!(c.moderation.is_some(), screen);
        }
        let t = Instant::now();
        tokio::try_join!(
            classifier.classify(&photos[0]),
            classifier.classify(&photos[1]),
            classifier.classify(&photos[2]),
        )
        .expect("three at once");
        three.push(t.elapsed());
    }
    let (rss, peak) = rss_mib();
    let (alone_ms, three_ms) = (median(alone), median(three));
    let now = memory_kib();
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("screen: {screen}, {threads} inference thread(s)");
    println!(
        "after the first photo: resident {:.1} MiB ({:.1} anonymous, {:.1} files), peak {:.1} MiB",
        mib(loaded.rss),
        mib(loaded.anon),
        mib(loaded.file),
        mib(loaded.peak)
    );
    println!("load and first photo: {ready_ms:.0} ms");
    println!(
        "one photo at a time (median of {}): {alone_ms:.1} ms",
        ROUNDS * photos.len()
    );
    println!("three photos at once (median of {ROUNDS}): {three_ms:.1} ms");
    println!(
        "at the end: resident {rss:.1} MiB ({:.1} anonymous, {:.1} files), peak {peak:.1} MiB",
        mib(now.anon),
        mib(now.file)
    );
    println!(
        "RESULT {{\"screen\":{screen},\"threads\":{threads},\"ready_ms\":{ready_ms:.1},\"photo_ms\":{alone_ms:.2},\"three_photos_ms\":{three_ms:.2},\"loaded_peak_rss_mib\":{:.1},\"rss_mib\":{rss:.1},\"anon_mib\":{:.1},\"file_mib\":{:.1},\"peak_rss_mib\":{peak:.1}}}",
        mib(loaded.peak),
        mib(now.anon),
        mib(now.file)
    );
}
