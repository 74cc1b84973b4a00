//! A result push whose first delivery failed is delivered by the next maintenance pass of a
//! running `thisthat serve`, exactly once per device: over HTTP, with the outbox notifier's
//! webhook failing first and then recovering.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

mod common;

use assert_cmd::Command;

/// Every bounded wait in this test: the server's start (it is built in debug) and the passes.
const PATIENCE: Duration = Duration::from_secs(90);

/// One POST the stand-in webhook received.
#[derive(Debug, Clone)]
struct Received {
    endpoint: String,
    idempotency_key: String,
    status: u16,
}

/// A stand-in for a developer's push relay on loopback: it answers 503 until `recovered`,
/// then 200, and records every POST.
#[derive(Clone, Default)]
struct Relay {
    recovered: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Relay {
    fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The accepted POSTs by (device endpoint, idempotency key).
    fn accepted(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for r in self.received().into_iter().filter(|r| r.status == 200) {
            *counts.entry((r.endpoint, r.idempotency_key)).or_default() += 1;
        }
        counts
    }
}

async fn start_relay(relay: Relay) -> std::net::SocketAddr {
    let handler = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let relay = relay.clone();
        async move {
            let push: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let status = if relay.recovered.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            if let Ok(mut received) = relay.received.lock() {
                received.push(Received {
                    endpoint: push["endpoint"].as_str().unwrap_or_default().to_owned(),
                    idempotency_key: headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned(),
                    status,
                });
            }
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    let app = axum::Router::new().route("/push", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("relay port");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Waits until `done` holds, checking every 50 ms, for at most [`PATIENCE`].
async fn wait_until(what: &str, log: &std::path::Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; the server said:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_push_is_delivered_by_the_next_maintenance_pass_once_per_device() {
    let dir = std::env::temp_dir().join(format!("thisthat-webhook-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let relay = Relay::default();
    let relay_addr = start_relay(relay.clone()).await;
    let data = dir.join("data");
    let webhook = format!("http%3A%2F%2F{relay_addr}%2Fpush").replace(':', "%3A");
    // The rules come from the file: two votes close, a failed push is retried a second after it
    // was claimed, and a maintenance pass runs about every second.
    let config = dir.join("thisthat.toml");
    std::fs::write(
        &config,
        format!(
            "[backend]\nnotifier = \"outbox://{}?webhook={webhook}\"\nclassifier = \"pixels:\"\n\
             [rules]\nvotes_to_close = 2\nnotification_lease = 1\n\
             [maintenance]\ninterval = 1\n\
             [server]\ndata_dir = \"{}\"\n",
            data.join("outbox").display(),
            data.display()
        ),
    )
    .expect("config");
    let log = dir.join("serve.log");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("THISTHAT_DATA_DIR")
        .env_remove("THISTHAT_NOTIFIER")
        .env_remove("THISTHAT_MAINTENANCE_INTERVAL")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let serving = common::Serving::start(command, || std::fs::read_to_string(&log).unwrap_or_default());
    let base = serving.base();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let passes = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("maintenance pass done")
            .count()
    };
    let story = async {
        let deadline = Instant::now() + PATIENCE;
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not come up:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let token = |user: &str| {
            let output = Command::cargo_bin("thisthat")
                .expect("binary")
                .args(["token", "--user", user, "--config"])
                .arg(&config)
                .output()
                .expect("token");
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        let alice = token("alice");
        for (platform, device) in [("fcm", "phone-1"), ("apns", "tablet-1")] {
            let registered = client
                .post(format!("{base}/v1/devices"))
                .bearer_auth(&alice)
                .json(&serde_json::json!({"platform": platform, "token": device}))
                .send()
                .await
                .expect("register");
            assert!(registered.status().is_success(), "{:?}", registered.text().await);
        }
        let form = [
            thisthat_testkit::photos::cat_png(),
            thisthat_testkit::photos::coffee_png(),
            thisthat_testkit::photos::rocket_jpeg(),
        ]
        .into_iter()
        .fold(
            reqwest::multipart::Form::new().text("title", "Which one?"),
            |form, photo| form.part("photo", reqwest::multipart::Part::bytes(photo.to_vec()).file_name("p")),
        );
        let created = client
            .post(format!("{base}/v1/competitions"))
            .bearer_auth(&alice)
            .multipart(form)
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "{:?}", created.text().await);
        let created: serde_json::Value = created.json().await.expect("json");
        let competition = created["id"].as_str().expect("id").to_owned();
        for voter in ["bob", "carol"] {
            let voted = client
                .post(format!("{base}/v1/competitions/{competition}/votes"))
                .bearer_auth(token(voter))
                .json(&serde_json::json!({"choice": 1}))
                .send()
                .await
                .expect("vote");
            assert_eq!(voted.status(), 200, "{:?}", voted.text().await);
        }
        // The closing vote's request tried to deliver inline (or a maintenance pass that
        // claimed the push first did): the relay refuses both devices, and accepts nothing.
        let devices = [
            "outbox:alice:fcm:phone-1".to_owned(),
            "outbox:alice:apns:tablet-1".to_owned(),
        ];
        wait_until("a failed first delivery to each device", &log, || {
            let received = relay.received();
            devices
                .iter()
                .all(|d| received.iter().any(|r| &r.endpoint == d && r.status == 503))
        })
        .await;
        assert!(relay.accepted().is_empty(), "{:?}", relay.received());
        let key = relay.received()[0].idempotency_key.clone();
        assert!(key.contains(&competition), "{key}");

        relay.recovered.store(true, Ordering::SeqCst);
        wait_until("the maintenance pass to deliver to both devices", &log, || {
            relay.accepted().len() == devices.len()
        })
        .await;
        // Two more passes end after both deliveries: whatever a pass could still send, it
        // has sent by then.
        let seen = passes();
        wait_until("two more maintenance passes", &log, || passes() >= seen + 2).await;
        let accepted = relay.accepted();
        let expected: BTreeMap<(String, String), usize> =
            devices.iter().map(|d| ((d.clone(), key.clone()), 1)).collect();
        assert_eq!(accepted, expected, "exactly once per device: {:?}", relay.received());
        // The pushes that reached the relay are the ones in the outbox, under one key.
        let outbox = std::fs::read_to_string(data.join("outbox/outbox.jsonl")).unwrap_or_default();
        assert!(outbox.contains(&key), "{outbox}");
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(story)).await;
    drop(serving);
    if outcome.is_ok() {
        // Nothing is left pending once the server has stopped: a one-shot pass finds nothing.
        let output = Command::cargo_bin("thisthat")
            .expect("binary")
            .args(["deliver", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .output()
            .expect("deliver");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            stdout.contains("delivered 0 notifications (0 left pending"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(relay.accepted().values().sum::<usize>(), 2, "{:?}", relay.received());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
