//! The `thisthat` binary as a user runs it.

use assert_cmd::Command;

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
