//! Signed URLs for backends that serve blobs themselves (the embedded default, in-memory
//! stores): an HMAC-SHA256 over everything the URL grants, checked before anything is served.
//!
//! Cloud adapters use their provider's own signing (SigV4, GCS V4, SAS) instead.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use crate::{
    BlobKey, Error, Result,
    ports::{BlobStore, GetOptions, PutMode, PutOptions, ServedAs, SignedMethod, SignedUrl, SignedUrlRequest},
};

/// Signs and verifies URLs of the form `{base}{key}?x-method=…&x-expires=…&…&x-signature=…`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use thisthat_core::{signing::UrlSigner, ports::SignedUrlRequest, BlobKey};
///
/// let signer = UrlSigner::new(b"a secret of at least 32 bytes!!!".to_vec(), "http://127.0.0.1:8080/blobs/")?;
/// let key = BlobKey::new("competitions/x/0.png")?;
/// let now = SystemTime::now();
/// let url = signer.sign(&key, &SignedUrlRequest::get(Duration::from_secs(60)), now)?;
/// let grant = signer.verify("GET", &url.url, now)?;
/// assert_eq!(grant.key, key);
/// assert!(signer.verify("GET", &url.url, now + Duration::from_secs(61)).is_err());
/// # Ok::<(), thisthat_core::Error>(())
/// ```
#[derive(Clone)]
pub struct UrlSigner {
    // Shared: a server clones its state, signer included, for every request it handles.
    secret: Arc<[u8]>,
    base: Arc<Url>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// What a verified signed URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The blob it is for.
    pub key: BlobKey,
    /// For uploads: the content type the request must carry.
    pub content_type: Option<String>,
    /// For uploads: the most bytes the body may have.
    pub max_size: Option<u64>,
}

type HmacSha256 = Hmac<Sha256>;

impl UrlSigner {
    /// A signer for URLs under `base` (which should end in `/`). The secret must be at least 32
    /// bytes.
    pub fn new(secret: Vec<u8>, base: &str) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::config("the URL signing secret must be at least 32 bytes"));
        }
        let base = Url::parse(base).map_err(|e| Error::Config {
            reason: format!("bad signed URL base {base:?}"),
            source: Some(Box::new(e)),
        })?;
        if !base.path().ends_with('/') {
            // Url::join would drop the last segment, and no URL would verify.
            return Err(Error::config(format!("the signed URL base {base} must end with '/'")));
        }
        Ok(UrlSigner {
            secret: secret.into(),
            base: Arc::new(base),
        })
    }

    /// The base all signed URLs start with.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn mac(&self, method: &str, key: &BlobKey, expires: u64, content_type: &str, max_size: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        // Newline-separated fields: none of them may contain a newline (keys and methods cannot,
        // content types are checked below), so the encoding is unambiguous.
        for field in [method, key.as_str(), &expires.to_string(), content_type, max_size] {
            mac.update(field.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The one form of the URL that grants these fields: what [`UrlSigner::sign`] hands out and
    /// the only form [`UrlSigner::verify`] accepts.
    fn url_of(
        &self,
        key: &BlobKey,
        method: &str,
        expires: u64,
        content_type: &str,
        max_size: &str,
        signature: &str,
    ) -> Result<Url> {
        let mut url = self.base.join(key.as_str()).map_err(|e| Error::Config {
            reason: "signed URL base cannot hold keys".into(),
            source: Some(Box::new(e)),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("x-method", method)
                .append_pair("x-expires", &expires.to_string());
            if method == "PUT" {
                q.append_pair("x-content-type", content_type)
                    .append_pair("x-max-size", max_size);
            }
            q.append_pair("x-signature", signature);
        }
        Ok(url)
    }

    /// A signed URL for `request` on `key`, valid from `now` for `request.expires_in`.
    pub fn sign(&self, key: &BlobKey, request: &SignedUrlRequest, now: SystemTime) -> Result<SignedUrl> {
        let expires_at = now
            .checked_add(request.expires_in)
            .ok_or_else(|| Error::invalid("expires_in", "is too far in the future"))?;
        let expires = unix_seconds(expires_at);
        let (method, content_type, max_size) = match &request.method {
            SignedMethod::Get => ("GET", String::new(), String::new()),
            SignedMethod::Put { content_type, max_size } => {
                if content_type.chars().any(char::is_control) {
                    return Err(Error::invalid("content_type", "may not contain control characters"));
                }
                ("PUT", content_type.clone(), max_size.to_string())
            }
        };
        let signature = hex(&self
            .mac(method, key, expires, &content_type, &max_size)
            .finalize()
            .into_bytes());
        let url = self.url_of(key, method, expires, &content_type, &max_size, &signature)?;
        let headers = if method == "PUT" {
            vec![("content-type".to_string(), content_type)]
        } else {
            vec![]
        };
        Ok(SignedUrl {
            url: url.into(),
            method: method.to_string(),
            headers,
            expires_at: UNIX_EPOCH + Duration::from_secs(expires),
        })
    }

    /// Checks a signed URL used with `method` at `now`, and says what it grants. Anything
    /// tampered with, expired, or used with another method is
    /// [`Error::InvalidInput`] on field `signature`.
    ///
    /// A URL has one form: exactly as [`UrlSigner::sign`] wrote it. Another spelling of the
    /// same fields (the signature in upper case or percent-encoded, parameters repeated,
    /// reordered or added, the path encoded differently) is refused, and so is a path with
    /// `.` or `..` segments (also percent-encoded), which is never resolved to another key.
    /// `url` must be the URL as the client sent it, before any normalisation.
    pub fn verify(&self, method: &str, url: &str, now: SystemTime) -> Result<Grant> {
        let refuse = |reason: &str| Error::invalid("signature", reason.to_string());
        let raw_path = url.split(['?', '#']).next().unwrap_or(url);
        if raw_path.split('/').any(is_dot_segment) {
            return Err(refuse(
                "the path has `.` or `..` segments; use the URL exactly as handed out",
            ));
        }
        let raw = url;
        let url = Url::parse(url).map_err(|_| refuse("not a URL"))?;
        let path = url.path();
        let key = path
            .strip_prefix(self.base.path())
            .filter(|_| {
                url.scheme() == self.base.scheme()
                    && url.host_str() == self.base.host_str()
                    && url.port_or_known_default() == self.base.port_or_known_default()
            })
            .ok_or_else(|| refuse("not a URL this store signed"))?;
        let key = BlobKey::new(key).map_err(|_| refuse("not a valid blob key"))?;
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let signed_method = param("x-method").ok_or_else(|| refuse("missing x-method"))?;
        if !signed_method.eq_ignore_ascii_case(method) {
            return Err(refuse("signed for another method"));
        }
        let expires: u64 = param("x-expires")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| refuse("missing x-expires"))?;
        let content_type = param("x-content-type").unwrap_or_default();
        let max_size = param("x-max-size").unwrap_or_default();
        let signature_hex = param("x-signature").ok_or_else(|| refuse("missing x-signature"))?;
        let signature = unhex(&signature_hex).ok_or_else(|| refuse("x-signature is not lower-case hex"))?;
        self.mac(&signed_method, &key, expires, &content_type, &max_size)
            .verify_slice(&signature)
            .map_err(|_| refuse("signature does not match"))?;
        // The fields are authentic; now the spelling must be the one form that grants them.
        let canonical = self.url_of(&key, &signed_method, expires, &content_type, &max_size, &signature_hex)?;
        if canonical.as_str() != raw {
            return Err(refuse(
                "not in the form this store signs; use the URL exactly as handed out",
            ));
        }
        if unix_seconds(now) >= expires {
            return Err(refuse("expired"));
        }
        Ok(Grant {
            key,
            content_type: (!content_type.is_empty()).then_some(content_type),
            max_size: max_size.parse().ok(),
        })
    }
}

impl Grant {
    /// Checks an upload against what the grant allows: the exact content type and at most
    /// `max_size` bytes. [`Error::UnsupportedMediaType`] or [`Error::TooLarge`] otherwise.
    pub fn check_upload(&self, content_type: Option<&str>, size: u64) -> Result<()> {
        if let Some(expected) = &self.content_type
            && content_type != Some(expected.as_str())
        {
            return Err(Error::UnsupportedMediaType {
                detected: format!(
                    "upload declared {:?}, the URL was signed for {expected:?}",
                    content_type.unwrap_or("")
                ),
            });
        }
        if let Some(limit) = self.max_size
            && size > limit
        {
            return Err(Error::TooLarge {
                what: "upload".into(),
                size,
                limit,
            });
        }
        Ok(())
    }
}

/// What a server in front of `store` does with a request to one of `signer`'s URLs: verify
/// the signature, expiry and method, check an upload's content type and size, then store the
/// body (PUT, answering empty bytes) or answer the blob (GET). Uploads are create-only: a
/// signed URL can never replace a blob that is already there (a photo checked by
/// `finish_upload` stays the photo that was checked).
///
/// The embedded HTTP server and the in-memory store's in-process client share this, so a
/// signed URL means the same everywhere it is served by thisthat itself.
pub async fn serve(
    store: &dyn BlobStore,
    signer: &UrlSigner,
    now: SystemTime,
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<Bytes>,
) -> Result<Bytes> {
    let grant = signer.verify(method, url, now)?;
    if method.eq_ignore_ascii_case("PUT") {
        let body = body.unwrap_or_default();
        grant.check_upload(content_type, body.len() as u64)?;
        let options = PutOptions {
            content_type: content_type.map(str::to_string),
            mode: PutMode::Create,
        };
        store.put(&grant.key, body, &options).await?;
        Ok(Bytes::new())
    } else {
        Ok(served(store, &grant.key).await?.1)
    }
}

/// What a server in front of `store` answers a signed GET to one of `signer`'s URLs with: the
/// blob, and how to serve it ([`ServedAs::blob`] of its stored content type). The URL is
/// checked as [`serve`] checks it. A `served_as` asked for when the URL was signed is not
/// part of these URLs: the decision is made here, from what is stored, every time.
pub async fn download(
    store: &dyn BlobStore,
    signer: &UrlSigner,
    now: SystemTime,
    url: &str,
) -> Result<(ServedAs, Bytes)> {
    let grant = signer.verify("GET", url, now)?;
    served(store, &grant.key).await
}

async fn served(store: &dyn BlobStore, key: &BlobKey) -> Result<(ServedAs, Bytes)> {
    let blob = store.get(key, &GetOptions::default()).await?;
    Ok((ServedAs::blob(key, blob.meta.content_type.as_deref()), blob.body))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex only, the form [`hex`] writes: `u8::from_str_radix` alone would also take
/// upper case and a leading `+`, other spellings of the same signature.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// `.` or `..`, in any mix of literal and percent-encoded dots (`%2e`, `.%2E`, …): the
/// segments a URL parser resolves away.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(vec![7; 32], "http://127.0.0.1:9/blobs/").unwrap()
    }

    fn put(max: u64) -> SignedUrlRequest {
        SignedUrlRequest {
            method: SignedMethod::Put {
                content_type: "image/png".into(),
                max_size: max,
            },
            expires_in: Duration::from_secs(60),
            served_as: None,
        }
    }

    #[test]
    fn tampering_any_part_is_refused() {
        let s = signer();
        let now = SystemTime::now();
        let key = BlobKey::new("a/b.png").unwrap();
        let url = s.sign(&key, &put(100), now).unwrap().url;
        assert!(s.verify("PUT", &url, now).is_ok());
        for (from, to) in [
            ("x-max-size=100", "x-max-size=1000"),
            ("image%2Fpng", "image%2Fgif"),
            ("a/b.png", "a/c.png"),
            ("x-method=PUT", "x-method=GET"),
        ] {
            let forged = url.replace(from, to);
            assert_ne!(forged, url, "{from} not in {url}");
            assert!(s.verify("PUT", &forged, now).is_err(), "{forged}");
        }
        assert!(s.verify("GET", &url, now).is_err());
        let other = UrlSigner::new(vec![8; 32], "http://127.0.0.1:9/blobs/").unwrap();
        assert!(other.verify("PUT", &url, now).is_err());
    }

    #[test]
    fn a_signed_url_has_one_form() {
        let s = signer();
        let now = SystemTime::now();
        let key = BlobKey::new("competitions/c/0.png").unwrap();
        let url = s.sign(&key, &put(100), now).unwrap().url;
        assert!(s.verify("PUT", &url, now).is_ok());
        let (head, signature) = url.split_once("x-signature=").unwrap();
        let first = &signature[..1];
        let variants = [
            format!("{head}x-signature={}", signature.to_uppercase()),
            format!("{head}x-signature=%{:02x}{}", first.as_bytes()[0], &signature[1..]),
            format!("{head}x-signature=%{:02X}{}", first.as_bytes()[0], &signature[1..]),
            format!("{head}x-signature={signature}="),
            format!("{head}x-signature={signature}&"),
            format!("{head}x-signature=+{signature}"),
            format!("{head}x-signature={signature}&x-signature={signature}"),
            format!("{url}&x-extra=1"),
            format!("{url}#fragment"),
            url.replace("image%2Fpng", "image/png"),
            url.replace("x-method=PUT", "x-method=put"),
            url.replace("/competitions/c/", "/competitions/%63/"),
            url.replace("http://127.0.0.1:9/", "HTTP://127.0.0.1:9/"),
        ];
        for variant in variants {
            assert_ne!(variant, url);
            let e = s.verify("PUT", &variant, now).expect_err(&variant);
            assert!(
                matches!(e, Error::InvalidInput { field: "signature", .. }),
                "{variant}: {e}"
            );
        }
    }

    #[test]
    fn dot_segments_are_refused_not_resolved() {
        let s = signer();
        let now = SystemTime::now();
        let key = BlobKey::new("competitions/c/0.png").unwrap();
        let get = SignedUrlRequest {
            method: SignedMethod::Get,
            expires_in: Duration::from_secs(60),
            served_as: None,
        };
        let url = s.sign(&key, &get, now).unwrap().url;
        for (from, to) in [
            ("/competitions/c/", "/competitions/c/./"),
            ("/competitions/c/", "/competitions/x/../c/"),
            ("/competitions/c/", "/competitions/x/%2e%2e/c/"),
            ("/competitions/c/", "/competitions/x/%2E./c/"),
            ("/competitions/c/", "/competitions/x/.%2E/c/"),
            ("/competitions/c/", "/competitions/c/%2e/"),
            ("/blobs/", "/blobs/./"),
        ] {
            let variant = url.replacen(from, to, 1);
            assert_ne!(variant, url);
            let e = s.verify("GET", &variant, now).expect_err(&variant);
            assert!(e.to_string().contains("`.` or `..`"), "{variant}: {e}");
        }
        assert!(is_dot_segment("%2E%2e") && !is_dot_segment("...") && !is_dot_segment("0.png"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(UrlSigner::new(vec![1; 31], "http://x/").is_err());
    }
}
