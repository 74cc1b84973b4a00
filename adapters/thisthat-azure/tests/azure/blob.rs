//! Blob Storage on Azurite: the blob store suite (continuations, create-only races, signed URLs
//! Azurite enforces), Shared Key Lite and SAS signatures, and a missing container.

use super::*;

thisthat_testkit::blob_store_conformance!(async { Blobs(blob_store().await) });

mod credentials {
    //! Azurite checks Shared Key Lite and SAS signatures, so a wrong key must be refused: this
    //! is what shows the signing code right, not just present.
    use super::*;
    use thisthat_core::{BlobKey, Error, ports::BlobStore, ports::GetOptions};

    fn wrong_key() -> StorageAuth {
        StorageAuth::Key(AccountKey::new(thisthat_azure::DEV_ACCOUNT, "d3Jvbmcta2V5LXdyb25nLWtleQ==").expect("key"))
    }

    #[tokio::test]
    async fn a_wrong_account_key_is_refused_as_configuration() {
        let table = TableClient::new(azurite("THISTHAT_AZURITE_TABLE_URL"), &unique("t"), wrong_key()).expect("client");
        let r = table.create_table().await;
        assert!(matches!(r, Err(Error::Config { .. })), "tables: {r:?}");

        let good = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        good.put(&key, Bytes::from_static(b"x"), &Default::default())
            .await
            .expect("put");
        let container = good
            .client()
            .url()
            .path_segments()
            .and_then(|mut s| s.nth(1))
            .expect("container")
            .to_owned();
        let bad = AzureBlobStore::new(azurite("THISTHAT_AZURITE_BLOB_URL"), &container, wrong_key()).expect("store");
        let r = bad.get(&key, &GetOptions::default()).await;
        assert!(matches!(r, Err(Error::Config { .. })), "blobs: {r:?}");
    }

    #[tokio::test]
    async fn a_signed_url_never_claims_to_outlive_its_sas() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        // Several times, so a clock reading that happens to be whole seconds cannot hide it.
        for _ in 0..5 {
            let signed = store
                .signed_url(
                    &key,
                    &SignedUrlRequest {
                        method: SignedMethod::Get,
                        expires_in: std::time::Duration::from_secs(60),
                        served_as: None,
                    },
                )
                .await
                .expect("signed");
            let url: url::Url = signed.url.parse().expect("url");
            let se = url
                .query_pairs()
                .find(|(k, _)| k == "se")
                .map(|(_, v)| v.into_owned())
                .expect("se");
            let se = std::time::SystemTime::from(azure_core::time::parse_rfc3339(&se).expect("rfc3339"));
            assert!(
                signed.expires_at <= se,
                "expires_at {:?} is after the SAS expiry {se:?}",
                signed.expires_at
            );
            tokio::time::sleep(std::time::Duration::from_millis(137)).await;
        }
    }

    #[tokio::test]
    async fn a_signed_url_past_the_end_of_time_is_invalid_input_not_a_panic() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let r = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Get,
                    expires_in: std::time::Duration::MAX,
                    served_as: None,
                },
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    }

    /// `rsct` and `rscd` are in the SAS with the values asked for, Azurite answers them, and
    /// since Azurite checks the signature, a URL whose `rscd` was changed is refused: they are
    /// signed, in the string-to-sign's order.
    #[tokio::test]
    async fn a_signed_download_says_how_it_is_served_and_that_is_signed() {
        use thisthat_core::ports::{ServedAs, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}/page.html", CompetitionId::new())).expect("key");
        let body = Bytes::from_static(b"<html><script>alert(1)</script></html>");
        store
            .put(
                &key,
                body.clone(),
                &thisthat_core::ports::PutOptions::create("text/html"),
            )
            .await
            .expect("put");
        let served_as = ServedAs::blob(&key, Some("text/html"));
        let request = SignedUrlRequest::get(std::time::Duration::from_secs(60)).served_as(served_as.clone());
        let signed = store.signed_url(&key, &request).await.expect("signed");
        let url: url::Url = signed.url.parse().expect("url");
        let param = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        assert_eq!(param("rsct").as_deref(), Some("application/octet-stream"));
        assert_eq!(param("rscd").as_deref(), Some("attachment; filename=\"page.html\""));

        let response = thisthat_testkit::conformance::http_request(&signed, None)
            .await
            .expect("request");
        assert!(response.is_success(), "{response:?}");
        assert_eq!(response.body, body);
        assert_eq!(response.header("content-type"), Some("application/octet-stream"));
        assert_eq!(
            response.header("content-disposition"),
            Some(served_as.content_disposition.as_str())
        );

        let mut forged = signed.clone();
        forged.url = forged.url.replace("rscd=attachment", "rscd=inline");
        assert_ne!(forged.url, signed.url);
        let refused = thisthat_testkit::conformance::http_request(&forged, None)
            .await
            .expect("request");
        assert_eq!(refused.status, 403, "a changed rscd was accepted: {refused:?}");
    }

    #[tokio::test]
    async fn a_signed_upload_cannot_replace_a_blob_even_without_if_none_match() {
        use thisthat_core::ports::{SignedMethod, SignedUrlRequest};
        let store = blob_store().await;
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let mut signed = store
            .signed_url(
                &key,
                &SignedUrlRequest {
                    method: SignedMethod::Put {
                        content_type: "image/png".into(),
                        max_size: 1024,
                    },
                    expires_in: std::time::Duration::from_secs(60),
                    served_as: None,
                },
            )
            .await
            .expect("signed");
        // A client that drops the If-None-Match header: the SAS's create-only permission holds.
        signed.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("if-none-match"));
        let first = thisthat_testkit::conformance::http_request(&signed, Some(Bytes::from_static(b"one")))
            .await
            .expect("request");
        assert!(first.is_success(), "{first:?}");
        let second = thisthat_testkit::conformance::http_request(&signed, Some(Bytes::from_static(b"two")))
            .await
            .expect("request");
        assert!(!second.is_success(), "the SAS let an upload replace a blob: {second:?}");
        assert_eq!(
            store.get(&key, &GetOptions::default()).await.expect("get").body,
            Bytes::from_static(b"one")
        );
    }
}

mod missing_container {
    //! A container that does not exist is the deployment's mistake: `Config`, with a message
    //! saying what to create, never a missing blob.
    use super::*;
    use thisthat_core::{BlobKey, Error, ports::BlobStore, ports::GetOptions};

    #[tokio::test]
    async fn a_missing_container_is_configuration() {
        let store = AzureBlobStore::new(
            azurite("THISTHAT_AZURITE_BLOB_URL"),
            &unique("c"),
            StorageAuth::Key(AccountKey::development()),
        )
        .expect("store");
        let key = BlobKey::new(format!("k/{}", CompetitionId::new())).expect("key");
        let r = store.get(&key, &GetOptions::default()).await;
        assert!(
            matches!(r, Err(Error::Config { ref reason, .. }) if reason.contains("does not exist")),
            "{r:?}"
        );
        let r = store.put(&key, Bytes::from_static(b"x"), &Default::default()).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
        let r = store.delete(&key).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }
}
