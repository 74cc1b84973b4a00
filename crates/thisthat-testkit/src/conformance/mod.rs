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

#[cfg(test)]
mod tests {
    /// The names in the case list of a suite's macro: the bracketed list after
    /// `__conformance_cases!(`.
    fn listed(source: &str) -> Vec<&str> {
        let (_, after) = source
            .split_once("__conformance_cases!(")
            .expect("the suite's macro calls __conformance_cases!");
        let (_, list) = after.split_once('[').expect("a bracketed case list");
        let (list, _) = list.split_once(']').expect("the case list ends");
        list.split(',').map(str::trim).filter(|name| !name.is_empty()).collect()
    }

    /// The cases a suite file defines: its top-level `pub async fn`s.
    fn defined(source: &str) -> Vec<&str> {
        source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split_once('(').map(|(name, _)| name.trim()))
            .collect()
    }

    /// A case missing from its suite's list would run nowhere, silently. The compiler already
    /// refuses a listed case that does not exist; this refuses the other way round.
    #[test]
    fn a_case_left_out_of_the_list_is_seen() {
        let source = "__conformance_cases!(h, s, [first, second,]);\n\
                      pub async fn first(h: &H) {}\n\
                      pub async fn second(h: &H) {}\n\
                      pub async fn forgotten(h: &H) {}\n";
        assert_eq!(listed(source), ["first", "second"]);
        assert_eq!(defined(source), ["first", "second", "forgotten"]);
    }

    #[test]
    fn every_case_is_in_its_suites_list() {
        for (suite, sources) in [
            ("blob", vec![include_str!("blob.rs")]),
            ("database", vec![include_str!("database.rs")]),
            ("notifier", vec![include_str!("notifier.rs")]),
            ("classifier", vec![include_str!("classifier.rs")]),
            // The soak case lives in its own file and is re-exported by the domain suite.
            ("domain", vec![include_str!("domain.rs"), include_str!("soak.rs")]),
        ] {
            let mut listed = listed(sources[0]);
            let mut defined: Vec<&str> = sources.iter().flat_map(|s| defined(s)).collect();
            assert!(!defined.is_empty(), "{suite}: no cases found");
            listed.sort_unstable();
            defined.sort_unstable();
            assert_eq!(listed, defined, "{suite}: the macro's case list and the cases differ");
        }
    }
}
