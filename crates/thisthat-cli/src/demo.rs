//! `thisthat demo`: the seed's story, end to end, over HTTP against the embedded backend.

use std::{path::PathBuf, time::Duration};

use reqwest::multipart;
use serde_json::{Value, json};
use thisthat_core::UserId;
use thisthat_memory::samples as photos;

use crate::{AnyResult, embedded::Embedded};

/// A data directory that is removed at the end unless the user named one.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub async fn run(data_dir: Option<PathBuf>, usage_out: Option<PathBuf>) -> AnyResult {
    let dir = match data_dir {
        Some(path) => DataDir { path, temporary: false },
        None => DataDir {
            path: std::env::temp_dir().join(format!("thisthat-demo-{}", thisthat_core::CompetitionId::new())),
            temporary: true,
        },
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let embedded = Embedded::open(&dir.path, addr, &Default::default()).await?;
    let outbox = embedded.outbox.clone().ok_or("the demo runs on the embedded outbox")?;
    let router = embedded.router();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(thisthat_server::serve(listener, router, async {
        let _ = stopped.await;
    }));
    let api = format!("http://{addr}");
    println!(
        "Embedded backend on {api} (SQLite, files and an outbox in {})\n",
        dir.path.display()
    );

    let http = reqwest::Client::new();
    let token = |user: &str| -> AnyResult<String> {
        Ok(thisthat_server::issue_hs256(
            &embedded.secrets.jwt,
            &UserId::new(user)?,
            Duration::from_secs(600),
        )?)
    };
    let check = |r: reqwest::Response| async move {
        let status = r.status();
        let body: Value = r.json().await?;
        if !status.is_success() {
            return Err(format!("the API answered {status}: {body}").into());
        }
        AnyResult::Ok(body)
    };

    check(
        http.post(format!("{api}/v1/devices"))
            .bearer_auth(token("alice")?)
            .json(&json!({"platform": "fcm", "token": "alice-phone"}))
            .send()
            .await?,
    )
    .await?;
    println!("alice registered her phone for push notifications");

    let mut form = multipart::Form::new().text("title", "Which one should be my wallpaper?");
    for (name, bytes) in [
        ("chelsea.png", photos::cat_png()),
        ("coffee.png", photos::coffee_png()),
        ("rocket.jpg", photos::rocket_jpeg()),
    ] {
        form = form.part("photo", multipart::Part::bytes(bytes.to_vec()).file_name(name));
    }
    let competition = check(
        http.post(format!("{api}/v1/competitions"))
            .bearer_auth(token("alice")?)
            .multipart(form)
            .send()
            .await?,
    )
    .await?;
    let id = competition["id"].as_str().ok_or("no id in the answer")?.to_string();
    println!(
        "alice posted competition {id}: \"{}\"",
        competition["title"].as_str().unwrap_or("")
    );
    for (i, photo) in competition["photos"].as_array().into_iter().flatten().enumerate() {
        let labels: Vec<String> = photo["labels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                format!(
                    "{} {:.2}",
                    l["name"].as_str().unwrap_or("?"),
                    l["confidence"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        println!(
            "  photo {}: {} {}x{}, labels: {}",
            i + 1,
            photo["media_type"].as_str().unwrap_or("?"),
            photo["width"],
            photo["height"],
            labels.join(", ")
        );
    }
    println!("  categories: {}", competition["categories"]);

    let favourites = [1, 1, 0, 1, 2, 1, 0, 1];
    for i in 0..24 {
        let voter = format!("voter-{:02}", i + 1);
        let receipt = check(
            http.post(format!("{api}/v1/competitions/{id}/votes"))
                .bearer_auth(token(&voter)?)
                .json(&json!({"choice": favourites[i % favourites.len()]}))
                .send()
                .await?,
        )
        .await?;
        if !receipt["closed"].is_null() {
            println!(
                "{voter} cast the 24th vote: tally {}, winners (0-based) {}",
                receipt["tally"], receipt["closed"]["winners"]
            );
        }
    }
    let late = http
        .post(format!("{api}/v1/competitions/{id}/votes"))
        .bearer_auth(token("latecomer")?)
        .json(&json!({"choice": 0}))
        .send()
        .await?;
    let status = late.status();
    let body: Value = late.json().await?;
    println!("a 25th vote is refused: {status} {}", body["error"]["code"]);

    println!("\nthe outbox ({}):", outbox.outbox_path().display());
    // Only this run's competition: a --data-dir may hold earlier demos.
    let sent: Vec<_> = outbox
        .read_outbox()?
        .into_iter()
        .filter(|e| e.competition.to_string() == id)
        .collect();
    for entry in &sent {
        println!(
            "  push to {} ({}): {} / {}",
            entry.user,
            entry.platform.as_str(),
            entry.title,
            entry.body
        );
    }
    if sent.len() != 1 {
        return Err(format!(
            "expected exactly one push for this competition, the outbox holds {}",
            sent.len()
        )
        .into());
    }
    let _ = stop.send(());
    server.await??;
    if let Some(path) = usage_out {
        crate::metering::write_usage(&path, &embedded.meter.usage())?;
    }
    Ok(())
}
