//! The model classifier against the classifier conformance suite, plus the numbers it must give
//! on the sample photos (the figures `tools/efficientnet/verify.py` reproduces).
#![cfg(feature = "model")]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use thisthat_core::{
    Classification, MediaType, UrlOpener,
    ports::{Classifier, PhotoInput},
};
use thisthat_local::{LocalOpener, ModelClassifier};
use thisthat_testkit::photos;

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
    let c = classify(photos::cat_png(), MediaType::Png).await.expect("classify");
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
    assert!(c.moderation.is_none());
}

#[tokio::test]
async fn coffee_is_an_espresso_and_a_drink() {
    let c = classify(photos::coffee_png(), MediaType::Png).await.expect("classify");
    assert_eq!(classes(&c).first(), Some(&"espresso"), "{c:#?}");
    assert!(confidence(&c, "espresso") >= 0.9, "{c:#?}");
    assert!(confidence(&c, "drink") >= 0.9, "{c:#?}");
    assert!(confidence(&c, "coffee") >= 0.9, "{c:#?}");
    assert!(c.labels.iter().all(|l| l.name.as_str() != "animal"), "{c:#?}");
}

#[tokio::test]
async fn rocket_is_a_missile() {
    let c = classify(photos::rocket_jpeg(), MediaType::Jpeg)
        .await
        .expect("classify");
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
        let c = classify(photo, media_type).await.expect("classify");
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
    assert!(c.moderation.is_none());
    for bytes in [photos::not_an_image(), photos::gif(), Bytes::new()] {
        let result = classify(bytes, MediaType::Png).await;
        assert!(
            matches!(result, Err(thisthat_core::Error::UnsupportedMediaType { .. })),
            "{result:?}"
        );
    }
    assert!(!shared().screens_content());
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
        let c = classify(Bytes::from(out.into_inner()), MediaType::Png)
            .await
            .expect("classify");
        assert!(c.labels.iter().all(|l| (0.0..=1.0).contains(&l.confidence)), "{c:?}");
    }
}

#[tokio::test]
async fn the_model_scheme_opens_it() {
    let url = url::Url::parse("model:").expect("url");
    let classifier = LocalOpener.classifier(&url).await.expect("model:");
    assert!(format!("{classifier:?}").contains("ModelClassifier"));
    assert!(!classifier.screens_content());
}

#[test]
fn it_is_send_sync_and_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ModelClassifier>();
    let a = shared();
    let b = (*a).clone();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
