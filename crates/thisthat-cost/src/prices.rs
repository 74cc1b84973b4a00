//! Price tables: one TOML file per provider, every price with its unit, free allowance, source
//! page and the date it was read. The built-in tables are `crates/thisthat-cost/prices/*.toml`;
//! a directory of newer ones replaces them provider by provider.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{CostError, Provider};

/// How old a table may be before `thisthat cost` warns that it should be read again.
pub const STALE_AFTER_DAYS: i64 = 180;

const BUILTIN: &[(&str, &str)] = &[
    ("aws", include_str!("../prices/aws.toml")),
    ("gcp", include_str!("../prices/gcp.toml")),
    ("azure", include_str!("../prices/azure.toml")),
    ("cloudflare", include_str!("../prices/cloudflare.toml")),
];

/// One provider's prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// `aws`, `gcp`, `azure` or `cloudflare`.
    pub provider: String,
    /// The region the prices are for.
    pub region: String,
    /// The day the table was last read from its sources (`YYYY-MM-DD`).
    pub as_of: String,
    /// The prices.
    #[serde(rename = "price")]
    pub prices: Vec<Price>,
}

/// One price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// The key the model asks for (`s3.storage`, `egress`, …), unique within the table.
    pub key: String,
    /// What the provider calls it.
    pub service: String,
    /// What one unit is (`GB-month`, `request`, …).
    pub unit: String,
    /// US dollars per unit; absent when the price could not be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Why there is no price. Exactly one of `usd` and `missing` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    /// Units free each month under a free tier (0 if none); not taken off with `--free-tier off`.
    #[serde(default)]
    pub free: f64,
    /// Units the plan itself includes each month (a VM's transfer allowance); always taken off.
    #[serde(default)]
    pub included: f64,
    /// What the free allowance is and how long it lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_note: Option<String>,
    /// The public page the price was read from.
    pub source: String,
    /// The page's own date, where it shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_date: Option<String>,
    /// The day it was read.
    pub read: String,
    /// Anything else a reader needs (tiers, conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PriceTable {
    /// Parses and checks a table; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<PriceTable, CostError> {
        let err = |message: String| CostError::Prices {
            file: file.to_string(),
            message,
        };
        let table: PriceTable = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if Provider::parse(&table.provider).is_none() {
            return Err(err(format!(
                "unknown provider `{}` (aws, gcp, azure, cloudflare)",
                table.provider
            )));
        }
        days_from_date(&table.as_of).ok_or_else(|| err(format!("as_of `{}` is not YYYY-MM-DD", table.as_of)))?;
        let mut seen = BTreeMap::new();
        for price in &table.prices {
            let at = |m: &str| err(format!("price `{}`: {m}", price.key));
            if seen.insert(price.key.clone(), ()).is_some() {
                return Err(at("appears twice"));
            }
            match (price.usd, &price.missing) {
                (Some(usd), None) if usd.is_finite() && usd >= 0.0 => {}
                (Some(_), None) => return Err(at("usd must be a number of dollars, 0 or more")),
                (None, Some(_)) => {}
                _ => return Err(at("give exactly one of `usd` and `missing`")),
            }
            if !(price.free.is_finite() && price.free >= 0.0 && price.included.is_finite() && price.included >= 0.0) {
                return Err(at("free and included must be 0 or more"));
            }
            if !price.source.starts_with("https://") && !price.source.starts_with("http://") {
                return Err(at("source must be the URL of the page it was read from"));
            }
            days_from_date(&price.read).ok_or_else(|| at("read is not YYYY-MM-DD"))?;
        }
        Ok(table)
    }

    /// The price with this key.
    pub fn price(&self, key: &str) -> Option<&Price> {
        self.prices.iter().find(|p| p.key == key)
    }
}

/// The tables in use, one per provider.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceBook {
    tables: BTreeMap<Provider, PriceTable>,
}

impl PriceBook {
    /// The tables shipped in the crate.
    pub fn builtin() -> Result<PriceBook, CostError> {
        let mut tables = BTreeMap::new();
        for (name, text) in BUILTIN {
            let table = PriceTable::from_toml(text, &format!("built-in {name}.toml"))?;
            let provider = Provider::parse(&table.provider).ok_or_else(|| CostError::Prices {
                file: (*name).to_string(),
                message: "unknown provider".into(),
            })?;
            tables.insert(provider, table);
        }
        Ok(PriceBook { tables })
    }

    /// The built-in tables, with every `*.toml` in `dir` replacing its provider's.
    pub fn with_dir(dir: &Path) -> Result<PriceBook, CostError> {
        let mut book = PriceBook::builtin()?;
        let io = |source| CostError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut found = 0;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| CostError::Io {
                path: path.clone(),
                source,
            })?;
            let table = PriceTable::from_toml(&text, &path.display().to_string())?;
            if let Some(provider) = Provider::parse(&table.provider) {
                book.tables.insert(provider, table);
                found += 1;
            }
        }
        if found == 0 {
            return Err(CostError::Prices {
                file: dir.display().to_string(),
                message: "no *.toml price table in this directory".into(),
            });
        }
        Ok(book)
    }

    /// One provider's table.
    pub fn table(&self, provider: Provider) -> Option<&PriceTable> {
        self.tables.get(&provider)
    }

    /// Each provider's `as_of` date.
    pub fn as_of(&self) -> BTreeMap<String, String> {
        self.tables
            .iter()
            .map(|(p, t)| (p.as_str().to_string(), t.as_of.clone()))
            .collect()
    }

    /// A warning per table older than [`STALE_AFTER_DAYS`] on `today` (`YYYY-MM-DD`).
    pub fn stale_warnings(&self, today: &str) -> Vec<String> {
        let Some(now) = days_from_date(today) else {
            return vec![];
        };
        self.tables
            .values()
            .filter_map(|t| {
                let age = now - days_from_date(&t.as_of)?;
                (age > STALE_AFTER_DAYS).then(|| {
                    format!(
                        "the {} price table is {age} days old (as of {}); read its sources again and pass --prices DIR",
                        t.provider, t.as_of
                    )
                })
            })
            .collect()
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Howard Hinnant's civil-date algorithm).
pub fn days_from_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = thisthat_core::adapter::utc_date(seconds);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_parse_and_every_price_has_a_source_and_date() {
        let book = PriceBook::builtin().expect("parse");
        for provider in [Provider::Aws, Provider::Gcp, Provider::Azure, Provider::Cloudflare] {
            let table = book.table(provider).expect("table");
            assert!(!table.prices.is_empty());
        }
        assert_eq!(book.as_of().len(), 4);
    }

    #[test]
    fn dates_and_staleness() {
        assert_eq!(days_from_date("1970-01-01"), Some(0));
        assert_eq!(days_from_date("2026-12-01"), Some(20_788));
        assert_eq!(days_from_date("2026-13-01"), None);
        assert_eq!(today().len(), 10);
        let book = PriceBook::builtin().expect("parse");
        assert!(book.stale_warnings("2026-12-02").is_empty());
        let warnings = book.stale_warnings("2027-07-01");
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].contains("days old"));
    }

    #[test]
    fn bad_tables_are_refused() {
        let base = "provider = \"aws\"\nregion = \"r\"\nas_of = \"2026-12-01\"\n[[price]]\nkey = \"k\"\nservice = \"s\"\nunit = \"u\"\nsource = \"https://x\"\nread = \"2026-12-01\"\n";
        let err = |extra: &str| {
            PriceTable::from_toml(&format!("{base}{extra}"), "t.toml")
                .expect_err(extra)
                .to_string()
        };
        assert!(err("").contains("exactly one of `usd` and `missing`"));
        assert!(err("usd = -1.0").contains("0 or more"));
        assert!(err("usd = 1.0\ncolour = 1").contains("unknown field `colour`"));
        PriceTable::from_toml(&format!("{base}usd = 1.0"), "t.toml").expect("valid");
        PriceTable::from_toml(&format!("{base}missing = \"not found\""), "t.toml").expect("valid");
    }
}
