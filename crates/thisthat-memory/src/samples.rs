//! Real photos to try thisthat with, shipped with the crate (see `photos/LICENSES.md`): CC0
//! or public domain.

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
