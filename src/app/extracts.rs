//! Running an extract and recording it: the CLI and the scheduler call the same code.

use std::path::{Path, PathBuf};

use crate::config::Location;
use crate::util::staging::Staging;

use super::{Actor, App, AppError};
use crate::extract::{self, ExtractDef, Manifest};
use crate::util::months;

/// `YYYY-MM`, or `last` for the month before the current one.
pub fn parse_month(s: &str) -> Result<String, AppError> {
    if s == "last" {
        return Ok(months::last_month());
    }
    months::shift_month(s, 0)
        .ok_or_else(|| AppError::Usage(format!("--month {s:?}: expected YYYY-MM or last")))
}

/// A manifest written by an earlier extract, for `--reproduce`.
pub fn read_manifest(path: &Path) -> Result<Manifest, AppError> {
    let bytes = std::fs::read(path)
        .map_err(|e| AppError::Usage(format!("{}: {}", path.display(), e.kind())))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| AppError::Usage(format!("{}: not an extract manifest", path.display())))
}

impl App {
    /// Every extract definition, checked.
    pub fn extract_definitions(&self) -> Result<Vec<ExtractDef>, AppError> {
        Ok(extract::load_extracts(
            &self.path(&self.config.paths.extracts),
        )?)
    }

    /// The definitions `name` selects (all when None); an unknown name is an error listing the
    /// defined ones.
    pub fn choose_extracts(&self, name: Option<&str>) -> Result<Vec<ExtractDef>, AppError> {
        let defs = self.extract_definitions()?;
        let chosen: Vec<ExtractDef> = defs
            .iter()
            .filter(|d| name.is_none_or(|n| d.name == n))
            .cloned()
            .collect();
        if chosen.is_empty() {
            let known: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
            return Err(AppError::Usage(format!(
                "no extract {} (defined: {})",
                name.unwrap_or(""),
                known.join(", ")
            )));
        }
        Ok(chosen)
    }

    /// Where an extract is written by default: `extract.out/NAME/MONTH` (a directory or an
    /// object storage prefix).
    pub fn extract_dir(&self, def: &ExtractDef, month: &str) -> Result<Location, AppError> {
        Ok(self
            .config
            .location(&self.config.extract.out)?
            .join(&def.name)
            .join(month))
    }

    /// Builds and writes one extract (with `reproduce`, from the lake version a manifest
    /// records, failing unless every file is byte-identical), and records it in the audit log.
    pub async fn extract(
        &self,
        def: &ExtractDef,
        month: &str,
        out: &Location,
        reproduce: Option<&Manifest>,
        actor: Actor<'_>,
    ) -> Result<Manifest, AppError> {
        let src = extract::Sources {
            lake: &self.lake,
            catalog: &self.catalog,
            registry: &self.registry,
            groupings: &self.config.estimate,
        };
        let m = match out {
            Location::Local(dir) => extract::run(&src, def, month, dir, reproduce).await?,
            Location::Url(url) => {
                // Built in a private local directory, then uploaded file by file; the
                // manifest goes last, so a manifest in storage means a complete extract.
                let staging = Staging::new().map_err(|e| {
                    AppError::Usage(format!("local staging directory: {}", e.kind()))
                })?;
                let m = extract::run(&src, def, month, staging.path(), reproduce).await?;
                let store = self.lake.store(url)?;
                let mut files = files_in(staging.path());
                files.sort_by_key(|f| f.file_name().is_some_and(|n| n == "manifest.json"));
                for f in files {
                    let name = f.strip_prefix(staging.path()).unwrap_or(&f);
                    store.upload(&f, &name.to_string_lossy()).await?;
                }
                m
            }
        };
        self.record("extract", m.audit_fields(actor.by(), reproduce.is_some()))?;
        Ok(m)
    }
}

/// Every file under `dir`, recursively.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out
}
