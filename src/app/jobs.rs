//! The scheduled jobs of a deployment: partner pipelines with a `schedule`, and every extract.
//! `schedule` decides when; this runs them.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::{Actor, App, AppError, Ingestion};
use crate::config::{self, PipelineConfig};
use crate::cron::Cron;
use crate::extract::ExtractDef;
use crate::ingest::Channel;
use crate::lake::system::RunEvent;
use crate::schedule::{self, Job, JobKind, Runner};

/// The jobs, and what runs them.
pub struct Scheduler<'a> {
    app: &'a App,
    /// Opened only when a pipeline is scheduled: a scheduler of extracts needs no key.
    ingestion: Option<Ingestion>,
    extracts: BTreeMap<String, ExtractDef>,
    pub jobs: Vec<Job>,
}

/// The jobs of pipelines with a schedule, then of every extract, then `tip maintain`.
pub fn jobs(
    pipelines: &[PipelineConfig],
    extracts: &[ExtractDef],
    maintain: Option<&str>,
) -> Result<Vec<Job>, AppError> {
    let bad =
        |file: &Path, e: String| AppError::Usage(format!("{}: schedule: {e}", file.display()));
    let mut out = Vec::new();
    for p in pipelines {
        if let Some(s) = &p.schedule {
            out.push(Job {
                name: format!("pipeline:{}", p.name),
                cron: Cron::parse(s).map_err(|e| bad(&p.file, e))?,
                kind: JobKind::Pipeline(p.name.clone()),
            });
        }
    }
    for e in extracts {
        out.push(Job {
            name: format!("extract:{}", e.name),
            cron: Cron::parse(&e.schedule).map_err(|m| bad(&e.file, m))?,
            kind: JobKind::Extract(e.name.clone()),
        });
    }
    if let Some(cron) = maintain {
        out.push(Job {
            name: "maintain".into(),
            cron: Cron::parse(cron)
                .map_err(|e| AppError::Usage(format!("maintain.schedule: {e}")))?,
            kind: JobKind::Maintain,
        });
    }
    Ok(out)
}

impl App {
    /// The scheduler of this deployment. Loads the key (checked against the lake) only when
    /// a pipeline is scheduled.
    pub async fn scheduler(&self, key_file: Option<&Path>) -> Result<Scheduler<'_>, AppError> {
        let defs = self.extract_definitions()?;
        let pipelines = config::load_pipelines(&self.path(&self.config.paths.partners))?;
        let jobs = jobs(&pipelines, &defs, self.config.maintain.schedule.as_deref())?;
        let ingestion = if jobs.iter().any(|j| matches!(j.kind, JobKind::Pipeline(_))) {
            Some(self.ingestion(key_file).await?)
        } else {
            None
        };
        Ok(Scheduler {
            app: self,
            ingestion,
            extracts: defs.into_iter().map(|d| (d.name.clone(), d)).collect(),
            jobs,
        })
    }
}

impl Scheduler<'_> {
    pub fn dev_key(&self) -> bool {
        self.ingestion.as_ref().is_some_and(|i| i.dev_key)
    }

    /// Runs every job due at `now`, recording each run in the lake.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<RunEvent>, AppError> {
        Ok(schedule::tick(&self.app.lake, &self.jobs, now, self).await?)
    }

    async fn run_pipeline(&self, name: &str) -> Result<String, String> {
        let ing = self
            .ingestion
            .as_ref()
            .ok_or_else(|| "no key loaded for pipelines".to_string())?;
        let reports = ing
            .ingestor
            .run_pipelines(std::slice::from_ref(&name.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        for p in &reports {
            for f in &p.files {
                self.app
                    .record_file(f, &p.partner, Channel::Pipeline(&p.name), Actor::Schedule);
            }
        }
        let files: usize = reports.iter().map(|r| r.files.len()).sum();
        Ok(format!("{files} file(s) processed"))
    }

    async fn run_extract(&self, name: &str, slot: DateTime<Utc>) -> Result<String, String> {
        let def = self
            .extracts
            .get(name)
            .ok_or_else(|| format!("no extract {name}"))?;
        let month = schedule::month_for_slot(slot);
        let dir = self
            .app
            .extract_dir(def, &month)
            .map_err(|e| e.to_string())?;
        let m = self
            .app
            .extract(def, &month, &dir, None, Actor::Schedule)
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("{month}: {} files in {}", m.files.len() + 1, dir))
    }
}

impl Runner for Scheduler<'_> {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        slot: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match &job.kind {
                JobKind::Pipeline(name) => self.run_pipeline(name).await,
                JobKind::Extract(name) => self.run_extract(name, slot).await,
                JobKind::Maintain => self
                    .app
                    .maintain(Actor::Schedule)
                    .await
                    .map(|m| format!("{} tables maintained", m.tables.len()))
                    .map_err(|e| e.to_string()),
            }
        })
    }
}
