//! Pricing a month on a mix, and every mix.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    Counts, Mix, Provider, Scenario,
    model::{Quantity, quantities},
    prices::PriceBook,
};

/// Whether free allowances are taken off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeTier {
    /// Take each price's monthly free allowance off (including 12-month new-account ones).
    On,
    /// Price every unit.
    Off,
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// Who bills it.
    pub provider: String,
    /// What the provider calls it.
    pub service: String,
    /// The price key.
    pub key: String,
    /// What a unit is.
    pub unit: String,
    /// Units used in the month.
    pub quantity: f64,
    /// Units the free allowance (and what the plan includes) covered.
    pub free: f64,
    /// Dollars per unit.
    pub usd_per_unit: f64,
    /// Dollars for the month.
    pub usd: f64,
    /// Where the price comes from.
    pub source: String,
}

/// A mix and its monthly bill, or why it cannot be priced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PricedMix {
    /// The mix.
    #[serde(flatten)]
    pub mix: Mix,
    /// The month's total; `None` when a price it needs is missing.
    pub monthly_usd: Option<f64>,
    /// Every line, priced or not.
    pub lines: Vec<Line>,
    /// Why it could not be priced: one entry per missing price it needs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
}

/// Every mix priced for one month.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The month.
    pub counts: Counts,
    /// Every mix, cheapest first; those that cannot be priced last.
    pub mixes: Vec<PricedMix>,
}

impl Report {
    /// The cheapest mix that could be priced.
    pub fn cheapest(&self) -> Option<&PricedMix> {
        self.mixes.first().filter(|m| m.monthly_usd.is_some())
    }

    /// The single-cloud stacks, AWS, Google Cloud, Azure.
    pub fn single_clouds(&self) -> Vec<&PricedMix> {
        Provider::CLOUDS
            .iter()
            .filter_map(|&cloud| self.mixes.iter().find(|m| m.mix == Mix::single(cloud)))
            .collect()
    }

    /// The cheapest single-cloud stack that could be priced.
    pub fn cheapest_single_cloud(&self) -> Option<&PricedMix> {
        self.single_clouds()
            .into_iter()
            .filter(|m| m.monthly_usd.is_some())
            .min_by(|a, b| {
                a.monthly_usd
                    .partial_cmp(&b.monthly_usd)
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
    }
}

/// Prices one month on one mix.
///
/// Units the adapters reported ([`Counts::billed`]) replace the model's estimate of the same
/// price key on the provider that bills it; every other quantity is the model's.
pub fn price_counts(counts: &Counts, mix: &Mix, book: &PriceBook, free: FreeTier) -> PricedMix {
    let mut estimated = quantities(counts, mix);
    for q in &mut estimated {
        if let Some(&reported) = counts.billed.get(q.key)
            && q.key != "egress"
        {
            q.quantity = reported;
        }
    }
    // A reported key the model estimated several times (DynamoDB writes from many operations)
    // must count once: keep the reported total on the first, zero the rest.
    let mut seen = std::collections::BTreeSet::new();
    for q in &mut estimated {
        if counts.billed.contains_key(q.key) && q.key != "egress" && !seen.insert((q.provider, q.key)) {
            q.quantity = 0.0;
        }
    }
    price_quantities(&estimated, mix, book, free)
}

fn price_quantities(quantities: &[Quantity], mix: &Mix, book: &PriceBook, free: FreeTier) -> PricedMix {
    // One line per provider and key: free allowances apply to the sum (egress from storage
    // and from compute share one allowance).
    let mut summed: BTreeMap<(Provider, &'static str), f64> = BTreeMap::new();
    for q in quantities {
        *summed.entry((q.provider, q.key)).or_default() += q.quantity;
    }
    let mut lines = Vec::new();
    let mut refused = Vec::new();
    for ((provider, key), quantity) in summed {
        let Some(price) = book.table(provider).and_then(|t| t.price(key)) else {
            refused.push(format!("{provider} has no price `{key}` in its table"));
            continue;
        };
        let allowance = match free {
            FreeTier::On => (price.free + price.included).min(quantity),
            FreeTier::Off => price.included.min(quantity),
        };
        let billable = quantity - allowance;
        let (usd_per_unit, usd) = match (price.usd, &price.missing) {
            (Some(rate), _) => (rate, billable * rate),
            // A missing price only matters for units the free allowance does not cover.
            (None, _) if billable <= 0.0 => (0.0, 0.0),
            (None, why) => {
                refused.push(format!(
                    "{provider} `{key}` ({}): {} units to price, but {}",
                    price.service,
                    round(billable),
                    why.as_deref().unwrap_or("the price is missing")
                ));
                (f64::NAN, f64::NAN)
            }
        };
        lines.push(Line {
            provider: provider.as_str().to_string(),
            service: price.service.clone(),
            key: key.to_string(),
            unit: price.unit.clone(),
            quantity,
            free: allowance,
            usd_per_unit,
            usd,
            source: price.source.clone(),
        });
    }
    let monthly_usd = refused.is_empty().then(|| lines.iter().map(|l| l.usd).sum());
    PricedMix {
        mix: *mix,
        monthly_usd,
        lines,
        refused,
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Prices `counts` on every mix, cheapest first.
pub fn price_all_counts(counts: &Counts, book: &PriceBook, free: FreeTier) -> Report {
    let mut mixes: Vec<PricedMix> = Mix::all()
        .iter()
        .map(|mix| price_counts(counts, mix, book, free))
        .collect();
    mixes.sort_by(|a, b| match (a.monthly_usd, b.monthly_usd) {
        (Some(x), Some(y)) => x.total_cmp(&y).then(a.mix.cmp(&b.mix)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.mix.cmp(&b.mix),
    });
    Report {
        counts: counts.clone(),
        mixes,
    }
}

/// Prices a scenario on every mix, cheapest first.
pub fn price_all(scenario: &Scenario, book: &PriceBook, free: FreeTier) -> Report {
    price_all_counts(&Counts::from_scenario(scenario), book, free)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prices::PriceTable;

    #[test]
    fn the_seed_prices_on_aws_and_gcp_and_refuses_azure_for_its_missing_prices() {
        let report = price_all(&Scenario::seed(), &PriceBook::builtin().expect("builtin"), FreeTier::On);
        let singles = report.single_clouds();
        assert_eq!(singles.len(), 3);
        assert!(singles[0].monthly_usd.is_some(), "aws: {:?}", singles[0].refused);
        assert!(singles[1].monthly_usd.is_some(), "gcp: {:?}", singles[1].refused);
        assert!(singles[2].monthly_usd.is_none());
        assert!(
            singles[2].refused.iter().any(|r| r.contains("vision.transaction")),
            "{:?}",
            singles[2].refused
        );
        let cheapest = report.cheapest().expect("cheapest");
        let single = report.cheapest_single_cloud().expect("single");
        assert!(cheapest.monthly_usd <= single.monthly_usd);
        // No line of a priced mix is NaN, and its total is the sum of its lines.
        let total: f64 = cheapest.lines.iter().map(|l| l.usd).sum();
        assert_eq!(Some(total), cheapest.monthly_usd);
    }

    #[test]
    fn a_tiny_month_on_aws_by_hand_with_and_without_the_free_tier() {
        let mut s = Scenario::seed();
        s.monthly_active_users = 5;
        s.sessions = 5;
        s.votes_per_session = 6;
        s.competitions = 1;
        s.devices_per_owner = 2;
        let counts = Counts::from_scenario(&s);
        let book = PriceBook::builtin().expect("builtin");
        let aws = Mix::single(Provider::Aws);
        let on = price_counts(&counts, &aws, &book, FreeTier::On);
        let off = price_counts(&counts, &aws, &book, FreeTier::Off);
        let line = |m: &PricedMix, k: &str| m.lines.iter().find(|l| l.key == k).cloned().expect(k);
        // 6 Rekognition images: free under the 1,000-image allowance, $0.006 without it.
        assert_eq!(line(&on, "rekognition.image").usd, 0.0);
        assert!((line(&off, "rekognition.image").usd - 0.006).abs() < 1e-12);
        // 73 API Gateway calls at $1.00 per million.
        assert!((line(&off, "apigateway.http_request").usd - 73.0 * 0.000001).abs() < 1e-15);
        // SNS has no free allowance in the table: 8 requests and 2 pushes at $0.50 per million.
        assert!((line(&on, "sns.request").usd - 8.0 * 0.0000005).abs() < 1e-15);
        assert!((line(&on, "sns.push").usd - 2.0 * 0.0000005).abs() < 1e-15);
        assert!(on.monthly_usd < off.monthly_usd);
    }

    #[test]
    fn units_an_adapter_reported_replace_the_estimate() {
        let book = PriceBook::builtin().expect("builtin");
        let mut counts = Counts::from_scenario(&Scenario::seed());
        let aws = Mix::single(Provider::Aws);
        let estimated = price_counts(&counts, &aws, &book, FreeTier::Off);
        counts.billed.insert("dynamodb.write_unit".into(), 1_000_000.0);
        let reported = price_counts(&counts, &aws, &book, FreeTier::Off);
        let line = |m: &PricedMix| {
            m.lines
                .iter()
                .find(|l| l.key == "dynamodb.write_unit")
                .cloned()
                .expect("line")
        };
        assert_eq!(line(&reported).quantity, 1_000_000.0);
        assert!(line(&estimated).quantity > 2_000_000.0);
        // On a mix that does not use DynamoDB the report changes nothing.
        let gcp = Mix::single(Provider::Gcp);
        assert_eq!(
            price_counts(&counts, &gcp, &book, FreeTier::On).monthly_usd,
            price_all(&Scenario::seed(), &book, FreeTier::On)
                .mixes
                .iter()
                .find(|m| m.mix == gcp)
                .and_then(|m| m.monthly_usd)
        );
    }

    #[test]
    fn free_tier_cliffs_show_where_the_allowance_ends() {
        // Rekognition's 1,000 free images: 500 photos screened (1,000 images) cost nothing,
        // 501 photos (1,002 images) cost two images.
        let book = PriceBook::builtin().expect("builtin");
        let mut s = Scenario::seed();
        s.sessions = 0;
        s.devices_per_owner = 0;
        let cost = |competitions: u64, photos: u64| {
            let mut s = s.clone();
            s.photos_per_competition = photos;
            s.competitions = competitions;
            let priced = price_counts(
                &Counts::from_scenario(&s),
                &Mix::single(Provider::Aws),
                &book,
                FreeTier::On,
            );
            priced
                .lines
                .iter()
                .find(|l| l.key == "rekognition.image")
                .map(|l| l.usd)
        };
        assert_eq!(cost(250, 2), Some(0.0));
        let over = cost(167, 3).expect("line");
        assert!((over - 2.0 * 0.001).abs() < 1e-12, "{over}");
    }

    #[test]
    fn a_missing_price_refuses_the_mix_instead_of_pricing_it_at_zero() {
        let text = include_str!("../prices/aws.toml").replace(
            "usd = 0.001\nfree = 1000.0",
            "missing = \"not read yet\"\nfree = 1000.0",
        );
        let table = PriceTable::from_toml(&text, "aws.toml").expect("valid");
        assert!(table.price("rekognition.image").expect("kept").usd.is_none());
        let dir = std::env::temp_dir().join(format!("thisthat-cost-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("aws.toml"), text).expect("write");
        let book = PriceBook::with_dir(&dir).expect("book");
        let _ = std::fs::remove_dir_all(&dir);
        let counts = Counts::from_scenario(&Scenario::seed());
        let aws = price_counts(&counts, &Mix::single(Provider::Aws), &book, FreeTier::Off);
        assert_eq!(aws.monthly_usd, None);
        assert!(
            aws.refused[0].contains("rekognition.image") && aws.refused[0].contains("not read yet"),
            "{:?}",
            aws.refused
        );
        // Within the free allowance the missing price is not needed.
        let mut small = Scenario::seed();
        small.competitions = 100;
        let aws = price_counts(
            &Counts::from_scenario(&small),
            &Mix::single(Provider::Aws),
            &book,
            FreeTier::On,
        );
        assert!(aws.monthly_usd.is_some(), "{:?}", aws.refused);
    }
}
