//! The manifest of an extract and the writing of its files: staged in a directory beside the
//! destination and renamed into place, so an extract appears whole or not at all.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::build::{Built, KeyEpochRef};
use super::definition::{ExtractDef, OutFormat};
use super::render;
use super::{ExtractError, io_err};
use crate::disclosure::{Published, Rules};

/// The files written for one extract and month.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub extract: String,
    pub title: String,
    pub month: String,
    /// The only wall-clock time in the output.
    pub generated_at: String,
    pub tip_version: String,
    pub definition_sha256: String,
    pub lake_version: i64,
    pub table_versions: BTreeMap<String, i64>,
    /// The key epochs the lake held (manifests made before epochs were recorded have none).
    #[serde(default)]
    pub key_epochs: Vec<KeyEpochRef>,
    pub rules: Rules,
    pub tables: Vec<ManifestTable>,
    /// The estimate tables: how each was made (rule, resamples, seed) and its rows.
    #[serde(default)]
    pub estimates: Vec<ManifestEstimate>,
    pub files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestEstimate {
    pub name: String,
    pub rule: String,
    pub bootstrap: usize,
    pub seed: u64,
    pub rows: usize,
    /// Rows with an estimate (the others say why not).
    pub estimated: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestTable {
    pub name: String,
    pub rows: usize,
    pub suppressed_small: usize,
    pub withheld: usize,
    /// For every suppressed count: its categories and the interval the published numbers
    /// allow (upper null: unbounded).
    pub audit: Vec<AuditEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    pub categories: Vec<String>,
    pub lower: u64,
    pub upper: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub sha256: String,
    pub bytes: u64,
}

/// Writes the extract under `out` (created; files replaced atomically as a directory).
pub fn write(
    def: &ExtractDef,
    month: &str,
    built: &Built,
    out: &Path,
) -> Result<Manifest, ExtractError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent)(&e))?;
    let staging = parent.join(format!(".tip-extract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging)(&e))?;
    let result = write_files(def, month, built, &staging);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| io_err(out)(&e))?;
    }
    std::fs::rename(&staging, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        io_err(out)(&e)
    })?;
    Ok(manifest)
}

fn write_files(
    def: &ExtractDef,
    month: &str,
    built: &Built,
    dir: &Path,
) -> Result<Manifest, ExtractError> {
    let rules = &def.disclosure;
    let stem = format!("{}-{}", def.name, month);
    let mut files = BTreeMap::new();
    let mut formats = def.formats.clone();
    formats.sort();
    formats.dedup();
    for f in formats {
        let (name, bytes) = match f {
            OutFormat::Csv => (
                format!("{stem}.csv"),
                render::csv::bytes(&built.tables, &built.estimates, rules)?,
            ),
            OutFormat::Xlsx => (
                format!("{stem}.xlsx"),
                render::xlsx::bytes(def, month, built)?,
            ),
            OutFormat::Parquet => (
                format!("{stem}.parquet"),
                render::parquet::bytes(&built.tables, &built.estimates, rules)?,
            ),
            OutFormat::Html => (
                format!("{stem}.html"),
                render::html::report(def, month, built).into_bytes(),
            ),
        };
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|e| io_err(&path)(&e))?;
        files.insert(
            name,
            ManifestFile {
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            },
        );
    }
    let manifest = Manifest {
        extract: def.name.clone(),
        title: def.title.clone(),
        month: month.to_string(),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tip_version: env!("CARGO_PKG_VERSION").to_string(),
        definition_sha256: def.sha256.clone(),
        lake_version: built.lake_version,
        table_versions: built.table_versions.clone(),
        key_epochs: built.key_epochs.clone(),
        rules: *rules,
        tables: built.tables.iter().map(manifest_table).collect(),
        estimates: built.estimates.iter().map(manifest_estimate).collect(),
        files,
    };
    let path = dir.join("manifest.json");
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(&path)(&e))?;
    std::fs::write(&path, bytes).map_err(|e| io_err(&path)(&e))?;
    Ok(manifest)
}

impl Manifest {
    /// The audit record of an extract produced: which, for which month, from which lake
    /// version, the SHA-256 of each file. `by` is who asked (`cli`, `schedule`).
    pub fn audit_fields(&self, by: &str, reproduced: bool) -> serde_json::Value {
        serde_json::json!({
            "by": by, "extract": self.extract, "month": self.month,
            "lake_version": self.lake_version, "reproduced": reproduced,
            "files": self.files.iter().map(|(k, v)| (k.clone(), v.sha256.clone())).collect::<BTreeMap<_, _>>(),
        })
    }
}

fn manifest_table(t: &super::TableOut) -> ManifestTable {
    let rows = t.long_rows();
    ManifestTable {
        name: t.name.clone(),
        rows: rows.len(),
        suppressed_small: rows.iter().filter(|r| r.1 == Published::Small).count(),
        withheld: rows.iter().filter(|r| r.1 == Published::Withheld).count(),
        audit: t
            .bounds
            .iter()
            .map(|(c, l, u)| AuditEntry {
                categories: c.clone(),
                lower: *l,
                upper: *u,
            })
            .collect(),
    }
}

fn manifest_estimate(e: &super::EstimateOut) -> ManifestEstimate {
    ManifestEstimate {
        name: e.name.clone(),
        rule: e.rule.clone(),
        bootstrap: e.bootstrap,
        seed: e.seed,
        rows: e.rows.len(),
        estimated: e.rows.iter().filter(|r| r.estimate.is_some()).count(),
    }
}
