//! The `thisthat serve` process measured from outside, over loopback:
//! - time from process start to the first served request, next to a bare axum hello-world
//!   process's (this bench binary run again with `THISTHAT_BENCH_HELLO` set), and to the
//!   first created competition (which waits for the image model);
//! - HTTP votes/s, next to a hello-world route (`/healthz`) of the same stack at the same
//!   concurrency, and the same votes against a peer: the endpoint a team would write by hand
//!   with axum and rusqlite (`http/peer.rs`, this bench binary run again with
//!   `THISTHAT_BENCH_PEER` set), and against the floor: the same process's endpoint that only
//!   checks the token, parses the body and inserts one row by group commit, next to that
//!   process's bare `/healthz`: the least a durable vote on this stack does; in interleaved
//!   rounds whose ratios' medians are reported; with, for each of those five, the CPU time
//!   per request of the server and of this client, and the server's context switches per
//!   request, from `/proc` (what a request costs, where throughput measures the machine too);
//! - peak memory (VmHWM) of the server under 1,000 concurrent voters, with the embedded model
//!   and without it (`THISTHAT_BENCH_ONLY=memory` runs only this);
//! - with the `lambda` and `aws` features, under `scripts/with-emulators aws`: `thisthat` as a
//!   Lambda function on the AWS adapters against moto, under a stand-in for the Lambda Runtime
//!   API, over 1,000 events (`http/lambda.rs`): init time, peak memory, the binary's size.
//!
//! `cargo bench -p thisthat-cli --bench http` (release build; Linux, for /proc). Requests are
//! bounded in count and go to 127.0.0.1 only. The last line is `RESULT {json}` with every figure.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use thisthat_core::UserId;

#[cfg(all(feature = "lambda", feature = "aws"))]
#[path = "http/lambda.rs"]
mod lambda;
#[path = "http/peer.rs"]
mod peer;

const CONCURRENCY: usize = 32;
/// Competitions the vote runs fill, 24 votes each.
const VOTE_COMPETITIONS: usize = 560;
/// Interleaved rounds of `/healthz`, thisthat's votes, the peer's votes, the peer process's
/// bare `/healthz` and the floor's votes; each round's votes fill `VOTE_COMPETITIONS / ROUNDS`
/// competitions (on each side).
const ROUNDS: usize = 7;
/// `/healthz` requests in each round: about as long as a round's votes take.
const HEALTHZ_PER_ROUND: usize = 5_000;

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    secret: Vec<u8>,
    /// False while the data directory is kept for a restart.
    remove_dir: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The hello-world server the start-up is compared with: axum's router with one fallback
/// handler and nothing else, served by the same `axum::serve` as thisthat's.
fn serve_hello(addr: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let router = thisthat_server::Router::new().fallback(|| async { "ok" });
        thisthat_server::serve(listener, router, std::future::pending())
            .await
            .expect("serve");
    });
}

/// Polls `base/healthz` until it answers 200; the time since `started`.
async fn until_ready(http: &reqwest::Client, base: &str, started: Instant) -> Duration {
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Starts the hello-world process and returns the time until it first answered.
async fn start_hello(http: &reqwest::Client) -> Duration {
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().expect("this bench's path"))
        .env("THISTHAT_BENCH_HELLO", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the hello world");
    let ready = until_ready(http, &format!("http://127.0.0.1:{port}"), started).await;
    let _ = child.kill();
    let _ = child.wait();
    ready
}

fn median_f64(figures: &[f64]) -> f64 {
    let mut sorted = figures.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `HEALTHZ_PER_ROUND` requests to `base/healthz`, `CONCURRENCY` at a time; requests/s.
async fn healthz_run(http: &reqwest::Client, base: &str) -> f64 {
    let started = Instant::now();
    stream::iter(0..HEALTHZ_PER_ROUND)
        .map(|_| {
            let r = http.get(format!("{base}/healthz"));
            async move { assert!(r.send().await.expect("healthz").status().is_success()) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    HEALTHZ_PER_ROUND as f64 / started.elapsed().as_secs_f64()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Starts `thisthat serve` on a new data directory and returns it with the time until
/// `/healthz` first answered.
async fn start(http: &reqwest::Client) -> (Server, Duration) {
    start_with(http, &[]).await
}

/// Starts `thisthat serve` on a new data directory with more arguments.
async fn start_with(http: &reqwest::Client, args: &[&str]) -> (Server, Duration) {
    let dir = std::env::temp_dir().join(format!("thisthat-bench-http-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    start_in(http, dir, args).await
}

/// Starts `thisthat serve` on `dir`, new or kept from an earlier start, with more arguments.
async fn start_in(http: &reqwest::Client, dir: PathBuf, args: &[&str]) -> (Server, Duration) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_thisthat"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn thisthat serve");
    let ready = until_ready(http, &base, started).await;
    let secret = std::fs::read(dir.join("jwt.key")).expect("the server wrote its secret");
    (
        Server {
            child,
            base,
            dir,
            secret,
            remove_dir: true,
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

/// Casts 24 votes on each of `competitions` at `base` (voter `v` on every competition, in
/// rounds, so closes are spread over the run), `CONCURRENCY` at a time, each with its voter's
/// token (`tokens[v]`, issued once, as a client keeps its token until it expires); votes/s and
/// every vote's latency, sorted.
async fn vote_run(
    http: &reqwest::Client,
    base: &str,
    competitions: &[String],
    tokens: &[String],
) -> (f64, Vec<Duration>) {
    let votes: Vec<_> = (0..24)
        .flat_map(|v| competitions.iter().map(move |c| (c.clone(), v)))
        .collect();
    let vote_n = votes.len();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = stream::iter(votes)
        .map(|(c, v)| {
            let r = http
                .post(format!("{base}/v1/competitions/{c}/votes"))
                .bearer_auth(&tokens[v])
                .json(&serde_json::json!({"choice": v % 3}));
            async move {
                let sent = Instant::now();
                let status = r.send().await.expect("vote").status();
                assert!(status.is_success(), "a vote answered {status}");
                sent.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    latencies.sort();
    (vote_n as f64 / started.elapsed().as_secs_f64(), latencies)
}

/// Starts the peer (`http/peer.rs`) with `VOTE_COMPETITIONS` competitions; the process and
/// its base URL once it accepts connections.
async fn start_peer(dir: &std::path::Path, secret: &[u8]) -> (Child, String) {
    let port = free_port();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let child = Command::new(std::env::current_exe().expect("this bench's path"))
        .env("THISTHAT_BENCH_PEER", format!("127.0.0.1:{port}"))
        .env("THISTHAT_BENCH_PEER_DIR", dir)
        .env("THISTHAT_BENCH_PEER_SECRET", hex)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the peer");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the peer did not start");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

/// A process's memory as `/proc/{pid}/status` reports it.
struct Memory {
    /// The peak resident set so far (VmHWM).
    peak_kib: u64,
    /// Resident now: anonymous memory (the heap, stacks) and file pages (the binary's own).
    anon_kib: u64,
    file_kib: u64,
    threads: u64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Memory {
        peak_kib: field("VmHWM"),
        anon_kib: field("RssAnon"),
        file_kib: field("RssFile"),
        threads: field("Threads"),
    }
}

/// CPU time and context switches a process has used so far, from `/proc`: counted over many
/// requests, what one request costs each side, since throughput on 2 shared cores is CPU
/// spent, and a switch is a thread put to sleep and woken.
#[derive(Clone, Copy, Default)]
struct Usage {
    /// User and system time (`utime` + `stime`), in clock ticks of 10 ms (Linux's `USER_HZ`).
    cpu_ticks: u64,
    /// Voluntary and involuntary context switches over the threads alive now.
    switches: u64,
}

fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis start at the third, `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let switches = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    // utime and stime are the 14th and 15th fields.
    Usage {
        cpu_ticks: field(11) + field(12),
        switches,
    }
}

/// What a phase of the rounds cost: the server's and this client's CPU and the server's
/// context switches, summed over every round, and the requests they served.
#[derive(Default)]
struct Cost {
    server: Usage,
    client: Usage,
    requests: usize,
}

impl Cost {
    /// Runs `phase`, adding to the cost what `server_pid` and this process used meanwhile.
    async fn count<T>(&mut self, server_pid: u32, requests: usize, phase: impl Future<Output = T>) -> T {
        let me = std::process::id();
        let (server, client) = (usage(server_pid), usage(me));
        let out = phase.await;
        let (server_after, client_after) = (usage(server_pid), usage(me));
        self.server.cpu_ticks += server_after.cpu_ticks.saturating_sub(server.cpu_ticks);
        self.server.switches += server_after.switches.saturating_sub(server.switches);
        self.client.cpu_ticks += client_after.cpu_ticks.saturating_sub(client.cpu_ticks);
        self.client.switches += client_after.switches.saturating_sub(client.switches);
        self.requests += requests;
        out
    }

    /// Server CPU µs per request.
    fn server_us(&self) -> f64 {
        (self.server.cpu_ticks as f64 * 10_000.0 / self.requests.max(1) as f64).round()
    }

    /// Client CPU µs per request.
    fn client_us(&self) -> f64 {
        (self.client.cpu_ticks as f64 * 10_000.0 / self.requests.max(1) as f64).round()
    }

    /// Server context switches per request.
    fn switches(&self) -> f64 {
        (self.server.switches as f64 * 100.0 / self.requests.max(1) as f64).round() / 100.0
    }
}

fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0).round()
}

/// Memory before and after a burst.
struct Burst {
    before: Memory,
    after: Memory,
}

/// Starts `thisthat serve` with `args`, creates 42 competitions (their photos classified),
/// then casts 1,000 votes on them at once, each voter with a token of its own; the server's
/// memory after the creations and after the burst.
async fn burst(http: &reqwest::Client, args: &[&str]) -> Burst {
    let (server, _) = start_with(http, args).await;
    let competitions = create_competitions(http, &server, 42).await;
    let before = memory(server.child.id());
    let burst: Vec<_> = (0..1000)
        .map(|i| (competitions[i % competitions.len()].clone(), i))
        .collect();
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
    let after = memory(server.child.id());
    println!(
        "1,000 concurrent voters on 42 competitions (serve {}): {accepted} accepted in {:?}; peak RSS {} KiB before the burst, {} KiB after; after it {} KiB anonymous and {} KiB of files resident, {} threads",
        args.join(" "),
        started.elapsed(),
        before.peak_kib,
        after.peak_kib,
        after.anon_kib,
        after.file_kib,
        after.threads,
    );
    assert_eq!(
        accepted, 1000,
        "42 competitions take up to 1,008 votes, so every vote is accepted"
    );
    Burst { before, after }
}

fn main() {
    if let Ok(addr) = std::env::var("THISTHAT_BENCH_HELLO") {
        return serve_hello(&addr);
    }
    if let Ok(addr) = std::env::var("THISTHAT_BENCH_PEER") {
        let dir = std::env::var_os("THISTHAT_BENCH_PEER_DIR").expect("THISTHAT_BENCH_PEER_DIR");
        let hex = std::env::var("THISTHAT_BENCH_PEER_SECRET").expect("THISTHAT_BENCH_PEER_SECRET");
        let secret: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a hex secret"))
            .collect();
        return peer::serve(&addr, std::path::Path::new(&dir), &secret, VOTE_COMPETITIONS);
    }
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p thisthat-cli --bench http`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .expect("client");

        let mut result = serde_json::Map::new();
        // THISTHAT_BENCH_ONLY=lambda: the Lambda profile alone, e.g. for a build without the
        // model; THISTHAT_BENCH_ONLY=memory: the 1,000-voter bursts alone.
        let only = std::env::var("THISTHAT_BENCH_ONLY").unwrap_or_default();
        assert!(
            ["", "memory", "lambda"].contains(&only.as_str()),
            "THISTHAT_BENCH_ONLY={only}: say memory or lambda, or leave it unset for every part"
        );
        let mut parts = Vec::new();
        if only.is_empty() {
            parts.push(serve_figures(&http).await);
        }
        if only.is_empty() || only == "memory" {
            parts.push(memory_figures(&http).await);
        }
        if only.is_empty() || only == "lambda" {
            parts.push(lambda_figures(&http).await);
        }
        for part in parts {
            if let serde_json::Value::Object(figures) = part {
                result.extend(figures);
            }
        }
        println!("RESULT {}", serde_json::Value::Object(result));
    });
}

/// `thisthat serve` on the embedded default: start-up, and votes next to `/healthz` and the
/// peer.
async fn serve_figures(http: &reqwest::Client) -> serde_json::Value {
    // Interleaved, so that both see the same load.
    let (mut startups, mut restarts, mut hellos) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        // A first start creates the secrets and the database schema; a restart finds them.
        let (mut server, ready) = start(http).await;
        startups.push(ready);
        server.remove_dir = false;
        let dir = server.dir.clone();
        drop(server);
        let (server, ready) = start_in(http, dir, &[]).await;
        restarts.push(ready);
        drop(server);
        hellos.push(start_hello(http).await);
    }
    let restart = median(restarts.clone());
    let (startup, hello_startup) = (median(startups.clone()), median(hellos.clone()));
    println!(
        "start-up to first served request, median of 7: thisthat serve {startup:?} (min {:?}, max {:?}) | bare axum hello world {hello_startup:?} (min {:?}, max {:?})",
        startups.iter().min().expect("7"),
        startups.iter().max().expect("7"),
        hellos.iter().min().expect("7"),
        hellos.iter().max().expect("7"),
    );
    println!(
        "restart on the same data directory, median of 7: {restart:?} (min {:?}, max {:?})",
        restarts.iter().min().expect("7"),
        restarts.iter().max().expect("7"),
    );
    // A creation sent the moment the server answers waits for the model loading behind it.
    let mut first_creations = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (server, _) = start(http).await;
        create_competitions(http, &server, 1).await;
        first_creations.push(started.elapsed());
    }
    let first_creation = median(first_creations);
    println!("start-up to the first created competition (3 photos classified), median of 3: {first_creation:?}");

    // Throughput in interleaved rounds: `/healthz`, thisthat's votes, the peer's votes, the
    // bare `/healthz` and the floor's votes, then again, so that each round's five figures see
    // the same load. A single long run of each
    // let the machine's drift decide the ratio (docs/performance.md, runs 6–9); the medians of
    // the rounds' ratios are what RESULT reports.
    let (server, _) = start(http).await;
    let competitions = create_competitions(http, &server, VOTE_COMPETITIONS).await;
    let voters: Vec<String> = (0..24).map(|v| token(&server, &format!("voter{v}"))).collect();
    let peer_dir = server.dir.join("peer");
    let (mut peer_child, peer_base) = start_peer(&peer_dir, &server.secret).await;
    let peer_competitions: Vec<String> = (0..VOTE_COMPETITIONS).map(peer::competition).collect();
    let per_round = VOTE_COMPETITIONS / ROUNDS;
    let floor_base = format!("{peer_base}/floor");
    let (mut healthz_rates, mut vote_rates, mut peer_rates) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_rates, mut bare_healthz_rates) = (Vec::new(), Vec::new());
    let (mut latencies, mut peer_latencies) = (Vec::new(), Vec::new());
    let (server_pid, peer_pid) = (server.child.id(), peer_child.id());
    let round_votes = per_round * 24;
    let [
        mut healthz_cost,
        mut vote_cost,
        mut peer_cost,
        mut bare_cost,
        mut floor_cost,
    ] = std::array::from_fn(|_| Cost::default());
    for round in 0..ROUNDS {
        let slice = round * per_round..(round + 1) * per_round;
        let rate = healthz_cost
            .count(server_pid, HEALTHZ_PER_ROUND, healthz_run(http, &server.base))
            .await;
        healthz_rates.push(rate);
        let run = vote_run(http, &server.base, &competitions[slice.clone()], &voters);
        let (rate, mut l) = vote_cost.count(server_pid, round_votes, run).await;
        vote_rates.push(rate);
        latencies.append(&mut l);
        let run = vote_run(http, &peer_base, &peer_competitions[slice.clone()], &voters);
        let (rate, mut l) = peer_cost.count(peer_pid, round_votes, run).await;
        peer_rates.push(rate);
        peer_latencies.append(&mut l);
        let rate = bare_cost
            .count(peer_pid, HEALTHZ_PER_ROUND, healthz_run(http, &peer_base))
            .await;
        bare_healthz_rates.push(rate);
        let run = vote_run(http, &floor_base, &peer_competitions[slice], &voters);
        floor_rates.push(floor_cost.count(peer_pid, round_votes, run).await.0);
        println!(
            "round {round}: GET /healthz {:.0} req/s | thisthat votes {:.0}/s ({:.2} of /healthz) | peer votes {:.0}/s (thisthat {:.2}x) | bare /healthz {:.0} req/s, floor {:.0}/s ({:.2} of it)",
            healthz_rates[round],
            vote_rates[round],
            vote_rates[round] / healthz_rates[round],
            peer_rates[round],
            vote_rates[round] / peer_rates[round],
            bare_healthz_rates[round],
            floor_rates[round],
            floor_rates[round] / bare_healthz_rates[round],
        );
    }
    let _ = peer_child.kill();
    let _ = peer_child.wait();
    let ratios: Vec<f64> = vote_rates.iter().zip(&healthz_rates).map(|(v, h)| v / h).collect();
    let peer_ratios: Vec<f64> = vote_rates.iter().zip(&peer_rates).map(|(v, p)| v / p).collect();
    let floor_ratios: Vec<f64> = floor_rates
        .iter()
        .zip(&bare_healthz_rates)
        .map(|(f, h)| f / h)
        .collect();
    let of_floor: Vec<f64> = vote_rates.iter().zip(&floor_rates).map(|(v, f)| v / f).collect();
    let (floor_ratio, votes_of_floor) = (median_f64(&floor_ratios), median_f64(&of_floor));
    let (hello, votes_rate, peer_rate) = (
        median_f64(&healthz_rates),
        median_f64(&vote_rates),
        median_f64(&peer_rates),
    );
    let (votes_ratio, peer_ratio) = (median_f64(&ratios), median_f64(&peer_ratios));
    latencies.sort();
    peer_latencies.sort();
    let vote_n = latencies.len();
    let (p50, p99) = (latencies[vote_n / 2], latencies[vote_n * 99 / 100]);
    let (peer_p50, peer_p99) = (peer_latencies[vote_n / 2], peer_latencies[vote_n * 99 / 100]);
    println!(
        "HTTP on loopback, {CONCURRENCY} concurrent clients, medians of {ROUNDS} interleaved rounds: GET /healthz {hello:.0} req/s | POST votes {votes_rate:.0} votes/s ({vote_n} votes in all, every 24th closes a competition and writes the outbox) | votes/healthz {votes_ratio:.2} (rounds {:.2}–{:.2})",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!("vote latency at {CONCURRENCY} clients, all rounds: p50 {p50:?}, p99 {p99:?}");
    println!(
        "the peer (axum + rusqlite by hand), same clients: POST votes {peer_rate:.0} votes/s, p50 {peer_p50:?}, p99 {peer_p99:?}; thisthat = {peer_ratio:.2}x the peer (rounds {:.2}–{:.2})",
        peer_ratios.iter().copied().fold(f64::INFINITY, f64::min),
        peer_ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "the floor (token, body, one row by group commit, no rule, no layer), same clients: POST votes {:.0} votes/s, {floor_ratio:.2} of its bare /healthz ({:.0} req/s; rounds {:.2}–{:.2}); thisthat = {votes_of_floor:.2} of the floor",
        median_f64(&floor_rates),
        median_f64(&bare_healthz_rates),
        floor_ratios.iter().copied().fold(f64::INFINITY, f64::min),
        floor_ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "CPU per request, all rounds (server µs + client µs; server context switches): thisthat /healthz {} + {} ({}) | thisthat votes {} + {} ({}) | peer votes {} + {} ({}) | bare /healthz {} + {} ({}) | floor votes {} + {} ({})",
        healthz_cost.server_us(),
        healthz_cost.client_us(),
        healthz_cost.switches(),
        vote_cost.server_us(),
        vote_cost.client_us(),
        vote_cost.switches(),
        peer_cost.server_us(),
        peer_cost.client_us(),
        peer_cost.switches(),
        bare_cost.server_us(),
        bare_cost.client_us(),
        bare_cost.switches(),
        floor_cost.server_us(),
        floor_cost.client_us(),
        floor_cost.switches(),
    );
    drop(server);

    serde_json::json!({
        "server_cpu_us_per_healthz": healthz_cost.server_us(),
        "server_cpu_us_per_vote": vote_cost.server_us(),
        "peer_cpu_us_per_vote": peer_cost.server_us(),
        "bare_cpu_us_per_healthz": bare_cost.server_us(),
        "floor_cpu_us_per_vote": floor_cost.server_us(),
        "client_cpu_us_per_healthz": healthz_cost.client_us(),
        "client_cpu_us_per_vote": vote_cost.client_us(),
        "switches_per_healthz": healthz_cost.switches(),
        "switches_per_vote": vote_cost.switches(),
        "peer_switches_per_vote": peer_cost.switches(),
        "bare_switches_per_healthz": bare_cost.switches(),
        "floor_switches_per_vote": floor_cost.switches(),
        "healthz_per_s": hello.round(),
        "votes_per_s": votes_rate.round(),
        "votes_ratio": (votes_ratio * 1000.0).round() / 1000.0,
        "votes_ratio_rounds": ratios.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "votes_p50_ms": (ms(p50) * 100.0).round() / 100.0,
        "votes_p99_ms": (ms(p99) * 100.0).round() / 100.0,
        "peer_votes_per_s": peer_rate.round(),
        "peer_ratio": (peer_ratio * 1000.0).round() / 1000.0,
        "peer_ratio_rounds": peer_ratios.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "peer_votes_p50_ms": (ms(peer_p50) * 100.0).round() / 100.0,
        "peer_votes_p99_ms": (ms(peer_p99) * 100.0).round() / 100.0,
        "floor_votes_per_s": median_f64(&floor_rates).round(),
        "bare_healthz_per_s": median_f64(&bare_healthz_rates).round(),
        "floor_ratio": (floor_ratio * 1000.0).round() / 1000.0,
        "floor_ratio_rounds": floor_ratios.iter().map(|r| (r * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        "votes_of_floor": (votes_of_floor * 1000.0).round() / 1000.0,
        "startup_ms": (ms(startup) * 10.0).round() / 10.0,
        "hello_startup_ms": (ms(hello_startup) * 10.0).round() / 10.0,
        "restart_ms": (ms(restart) * 10.0).round() / 10.0,
        "first_creation_ms": (ms(first_creation) * 10.0).round() / 10.0,
    })
}

/// Peak memory under the 1,000-voter burst, with the embedded model (the default) and without
/// it (the `pixels:` classifier), so that the model's share is measured, not guessed.
async fn memory_figures(http: &reqwest::Client) -> serde_json::Value {
    let with_model = burst(http, &[]).await;
    let without_model = burst(http, &["--classifier", "pixels:"]).await;
    serde_json::json!({
        "peak_rss_before_burst_mb": mib(with_model.before.peak_kib),
        "peak_rss_mb": mib(with_model.after.peak_kib),
        "rss_anon_mb": mib(with_model.after.anon_kib),
        "rss_file_mb": mib(with_model.after.file_kib),
        "threads": with_model.after.threads,
        "no_model_peak_rss_before_burst_mb": mib(without_model.before.peak_kib),
        "no_model_peak_rss_mb": mib(without_model.after.peak_kib),
    })
}

/// The Lambda profile (`http/lambda.rs`) against moto, when built with the `lambda` and `aws`
/// features and run under `scripts/with-emulators aws`; else nothing, and a line saying why.
#[cfg(all(feature = "lambda", feature = "aws"))]
async fn lambda_figures(http: &reqwest::Client) -> serde_json::Value {
    let Ok(moto) = std::env::var("THISTHAT_MOTO_URL") else {
        println!("the Lambda profile needs moto: {LAMBDA_COMMAND}");
        return serde_json::Value::Null;
    };
    let p = lambda::profile(http, &moto).await;
    let mb = |bytes: u64| (bytes as f64 / 1e6 * 10.0).round() / 10.0;
    let model = cfg!(feature = "model");
    println!(
        "thisthat lambda on moto ({} the embedded model): init {:?}, first event answered at {:?}, {:.0} events/s; peak RSS {} KiB over {} events ({} KiB after one); binary {} bytes ({} stripped)",
        if model { "with" } else { "without" },
        p.init,
        p.first_event,
        p.events_per_s,
        p.peak_rss_kib,
        lambda::EVENTS,
        p.idle_rss_kib,
        p.binary_bytes,
        p.stripped_bytes
            .map_or_else(|| "strip not installed".to_owned(), |b| b.to_string()),
    );
    serde_json::json!({
        "lambda_model": model,
        "lambda_init_ms": (ms(p.init) * 10.0).round() / 10.0,
        "lambda_first_event_ms": (ms(p.first_event) * 10.0).round() / 10.0,
        "lambda_events_per_s": p.events_per_s.round(),
        "lambda_peak_rss_mb": mib(p.peak_rss_kib),
        "lambda_idle_rss_mb": mib(p.idle_rss_kib),
        "lambda_binary_mb": mb(p.binary_bytes),
        "lambda_binary_stripped_mb": p.stripped_bytes.map(mb),
    })
}

#[cfg(not(all(feature = "lambda", feature = "aws")))]
async fn lambda_figures(_: &reqwest::Client) -> serde_json::Value {
    println!("the Lambda profile needs the lambda and aws features: {LAMBDA_COMMAND}");
    serde_json::Value::Null
}

/// How to run the Lambda profile.
const LAMBDA_COMMAND: &str = "scripts/with-emulators aws -- cargo bench -p thisthat-cli --features lambda,aws --bench http \
     (add --no-default-features for a build without the model, and THISTHAT_BENCH_ONLY=lambda for the profile alone)";
