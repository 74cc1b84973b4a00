//! End-to-end: the running server driven by a real HTTP client on loopback, on the embedded
//! backend (SQLite, files on disk) with in-memory notifier and classifier to observe.

use std::{path::PathBuf, sync::Arc, time::Duration};

use reqwest::{Client, Response, StatusCode, multipart};
use serde_json::{Value, json};
use thisthat_core::{Backend, Thisthat, UserId};
use thisthat_local::{FileBlobStore, SqliteDatabase};
use thisthat_server::{AppState, Auth, BlobServer, issue_hs256};
use thisthat_testkit::{
    faults::ManualClock,
    memory::{MemoryClassifier, MemoryNotifier},
    photos,
};

const SECRET: &[u8] = b"test secret for hs256 tokens, 32+ bytes";

struct Server {
    base: String,
    http: Client,
    notifier: Arc<MemoryNotifier>,
    classifier: Arc<MemoryClassifier>,
    clock: Arc<ManualClock>,
    signer: thisthat_core::signing::UrlSigner,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let dir = std::env::temp_dir().join(format!("thisthat-api-{}", thisthat_core::CompetitionId::new()));
        let clock = Arc::new(ManualClock::new(std::time::SystemTime::now()));
        let files = FileBlobStore::open(dir.join("blobs"), &format!("{base}/blobs/"), vec![9; 32])
            .expect("files")
            .with_clock(clock.clone());
        let signer = files.signer().clone();
        let blobs: Arc<FileBlobStore> = Arc::new(files);
        let notifier = Arc::new(MemoryNotifier::new());
        let classifier = Arc::new(MemoryClassifier::new());
        let backend = Backend {
            blobs: blobs.clone(),
            database: Arc::new(SqliteDatabase::open(&dir.join("thisthat.db")).expect("sqlite")),
            notifier: notifier.clone(),
            classifier: classifier.clone(),
        };
        let service = Thisthat::builder(backend)
            .clock(clock.clone())
            .build()
            .expect("service");
        let state = AppState {
            service,
            auth: Auth::hs256(SECRET),
            blobs: Some(BlobServer {
                store: blobs,
                signer: signer.clone(),
            }),
            clock: clock.clone(),
        };
        let router = thisthat_server::router(state);
        tokio::spawn(async move { thisthat_server::serve(listener, router, std::future::pending()).await });
        Server {
            base,
            http: Client::new(),
            notifier,
            classifier,
            clock,
            signer,
            dir,
        }
    }

    /// GETs an API path (no token) and reads its JSON answer.
    async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("send");
        response.json().await.expect("json")
    }

    fn token(&self, user: &str) -> String {
        issue_hs256(SECRET, &UserId::new(user).expect("user"), Duration::from_secs(3600)).expect("token")
    }

    async fn create(&self, owner: &str, photos: Vec<bytes::Bytes>) -> Response {
        let mut form = multipart::Form::new().text("title", "Which one?");
        for (i, p) in photos.into_iter().enumerate() {
            form = form.part(
                "photo",
                multipart::Part::bytes(p.to_vec()).file_name(format!("{i}.bin")),
            );
        }
        self.http
            .post(format!("{}/v1/competitions", self.base))
            .bearer_auth(self.token(owner))
            .multipart(form)
            .send()
            .await
            .expect("send")
    }

    async fn vote(&self, voter: &str, id: &str, choice: Value) -> Response {
        self.http
            .post(format!("{}/v1/competitions/{id}/votes", self.base))
            .bearer_auth(self.token(voter))
            .json(&json!({ "choice": choice }))
            .send()
            .await
            .expect("send")
    }
}

async fn error_of(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json error body");
    body["error"].clone()
}

async fn created(server: &Server, owner: &str) -> String {
    let r = server.create(owner, photos::three()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    body["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn the_whole_story_over_http() {
    let s = Server::start().await;
    let r = s
        .http
        .post(format!("{}/v1/devices", s.base))
        .bearer_auth(s.token("alice"))
        .json(&json!({"platform": "fcm", "token": "alice-phone"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = created(&s, "alice").await;

    let feed: Value = s.get_json("/v1/feed").await;
    assert_eq!(feed["competitions"][0]["id"], json!(id));

    let urls: Value = s.get_json(&format!("/v1/competitions/{id}/photos")).await;
    let first = urls[0]["url"].as_str().expect("url");
    let photo = s.http.get(first).send().await.expect("download");
    assert_eq!(photo.status(), StatusCode::OK);
    // Voters get the display variant: a JPEG, never sniffed as anything else.
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    assert_eq!(photo.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        photo.headers()["content-disposition"],
        "inline; filename=\"0.display.jpg\""
    );
    let variant = photo.bytes().await.expect("bytes");
    assert_eq!(thisthat_core::media::sniff(&variant).map(|i| i.width).ok(), Some(451));
    assert_ne!(variant, photos::cat_png());

    // The originals: the owner only.
    let r = s
        .http
        .get(format!("{}/v1/competitions/{id}/originals", s.base))
        .bearer_auth(s.token("alice"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let originals: Value = r.json().await.expect("json");
    let original = s
        .http
        .get(originals[0]["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(original.headers()["content-type"], "image/png");
    assert_eq!(original.headers()["x-content-type-options"], "nosniff");
    assert_eq!(original.bytes().await.expect("bytes"), photos::cat_png());
    for who in [Some("mallory"), None] {
        let mut request = s.http.get(format!("{}/v1/competitions/{id}/originals", s.base));
        if let Some(who) = who {
            request = request.bearer_auth(s.token(who));
        }
        let status = request.send().await.expect("send").status();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNAUTHORIZED,
            "{who:?}: {status}"
        );
    }

    let mut last = Value::Null;
    for i in 0..24 {
        let r = s.vote(&format!("voter{i}"), &id, json!(i % 3)).await;
        assert_eq!(r.status(), StatusCode::OK, "vote {i}");
        last = r.json().await.expect("json");
    }
    assert_eq!(last["tally"], json!([8, 8, 8]));
    assert_eq!(last["closed"]["winners"], json!([0, 1, 2]));
    let c: Value = s.get_json(&format!("/v1/competitions/{id}")).await;
    assert_eq!(c["status"], "closed");
    let sent = s.notifier.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.body, "It's a tie: photos 1, 2 and 3 got 8 of 24 votes each.");
}

#[tokio::test]
async fn every_vote_rejection_has_its_status_and_code() {
    let s = Server::start().await;
    let id = created(&s, "alice").await;
    assert_eq!(s.vote("bob", &id, json!(0)).await.status(), StatusCode::OK);
    assert_eq!(
        error_of(s.vote("alice", &id, json!(0)).await, StatusCode::FORBIDDEN).await["code"],
        "own_competition"
    );
    assert_eq!(
        error_of(s.vote("bob", &id, json!(1)).await, StatusCode::CONFLICT).await["code"],
        "already_voted"
    );
    let e = error_of(s.vote("carol", &id, json!(3)).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_input"), Some("choice"))
    );
    let unknown = thisthat_core::CompetitionId::new().to_string();
    assert_eq!(
        error_of(s.vote("carol", &unknown, json!(0)).await, StatusCode::NOT_FOUND).await["code"],
        "not_found"
    );
    let e = error_of(s.vote("carol", "not-an-id", json!(0)).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(e["field"], "competition_id");
    for i in 0..23 {
        s.vote(&format!("v{i}"), &id, json!(0)).await;
    }
    assert_eq!(
        error_of(s.vote("late", &id, json!(0)).await, StatusCode::CONFLICT).await["code"],
        "closed"
    );
    let c: Value = s.get_json(&format!("/v1/competitions/{id}")).await;
    assert_eq!(c["tally"], json!([24, 0, 0]));
}

/// Words of Rust's and serde's that a message to a client must never carry.
const RUST_WORDS: [&str; 12] = [
    "usize",
    "u8",
    "u64",
    "i64",
    "f64",
    "String",
    "invalid type",
    "expected",
    "struct",
    "enum",
    "variant",
    "deserialize",
];

fn assert_plain(e: &Value) {
    let message = e["message"].as_str().expect("a message");
    for word in RUST_WORDS {
        assert!(!message.contains(word), "{message:?} names {word:?}");
    }
}

#[tokio::test]
async fn a_choice_of_the_wrong_type_is_invalid_choice_in_plain_words() {
    let s = Server::start().await;
    let id = created(&s, "alice").await;
    for choice in [
        json!(-1),
        json!("a"),
        json!(1.5),
        json!(null),
        json!(true),
        json!([0]),
        json!({"n": 0}),
        json!(1e30),
    ] {
        let e = error_of(s.vote("bob", &id, choice.clone()).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            (e["code"].as_str(), e["field"].as_str()),
            (Some("invalid_input"), Some("choice")),
            "{choice}"
        );
        assert_plain(&e);
    }
    let vote = |body: Value| {
        s.http
            .post(format!("{}/v1/competitions/{id}/votes", s.base))
            .bearer_auth(s.token("bob"))
            .json(&body)
            .send()
    };
    let e = error_of(vote(json!({})).await.expect("send"), StatusCode::BAD_REQUEST).await;
    assert_eq!(e["field"], "choice", "a missing choice");
    for body in [json!({"choice": 0, "weight": 9}), json!([0]), json!(0)] {
        let e = error_of(vote(body.clone()).await.expect("send"), StatusCode::BAD_REQUEST).await;
        assert_eq!(e["field"], "body", "{body}");
        assert_plain(&e);
    }
    let c: Value = s.get_json(&format!("/v1/competitions/{id}")).await;
    assert_eq!(c["tally"], json!([0, 0, 0]), "no refused vote was counted");
    // 2.0 is the whole number 2, as JSON Schema (and so the OpenAPI document) counts integers.
    assert_eq!(s.vote("bob", &id, json!(2.0)).await.status(), StatusCode::OK);
}

/// Every JSON body of the API, each field given the wrong type: the error names the field
/// and no Rust type.
#[tokio::test]
async fn no_json_body_error_names_a_rust_type() {
    let s = Server::start().await;
    let png = json!({"media_type": "image/png"});
    let cases = [
        ("/v1/uploads", json!({"photos": "three"}), "photos"),
        ("/v1/uploads", json!({"photos": [png, png, 7]}), "photos"),
        (
            "/v1/uploads",
            json!({"photos": [png, png, {"media_type": 7}]}),
            "media_type",
        ),
        (
            "/v1/uploads",
            json!({"photos": [png, png, {"media_type": "image/png", "x": 1}]}),
            "photos",
        ),
        ("/v1/uploads", json!({"title": 5, "photos": [png, png, png]}), "title"),
        ("/v1/uploads", json!({"title": "t"}), "photos"),
        (
            "/v1/uploads",
            json!({"photos": [png, png, png], "colour": "red"}),
            "body",
        ),
        ("/v1/devices", json!({"platform": 5, "token": "t"}), "platform"),
        ("/v1/devices", json!({"platform": "windows", "token": "t"}), "platform"),
        ("/v1/devices", json!({"platform": "fcm", "token": 5}), "token"),
        ("/v1/devices", json!({"platform": "fcm"}), "token"),
        (
            "/v1/devices",
            json!({"platform": "fcm", "token": "t", "user": "eve"}),
            "body",
        ),
        ("/v1/devices", json!("fcm"), "body"),
    ];
    for (path, body, field) in cases {
        let r = s
            .http
            .post(format!("{}{path}", s.base))
            .bearer_auth(s.token("alice"))
            .json(&body)
            .send()
            .await
            .expect("send");
        let e = error_of(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(
            (e["code"].as_str(), e["field"].as_str()),
            (Some("invalid_input"), Some(field)),
            "{path} {body}"
        );
        assert_plain(&e);
    }
    for (content_type, body) in [("application/json", "{\"choice\": "), ("text/plain", "{}")] {
        let r = s
            .http
            .post(format!("{}/v1/devices", s.base))
            .bearer_auth(s.token("alice"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("send");
        let e = error_of(r, StatusCode::BAD_REQUEST).await;
        assert_eq!(e["field"], "body");
        assert_plain(&e);
    }
}

/// What the framework would answer in plain text (a body that is not multipart, a path
/// segment that is not UTF-8, a method a path does not take) is JSON like every error.
#[tokio::test]
async fn every_refusal_is_json() {
    let s = Server::start().await;
    let r = s
        .http
        .post(format!("{}/v1/competitions", s.base))
        .bearer_auth(s.token("alice"))
        .json(&json!({"photos": []}))
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::BAD_REQUEST).await["field"], "body");
    let r = s
        .http
        .get(format!("{}/v1/competitions/%FF", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::BAD_REQUEST).await["field"], "competition_id");
    let r = s
        .http
        .delete(format!("{}/v1/devices/%C3%28", s.base))
        .bearer_auth(s.token("alice"))
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::BAD_REQUEST).await["field"], "token");
    let r = s.http.delete(format!("{}/v1/feed", s.base)).send().await.expect("send");
    assert_eq!(r.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET,HEAD"));
    assert_eq!(
        error_of(r, StatusCode::METHOD_NOT_ALLOWED).await["code"],
        "method_not_allowed"
    );
}

/// Sends `head` and then `body_len` bytes of body on a new connection, the body from its own
/// task (as a client still uploading when the answer comes), and reads the whole answer: the
/// status line and headers, lower-cased, and the body.
async fn raw_exchange(base: &str, head: String, body_len: usize) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let upload = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![0u8; 64 * 1024];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            write.write_all(&chunk[..n]).await?;
            left -= n;
        }
        // Dropping the write half would shut it down, and hyper drops a connection whose
        // client half-closes: hold it until the answer is read.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    // Read until the server closes. A reset after the answer (the kernel discarding the upload
    // nobody reads) ends the read too; what came before it is kept in `answer`.
    let ended = tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut answer))
        .await
        .expect("the server ends the connection within 30 s");
    upload.abort();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no whole header block in {answer:?} ({ended:?})"));
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    (head, answer[split + 4..].to_vec())
}

#[tokio::test]
async fn an_upload_refused_before_its_body_is_read_is_answered_and_closed() {
    let s = Server::start().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let size = 8 * 1024 * 1024;
    let head = format!(
        "POST /v1/competitions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: {size}\r\n\r\n"
    );
    let (head, body) = raw_exchange(&s.base, head, size).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.lines().any(|l| l.trim() == "connection: close"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|l| l.trim().parse().ok())
        .expect("a content length");
    assert_eq!(body.len(), length, "the whole answer arrived");
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["error"]["code"], "unauthenticated");

    // A body that was read to its end leaves the connection open for the next request.
    let json = r#"{"platform": "fcm", "token": "t"}"#;
    let r = s
        .http
        .post(format!("{}/v1/devices", s.base))
        .bearer_auth(s.token("alice"))
        .header("content-type", "application/json")
        .body(json)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("connection").is_none(), "{:?}", r.headers());
}

/// The status of a request sent as written, path and query unnormalised (a client library
/// would resolve `.` and `..` before sending).
async fn raw_status(base: &str, method: &str, path_and_query: &str) -> String {
    let head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        base.trim_start_matches("http://")
    );
    let (head, _) = raw_exchange(base, head, 0).await;
    head.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_signed_url_works_only_as_handed_out() {
    let s = Server::start().await;
    let id = created(&s, "alice").await;
    let urls: Value = s.get_json(&format!("/v1/competitions/{id}/photos")).await;
    let url = urls[0]["url"].as_str().expect("url").to_string();
    let path_and_query = url.strip_prefix(&s.base).expect("on this server").to_string();
    assert_eq!(raw_status(&s.base, "GET", &path_and_query).await, "http/1.1 200 ok");
    let (head, signature) = path_and_query.split_once("x-signature=").expect("signed");
    let other = format!("competitions/{id}/");
    let dotted = |to: &str| path_and_query.replacen(&other, to, 1);
    for variant in [
        format!("{head}x-signature={}", signature.to_uppercase()),
        format!("{head}x-signature=%{:02x}{}", signature.as_bytes()[0], &signature[1..]),
        format!("{head}x-signature={signature}&x-signature={signature}"),
        format!("{path_and_query}&x-extra=1"),
        dotted(&format!("competitions/{id}/./")),
        dotted(&format!(
            "competitions/{}/../{id}/",
            thisthat_core::CompetitionId::new()
        )),
        dotted(&format!(
            "competitions/{}/%2e%2e/{id}/",
            thisthat_core::CompetitionId::new()
        )),
        dotted(&format!(
            "competitions/{}/%2E%2E/{id}/",
            thisthat_core::CompetitionId::new()
        )),
    ] {
        assert_ne!(variant, path_and_query);
        assert_eq!(
            raw_status(&s.base, "GET", &variant).await,
            "http/1.1 403 forbidden",
            "{variant}"
        );
    }
}

#[tokio::test]
async fn a_signed_upload_is_bounded_by_the_server_whatever_the_url_says() {
    let s = Server::start().await;
    let r = s
        .http
        .post(format!("{}/v1/uploads", s.base))
        .bearer_auth(s.token("alice"))
        .json(
            &json!({"photos": [{"media_type": "image/png"}, {"media_type": "image/png"}, {"media_type": "image/png"}]}),
        )
        .send()
        .await
        .expect("send");
    let ticket: Value = r.json().await.expect("json");
    let handed_out = ticket["uploads"][0]["url"].as_str().expect("url");
    let key = handed_out
        .strip_prefix(&format!("{}/blobs/", s.base))
        .and_then(|k| k.split('?').next())
        .expect("a key");
    // A URL this server's secret signed, stating a limit far over the server's 10 MiB.
    let generous = s
        .signer
        .sign(
            &thisthat_core::BlobKey::new(key).expect("key"),
            &thisthat_core::ports::SignedUrlRequest {
                method: thisthat_core::ports::SignedMethod::Put {
                    content_type: "image/png".into(),
                    max_size: 1 << 40,
                },
                expires_in: Duration::from_secs(600),
                served_as: None,
            },
            thisthat_core::Clock::now(&*s.clock),
        )
        .expect("sign")
        .url;
    let over = photos::png_of_size(10 * 1024 * 1024 + 1);
    let r = s
        .http
        .put(&generous)
        .header("content-type", "image/png")
        .body(over)
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::PAYLOAD_TOO_LARGE).await["code"], "too_large");

    // Declared over the limit: refused before the body is read, and the connection closed.
    let size = 64 * 1024 * 1024;
    let head = format!(
        "PUT {} HTTP/1.1\r\nhost: {}\r\ncontent-type: image/png\r\ncontent-length: {size}\r\n\r\n",
        generous.strip_prefix(&s.base).expect("on this server"),
        s.base.trim_start_matches("http://"),
    );
    let (head, body) = raw_exchange(&s.base, head, size).await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.lines().any(|l| l.trim() == "connection: close"), "{head}");
    let error: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(error["error"]["code"], "too_large");

    let within = photos::cat_png();
    let r = s
        .http
        .put(&generous)
        .header("content-type", "image/png")
        .body(within)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "nothing was stored by the refused uploads"
    );
}

#[tokio::test]
async fn bad_photos_are_refused_with_their_status() {
    let s = Server::start().await;
    let two = photos::three().into_iter().take(2).collect();
    let e = error_of(s.create("alice", two).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(e["field"], "photos");
    let five = photos::three().into_iter().cycle().take(5).collect();
    assert_eq!(
        error_of(s.create("alice", five).await, StatusCode::BAD_REQUEST).await["field"],
        "photos"
    );
    let mut gif = photos::three();
    gif[0] = photos::gif();
    assert_eq!(
        error_of(s.create("alice", gif).await, StatusCode::UNSUPPORTED_MEDIA_TYPE).await["code"],
        "unsupported_media_type"
    );
    let mut big = photos::three();
    big[2] = photos::png_of_size(10 * 1024 * 1024 + 1);
    assert_eq!(
        error_of(s.create("alice", big).await, StatusCode::PAYLOAD_TOO_LARGE).await["code"],
        "too_large"
    );
    let unsafe_photo = photos::coffee_png();
    s.classifier
        .flag_unsafe(&unsafe_photo, "violence", 0.99)
        .expect("script");
    let mut flagged = photos::three();
    flagged[1] = unsafe_photo;
    assert_eq!(
        error_of(s.create("alice", flagged).await, StatusCode::UNPROCESSABLE_ENTITY).await["code"],
        "unsafe_content"
    );
    // Nothing of any rejected competition was kept.
    let feed: Value = s.get_json("/v1/feed").await;
    assert_eq!(feed["competitions"], json!([]));
    assert!(
        !s.dir.join("blobs/competitions").exists()
            || std::fs::read_dir(s.dir.join("blobs/competitions"))
                .expect("dir")
                .next()
                .is_none()
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let s = Server::start().await;
    let huge = bytes::Bytes::from(vec![0u8; 31 * 1024 * 1024]);
    let r = s.create("alice", vec![huge]).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn writes_need_a_valid_token() {
    let s = Server::start().await;
    let url = format!("{}/v1/devices", s.base);
    let body = json!({"platform": "fcm", "token": "t"});
    let missing = s.http.post(&url).json(&body).send().await.expect("send");
    assert_eq!(
        error_of(missing, StatusCode::UNAUTHORIZED).await["code"],
        "unauthenticated"
    );
    let forged = issue_hs256(
        b"another secret entirely, also 32 bytes",
        &UserId::new("alice").expect("user"),
        Duration::from_secs(60),
    )
    .expect("token");
    assert_eq!(
        s.http
            .post(&url)
            .bearer_auth(forged)
            .json(&body)
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - 3600;
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": an_hour_ago}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .expect("token");
    let r = s
        .http
        .post(&url)
        .bearer_auth(expired)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "expired tokens are refused");
    let no_sub = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": an_hour_ago + 7200}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .expect("token");
    assert_eq!(
        s.http
            .post(&url)
            .bearer_auth(no_sub)
            .json(&body)
            .send()
            .await
            .expect("send")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong_scheme = s
        .http
        .post(&url)
        .header("authorization", "Basic YWxpY2U6")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(wrong_scheme.status(), StatusCode::UNAUTHORIZED);
    let reads = s.http.get(format!("{}/v1/feed", s.base)).send().await.expect("send");
    assert_eq!(reads.status(), StatusCode::OK, "reads work without a token");
}

#[tokio::test]
async fn signed_uploads_over_http_and_tampering() {
    let s = Server::start().await;
    let begin = json!({"title": "direct", "photos": [{"media_type": "image/png"}, {"media_type": "image/jpeg"}, {"media_type": "image/webp"}]});
    let r = s
        .http
        .post(format!("{}/v1/uploads", s.base))
        .bearer_auth(s.token("alice"))
        .json(&begin)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::CREATED);
    let ticket: Value = r.json().await.expect("json");
    let id = ticket["competition"].as_str().expect("id").to_string();
    let uploads = ticket["uploads"].as_array().expect("uploads").clone();

    let first = uploads[0]["url"].as_str().expect("url").to_string();
    let put = |url: String, content_type: &'static str, body: bytes::Bytes| {
        let http = s.http.clone();
        async move {
            http.put(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .expect("send")
                .status()
        }
    };
    let forged = first.replace("x-max-size=10485760", "x-max-size=99999999");
    assert_ne!(forged, first);
    assert_eq!(put(forged, "image/png", photos::cat_png()).await, StatusCode::FORBIDDEN);
    let mut bad_sig = first.clone();
    let last = bad_sig.pop();
    bad_sig.push(if last == Some('0') { '1' } else { '0' });
    assert_ne!(bad_sig, first);
    assert_eq!(
        put(bad_sig, "image/png", photos::cat_png()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(first.clone(), "image/gif", photos::cat_png()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let over = photos::png_of_size(10 * 1024 * 1024 + 1);
    assert_eq!(
        put(first.clone(), "image/png", over).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "over the signed size"
    );

    for (upload, (body, content_type)) in
        uploads.iter().zip(
            photos::three()
                .into_iter()
                .zip(["image/png", "image/jpeg", "image/webp"]),
        )
    {
        let status = put(upload["url"].as_str().expect("url").to_string(), content_type, body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    assert_eq!(
        put(first.clone(), "image/png", photos::coffee_png()).await,
        StatusCode::CONFLICT,
        "no replacing a photo"
    );
    let r = s
        .http
        .post(format!("{}/v1/uploads/{id}/finish", s.base))
        .bearer_auth(s.token("alice"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let c: Value = r.json().await.expect("json");
    assert_eq!(c["status"], "open");

    s.clock.advance(Duration::from_secs(16 * 60));
    let urls: Value = s.get_json(&format!("/v1/competitions/{id}/photos")).await;
    let fresh = urls[0]["url"].as_str().expect("url").to_string();
    assert_eq!(s.http.get(&fresh).send().await.expect("send").status(), StatusCode::OK);
    s.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        s.http.get(&fresh).send().await.expect("send").status(),
        StatusCode::FORBIDDEN,
        "expired URLs are refused"
    );
}

#[tokio::test]
async fn errors_are_json_with_request_ids() {
    let s = Server::start().await;
    let r = s
        .http
        .get(format!("{}/v1/nothing-here", s.base))
        .send()
        .await
        .expect("send");
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(error_of(r, StatusCode::NOT_FOUND).await["code"], "not_found");
    let r = s
        .http
        .get(format!("{}/v1/feed?cursor=garbage", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::BAD_REQUEST).await["field"], "cursor");
    let r = s
        .http
        .get(format!("{}/v1/feed?limit=0", s.base))
        .send()
        .await
        .expect("send");
    assert_eq!(error_of(r, StatusCode::BAD_REQUEST).await["field"], "limit");
    let doc: Value = s.get_json("/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/v1/competitions",
        "/v1/competitions/{id}/votes",
        "/v1/uploads/{id}/finish",
        "/v1/feed",
        "/v1/devices/{token}",
    ] {
        assert!(doc["paths"][path].is_object(), "the OpenAPI document describes {path}");
    }
}

/// Issue 13's three photos, as a hostile client sent them: refused over HTTP, nothing in the
/// feed, nothing stored.
#[tokio::test]
async fn the_three_photos_of_issue_13_are_refused() {
    let s = Server::start().await;
    let hostile = photos::hostile();
    for (name, status) in [
        ("a PNG cut after 100 bytes", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (
            "a PNG header followed by HTML and a script",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a 74-byte PNG declaring 60,000 x 60,000 pixels",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let photo = hostile.iter().find(|h| h.name == name).expect("in the hostile set");
        if name.starts_with("a 74-byte") {
            assert_eq!(photo.bytes.len(), 74);
        }
        let mut three = photos::three();
        three[0] = photo.bytes.clone();
        let error = error_of(s.create("alice", three).await, status).await;
        assert!(
            error["code"] == "unsupported_media_type" || error["code"] == "too_large",
            "{name}: {error}"
        );
    }
    let feed: Value = s.get_json("/v1/feed").await;
    assert_eq!(feed["competitions"], json!([]));
    assert!(
        !s.dir.join("blobs/competitions").exists()
            || std::fs::read_dir(s.dir.join("blobs/competitions"))
                .expect("dir")
                .next()
                .is_none(),
        "no blob of a refused competition is kept"
    );
}

/// Issue 13's "done when": a 4032 x 3024 phone photo with GPS in its EXIF and XMP is served to
/// voters at 1280 px or less with no metadata, and no voter's URL reaches its original (a
/// voter's URL rewritten to the original's key is refused: the signature binds the key).
#[tokio::test]
async fn a_phone_photo_reaches_voters_small_and_without_its_gps() {
    let s = Server::start().await;
    let phone = photos::phone_jpeg();
    assert!(photos::metadata_markers(&phone).contains(&"GPS (EXIF latitude 51/1)"));
    let mut three = photos::three();
    three[0] = phone.clone();
    let r = s.create("alice", three).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.expect("json");
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["photos"][0]["width"], 4032);
    assert_eq!(created["photos"][0]["display"]["width"], 960);
    assert_eq!(created["photos"][0]["display"]["height"], 1280);

    let urls: Value = s.get_json(&format!("/v1/competitions/{id}/photos")).await;
    let first = urls[0]["url"].as_str().expect("url");
    let r = s.http.get(first).send().await.expect("download");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let served = r.bytes().await.expect("bytes");
    let info = thisthat_core::media::sniff(&served).expect("an image");
    assert!(info.width.max(info.height) <= 1280, "{info:?}");
    assert_eq!(photos::metadata_markers(&served), Vec::<&str>::new());
    assert!(served.len() * 5 < phone.len(), "{} vs {}", served.len(), phone.len());

    for url in urls.as_array().expect("array") {
        let url = url["url"].as_str().expect("url");
        assert!(url.contains(".display."), "{url}");
        let body = s
            .http
            .get(url)
            .send()
            .await
            .expect("download")
            .bytes()
            .await
            .expect("bytes");
        assert_ne!(body, phone);
        let original = url.replace("0.display.jpg", "0.jpg");
        if original != url {
            let status = s.http.get(&original).send().await.expect("send").status();
            assert!(status.is_client_error(), "{original}: {status}");
        }
    }
}
