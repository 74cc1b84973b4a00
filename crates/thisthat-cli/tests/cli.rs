//! The `thisthat` binary as a user runs it.

use assert_cmd::Command;

mod common;

#[test]
fn demo_plays_the_whole_story_on_the_embedded_backend() {
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .arg("demo")
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("cast the 24th vote: tally [6,15,3]"), "{stdout}");
    assert!(
        stdout.contains("a 25th vote is refused: 409 Conflict \"closed\""),
        "{stdout}"
    );
    assert!(stdout.contains("push to alice (fcm): Results are in: Which one should be my wallpaper? / Photo 2 won with 15 of 24 votes, 9 ahead of the runner-up."), "{stdout}");
}

#[test]
fn tokens_are_stable_per_data_dir_and_users_are_validated() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-{}", std::process::id()));
    let token = |user: &str| {
        Command::cargo_bin("thisthat")
            .expect("binary")
            .args(["token", "--user", user, "--data-dir"])
            .arg(&dir)
            .output()
            .expect("run")
    };
    let missing = token("alice");
    assert!(
        !missing.status.success(),
        "no secret is made up for a data dir no server has used"
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("jwt.key does not exist"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("jwt.key"), [7u8; 32]).expect("key");
    let ok = token("alice");
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).split('.').count(),
        3,
        "a JWT has three parts"
    );
    assert!(dir.join("jwt.key").exists());
    let bad = token("../alice");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid user_id"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_an_unknown_adapter_with_what_to_do() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-serve-{}", std::process::id()));
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .args([
            "serve",
            "--addr",
            "127.0.0.1:9",
            "--database",
            "s4://nowhere",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // It fails before listening: port 9 is never taken.
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(
        stderr.contains("no adapter for the s4:// scheme") && stderr.contains("sqlite"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With production auth, a classifier that cannot screen (`pixels:`) stops `serve`
/// before it listens, saying what to do; `--allow-unscreened` lets it start.
#[test]
fn serve_with_production_auth_refuses_to_run_unscreened() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-unscreened-{}", std::process::id()));
    let args = [
        "serve",
        "--addr",
        "127.0.0.1:9",
        "--jwks-url",
        "https://idp.example.invalid/.well-known/jwks.json",
        "--jwt-issuer",
        "https://idp.example.invalid/",
        "--classifier",
        "pixels:",
        "--database",
        "sqlite::memory:",
        "--data-dir",
    ];
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .args(args)
        .arg(&dir)
        .env_remove("THISTHAT_ALLOW_UNSCREENED")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(
        stderr.contains("cannot screen content") && stderr.contains("--allow-unscreened"),
        "{stderr}"
    );

    // Allowed explicitly, it starts (on any free port) and says where it listens.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"))
        .args(args.map(|a| if a == "127.0.0.1:9" { "127.0.0.1:0" } else { a }))
        .arg(&dir)
        .arg("--allow-unscreened")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = sender.send(line);
    });
    let first = receiver.recv_timeout(std::time::Duration::from_secs(120));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let first = first.expect("the server printed its address within two minutes");
    assert!(first.starts_with("thisthat API on http://127.0.0.1:"), "{first:?}");
}

/// The embedded model screens (open_nsfw), so production auth starts with it, whether named
/// (`model:`) or by default; without its screen (`model:?screen=false`) it is refused as
/// `pixels:` is.
#[test]
fn serve_with_production_auth_runs_on_the_embedded_screen() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-screened-{}", std::process::id()));
    let serve = |classifier: Option<&str>| {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
        command.args([
            "serve",
            "--jwks-url",
            "https://idp.example.invalid/.well-known/jwks.json",
            "--jwt-issuer",
            "https://idp.example.invalid/",
            "--database",
            "sqlite::memory:",
            "--data-dir",
        ]);
        command.arg(&dir).env_remove("THISTHAT_ALLOW_UNSCREENED");
        if let Some(classifier) = classifier {
            command.args(["--classifier", classifier]);
        }
        command
    };

    let refused = serve(Some("model:?screen=false"))
        .args(["--addr", "127.0.0.1:9"])
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    assert!(
        stderr.contains("cannot screen content") && stderr.contains("model:"),
        "{stderr}"
    );

    // Each starts (on a free port) and says where it listens.
    for classifier in [Some("model:"), None] {
        let mut command = serve(classifier);
        command.stderr(std::process::Stdio::null());
        drop(common::Serving::start(command, || format!("{classifier:?}")));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_answers_requests_on_a_mix_of_adapters() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-mix-{}", std::process::id()));
    let log = std::env::temp_dir().join(format!("thisthat-cli-mix-{}.log", std::process::id()));
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .args([
            "serve",
            "--database",
            "sqlite::memory:",
            "--notifier",
            "memory://",
            "--data-dir",
        ])
        .arg(&dir)
        .stderr(std::fs::File::create(&log).expect("log file"));
    let serving = common::Serving::start(command, || std::fs::read_to_string(&log).unwrap_or_default());
    let answered = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(serving.addr).expect("connect");
        stream
            .write_all(b"GET /v1/feed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut response = String::new();
        match stream.read_to_string(&mut response) {
            Ok(_) => Some(response),
            Err(e) => panic!(
                "reading the response failed ({e}); the server said:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    drop(serving);
    let opened_anyway = (dir.join("thisthat.db").exists(), dir.join("outbox").exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        opened_anyway,
        (false, false),
        "the replaced embedded database and outbox are not opened"
    );
    let response = answered.expect("the server came up");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"competitions\":[]"), "{response}");
}

/// `thisthat serve` on S3, DynamoDB and Rekognition (moto), chosen by flags and the standard
/// AWS environment only: a competition posted over HTTP lands in S3 and DynamoDB, a vote
/// counts, and the photo URL the API hands out downloads the photo from S3.
#[cfg(feature = "aws")]
#[tokio::test]
async fn serve_runs_on_aws_services_by_configuration() {
    let moto = std::env::var("THISTHAT_MOTO_URL").unwrap_or_else(|_| {
        panic!("THISTHAT_MOTO_URL is not set: run `scripts/with-emulators aws -- cargo test -p thisthat-cli --features aws`")
    });
    let id = format!("cli-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("thisthat-cli-{id}"));
    let log = std::env::temp_dir().join(format!("thisthat-cli-{id}.log"));
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .arg("serve")
        .args(["--storage", &format!("s3://{id}/app?create=true")])
        .args(["--database", &format!("dynamodb://{id}?create=true")])
        .args(["--notifier", "memory://"])
        .args(["--classifier", "rekognition://?screen=false"])
        .arg("--data-dir")
        .arg(&dir)
        .env("AWS_ENDPOINT_URL", &moto)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let serving = common::Serving::start(command, || std::fs::read_to_string(&log).unwrap_or_default());
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let base = serving.base();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..300 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = |user: &str| {
        let output = Command::cargo_bin("thisthat")
            .expect("binary")
            .args(["token", "--user", user, "--data-dir"])
            .arg(&dir)
            .output()
            .expect("token");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let result = async {
        assert!(up, "the server did not come up:\n{}", server_log());
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
            .bearer_auth(token("alice"))
            .multipart(form)
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "{:?}\n{}", created.text().await, server_log());
        let created: serde_json::Value = created.json().await.expect("json");
        let competition = created["id"].as_str().expect("id").to_owned();
        let voted = client
            .post(format!("{base}/v1/competitions/{competition}/votes"))
            .bearer_auth(token("bob"))
            .json(&serde_json::json!({"choice": 1}))
            .send()
            .await
            .expect("vote");
        assert_eq!(voted.status(), 200, "{:?}", voted.text().await);
        let receipt: serde_json::Value = voted.json().await.expect("json");
        assert_eq!(receipt["tally"], serde_json::json!([0, 1, 0]));
        let urls: serde_json::Value = client
            .get(format!("{base}/v1/competitions/{competition}/photos"))
            .send()
            .await
            .expect("photo urls")
            .json()
            .await
            .expect("json");
        let first = urls[0]["url"].as_str().expect("url");
        assert!(first.starts_with(&moto), "photos are served by S3: {first}");
        let photo = client
            .get(first)
            .send()
            .await
            .expect("download")
            .bytes()
            .await
            .expect("body");
        // Voters get the display variant: a JPEG as wide as the cat, not the PNG uploaded.
        let variant = thisthat_core::media::sniff(&photo).map(|i| (i.media_type, i.width));
        assert_eq!(variant.ok(), Some((thisthat_core::MediaType::Jpeg, 451)));
        assert_ne!(photo, thisthat_testkit::photos::cat_png());
    };
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(result)).await;
    drop(serving);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `thisthat lambda` under a stand-in for the Lambda Runtime API (its documented
/// `/2018-06-01/runtime/invocation/next` and `…/{id}/response` calls): it takes an API
/// Gateway HTTP API event, routes it through the API, and posts the answer back.
#[cfg(feature = "lambda")]
#[tokio::test(flavor = "multi_thread")]
async fn lambda_answers_api_gateway_events_through_the_runtime_api() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use thisthat_testkit::wire::{Reply, WireFake};

    let event = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/v1/feed", "rawQueryString": "limit=5",
        "headers": {"accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "r3pmxmplak", "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "domainPrefix": "r3pmxmplak", "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": "$default",
            "time": "28/Nov/2026:01:00:00 +0000", "timeEpoch": 1795827600000u64,
            "http": {"method": "GET", "path": "/v1/feed", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "test"}
        },
        "isBase64Encoded": false
    });
    let nexts = std::sync::Arc::new(AtomicUsize::new(0));
    let runtime = {
        let nexts = nexts.clone();
        WireFake::start(move |request| match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                if nexts.fetch_add(1, Ordering::SeqCst) > 0 {
                    // One event is enough; a failing runtime API ends the process.
                    return Ok(Reply::status(500));
                }
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis()
                    + 60_000;
                Ok(Reply::json(200, event.clone())
                    .header("lambda-runtime-aws-request-id", "request-1")
                    .header("lambda-runtime-deadline-ms", &deadline.to_string())
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-2:123456789012:function:thisthat",
                    ))
            }
            ("POST", "/2018-06-01/runtime/invocation/request-1/response") => Ok(Reply::status(202)),
            (method, path) => Err(format!("unexpected runtime API call {method} {path}")),
        })
        .await
    };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"))
        .arg("lambda")
        .env("AWS_LAMBDA_RUNTIME_API", runtime.url().trim_start_matches("http://"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "thisthat")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/thisthat")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("THISTHAT_STORAGE", "memory://")
        .env("THISTHAT_DATABASE", "memory://")
        .env("THISTHAT_NOTIFIER", "memory://")
        .env("THISTHAT_CLASSIFIER", "memory://")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut answer = None;
    for _ in 0..300 {
        answer = runtime.requests().into_iter().find(|r| r.method == "POST");
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let answer = answer.unwrap_or_else(|| {
        panic!(
            "no answer was posted; the function said:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(answer.path, "/2018-06-01/runtime/invocation/request-1/response");
    let response = answer.json().expect("a JSON response");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    assert_eq!(body["competitions"], serde_json::json!([]), "{body}");
    assert!(runtime.violations().is_empty(), "{:?}", runtime.violations());
}

/// Without its configuration the function stops at once and says which variable is missing.
#[cfg(feature = "lambda")]
#[test]
fn lambda_without_configuration_says_what_is_missing() {
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .arg("lambda")
        .env_remove("THISTHAT_STORAGE")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("THISTHAT_STORAGE is not set"), "{stderr}");
}

/// The binary started exactly as Lambda starts a `bootstrap`: no arguments, the runtime API's
/// address and the function's variables in the environment. One process answers an API Gateway
/// request, runs the maintenance for an EventBridge scheduled event, and refuses an event that
/// is neither with a typed error, in the order the stand-in for the Runtime API hands them out.
#[cfg(feature = "lambda")]
#[tokio::test(flavor = "multi_thread")]
async fn lambda_started_without_arguments_serves_requests_and_runs_the_schedule() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use thisthat_testkit::wire::{Reply, WireFake};

    let http = serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/v1/feed", "rawQueryString": "",
        "headers": {"accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "r3pmxmplak", "domainName": "r3pmxmplak.execute-api.us-east-2.amazonaws.com",
            "domainPrefix": "r3pmxmplak", "requestId": "JKJaXmPLvHcESHA=", "routeKey": "$default", "stage": "$default",
            "time": "01/Dec/2026:10:00:00 +0000", "timeEpoch": 1796032800000u64,
            "http": {"method": "GET", "path": "/v1/feed", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.7", "userAgent": "test"}
        },
        "isBase64Encoded": false
    });
    let scheduled = serde_json::json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-12-01T10:01:00Z", "region": "us-east-2",
        "resources": ["arn:aws:events:us-east-2:123456789012:rule/thisthat-maintenance"], "detail": {}
    });
    let s3 = serde_json::json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}});
    let events = [http, scheduled, s3];
    let count = events.len();
    let nexts = std::sync::Arc::new(AtomicUsize::new(0));
    let runtime = {
        let nexts = nexts.clone();
        WireFake::start(move |request| {
            if request.method == "GET" && request.path == "/2018-06-01/runtime/invocation/next" {
                let Some(event) = events.get(nexts.fetch_add(1, Ordering::SeqCst)) else {
                    // Every event was handed out; a failing runtime API ends the process.
                    return Ok(Reply::status(500));
                };
                let id = format!("request-{}", nexts.load(Ordering::SeqCst));
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis()
                    + 60_000;
                return Ok(Reply::json(200, event.clone())
                    .header("lambda-runtime-aws-request-id", &id)
                    .header("lambda-runtime-deadline-ms", &deadline.to_string())
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-2:123456789012:function:thisthat",
                    ));
            }
            let answered = request
                .path
                .strip_prefix("/2018-06-01/runtime/invocation/request-")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(_, kind)| kind == "response" || kind == "error");
            if request.method == "POST" && answered {
                Ok(Reply::status(202))
            } else {
                Err(format!(
                    "unexpected runtime API call {} {}",
                    request.method, request.path
                ))
            }
        })
        .await
    };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"))
        .env("AWS_LAMBDA_RUNTIME_API", runtime.url().trim_start_matches("http://"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "thisthat")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/thisthat")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("THISTHAT_STORAGE", "memory://")
        .env("THISTHAT_DATABASE", "memory://")
        .env("THISTHAT_NOTIFIER", "memory://")
        .env("THISTHAT_CLASSIFIER", "memory://")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let answers = || {
        runtime
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect::<Vec<_>>()
    };
    for _ in 0..300 {
        if answers().len() == count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let answers = answers();
    assert_eq!(answers.len(), count, "the function said:\n{stderr}");
    let paths: Vec<&str> = answers.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/2018-06-01/runtime/invocation/request-1/response",
            "/2018-06-01/runtime/invocation/request-2/response",
            "/2018-06-01/runtime/invocation/request-3/error",
        ],
        "{stderr}"
    );
    let response = answers[0].json().expect("a JSON response");
    assert_eq!(response["statusCode"], 200, "{response}");
    let body: serde_json::Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON body");
    assert_eq!(body["competitions"], serde_json::json!([]), "{body}");
    let maintenance = answers[1].json().expect("a JSON response");
    assert_eq!(
        maintenance["maintenance"]["notifications"],
        serde_json::json!({"delivered": 0, "failed": 0, "devices_removed": 0}),
        "{maintenance}"
    );
    assert_eq!(
        maintenance["maintenance"]["sweep"]["orphans_removed"], 0,
        "{maintenance}"
    );
    assert!(
        stderr.contains("maintenance pass done"),
        "what it did is logged:\n{stderr}"
    );
    let refused = answers[2].json().expect("a JSON error");
    assert_eq!(refused["errorType"], "thisthat.invalid_input", "{refused}");
    let message = refused["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains("aws.s3 (Object Created)") && message.contains("scheduled events"),
        "{message}"
    );
    assert!(runtime.violations().is_empty(), "{:?}", runtime.violations());
}

/// `thisthat lambda` outside the Lambda runtime says which of its variables are missing; it
/// neither panics nor opens the configured adapters.
#[cfg(feature = "lambda")]
#[test]
fn lambda_outside_the_lambda_runtime_says_so() {
    let mut command = Command::cargo_bin("thisthat").expect("binary");
    command
        .arg("lambda")
        .env("THISTHAT_STORAGE", "memory://")
        .env("THISTHAT_DATABASE", "memory://")
        .env("THISTHAT_NOTIFIER", "memory://")
        .env("THISTHAT_CLASSIFIER", "memory://")
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9");
    for variable in [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        command.env_remove(variable);
    }
    let output = command.output().expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(
            "not running under the Lambda runtime: AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE not set"
        ),
        "{stderr}"
    );
}

/// Without `AWS_LAMBDA_RUNTIME_API`, no arguments still means usage: only the Lambda runtime
/// turns a bare start into `thisthat lambda`.
#[test]
fn no_arguments_outside_lambda_print_usage() {
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Usage: thisthat"), "{stderr}");
}

/// Cloud Run and Container Apps say where to listen in `PORT`: `serve` then listens on every
/// interface on it, and says so; a `PORT` that is not a port number is refused before anything
/// opens.
#[test]
fn serve_listens_on_port_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-port-{}", std::process::id()));
    let log = std::env::temp_dir().join(format!("thisthat-cli-port-{}.log", std::process::id()));
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .args([
            "serve",
            "--database",
            "sqlite::memory:",
            "--notifier",
            "memory://",
            "--data-dir",
        ])
        .arg(&dir)
        // Port 0: any free port, picked by the server itself (a port picked here could be
        // taken by another test before the server binds it). The interface is PORT's.
        .env("PORT", "0")
        .env_remove("THISTHAT_ADDR")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let serving = common::Serving::start_as_given(command, || std::fs::read_to_string(&log).unwrap_or_default());
    assert!(
        serving.addr.ip().is_unspecified(),
        "PORT listens on every interface: {}",
        serving.addr
    );
    let port = serving.addr.port();
    let response = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).map(|_| response)
    };
    drop(serving);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let response = response.unwrap_or_else(|e| panic!("read: {e}; the server said:\n{logged}"));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let refused = Command::cargo_bin("thisthat")
        .expect("binary")
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .env("PORT", "eighty")
        .env_remove("THISTHAT_ADDR")
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PORT=\"eighty\" is not a port number"), "{stderr}");
    assert!(!dir.exists(), "nothing was opened for a bad PORT");
}

/// `thisthat deliver` and `thisthat sweep` run one pass on the configured backend and say what
/// they did (for cron, Cloud Scheduler or an Azure timer).
#[test]
fn one_shot_maintenance_commands_report_what_they_did() {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-oneshot-{}", std::process::id()));
    for (command, expected) in [
        (
            "deliver",
            "delivered 0 notifications (0 left pending, 0 gone devices removed)",
        ),
        ("sweep", "swept 0 blobs: 0 orphans and 0 expired drafts removed"),
    ] {
        let output = Command::cargo_bin("thisthat")
            .expect("binary")
            .args([command, "--classifier", "pixels:", "--data-dir"])
            .arg(&dir)
            .env_remove("RUST_LOG")
            .output()
            .expect("run");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expected), "{command}: {stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
