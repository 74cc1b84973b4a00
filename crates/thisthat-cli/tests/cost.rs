//! `thisthat cost` as a user runs it.

use assert_cmd::Command;

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
        stdout.contains("refused: azure `table.transaction`"),
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
    assert_eq!(mixes.len(), 324);
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
