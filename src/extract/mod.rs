//! Monthly statistical extracts: the files that leave the pseudonymised zone.
//!
//! An extract definition (`pipelines/extracts/*.toml`) names its tables, each an SQL query that
//! returns its dimensions and the unit counted. tip counts distinct units per cell and per
//! total, protects every count with [`crate::disclosure`] and writes CSV, XLSX, Parquet and a
//! self-contained HTML report, plus `manifest.json` (lake versions, rules, row counts, the
//! audit's bounds and the SHA-256 of every file). Every file but the manifest is a pure
//! function of the lake version and the definition, so `--reproduce` rebuilds it byte for byte.

mod build;
mod definition;
pub mod estimates;
mod manifest;
mod render;

use std::path::Path;

pub use build::{Built, KeyEpochRef, TableOut, build};
pub use definition::{Charts, EstimateDef, ExtractDef, OutFormat, TableDef, load_extracts};
pub use estimates::{EstimateOut, EstimateRow};
pub use manifest::{AuditEntry, Manifest, ManifestFile, ManifestTable, write};
pub use render::{grid, neutralise, rules_text};

use crate::config::{ConfigError, EstimateConfig, Registry};
use crate::lake::{self, Lake};
use crate::query::QueryError;
use crate::schema::Catalog;

/// Label of a dimension value that the data leaves empty.
pub const UNKNOWN: &str = "unknown";
/// Label of a margin.
pub const TOTAL: &str = "Total";

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("extract {extract}, table {table}: {source}")]
    Query {
        extract: String,
        table: String,
        source: QueryError,
    },
    #[error(transparent)]
    Session(#[from] QueryError),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error("extract {extract}: {message}; nothing was written")]
    Disclosure { extract: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("reproduction of {0} differs: {1}")]
    NotReproduced(String, String),
}

fn io_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> ExtractError + '_ {
    move |e| ExtractError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// What an extract reads: the lake, its schemas, the registry and the estimates' groupings.
pub struct Sources<'a> {
    pub lake: &'a Lake,
    pub catalog: &'a Catalog,
    pub registry: &'a Registry,
    pub groupings: &'a EstimateConfig,
}

/// `tip extract`: builds and writes one extract; with `reproduce`, from the lake version and
/// definition a manifest records, and checks that every file is byte-identical.
pub async fn run(
    src: &Sources<'_>,
    def: &ExtractDef,
    month: &str,
    out: &Path,
    reproduce: Option<&Manifest>,
) -> Result<Manifest, ExtractError> {
    let version = match reproduce {
        Some(m) => {
            if m.extract != def.name || m.month != month {
                return Err(ExtractError::Usage(format!(
                    "the manifest is for {} {}, not {} {month}",
                    m.extract, m.month, def.name
                )));
            }
            if m.definition_sha256 != def.sha256 {
                return Err(ExtractError::NotReproduced(
                    def.name.clone(),
                    format!(
                        "the definition {} has changed since the manifest",
                        def.file.display()
                    ),
                ));
            }
            Some(m.lake_version)
        }
        None => None,
    };
    let built = build(src, def, month, version).await?;
    if let Some(m) = reproduce
        && m.table_versions != built.table_versions
    {
        return Err(ExtractError::NotReproduced(
            def.name.clone(),
            "the lake no longer has the table versions the manifest records".into(),
        ));
    }
    let manifest = write(def, month, &built, out)?;
    if let Some(m) = reproduce {
        for (name, f) in &m.files {
            if manifest.files.get(name) != Some(f) {
                return Err(ExtractError::NotReproduced(
                    def.name.clone(),
                    format!("{name} differs"),
                ));
            }
        }
    }
    Ok(manifest)
}
