//! The partner pipelines: each lists its source folder, picks the files its feeds name, and
//! ingests the new ones.

use std::sync::Arc;

use super::pull::DropZone;
use super::{
    Channel, FileReport, FileStatus, IngestError, Ingestor, Mode, Period, Progress, Submission,
};
use crate::config::{self, PipelineConfig, Registry, TipConfig};
use crate::mapping::Mapping;
use crate::schema::Catalog;

#[derive(Debug, Clone)]
pub struct PipelineReport {
    pub name: String,
    pub partner: String,
    pub files: Vec<FileReport>,
}

/// Runs the named pipelines (all when `names` is empty), counting rows into `progress`.
pub(super) async fn run(
    ing: &Ingestor,
    names: &[String],
    progress: Option<Arc<Progress>>,
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
        out.push(run_one(ing, p, progress.as_ref()).await?);
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

async fn run_one(
    ing: &Ingestor,
    p: &PipelineConfig,
    progress: Option<&Arc<Progress>>,
) -> Result<PipelineReport, IngestError> {
    let mappings = pipeline_mappings(&ing.config, &ing.catalog, &ing.registry, p)?;
    let at = ing.config.location(&p.source.path)?;
    let mut zone = DropZone::open(&ing.lake, p, &at).await?;
    let mut files = Vec::new();
    // Per file: None (no feed reads it), or whether every submission it made succeeded.
    let mut done: Vec<Option<bool>> = vec![None; zone.entries.len()];
    for (mapping, pattern, mode) in &mappings {
        for (i, ok_so_far) in done.iter_mut().enumerate() {
            if !config::wildcard_match(pattern, &zone.entries[i].name) {
                continue;
            }
            let path = zone.local(i).await?;
            let sub = Submission {
                partner: &p.partner,
                mapping,
                channel: Channel::Pipeline(&p.name),
                mode: mode.clone(),
                progress: progress.cloned(),
            };
            let report = ing.ingest_file_and_compact(&sub, &path).await?;
            let ok = matches!(report.status, FileStatus::Committed | FileStatus::Unchanged);
            *ok_so_far = Some(ok_so_far.unwrap_or(true) && ok);
            files.push(report);
        }
    }
    let done: Vec<bool> = done.into_iter().map(|d| d == Some(true)).collect();
    zone.finish(&done, p.source.after).await?;
    Ok(PipelineReport {
        name: p.name.clone(),
        partner: p.partner.clone(),
        files,
    })
}
