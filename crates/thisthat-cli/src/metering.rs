//! What `serve` and `demo` expose of the meter on every port: Prometheus text on a separate
//! listener, and the [`Usage`] snapshot written on shutdown for `thisthat cost --usage`.

use std::{net::SocketAddr, path::PathBuf};

use axum::response::IntoResponse as _;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter},
    registry::Registry,
};
use thisthat_core::layers::{Meter, Usage};

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

/// The Prometheus text of the meter's counts.
pub fn render(meter: &Meter) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PortCounters(meter.clone())));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// Starts the `/metrics` listener on `addr`; it runs until the process ends.
pub async fn serve_metrics(addr: SocketAddr, meter: Meter) -> AnyResult<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let meter = meter.clone();
            async move {
                match render(&meter) {
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
        let text = render(&Meter::new()).expect("render");
        assert!(text.contains("# TYPE thisthat_port_calls counter"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
