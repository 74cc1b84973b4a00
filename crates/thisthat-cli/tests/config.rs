//! `thisthat.toml` as a user runs it: `--config` and `THISTHAT_CONFIG`, the order in which
//! flags, variables and the file win, the example file, and refusals that name the key.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

mod common;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("thisthat-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../thisthat.example.toml")
}

/// `thisthat token` reads the data directory's `jwt.key`; with none anywhere, its error names
/// the directory it chose, which shows which setting won.
#[test]
fn the_flag_beats_the_variable_beats_the_file_beats_the_default() {
    let dir = scratch("precedence");
    let config = dir.join("thisthat.toml");
    std::fs::write(&config, "[server]\ndata_dir = \"from-file\"\n").expect("config");
    let chosen = |flag: bool, variable: bool, file: bool| {
        let mut command = Command::cargo_bin("thisthat").expect("binary");
        command
            .current_dir(&dir)
            .args(["token", "--user", "alice"])
            .env_remove("THISTHAT_DATA_DIR")
            .env_remove("THISTHAT_CONFIG");
        if flag {
            command.args(["--data-dir", "from-flag"]);
        }
        if variable {
            command.env("THISTHAT_DATA_DIR", "from-variable");
        }
        if file {
            command.arg("--config").arg(&config);
        }
        let output = command.output().expect("run");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for (flag, variable, file, dir) in [
        (true, true, true, "from-flag"),
        (false, true, true, "from-variable"),
        (false, false, true, "from-file"),
        (false, false, false, "thisthat-data"),
    ] {
        let stderr = chosen(flag, variable, file);
        assert!(
            stderr.contains(&format!("{dir}/jwt.key does not exist")),
            "flag {flag}, variable {variable}, file {file}: {stderr}"
        );
    }
    // THISTHAT_CONFIG names the file as --config does.
    let output = Command::cargo_bin("thisthat")
        .expect("binary")
        .current_dir(&dir)
        .args(["token", "--user", "alice"])
        .env_remove("THISTHAT_DATA_DIR")
        .env("THISTHAT_CONFIG", &config)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("from-file/jwt.key does not exist"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An unknown key and a bad value stop every command that reads the file, before anything
/// opens, with the key named and what to do.
#[test]
fn an_unknown_key_or_a_bad_value_stops_the_command_naming_the_key() {
    let dir = scratch("refused");
    for (text, says) in [
        (
            "[rules]\nvotes_to_closee = 3\n",
            "rules.votes_to_closee: unknown field `votes_to_closee`, expected one of",
        ),
        (
            "[rules]\nvotes_to_close = 0\n",
            "rules.votes_to_close must be at least 1",
        ),
        (
            "[maintenance]\ninterval = \"1m\"\n",
            "maintenance.interval: invalid type: string \"1m\", expected u64",
        ),
    ] {
        let config = dir.join("thisthat.toml");
        std::fs::write(&config, text).expect("config");
        for command in ["serve", "deliver", "sweep", "cost"] {
            let output = Command::cargo_bin("thisthat")
                .expect("binary")
                .current_dir(&dir)
                .args([command, "--config"])
                .arg(&config)
                .env_remove("THISTHAT_DATA_DIR")
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command} with {text:?}");
            assert!(stderr.contains(says), "{command} with {text:?}: {stderr}");
            assert!(
                stderr.contains("docs/configuration.md") || stderr.contains("fix it"),
                "{stderr}"
            );
        }
        assert!(!dir.join("thisthat-data").exists(), "nothing was opened for {text:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `thisthat serve --config thisthat.example.toml` starts and answers, the file's settings
/// under the flags given.
#[test]
fn serve_runs_with_the_example_file() {
    let dir = scratch("example");
    let log = dir.join("serve.log");
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("thisthat"));
    command
        .arg("serve")
        .arg("--config")
        .arg(example())
        .args(["--classifier", "pixels:"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("PORT")
        .env_remove("THISTHAT_ADDR")
        .stderr(std::fs::File::create(&log).expect("log file"));
    let serving = common::Serving::start(command, || std::fs::read_to_string(&log).unwrap_or_default());
    let response = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(serving.addr).expect("connect");
        let mut response = String::new();
        stream
            .write_all(b"GET /v1/feed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .and_then(|()| stream.read_to_string(&mut response))
            .map(|_| response)
    };
    drop(serving);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let response = response.unwrap_or_else(|e| panic!("read: {e}; the server said:\n{logged}"));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"competitions\":[]"), "{response}");
}
