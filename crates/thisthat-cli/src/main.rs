//! `thisthat`: run the "This, this or that" API on one machine with no cloud account, or watch
//! the whole story play out against it.
//!
//! ```text
//! thisthat demo                 # start the embedded backend, play 3 photos + 24 voters, print the result
//! thisthat serve                # the API on http://127.0.0.1:8080, data in ./thisthat-data
//! thisthat token --user alice   # a bearer token for curl against a local server
//! thisthat cost                 # the seed month priced on every provider and mix
//! thisthat deliver              # deliver pending result pushes once (serve does it every minute)
//! thisthat sweep                # one whole maintenance pass: deliver, then sweep orphans and old drafts
//! thisthat serve --config thisthat.toml   # settings from a file (flags and variables override it)
//! ```

mod config;
mod cost;
mod demo;
mod embedded;
#[cfg(feature = "lambda")]
mod lambda;
mod listen;
mod metering;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "thisthat",
    version,
    about = "This, this or that: photo competitions on any cloud, or none"
)]
struct Cli {
    #[command(flatten)]
    config: config::ConfigFlag,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API on the embedded backend (SQLite, files, an outbox file).
    Serve {
        /// Address to listen on [default: 0.0.0.0:$PORT when PORT is set, as Cloud Run and
        /// Azure Container Apps set it, else 127.0.0.1:8080].
        #[arg(long, env = "THISTHAT_ADDR")]
        addr: Option<SocketAddr>,
        /// Where the database, photos, outbox and secrets live [default: thisthat-data].
        #[arg(long, env = "THISTHAT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        overrides: embedded::Overrides,
        #[command(flatten)]
        metering: metering::Flags,
        /// Seconds between maintenance passes in the background (pending notifications
        /// delivered, orphaned blobs and expired drafts swept), each started up to a tenth
        /// earlier or later so that several servers spread out; 0 turns it off [default: 60].
        #[arg(long, env = "THISTHAT_MAINTENANCE_INTERVAL")]
        maintenance_interval: Option<u64>,
    },
    /// Deliver the result notifications still pending, once, and exit (for cron, Cloud
    /// Scheduler or an Azure timer; `serve` does this in the background).
    Deliver {
        /// Where the database, photos, outbox and secrets live [default: thisthat-data].
        #[arg(long, env = "THISTHAT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        overrides: embedded::Overrides,
    },
    /// One whole maintenance pass, once, and exit: pending notifications delivered, blobs no
    /// competition refers to and expired drafts removed.
    Sweep {
        /// Where the database, photos, outbox and secrets live [default: thisthat-data].
        #[arg(long, env = "THISTHAT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        overrides: embedded::Overrides,
    },
    /// Start the embedded backend and play the whole story against it over HTTP.
    Demo {
        /// Keep the data here instead of a temporary directory.
        // No env: a THISTHAT_DATA_DIR exported for `serve` must not fill a real server's data
        // with demo voters.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Write the meter's usage snapshot (JSON, for `thisthat cost --usage`) here at the end.
        #[arg(long)]
        usage_out: Option<PathBuf>,
    },
    /// Run the API as an AWS Lambda function behind API Gateway (HTTP API, payload v2), and the
    /// maintenance on EventBridge scheduled events. Every port comes from its THISTHAT_*
    /// variable (a Lambda has no place for embedded state); callers are taken from the
    /// gateway's JWT authorizer. Started with no arguments and AWS_LAMBDA_RUNTIME_API set (as
    /// the Lambda runtime starts a `bootstrap`), the binary runs this command.
    #[cfg(feature = "lambda")]
    Lambda,
    /// What the app costs on each provider and on every mix of them, and which is cheapest.
    Cost(cost::Args),
    /// Print the API's OpenAPI 3.1 document under the configured rules (`[rules]` of the
    /// configuration file), as `GET /v1/openapi.json` serves it. Under the default rules it is
    /// `docs/openapi.json`.
    Openapi,
    /// Print a bearer token for a user of a local server (signed with its data dir's secret).
    Token {
        /// The user id to put in the token's `sub` claim.
        #[arg(long)]
        user: String,
        /// The server's data directory [default: thisthat-data].
        #[arg(long, env = "THISTHAT_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
}

impl Command {
    /// Whether this command is a long-running server, whose log is its output.
    fn is_server(&self) -> bool {
        match self {
            Command::Serve { .. } => true,
            #[cfg(feature = "lambda")]
            Command::Lambda => true,
            _ => false,
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    #[cfg(feature = "lambda")]
    let cli = Cli::parse_from(lambda::command_line());
    #[cfg(not(feature = "lambda"))]
    let cli = Cli::parse();
    // The demo's story is its output; a server's log is its output.
    let default_level = if cli.command.is_server() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match config::Config::load(cli.config.path.as_deref()) {
        Err(e) => Err(e.into()),
        Ok(file) => {
            let origin = config_origin(cli.config.path.as_deref());
            run(cli.command, &file, &origin).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            std::process::ExitCode::FAILURE
        }
    }
}

type AnyResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How errors name where a setting came from: the file, or the built-in defaults.
fn config_origin(path: Option<&std::path::Path>) -> String {
    path.map_or_else(|| "the configuration".to_owned(), |p| p.display().to_string())
}

/// Runs `command` with `file`'s settings under its flags and variables.
async fn run(command: Command, file: &config::Config, origin: &str) -> AnyResult {
    let data_dir = |given: Option<PathBuf>| given.unwrap_or_else(|| file.server.data_dir.clone());
    match command {
        Command::Serve {
            addr,
            data_dir: dir,
            overrides,
            metering,
            maintenance_interval,
        } => {
            let settings = overrides.resolve(file, origin)?;
            let metering = metering.resolve(file);
            let interval = maintenance_interval.unwrap_or(file.maintenance.interval);
            serve(addr, file.server.addr, data_dir(dir), &settings, &metering, interval).await
        }
        Command::Deliver {
            data_dir: dir,
            overrides,
        } => maintain_once(&data_dir(dir), &overrides.resolve(file, origin)?, false).await,
        Command::Sweep {
            data_dir: dir,
            overrides,
        } => maintain_once(&data_dir(dir), &overrides.resolve(file, origin)?, true).await,
        Command::Demo { data_dir, usage_out } => demo::run(data_dir, usage_out).await,
        #[cfg(feature = "lambda")]
        Command::Lambda => lambda::run(file, origin).await,
        Command::Token {
            user,
            data_dir: dir,
            hours,
        } => token(&user, &data_dir(dir), hours),
        Command::Cost(args) => cost::run(&args, &file.cost),
        Command::Openapi => {
            print!(
                "{}",
                thisthat_server::openapi::document_json(&file.rules.to_rules(origin)?)
            );
            Ok(())
        }
    }
}

/// Runs [`thisthat_core::Thisthat::maintain`] every `interval` (each wait drawn within a
/// tenth of it either way, so that servers started together spread out) until `stopped`
/// turns true. A failed pass is logged; the next one retries.
async fn maintain_in_background(
    service: thisthat_core::Thisthat,
    interval: Duration,
    counters: metering::MaintenanceCounters,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let wait = jittered(interval, fastrand::f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        tokio::select! {
            result = service.maintain() => {
                counters.record(result.as_ref());
                if let Err(e) = result {
                    tracing::warn!(error = %e, code = e.code(), "maintenance pass failed; the next one retries");
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

/// `interval` moved by up to a tenth either way, `unit` (in `0.0..1.0`) choosing where, and
/// never under 100 ms. (A negative factor would panic in `Duration::mul_f64`: the jitter is a
/// factor around 1, not a signed offset.)
fn jittered(interval: Duration, unit: f64) -> Duration {
    interval
        .mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
        .max(Duration::from_millis(100))
}

/// `thisthat deliver` (`sweep` false) and `thisthat sweep` (`sweep` true): one pass on the
/// configured backend, its report printed.
async fn maintain_once(data_dir: &std::path::Path, settings: &embedded::Settings, sweep: bool) -> AnyResult {
    // Signed URLs are not handed out by a one-shot pass; the address is never listened on.
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let local = embedded::Embedded::open(data_dir, addr, settings).await?;
    let service = local.service();
    if sweep {
        let report = service.maintain().await?;
        println!(
            "delivered {} notifications ({} left pending, {} gone devices removed); swept {} blobs: {} orphans and {} expired drafts removed",
            report.delivery.delivered,
            report.delivery.failed,
            report.delivery.devices_removed,
            report.sweep.blobs_seen,
            report.sweep.orphans_removed,
            report.sweep.drafts_expired
        );
    } else {
        let report = service.deliver_pending().await?;
        println!(
            "delivered {} notifications ({} left pending, {} gone devices removed)",
            report.delivered, report.failed, report.devices_removed
        );
    }
    Ok(())
}

async fn serve(
    addr: Option<SocketAddr>,
    file_addr: Option<SocketAddr>,
    data_dir: PathBuf,
    settings: &embedded::Settings,
    metering: &metering::Flags,
    maintenance_interval: u64,
) -> AnyResult {
    let port = std::env::var_os("PORT").map(|port| port.to_string_lossy().into_owned());
    let addr = listen::address(addr, port.as_deref(), file_addr)?;
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    // Open the backend before listening, so that a bad configuration fails without ever taking
    // the port, and an open port means a ready server. Only port 0 (any free port) must be
    // bound first, to learn the address that signed URLs point at.
    let early = if addr.port() == 0 {
        Some(bind(addr).await?)
    } else {
        None
    };
    let public = match &early {
        Some(listener) => listener.local_addr()?,
        None => addr,
    };
    let local = embedded::Embedded::open(&data_dir, public, settings).await?;
    let listener = match early {
        Some(listener) => listener,
        None => bind(addr).await?,
    };
    println!(
        "thisthat API on http://{} (data in {})",
        listener.local_addr()?,
        data_dir.display()
    );
    println!(
        "  get a token:  thisthat token --user alice --data-dir {}",
        data_dir.display()
    );
    if let Some(outbox) = &local.outbox {
        println!("  pushes go to: {}", outbox.outbox_path().display());
    }
    let counters = metering::MaintenanceCounters::default();
    if let Some(metrics) = metering.metrics_addr {
        let bound = metering::serve_metrics(metrics, local.meter.clone(), counters.clone()).await?;
        println!("  metrics at:   http://{bound}/metrics");
    }
    let shutdown = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down; finishing requests in flight");
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let maintenance = (maintenance_interval > 0).then(|| {
        tokio::spawn(maintain_in_background(
            local.service().clone(),
            Duration::from_secs(maintenance_interval),
            counters.clone(),
            stopped,
        ))
    });
    thisthat_server::serve(listener, local.router(), shutdown).await?;
    // Stops between passes, or abandons the pass under way: every step of it is safe to stop
    // anywhere (a lease runs out, a sweep starts over).
    let _ = stop.send(true);
    if let Some(task) = maintenance {
        let _ = task.await;
    }
    if let Some(path) = &metering.usage_out {
        metering::write_usage(path, &local.meter.usage())?;
    }
    Ok(())
}

fn token(user: &str, data_dir: &std::path::Path, hours: u64) -> AnyResult {
    let user = thisthat_core::UserId::new(user)?;
    let secret = embedded::Secrets::jwt_of(data_dir)?;
    let seconds = hours.checked_mul(3600).ok_or("--hours is too large")?;
    println!(
        "{}",
        thisthat_server::issue_hs256(&secret, &user, Duration::from_secs(seconds))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maintenance_wait_stays_within_a_tenth_of_the_interval() {
        let minute = Duration::from_secs(60);
        assert_eq!(jittered(minute, 0.0), Duration::from_secs(54));
        assert_eq!(jittered(minute, 0.5), minute);
        assert_eq!(jittered(minute, 1.0), Duration::from_secs(66));
        assert_eq!(jittered(Duration::from_secs(1), 0.0), Duration::from_millis(900));
        assert_eq!(jittered(Duration::ZERO, 0.3), Duration::from_millis(100));
    }
}
