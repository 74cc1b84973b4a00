//! What the command's test files share: starting `thisthat serve` on ports it picks itself.
//!
//! A port a test picks (bind to port 0, read it, close) and hands to the server is free only
//! until someone else binds it: a fake, an emulator or another test's server can take it
//! before the server does, and the test then talks to a stranger (seen as a reset connection
//! in `scripts/flake-hunt`). `serve --addr 127.0.0.1:0` binds a free port itself and prints it.

#![allow(dead_code)] // each test file uses a part

use std::{
    io::BufRead,
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long a server may take to start: the embedded model loads in seconds in a debug build,
/// more on a loaded machine.
pub const STARTUP: Duration = Duration::from_secs(90);

/// A running `thisthat serve` and what it printed.
pub struct Serving {
    /// The process (killed and reaped on drop).
    pub child: Child,
    /// The API's address, from its "thisthat API on http://…" line.
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Serving {
    /// Spawns `command` (`thisthat serve …`, without `--addr`) with `--addr 127.0.0.1:0` and
    /// waits, at most [`STARTUP`], until it prints the address it listens on. `context` is
    /// shown if it never does (a log file's contents, say).
    pub fn start(mut command: Command, context: impl Fn() -> String) -> Serving {
        command.args(["--addr", "127.0.0.1:0"]);
        Serving::start_as_given(command, context)
    }

    /// As [`Serving::start`], with the address `command` sets itself (through `PORT=0`, say).
    pub fn start_as_given(mut command: Command, context: impl Fn() -> String) -> Serving {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn thisthat serve");
        let stdout = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = mpsc::channel();
        // Drained to the end: the server's later prints must not meet a closed pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut serving = Serving {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let line = serving.line_starting("thisthat API on http://", &context);
        serving.addr = line
            .trim_start_matches("thisthat API on http://")
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        serving
    }

    /// The API's base URL.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The first line printed (from now on) that starts with `prefix`, waiting at most
    /// [`STARTUP`].
    pub fn line_starting(&mut self, prefix: &str, context: impl Fn() -> String) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.trim_start().starts_with(prefix) => return line.trim_start().to_string(),
                Ok(_) => {}
                Err(e) => {
                    let _ = self.child.kill();
                    let status = self.child.wait();
                    panic!(
                        "serve printed no {prefix:?} line ({e:?}; exit {status:?}):\n{}",
                        context()
                    );
                }
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
