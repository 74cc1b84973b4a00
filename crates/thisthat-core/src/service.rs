//! The service: every use case of "This, this or that", written only against the four ports.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use futures::future::{join_all, try_join_all};
use tracing::Instrument as _;

use crate::{
    Backend, BlobKey, Category, Classification, Clock, Competition, CompetitionId, Device, Endpoint, Entity, Error,
    FeedPage, FeedQuery, Label, MediaType, Notification, Photo, PhotoVariant, Result, Rules, Status, SystemClock,
    Tally, UserId, Vote, VoteReceipt,
    decode::{self, CheckedPhoto, DecodeLimits},
    media::{self, ImageInfo},
    ports::{
        Delivery, GetOptions, NotificationClaim, PhotoInput, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrl,
        SignedUrlRequest,
    },
};

/// A competition to create from photo bytes that pass through the API.
#[derive(Debug, Clone, Default)]
pub struct NewCompetition {
    /// Optional title.
    pub title: Option<String>,
    /// The photos' bytes, in the order voters will see them. Their format is sniffed.
    pub photos: Vec<Bytes>,
}

/// A photo the client is about to upload straight to storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeclaredPhoto {
    /// The format the client says it is; checked against the bytes when the upload finishes.
    pub media_type: MediaType,
}

/// The first step of the signed-upload flow.
#[derive(Debug, Clone, Default)]
pub struct BeginUpload {
    /// Optional title.
    pub title: Option<String>,
    /// One entry per photo.
    pub photos: Vec<DeclaredPhoto>,
}

/// What [`Thisthat::begin_upload`] hands the client: where to upload each photo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "Where to upload each photo of a new draft.")
)]
pub struct UploadTicket {
    /// The draft's id: finish the upload with it (`Thisthat::finish_upload`, over HTTP
    /// `POST /v1/uploads/{id}/finish`).
    pub competition: CompetitionId,
    /// One signed upload URL per photo, in order.
    pub uploads: Vec<SignedUrl>,
}

/// What one [`Thisthat::deliver_pending`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Notifications delivered to every device of their owner and marked done.
    pub delivered: usize,
    /// Notifications left pending because a device could not be reached; a later run retries.
    pub failed: usize,
    /// Devices removed because their provider said they are gone.
    pub devices_removed: usize,
}

/// What one maintenance pass ([`Thisthat::maintain`]) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// The delivery of pending notifications.
    pub delivery: DeliveryReport,
    /// What the sweep of stored blobs removed.
    pub sweep: SweepReport,
}

/// What one sweep of stored blobs ([`Thisthat::sweep`]) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blobs looked at.
    pub blobs_seen: usize,
    /// Blobs removed because no competition refers to them (older than
    /// [`Rules::orphan_grace`]).
    pub orphans_removed: usize,
    /// Drafts of the signed-upload flow removed, with their uploads, because their upload URLs
    /// expired long ago ([`Rules::upload_url_ttl`] plus [`Rules::orphan_grace`]).
    pub drafts_expired: usize,
}

/// What the sweep does with a competition's blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    Remove,
}

/// When the owner's notification is sent after the closing vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// The closing vote's call delivers it before returning (failures are logged and left
    /// pending, never returned to the voter). Right for serverless functions, which may be
    /// frozen as soon as they answer.
    #[default]
    Inline,
    /// Only [`Thisthat::deliver_pending`] delivers, from a scheduled job or worker.
    Deferred,
}

/// How many notifications one delivery round claims at a time.
const DELIVERY_BATCH: usize = 10;
/// Drafts listed and deleted at a time by [`Thisthat::sweep`].
const DRAFT_BATCH: usize = 100;

/// Photos decoded at once by default: the machine's cores. Decoding is CPU-bound, so more at
/// once finishes no sooner, and each decode may hold up to [`Rules::max_decode_bytes`]: the
/// bound is what keeps a burst of uploads from multiplying peak memory (and from filling
/// tokio's blocking pool, which defaults to 512 threads).
fn default_decode_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A photo that passed [`decode::check_and_render`], with its original bytes and where each
/// part goes.
struct Accepted {
    original: Bytes,
    checked: CheckedPhoto,
    key: BlobKey,
    display_key: BlobKey,
}

/// The "This, this or that" service.
///
/// ```
/// # async fn demo(backend: thisthat_core::Backend) -> thisthat_core::Result<()> {
/// use thisthat_core::{Thisthat, UserId, NewCompetition};
/// let service = Thisthat::builder(backend).build()?;
/// let owner = UserId::new("alice")?;
/// # let (a, b, c) = (bytes::Bytes::new(), bytes::Bytes::new(), bytes::Bytes::new());
/// let competition = service
///     .create_competition(&owner, NewCompetition { title: Some("Which jacket?".into()), photos: vec![a, b, c] })
///     .await?;
/// let receipt = service.vote(&UserId::new("bob")?, &competition.id, 1).await?;
/// assert_eq!(receipt.tally.total(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Thisthat {
    backend: Backend,
    rules: Rules,
    clock: Arc<dyn Clock>,
    delivery: DeliveryMode,
    decodes: Arc<tokio::sync::Semaphore>,
}

/// Builds a [`Thisthat`] service from a [`Backend`].
#[derive(Debug)]
pub struct ThisthatBuilder {
    backend: Backend,
    rules: Rules,
    clock: Arc<dyn Clock>,
    delivery: DeliveryMode,
    decode_concurrency: usize,
}

impl ThisthatBuilder {
    /// Replaces the default [`Rules`].
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Replaces the system clock (tests move time with a manual clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// When the closing vote's notification is sent. Default [`DeliveryMode::Inline`].
    pub fn delivery(mut self, delivery: DeliveryMode) -> Self {
        self.delivery = delivery;
        self
    }

    /// How many photos this service decodes at once (on tokio's blocking pool). Default: the
    /// machine's cores. Peak decoding memory is at most this times
    /// [`Rules::max_decode_bytes`].
    pub fn decode_concurrency(mut self, photos: usize) -> Self {
        self.decode_concurrency = photos;
        self
    }

    /// Builds the service, checking the rules.
    pub fn build(self) -> Result<Thisthat> {
        self.rules.validate()?;
        if !(1..=1024).contains(&self.decode_concurrency) {
            return Err(Error::config("decode_concurrency must be 1 to 1024"));
        }
        Ok(Thisthat {
            backend: self.backend,
            rules: self.rules,
            clock: self.clock,
            delivery: self.delivery,
            decodes: Arc::new(tokio::sync::Semaphore::new(self.decode_concurrency)),
        })
    }
}

impl Thisthat {
    /// Starts building a service on `backend` with the default rules.
    pub fn builder(backend: Backend) -> ThisthatBuilder {
        ThisthatBuilder {
            backend,
            rules: Rules::default(),
            clock: Arc::new(SystemClock),
            delivery: DeliveryMode::default(),
            decode_concurrency: default_decode_concurrency(),
        }
    }

    /// The adapters this service runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The rules this service enforces.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Creates a competition from photos whose bytes pass through the API.
    ///
    /// Checks everything before storing anything: the photo count, the title, each photo's
    /// size and real format, then decodes every photo whole under the rules' limits
    /// ([`decode::check_and_render`]) and renders its display variant. Then stores the
    /// variants (and, with [`Rules::keep_originals`], the originals), classifies and screens
    /// the photos, and records the competition. If any step fails (an unsafe photo, a provider
    /// error), what was stored is deleted again and the error returned.
    pub async fn create_competition(&self, owner: &UserId, new: NewCompetition) -> Result<Competition> {
        let span =
            tracing::info_span!("thisthat.create_competition", owner = %owner, competition = tracing::field::Empty);
        async {
            let title = self.check_title(new.title)?;
            self.check_photo_count(new.photos.len())?;
            for (i, bytes) in new.photos.iter().enumerate() {
                self.check_photo(i, bytes)?;
            }
            let checked = self.decode_all(&new.photos).await?;
            let id = CompetitionId::new();
            tracing::Span::current().record("competition", tracing::field::display(id));
            let accepted: Vec<Accepted> = new
                .photos
                .into_iter()
                .zip(checked)
                .enumerate()
                .map(|(i, (original, checked))| Accepted {
                    key: BlobKey::photo(&id, i, checked.info.media_type),
                    display_key: BlobKey::display(&id, i, checked.display.media_type),
                    original,
                    checked,
                })
                .collect();
            let keys = self.stored_keys(&accepted);

            let mut puts = Vec::with_capacity(keys.len());
            for a in &accepted {
                let display = PutOptions::create(a.checked.display.media_type.mime());
                puts.push((&a.display_key, a.checked.display.bytes.clone(), display));
                if self.rules.keep_originals {
                    puts.push((
                        &a.key,
                        a.original.clone(),
                        PutOptions::create(a.checked.info.media_type.mime()),
                    ));
                }
            }
            let stored = join_all(
                puts.iter()
                    .map(|(key, bytes, options)| self.put_new(key, bytes, options)),
            )
            .await;
            if let Some(e) = first_error(stored) {
                self.discard(&keys).await;
                return Err(e);
            }

            let mut insert_in_doubt = false;
            let result = async {
                let photos = self.classify(&accepted, self.rules.keep_originals).await?;
                let competition = self.new_competition(id, owner.clone(), title, Status::Open, photos);
                let insert = self.backend.database.insert_competition(&competition).await;
                match self.landed(insert, &competition).await {
                    Ok(()) => Ok(competition),
                    Err(Unlanded { error, in_doubt }) => {
                        insert_in_doubt = in_doubt;
                        Err(error)
                    }
                }
            }
            .await;
            // Photos of an insert that may have landed stay: the sweep removes them after the
            // orphan grace if it did not, and discarding them could leave a stored competition
            // without its photos.
            if result.is_err() && !insert_in_doubt {
                self.discard(&keys).await;
            }
            result
        }
        .instrument(span)
        .await
    }

    /// First step of the signed-upload flow: reserves a competition (as a draft) and returns
    /// one signed upload URL per photo, each bound to its declared content type, the size limit
    /// and [`Rules::upload_url_ttl`]. The client uploads straight to storage, then calls
    /// [`Thisthat::finish_upload`].
    pub async fn begin_upload(&self, owner: &UserId, begin: BeginUpload) -> Result<UploadTicket> {
        let span = tracing::info_span!("thisthat.begin_upload", owner = %owner);
        async {
            let title = self.check_title(begin.title)?;
            self.check_photo_count(begin.photos.len())?;
            let id = CompetitionId::new();
            let uploads = try_join_all(begin.photos.iter().enumerate().map(|(i, declared)| {
                let key = BlobKey::photo(&id, i, declared.media_type);
                let request = SignedUrlRequest {
                    method: SignedMethod::Put {
                        content_type: declared.media_type.mime().to_string(),
                        max_size: self.rules.max_photo_bytes,
                    },
                    expires_in: self.rules.upload_url_ttl,
                    served_as: None,
                };
                async move { self.backend.blobs.signed_url(&key, &request).await }
            }))
            .await?;
            // The draft remembers the declared formats through the keys its photos will have.
            let placeholders = begin
                .photos
                .iter()
                .enumerate()
                .map(|(i, d)| Photo {
                    key: BlobKey::photo(&id, i, d.media_type),
                    media_type: d.media_type,
                    size: 0,
                    width: 0,
                    height: 0,
                    labels: vec![],
                    display: None,
                    original_kept: true,
                })
                .collect();
            let draft = self.new_competition(id, owner.clone(), title, Status::Draft, placeholders);
            let insert = self.backend.database.insert_competition(&draft).await;
            self.landed(insert, &draft).await.map_err(|u| u.error)?;
            Ok(UploadTicket {
                competition: id,
                uploads,
            })
        }
        .instrument(span)
        .await
    }

    /// Second step of the signed-upload flow: checks what was uploaded (size, real format,
    /// declared format, then the whole image decoded under the rules' limits), stores the
    /// display variants, classifies and screens the photos, and opens the competition. With
    /// [`Rules::keep_originals`] off, the uploads are deleted once it is open.
    ///
    /// A photo not uploaded yet is [`Error::InvalidInput`] and leaves the draft as it is, so the
    /// client can upload it and call again. A photo that is too large, of the wrong format,
    /// damaged, or unsafe rejects the competition: its uploads, variants and draft are deleted.
    pub async fn finish_upload(&self, owner: &UserId, id: &CompetitionId) -> Result<Competition> {
        let span = tracing::info_span!("thisthat.finish_upload", owner = %owner, competition = %id);
        async {
            let draft = self.backend.database.competition(id).await?;
            if draft.status != Status::Draft || &draft.owner != owner {
                // Another user's draft is as good as missing to this caller; an open one is done.
                return Err(match draft.status {
                    Status::Draft => Error::not_found(Entity::Competition, id),
                    _ => Error::conflict("the competition is already finished"),
                });
            }
            let uploads: Vec<BlobKey> = draft.photos.iter().map(|p| p.key.clone()).collect();
            let heads = join_all(uploads.iter().map(|k| self.backend.blobs.head(k))).await;
            let mut sizes = Vec::with_capacity(uploads.len());
            for (i, head) in heads.into_iter().enumerate() {
                match head {
                    Ok(meta) => sizes.push(meta.size),
                    Err(Error::NotFound { .. }) => {
                        return Err(Error::invalid(
                            "photos",
                            format!("photo {i} has not been uploaded yet; upload it, then finish again"),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            // Every key a rejection deletes: the uploads and the variants made from them.
            let mut keys = uploads.clone();
            keys.extend(
                draft
                    .photos
                    .iter()
                    .enumerate()
                    .map(|(i, _)| BlobKey::display(id, i, decode::DISPLAY_MEDIA_TYPE)),
            );
            let result = async {
                for (i, size) in sizes.iter().enumerate() {
                    self.check_size(i, *size)?;
                }
                let whole = GetOptions::default();
                let blobs = try_join_all(uploads.iter().map(|k| self.backend.blobs.get(k, &whole))).await?;
                let originals: Vec<Bytes> = blobs.into_iter().map(|b| b.body).collect();
                for (i, (bytes, declared)) in originals.iter().zip(&draft.photos).enumerate() {
                    let info = self.check_photo(i, bytes)?;
                    if info.media_type != declared.media_type {
                        return Err(Error::UnsupportedMediaType {
                            detected: format!(
                                "photo {i} is {} but was declared as {}",
                                info.media_type, declared.media_type
                            ),
                        });
                    }
                }
                let checked = self.decode_all(&originals).await?;
                let accepted: Vec<Accepted> = originals
                    .into_iter()
                    .zip(checked)
                    .zip(&draft.photos)
                    .enumerate()
                    .map(|(i, ((original, checked), declared))| Accepted {
                        key: declared.key.clone(),
                        display_key: BlobKey::display(id, i, checked.display.media_type),
                        original,
                        checked,
                    })
                    .collect();
                // Overwrite: a finish retried after a provider failure renders the same variants
                // from the same create-only uploads again.
                let overwrite = |a: &Accepted| PutOptions {
                    content_type: Some(a.checked.display.media_type.mime().to_string()),
                    mode: PutMode::Overwrite,
                };
                try_join_all(accepted.iter().map(|a| {
                    let options = overwrite(a);
                    async move {
                        self.backend
                            .blobs
                            .put(&a.display_key, a.checked.display.bytes.clone(), &options)
                            .await
                    }
                }))
                .await?;
                // The uploads exist until the competition is open, so the classifier may read them.
                let photos = self.classify(&accepted, true).await?;
                let competition = Competition {
                    status: Status::Open,
                    photos,
                    ..draft.clone()
                };
                let categories = categories(&competition.photos, self.rules.category_confidence);
                let competition = Competition {
                    categories,
                    ..competition
                };
                let publish = self.backend.database.publish_competition(&competition).await;
                self.landed(publish, &competition).await.map_err(|u| u.error)?;
                Ok(competition)
            }
            .await;
            // A rejected upload is final: keep nothing of it. Other failures (a provider
            // outage) leave the draft for the client to finish again.
            match &result {
                Err(Error::TooLarge { .. } | Error::UnsupportedMediaType { .. } | Error::UnsafeContent { .. }) => {
                    self.discard(&keys).await;
                    if let Err(e) = self.backend.database.delete_draft(id).await {
                        tracing::warn!(error = %e, "could not delete the rejected draft");
                    }
                }
                Ok(_) if !self.rules.keep_originals => self.discard(&uploads).await,
                _ => {}
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Reads a competition. Drafts are not visible.
    pub async fn competition(&self, id: &CompetitionId) -> Result<Competition> {
        let competition = self.backend.database.competition(id).await?;
        if competition.status == Status::Draft {
            return Err(Error::not_found(Entity::Competition, id));
        }
        Ok(competition)
    }

    /// Casts `voter`'s vote for photo `choice` (zero-based) of a competition, in one atomic
    /// step, and returns the tally so far. The vote that reaches the threshold closes the
    /// competition and, in [`DeliveryMode::Inline`], notifies the owner before returning.
    pub async fn vote(&self, voter: &UserId, competition: &CompetitionId, choice: usize) -> Result<VoteReceipt> {
        let span = tracing::info_span!("thisthat.vote", voter = %voter, competition = %competition, choice);
        async {
            let vote = Vote {
                competition: *competition,
                voter: voter.clone(),
                choice,
            };
            let receipt = self.backend.database.cast_vote(&vote).await?;
            if let Some(outcome) = &receipt.closed {
                tracing::info!(winners = ?outcome.winners, "competition closed");
                if self.delivery == DeliveryMode::Inline {
                    // The vote counted whatever happens here: a failed delivery stays pending.
                    if let Err(e) = self.deliver(Some(*competition), 1).await {
                        tracing::warn!(error = %e, "result notification left pending");
                    }
                }
            }
            Ok(receipt)
        }
        .instrument(span)
        .await
    }

    /// One page of open competitions, newest first.
    pub async fn feed(&self, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        self.backend
            .database
            .feed(query)
            .instrument(tracing::info_span!("thisthat.feed"))
            .await
    }

    /// Signed, time-limited download URLs for a competition's photos, in order: what voters
    /// are shown. Each is the photo's display variant (a competition stored before variants
    /// existed is served its originals). Storage is never public; these are how clients show
    /// photos.
    pub async fn photo_urls(&self, id: &CompetitionId) -> Result<Vec<SignedUrl>> {
        let competition = self.competition(id).await?;
        // The variant's own format: a PNG original may be shown as a JPEG variant.
        let shown = competition.photos.iter().map(|p| match &p.display {
            Some(variant) => (&variant.key, variant.media_type),
            None => (&p.key, p.media_type),
        });
        self.download_urls(shown).await
    }

    /// Signed, time-limited download URLs for the originals of `owner`'s competition, in order,
    /// with their metadata as uploaded. Only the owner gets them: anyone else is told the
    /// competition does not exist, as with a draft. A competition created with
    /// [`Rules::keep_originals`] off has none ([`Error::NotFound`] for the blob).
    pub async fn original_urls(&self, owner: &UserId, id: &CompetitionId) -> Result<Vec<SignedUrl>> {
        let competition = self.competition(id).await?;
        if &competition.owner != owner {
            return Err(Error::not_found(Entity::Competition, id));
        }
        if let Some(photo) = competition.photos.iter().find(|p| !p.original_kept) {
            return Err(Error::not_found(
                Entity::Blob,
                format!("{} (originals are not kept: Rules::keep_originals is off)", photo.key),
            ));
        }
        self.download_urls(competition.photos.iter().map(|p| (&p.key, p.media_type)))
            .await
    }

    /// One signed GET per photo, each served as [`ServedAs::photo`]: inline, under its image
    /// type and its key's file name, even where the store would otherwise answer what the
    /// upload declared.
    async fn download_urls(&self, photos: impl Iterator<Item = (&BlobKey, MediaType)>) -> Result<Vec<SignedUrl>> {
        try_join_all(photos.map(|(key, media_type)| {
            let request =
                SignedUrlRequest::get(self.rules.download_url_ttl).served_as(ServedAs::photo(key, media_type));
            async move { self.backend.blobs.signed_url(key, &request).await }
        }))
        .await
    }

    /// Registers a device to receive the user's notifications.
    pub async fn register_device(&self, device: Device) -> Result<Endpoint> {
        device.validate()?;
        let endpoint = self.backend.notifier.register(&device).await?;
        self.backend.database.save_endpoint(&endpoint).await?;
        Ok(endpoint)
    }

    /// Forgets one of the user's devices.
    pub async fn unregister_device(&self, user: &UserId, token: &str) -> Result<()> {
        crate::model::check_token(token)?;
        let endpoints = self.backend.database.endpoints(user).await?;
        if let Some(endpoint) = endpoints.iter().find(|e| e.device.token == token) {
            self.backend.notifier.unregister(endpoint).await?;
        }
        self.backend.database.delete_endpoint(user, token).await
    }

    /// Delivers result notifications left pending (by [`DeliveryMode::Deferred`], a failed
    /// delivery, or a process that died after the closing vote). Run it on a schedule; it is
    /// safe to run from several workers at once.
    pub async fn deliver_pending(&self) -> Result<DeliveryReport> {
        async {
            let mut total = DeliveryReport::default();
            // Small claims, so that a claim's lease never runs out while its batch is still being
            // sent (which would let another worker send the tail again).
            for _ in 0..1000 {
                let report = self.deliver(None, DELIVERY_BATCH).await?;
                total.delivered += report.delivered;
                total.failed += report.failed;
                total.devices_removed += report.devices_removed;
                if report.delivered + report.failed < DELIVERY_BATCH {
                    break;
                }
            }
            Ok(total)
        }
        .instrument(tracing::info_span!("thisthat.deliver_pending"))
        .await
    }

    /// One maintenance pass, for a schedule (the `thisthat serve` background task, a Lambda's
    /// EventBridge rule, cron): delivers pending notifications ([`Thisthat::deliver_pending`])
    /// and sweeps stored blobs ([`Thisthat::sweep`]). Safe to run from several workers at
    /// once, and after a crash at any point.
    pub async fn maintain(&self) -> Result<MaintenanceReport> {
        async {
            let delivery = self.deliver_pending().await?;
            let sweep = self.sweep().await?;
            tracing::info!(
                delivered = delivery.delivered,
                failed = delivery.failed,
                devices_removed = delivery.devices_removed,
                blobs_seen = sweep.blobs_seen,
                orphans_removed = sweep.orphans_removed,
                drafts_expired = sweep.drafts_expired,
                "maintenance pass done"
            );
            Ok(MaintenanceReport { delivery, sweep })
        }
        .instrument(tracing::info_span!("thisthat.maintain"))
        .await
    }

    /// Removes what nothing will ever use. First the drafts of the signed-upload flow whose
    /// upload URLs expired more than [`Rules::orphan_grace`] ago, listed by the database
    /// (also drafts to which nothing was uploaded). Then it walks the stored blobs: those of a
    /// competition that does not exist (a creation that failed and whose clean-up failed
    /// too, or an expired draft's uploads), once older than the grace, are deleted. A blob's
    /// age is its competition's id (ids are time-ordered), so a creation still under way is
    /// never touched.
    pub async fn sweep(&self) -> Result<SweepReport> {
        async {
            let now = self.clock.now();
            let mut report = SweepReport::default();
            self.expire_drafts(now, &mut report).await?;
            let mut verdicts: HashMap<CompetitionId, Verdict> = HashMap::new();
            let mut continuation = None;
            loop {
                let page = self
                    .backend
                    .blobs
                    .list(crate::key::PHOTO_PREFIX, continuation.take())
                    .await?;
                for blob in page.blobs {
                    report.blobs_seen += 1;
                    let Some(id) = blob.key.competition() else { continue };
                    let age = now
                        .duration_since(std::time::UNIX_EPOCH + std::time::Duration::from_millis(id.timestamp_ms()))
                        .unwrap_or_default();
                    if age <= self.rules.orphan_grace {
                        continue;
                    }
                    let verdict = match verdicts.get(&id) {
                        Some(v) => *v,
                        None => {
                            let v = self.verdict(&id).await?;
                            verdicts.insert(id, v);
                            v
                        }
                    };
                    if verdict == Verdict::Remove {
                        self.backend.blobs.delete(&blob.key).await?;
                        report.orphans_removed += 1;
                    }
                }
                match page.next {
                    Some(next) => continuation = Some(next),
                    None => break,
                }
            }
            Ok(report)
        }
        .instrument(tracing::info_span!("thisthat.sweep"))
        .await
    }

    /// The outcome of writing `written` (an insert or a publish): an unclear failure, or a
    /// `Conflict` met by a retry of a write that did land (its reply was lost), counts as
    /// written when the stored competition is exactly `written`. Otherwise a lost reply would
    /// fail a creation that succeeded, and the photos it stored would be discarded under it.
    /// When the read-back itself fails the outcome stays unknown: the caller gets the read's
    /// `Unavailable` (worth retrying), never a `Conflict` it would take as final.
    async fn landed(&self, outcome: Result<()>, written: &Competition) -> std::result::Result<(), Unlanded> {
        match outcome {
            Err(e @ (Error::Conflict { .. } | Error::Unavailable { .. })) => {
                match self.backend.database.competition(&written.id).await {
                    Ok(stored) if stored == *written => Ok(()),
                    Err(unclear @ (Error::Unavailable { .. } | Error::Busy { .. })) => Err(Unlanded {
                        error: unclear,
                        in_doubt: true,
                    }),
                    _ => Err(Unlanded {
                        error: e,
                        in_doubt: false,
                    }),
                }
            }
            other => other.map_err(|error| Unlanded { error, in_doubt: false }),
        }
    }

    /// Stores a photo under a key holding an id this creation just minted, create-only. Such a
    /// put answered `Conflict` met its own earlier attempt, whose reply was lost and which a
    /// retry layer sent again (nobody else knows the id yet): it counts as stored when the
    /// stored bytes are these. Without this, a lost reply would fail the whole creation.
    async fn put_new(&self, key: &BlobKey, bytes: &Bytes, options: &PutOptions) -> Result<()> {
        match self.backend.blobs.put(key, bytes.clone(), options).await {
            Ok(_) => Ok(()),
            Err(conflict @ Error::Conflict { .. }) => match self.backend.blobs.get(key, &GetOptions::default()).await {
                Ok(stored) if stored.body == *bytes => Ok(()),
                // Whose bytes they are is unknown: worth retrying, not a final `Conflict`.
                Err(unclear @ (Error::Unavailable { .. } | Error::Busy { .. })) => Err(unclear),
                _ => Err(conflict),
            },
            Err(e) => Err(e),
        }
    }

    /// Deletes the drafts whose upload URLs expired more than the grace before `now`, in
    /// batches. A draft finished meanwhile is a competition now, and stays.
    async fn expire_drafts(&self, now: std::time::SystemTime, report: &mut SweepReport) -> Result<()> {
        let cutoff = now
            .checked_sub(self.rules.upload_url_ttl + self.rules.orphan_grace)
            .unwrap_or(std::time::UNIX_EPOCH);
        // Bounded like `deliver_pending`: a million drafts per pass at most.
        for _ in 0..1000 {
            let expired = self.backend.database.expired_drafts(cutoff, DRAFT_BATCH).await?;
            for id in &expired {
                match self.backend.database.delete_draft(id).await {
                    Ok(()) => report.drafts_expired += 1,
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if expired.len() < DRAFT_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Whether the blobs of competition `id` stay: they go when it does not exist.
    async fn verdict(&self, id: &CompetitionId) -> Result<Verdict> {
        match self.backend.database.competition(id).await {
            Err(Error::NotFound { .. }) => Ok(Verdict::Remove),
            Ok(_) => Ok(Verdict::Keep),
            Err(e) => Err(e),
        }
    }

    async fn deliver(&self, competition: Option<CompetitionId>, limit: usize) -> Result<DeliveryReport> {
        let claim = NotificationClaim {
            competition,
            now: self.clock.now(),
            lease: self.rules.notification_lease,
            limit,
        };
        let claimed = self.backend.database.claim_notifications(&claim).await?;
        let mut report = DeliveryReport::default();
        for notification in claimed {
            match self.deliver_one(&notification, &mut report).await {
                Ok(()) => report.delivered += 1,
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(competition = %notification.competition, error = %e, "notification left pending for a later retry");
                }
            }
        }
        Ok(report)
    }

    async fn deliver_one(&self, notification: &Notification, report: &mut DeliveryReport) -> Result<()> {
        let message = notification.message();
        let endpoints: Vec<Endpoint> = self
            .backend
            .database
            .endpoints(&notification.owner)
            .await?
            .into_iter()
            // A retry sends only to the devices an earlier delivery did not reach.
            .filter(|e| !notification.delivered_to.contains(&e.delivery_key()))
            .collect();
        let sends = join_all(endpoints.iter().map(|e| self.backend.notifier.send(e, &message))).await;
        let mut failure = None;
        let mut reached = Vec::new();
        for (endpoint, sent) in endpoints.iter().zip(sends) {
            match sent {
                Ok(Delivery::Accepted) => reached.push(endpoint.delivery_key()),
                Ok(Delivery::Gone) => {
                    tracing::info!(user = %endpoint.device.user, platform = endpoint.device.platform.as_str(), "removing a device its provider says is gone");
                    self.backend
                        .database
                        .delete_endpoint(&endpoint.device.user, &endpoint.device.token)
                        .await?;
                    if let Err(e) = self.backend.notifier.unregister(endpoint).await {
                        tracing::debug!(error = %e, "unregistering a gone device failed");
                    }
                    report.devices_removed += 1;
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            if !reached.is_empty() {
                // Remembered, so the retry does not send to these devices again. If this
                // fails too, the retry sends to them again, under the same idempotency key.
                if let Err(record) = self
                    .backend
                    .database
                    .record_deliveries(&notification.competition, &reached)
                    .await
                {
                    tracing::warn!(competition = %notification.competition, error = %record, "could not record the devices a delivery reached");
                }
            }
            return Err(e);
        }
        match self
            .backend
            .database
            .complete_notification(&notification.competition, self.clock.now())
            .await
        {
            // Another worker finished it after our lease ran out; it is delivered either way.
            Err(Error::Conflict { .. }) => Ok(()),
            other => other,
        }
    }

    fn new_competition(
        &self,
        id: CompetitionId,
        owner: UserId,
        title: Option<String>,
        status: Status,
        photos: Vec<Photo>,
    ) -> Competition {
        Competition {
            id,
            owner,
            title,
            status,
            categories: categories(&photos, self.rules.category_confidence),
            tally: Tally::zero(photos.len()),
            photos,
            votes_to_close: self.rules.votes_to_close,
            outcome: None,
            created_at: crate::model::unix_ms::truncate(self.clock.now()),
        }
    }

    fn check_title(&self, title: Option<String>) -> Result<Option<String>> {
        let Some(title) = title else { return Ok(None) };
        let title = title.trim().to_string();
        if title.chars().count() > self.rules.max_title_chars {
            return Err(Error::invalid(
                "title",
                format!("must be at most {} characters", self.rules.max_title_chars),
            ));
        }
        if title.chars().any(char::is_control) {
            return Err(Error::invalid("title", "may not contain control characters"));
        }
        Ok((!title.is_empty()).then_some(title))
    }

    fn check_photo_count(&self, count: usize) -> Result<()> {
        if count != self.rules.photos_per_competition {
            return Err(Error::invalid(
                "photos",
                format!(
                    "a competition needs exactly {} photos, got {count}",
                    self.rules.photos_per_competition
                ),
            ));
        }
        Ok(())
    }

    fn check_size(&self, index: usize, size: u64) -> Result<()> {
        if size > self.rules.max_photo_bytes {
            return Err(Error::TooLarge {
                what: format!("photo {index}"),
                size,
                limit: self.rules.max_photo_bytes,
            });
        }
        Ok(())
    }

    fn check_photo(&self, index: usize, bytes: &Bytes) -> Result<ImageInfo> {
        self.check_size(index, bytes.len() as u64)?;
        media::sniff(bytes).map_err(|e| match e {
            Error::UnsupportedMediaType { detected } => Error::UnsupportedMediaType {
                detected: format!("photo {index}: {detected}"),
            },
            other => other,
        })
    }

    /// Decodes every photo (bounded by the service's decode concurrency), on the blocking pool.
    async fn decode_all(&self, photos: &[Bytes]) -> Result<Vec<CheckedPhoto>> {
        try_join_all(
            photos
                .iter()
                .enumerate()
                .map(|(i, bytes)| self.decode_one(i, bytes.clone())),
        )
        .await
    }

    async fn decode_one(&self, index: usize, bytes: Bytes) -> Result<CheckedPhoto> {
        let permit = self
            .decodes
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::backend("thisthat", e))?;
        let limits = DecodeLimits::from_rules(&self.rules);
        let max_side = self.rules.display_max_side;
        let span = tracing::debug_span!("thisthat.decode", photo = index, bytes = bytes.len());
        let decoded = tokio::task::spawn_blocking(move || {
            // Held until the decode ends, even if the request that started it is dropped.
            let _permit = permit;
            span.in_scope(|| decode::check_and_render(index, &bytes, &limits, max_side))
        })
        .await;
        // A panic in a decoder is a decoder bug on this input: the photo is refused, and the
        // process goes on.
        decoded.unwrap_or_else(|e| {
            tracing::warn!(photo = index, error = %e, "the image decoder failed");
            Err(Error::UnsupportedMediaType {
                detected: format!("photo {index}: an image the decoder failed on"),
            })
        })
    }

    /// What the classifier is handed for a photo: the original when it is already display-sized
    /// and small ([`decode::classifies_original`]), otherwise the display variant. The key goes
    /// along only when that blob is stored, so a classifier reading from storage reads the
    /// same bytes.
    fn classifier_input(&self, a: &Accepted, original_stored: bool) -> PhotoInput {
        let info = &a.checked.info;
        if decode::classifies_original(info, a.original.len(), self.rules.display_max_side) {
            PhotoInput {
                bytes: a.original.clone(),
                media_type: info.media_type,
                key: original_stored.then(|| a.key.clone()),
            }
        } else {
            PhotoInput {
                bytes: a.checked.display.bytes.clone(),
                media_type: a.checked.display.media_type,
                key: Some(a.display_key.clone()),
            }
        }
    }

    /// The keys [`Thisthat::create_competition`] stores for these photos.
    fn stored_keys(&self, accepted: &[Accepted]) -> Vec<BlobKey> {
        let mut keys: Vec<BlobKey> = accepted.iter().map(|a| a.display_key.clone()).collect();
        if self.rules.keep_originals {
            keys.extend(accepted.iter().map(|a| a.key.clone()));
        }
        keys
    }

    /// Classifies every photo at once, screens them, and builds the stored photos.
    async fn classify(&self, accepted: &[Accepted], original_stored: bool) -> Result<Vec<Photo>> {
        let classifier = &self.backend.classifier;
        let inputs: Vec<PhotoInput> = accepted
            .iter()
            .map(|a| self.classifier_input(a, original_stored))
            .collect();
        for (i, input) in inputs.iter().enumerate() {
            tracing::debug!(photo = i, bytes = input.bytes.len(), media_type = %input.media_type, "classifying");
        }
        let classifications = try_join_all(inputs.iter().map(|p| classifier.classify(p))).await?;
        for c in &classifications {
            // Label fields are public: an adapter could hand back NaN, which no threshold catches.
            let mut all = c.labels.iter().chain(c.moderation.iter().flatten());
            if let Some(bad) = all.find(|l| !(0.0..=1.0).contains(&l.confidence)) {
                let message = format!("confidence {} of {} is outside 0..=1", bad.confidence, bad.name);
                return Err(Error::Backend {
                    provider: "classifier",
                    message,
                    source: None,
                });
            }
        }
        if classifier.screens_content() {
            for (i, c) in classifications.iter().enumerate() {
                let Some(moderation) = &c.moderation else {
                    // Fail closed: a screening classifier that did not screen lets nothing through.
                    let message = format!("photo {i} was not screened by a classifier that screens content");
                    return Err(Error::Backend {
                        provider: "classifier",
                        message,
                        source: None,
                    });
                };
                let flagged = moderation.iter().find(|l| l.confidence >= self.rules.unsafe_confidence);
                if let Some(label) = flagged {
                    return Err(Error::UnsafeContent {
                        photo: i,
                        label: label.name.to_string(),
                        confidence: label.confidence,
                    });
                }
            }
        }
        Ok(accepted
            .iter()
            .zip(classifications)
            .map(|(a, c)| Photo {
                key: a.key.clone(),
                media_type: a.checked.info.media_type,
                size: a.original.len() as u64,
                width: a.checked.info.width,
                height: a.checked.info.height,
                labels: normalise(c),
                display: Some(PhotoVariant {
                    key: a.display_key.clone(),
                    media_type: a.checked.display.media_type,
                    size: a.checked.display.bytes.len() as u64,
                    width: a.checked.display.width,
                    height: a.checked.display.height,
                }),
                original_kept: self.rules.keep_originals,
            })
            .collect())
    }

    /// Deletes blobs of a competition that will not exist. Best effort: a failure is logged
    /// (the blob is orphaned, under a key no competition refers to) and the caller's own error
    /// is what gets returned.
    async fn discard(&self, keys: &[BlobKey]) {
        for (key, result) in keys
            .iter()
            .zip(join_all(keys.iter().map(|k| self.backend.blobs.delete(k))).await)
        {
            if let Err(e) = result {
                tracing::warn!(key = %key, error = %e, "could not delete the blob of a rejected competition");
            }
        }
    }
}

fn first_error<T>(results: Vec<Result<T>>) -> Option<Error> {
    results.into_iter().find_map(Result::err)
}

/// A photo's labels, most confident first, one per name.
fn normalise(classification: Classification) -> Vec<Label> {
    let mut best: HashMap<Category, f32> = HashMap::new();
    for label in classification.labels {
        let entry = best.entry(label.name).or_insert(label.confidence);
        *entry = entry.max(label.confidence);
    }
    let mut labels: Vec<Label> = best
        .into_iter()
        .map(|(name, confidence)| Label { name, confidence })
        .collect();
    labels.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.name.cmp(&b.name)));
    labels
}

/// The competition's categories: labels at or above the threshold across all photos, most
/// confident first, one per name.
pub fn categories(photos: &[Photo], threshold: f32) -> Vec<Category> {
    let labels = photos
        .iter()
        .flat_map(|p| p.labels.iter().cloned())
        .filter(|l| l.confidence >= threshold)
        .collect();
    normalise(Classification {
        labels,
        moderation: None,
    })
    .into_iter()
    .map(|l| l.name)
    .collect()
}

/// A write `Thisthat::landed` could not count as written: the error for the caller, and
/// whether the write may have landed all the same (its read-back failed).
struct Unlanded {
    error: Error,
    in_doubt: bool,
}
