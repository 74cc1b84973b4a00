//! The classifier port offline, with an image-recognition model: EfficientNet-Lite0 (ImageNet's
//! 1,000 classes) run in-process by `tract`, with the model embedded in the binary.
//!
//! The model, its class names and how they were made are in `crates/thisthat-local/model/`
//! and `tools/efficientnet/` (whose README fixes the preprocessing implemented here). The
//! broader categories (`cat`, `food`, `vehicle`, …) come from the table in
//! `model_categories.rs`.

use std::{io::Cursor, sync::Arc, time::Instant};

use async_trait::async_trait;
use bytes::Bytes;
use image::{
    DynamicImage, RgbImage,
    imageops::{self, FilterType},
};
use thisthat_core::{
    Classification, Error, Label, Result,
    media::sniff,
    ports::{Classifier, PhotoInput},
};
use tract_onnx::prelude::{
    DatumExt, Framework, InferenceModelExt, IntoRunnable, Tensor, TractResult, TypedRunnableModel, tvec,
};

use crate::{model_categories::category_confidences, pixels::decode};

/// The ONNX model: EfficientNet-Lite0, float16 weights cast to float32 (see
/// `tools/efficientnet/README.md`).
const MODEL: &[u8] = include_bytes!("../model/efficientnet_lite0.onnx");
/// ImageNet's class names, one a line, in the model's output order.
const CLASSES: &str = include_str!("../model/classes.txt");
/// How many classes the model scores.
const CLASS_COUNT: usize = 1000;
/// The side of the model's square input.
const SIDE: u32 = 224;
/// The photo's shorter side is resized to this before the centre crop.
const RESIZE_SHORT_SIDE: f64 = 256.0;
/// Photos more elongated than this (long side over short side) are first cut to this ratio
/// around their centre, so that resizing a panorama cannot allocate gigabytes. The centre crop
/// only ever uses the middle of the long side, so ordinary photos are not affected.
const MAX_ASPECT: u32 = 4;
/// At most this many ImageNet classes are reported.
const TOP_CLASSES: usize = 5;
/// Classes and categories below this probability are not reported.
const MIN_CONFIDENCE: f32 = 0.02;

/// An offline classifier that names what a photo shows, with EfficientNet-Lite0, an ImageNet
/// image-recognition model run in-process by [`tract`](https://github.com/sonos/tract). The
/// model (9 MB) is embedded in the binary: nothing is read from disk or the network.
///
/// Each photo gets:
///
/// - the model's top ImageNet classes (at most 5, each with probability at least 0.02), named
///   by the first synonym of the ImageNet label (`tiger cat`, `espresso`, `missile`);
/// - the broader categories people use (`cat`, `dog`, `bird`, `fish`, `animal`, `food`,
///   `fruit`, `drink`, `coffee`, `vehicle`, `car`, `boat`, …) from a short hand-written table
///   over ImageNet's classes. A category's confidence is the sum of the probabilities of all
///   its classes (capped at 1.0), so a cat the model cannot place between `tiger cat`,
///   `Egyptian cat` and `tabby` is still confidently a `cat`. Categories below 0.02 are left
///   out.
///
/// It cannot screen content ([`Classifier::screens_content`] is false,
/// [`Classification::moderation`] is `None`). Bytes that are not a JPEG, PNG or WebP are
/// [`Error::UnsupportedMediaType`]; an accepted image it cannot decode gets no labels.
///
/// Loading the model takes a fraction of a second, so build one classifier and share it
/// (cloning is cheap: clones share the loaded model). [`ModelClassifier::new`] returns before
/// the model is loaded: it loads in the background, and the first photos wait for it, so a
/// server that starts with one answers everything else at once. If it fails to load, every
/// photo gets an [`Error::Backend`] saying why. Decoding and inference run on one thread per
/// core, about 40 ms per photo on two cores.
#[derive(Clone)]
pub struct ModelClassifier {
    classes: Arc<[&'static str]>,
    /// Work for the inference threads. tract keeps scratch buffers per thread, so running on
    /// tokio's blocking pool (hundreds of threads over time) grew a server past 1 GiB; a fixed
    /// thread per core bounds that (docs/performance.md).
    jobs: tokio::sync::mpsc::Sender<Job>,
}

/// One photo to classify, and where to send the answer.
type Job = (Bytes, tokio::sync::oneshot::Sender<Result<Classification>>);

/// What an inference thread needs: the model and the class names.
#[derive(Clone)]
struct Worker {
    plan: Arc<TypedRunnableModel>,
    classes: Arc<[&'static str]>,
}

impl std::fmt::Debug for ModelClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelClassifier")
            .field("model", &"EfficientNet-Lite0 (ImageNet-1k)")
            .field("classes", &self.classes.len())
            .finish()
    }
}

impl ModelClassifier {
    /// Starts loading and optimising the embedded model on a thread of its own and returns at
    /// once; photos classified before it is ready wait for it (a fraction of a second). Build
    /// one and share it.
    pub fn new() -> Result<Self> {
        let started = Instant::now();
        let classes: Arc<[&'static str]> = CLASSES.lines().map(str::trim).collect();
        if classes.len() != CLASS_COUNT || classes.iter().any(|c| c.is_empty()) {
            return Err(Error::backend(
                "model",
                format!("classes.txt has {} names, expected {CLASS_COUNT}", classes.len()),
            ));
        }
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        let cores = cores.max(1);
        // A bounded queue: under overload callers wait for room (backpressure) instead of
        // queueing photos without limit behind requests that may already have timed out.
        let (sender, receiver) = tokio::sync::mpsc::channel::<Job>(cores * 8);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let loading = classes.clone();
        // The model loads on a thread of its own, so that a server answers its first requests
        // at once (loading is most of a start-up otherwise, docs/performance.md): photos sent
        // before it is ready wait in the queue, and this thread then becomes the first of the
        // inference threads.
        std::thread::Builder::new()
            .name("thisthat-model-0".into())
            .spawn(move || {
                let plan = match load() {
                    Ok(plan) => plan,
                    Err(e) => return refuse_all(&receiver, &e.to_string()),
                };
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "model: loaded");
                let worker = Worker { plan, classes: loading };
                for i in 1..cores {
                    let (receiver, worker) = (receiver.clone(), worker.clone());
                    let spawned = std::thread::Builder::new()
                        .name(format!("thisthat-model-{i}"))
                        .spawn(move || worker.serve(&receiver));
                    if let Err(e) = spawned {
                        // Fewer threads are slower, not wrong: this one still serves.
                        tracing::warn!(error = %e, "model: cannot start another inference thread");
                    }
                }
                worker.serve(&receiver);
            })
            .map_err(|e| Error::backend("model", e))?;
        Ok(ModelClassifier { classes, jobs: sender })
    }
}

/// Answers every photo with the reason the model did not load, until the classifier is
/// dropped: a failed load is an error for each creation, never a hang.
fn refuse_all(receiver: &std::sync::Mutex<tokio::sync::mpsc::Receiver<Job>>, reason: &str) {
    tracing::error!(
        reason,
        "model: the embedded model failed to load; every photo will be refused"
    );
    loop {
        let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
        let Some((_, reply)) = job else { break };
        let _ = reply.send(Err(Error::backend(
            "model",
            format!("the embedded image model failed to load: {reason}"),
        )));
    }
}

impl Worker {
    /// Classifies queued photos until every clone of the classifier, and so the sender, is
    /// dropped.
    fn serve(&self, receiver: &std::sync::Mutex<tokio::sync::mpsc::Receiver<Job>>) {
        loop {
            let job = receiver.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
            let Some((bytes, reply)) = job else { break };
            if reply.is_closed() {
                continue; // Its request gave up waiting.
            }
            // A panic in a decoder or in tract fails this photo, not the thread.
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.classify_bytes(&bytes)))
                .unwrap_or_else(|_| Err(Error::backend("model", "classifying this photo panicked")));
            let _ = reply.send(answer);
        }
    }

    /// Labels a photo's bytes (blocking: decoding and inference).
    fn classify_bytes(&self, bytes: &[u8]) -> Result<Classification> {
        // The format comes from the bytes, never from what the caller declared.
        let info = sniff(bytes)?;
        let Some(image) = decode(bytes) else {
            tracing::debug!(media_type = %info.media_type, "model: cannot decode this image; no labels");
            return Ok(Classification {
                labels: Vec::new(),
                moderation: None,
            });
        };
        let started = Instant::now();
        let probabilities = self.probabilities(&image).map_err(|e| Error::backend("model", e))?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "model: classified");
        Ok(Classification {
            labels: self.labels(&probabilities)?,
            moderation: None,
        })
    }

    /// The model's probability for each of the 1,000 classes.
    fn probabilities(&self, image: &DynamicImage) -> TractResult<Vec<f32>> {
        let input = input_tensor(image)?;
        let outputs = self.plan.run(tvec!(input.into()))?;
        let output = outputs
            .first()
            .ok_or_else(|| tract_onnx::prelude::TractError::msg("the model returned no output"))?;
        let probabilities: Vec<f32> = output.to_plain_array_view::<f32>()?.iter().copied().collect();
        if probabilities.len() != CLASS_COUNT {
            return Err(tract_onnx::prelude::TractError::msg(format!(
                "the model returned {} scores, expected {CLASS_COUNT}",
                probabilities.len()
            )));
        }
        Ok(probabilities)
    }

    /// The top classes and the categories, most confident first, each name once.
    fn labels(&self, probabilities: &[f32]) -> Result<Vec<Label>> {
        let confidence = |p: f32| if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
        let mut ranked: Vec<usize> = (0..probabilities.len()).collect();
        ranked.sort_by(|&a, &b| confidence(probabilities[b]).total_cmp(&confidence(probabilities[a])));
        let classes = ranked
            .into_iter()
            .take(TOP_CLASSES)
            .map(|i| (self.classes[i], confidence(probabilities[i])));
        let mut labels: Vec<Label> = Vec::new();
        for (name, p) in classes.chain(category_confidences(probabilities)) {
            if p < MIN_CONFIDENCE {
                continue;
            }
            let label = Label::new(name, p)?;
            // ImageNet repeats two names (`crane`, `maillot`), and a category may share a
            // class's name: keep the higher confidence.
            match labels.iter_mut().find(|l| l.name == label.name) {
                Some(existing) => existing.confidence = existing.confidence.max(label.confidence),
                None => labels.push(label),
            }
        }
        labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.name.cmp(&b.name)));
        Ok(labels)
    }
}

/// Reads, types and optimises the embedded model for one `[1, 3, 224, 224]` float32 input.
fn load() -> TractResult<Arc<TypedRunnableModel>> {
    let side = SIDE as usize;
    tract_onnx::onnx()
        .model_for_read(&mut Cursor::new(MODEL))?
        .with_input_fact(0, f32::fact([1, 3, side, side]).into())?
        .into_optimized()?
        .into_runnable()
}

/// The model's input for a photo, exactly as `tools/efficientnet/README.md` says: 8-bit RGB
/// (alpha dropped), shorter side resized to 256 with the `Triangle` filter, centre 224×224
/// crop, each channel as `(v - 127) / 128`, laid out NCHW in R, G, B order.
///
/// The photo arrives turned upright by its EXIF orientation (the README's reference photos
/// have none), and a photo longer than 4:1 is first cut to 4:1 around its centre.
fn input_tensor(image: &DynamicImage) -> TractResult<Tensor> {
    let rgb = upright_rgb(image);
    let (width, height) = rgb.dimensions();
    let short = f64::from(width.min(height).max(1));
    let new_width = (f64::from(width) * RESIZE_SHORT_SIDE / short).round() as u32;
    let new_height = (f64::from(height) * RESIZE_SHORT_SIDE / short).round() as u32;
    let resized = imageops::resize(&rgb, new_width, new_height, FilterType::Triangle);
    let x0 = new_width.saturating_sub(SIDE) / 2;
    let y0 = new_height.saturating_sub(SIDE) / 2;
    let crop = imageops::crop_imm(&resized, x0, y0, SIDE, SIDE).to_image();
    let side = SIDE as usize;
    let plane = side * side;
    let mut data = vec![0f32; 3 * plane];
    for (x, y, pixel) in crop.enumerate_pixels() {
        let at = y as usize * side + x as usize;
        for (channel, &value) in pixel.0.iter().enumerate() {
            data[channel * plane + at] = (f32::from(value) - 127.0) / 128.0;
        }
    }
    Tensor::from_shape(&[1, 3, side, side], &data)
}

/// The photo as 8-bit RGB, cut to at most [`MAX_ASPECT`]:1 around its centre.
fn upright_rgb(image: &DynamicImage) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    let longest = width.min(height).max(1).saturating_mul(MAX_ASPECT);
    if width <= longest && height <= longest {
        return image.to_rgb8();
    }
    let (w, h) = (width.min(longest), height.min(longest));
    image.crop_imm((width - w) / 2, (height - h) / 2, w, h).to_rgb8()
}

#[async_trait]
impl Classifier for ModelClassifier {
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send((photo.bytes.clone(), reply))
            .await
            .map_err(|_| Error::backend("model", "the inference threads have stopped"))?;
        answer
            .await
            .map_err(|_| Error::backend("model", "an inference thread stopped mid-photo"))?
    }

    fn screens_content(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_the_centre_crop_normalised_in_nchw() {
        // 512×256: resized to exactly 512×256, cropped at x0 = 144, y0 = 16.
        let mut image = RgbImage::from_pixel(512, 256, image::Rgb([255, 127, 0]));
        // A blue column left of the crop must not reach the input.
        for y in 0..256 {
            image.put_pixel(10, y, image::Rgb([0, 0, 255]));
        }
        let tensor = input_tensor(&DynamicImage::ImageRgb8(image)).expect("tensor");
        assert_eq!(tensor.shape(), &[1, 3, 224, 224]);
        let view = tensor.to_plain_array_view::<f32>().expect("f32");
        for (channel, expected) in [(0, 1.0), (1, 0.0), (2, -127.0 / 128.0)] {
            let plane = view.index_axis(tract_onnx::prelude::tract_ndarray::Axis(1), channel);
            assert!(plane.iter().all(|v| (v - expected).abs() < 1e-6), "channel {channel}");
        }
    }

    #[test]
    fn panoramas_are_cut_before_resizing() {
        let rgb = upright_rgb(&DynamicImage::ImageRgb8(RgbImage::new(10_000, 10)));
        assert_eq!(rgb.dimensions(), (40, 10));
        let rgb = upright_rgb(&DynamicImage::ImageRgb8(RgbImage::new(3, 40)));
        assert_eq!(rgb.dimensions(), (3, 12));
        let rgb = upright_rgb(&DynamicImage::ImageRgb8(RgbImage::new(400, 300)));
        assert_eq!(rgb.dimensions(), (400, 300));
        let tensor = input_tensor(&DynamicImage::ImageRgb8(RgbImage::new(1, 1))).expect("1×1");
        assert_eq!(tensor.shape(), &[1, 3, 224, 224]);
    }
}
