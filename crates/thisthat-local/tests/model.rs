//! The model classifier against the classifier conformance suite, plus the numbers it must give
//! on the sample photos (the figures `tools/efficientnet/verify.py` reproduces), and its screen
//! through the whole domain: a photo it flags refuses the competition.
#![cfg(feature = "model")]

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    Backend, Classification, Endpoint, MediaType, PushMessage, UrlOpener,
    ports::{Classifier, PhotoInput},
};
use thisthat_local::{LocalOpener, ModelClassifier};
use thisthat_testkit::{DomainHarness, memory::MemoryHarness, photos};

/// One loaded model for every test of this binary: the suite builds a classifier per case.
fn shared() -> Arc<ModelClassifier> {
    static MODEL: OnceLock<Arc<ModelClassifier>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(ModelClassifier::new().expect("model")))
        .clone()
}

mod classifier {
    thisthat_testkit::classifier_conformance!(async { super::shared() });
}

/// One loaded labels-only model for the tests of labels alone: a screened photo costs a second
/// inference, slow in a debug build.
fn labels_only() -> Arc<ModelClassifier> {
    static MODEL: OnceLock<Arc<ModelClassifier>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(ModelClassifier::with_screen(false).expect("model")))
        .clone()
}

/// The labels-only classifier's answer.
async fn label(bytes: Bytes, media_type: MediaType) -> thisthat_core::Result<Classification> {
    labels_only()
        .classify(&PhotoInput {
            bytes,
            media_type,
            key: None,
        })
        .await
}

/// The screening classifier's answer.
async fn classify(bytes: Bytes, media_type: MediaType) -> thisthat_core::Result<Classification> {
    shared()
        .classify(&PhotoInput {
            bytes,
            media_type,
            key: None,
        })
        .await
}

fn confidence(c: &Classification, name: &str) -> f32 {
    c.labels
        .iter()
        .find(|l| l.name.as_str() == name)
        .map(|l| l.confidence)
        .unwrap_or_else(|| panic!("no {name:?} in {c:#?}"))
}

/// The ImageNet classes among the labels (the categories removed), most confident first.
fn classes(c: &Classification) -> Vec<&str> {
    const CATEGORIES: [&str; 8] = ["animal", "cat", "dog", "bird", "food", "drink", "coffee", "rocket"];
    c.labels
        .iter()
        .map(|l| l.name.as_str())
        .filter(|n| !CATEGORIES.contains(n))
        .collect()
}

#[tokio::test]
async fn chelsea_is_a_tiger_cat_and_above_all_a_cat() {
    let c = label(photos::cat_png(), MediaType::Png).await.expect("classify");
    assert_eq!(classes(&c).first(), Some(&"tiger cat"), "{c:#?}");
    let tiger_cat = confidence(&c, "tiger cat");
    assert!((tiger_cat - 0.39).abs() <= 0.05, "tiger cat {tiger_cat}");
    assert!((confidence(&c, "egyptian cat") - 0.36).abs() <= 0.05, "{c:#?}");
    assert!((confidence(&c, "tabby") - 0.16).abs() <= 0.05, "{c:#?}");
    assert!(confidence(&c, "cat") >= 0.85, "{c:#?}");
    assert!(confidence(&c, "animal") >= 0.85, "{c:#?}");
    // The most confident label of all is the category.
    assert_eq!(c.labels[0].name.as_str(), "animal", "{c:#?}");
    assert!(
        c.labels
            .iter()
            .all(|l| l.name.as_str() != "dog" && l.name.as_str() != "food")
    );
}

#[tokio::test]
async fn coffee_is_an_espresso_and_a_drink() {
    let c = label(photos::coffee_png(), MediaType::Png).await.expect("classify");
    assert_eq!(classes(&c).first(), Some(&"espresso"), "{c:#?}");
    assert!(confidence(&c, "espresso") >= 0.9, "{c:#?}");
    assert!(confidence(&c, "drink") >= 0.9, "{c:#?}");
    assert!(confidence(&c, "coffee") >= 0.9, "{c:#?}");
    assert!(c.labels.iter().all(|l| l.name.as_str() != "animal"), "{c:#?}");
}

#[tokio::test]
async fn rocket_is_a_missile() {
    let c = label(photos::rocket_jpeg(), MediaType::Jpeg).await.expect("classify");
    let top2 = &classes(&c)[..2];
    assert!(top2.contains(&"missile"), "{c:#?}");
    let missile = confidence(&c, "missile");
    assert!((missile - 0.37).abs() <= 0.05, "missile {missile}");
    assert_eq!(confidence(&c, "rocket"), missile);
}

#[tokio::test]
async fn labels_are_unique_sorted_and_above_the_floor() {
    for (photo, media_type) in [
        (photos::cat_png(), MediaType::Png),
        (photos::coffee_png(), MediaType::Png),
        (photos::rocket_jpeg(), MediaType::Jpeg),
    ] {
        let c = label(photo, media_type).await.expect("classify");
        let mut names: Vec<_> = c.labels.iter().map(|l| l.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), c.labels.len(), "{c:#?}");
        assert!(
            c.labels.windows(2).all(|w| w[0].confidence >= w[1].confidence),
            "{c:#?}"
        );
        assert!(c.labels.iter().all(|l| (0.02..=1.0).contains(&l.confidence)), "{c:#?}");
        assert!(classes(&c).len() <= 5, "{c:#?}");
    }
}

#[tokio::test]
async fn undecodable_images_get_no_labels_and_non_images_are_refused() {
    // A PNG header that sniffs as 16x16, followed by zeros instead of image data.
    let c = classify(photos::undecodable_png(4096), MediaType::Png)
        .await
        .expect("classify");
    assert!(c.labels.is_empty(), "{c:?}");
    // Not screened, so the service (failing closed) refuses it.
    assert!(c.moderation.is_none());
    for bytes in [photos::not_an_image(), photos::gif(), Bytes::new()] {
        let result = classify(bytes, MediaType::Png).await;
        assert!(
            matches!(result, Err(thisthat_core::Error::UnsupportedMediaType { .. })),
            "{result:?}"
        );
    }
    assert!(shared().screens_content());
}

#[tokio::test]
async fn odd_shapes_and_pixel_formats_are_classified() {
    for image in [
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(3000, 20, image::Rgba([200, 40, 40, 128]))),
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1, 1, image::Luma([90]))),
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(20, 900, image::Rgb([10, 200, 30]))),
    ] {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).expect("encode");
        let c = label(Bytes::from(out.into_inner()), MediaType::Png)
            .await
            .expect("classify");
        assert!(c.labels.iter().all(|l| (0.0..=1.0).contains(&l.confidence)), "{c:?}");
    }
}

#[tokio::test]
async fn the_model_scheme_opens_it_screening_unless_told_not_to() {
    for (url, screens, threads) in [
        ("model:", true, 1),
        ("model:?screen=true", true, 1),
        ("model:?screen=false", false, 1),
        ("model:?threads=2&screen=false", false, 2),
    ] {
        let classifier = LocalOpener
            .classifier(&url::Url::parse(url).expect("url"))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let debug = format!("{classifier:?}");
        assert!(debug.contains("ModelClassifier"), "{url}");
        assert!(debug.contains(&format!("threads: {threads}")), "{url}: {debug}");
        assert_eq!(classifier.screens_content(), screens, "{url}");
    }
    for url in [
        "model:?screen=maybe",
        "model:?screen=false&screen=false",
        "model:?threshold=0.5",
        "model:?threads=0",
        "model:?threads=65",
        "model:?threads=two",
        "model:?threads=1&threads=2",
    ] {
        let opened = LocalOpener.classifier(&url::Url::parse(url).expect("url")).await;
        assert!(
            matches!(opened, Err(thisthat_core::Error::Config { .. })),
            "{url}: {opened:?}"
        );
    }
}

#[tokio::test]
async fn without_the_screen_it_labels_and_does_not_screen() {
    let c = label(photos::skin_blobs_png(), MediaType::Png).await.expect("classify");
    assert!(c.moderation.is_none(), "{c:?}");
    assert!(!labels_only().screens_content());
}

/// The sample photos (a cat, an espresso, a rocket) screen clean: an empty moderation list.
#[tokio::test]
async fn the_sample_photos_are_not_flagged() {
    for (name, photo, media_type) in [
        ("chelsea", photos::cat_png(), MediaType::Png),
        ("coffee", photos::coffee_png(), MediaType::Png),
        ("rocket", photos::rocket_jpeg(), MediaType::Jpeg),
    ] {
        let c = classify(photo, media_type).await.expect("classify");
        assert_eq!(c.moderation, Some(Vec::new()), "{name}: {c:?}");
    }
}

#[tokio::test]
async fn skin_coloured_blobs_are_flagged_adult() {
    let c = classify(photos::skin_blobs_png(), MediaType::Png)
        .await
        .expect("classify");
    let moderation = c.moderation.expect("screened");
    assert_eq!(moderation.len(), 1, "{moderation:?}");
    assert_eq!(moderation[0].name.as_str(), "adult");
    assert!(moderation[0].confidence >= 0.95, "{moderation:?}");
}

/// The memory harness's adapters with the model classifier: for the domain suite's screening
/// case, which needs a photo the classifier flags.
struct Screened {
    memory: MemoryHarness,
}

#[async_trait]
impl DomainHarness for Screened {
    fn backend(&self) -> Backend {
        Backend {
            classifier: shared(),
            ..self.memory.memory.backend()
        }
    }
    fn signed_urls(&self) -> thisthat_testkit::SignedUrls {
        DomainHarness::signed_urls(&self.memory)
    }
    async fn direct(
        &self,
        url: &thisthat_core::ports::SignedUrl,
        body: Option<Bytes>,
    ) -> thisthat_core::Result<thisthat_testkit::DirectResponse> {
        DomainHarness::direct(&self.memory, url, body).await
    }
    async fn delivered(&self, endpoint: &Endpoint) -> thisthat_core::Result<Vec<PushMessage>> {
        DomainHarness::delivered(&self.memory, endpoint).await
    }
    async fn expire(&self, endpoint: &Endpoint) -> thisthat_core::Result<()> {
        DomainHarness::expire(&self.memory, endpoint).await
    }
    async fn unsafe_photo(&self) -> Option<Bytes> {
        Some(photos::skin_blobs_png())
    }
}

/// The domain suite's screening case with the real screen: the flagged photo refuses the
/// competition with `Error::UnsafeContent` and nothing of it is stored. (One case, not the
/// whole suite: each creation runs both models on three photos, slow in a debug build.)
#[tokio::test]
async fn a_flagged_photo_refuses_the_competition_and_nothing_is_stored() {
    let harness = Screened {
        memory: MemoryHarness::new(),
    };
    thisthat_testkit::conformance::domain::unsafe_photos_reject_everything(&harness).await;
}

/// The suite's three photos pass the screen through the service and are stored.
#[tokio::test]
async fn clean_photos_pass_the_screen_and_are_stored() {
    let harness = Screened {
        memory: MemoryHarness::new(),
    };
    thisthat_testkit::conformance::domain::create_stores_photos_and_categories(&harness).await;
}

#[test]
fn it_is_send_sync_and_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ModelClassifier>();
    let a = shared();
    let b = (*a).clone();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
