//! The classifier port offline, with two models run in-process by `tract` and embedded in the
//! binary: EfficientNet-Lite0 (ImageNet's 1,000 classes) names what a photo shows, and Yahoo's
//! open_nsfw screens it.
//!
//! The models, the class names and how they were made are in `crates/thisthat-local/model/`,
//! `tools/efficientnet/` and `tools/open_nsfw/` (whose READMEs fix the preprocessing
//! implemented here). The broader categories (`cat`, `food`, `vehicle`, …) come from the table
//! in `model_categories.rs`.

use std::{io::Read, sync::Arc, time::Instant};

use async_trait::async_trait;
use bytes::Bytes;
use image::{
    GenericImageView, RgbImage, SubImage,
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

use crate::{model_categories::category_confidences, model_file::embedded, pixels::decode};

/// The ONNX model: EfficientNet-Lite0, float16 weights cast to float32 (see
/// `tools/efficientnet/README.md`).
static MODEL: &[u8] = include_bytes!("../model/efficientnet_lite0.onnx");
/// ImageNet's class names, one a line, in the model's output order.
const CLASSES: &str = include_str!("../model/classes.txt");
/// The screening model: Yahoo's open_nsfw, float16 weights cast to float32 (see
/// `tools/open_nsfw/README.md`).
static SCREEN_MODEL: &[u8] = include_bytes!("../model/open_nsfw.onnx");
/// The screen's square input is cut from the middle of the photo squashed to this side.
const SCREEN_RESIZE: u32 = 256;
/// open_nsfw's mean pixel, in its B, G, R channel order.
const SCREEN_MEAN_BGR: [f32; 3] = [104.0, 117.0, 123.0];
/// The moderation label open_nsfw's "not safe" probability is reported as: the name Cloud
/// Vision and Azure AI Vision give the same concern, so one rule reads every provider alike.
const SCREEN_LABEL: &str = "adult";
/// "Not safe" probabilities below this are not reported (the photo screened clean, an empty
/// moderation list): open_nsfw's authors call scores under 0.2 safe. Refusing is the
/// service's decision, at `Rules::unsafe_confidence`.
const SCREEN_MIN_CONFIDENCE: f32 = 0.2;
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
/// image-recognition model, and screens it for adult content with Yahoo's open_nsfw, both run
/// in-process by [`tract`](https://github.com/sonos/tract). The models (9 MB and 12 MB) are
/// embedded in the binary: nothing is read from disk or the network.
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
///   out;
/// - a screen ([`Classification::moderation`]): open_nsfw's probability that the photo is not
///   safe for work, as the moderation label `adult` when it is 0.2 or more (under 0.2, which
///   open_nsfw's authors call safe, the list is empty). The service refuses the competition
///   when it reaches [`Rules::unsafe_confidence`](thisthat_core::Rules::unsafe_confidence)
///   (0.7 by default; the authors suggest 0.8 for "not safe", and a public app would rather ask
///   an owner for another photo than show a borderline one). open_nsfw was trained on
///   pornography; it does not see violence or gore, and large skin-coloured areas raise its
///   score.
///
/// [`ModelClassifier::with_screen`]`(false)` (or a `model:?screen=false` URL) leaves the screen
/// out: [`Classifier::screens_content`] is then false and moderation `None`, and a server
/// with production auth refuses to start with it. Bytes that are not a JPEG, PNG or WebP are
/// [`Error::UnsupportedMediaType`]; an accepted image it cannot decode gets no labels and no
/// screen (`None`), which the service, failing closed, refuses (it decodes every photo itself
/// first, so this does not happen through it).
///
/// Loading the models takes about a second, so build one classifier and share it (cloning is
/// cheap: clones share the loaded models). [`ModelClassifier::new`] returns before they are
/// loaded: they load in the background, and the first photos wait for them, so a server that
/// starts with one answers everything else at once. If they fail to load, every photo gets an
/// [`Error::Backend`] saying why. Each photo is decoded once for both models; decoding and
/// inference run on a fixed number of threads of the classifier's own, one unless
/// [`ModelOptions::threads`] says more (docs/performance.md has the times and the memory).
#[derive(Clone)]
pub struct ModelClassifier {
    classes: Arc<[&'static str]>,
    /// Whether open_nsfw screens each photo.
    screen: bool,
    /// How many inference threads serve `jobs`.
    threads: usize,
    /// Work for the inference threads. tract keeps scratch buffers per thread, so running on
    /// tokio's blocking pool (hundreds of threads over time) grew a server past 1 GiB; a fixed
    /// number of threads bounds that (docs/performance.md).
    jobs: tokio::sync::mpsc::Sender<Job>,
}

/// One photo to classify, and where to send the answer.
type Job = (Bytes, tokio::sync::oneshot::Sender<Result<Classification>>);

/// What an inference thread needs: the models and the class names.
#[derive(Clone)]
struct Worker {
    plan: Arc<TypedRunnableModel>,
    /// open_nsfw, unless the screen is off.
    screen: Option<Arc<TypedRunnableModel>>,
    classes: Arc<[&'static str]>,
}

impl std::fmt::Debug for ModelClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelClassifier")
            .field("model", &"EfficientNet-Lite0 (ImageNet-1k)")
            .field("classes", &self.classes.len())
            .field("screen", &if self.screen { "open_nsfw" } else { "none" })
            .field("threads", &self.threads)
            .finish()
    }
}

/// How a [`ModelClassifier`] runs: whether open_nsfw screens each photo, and how many
/// inference threads classify at once.
///
/// ```
/// use thisthat_local::ModelOptions;
///
/// let options = ModelOptions::default().threads(2);
/// assert!(options.screens());
/// assert_eq!(options.thread_count(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    screen: bool,
    threads: usize,
}

impl Default for ModelOptions {
    /// Screening, on one inference thread: each thread keeps its own scratch buffers for both
    /// models, so every thread more costs memory a small server cannot spare
    /// (docs/performance.md, "Where the memory goes"). A server that creates many
    /// competitions at once on many cores can ask for more.
    fn default() -> Self {
        ModelOptions {
            screen: true,
            threads: 1,
        }
    }
}

impl ModelOptions {
    /// With open_nsfw's screen (`true`, the default) or without it (`false`: labels only, a
    /// faster classification, and [`Classifier::screens_content`] false).
    #[must_use]
    pub fn screen(mut self, screen: bool) -> Self {
        self.screen = screen;
        self
    }

    /// The most inference threads a classifier runs: each holds its own scratch buffers, so
    /// a typo of an extra digit should not cost gigabytes.
    pub const MAX_THREADS: usize = 64;

    /// Classifies on this many threads at once: at least one (0 counts as 1), at most
    /// [`ModelOptions::MAX_THREADS`] (more count as that).
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.clamp(1, Self::MAX_THREADS);
        self
    }

    /// Whether photos are screened.
    pub fn screens(&self) -> bool {
        self.screen
    }

    /// How many inference threads classify at once.
    pub fn thread_count(&self) -> usize {
        self.threads
    }
}

impl ModelClassifier {
    /// Starts loading and optimising the embedded models on a thread of its own and returns at
    /// once; photos classified before they are ready wait for them (about a second). Photos
    /// are screened. Build one and share it.
    pub fn new() -> Result<Self> {
        Self::with_options(ModelOptions::default())
    }

    /// As [`ModelClassifier::new`], with open_nsfw's screen (`true`) or without it (`false`:
    /// labels only, a faster classification, and [`Classifier::screens_content`] false).
    pub fn with_screen(screen: bool) -> Result<Self> {
        Self::with_options(ModelOptions::default().screen(screen))
    }

    /// As [`ModelClassifier::new`], as `options` say.
    pub fn with_options(options: ModelOptions) -> Result<Self> {
        // `ModelOptions::threads` keeps the count within 1..=MAX_THREADS.
        let ModelOptions { screen, threads } = options;
        let started = Instant::now();
        let classes: Arc<[&'static str]> = CLASSES.lines().map(str::trim).collect();
        if classes.len() != CLASS_COUNT || classes.iter().any(|c| c.is_empty()) {
            return Err(Error::backend(
                "model",
                format!("classes.txt has {} names, expected {CLASS_COUNT}", classes.len()),
            ));
        }
        // A bounded queue: under overload callers wait for room (backpressure) instead of
        // queueing photos without limit behind requests that may already have timed out.
        let (sender, receiver) = tokio::sync::mpsc::channel::<Job>(threads * 8);
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let loading = classes.clone();
        // The models load on a thread of their own, so that a server answers its first
        // requests at once (loading is most of a start-up otherwise, docs/performance.md):
        // photos sent before they are ready wait in the queue, and this thread then becomes
        // the first of the inference threads.
        std::thread::Builder::new()
            .name("thisthat-model-0".into())
            .spawn(move || {
                // A classifier dropped while loading (every sender gone) stops loading.
                let dropped = || receiver.lock().unwrap_or_else(|p| p.into_inner()).is_closed();
                let side = SIDE as usize;
                // The larger model first: the smaller one's load then peaks beside the larger
                // plan rather than the other way round (docs/performance.md).
                let loaded = (screen && !dropped())
                    .then(|| load(&mut *embedded(SCREEN_MODEL), &[1, side, side, 3]))
                    .transpose()
                    .and_then(|screen| {
                        if dropped() {
                            return Err(tract_onnx::prelude::TractError::msg("the classifier was dropped"));
                        }
                        Ok((load(&mut *embedded(MODEL), &[1, 3, side, side])?, screen))
                    });
                let (plan, screen) = match loaded {
                    _ if dropped() => return,
                    Ok(loaded) => loaded,
                    Err(e) => return refuse_all(&receiver, &e.to_string()),
                };
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "model: loaded");
                let worker = Worker {
                    plan,
                    screen,
                    classes: loading,
                };
                for i in 1..threads {
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
        Ok(ModelClassifier {
            classes,
            screen,
            threads,
            jobs: sender,
        })
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

    /// Labels and screens a photo's bytes (blocking: decoding and inference).
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
        // Both models read this one decoding, already turned upright.
        let rgb = image.into_rgb8();
        let started = Instant::now();
        let probabilities = self.probabilities(&rgb).map_err(|e| Error::backend("model", e))?;
        let labelled = Instant::now();
        let moderation = match &self.screen {
            Some(screen) => {
                let not_safe = not_safe_probability(screen, &rgb).map_err(|e| Error::backend("model", e))?;
                tracing::debug!(
                    not_safe,
                    elapsed_ms = labelled.elapsed().as_millis() as u64,
                    "model: screened"
                );
                Some(moderation(not_safe)?)
            }
            None => None,
        };
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "model: classified");
        Ok(Classification {
            labels: self.labels(&probabilities)?,
            moderation,
        })
    }

    /// The model's probability for each of the 1,000 classes.
    fn probabilities(&self, rgb: &RgbImage) -> TractResult<Vec<f32>> {
        let input = input_tensor(rgb)?;
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

/// Reads, types and optimises a model for one float32 input of this shape.
fn load(model: &mut dyn Read, shape: &[usize]) -> TractResult<Arc<TypedRunnableModel>> {
    tract_onnx::onnx()
        .model_for_read(model)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()
}

/// open_nsfw's probability that the photo is not safe for work.
fn not_safe_probability(screen: &Arc<TypedRunnableModel>, rgb: &RgbImage) -> TractResult<f32> {
    let outputs = screen.run(tvec!(screen_tensor(rgb)?.into()))?;
    let output = outputs
        .first()
        .ok_or_else(|| tract_onnx::prelude::TractError::msg("the screen returned no output"))?;
    // Softmax over [safe, not safe].
    match output.to_plain_array_view::<f32>()?.as_slice() {
        Some(&[_, not_safe]) if not_safe.is_finite() => Ok(not_safe.clamp(0.0, 1.0)),
        other => Err(tract_onnx::prelude::TractError::msg(format!(
            "the screen returned {other:?}, expected two probabilities"
        ))),
    }
}

/// The moderation labels for a "not safe" probability: `adult` with that confidence from
/// [`SCREEN_MIN_CONFIDENCE`] up, nothing below it.
fn moderation(not_safe: f32) -> Result<Vec<Label>> {
    if not_safe < SCREEN_MIN_CONFIDENCE {
        return Ok(Vec::new());
    }
    Ok(vec![Label::new(SCREEN_LABEL, not_safe)?])
}

/// open_nsfw's input for a photo, as `tools/open_nsfw/README.md` says (Yahoo's
/// `classify_nsfw.py` without its JPEG round trip): 8-bit RGB squashed to 256×256 with the
/// `Triangle` filter, the centre 224×224, each pixel in B, G, R order minus the mean
/// (104, 117, 123), laid out NHWC.
fn screen_tensor(rgb: &RgbImage) -> TractResult<Tensor> {
    let squashed = imageops::resize(rgb, SCREEN_RESIZE, SCREEN_RESIZE, FilterType::Triangle);
    let offset = (SCREEN_RESIZE - SIDE) / 2;
    let crop = imageops::crop_imm(&squashed, offset, offset, SIDE, SIDE).to_image();
    let side = SIDE as usize;
    let mut data = Vec::with_capacity(side * side * 3);
    for pixel in crop.pixels() {
        let [r, g, b] = pixel.0;
        for (value, mean) in [b, g, r].into_iter().zip(SCREEN_MEAN_BGR) {
            data.push(f32::from(value) - mean);
        }
    }
    Tensor::from_shape(&[1, side, side, 3], &data)
}

/// The model's input for a photo, exactly as `tools/efficientnet/README.md` says: 8-bit RGB
/// (alpha dropped), shorter side resized to 256 with the `Triangle` filter, centre 224×224
/// crop, each channel as `(v - 127) / 128`, laid out NCHW in R, G, B order.
///
/// The photo arrives turned upright by its EXIF orientation (the README's reference photos
/// have none), and a photo longer than 4:1 is first cut to 4:1 around its centre.
fn input_tensor(rgb: &RgbImage) -> TractResult<Tensor> {
    let cut = within_aspect(rgb);
    let rgb = &*cut;
    let (width, height) = rgb.dimensions();
    let short = f64::from(width.min(height).max(1));
    let new_width = (f64::from(width) * RESIZE_SHORT_SIDE / short).round() as u32;
    let new_height = (f64::from(height) * RESIZE_SHORT_SIDE / short).round() as u32;
    let resized = imageops::resize(rgb, new_width, new_height, FilterType::Triangle);
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

/// The photo cut to at most [`MAX_ASPECT`]:1 around its centre. (The screen, which squashes
/// the whole photo to a fixed size, sees all of it.)
fn within_aspect(rgb: &RgbImage) -> SubImage<&RgbImage> {
    let (width, height) = rgb.dimensions();
    let longest = width.min(height).max(1).saturating_mul(MAX_ASPECT);
    let (w, h) = (width.min(longest), height.min(longest));
    imageops::crop_imm(rgb, (width - w) / 2, (height - h) / 2, w, h)
}

#[async_trait]
impl Classifier for ModelClassifier {
    /// Exposes the adapter itself (`native::<ModelClassifier>()`), for what the port does not offer.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }

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
        self.screen
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
        let tensor = input_tensor(&image).expect("tensor");
        assert_eq!(tensor.shape(), &[1, 3, 224, 224]);
        let view = tensor.to_plain_array_view::<f32>().expect("f32");
        for (channel, expected) in [(0, 1.0), (1, 0.0), (2, -127.0 / 128.0)] {
            let plane = view.index_axis(tract_onnx::prelude::tract_ndarray::Axis(1), channel);
            assert!(plane.iter().all(|v| (v - expected).abs() < 1e-6), "channel {channel}");
        }
    }

    /// open_nsfw loaded once for this binary's tests (loading it in a debug build takes a
    /// while).
    fn screen() -> &'static Arc<TypedRunnableModel> {
        static SCREEN: std::sync::OnceLock<Arc<TypedRunnableModel>> = std::sync::OnceLock::new();
        SCREEN.get_or_init(|| {
            load(
                &mut std::io::Cursor::new(SCREEN_MODEL),
                &[1, SIDE as usize, SIDE as usize, 3],
            )
            .expect("open_nsfw loads")
        })
    }

    /// tract's scores match onnxruntime's (`tools/open_nsfw/reference.py`, which applies the
    /// preprocessing of `tools/open_nsfw/README.md` independently, in numpy): the sample
    /// photos and the synthetic positive case, four inferences in all.
    #[test]
    fn the_screen_scores_as_onnxruntime_does() {
        let expected = include_str!("../tests/open_nsfw_scores.txt");
        let photos = [
            ("chelsea.png", thisthat_testkit::photos::cat_png()),
            ("coffee.png", thisthat_testkit::photos::coffee_png()),
            ("rocket.jpg", thisthat_testkit::photos::rocket_jpeg()),
            ("skin_blobs", thisthat_testkit::photos::skin_blobs_png()),
        ];
        let mut checked = 0;
        for line in expected.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (name, score) = line.split_once(' ').expect("`name score` lines");
            let want: f32 = score.trim().parse().expect("a score");
            let (_, bytes) = photos.iter().find(|(n, _)| *n == name).expect("a known photo");
            let rgb = decode(bytes).expect("decodes").into_rgb8();
            let got = not_safe_probability(screen(), &rgb).expect("screens");
            // The PNGs decode to the same pixels as Pillow's; JPEG decoders differ by a level
            // here and there, which moves rocket.jpg's score by about 1e-4.
            assert!((got - want).abs() <= 2e-3, "{name}: tract {got}, onnxruntime {want}");
            checked += 1;
        }
        assert_eq!(checked, photos.len());
    }

    #[test]
    fn the_screen_reports_adult_from_the_safe_bound_up() {
        assert_eq!(moderation(0.0).expect("labels"), Vec::new());
        assert_eq!(moderation(0.199).expect("labels"), Vec::new());
        let flagged = moderation(0.93).expect("labels");
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].name.as_str(), "adult");
        assert_eq!(flagged[0].confidence, 0.93);
        assert_eq!(moderation(0.2).expect("labels")[0].confidence, 0.2);
    }

    #[test]
    fn the_screen_input_is_the_squashed_centre_in_bgr_nhwc() {
        // 512×128 squashes to 256×256: a red photo with a blue column at x = 0..8 (x = 0..4
        // after squashing, outside the centre crop, which starts at 16).
        let mut image = RgbImage::from_pixel(512, 128, image::Rgb([200, 100, 50]));
        for y in 0..128 {
            for x in 0..8 {
                image.put_pixel(x, y, image::Rgb([0, 0, 255]));
            }
        }
        let tensor = screen_tensor(&image).expect("tensor");
        assert_eq!(tensor.shape(), &[1, 224, 224, 3]);
        let view = tensor.to_plain_array_view::<f32>().expect("f32");
        for (channel, expected) in [(0, 50.0 - 104.0), (1, 100.0 - 117.0), (2, 200.0 - 123.0)] {
            let plane = view.index_axis(tract_onnx::prelude::tract_ndarray::Axis(3), channel);
            assert!(plane.iter().all(|v| (v - expected).abs() < 1e-6), "channel {channel}");
        }
        // A whole panorama reaches the screen (squashed), however long.
        let tensor = screen_tensor(&RgbImage::new(10_000, 3)).expect("panorama");
        assert_eq!(tensor.shape(), &[1, 224, 224, 3]);
    }

    #[test]
    fn panoramas_are_cut_before_resizing() {
        let panorama = RgbImage::new(10_000, 10);
        assert_eq!(within_aspect(&panorama).dimensions(), (40, 10));
        let tower = RgbImage::new(3, 40);
        assert_eq!(within_aspect(&tower).dimensions(), (3, 12));
        let photo = RgbImage::new(400, 300);
        assert_eq!(within_aspect(&photo).dimensions(), (400, 300));
        let tensor = input_tensor(&RgbImage::new(1, 1)).expect("1×1");
        assert_eq!(tensor.shape(), &[1, 3, 224, 224]);
    }
}
