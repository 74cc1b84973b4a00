//! The JSON API's wire format, as far as the port needs it: object resources and lists,
//! multipart upload bodies, download ranges, and how names are percent-encoded.

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use thisthat_core::{BlobKey, Error, Result, ports::BlobMeta};

use super::PROVIDER;

/// RFC 3986 unreserved characters stay; everything else, `/` included, is encoded. The JSON
/// API wants object names as one path segment.
pub(super) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// As [`SEGMENT`] but keeping `/`: the path of a signed URL (`/bucket/object/name`).
pub(super) const PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// The JSON API's object resource, as far as the port needs it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectResource {
    pub(super) name: String,
    /// A decimal string, as the JSON API sends 64-bit numbers.
    pub(super) size: String,
    pub(super) content_type: Option<String>,
    pub(super) etag: Option<String>,
    /// Base64 of the MD5 of the bytes (absent for composite objects).
    pub(super) md5_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectList {
    #[serde(default)]
    pub(super) items: Vec<ObjectResource>,
    pub(super) next_page_token: Option<String>,
}

impl ObjectResource {
    pub(super) fn meta(self, key: BlobKey) -> Result<BlobMeta> {
        let size = self.size.parse().map_err(|_| Error::Backend {
            provider: PROVIDER,
            message: format!("object {} has a size that is not a number: {:?}", self.name, self.size),
            source: None,
        })?;
        Ok(BlobMeta {
            key,
            size,
            content_type: self.content_type,
            etag: self.etag,
        })
    }
}

/// A multipart boundary that does not occur in `body`.
pub(super) fn boundary(body: &[u8]) -> String {
    loop {
        let candidate = format!("thisthat-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        if !body.windows(candidate.len()).any(|w| w == candidate.as_bytes()) {
            return candidate;
        }
    }
}

fn content_range_total(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    value.rsplit('/').next()?.trim().parse().ok()
}

/// The part of a downloaded body the caller asked for, and the whole object's size.
///
/// A 206 carries the range and the size in `Content-Range`. A server may also ignore `Range`
/// and answer 200 with the whole object (HTTP allows it, and some emulators and proxies do):
/// then the range is cut here, at the end of the object like the port says.
pub(super) fn cut(
    body: Bytes,
    range: Option<&std::ops::Range<u64>>,
    partial: bool,
    headers: &reqwest::header::HeaderMap,
) -> Result<(Bytes, u64)> {
    match range {
        Some(range) if partial => {
            let size = content_range_total(headers).ok_or_else(|| Error::Backend {
                provider: PROVIDER,
                message: "a ranged download came back without a Content-Range total".into(),
                source: None,
            })?;
            // Never hand back more than was asked for, whatever the server sent.
            let wanted = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(usize::MAX);
            Ok((body.slice(..body.len().min(wanted)), size))
        }
        Some(range) => {
            let size = body.len() as u64;
            let start = usize::try_from(range.start.min(size)).unwrap_or(body.len());
            let end = usize::try_from(range.end.min(size)).unwrap_or(body.len());
            Ok((body.slice(start..end.max(start)), size))
        }
        None => {
            let size = body.len() as u64;
            Ok((body, size))
        }
    }
}

pub(super) fn header_string(headers: &reqwest::header::HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(|v| v.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranged_downloads_are_cut_to_the_range_and_the_end() {
        let whole = Bytes::from_static(b"0123456789");
        let none = reqwest::header::HeaderMap::new();
        // A 200 to a ranged request: the server sent everything, the caller wanted a part.
        for (range, want) in [(2..5, &b"234"[..]), (8..20, b"89"), (10..20, b""), (15..30, b"")] {
            let cut = cut(whole.clone(), Some(&range), false, &none).expect("cut");
            assert_eq!(cut, (Bytes::from_static(want), 10), "{range:?}");
        }
        let mut partial = reqwest::header::HeaderMap::new();
        partial.insert(
            reqwest::header::CONTENT_RANGE,
            reqwest::header::HeaderValue::from_static("bytes 2-4/10"),
        );
        let cut206 = cut(Bytes::from_static(b"234567"), Some(&(2..5)), true, &partial).expect("cut");
        assert_eq!(cut206, (Bytes::from_static(b"234"), 10), "never more than asked for");
        assert!(
            cut(Bytes::new(), Some(&(2..5)), true, &none).is_err(),
            "206 without a total"
        );
        assert_eq!(cut(whole.clone(), None, false, &none).expect("cut"), (whole, 10));
    }

    #[test]
    fn boundaries_never_occur_in_the_body() {
        let body = b"--thisthat-0000000000000000 and more";
        let b = boundary(body);
        assert!(!String::from_utf8_lossy(body).contains(&b));
    }
}
