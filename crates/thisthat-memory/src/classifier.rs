use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Mutex,
};

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    Classification, Label, Result,
    media::sniff,
    ports::{Classifier, PhotoInput},
};

/// A classifier for tests: scripted answers per photo, and for any other photo only what can
/// honestly be read from its header (its shape), never invented object names.
///
/// ```
/// use thisthat_memory::{MemoryClassifier, samples as photos};
/// use thisthat_core::{Classification, Label};
/// let classifier = MemoryClassifier::new();
/// classifier.script(&photos::cat_png(), Classification {
///     labels: vec![Label::new("cat", 0.97)?],
///     moderation: Some(vec![]),
/// });
/// # Ok::<(), thisthat_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryClassifier {
    scripted: Mutex<HashMap<u64, Classification>>,
}

fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl MemoryClassifier {
    /// A classifier with nothing scripted.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, classifying exactly these bytes answers `classification`.
    pub fn script(&self, photo: &Bytes, classification: Classification) {
        self.scripted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fingerprint(photo), classification);
    }

    /// From now on, these bytes are flagged unsafe with `label` at `confidence`.
    pub fn flag_unsafe(&self, photo: &Bytes, label: &str, confidence: f32) -> Result<()> {
        self.script(
            photo,
            Classification {
                labels: vec![],
                moderation: Some(vec![Label::new(label, confidence)?]),
            },
        );
        Ok(())
    }
}

#[async_trait]
impl Classifier for MemoryClassifier {
    async fn classify(&self, photo: &PhotoInput) -> Result<Classification> {
        if let Some(c) = self
            .scripted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fingerprint(&photo.bytes))
        {
            return Ok(c.clone());
        }
        let info = sniff(&photo.bytes)?;
        let shape = match info.width.cmp(&info.height) {
            std::cmp::Ordering::Greater => "landscape",
            std::cmp::Ordering::Less => "portrait",
            std::cmp::Ordering::Equal => "square",
        };
        Ok(Classification {
            labels: vec![Label::new(shape, 1.0)?],
            moderation: Some(vec![]),
        })
    }

    fn screens_content(&self) -> bool {
        true
    }

    /// Exposes the adapter itself, for its inspection methods.
    fn as_native(&self, ty: std::any::TypeId) -> Option<&dyn std::any::Any> {
        thisthat_core::native::offer(ty, &[self])
    }
}
