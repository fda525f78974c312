//! `tip check`: every configuration file, partner mapping, preset and extract definition at
//! once, so a typo in a partner file is found before the nightly job. `tip serve` and
//! `tip schedule` run it at start.

use std::path::{Path, PathBuf};

use super::{App, AppError};
use crate::config::{self, ConfigError, Registry};
use crate::cron::Cron;
use crate::ingest::pipeline_mappings;
use crate::schema::Catalog;
use crate::source::SourceSpec;

/// What `tip check` found: the files it read, and every problem (empty when all is well).
#[derive(Debug, Default)]
pub struct CheckReport {
    pub files: Vec<PathBuf>,
    pub problems: Vec<String>,
}

impl CheckReport {
    fn note<T>(&mut self, r: Result<T, impl std::fmt::Display>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(e.to_string());
                None
            }
        }
    }
}

/// Every organisation's country, type and region must be known to the schemas.
pub(super) fn registry(
    catalog: &Catalog,
    registry: &Registry,
    file: &Path,
) -> Result<(), ConfigError> {
    for o in &registry.organisations {
        let bad = |m: String| ConfigError::Invalid {
            file: file.display().to_string(),
            message: format!("organisation {}: {m}", o.org_id),
        };
        if catalog.country(&o.country) != Some(o.country.as_str()) {
            return Err(bad(format!(
                "country {:?} is not an ISO 3166-1 alpha-2 code",
                o.country
            )));
        }
        if !catalog.lists["org_type"].codes.contains(&o.org_type) {
            return Err(bad(format!(
                "type {:?} is not in the org_type code list",
                o.org_type
            )));
        }
        if let Some(r) = &o.region
            && catalog.lists["region"].lookup(r) != Some(r.as_str())
        {
            return Err(bad(format!("region {r:?} is not a known region code")));
        }
    }
    Ok(())
}

/// The `*.toml` files of a directory, sorted.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

impl App {
    /// Checks everything; the configuration file, schemas and registry were checked when the
    /// application opened.
    pub async fn check(&self) -> Result<CheckReport, AppError> {
        let mut r = CheckReport::default();
        r.files.push(self.path(&self.config.paths.organisations));
        self.check_pipelines(&mut r);
        self.check_presets(&mut r);
        self.check_extracts(&mut r).await;
        self.check_estimate_lists(&mut r);
        if let Some(c) = &self.config.maintain.schedule {
            r.note(Cron::parse(c).map_err(|e| format!("maintain.schedule: {e}")));
        }
        for t in self.config.maintain.retention_years.keys() {
            if self.catalog.record(t).is_none() {
                r.problems
                    .push(format!("maintain.retention_years: no record type {t}"));
            }
        }
        let tokens = self.path(&self.config.serve.tokens);
        if tokens.exists() {
            r.note(self.tokens().load());
            r.files.push(tokens);
        }
        Ok(r)
    }

    /// `[estimate.lists]`: each grouping's members are organisation types or registered org
    /// ids, and no organisation is on two lists of one grouping.
    fn check_estimate_lists(&self, r: &mut CheckReport) {
        for (name, groups) in &self.config.estimate.lists {
            let at = format!("estimate.lists.{name}");
            if name == "partner" || name == "org_type" {
                r.problems
                    .push(format!("{at}: {name} is built in; choose another name"));
            }
            for (list, members) in groups {
                for m in members {
                    let known = self.catalog.lists["org_type"].codes.contains(m)
                        || self.registry.organisations.iter().any(|o| &o.org_id == m);
                    if !known {
                        r.problems.push(format!(
                            "{at}.{list}: {m:?} is neither an organisation type nor a registered org id"
                        ));
                    }
                }
            }
            for o in &self.registry.organisations {
                // An org id on a list overrides its type (as `list_of` reads it).
                let by_id = groups.values().filter(|ms| ms.contains(&o.org_id)).count();
                let by_type = groups
                    .values()
                    .filter(|ms| ms.contains(&o.org_type))
                    .count();
                if by_id > 1 || (by_id == 0 && by_type > 1) {
                    r.problems.push(format!(
                        "{at}: organisation {} is on more than one list",
                        o.org_id
                    ));
                }
            }
        }
    }

    fn check_pipelines(&self, r: &mut CheckReport) {
        let dir = self.path(&self.config.paths.partners);
        r.files.extend(toml_files(&dir));
        let Some(pipelines) = r.note(config::load_pipelines(&dir)) else {
            return;
        };
        for p in &pipelines {
            let file = p.file.display();
            if let Some(s) = &p.schedule {
                r.note(Cron::parse(s).map_err(|e| format!("{file}: schedule: {e}")));
            }
            match config::Location::parse(&p.source.path, &self.config.base_dir) {
                Ok(config::Location::Local(dir)) if !dir.is_dir() => r.problems.push(format!(
                    "{file}: source.path {} is not a directory",
                    p.source.path
                )),
                Ok(_) => {}
                Err(e) => r.problems.push(format!("{file}: source.path {e}")),
            }
            let Some(mappings) = r.note(pipeline_mappings(
                &self.config,
                &self.catalog,
                &self.registry,
                p,
            )) else {
                continue;
            };
            for (m, _, _) in mappings {
                r.note(
                    SourceSpec::from_options(
                        &file.to_string(),
                        m.format,
                        &m.options,
                        m.wanted(),
                        1,
                    )
                    .map_err(|e| format!("{file}: {e}")),
                );
            }
        }
    }

    fn check_presets(&self, r: &mut CheckReport) {
        let dir = self.path(&self.config.paths.presets);
        for f in toml_files(&dir) {
            let name = f
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            r.note(config::load_preset(&dir, &name));
            r.files.push(f);
        }
    }

    /// Extract definitions, and each table's SQL planned against the views (on the lake as it
    /// is, or on empty tables where none exists yet).
    async fn check_extracts(&self, r: &mut CheckReport) {
        let dir = self.path(&self.config.paths.extracts);
        r.files.extend(toml_files(&dir));
        let Some(defs) = r.note(self.extract_definitions()) else {
            return;
        };
        let Some(session) = r.note(self.session(None).await) else {
            return;
        };
        for d in &defs {
            for t in &d.tables {
                let sql = t
                    .sql
                    .replace("{month}", "2000-01")
                    .replace("{first_month}", "1999-02");
                r.note(
                    session
                        .plan(&sql)
                        .await
                        .map_err(|e| format!("{}: table {}: {e}", d.file.display(), t.name)),
                );
            }
            for e in &d.estimates {
                let known = e.lists == "partner"
                    || e.lists == "org_type"
                    || self.config.estimate.lists.contains_key(&e.lists);
                if !known {
                    r.problems.push(format!(
                        "{}: estimate {}: lists {:?} is not partner, org_type or a grouping under [estimate.lists]",
                        d.file.display(),
                        e.name,
                        e.lists
                    ));
                }
            }
        }
    }
}
