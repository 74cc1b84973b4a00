//! Monthly cost against monthly active users, as an SVG drawn by hand (no plotting crate).

use std::fmt::Write as _;

use crate::{FreeTier, Mix, Scenario, prices::PriceBook, pricing::price_all};

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    /// The legend.
    pub name: String,
    /// `(monthly active users, monthly USD)`; users where the series cannot be priced are
    /// left out.
    pub points: Vec<(f64, f64)>,
}

/// The cost curves from 1,000 to 10,000,000 users (`steps` points, log-spaced): the cheapest
/// mix at each size, and each single-cloud stack.
pub fn cost_curve(base: &Scenario, book: &PriceBook, free: FreeTier, steps: usize) -> Vec<ChartSeries> {
    let steps = steps.max(2);
    let mut cheapest = ChartSeries {
        name: "cheapest mix at each size".into(),
        points: vec![],
    };
    let mut singles: Vec<ChartSeries> = crate::Provider::CLOUDS
        .iter()
        .map(|c| ChartSeries {
            name: format!("all {c}"),
            points: vec![],
        })
        .collect();
    for i in 0..steps {
        let users = (10f64.powf(3.0 + 4.0 * i as f64 / (steps - 1) as f64)).round() as u64;
        let Ok(scenario) = base.with_users(users) else { continue };
        let report = price_all(&scenario, book, free);
        if let Some(m) = report.cheapest().and_then(|m| m.monthly_usd) {
            cheapest.points.push((users as f64, m));
        }
        for (series, cloud) in singles.iter_mut().zip(crate::Provider::CLOUDS) {
            if let Some(m) = report
                .mixes
                .iter()
                .find(|m| m.mix == Mix::single(cloud))
                .and_then(|m| m.monthly_usd)
            {
                series.points.push((users as f64, m));
            }
        }
    }
    let mut all = vec![cheapest];
    all.extend(singles);
    all
}

const COLOURS: [&str; 4] = ["#111111", "#e07b00", "#1a73e8", "#7a2fb8"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The series as an SVG document: both axes log-scaled, one polyline per series, a legend.
/// A series with no points is named in the legend as "cannot be priced".
pub fn chart_svg(title: &str, series: &[ChartSeries]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 560.0, 90.0, 260.0, 50.0, 60.0);
    let (x0, x1) = (3.0f64, 7.0f64);
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.max(0.01)))
        .collect();
    let y0 = ys
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor()
        .min(0.0);
    let y1 = ys.iter().copied().fold(0.01, f64::max).log10().ceil().max(y0 + 1.0);
    let px = |x: f64| left + (x.log10() - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| h - bottom - (y.max(0.01).log10() - y0) / (y1 - y0) * (h - top - bottom);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="28" font-size="16">{}</text>"#,
        escape(title)
    );
    for e in 3..=7 {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            h - bottom,
            h - bottom + 18.0,
            ["1k", "10k", "100k", "1M", "10M"][(e - 3) as usize]
        );
    }
    let mut e = y0;
    while e <= y1 {
        let y = py(10f64.powf(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">${}</text>"##,
            w - right,
            left - 6.0,
            y + 4.0,
            10f64.powf(e)
        );
        e += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">monthly active users (log scale)</text>"#,
        left + (w - left - right) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{:.1}" transform="rotate(-90 20 {:.1})" text-anchor="middle">USD a month (log scale)</text>"#,
        top + (h - top - bottom) / 2.0,
        top + (h - top - bottom) / 2.0
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let name = escape(&s.name);
        if !s.points.is_empty() {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline class="series" data-name="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                points.join(" ")
            );
        }
        let ly = top + 20.0 + 22.0 * i as f64;
        let label = if s.points.is_empty() {
            format!("{name} (cannot be priced)")
        } else {
            name
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            w - right + 15.0,
            w - right + 40.0,
            w - right + 46.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
