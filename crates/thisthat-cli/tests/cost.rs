//! `thisthat cost` as a user runs it.

use assert_cmd::Command;

mod common;

fn cost(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("thisthat")
        .expect("binary")
        .arg("cost")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("thisthat-cli-cost-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[test]
fn the_table_names_the_cheapest_mix_and_what_it_saves() {
    let out = cost(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("scenario seed (10,000 users, 15,000 sessions)"),
        "{stdout}"
    );
    assert!(stdout.contains("the single-cloud stacks:"));
    assert!(
        stdout.contains("cheapest: ") && stdout.contains("against the cheapest single cloud"),
        "{stdout}"
    );
    for stack in ["all aws", "all gcp", "all azure"] {
        assert!(stdout.contains(stack), "{stack} missing:\n{stdout}");
    }
    assert!(stdout.contains("Amazon Rekognition Image"), "line items are shown");
    assert!(
        stdout.contains("refused: azure `vision.transaction`"),
        "missing prices are named"
    );
}

#[test]
fn json_has_dated_prices_the_month_every_mix_and_the_cheapest() {
    let out = cost(&["--format", "json", "--free-tier", "off", "--users", "20000"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["prices_as_of"]["aws"], "2026-12-01");
    assert_eq!(json["free_tier"], false);
    assert_eq!(json["scenario"]["inputs"]["monthly_active_users"], 20000);
    assert_eq!(json["scenario"]["monthly"]["votes"], 600000.0);
    assert_eq!(json["scenario"]["monthly"]["photos"], 9000.0);
    let mixes = json["mixes"].as_array().expect("mixes");
    assert_eq!(mixes.len(), 325);
    let cheapest = &json["cheapest"];
    for field in ["storage", "database", "notifier", "classifier", "compute"] {
        assert!(cheapest[field].is_string(), "{field}");
    }
    let total = cheapest["monthly_usd"].as_f64().expect("priced");
    let lines = cheapest["lines"].as_array().expect("lines");
    let sum: f64 = lines.iter().map(|l| l["usd"].as_f64().expect("usd")).sum();
    assert!((sum - total).abs() < 1e-9);
    for line in lines {
        for field in ["provider", "service", "unit", "quantity", "usd", "source"] {
            assert!(!line[field].is_null(), "{field} in {line}");
        }
        assert!(line["source"].as_str().is_some_and(|s| s.starts_with("http")));
    }
    let refused: Vec<_> = mixes.iter().filter(|m| m["monthly_usd"].is_null()).collect();
    assert!(
        refused
            .iter()
            .all(|m| m["refused"].as_array().is_some_and(|r| !r.is_empty()))
    );
    assert!(
        mixes
            .iter()
            .all(|m| m["monthly_usd"].is_null() || m["monthly_usd"].as_f64().is_some_and(|x| x >= total))
    );
}

#[test]
fn the_chart_is_an_svg_with_every_series() {
    let dir = scratch("chart");
    let path = dir.join("cost.svg");
    let out = cost(&["--format", "json", "--chart", path.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&path).expect("written");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        3,
        "cheapest, aws, gcp (azure cannot be priced)"
    );
    for name in [
        "cheapest mix at each size",
        "all aws",
        "all gcp",
        "all azure (cannot be priced)",
    ] {
        assert!(svg.contains(name), "{name}");
    }
    assert_eq!(svg.matches('<').count(), svg.matches('>').count(), "tags are balanced");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_naming_the_field() {
    let dir = scratch("bad");
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, "sessions = -5\n").expect("write");
    let out = cost(&["--scenario", scenario.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`sessions`: may not be negative"));
    std::fs::write(&scenario, "votes_per_sesion = 3\n").expect("write");
    let out = cost(&["--scenario", scenario.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("`votes_per_sesion`: unknown field"));
    let usage = dir.join("usage.json");
    std::fs::write(&usage, r#"{"version": 99, "ports": {}}"#).expect("write");
    let out = cost(&["--usage", usage.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("newer thisthat"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn serve_meters_every_port_call_on_metrics_and_in_the_usage_file() {
    let dir = scratch("serve");
    let usage = dir.join("usage.json");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .arg("serve")
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args([
            "--database",
            "sqlite::memory:",
            "--notifier",
            "memory://",
            "--classifier",
            "pixels:",
        ])
        .arg("--usage-out")
        .arg(&usage)
        .args(["--maintenance-interval", "1"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stderr(std::process::Stdio::null());
    let mut serving = common::Serving::start(command, String::new);
    let port = serving.addr.port();
    let metrics_line = serving.line_starting("metrics at:", String::new);
    let metrics: u16 = metrics_line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches("/metrics").parse().ok())
        .unwrap_or_else(|| panic!("no metrics port in {metrics_line:?}"));
    let feed = get(port, "/v1/feed");
    let feed = feed.expect("the server came up");
    assert!(feed.starts_with("HTTP/1.1 200"), "{feed}");
    assert!(get(port, "/v1/feed").is_some());
    // Bounded: the first background pass starts after about a second.
    let mut text = String::new();
    for _ in 0..600 {
        text = get(metrics, "/metrics").expect("metrics answer");
        if !text.contains(r#"thisthat_maintenance_passes_total{outcome="ok"} 0"#) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SIGTERM to the server this test started, by its pid: it shuts down and writes the usage.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status();
    let mut exited = false;
    for _ in 0..200 {
        if serving.child.try_wait().expect("wait").is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(serving);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    assert!(
        text.contains(r#"thisthat_port_calls_total{port="database",operation="feed",outcome="ok"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"thisthat_maintenance_passes_total{outcome="ok"} "#)
            && !text.contains(r#"thisthat_maintenance_passes_total{outcome="ok"} 0"#),
        "the background maintenance passes are counted: {text}"
    );
    assert!(
        text.contains(r#"thisthat_maintenance_items_total{what="drafts_expired"} 0"#),
        "{text}"
    );
    assert!(exited, "the server stops on SIGTERM");
    let written = std::fs::read_to_string(&usage).expect("usage written on shutdown");
    let usage = thisthat_core::layers::Usage::from_json(&written).expect("a usage file");
    assert_eq!(usage.calls("database", "feed"), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_metered_demo_is_priced_by_cost() {
    let dir = scratch("demo");
    let usage = dir.join("usage.json");
    let out = Command::cargo_bin("thisthat")
        .expect("binary")
        .arg("demo")
        .arg("--usage-out")
        .arg(&usage)
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = std::fs::read_to_string(&usage).expect("usage written");
    let metered = thisthat_core::layers::Usage::from_json(&written).expect("a usage file");
    assert_eq!(
        metered.calls("blob", "put"),
        6,
        "each photo's original and display variant"
    );
    assert_eq!(metered.calls("classifier", "classify"), 3);
    let votes = metered.operation("database", "cast_vote").expect("votes");
    assert_eq!(votes.outcomes.get("ok"), Some(&24));
    assert_eq!(metered.calls("notifier", "send"), 1);
    let out = cost(&[
        "--usage",
        usage.to_str().expect("utf-8"),
        "--scale",
        "1000",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["scenario"]["monthly"]["photos"], 3000.0);
    assert_eq!(json["scenario"]["monthly"]["votes_counted"], 24000.0);
    assert!(json["cheapest"]["monthly_usd"].as_f64().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
