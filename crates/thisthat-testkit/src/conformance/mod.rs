//! The conformance suites: one per port, and one for the whole domain. Every adapter of a
//! port passes the same suite, the way Go CDK's `drivertest` and object_store's integration
//! module work; a new adapter is done when it passes.
//!
//! Each suite is a module of public `async fn` cases taking a harness, and a macro that
//! turns every case into its own `#[tokio::test]` in the adapter crate:
//!
//! ```
//! // In an adapter crate's tests/ (the crate needs tokio as a dev-dependency):
//! use std::sync::Arc;
//! use thisthat_testkit::memory::MemoryDatabase;
//!
//! thisthat_testkit::database_conformance!(async { Arc::new(MemoryDatabase::new()) });
//! # fn main() {}
//! ```
//!
//! The harness expression is evaluated afresh for every case, so cases never share state.

pub mod blob;
pub mod classifier;
pub mod database;
pub mod domain;
pub mod notifier;
mod soak;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use thisthat_core::{
    Backend, Endpoint, PushMessage, Result,
    ports::{BlobStore, Classifier, Database, Notifier, SignedUrl},
};

/// What came back from a request to a signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response body.
    pub body: Bytes,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl DirectResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of the header `name` (any case), if the response had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Uses a signed URL the way a mobile client would: a plain HTTP request with no credentials.
pub async fn http_request(url: &SignedUrl, body: Option<Bytes>) -> Result<DirectResponse> {
    use thisthat_core::Error;
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(url.method.as_bytes()).map_err(|e| Error::backend("http", e))?;
    let mut request = client.request(method, &url.url);
    for (name, value) in &url.headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.map_err(|e| Error::unavailable("http", e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = response.bytes().await.map_err(|e| Error::unavailable("http", e))?;
    Ok(DirectResponse { status, body, headers })
}

/// Serves a signed URL in-process with [`thisthat_core::signing::serve`] (and a GET with
/// [`thisthat_core::signing::download`], whose content type and disposition it answers, as
/// the embedded server does), answering the status an HTTP server in front of the store
/// would: for stores that thisthat serves itself (memory, files) when no HTTP server runs.
pub async fn serve_in_process(
    store: &dyn BlobStore,
    signer: &thisthat_core::signing::UrlSigner,
    now: std::time::SystemTime,
    url: &SignedUrl,
    body: Option<Bytes>,
) -> DirectResponse {
    let content_type = url
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str());
    let served = if url.method.eq_ignore_ascii_case("GET") {
        thisthat_core::signing::download(store, signer, now, &url.url)
            .await
            .map(|(served, body)| {
                let headers = vec![
                    ("content-type".to_owned(), served.content_type),
                    ("content-disposition".to_owned(), served.content_disposition),
                ];
                (body, headers)
            })
    } else {
        thisthat_core::signing::serve(store, signer, now, &url.method, &url.url, content_type, body)
            .await
            .map(|body| (body, Vec::new()))
    };
    match served {
        Ok((body, headers)) => DirectResponse {
            status: 200,
            body,
            headers,
        },
        Err(e) => DirectResponse {
            status: e.http_status(),
            body: Bytes::from(e.to_string()),
            headers: Vec::new(),
        },
    }
}

/// How far a blob store goes with signed URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedUrls {
    /// It cannot produce them: [`BlobStore::signed_url`] answers `Unsupported`.
    Unsupported,
    /// It produces them and they work, but the backend under test does not check signatures or
    /// expiry (moto): the suite checks that URLs work, not that forgeries fail.
    Unenforced,
    /// It produces them, they work, and forged or expired ones are refused.
    Enforced,
}

/// Whether a signed GET is answered with the content type and disposition it was signed
/// with ([`thisthat_core::ports::SignedUrlRequest::served_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedHeaders {
    /// It is: by the store itself (S3, Cloud Storage and Azure, from the URL's parameters) or
    /// by thisthat's own server, which decides them from the stored type with
    /// [`thisthat_core::ports::ServedAs::blob`], the decision the suite asks for.
    Honoured,
    /// The backend under test (an emulator) answers what is stored instead: the suite checks
    /// that the URL still downloads the blob, and the adapter's own tests check that the URL
    /// carries the headers as signed parameters.
    Ignored,
}

/// What the blob-store suite needs from an adapter under test.
#[async_trait]
pub trait BlobHarness: Send + Sync {
    /// The store under test, empty.
    fn store(&self) -> Arc<dyn BlobStore>;

    /// How far signed URLs go on this backend.
    fn signed_urls(&self) -> SignedUrls;

    /// Whether signed GETs answer the content type and disposition they were signed with.
    fn served_headers(&self) -> ServedHeaders;

    /// Sends a request to a signed URL as a client would. The default is a real HTTP request;
    /// stores that serve URLs in-process override it.
    async fn direct(&self, url: &SignedUrl, body: Option<Bytes>) -> Result<DirectResponse> {
        http_request(url, body).await
    }

    /// A signed URL whose signature was tampered with, to check that it is refused. The default
    /// flips one character of the last query parameter's value, where every scheme here keeps
    /// its signature.
    fn forge(&self, url: &SignedUrl) -> SignedUrl {
        let mut forged = url.clone();
        if let Some(last) = forged.url.pop() {
            forged.url.push(if last == '0' { '1' } else { '0' });
        }
        forged
    }
}

/// What the notifier suite needs from an adapter under test.
#[async_trait]
pub trait NotifierHarness: Send + Sync {
    /// The notifier under test.
    fn notifier(&self) -> Arc<dyn Notifier>;

    /// What the provider (or its emulator) received for `endpoint`, oldest first.
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>>;

    /// Makes the provider consider the endpoint's device gone (disabled, token expired).
    async fn expire(&self, endpoint: &Endpoint) -> Result<()>;
}

/// What the database suite needs: the database under test, empty. Any `Arc` of a database
/// is one.
pub trait DatabaseHarness: Send + Sync {
    /// The database under test.
    fn database(&self) -> Arc<dyn Database>;
}

impl<T: Database + 'static> DatabaseHarness for Arc<T> {
    fn database(&self) -> Arc<dyn Database> {
        self.clone()
    }
}

impl DatabaseHarness for Arc<dyn Database> {
    fn database(&self) -> Arc<dyn Database> {
        self.clone()
    }
}

/// What the classifier suite needs: the classifier under test. Any `Arc` of a classifier is
/// one.
pub trait ClassifierHarness: Send + Sync {
    /// The classifier under test.
    fn classifier(&self) -> Arc<dyn Classifier>;
}

impl<T: Classifier + 'static> ClassifierHarness for Arc<T> {
    fn classifier(&self) -> Arc<dyn Classifier> {
        self.clone()
    }
}

impl ClassifierHarness for Arc<dyn Classifier> {
    fn classifier(&self) -> Arc<dyn Classifier> {
        self.clone()
    }
}

/// What the whole-domain suite needs: four adapters and ways to observe and steer them.
#[async_trait]
pub trait DomainHarness: Send + Sync {
    /// The four adapters, with state of their own: no other case sees what this one writes.
    fn backend(&self) -> Backend;

    /// How far signed URLs go on this backend's blob store.
    fn signed_urls(&self) -> SignedUrls;

    /// Sends a request to a signed URL as a client would (see [`BlobHarness::direct`]).
    async fn direct(&self, url: &SignedUrl, body: Option<Bytes>) -> Result<DirectResponse> {
        http_request(url, body).await
    }

    /// What the notifier's provider received for `endpoint`.
    async fn delivered(&self, endpoint: &Endpoint) -> Result<Vec<PushMessage>>;

    /// Makes the provider consider the endpoint's device gone.
    async fn expire(&self, endpoint: &Endpoint) -> Result<()>;

    /// A photo this backend's classifier flags as unsafe, if the harness can arrange one (a
    /// scripted classifier, a fake that flags certain bytes). With `None` the suite checks
    /// that the classifier does not claim to screen content.
    async fn unsafe_photo(&self) -> Option<Bytes>;
}

/// Turns the blob-store cases into one `#[tokio::test]` each. The argument is an expression
/// (usually an `async` block) giving a fresh [`BlobHarness`].
#[macro_export]
macro_rules! blob_store_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            blob,
            [
                put_then_get_roundtrips,
                put_overwrites,
                create_if_absent_conflicts,
                racing_creates_have_one_winner,
                head_reports_size_and_type,
                get_reads_ranges,
                ranges_past_the_end_are_empty,
                missing_keys_are_not_found,
                delete_is_idempotent,
                weird_keys_roundtrip,
                empty_and_large_blobs_roundtrip,
                list_pages_through_a_prefix,
                signed_get_serves_the_blob,
                signed_get_sets_the_served_headers,
                signed_put_uploads,
                forged_signed_urls_are_refused,
            ]
        );
    };
}

/// Turns the database cases into one `#[tokio::test]` each. The argument is an expression
/// (usually an `async` block) giving a fresh, empty `Arc<dyn Database>`.
#[macro_export]
macro_rules! database_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            database,
            [
                competitions_roundtrip,
                duplicate_ids_conflict,
                missing_competitions_are_not_found,
                votes_are_counted,
                second_votes_are_rejected,
                repeated_votes_get_their_original_receipt,
                a_repeated_closing_vote_gets_its_receipt,
                deliveries_are_recorded_per_device,
                owners_cannot_vote,
                choices_outside_the_photos_are_rejected,
                votes_on_unknown_or_draft_competitions_are_not_found,
                the_threshold_vote_closes_and_records_the_notification,
                ties_are_kept,
                racing_voters_close_exactly_once,
                drafts_publish_once,
                drafts_delete,
                expired_drafts_are_listed_oldest_first,
                feed_is_newest_first_and_paginates,
                feed_filters_by_category_and_viewer,
                notifications_are_leased,
                racing_claims_lease_once,
                notifications_complete_once,
                endpoints_are_saved_replaced_and_deleted,
                filtered_feeds_page_past_non_matching_rows,
                awkward_ids_and_tokens_roundtrip,
            ]
        );
    };
}

/// Turns the notifier cases into one `#[tokio::test]` each. The argument gives a fresh
/// [`NotifierHarness`].
#[macro_export]
macro_rules! notifier_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            notifier,
            [
                registered_devices_receive_pushes,
                registering_twice_is_harmless,
                gone_devices_are_reported,
                unregistering_is_idempotent,
            ]
        );
    };
}

/// Turns the classifier cases into one `#[tokio::test]` each. The argument gives a fresh
/// [`ClassifierHarness`].
#[macro_export]
macro_rules! classifier_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            classifier,
            [
                labels_real_photos_in_every_format,
                confidences_are_in_range,
                moderation_matches_capability,
                rejects_what_is_not_an_image,
            ]
        );
    };
}

/// Turns every rule of the domain contract into one `#[tokio::test]` each. The argument gives
/// a fresh [`DomainHarness`].
#[macro_export]
macro_rules! domain_conformance {
    ($harness:expr) => {
        $crate::__conformance_cases!(
            $harness,
            domain,
            [
                create_stores_photos_and_categories,
                wrong_photo_counts_are_rejected,
                non_images_are_rejected,
                oversized_photos_are_rejected,
                bad_titles_are_rejected,
                unsafe_photos_reject_everything,
                votes_return_the_tally,
                every_vote_rejection_changes_nothing,
                malformed_ids_are_invalid_input,
                the_24th_vote_closes_and_notifies_once,
                ties_are_announced,
                a_thousand_racing_voters,
                failed_delivery_stays_pending_until_retried,
                a_crash_after_the_close_is_recovered,
                racing_delivery_workers_notify_once,
                gone_devices_are_removed,
                signed_upload_flow,
                upload_finish_rejects_bad_uploads,
                feed_through_the_service,
                photo_urls_download_the_photos,
                hostile_photos_are_refused,
                metadata_never_reaches_voters,
                originals_can_be_left_unstored,
                devices_register_and_unregister,
                an_unclear_push_failure_is_retried_with_the_same_key,
                a_vote_whose_answer_was_lost_counts_once,
                a_photo_put_whose_answer_was_lost_still_creates,
                a_lost_write_whose_read_back_fails_is_unavailable,
                upload_writes_whose_answers_were_lost_still_succeed,
                a_retry_sends_only_to_the_devices_it_missed,
                maintenance_sweeps_orphans_and_expired_drafts,
                soak_under_chaos,
            ]
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:expr, $suite:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let harness = $harness.await;
                $crate::conformance::$suite::$case(&harness).await;
            }
        )*
    };
}
