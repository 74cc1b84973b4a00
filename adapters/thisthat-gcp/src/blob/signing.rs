//! V4 signed URLs (`GOOG4-RSA-SHA256`), built as documented at
//! cloud.google.com/storage/docs/authentication/signatures: the canonical request, the string
//! to sign, and the URL. The signature itself comes from google-cloud-auth's signer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use firestore::gcloud_sdk::google_cloud_auth;
use percent_encoding::utf8_percent_encode;
use sha2::{Digest, Sha256};
use thisthat_core::{Error, Result};

use super::{
    MAX_SIGNED_URL_LIFETIME, PROVIDER,
    codec::{PATH, SEGMENT},
};

pub(super) fn signing_error(e: google_cloud_auth::signer::SigningError) -> Error {
    if e.is_transport() {
        Error::unavailable(PROVIDER, e)
    } else {
        Error::Config {
            reason: "could not sign a Cloud Storage URL: check the service account and its roles".into(),
            source: Some(Box::new(e)),
        }
    }
}

/// What a V4 signature covers.
pub(super) struct V4Request<'a> {
    pub(super) method: &'a str,
    pub(super) endpoint: &'a str,
    pub(super) bucket: &'a str,
    pub(super) object: &'a str,
    pub(super) headers: &'a [(String, String)],
    /// Query parameters signed beside the `X-Goog-*` ones (`response-content-type`, …).
    pub(super) query: &'a [(&'a str, String)],
    pub(super) email: &'a str,
    pub(super) now: SystemTime,
    pub(super) expires_in: Duration,
}

/// A V4 request ready to sign.
pub(super) struct V4Prepared {
    /// The URL with every query parameter but the signature.
    pub(super) unsigned_url: String,
    pub(super) string_to_sign: String,
    pub(super) expires_at: SystemTime,
}

impl V4Request<'_> {
    /// Builds the canonical request and the string to sign as documented for
    /// `GOOG4-RSA-SHA256` (cloud.google.com/storage/docs/authentication/signatures).
    pub(super) fn prepare(&self) -> Result<V4Prepared> {
        let endpoint = url::Url::parse(self.endpoint).map_err(|e| Error::Config {
            reason: format!("the Cloud Storage endpoint {:?} is not a URL", self.endpoint),
            source: Some(Box::new(e)),
        })?;
        let host = match (endpoint.host_str(), endpoint.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(Error::config(format!("the endpoint {} has no host", self.endpoint))),
        };
        let expires = self
            .expires_in
            .clamp(Duration::from_secs(1), MAX_SIGNED_URL_LIFETIME)
            .as_secs();
        let seconds = self.now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let (date, datetime) = utc_stamp(seconds);
        let scope = format!("{date}/auto/storage/goog4_request");

        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        headers.push(("host".into(), host.clone()));
        headers.sort();
        let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
        let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();

        let mut query = vec![
            ("X-Goog-Algorithm", "GOOG4-RSA-SHA256".to_string()),
            ("X-Goog-Credential", format!("{}/{scope}", self.email)),
            ("X-Goog-Date", datetime.clone()),
            ("X-Goog-Expires", expires.to_string()),
            ("X-Goog-SignedHeaders", signed_headers.clone()),
        ];
        query.extend(self.query.iter().cloned());
        // The canonical query is sorted by (encoded) name; every name here encodes to itself.
        query.sort();
        let canonical_query = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, SEGMENT),
                    utf8_percent_encode(v, SEGMENT)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let path = format!("/{}/{}", self.bucket, self.object);
        let canonical_path = utf8_percent_encode(&path, PATH).to_string();
        let canonical_request = format!(
            "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
            self.method
        );
        let digest = thisthat_core::adapter::hex(&Sha256::digest(canonical_request.as_bytes()));
        let string_to_sign = format!("GOOG4-RSA-SHA256\n{datetime}\n{scope}\n{digest}");
        let base = format!("{}://{host}", endpoint.scheme());
        Ok(V4Prepared {
            unsigned_url: format!("{base}{canonical_path}?{canonical_query}"),
            string_to_sign,
            expires_at: self.now + Duration::from_secs(expires),
        })
    }
}

/// `(YYYYMMDD, YYYYMMDD'T'HHMMSS'Z')` in UTC for seconds since 1970.
fn utc_stamp(seconds: u64) -> (String, String) {
    let rest = seconds % 86_400;
    let (year, month, day) = thisthat_core::adapter::utc_date(seconds);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    (date.clone(), format!("{date}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(0), ("19700101".into(), "19700101T000000Z".into()));
        // 2024-02-29T12:34:56Z, a leap day.
        assert_eq!(utc_stamp(1_709_210_096), ("20240229".into(), "20240229T123456Z".into()));
        // 2026-11-28T00:00:00Z.
        assert_eq!(utc_stamp(1_795_824_000).0, "20261128");
    }
}
