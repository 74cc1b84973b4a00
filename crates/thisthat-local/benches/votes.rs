//! Votes per second on the SQLite adapter, next to a bare SQLite loop of one `INSERT` per
//! transaction with the same durability settings, in the same run on the same disk: first at
//! `synchronous=NORMAL` (the adapter's default), then at `synchronous=FULL` (every commit waits
//! for the disk).
//!
//! `cargo bench -p thisthat-local --bench votes` (release build). Prints one line per
//! setting and, last, `RESULT {json}` with every figure; `docs/performance.md` records the runs
//! with the machine.

use std::{sync::Arc, time::Instant};

use thisthat_core::ports::Database;
use thisthat_local::{SqliteDatabase, SqliteOptions, Synchronous};
use thisthat_testkit::fixtures;

/// How many votes one measurement casts: `competitions × votes_each`, none closing.
#[derive(Clone, Copy)]
struct Scale {
    competitions: usize,
    votes_each: usize,
}

impl Scale {
    fn votes(self) -> usize {
        self.competitions * self.votes_each
    }
}

/// At `NORMAL` a commit costs tens of microseconds; at `FULL` about a millisecond (an fsync on
/// this disk), so the FULL runs cast a tenth of the votes to finish in seconds.
const NORMAL: Scale = Scale {
    competitions: 2_000,
    votes_each: 20,
};
const FULL: Scale = Scale {
    competitions: 200,
    votes_each: 20,
};

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("thisthat-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("bench.db")
}

fn pragma(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Full => "FULL",
        _ => "NORMAL",
    }
}

/// One INSERT per transaction, nothing else: the floor any vote implementation sits above.
/// `checkpoints: false` turns SQLite's automatic checkpoints off, which no real database can
/// afford; it shows how much of the floor's time they take (the adapter runs them on a thread
/// of their own).
fn bare_inserts(synchronous: Synchronous, scale: Scale, checkpoints: bool) -> f64 {
    let path = temp_db("bare");
    let c = rusqlite::Connection::open(&path).expect("open");
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA wal_autocheckpoint = {};
         CREATE TABLE competitions (id TEXT PRIMARY KEY, body TEXT NOT NULL);
         CREATE TABLE votes (competition TEXT NOT NULL, voter TEXT NOT NULL, choice INTEGER NOT NULL, PRIMARY KEY (competition, voter)) WITHOUT ROWID;",
        pragma(synchronous),
        if checkpoints { 1000 } else { 0 },
    ))
    .expect("schema");
    // The same start as the adapter's database, which holds one transaction per competition
    // before its votes begin: the WAL has grown and been reused once the clock starts.
    for i in 0..scale.competitions {
        c.execute(
            "INSERT INTO competitions (id, body) VALUES (?1, ?2)",
            rusqlite::params![format!("c{i}"), "x".repeat(600)],
        )
        .expect("warm-up");
    }
    let n = scale.votes();
    let start = Instant::now();
    for i in 0..n {
        c.execute(
            "INSERT INTO votes (competition, voter, choice) VALUES (?1, ?2, ?3)",
            rusqlite::params![format!("c{}", i % scale.competitions), format!("v{i}"), (i % 3) as i64],
        )
        .expect("insert");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(c);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    rate
}

/// `concurrency` tasks casting the votes between them, each awaiting its receipt before its
/// next vote.
async fn adapter_votes(synchronous: Synchronous, scale: Scale, concurrency: usize) -> f64 {
    let path = temp_db(&format!("adapter-{concurrency}"));
    let options = SqliteOptions::default().synchronous(synchronous);
    let db = Arc::new(SqliteDatabase::open_with(&path, options).expect("open"));
    let competitions: Vec<_> = (0..scale.competitions)
        .map(|i| fixtures::competition(&format!("owner{i}"), thisthat_core::Status::Open, 24))
        .collect();
    for c in &competitions {
        db.insert_competition(c).await.expect("insert");
    }
    let votes: Vec<_> = (0..scale.votes_each)
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
    drop(db);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    rate
}

/// One setting's figures, as the RESULT line names them after `prefix`.
fn measure(runtime: &tokio::runtime::Runtime, synchronous: Synchronous, scale: Scale, prefix: &str) -> String {
    let floor = bare_inserts(synchronous, scale, true);
    let unchecked = bare_inserts(synchronous, scale, false);
    let single = runtime.block_on(adapter_votes(synchronous, scale, 1));
    let concurrent = runtime.block_on(adapter_votes(synchronous, scale, 64));
    println!(
        "synchronous={}: {} votes over {} competitions | bare INSERT loop {floor:.0}/s (without checkpoints {unchecked:.0}/s) | cast_vote, 1 caller {single:.0}/s ({:.2}x) | 64 concurrent callers {concurrent:.0}/s ({:.2}x)",
        pragma(synchronous),
        scale.votes(),
        scale.competitions,
        single / floor,
        concurrent / floor,
    );
    format!(
        r#""{prefix}floor_per_s":{floor:.0},"{prefix}floor_without_checkpoints_per_s":{unchecked:.0},"{prefix}single_per_s":{single:.0},"{prefix}single_ratio":{:.3},"{prefix}concurrent64_per_s":{concurrent:.0},"{prefix}concurrent64_ratio":{:.3}"#,
        single / floor,
        concurrent / floor,
    )
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
    let normal = measure(&runtime, Synchronous::Normal, NORMAL, "");
    let full = measure(&runtime, Synchronous::Full, FULL, "full_");
    println!("RESULT {{{normal},{full}}}");
}
