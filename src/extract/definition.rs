//! Extract definitions: `pipelines/extracts/*.toml`, checked when loaded.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::{ExtractError, io_err};
use crate::config::{ConfigError, read_toml};
use crate::disclosure::Rules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum OutFormat {
    Csv,
    Xlsx,
    Parquet,
    Html,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Charts {
    /// A table with dimensions [month, country]: a line per country.
    pub trend: Option<String>,
    /// A table whose first two dimensions are the sending and receiving country.
    pub flows: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub name: String,
    pub title: String,
    /// Tables of one universe count the same units and are audited together.
    pub universe: String,
    pub dimensions: Vec<String>,
    /// What is counted, as a column heading ("children", "persons", "cases").
    pub unit: String,
    pub sql: String,
    /// Dimension values (placeholders allowed) that select the part of this table that counts
    /// the same units as the other tables of its universe.
    #[serde(default)]
    pub slice: BTreeMap<String, String>,
}

/// A table of multiple systems estimates: per reporting country (and the region) and year,
/// the people identified and the estimate of all, seen and unseen, with its interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateDef {
    pub name: String,
    pub title: String,
    /// What makes a list: partner, org_type or a grouping under `[estimate.lists]`.
    #[serde(default = "default_lists")]
    pub lists: String,
    /// Only persons registered as minors.
    #[serde(default)]
    pub children: bool,
    /// Years shown: the year of the month reported (January to that month) and the years
    /// before it, whole.
    #[serde(default = "default_years")]
    pub years: i32,
    /// Bootstrap resamples of each interval, and their seed (fixed: the extract reproduces).
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// No estimate is published for fewer linked people than this (nor below the threshold).
    #[serde(default = "default_min_people")]
    pub min_people: u64,
}

fn default_lists() -> String {
    "org_type".into()
}
fn default_years() -> i32 {
    2
}
fn default_bootstrap() -> usize {
    1000
}
fn default_seed() -> u64 {
    1234
}
fn default_min_people() -> u64 {
    50
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractDef {
    pub name: String,
    pub title: String,
    /// Cron expression (UTC): when the scheduler produces the extract for the previous month.
    pub schedule: String,
    pub formats: Vec<OutFormat>,
    #[serde(default)]
    pub disclosure: Rules,
    #[serde(default)]
    pub charts: Charts,
    #[serde(rename = "table")]
    pub tables: Vec<TableDef>,
    #[serde(rename = "estimate", default)]
    pub estimates: Vec<EstimateDef>,
    #[serde(skip)]
    pub file: PathBuf,
    /// SHA-256 of the definition file.
    #[serde(skip)]
    pub sha256: String,
}

/// Loads every `*.toml` under `dir`, sorted by file name.
pub fn load_extracts(dir: &Path) -> Result<Vec<ExtractDef>, ExtractError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let mut def: ExtractDef = read_toml(&f)?;
        let bytes = std::fs::read(&f).map_err(|e| io_err(&f)(&e))?;
        def.sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        def.file = f.clone();
        check(&def).map_err(|message| ConfigError::Invalid {
            file: f.display().to_string(),
            message,
        })?;
        out.push(def);
    }
    Ok(out)
}

fn check(def: &ExtractDef) -> Result<(), String> {
    def.disclosure.check()?;
    crate::cron::Cron::parse(&def.schedule).map_err(|e| format!("schedule: {e}"))?;
    if def.tables.is_empty() {
        return Err("an extract needs at least one [[table]]".into());
    }
    let mut names = HashSet::new();
    for t in &def.tables {
        if !names.insert(t.name.as_str()) {
            return Err(format!("table {} is defined twice", t.name));
        }
        if t.dimensions.is_empty() || t.dimensions.len() > 3 {
            return Err(format!(
                "table {}: one to three dimensions ({} given)",
                t.name,
                t.dimensions.len()
            ));
        }
        for d in t.slice.keys() {
            if !t.dimensions.contains(d) {
                return Err(format!("table {}: slice on {d}, not a dimension", t.name));
            }
        }
    }
    for e in &def.estimates {
        if !names.insert(e.name.as_str()) {
            return Err(format!("table {} is defined twice", e.name));
        }
        if !(1..=5).contains(&e.years) {
            return Err(format!("estimate {}: years from 1 to 5", e.name));
        }
        if e.bootstrap < 100 {
            return Err(format!(
                "estimate {}: at least 100 bootstrap resamples for a published interval",
                e.name
            ));
        }
    }
    for (role, name) in [("trend", &def.charts.trend), ("flows", &def.charts.flows)] {
        if let Some(n) = name {
            let Some(t) = def.tables.iter().find(|t| &t.name == n) else {
                return Err(format!("charts.{role}: no table {n}"));
            };
            if t.dimensions.len() < 2 {
                return Err(format!("charts.{role}: table {n} needs two dimensions"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/extracts");
        let defs = load_extracts(&dir).expect("extracts");
        let d = defs
            .iter()
            .find(|d| d.name == "regional-monthly")
            .expect("regional-monthly");
        assert_eq!(d.disclosure, Rules::default());
        assert_eq!(d.formats.len(), 4);
    }
}
