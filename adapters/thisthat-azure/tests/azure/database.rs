//! Table Storage on Azurite: the database suite, the request counts `docs/azure.md` gives, vote
//! answers beyond the suite, the feed's filters on the service, a missing table, and the stored
//! layout read back raw (every property's Edm type).

use super::*;

thisthat_testkit::database_conformance!(database());

mod requests {
    //! How many Table requests each vote costs (docs/azure.md quotes these numbers).
    use super::*;
    use thisthat_core::{Error, Status, ports::Database};
    use thisthat_testkit::fixtures::{competition, vote};

    #[tokio::test]
    async fn votes_cost_one_read_and_one_batch() {
        let db = database().await;
        let c = competition("owner", Status::Open, 3);
        db.insert_competition(&c).await.expect("insert");
        let count = || db.client().requests_sent();

        let before = count();
        db.cast_vote(&vote(&c, "a", 0)).await.expect("vote");
        assert_eq!(count() - before, 2, "a vote: read the standing, one batch");

        let before = count();
        assert!(matches!(
            db.cast_vote(&vote(&c, "a", 1)).await,
            Err(Error::AlreadyVoted)
        ));
        assert_eq!(count() - before, 1, "a second vote: the read finds the vote row");

        let before = count();
        db.cast_vote(&vote(&c, "b", 2)).await.expect("vote");
        assert_eq!(count() - before, 2);

        let before = count();
        let closing = db.cast_vote(&vote(&c, "c", 0)).await.expect("closing vote");
        assert!(closing.closed.is_some());
        assert_eq!(
            count() - before,
            4,
            "the closing vote: read, outbox entry, batch, and the feed entry removed"
        );

        let before = count();
        assert!(matches!(db.cast_vote(&vote(&c, "d", 0)).await, Err(Error::Closed)));
        assert!(matches!(
            db.cast_vote(&vote(&c, "owner", 0)).await,
            Err(Error::OwnCompetition)
        ));
        assert_eq!(count() - before, 2, "a rejection the standing decides is one read");
    }
}

mod votes {
    //! Vote answers beyond the suite: a resend after a lost reply gets the original receipt.
    use super::*;
    use thisthat_core::{
        Error, Status,
        layers::{Layered, Retry, RetryPolicy},
        ports::Database,
    };
    use thisthat_testkit::{
        faults::LoseReply,
        fixtures::{competition, vote},
    };

    /// A TCP proxy in front of Azurite that passes everything through, except that it loses
    /// the answer to the first `$batch` it carries: the batch reaches the server and commits,
    /// and the client's connection closes before the answer. The same fault every time.
    async fn losing_the_first_batch_answer() -> url::Url {
        use tokio::{
            io::{AsyncReadExt, AsyncWriteExt},
            net::{TcpListener, TcpStream},
        };
        let upstream_url = azurite("THISTHAT_AZURITE_TABLE_URL");
        let upstream = format!(
            "{}:{}",
            upstream_url.host_str().expect("host"),
            upstream_url.port().expect("port")
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let lost = lost.clone();
                tokio::spawn(async move {
                    let (mut armed, mut up, mut down) = (false, [0u8; 65536], [0u8; 65536]);
                    loop {
                        tokio::select! {
                            n = client.read(&mut up) => {
                                let Ok(n @ 1..) = n else { return };
                                if !lost.load(std::sync::atomic::Ordering::SeqCst)
                                    && up[..n].windows(6).any(|w| w == b"$batch")
                                {
                                    armed = true;
                                }
                                if server.write_all(&up[..n]).await.is_err() { return }
                            }
                            n = server.read(&mut down) => {
                                let Ok(n @ 1..) = n else { return };
                                if armed {
                                    // The server has answered the batch: drop both ends.
                                    lost.store(true, std::sync::atomic::Ordering::SeqCst);
                                    return;
                                }
                                if client.write_all(&down[..n]).await.is_err() { return }
                            }
                        }
                    }
                });
            }
        });
        let mut url = upstream_url.clone();
        url.set_port(Some(address.port())).expect("port");
        url
    }

    /// A vote whose batch committed but whose answer was lost in transport is sent again at
    /// once; the second copy is refused, the vote reads again, finds its own ballot, and
    /// answers its receipt: counted once.
    #[tokio::test]
    async fn a_vote_whose_batch_answer_was_lost_counts_once() {
        let db = database().await;
        let c = competition("owner", Status::Open, 3);
        db.insert_competition(&c).await.expect("insert");
        let proxied = AzureTableDatabase::new(
            TableClient::new(
                losing_the_first_batch_answer().await,
                db.client().table(),
                StorageAuth::Key(AccountKey::development()),
            )
            .expect("table client"),
        );
        let receipt = proxied
            .cast_vote(&vote(&c, "a", 1))
            .await
            .expect("the vote landed, although its first answer was lost");
        assert_eq!(receipt.tally.counts(), [0, 1, 0]);
        let stored = db.competition(&c.id).await.expect("read");
        assert_eq!(stored.tally.counts(), [0, 1, 0], "counted once");
        assert_eq!(db.cast_vote(&vote(&c, "a", 1)).await.expect("repeat"), receipt);
    }

    #[tokio::test]
    async fn a_retried_closing_vote_whose_reply_was_lost_gets_its_receipt() {
        let db = database().await;
        let c = competition("owner", Status::Open, 2);
        db.insert_competition(&c).await.expect("insert");
        db.cast_vote(&vote(&c, "a", 0)).await.expect("vote");
        // The closing vote lands, its answer is lost, and the retry layer sends it again.
        let lossy = Arc::new(Layered::new(db.clone(), LoseReply::new("database", "cast_vote", 1)));
        let retried = Layered::new(
            lossy,
            Retry::new(RetryPolicy {
                initial_backoff: std::time::Duration::from_millis(1),
                ..RetryPolicy::default()
            }),
        );
        let r = retried.cast_vote(&vote(&c, "b", 1)).await;
        // The vote landed, so the resend is answered with its receipt (not Closed).
        let receipt = r.expect("the resent closing vote gets its receipt");
        assert_eq!(receipt.tally.counts(), &[1, 1, 0]);
        assert_eq!(receipt.closed.map(|o| o.winners), Some(vec![0, 1]));
        let stored = db.competition(&c.id).await.expect("read");
        assert_eq!((stored.status, stored.tally.total()), (Status::Closed, 2));
        // Someone else is still told the competition closed.
        assert!(matches!(db.cast_vote(&vote(&c, "c", 0)).await, Err(Error::Closed)));
    }

    #[tokio::test]
    async fn a_lease_past_the_end_of_time_is_invalid_input_not_a_panic() {
        let db = database().await;
        let r = db
            .claim_notifications(&thisthat_core::ports::NotificationClaim {
                competition: None,
                now: std::time::SystemTime::now(),
                lease: std::time::Duration::MAX,
                limit: 10,
            })
            .await;
        assert!(matches!(r, Err(Error::InvalidInput { .. })), "{r:?}");
    }

    #[tokio::test]
    async fn feed_entries_of_long_missing_competitions_are_removed() {
        let db = database().await;
        let count = || db.client().requests_sent();
        // An old id (2016) and a fresh one, each left listed without a competition the way an
        // interrupted insert leaves it: the open insert lists it, then finds the id taken by a
        // draft, which is then deleted.
        let mut old = competition("owner", Status::Draft, 3);
        old.id = "01ARZ3NDEKTSV4RRFFQ69G5FAV".parse().expect("id");
        let young = competition("owner", Status::Draft, 3);
        for draft in [&old, &young] {
            db.insert_competition(draft).await.expect("insert draft");
            let mut open = draft.clone();
            open.status = Status::Open;
            assert!(matches!(
                db.insert_competition(&open).await,
                Err(Error::Conflict { .. })
            ));
            db.delete_draft(&draft.id).await.expect("delete draft");
        }
        let query = thisthat_core::FeedQuery::new();
        let before = count();
        assert!(db.feed(&query).await.expect("feed").competitions.is_empty());
        assert_eq!(
            count() - before,
            4,
            "the entries, two missing competitions, the old entry deleted"
        );
        let before = count();
        assert!(db.feed(&query).await.expect("feed").competitions.is_empty());
        assert_eq!(
            count() - before,
            2,
            "the old entry is gone; the young one may be an insert under way and stays"
        );
    }
}

mod feed {
    //! The feed's owner and category filters run on the service (`Owner ne` and
    //! `Category_{name} eq true`), also for a category whose property name is escaped.
    use super::*;
    use thisthat_core::{Category, FeedQuery, Status, UserId, ports::Database};
    use thisthat_testkit::fixtures::competition;

    #[tokio::test]
    async fn the_service_filters_the_feed_by_owner_and_escaped_categories() {
        let db = database().await;
        let mut tabby = competition("alice", Status::Open, 24);
        tabby.categories = ["tabby cat", "naïve art", "a_b"]
            .into_iter()
            .map(|c| Category::new(c).expect("category"))
            .collect();
        let mut plain = competition("bob", Status::Open, 24);
        plain.categories = vec![Category::new("a b").expect("category")];
        for c in [&tabby, &plain] {
            db.insert_competition(c).await.expect("insert");
        }
        let ids = async |category: Option<&str>, viewer: Option<&str>| {
            let query = FeedQuery {
                category: category.map(|c| Category::new(c).expect("category")),
                viewer: viewer.map(|v| UserId::new(v).expect("user")),
                ..FeedQuery::new()
            };
            let page = db.feed(&query).await.expect("feed");
            page.competitions.iter().map(|c| c.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(Some("tabby cat"), None).await, vec![tabby.id]);
        assert_eq!(ids(Some("naïve art"), None).await, vec![tabby.id]);
        // `a_b` and `a b` are distinct property names.
        assert_eq!(ids(Some("a_b"), None).await, vec![tabby.id]);
        assert_eq!(ids(Some("a b"), None).await, vec![plain.id]);
        assert!(
            ids(Some("tabby"), None).await.is_empty(),
            "a whole category, not a part"
        );
        assert_eq!(ids(None, Some("alice")).await, vec![plain.id]);
        assert!(ids(Some("tabby cat"), Some("alice")).await.is_empty());
        let mut both = vec![plain.id, tabby.id];
        both.sort_by(|a, b| b.cmp(a));
        assert_eq!(ids(None, None).await, both, "newest first");
    }
}

mod missing_table {
    //! A table that does not exist is the deployment's mistake: `Config`, with a message saying
    //! what to create, never a missing competition.
    use super::*;
    use thisthat_core::{Error, ports::Database};

    #[tokio::test]
    async fn a_missing_table_is_configuration() {
        let table = TableClient::new(
            azurite("THISTHAT_AZURITE_TABLE_URL"),
            &unique("t"),
            StorageAuth::Key(AccountKey::development()),
        )
        .expect("table client");
        let db = AzureTableDatabase::new(table);
        let c = thisthat_testkit::fixtures::competition("owner", thisthat_core::Status::Open, 3);
        let r = db.competition(&c.id).await;
        assert!(
            matches!(r, Err(Error::Config { ref reason, .. }) if reason.contains("does not exist")),
            "{r:?}"
        );
        let r = db.cast_vote(&thisthat_testkit::fixtures::vote(&c, "a", 0)).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
        let r = db.insert_competition(&c).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{r:?}");
    }
}

mod stored_layout {
    //! What a competition, its votes, its notification, its feed entry and a device look like
    //! at rest, read raw over the Table REST API with full metadata (the request signed here,
    //! apart from the adapter's client): every property in the Edm type `docs/azure.md` gives,
    //! "none" an absent property, and no JSON text but the `Photos` document.
    use std::{
        collections::BTreeMap,
        time::{Duration, SystemTime},
    };

    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use serde_json::{Map, Value};
    use thisthat_core::{
        Category, Status,
        ports::{Database, NotificationClaim},
    };
    use thisthat_testkit::fixtures::{competition, device, vote};

    use super::*;

    type Raw = Map<String, Value>;

    /// Every entity of `table`, as the service stores it.
    async fn raw_entities(table: &str) -> Vec<Raw> {
        let base = azurite("THISTHAT_AZURITE_TABLE_URL");
        let url: url::Url = format!("{}/{table}()", base.as_str().trim_end_matches('/'))
            .parse()
            .expect("url");
        let date = azure_core::time::to_rfc7231(&azure_core::time::OffsetDateTime::now_utc());
        // Shared Key Lite for tables: HMAC-SHA256 of the date and `/{account}{path}`.
        let key = base64::engine::general_purpose::STANDARD
            .decode(thisthat_azure::DEV_ACCOUNT_KEY)
            .expect("key");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
        mac.update(format!("{date}\n/{}{}", thisthat_azure::DEV_ACCOUNT, url.path()).as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let response = reqwest::Client::new()
            .get(url)
            .header("x-ms-date", date)
            .header("x-ms-version", "2019-02-02")
            .header("Accept", "application/json;odata=fullmetadata")
            .header(
                "Authorization",
                format!("SharedKeyLite {}:{signature}", thisthat_azure::DEV_ACCOUNT),
            )
            .send()
            .await
            .expect("query the table");
        assert!(response.status().is_success(), "{:?}", response.status());
        // A handful of entities in a fresh table: one page, no continuation.
        assert!(response.headers().get("x-ms-continuation-NextPartitionKey").is_none());
        let body: Value = response.json().await.expect("a JSON answer");
        body["value"]
            .as_array()
            .expect("entities")
            .iter()
            .map(|e| e.as_object().expect("an entity").clone())
            .collect()
    }

    /// A property's Edm type: its annotation, or the type the service gives its JSON value
    /// without one (a string, a boolean, an integer in Int32's range, else a double).
    fn edm_type(entity: &Raw, name: &str) -> String {
        if let Some(annotation) = entity.get(&format!("{name}@odata.type")) {
            return annotation.as_str().expect("an annotation is a string").to_owned();
        }
        match &entity[name] {
            Value::String(_) => "Edm.String",
            Value::Bool(_) => "Edm.Boolean",
            Value::Number(n) if n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()) => "Edm.Int32",
            Value::Number(_) => "Edm.Double",
            other => panic!("{name} is {other}, which is no Edm type"),
        }
        .to_owned()
    }

    fn numbered(name: &str, prefix: &str) -> bool {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The Edm type `docs/azure.md` gives property `name` of an entity of `kind`; `None` for
    /// a property the layout does not have.
    fn expected(kind: &str, name: &str) -> Option<&'static str> {
        const S: &str = "Edm.String";
        const I: &str = "Edm.Int32";
        const B: &str = "Edm.Boolean";
        const T: &str = "Edm.DateTime";
        match (kind, name) {
            (_, "PartitionKey" | "RowKey") => Some(S),
            (_, "Timestamp") => Some(T),
            ("competition", "Owner" | "Title" | "Status" | "Photos") => Some(S),
            ("competition", "PhotoCount" | "VotesToClose" | "WinnerCount") => Some(I),
            ("competition", "CreatedAt") => Some(T),
            ("competition", n) if numbered(n, "Category") => Some(S),
            ("competition", n) if numbered(n, "Tally") || numbered(n, "OutcomeTally") || numbered(n, "Winner") => {
                Some(I)
            }
            ("vote", "Voter") => Some(S),
            ("vote", "Choice") => Some(I),
            ("vote", "Closed") => Some(B),
            ("vote", n) if numbered(n, "Tally") => Some(I),
            ("notification", "Owner" | "Title") => Some(S),
            ("notification", "WinnerCount") => Some(I),
            ("notification", n) if numbered(n, "OutcomeTally") || numbered(n, "Winner") => Some(I),
            ("notification", "Delivered") => Some(B),
            ("notification", "LeaseUntil" | "DeliveredAt") => Some(T),
            ("notification", n) if n.starts_with("DeliveredTo_") => Some(B),
            ("feed", "Id" | "Owner") => Some(S),
            ("feed", n) if n.starts_with("Category_") => Some(B),
            ("device", "User" | "Platform" | "Token" | "Address") => Some(S),
            _ => None,
        }
    }

    fn kind(entity: &Raw) -> &'static str {
        let key = |k: &str| entity.get(k).and_then(Value::as_str).unwrap_or_default();
        match (key("PartitionKey"), key("RowKey")) {
            ("feed", _) => "feed",
            ("outbox", _) => "outbox",
            (p, _) if p.starts_with("user_") => "device",
            (_, "competition") => "competition",
            (_, "notification") => "notification",
            (_, r) if r.starts_with("vote_") => "vote",
            _ => "unknown",
        }
    }

    /// Checks every property of `entities` against the layout; returns how many of each kind.
    fn check(entities: &[Raw]) -> BTreeMap<&'static str, usize> {
        let mut seen = BTreeMap::new();
        for entity in entities {
            let kind = kind(entity);
            *seen.entry(kind).or_default() += 1;
            for name in entity
                .keys()
                .filter(|k| !k.starts_with("odata.") && !k.contains("@odata."))
            {
                let edm = edm_type(entity, name);
                assert_eq!(
                    Some(edm.as_str()),
                    expected(kind, name),
                    "{kind} property {name} is {edm}: {entity:?}"
                );
                let (Some(text), "Edm.String") = (entity[name].as_str(), edm.as_str()) else {
                    continue;
                };
                assert!(
                    !text.is_empty() && text != "null",
                    "{kind} {name} writes none as {text:?}"
                );
                let parsed = serde_json::from_str::<Value>(text);
                if name == "Photos" {
                    let photos = parsed.expect("the photos document is JSON");
                    assert!(photos[0]["labels"][0]["confidence"].is_f64(), "{photos}");
                } else {
                    assert!(
                        !matches!(parsed, Ok(Value::Object(_) | Value::Array(_))),
                        "{kind} {name} holds JSON text: {text}"
                    );
                }
            }
        }
        seen
    }

    fn find<'a>(entities: &'a [Raw], partition: &str, row: &str) -> &'a Raw {
        entities
            .iter()
            .find(|e| e["PartitionKey"] == partition && e["RowKey"] == row)
            .unwrap_or_else(|| panic!("no entity {partition}/{row}"))
    }

    #[tokio::test]
    async fn entities_hold_native_types_and_none_is_absent() {
        let db = database().await;
        // Untitled and closed, with a category whose property name needs escaping.
        let mut closed = competition("owner", Status::Open, 2);
        closed.title = None;
        closed.categories.push(Category::new("tabby cat").expect("category"));
        db.insert_competition(&closed).await.expect("insert");
        db.cast_vote(&vote(&closed, "a", 0)).await.expect("vote");
        let receipt = db.cast_vote(&vote(&closed, "b", 0)).await.expect("the closing vote");
        assert!(receipt.closed.is_some());
        let claim = NotificationClaim {
            competition: Some(closed.id),
            now: SystemTime::now(),
            lease: Duration::from_secs(60),
            limit: 1,
        };
        assert_eq!(db.claim_notifications(&claim).await.expect("claim").len(), 1);
        db.record_deliveries(&closed.id, &["a1b2c3".to_owned()])
            .await
            .expect("record a delivery");
        // Titled and open: on the feed, without an outcome.
        let open = competition("owner", Status::Open, 24);
        db.insert_competition(&open).await.expect("insert");
        db.save_endpoint(&Endpoint {
            device: device("owner"),
            address: "installation-1".into(),
        })
        .await
        .expect("save a device");

        let entities = raw_entities(db.client().table()).await;
        let seen = check(&entities);
        assert_eq!(
            seen,
            BTreeMap::from([
                ("competition", 2),
                ("device", 1),
                ("feed", 1),
                ("notification", 1),
                ("outbox", 1),
                ("vote", 2),
            ])
        );
        let (closed_id, open_id) = (closed.id.to_string(), open.id.to_string());
        let stored = find(&entities, &closed_id, "competition");
        assert!(!stored.contains_key("Title"), "no title is an absent Title");
        assert_eq!(stored["Tally0"], 2);
        assert_eq!(stored["OutcomeTally0"], 2);
        assert_eq!(
            (&stored["WinnerCount"], &stored["Winner0"]),
            (&Value::from(1), &Value::from(0))
        );
        assert_eq!(stored["Category1"], "tabby cat");
        let stored = find(&entities, &open_id, "competition");
        assert_eq!(stored["Title"], open.title.as_deref().expect("titled"));
        for absent in ["WinnerCount", "Winner0", "OutcomeTally0"] {
            assert!(!stored.contains_key(absent), "open: no {absent}");
        }
        let feed = entities.iter().find(|e| kind(e) == "feed").expect("a feed entry");
        assert_eq!(
            (&feed["Id"], &feed["Category_cat"]),
            (&Value::from(open_id), &Value::Bool(true))
        );
        let notification = find(&entities, &closed_id, "notification");
        assert!(!notification.contains_key("Title") && !notification.contains_key("DeliveredAt"));
        assert_eq!(notification["DeliveredTo_a1b2c3"], true);
        assert_eq!(notification["Delivered"], false);

        db.complete_notification(&closed.id, SystemTime::now())
            .await
            .expect("complete");
        let entities = raw_entities(db.client().table()).await;
        assert_eq!(check(&entities).get("outbox"), None, "completed: off the outbox");
        let notification = find(&entities, &closed_id, "notification");
        assert_eq!(notification["Delivered"], true);
        assert_eq!(edm_type(notification, "DeliveredAt"), "Edm.DateTime");
    }
}
