//! The `thisthat serve` process measured from outside, over loopback:
//! - time from process start to the first served request;
//! - HTTP votes/s, next to a hello-world route (`/healthz`) of the same stack at the same
//!   concurrency;
//! - peak memory (VmHWM) of the server under 1,000 concurrent voters.
//!
//! `cargo bench -p thisthat-cli --bench http` (release build; Linux, for /proc). Requests are
//! bounded in count and go to 127.0.0.1 only.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use thisthat_core::UserId;

const CONCURRENCY: usize = 32;

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    secret: Vec<u8>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `thisthat serve` and returns it with the time until `/healthz` first answered.
async fn start(http: &reqwest::Client) -> (Server, Duration) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("thisthat-bench-http-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_thisthat"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn thisthat serve");
    let ready = loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let secret = std::fs::read(dir.join("jwt.key")).expect("the server wrote its secret");
    (
        Server {
            child,
            base,
            dir,
            secret,
        },
        ready,
    )
}

fn token(server: &Server, user: &str) -> String {
    thisthat_server::issue_hs256(
        &server.secret,
        &UserId::new(user).expect("user"),
        Duration::from_secs(3600),
    )
    .expect("token")
}

async fn create_competitions(http: &reqwest::Client, server: &Server, n: usize) -> Vec<String> {
    let photo = thisthat_testkit::photos::pixel_webp();
    stream::iter(0..n)
        .map(|i| {
            let form = (0..3).fold(reqwest::multipart::Form::new(), |f, j| {
                f.part(
                    "photo",
                    reqwest::multipart::Part::bytes(photo.to_vec()).file_name(format!("{j}.webp")),
                )
            });
            let request = http
                .post(format!("{}/v1/competitions", server.base))
                .bearer_auth(token(server, &format!("owner{i}")))
                .multipart(form);
            async move {
                let body: serde_json::Value = request.send().await.expect("create").json().await.expect("json");
                body["id"].as_str().expect("id").to_string()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p thisthat-cli --bench http`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build().expect("client");

        let mut startups = Vec::new();
        for _ in 0..7 {
            let (server, ready) = start(&http).await;
            startups.push(ready);
            drop(server);
        }
        startups.sort();
        println!("start-up to first served request: median {:?} (min {:?}, max {:?}, 7 starts)", startups[3], startups[0], startups[6]);

        let (server, _) = start(&http).await;
        let hello_n = 20_000;
        let started = Instant::now();
        stream::iter(0..hello_n)
            .map(|_| {
                let r = http.get(format!("{}/healthz", server.base));
                async move { assert!(r.send().await.expect("healthz").status().is_success()) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let hello = hello_n as f64 / started.elapsed().as_secs_f64();

        let competitions = create_competitions(&http, &server, 400).await;
        let votes: Vec<_> = (0..24).flat_map(|v| competitions.iter().map(move |c| (c.clone(), v))).collect();
        let vote_n = votes.len();
        let started = Instant::now();
        stream::iter(votes)
            .map(|(c, v)| {
                let r = http
                    .post(format!("{}/v1/competitions/{c}/votes", server.base))
                    .bearer_auth(token(&server, &format!("voter{v}")))
                    .json(&serde_json::json!({"choice": v % 3}));
                async move { assert!(r.send().await.expect("vote").status().is_success()) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let votes_rate = vote_n as f64 / started.elapsed().as_secs_f64();
        println!(
            "HTTP on loopback, {CONCURRENCY} concurrent clients: GET /healthz {hello:.0} req/s | POST votes {votes_rate:.0} votes/s ({vote_n} votes, every 24th closes a competition and writes the outbox) = {:.0}% of hello world",
            100.0 * votes_rate / hello
        );
        drop(server);

        let (server, _) = start(&http).await;
        let competitions = create_competitions(&http, &server, 42).await;
        let before = vm_hwm_kib(server.child.id());
        let burst: Vec<_> = (0..1000).map(|i| (competitions[i % competitions.len()].clone(), i)).collect();
        let started = Instant::now();
        let statuses: Vec<u16> = stream::iter(burst)
            .map(|(c, i)| {
                let r = http
                    .post(format!("{}/v1/competitions/{c}/votes", server.base))
                    .bearer_auth(token(&server, &format!("burst{i}")))
                    .json(&serde_json::json!({"choice": i % 3}));
                async move { r.send().await.expect("vote").status().as_u16() }
            })
            .buffer_unordered(1000)
            .collect()
            .await;
        let accepted = statuses.iter().filter(|s| **s == 200).count();
        let after = vm_hwm_kib(server.child.id());
        println!(
            "1,000 concurrent voters on 42 competitions: {accepted} accepted, {} refused as closed, in {:?}; server peak RSS {} KiB before the burst, {} KiB after",
            statuses.iter().filter(|s| **s == 409).count(),
            started.elapsed(),
            before,
            after
        );
        assert_eq!(accepted, 1000, "42 competitions take up to 1,008 votes, so every vote is accepted");
    });
}
