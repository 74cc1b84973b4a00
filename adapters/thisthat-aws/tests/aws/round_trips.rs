//! Counting what reaches moto: a recording proxy sits between the adapters and moto, and the
//! test asserts how many requests one competition and one vote cost.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use axum::{body::Body, http::Request, response::Response};
use thisthat_aws::{DynamoDatabase, S3BlobStore, SnsNotifier};
use thisthat_core::{NewCompetition, Thisthat, service::DeliveryMode};
use thisthat_testkit::{fixtures::user, photos};

use crate::{
    classifier::classifier_at,
    fakes::FakeRekognition,
    support::{config_for, moto, moto_config, s3_client, unique},
};

/// A proxy in front of moto that logs each request as `service:Operation`.
struct CountingProxy {
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    /// Requests received so far.
    seen: Arc<AtomicUsize>,
    /// The number of the request whose reply to lose (0: none): it is forwarded, then answered
    /// with a 500 instead of moto's reply, as if the answer was lost; the SDK retries it.
    lose_reply_of: Arc<AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

/// The operation a request is, from what each AWS protocol puts on the wire: DynamoDB's JSON
/// protocol names it in `X-Amz-Target`, SNS's query protocol in the form body's `Action`, and
/// S3's REST protocol by method.
fn operation(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
        let (service, op) = target.split_once('.').unwrap_or(("?", target));
        let service = if service.starts_with("DynamoDB") {
            "dynamodb"
        } else {
            service
        };
        return format!("{service}:{op}");
    }
    if let Some(action) = url::form_urlencoded::parse(body).find(|(n, _)| n == "Action") {
        return format!("sns:{}", action.1);
    }
    format!("s3:{}", parts.method)
}

impl CountingProxy {
    async fn start() -> Self {
        let target = moto();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen: Arc<AtomicUsize> = Arc::default();
        let lose_reply_of: Arc<AtomicUsize> = Arc::default();
        let client = reqwest::Client::new();
        let app = {
            let log = log.clone();
            let (seen, lose) = (seen.clone(), lose_reply_of.clone());
            axum::Router::new().fallback(move |request: Request<Body>| {
                let (log, client, target) = (log.clone(), client.clone(), target.clone());
                let (seen, lose) = (seen.clone(), lose.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, 64 << 20).await.expect("body");
                    log.lock().expect("lock").push(operation(&parts, &body));
                    let number = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                    let mut forward = client.request(parts.method.clone(), format!("{target}{path}"));
                    for (name, value) in &parts.headers {
                        if name != "host" {
                            forward = forward.header(name, value);
                        }
                    }
                    let answer = forward.body(body).send().await.expect("moto answers");
                    if lose.load(Ordering::SeqCst) == number {
                        return Response::builder()
                            .status(500)
                            .header("x-amzn-errortype", "InternalServerError")
                            .body(Body::from(r#"{"__type":"InternalServerError","message":"reply lost"}"#))
                            .expect("response");
                    }
                    let mut response = Response::builder().status(answer.status());
                    for (name, value) in answer.headers() {
                        response = response.header(name, value);
                    }
                    response
                        .body(Body::from(answer.bytes().await.expect("moto body")))
                        .expect("response")
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CountingProxy {
            url,
            log,
            seen,
            lose_reply_of,
            _server: server,
        }
    }

    /// Loses the reply of the `n`th request from now (1: the next one).
    fn lose_reply_of(&self, n: usize) {
        self.lose_reply_of
            .store(self.seen.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

/// One competition is three S3 `PUT`s and one DynamoDB `PutItem`; one vote is exactly one
/// DynamoDB request (`UpdateItem`) and nothing else; the closing vote is two `UpdateItem`s
/// (the refused attempt tells it it closes), and delivering the result reads the owner's
/// devices, checks the device's endpoint, publishes once, and marks the notification
/// delivered.
#[tokio::test]
async fn a_vote_is_one_database_request() {
    let proxy = CountingProxy::start().await;
    moto_config().await; // resets moto once for the binary, before this test makes anything
    let via_proxy = config_for(&proxy.url);
    let blobs = S3BlobStore::from_client(s3_client(&via_proxy), unique("thisthat"));
    blobs.create_bucket().await.expect("bucket");
    let database = DynamoDatabase::from_client(aws_sdk_dynamodb::Client::new(&via_proxy), unique("thisthat"));
    database.create_table().await.expect("table");
    let notifier = crate::notifier::notifier().await;
    let notifier = SnsNotifier::from_client(aws_sdk_sns::Client::new(&via_proxy), notifier.applications().clone());
    let rekognition = FakeRekognition::start(None).await;
    let backend = thisthat_core::Backend {
        blobs: Arc::new(blobs),
        database: Arc::new(database),
        notifier: Arc::new(notifier),
        classifier: Arc::new(classifier_at(rekognition.wire.url())),
    };
    let service = Thisthat::builder(backend)
        .delivery(DeliveryMode::Inline)
        .build()
        .expect("service");
    let owner = user("owner");
    service
        .register_device(thisthat_testkit::fixtures::device("owner"))
        .await
        .expect("register");
    proxy.take();

    let competition = service
        .create_competition(
            &owner,
            NewCompetition {
                title: Some("Which one?".into()),
                photos: photos::three(),
            },
        )
        .await
        .expect("create");
    let mut creation = proxy.take();
    creation.sort();
    // Each photo's original and its display variant, then the item.
    assert_eq!(
        creation,
        [
            "dynamodb:PutItem",
            "s3:PUT",
            "s3:PUT",
            "s3:PUT",
            "s3:PUT",
            "s3:PUT",
            "s3:PUT"
        ]
    );

    for i in 0..competition.votes_to_close - 1 {
        service
            .vote(&user(&format!("voter{i}")), &competition.id, (i % 3) as usize)
            .await
            .expect("vote");
        assert_eq!(proxy.take(), ["dynamodb:UpdateItem"], "vote {}", i + 1);
    }
    let last = service
        .vote(&user("closer"), &competition.id, 0)
        .await
        .expect("closing vote");
    assert!(last.closed.is_some());
    assert_eq!(
        proxy.take(),
        [
            "dynamodb:UpdateItem",       // refused: one vote remains, and the refusal carries the state
            "dynamodb:UpdateItem",       // counts it, closes, stores the outcome and the notification
            "dynamodb:UpdateItem",       // leases the notification for delivery
            "dynamodb:Query",            // the owner's devices
            "sns:GetEndpointAttributes", // still enabled, still the owner's
            "sns:Publish",
            "dynamodb:UpdateItem", // marks it delivered
        ]
    );
    assert!(rekognition.wire.violations().is_empty());
}

/// A vote whose answer is lost after DynamoDB applied it is retried by the SDK; the retry is
/// refused (the voter has voted), and the refused item's ballot, the same choice, is answered
/// with its receipt (`decide_vote`) instead of `AlreadyVoted`. The same for the closing vote,
/// whose receipt keeps the outcome. Either way the vote counted once, in no extra request.
#[tokio::test]
async fn a_vote_whose_answer_was_lost_is_recognised_on_retry() {
    use thisthat_core::{
        Status, Vote,
        ports::{Database, NotificationClaim},
    };
    let proxy = CountingProxy::start().await;
    moto_config().await;
    let database = DynamoDatabase::from_client(
        aws_sdk_dynamodb::Client::new(&config_for(&proxy.url)),
        unique("thisthat"),
    );
    database.create_table().await.expect("table");
    let competition = thisthat_testkit::fixtures::competition("owner", Status::Open, 2);
    database.insert_competition(&competition).await.expect("insert");
    let vote = |voter: &str, choice| Vote {
        competition: competition.id,
        voter: user(voter),
        choice,
    };

    proxy.take();
    proxy.lose_reply_of(1);
    let receipt = database.cast_vote(&vote("v1", 1)).await.expect("vote");
    assert_eq!(receipt.tally.counts(), &[0, 1, 0]);
    assert!(receipt.closed.is_none());
    assert_eq!(
        proxy.take(),
        ["dynamodb:UpdateItem", "dynamodb:UpdateItem"],
        "the SDK retried"
    );
    assert!(matches!(
        database.cast_vote(&vote("v1", 0)).await,
        Err(thisthat_core::Error::AlreadyVoted)
    ));

    // The closing vote's first request is refused (one vote remains); lose the reply of the
    // second, which closes.
    proxy.take();
    proxy.lose_reply_of(2);
    let receipt = database.cast_vote(&vote("v2", 2)).await.expect("closing vote");
    assert_eq!(
        proxy.take(),
        ["dynamodb:UpdateItem", "dynamodb:UpdateItem", "dynamodb:UpdateItem"],
        "refused, closed (reply lost), retried"
    );
    assert_eq!(receipt.tally.counts(), &[0, 1, 1]);
    assert!(receipt.closed.is_some(), "the retried close keeps its outcome");
    let stored = database.competition(&competition.id).await.expect("read");
    assert_eq!(stored.tally.total(), 2);
    let claimed = database
        .claim_notifications(&NotificationClaim {
            competition: None,
            now: std::time::SystemTime::now(),
            lease: std::time::Duration::from_secs(60),
            limit: 10,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
}
