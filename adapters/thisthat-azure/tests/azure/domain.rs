//! The whole domain on the four Azure adapters together (Blob and Table on Azurite, the hub and
//! Vision on their fakes), the 1,000-voter race included; and the four opened from URLs.

use super::*;

thisthat_testkit::domain_conformance!(Azure::start());

mod opener {
    //! The four adapters opened from URLs, as a configuration would name them.
    use std::collections::HashMap;

    use super::*;
    use thisthat_azure::AzureOpener;
    use thisthat_core::{BackendConfig, BlobKey, Registry, ports::PutOptions};

    #[tokio::test]
    async fn urls_open_working_adapters() {
        let hub = HubFake::start().await;
        let vision = VisionFake::start().await;
        let connection = format!(
            "Endpoint=sb://ignored.servicebus.windows.net/;SharedAccessKeyName={};SharedAccessKey={HUB_KEY}",
            fakes::KEY_NAME
        );
        let registry = Registry::new().with(AzureOpener::with_env(HashMap::from([
            ("AZURE_NOTIFICATION_HUBS_CONNECTION_STRING".to_owned(), connection),
            ("AZURE_VISION_KEY".to_owned(), VISION_KEY.to_owned()),
        ])));
        let enc = |u: &str| url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>();
        let config = BackendConfig {
            storage: format!(
                "azblob://{}?emulator=true&create=true&endpoint={}",
                unique("c"),
                enc(azurite("THISTHAT_AZURITE_BLOB_URL").as_str())
            ),
            database: format!(
                "aztable://{}?emulator=true&create=true&endpoint={}",
                unique("t"),
                enc(azurite("THISTHAT_AZURITE_TABLE_URL").as_str())
            ),
            notifier: format!("aznotify://{}?endpoint={}", fakes::HUB, enc(hub.fake.url())),
            classifier: format!("azvision://vision.example?endpoint={}", enc(vision.fake.url())),
        };
        let backend = registry.open(&config).await.expect("open");
        let key = BlobKey::new(format!("opened/{}", CompetitionId::new())).expect("key");
        backend
            .blobs
            .put(&key, Bytes::from_static(b"x"), &PutOptions::create("text/plain"))
            .await
            .expect("put");
        let c = thisthat_testkit::fixtures::competition("owner", thisthat_core::Status::Open, 24);
        backend.database.insert_competition(&c).await.expect("insert");
        assert_eq!(backend.database.competition(&c.id).await.expect("read"), c);
        let endpoint = backend
            .notifier
            .register(&thisthat_testkit::fixtures::device("owner"))
            .await
            .expect("register");
        assert!(hub.installation(&endpoint.address).is_some());
        let labels = backend
            .classifier
            .classify(&thisthat_core::ports::PhotoInput {
                bytes: thisthat_testkit::photos::cat_png(),
                media_type: thisthat_core::MediaType::Png,
                key: None,
            })
            .await
            .expect("classify");
        assert!(!labels.labels.is_empty());
        assert!(hub.fake.violations().is_empty() && vision.fake.violations().is_empty());
    }
}
