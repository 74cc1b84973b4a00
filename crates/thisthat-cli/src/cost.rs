//! `thisthat cost`: what the app costs on every provider and every mix, and which is cheapest.

use std::path::PathBuf;

use clap::{Args as ClapArgs, ValueEnum};
use serde_json::json;
use thisthat_core::layers::Usage;
use thisthat_cost::{
    Counts, FreeTier, PricedMix, Report, Scenario, chart_svg, cost_curve, price_all, price_all_counts,
    prices::PriceBook,
};

use crate::AnyResult;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnOff {
    On,
    Off,
}

/// `thisthat cost`'s flags.
#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    /// `seed` (the article's month) or a TOML scenario file setting any of its fields
    /// [default: seed] [file: cost.scenario].
    #[arg(long)]
    scenario: Option<String>,
    /// Price a metered run instead: a usage file from `serve --usage-out` or `demo --usage-out`.
    #[arg(long)]
    usage: Option<PathBuf>,
    /// With --usage: how many such runs make a month.
    #[arg(long, default_value_t = 1.0, requires = "usage")]
    scale: f64,
    /// Scale the scenario to this many monthly active users.
    #[arg(long, conflicts_with = "usage")]
    users: Option<u64>,
    /// Whether free allowances are taken off.
    #[arg(long, value_enum, default_value = "on")]
    free_tier: OnOff,
    /// A directory of newer price tables (`aws.toml`, …), each replacing its provider's
    /// [file: cost.prices].
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Also draw monthly cost against users (1,000 to 10,000,000) as SVG to this file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// How many of the cheapest mixes the table shows.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

pub(crate) fn run(args: &Args, file: &crate::config::CostSection) -> AnyResult {
    let mut scenario = match args.scenario.as_deref().unwrap_or(&file.scenario) {
        "seed" => Scenario::seed(),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read scenario {path}: {e}"))?;
            Scenario::from_toml(&text).map_err(|e| format!("{path}: {e}"))?
        }
    };
    if let Some(users) = args.users {
        scenario = scenario.with_users(users)?;
    }
    let book = match &crate::config::pick(&args.prices, &file.prices) {
        Some(dir) => PriceBook::with_dir(dir)?,
        None => PriceBook::builtin()?,
    };
    for warning in book.stale_warnings(&thisthat_cost::prices::today()) {
        eprintln!("warning: {warning}");
    }
    let free = match args.free_tier {
        OnOff::On => FreeTier::On,
        OnOff::Off => FreeTier::Off,
    };
    let report = match &args.usage {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read usage {}: {e}", path.display()))?;
            let usage = Usage::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            price_all_counts(&Counts::from_usage(&usage, args.scale, &scenario)?, &book, free)
        }
        None => price_all(&scenario, &book, free),
    };
    if let Some(path) = &args.chart {
        let series = cost_curve(&scenario, &book, free, 41);
        let title = format!(
            "thisthat: monthly cost by users (scenario {}, free tier {})",
            scenario.name,
            if matches!(free, FreeTier::On) { "on" } else { "off" }
        );
        std::fs::write(path, chart_svg(&title, &series))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&as_json(&report, &book, free))?),
        Format::Table => print_table(&report, &book, free, args.top),
    }
    Ok(())
}

fn as_json(report: &Report, book: &PriceBook, free: FreeTier) -> serde_json::Value {
    let c = &report.counts;
    json!({
        "prices_as_of": book.as_of(),
        "free_tier": matches!(free, FreeTier::On),
        "scenario": {
            "inputs": c.settings,
            "monthly": {
                "requests": c.api_requests,
                "votes": c.vote_requests,
                "votes_counted": c.accepted_votes,
                "votes_refused": c.rejected_votes,
                "votes_closing": c.closing_votes,
                "competitions": c.competitions,
                "photos": c.photos,
                "photo_views": c.photo_views,
                "pushes": c.pushes,
                "feed_pages": c.feed_pages,
                "registrations": c.registrations,
            },
        },
        "mixes": report.mixes,
        "cheapest": report.cheapest(),
        "cheapest_single_cloud": report.cheapest_single_cloud(),
    })
}

fn money(usd: f64) -> String {
    if usd >= 100.0 {
        format!("${usd:.0}")
    } else {
        format!("${usd:.2}")
    }
}

fn count(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn print_mix(m: &PricedMix) {
    match m.monthly_usd {
        Some(total) => println!("\n{}: {} a month", m.mix, money(total)),
        None => println!("\n{}: cannot be priced", m.mix),
    }
    for reason in &m.refused {
        println!("  refused: {reason}");
    }
    println!(
        "  {:<11} {:<58} {:>16} {:<12} {:>14} {:>10}",
        "provider", "service", "quantity", "unit", "free", "USD"
    );
    let mut lines = m.lines.clone();
    lines.sort_by(|a, b| b.usd.total_cmp(&a.usd));
    for l in &lines {
        let usd = if l.usd.is_nan() {
            "no price".to_string()
        } else {
            format!("{:.4}", l.usd)
        };
        let service: String = l.service.chars().take(58).collect();
        println!(
            "  {:<11} {:<58} {:>16} {:<12} {:>14} {:>10}",
            l.provider,
            service,
            if l.quantity < 100.0 {
                format!("{:.3}", l.quantity)
            } else {
                count(l.quantity)
            },
            l.unit,
            if l.free < 100.0 {
                format!("{:.3}", l.free)
            } else {
                count(l.free)
            },
            usd
        );
    }
}

fn print_table(report: &Report, book: &PriceBook, free: FreeTier, top: usize) {
    let c = &report.counts;
    let as_of: Vec<String> = book.as_of().iter().map(|(p, d)| format!("{p} {d}")).collect();
    println!(
        "thisthat cost: scenario {} ({} users, {} sessions), free tier {}, prices as of {}",
        c.settings.name,
        count(c.settings.monthly_active_users as f64),
        count(c.settings.sessions as f64),
        if matches!(free, FreeTier::On) { "on" } else { "off" },
        as_of.join(", ")
    );
    println!(
        "a month: {} API requests; {} vote requests ({} counted, {} refused, {} closing); {} photos; {} photo views; {} pushes",
        count(c.api_requests),
        count(c.vote_requests),
        count(c.accepted_votes),
        count(c.rejected_votes),
        count(c.closing_votes),
        count(c.photos),
        count(c.photo_views),
        count(c.pushes)
    );
    let priced = report.mixes.iter().filter(|m| m.monthly_usd.is_some()).count();
    println!(
        "{} mixes: {priced} priced, {} refused for missing prices",
        report.mixes.len(),
        report.mixes.len() - priced
    );
    println!("\nthe cheapest mixes:");
    for (i, m) in report
        .mixes
        .iter()
        .filter(|m| m.monthly_usd.is_some())
        .take(top)
        .enumerate()
    {
        println!(
            "  {:>2}. {:>9}  {}",
            i + 1,
            money(m.monthly_usd.unwrap_or_default()),
            m.mix
        );
    }
    println!("\nthe single-cloud stacks:");
    for m in report.single_clouds() {
        match m.monthly_usd {
            Some(usd) => println!("  {:>9}  {}", money(usd), m.mix),
            None => println!("  {:>9}  {} ({} missing prices)", "-", m.mix, m.refused.len()),
        }
    }
    if let Some(m) = report
        .mixes
        .iter()
        .find(|m| m.mix.compute == thisthat_cost::Provider::Embedded)
    {
        match m.monthly_usd {
            Some(usd) => println!(
                "  {:>9}  the embedded default on one VM (no redundancy, no capacity check)",
                money(usd)
            ),
            None => println!(
                "  {:>9}  the embedded default on one VM ({} missing prices)",
                "-",
                m.refused.len()
            ),
        }
    }
    match (report.cheapest(), report.cheapest_single_cloud()) {
        (Some(best), Some(single)) => {
            let (b, s) = (
                best.monthly_usd.unwrap_or_default(),
                single.monthly_usd.unwrap_or_default(),
            );
            let saved = s - b;
            let share = if s > 0.0 { 100.0 * saved / s } else { 0.0 };
            println!(
                "\ncheapest: {} at {} a month, saving {} ({share:.0}%) against the cheapest single cloud, {} at {}",
                best.mix,
                money(b),
                money(saved),
                single.mix,
                money(s)
            );
        }
        (Some(best), None) => println!("\ncheapest: {} (no single cloud can be priced)", best.mix),
        _ => println!("\nno mix can be priced with these tables"),
    }
    if let Some(best) = report.cheapest() {
        println!("\n== the cheapest mix, line by line ==");
        print_mix(best);
    }
    println!("\n== the single-cloud stacks, line by line ==");
    for m in report.single_clouds() {
        print_mix(m);
    }
}
