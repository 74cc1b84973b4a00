//! Votes per second on the SQLite adapter, next to a bare SQLite INSERT loop with the same
//! durability settings (WAL, `synchronous=NORMAL`), in the same run on the same disk.
//!
//! `cargo bench -p thisthat-local --bench votes` (release build). Prints one line per
//! measurement; `docs/performance.md` records the numbers with the machine.

use std::time::Instant;

use thisthat_core::ports::Database;
use thisthat_local::SqliteDatabase;
use thisthat_testkit::fixtures;

const COMPETITIONS: usize = 2_000;
const VOTES_EACH: usize = 20;

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("thisthat-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("bench.db")
}

/// One INSERT per transaction, nothing else: the floor any vote implementation sits above.
fn bare_inserts(n: usize) -> f64 {
    let path = temp_db("bare");
    let c = rusqlite::Connection::open(&path).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE votes (competition TEXT NOT NULL, voter TEXT NOT NULL, choice INTEGER NOT NULL, PRIMARY KEY (competition, voter)) WITHOUT ROWID;",
    )
    .expect("schema");
    let start = Instant::now();
    for i in 0..n {
        c.execute(
            "INSERT INTO votes (competition, voter, choice) VALUES (?1, ?2, ?3)",
            rusqlite::params![format!("c{}", i % COMPETITIONS), format!("v{i}"), (i % 3) as i64],
        )
        .expect("insert");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    rate
}

async fn adapter_votes(concurrency: usize) -> f64 {
    let path = temp_db(&format!("adapter-{concurrency}"));
    let db = std::sync::Arc::new(SqliteDatabase::open(&path).expect("open"));
    let competitions: Vec<_> = (0..COMPETITIONS)
        .map(|i| fixtures::competition(&format!("owner{i}"), thisthat_core::Status::Open, 24))
        .collect();
    for c in &competitions {
        db.insert_competition(c).await.expect("insert");
    }
    let votes: Vec<_> = (0..VOTES_EACH)
        .flat_map(|round| {
            competitions
                .iter()
                .map(move |c| fixtures::vote(c, &format!("voter{round}"), round % 3))
        })
        .collect();
    let n = votes.len();
    let start = Instant::now();
    let chunks: Vec<Vec<_>> = votes.chunks(n.div_ceil(concurrency)).map(<[_]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let db = db.clone();
            tokio::spawn(async move {
                for v in chunk {
                    db.cast_vote(&v).await.expect("vote");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    rate
}

fn main() {
    // `cargo test --benches` runs bench binaries once with no arguments beyond --bench; keep it quick there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with `cargo bench -p thisthat-local --bench votes`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n = COMPETITIONS * VOTES_EACH;
    for run in 1..=3 {
        let bare = bare_inserts(n);
        let single = runtime.block_on(adapter_votes(1));
        let concurrent = runtime.block_on(adapter_votes(16));
        println!(
            "run {run}: {n} votes over {COMPETITIONS} competitions | bare INSERT loop {bare:.0}/s | SqliteDatabase::cast_vote 1 caller {single:.0}/s ({:.0}% of bare) | 16 concurrent callers {concurrent:.0}/s",
            100.0 * single / bare
        );
    }
}
