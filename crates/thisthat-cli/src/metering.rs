//! What `serve` and `demo` expose of the meter on every port: Prometheus text on a separate
//! listener, and the [`Usage`] snapshot written on shutdown for `thisthat cost --usage`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::response::IntoResponse as _;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
    registry::Registry,
};
use thisthat_core::{
    MaintenanceReport,
    layers::{Meter, Usage},
};

use crate::AnyResult;

/// `serve`'s metering flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// Serve the port counters as Prometheus text at `GET /metrics` on this separate address
    /// (off by default) [file: metrics.addr].
    #[arg(long, env = "THISTHAT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Write the meter's usage snapshot (JSON, for `thisthat cost --usage`) here on shutdown
    /// [file: metrics.usage_out].
    #[arg(long, env = "THISTHAT_USAGE_OUT")]
    pub usage_out: Option<PathBuf>,
}

impl Flags {
    /// These flags over the configuration file's `[metrics]`.
    pub fn resolve(self, file: &crate::config::Config) -> Flags {
        Flags {
            metrics_addr: self.metrics_addr.or(file.metrics.addr),
            usage_out: self.usage_out.or_else(|| file.metrics.usage_out.clone()),
        }
    }
}

/// The meter's counts as Prometheus metrics, read at every scrape.
#[derive(Debug)]
struct PortCounters(Meter);

impl Collector for PortCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let usage = self.0.usage();
        let ops = || {
            usage
                .ports
                .iter()
                .flat_map(|(port, ops)| ops.iter().map(move |(op, u)| (port.as_str(), op.as_str(), u)))
        };
        let mut calls = encoder.encode_descriptor(
            "thisthat_port_calls",
            "Port calls by port, operation and outcome (ok or the error code).",
            None,
            MetricType::Counter,
        )?;
        for (port, op, u) in ops() {
            for (outcome, n) in &u.outcomes {
                let labels = [("port", port), ("operation", op), ("outcome", outcome.as_str())];
                ConstCounter::new(*n).encode(calls.encode_family(&labels)?)?;
            }
        }
        for (name, help, pick) in [
            (
                "thisthat_port_bytes_in",
                "Body bytes sent through a port (blob puts, classifier photos).",
                (|u: &thisthat_core::layers::OperationUsage| u.bytes_in) as fn(&_) -> u64,
            ),
            (
                "thisthat_port_bytes_out",
                "Body bytes received through a port (blob gets).",
                |u: &thisthat_core::layers::OperationUsage| u.bytes_out,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (port, op, u) in ops() {
                let labels = [("port", port), ("operation", op)];
                ConstCounter::new(pick(u)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut billed = encoder.encode_descriptor(
            "thisthat_billed_units",
            "Units the provider bills, as adapters report them, by price key.",
            None,
            MetricType::Counter,
        )?;
        for (port, op, u) in ops() {
            for (unit, n) in &u.billed {
                let labels = [("port", port), ("operation", op), ("unit", unit.as_str())];
                ConstCounter::new(*n).encode(billed.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// What the background maintenance passes of `serve` did, summed since it started: served
/// on `/metrics` beside the port counters.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceCounters(Arc<Mutex<MaintenanceTotals>>);

#[derive(Debug, Default)]
struct MaintenanceTotals {
    passes_ok: u64,
    passes_failed: u64,
    report: MaintenanceReport,
}

impl MaintenanceCounters {
    /// Counts one pass: what it did, or that it failed.
    pub fn record(&self, pass: Result<&MaintenanceReport, &thisthat_core::Error>) {
        let mut totals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match pass {
            Ok(report) => {
                totals.passes_ok += 1;
                let sum = &mut totals.report;
                sum.delivery.delivered += report.delivery.delivered;
                sum.delivery.failed += report.delivery.failed;
                sum.delivery.devices_removed += report.delivery.devices_removed;
                sum.sweep.blobs_seen += report.sweep.blobs_seen;
                sum.sweep.orphans_removed += report.sweep.orphans_removed;
                sum.sweep.drafts_expired += report.sweep.drafts_expired;
            }
            Err(_) => totals.passes_failed += 1,
        }
    }
}

impl Collector for MaintenanceCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut passes = encoder.encode_descriptor(
            "thisthat_maintenance_passes",
            "Background maintenance passes, by outcome (ok, or failed: the next one retries).",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [("ok", totals.passes_ok), ("failed", totals.passes_failed)] {
            ConstCounter::new(n).encode(passes.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut items = encoder.encode_descriptor(
            "thisthat_maintenance_items",
            "What the maintenance passes did: notifications delivered or left pending, gone devices removed, blobs seen, orphaned blobs removed, expired drafts deleted.",
            None,
            MetricType::Counter,
        )?;
        let r = &totals.report;
        for (what, n) in [
            ("delivered", r.delivery.delivered),
            ("left_pending", r.delivery.failed),
            ("devices_removed", r.delivery.devices_removed),
            ("blobs_seen", r.sweep.blobs_seen),
            ("orphans_removed", r.sweep.orphans_removed),
            ("drafts_expired", r.sweep.drafts_expired),
        ] {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            ConstCounter::new(n).encode(items.encode_family(&[("what", what)])?)?;
        }
        Ok(())
    }
}

/// The Prometheus text of the meter's counts and of the maintenance passes.
pub fn render(meter: &Meter, maintenance: &MaintenanceCounters) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PortCounters(meter.clone())));
    registry.register_collector(Box::new(maintenance.clone()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Starts the `/metrics` listener on `addr`; it runs until the process ends.
pub async fn serve_metrics(addr: SocketAddr, meter: Meter, maintenance: MaintenanceCounters) -> AnyResult<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (meter, maintenance) = (meter.clone(), maintenance.clone());
            async move {
                match render(&meter, &maintenance) {
                    Ok(text) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => (
                        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        "cannot render the metrics".to_string(),
                    )
                        .into_response(),
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

/// Writes the meter's usage snapshot to `path`.
pub fn write_usage(path: &std::path::Path, usage: &Usage) -> AnyResult {
    std::fs::write(path, usage.to_json()).map_err(|e| format!("cannot write usage to {}: {e}", path.display()))?;
    eprintln!("usage written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_meter_renders_valid_exposition() {
        let text = render(&Meter::new(), &MaintenanceCounters::default()).expect("render");
        assert!(text.contains("# TYPE thisthat_port_calls counter"), "{text}");
        assert!(
            text.contains(r#"thisthat_maintenance_passes_total{outcome="ok"} 0"#),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    #[test]
    fn maintenance_passes_are_summed() {
        let counters = MaintenanceCounters::default();
        let mut report = MaintenanceReport::default();
        report.delivery.delivered = 2;
        report.sweep.orphans_removed = 3;
        report.sweep.drafts_expired = 1;
        counters.record(Ok(&report));
        counters.record(Ok(&report));
        counters.record(Err(&thisthat_core::Error::unavailable("test", "down")));
        let text = render(&Meter::new(), &counters).expect("render");
        for line in [
            r#"thisthat_maintenance_passes_total{outcome="ok"} 2"#,
            r#"thisthat_maintenance_passes_total{outcome="failed"} 1"#,
            r#"thisthat_maintenance_items_total{what="delivered"} 4"#,
            r#"thisthat_maintenance_items_total{what="orphans_removed"} 6"#,
            r#"thisthat_maintenance_items_total{what="drafts_expired"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
