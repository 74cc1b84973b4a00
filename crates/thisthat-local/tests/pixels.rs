//! The pixel classifier against the classifier conformance suite, plus checks that its labels
//! are real: shapes and colours of known photos.

use bytes::Bytes;
use thisthat_core::{
    Classification, MediaType,
    ports::{Classifier, PhotoInput},
};
use thisthat_local::PixelClassifier;
use thisthat_testkit::photos;

mod classifier {
    use super::*;
    thisthat_testkit::classifier_conformance!(async { std::sync::Arc::new(PixelClassifier::new()) });
}

async fn classify(bytes: Bytes, media_type: MediaType) -> thisthat_core::Result<Classification> {
    PixelClassifier::new()
        .classify(&PhotoInput {
            bytes,
            media_type,
            key: None,
        })
        .await
}

const ORIENTATIONS: [&str; 3] = ["landscape", "portrait", "square"];

fn colour_sum(c: &Classification) -> f32 {
    c.labels
        .iter()
        .filter(|l| !ORIENTATIONS.contains(&l.name.as_str()))
        .map(|l| l.confidence)
        .sum()
}

fn encode(image: &image::RgbImage, format: image::ImageFormat) -> Bytes {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    Bytes::from(out.into_inner())
}

fn solid(width: u32, height: u32, rgb: [u8; 3], format: image::ImageFormat) -> Bytes {
    encode(&image::RgbImage::from_pixel(width, height, image::Rgb(rgb)), format)
}

#[tokio::test]
async fn real_photos_get_their_shape_and_at_most_all_of_their_pixels_in_colours() {
    for (name, photo, media_type) in [
        ("coffee", photos::coffee_png(), MediaType::Png),
        ("cat", photos::cat_png(), MediaType::Png),
        ("rocket", photos::rocket_jpeg(), MediaType::Jpeg),
    ] {
        let c = classify(photo, media_type).await.expect(name);
        assert_eq!(c.labels[0].name.as_str(), "landscape", "{name}: {c:?}");
        assert_eq!(c.labels[0].confidence, 1.0);
        let colours = c.labels.len() - 1;
        assert!((1..=2).contains(&colours), "{name}: {c:?}");
        let sum = colour_sum(&c);
        assert!(sum > 0.0 && sum <= 1.0, "{name}: {sum} {c:?}");
        assert!(c.moderation.is_none());
    }
}

#[tokio::test]
async fn a_solid_red_square_is_red() {
    let c = classify(solid(64, 64, [230, 20, 25], image::ImageFormat::Png), MediaType::Png)
        .await
        .expect("classify");
    assert_eq!(c.labels[0].name.as_str(), "square");
    assert_eq!(c.labels[1].name.as_str(), "red", "{c:?}");
    assert!(c.labels[1].confidence > 0.9, "{c:?}");
    assert_eq!(c.labels.len(), 2, "one colour only: {c:?}");
}

#[tokio::test]
async fn jpeg_and_webp_pixels_are_read_too() {
    for (format, media_type) in [
        (image::ImageFormat::Jpeg, MediaType::Jpeg),
        (image::ImageFormat::WebP, MediaType::Webp),
    ] {
        let c = classify(solid(90, 30, [30, 160, 40], format), media_type)
            .await
            .expect("classify");
        assert_eq!(c.labels[0].name.as_str(), "landscape", "{format:?}: {c:?}");
        assert_eq!(c.labels[1].name.as_str(), "green", "{format:?}: {c:?}");
        assert!(c.labels[1].confidence > 0.9, "{format:?}: {c:?}");
    }
}

#[tokio::test]
async fn half_blue_half_white_reports_both() {
    let mut image = image::RgbImage::from_pixel(40, 80, image::Rgb([255, 255, 255]));
    for (_, y, pixel) in image.enumerate_pixels_mut() {
        if y < 40 {
            *pixel = image::Rgb([20, 60, 220]);
        }
    }
    let c = classify(encode(&image, image::ImageFormat::Png), MediaType::Png)
        .await
        .expect("classify");
    assert_eq!(c.labels[0].name.as_str(), "portrait");
    let mut colours: Vec<_> = c.labels[1..].iter().map(|l| l.name.as_str()).collect();
    colours.sort();
    assert_eq!(colours, ["blue", "white"], "{c:?}");
    assert!(colour_sum(&c) <= 1.0);
}

#[tokio::test]
async fn undecodable_images_get_their_shape_only_and_non_images_are_refused() {
    // A PNG header that sniffs as 16x16, followed by zeros instead of image data.
    let c = classify(photos::undecodable_png(4096), MediaType::Png)
        .await
        .expect("classify");
    assert_eq!(c.labels.len(), 1, "{c:?}");
    assert_eq!(c.labels[0].name.as_str(), "square");
    assert!(c.moderation.is_none());

    for bytes in [photos::not_an_image(), photos::gif(), Bytes::new()] {
        let result = classify(bytes, MediaType::Png).await;
        assert!(
            matches!(result, Err(thisthat_core::Error::UnsupportedMediaType { .. })),
            "{result:?}"
        );
    }
    assert!(!PixelClassifier::new().screens_content());
}
