//! The partner pipelines: each lists its source folder, picks the files its feeds name, and
//! ingests the new ones.

use std::path::PathBuf;

use super::{Channel, FileReport, IngestError, Ingestor, Mode, Period, Submission};
use crate::config::{self, PipelineConfig, Registry, TipConfig};
use crate::mapping::Mapping;
use crate::schema::Catalog;
use crate::source;

#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub partner: String,
    pub files: Vec<FileReport>,
}

/// Runs the named pipelines (all when `names` is empty).
pub(super) async fn run(
    ing: &Ingestor,
    names: &[String],
) -> Result<Vec<PipelineReport>, IngestError> {
    let pipelines = config::load_pipelines(&ing.config.resolve(&ing.config.paths.partners))?;
    for n in names {
        if !pipelines.iter().any(|p| &p.name == n) {
            return Err(IngestError::Usage(format!(
                "no pipeline named {n:?} (known: {})",
                pipelines
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for p in pipelines
        .iter()
        .filter(|p| names.is_empty() || names.contains(&p.name))
    {
        out.push(run_one(ing, p).await?);
    }
    Ok(out)
}

/// Checks a pipeline file against the registry and schemas and builds its feeds' mappings,
/// each with the file name pattern it reads and what its files are (increments by default, or
/// complete snapshots of a declared period).
pub fn pipeline_mappings(
    config: &TipConfig,
    catalog: &Catalog,
    registry: &Registry,
    p: &PipelineConfig,
) -> Result<Vec<(Mapping, String, Mode)>, IngestError> {
    let file = p.file.display().to_string();
    if registry.get(&p.partner).is_none() {
        return Err(config::ConfigError::Invalid {
            file,
            message: format!(
                "partner {:?} is not in the organisation registry",
                p.partner
            ),
        }
        .into());
    }
    let mut out = Vec::new();
    for feed in &p.feeds {
        let record =
            catalog
                .record(&feed.record_type)
                .ok_or_else(|| config::ConfigError::Invalid {
                    file: file.clone(),
                    message: format!("feed type {:?} is not a record type", feed.record_type),
                })?;
        let preset = match &feed.preset {
            Some(name) => Some(config::load_preset(
                &config.resolve(&config.paths.presets),
                name,
            )?),
            None => None,
        };
        let mode = match &feed.snapshot {
            None => Mode::Upsert,
            Some(s) => {
                Mode::Snapshot(Period::parse(s).map_err(|m| config::ConfigError::Invalid {
                    file: file.clone(),
                    message: format!("feed {}: snapshot: {m}", feed.files),
                })?)
            }
        };
        out.push((
            Mapping::for_feed(&file, record, feed, &p.format, preset.as_ref())?,
            feed.files.clone(),
            mode,
        ));
    }
    Ok(out)
}

/// The files of a pipeline's source folder, sorted by name: regular files only — no symbolic
/// links (which could point out of the folder), no devices or pipes, no names with control
/// characters.
fn source_files(ing: &Ingestor, p: &PipelineConfig) -> Result<Vec<PathBuf>, IngestError> {
    let dir = ing.config.resolve(&p.source.path);
    let regular = |e: &std::fs::DirEntry| {
        // DirEntry::file_type does not follow symbolic links.
        let plain_name = !e
            .file_name()
            .to_string_lossy()
            .chars()
            .any(char::is_control);
        e.file_type().is_ok_and(|t| t.is_file()) && plain_name
    };
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(regular)
            .map(|e| e.path())
            .collect(),
        Err(e) => {
            return Err(IngestError::File {
                file: p.source.path.display().to_string(),
                message: format!("cannot list the source directory: {}", e.kind()),
            });
        }
    };
    entries.sort();
    Ok(entries)
}

async fn run_one(ing: &Ingestor, p: &PipelineConfig) -> Result<PipelineReport, IngestError> {
    let mappings = pipeline_mappings(&ing.config, &ing.catalog, &ing.registry, p)?;
    let entries = source_files(ing, p)?;
    let mut files = Vec::new();
    for (mapping, pattern, mode) in &mappings {
        for path in &entries {
            if !config::wildcard_match(pattern, &source::display_name(path)) {
                continue;
            }
            let sub = Submission {
                partner: &p.partner,
                mapping,
                channel: Channel::Pipeline(&p.name),
                mode: mode.clone(),
            };
            files.push(ing.ingest_file_and_compact(&sub, path).await?);
        }
    }
    Ok(PipelineReport {
        name: p.name.clone(),
        partner: p.partner.clone(),
        files,
    })
}
