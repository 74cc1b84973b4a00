//! The peer thisthat's vote is measured against (issue 15, goal 3): the vote endpoint a team
//! would write by hand with axum and rusqlite, no SDK. It checks the bearer token (HS256, the
//! same secret and claims as thisthat's local auth), parses `{"choice": n}`, and in one
//! `BEGIN IMMEDIATE` transaction reads the competition, refuses a closed one, inserts the vote
//! (one per voter) and bumps the count, closing at the 24th. What it skips, and thisthat keeps:
//! idempotent retries (the same vote again returns the first receipt), a receipt naming the
//! close, the closing notification written with the close (the outbox) and its delivery,
//! typed JSON errors with their field, tracing, metering, and the standard layers.
//!
//! The same process serves the floor (issue 15, goal 2): the least a durable vote over this
//! stack can do. It checks the token and parses the body as the peer does, then one writer
//! thread inserts the row in a transaction shared with every vote waiting at that moment (group
//! commit, as thisthat's writer does) and answers once the transaction commits. It reads
//! nothing: no competition, no close, no duplicate answer, no rule at all, so no service could
//! ship it. Its ratio to the same process's bare `/healthz` (axum alone, without thisthat's
//! layers) is a reference for the least a durable vote on axum, hyper and SQLite costs on this
//! machine; not a strict ceiling, since it verifies the token on every request and thisthat
//! once per token.

use std::{
    path::Path,
    sync::{Arc, Mutex, mpsc},
};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode, header::AUTHORIZATION},
    routing::{get, post},
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Votes that close a competition, as in thisthat's default rules.
const VOTES_TO_CLOSE: i64 = 24;

struct Peer {
    // One connection behind a mutex: what a hand-written service on SQLite usually does.
    db: Mutex<Connection>,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    /// The floor's writer thread (`floor_writer`).
    floor: mpsc::Sender<FloorVote>,
}

/// A vote on its way to the floor's writer, with where to say whether it was inserted.
struct FloorVote {
    competition: String,
    voter: String,
    choice: usize,
    inserted: tokio::sync::oneshot::Sender<bool>,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Ballot {
    choice: usize,
}

/// The id of the peer's competition `i` (seeded at start).
pub fn competition(i: usize) -> String {
    format!("peer-{i}")
}

/// Serves the peer on `addr` until killed, its database in `dir` with `competitions` open
/// competitions seeded, checking tokens signed with `secret`.
pub fn serve(addr: &str, dir: &Path, secret: &[u8], competitions: usize) {
    std::fs::create_dir_all(dir).expect("the peer's directory");
    let db = Connection::open(dir.join("peer.db")).expect("open the peer's database");
    // The durability thisthat's SQLite adapter defaults to.
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE competitions (id TEXT PRIMARY KEY, c0 INTEGER NOT NULL, c1 INTEGER NOT NULL,
             c2 INTEGER NOT NULL, closed INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE votes (competition TEXT NOT NULL, voter TEXT NOT NULL, choice INTEGER NOT NULL,
             PRIMARY KEY (competition, voter)) WITHOUT ROWID;",
    )
    .expect("the peer's schema");
    for i in 0..competitions {
        db.execute(
            "INSERT INTO competitions VALUES (?1, 0, 0, 0, 0)",
            params![competition(i)],
        )
        .expect("seed a competition");
    }
    let (floor, votes) = mpsc::channel();
    let floor_db = Connection::open(dir.join("floor.db")).expect("open the floor's database");
    floor_db
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE votes (competition TEXT NOT NULL, voter TEXT NOT NULL,
                 choice INTEGER NOT NULL, PRIMARY KEY (competition, voter)) WITHOUT ROWID;",
        )
        .expect("the floor's schema");
    std::thread::spawn(move || floor_writer(floor_db, &votes));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let peer = Arc::new(Peer {
        db: Mutex::new(db),
        key: jsonwebtoken::DecodingKey::from_secret(secret),
        validation,
        floor,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/v1/competitions/{id}/votes", post(vote))
            .route("/floor/v1/competitions/{id}/votes", post(floor_vote))
            .with_state(peer);
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        axum::serve(listener, router).await.expect("serve");
    });
}

async fn vote(
    State(peer): State<Arc<Peer>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(ballot): Json<Ballot>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let voter = peer.check(&headers, &ballot)?;
    tokio::task::spawn_blocking(move || peer.cast(&id, &voter, ballot.choice))
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?
}

/// The floor's vote: the peer's checks, then one row through the group-committing writer.
async fn floor_vote(
    State(peer): State<Arc<Peer>>,
    UrlPath(competition): UrlPath<String>,
    headers: HeaderMap,
    Json(ballot): Json<Ballot>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let voter = peer.check(&headers, &ballot)?;
    let (inserted, answer) = tokio::sync::oneshot::channel();
    let vote = FloorVote {
        competition: competition.clone(),
        voter,
        choice: ballot.choice,
        inserted,
    };
    peer.floor.send(vote).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    match answer.await {
        Ok(true) => Ok(Json(
            serde_json::json!({"competition": competition, "choice": ballot.choice}),
        )),
        Ok(false) => Err(StatusCode::CONFLICT),
        Err(_) => Err(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// Applies the votes waiting at each moment in one transaction, then answers each; ends when
/// the server does.
fn floor_writer(mut db: Connection, votes: &mpsc::Receiver<FloorVote>) {
    while let Ok(first) = votes.recv() {
        let mut batch = vec![first];
        batch.extend(votes.try_iter().take(255));
        let tx = db.transaction().expect("the floor's transaction");
        let inserted: Vec<bool> = {
            let mut insert = tx
                .prepare_cached("INSERT INTO votes VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .expect("the floor's statement");
            batch
                .iter()
                .map(|v| {
                    insert
                        .execute(params![v.competition, v.voter, v.choice as i64])
                        .expect("the floor's insert")
                        == 1
                })
                .collect()
        };
        tx.commit().expect("the floor's commit");
        for (vote, inserted) in batch.into_iter().zip(inserted) {
            let _ = vote.inserted.send(inserted);
        }
    }
}

impl Peer {
    /// The checks the peer and the floor both make before writing: the bearer token's subject
    /// (as thisthat's local auth issues it) is the voter, and the choice is one of 3 photos.
    fn check(&self, headers: &HeaderMap, ballot: &Ballot) -> Result<String, StatusCode> {
        let voter = self.voter(headers)?;
        if ballot.choice > 2 {
            return Err(StatusCode::UNPROCESSABLE_ENTITY);
        }
        Ok(voter)
    }

    /// The bearer token's subject, as thisthat's local auth issues it.
    fn voter(&self, headers: &HeaderMap) -> Result<String, StatusCode> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        Ok(jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?
            .claims
            .sub)
    }

    fn cast(&self, id: &str, voter: &str, choice: usize) -> Result<Json<serde_json::Value>, StatusCode> {
        let internal = |_| StatusCode::INTERNAL_SERVER_ERROR;
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let tx = db
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(internal)?;
        let (mut counts, closed): ([i64; 3], bool) = tx
            .query_row(
                "SELECT c0, c1, c2, closed FROM competitions WHERE id = ?1",
                params![id],
                |r| Ok(([r.get(0)?, r.get(1)?, r.get(2)?], r.get(3)?)),
            )
            .optional()
            .map_err(internal)?
            .ok_or(StatusCode::NOT_FOUND)?;
        if closed {
            return Err(StatusCode::CONFLICT);
        }
        let inserted = tx
            .execute(
                "INSERT INTO votes VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![id, voter, choice as i64],
            )
            .map_err(internal)?;
        if inserted == 0 {
            return Err(StatusCode::CONFLICT);
        }
        counts[choice] += 1;
        let closes = counts.iter().sum::<i64>() >= VOTES_TO_CLOSE;
        tx.execute(
            "UPDATE competitions SET c0 = ?2, c1 = ?3, c2 = ?4, closed = ?5 WHERE id = ?1",
            params![id, counts[0], counts[1], counts[2], closes],
        )
        .map_err(internal)?;
        tx.commit().map_err(internal)?;
        Ok(Json(
            serde_json::json!({"competition": id, "choice": choice, "tally": counts, "closed": closes}),
        ))
    }
}
