//! The ingestion job: drives a partner file through source → mapping → validate → pseudonym →
//! lake. Only an [`Ingestor`] holds the pseudonymisation key; the application core makes one
//! once it has checked the key against the lake's key epoch.
//!
//! - [`file`]: one file, read once on every core ([`passes`], [`parallel`]), then one commit;
//! - [`pipelines`]: the partner pipelines, pulling new files from their folders;
//! - [`load`]: the canonical layout (`tip load`, uploads) and its formats;
//! - [`partner_side`]: `tip pseudonymise`, pseudonymisation on the partner's premises.

mod file;
mod keys;
mod load;
mod parallel;
mod partner_side;
mod passes;
mod pipelines;
pub mod pull;
mod reconcile;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use sha2::Digest;

pub use load::{LoadFormat, is_pseudonymised_csv};
pub use pipelines::{PipelineReport, pipeline_mappings};

use crate::config::{self, Registry, TipConfig};
use crate::lake::{Lake, LakeError};
use crate::mapping::{Mapping, MappingError};
use crate::pseudonym::{Key, KeyError};
use crate::schema::{Catalog, RecordSchema};
use crate::source::{RowIssue, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// The ingestion side: configuration, schemas, registry, the lake, and the key.
pub struct Ingestor {
    pub config: Arc<TipConfig>,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub lake: Lake,
    key: Key,
}

impl Ingestor {
    /// An ingestor for a lake whose key epoch the caller has checked against `key`.
    pub fn new(
        config: Arc<TipConfig>,
        catalog: Arc<Catalog>,
        registry: Arc<Registry>,
        lake: Lake,
        key: Key,
    ) -> Ingestor {
        // What a killed ingestion left in its private staging (pseudonymised rows) goes.
        crate::util::staging::sweep_stale(std::time::Duration::from_secs(24 * 3600));
        Ingestor {
            config,
            catalog,
            registry,
            lake,
            key,
        }
    }

    /// Writes the ledger rows a crash left unwritten (see [`reconcile`]); returns how many.
    pub async fn reconcile(&self) -> Result<usize, IngestError> {
        reconcile::reconcile(self).await
    }

    pub fn key_version(&self) -> String {
        self.key.version()
    }

    pub(crate) fn key(&self) -> &Key {
        &self.key
    }

    pub fn record(&self, record_type: &str) -> Result<&RecordSchema, IngestError> {
        record_schema(&self.catalog, record_type)
    }

    /// Ingests one file for one partner. Row-level problems are reported in the result; a
    /// file that is wrong as a whole returns `Rejected` and commits nothing.
    pub async fn ingest_file(
        &self,
        sub: &Submission<'_>,
        path: &Path,
    ) -> Result<FileReport, IngestError> {
        file::ingest(self, sub, path).await
    }

    /// The tables a submission's commits brought to a multiple of `lake.compact_every`
    /// versions: the ones [`compact`](Self::compact) should compact now.
    pub fn compaction_due(&self, report: &FileReport) -> Vec<String> {
        let every = i64::from(self.config.lake.compact_every);
        if every == 0 {
            return Vec::new();
        }
        report
            .commits
            .iter()
            .filter(|(_, v)| *v > 0 && v % every == 0)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Compacts `tables` (see [`Lake::compact`](crate::lake::Lake::compact)). A writer calls it
    /// when no other ingestion of its own is under way, so the compaction cannot make one of
    /// them lose its commit. A failure is returned per table and loses nothing: the table keeps
    /// its small files until the next compaction or `tip maintain`.
    pub async fn compact(&self, tables: &[String]) -> Vec<(String, Result<usize, String>)> {
        let mut out = Vec::new();
        for t in tables {
            let r = self.lake.compact(t).await.map_err(|e| e.to_string());
            out.push((t.clone(), r));
        }
        out
    }

    /// Ingests one file, then compacts what its commits made due. For writers that ingest one
    /// file at a time (`tip load`, the partner pipelines).
    pub async fn ingest_file_and_compact(
        &self,
        sub: &Submission<'_>,
        path: &Path,
    ) -> Result<FileReport, IngestError> {
        let report = self.ingest_file(sub, path).await?;
        for (table, r) in self.compact(&self.compaction_due(&report)).await {
            if let Err(e) = r {
                eprintln!(
                    "tip: compaction of {table} failed ({e}); nothing is lost, `tip maintain` compacts it later"
                );
            }
        }
        Ok(report)
    }

    /// Runs the named pipelines (all when `names` is empty).
    pub async fn run_pipelines(
        &self,
        names: &[String],
    ) -> Result<Vec<PipelineReport>, IngestError> {
        pipelines::run(self, names, None).await
    }

    /// [`Ingestor::run_pipelines`], counting every file's rows into `progress` (when given) as
    /// they are read (`tip ingest`'s progress bar).
    pub async fn run_pipelines_counted(
        &self,
        names: &[String],
        progress: Option<Arc<Progress>>,
    ) -> Result<Vec<PipelineReport>, IngestError> {
        pipelines::run(self, names, progress).await
    }

    /// `tip pseudonymise`: a partner file in, a CSV of pseudonyms and stored fields out.
    pub fn pseudonymise_file(
        &self,
        partner: &str,
        mapping: &Mapping,
        input: &Path,
        output: &Path,
    ) -> Result<FileReport, IngestError> {
        partner_side::pseudonymise_file(self, partner, mapping, input, output)
    }

    /// The mapping of a file in the canonical layout (or an HTCDS template, or a file
    /// pseudonymised at the partner): what `tip load` and the upload API use.
    pub fn mapping_for_load(
        &self,
        record: &RecordSchema,
        format: LoadFormat,
        path: &Path,
    ) -> Result<Mapping, IngestError> {
        load::mapping_for_load(&self.config, record, format, path)
    }
}

/// The record type's schema, or a usage error listing the known ones.
pub fn record_schema<'a>(
    catalog: &'a Catalog,
    record_type: &str,
) -> Result<&'a RecordSchema, IngestError> {
    catalog.record(record_type).ok_or_else(|| {
        IngestError::Usage(format!(
            "unknown record type {record_type:?} (known: {})",
            catalog
                .records
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// Committed as a new submission (possibly replacing an earlier one).
    Committed,
    /// Already in the ledger: nothing changed.
    Unchanged,
    /// Rejected as a whole: nothing committed.
    Rejected(String),
}

/// What a submission does to the partner's records of its type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// Records with new keys are added, records with keys already held are replaced, nothing
    /// else is touched.
    #[default]
    Upsert,
    /// The file is everything the partner holds for the period: as an upsert, and the
    /// partner's records of the period that the file does not have are removed.
    Snapshot(Period),
    /// The file lists keys: those records are removed.
    Withdraw,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Upsert => "upsert",
            Mode::Snapshot(_) => "snapshot",
            Mode::Withdraw => "withdraw",
        }
    }

    /// The declared period of a snapshot.
    pub fn period(&self) -> Option<&Period> {
        match self {
            Mode::Snapshot(p) => Some(p),
            _ => None,
        }
    }
}

/// The period a snapshot declares: everything, or a range of months (`YYYY-MM`, inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    All,
    Months { from: String, to: String },
}

impl Period {
    /// `all`, `YYYY-MM` or `YYYY-MM..YYYY-MM`.
    pub fn parse(s: &str) -> Result<Period, String> {
        let bad = || format!("period {s:?}: expected all, YYYY-MM or YYYY-MM..YYYY-MM");
        let month = |m: &str| crate::util::months::shift_month(m.trim(), 0).ok_or_else(bad);
        if s.trim() == "all" {
            return Ok(Period::All);
        }
        let (from, to) = match s.split_once("..") {
            Some((a, b)) => (month(a)?, month(b)?),
            None => (month(s)?, month(s)?),
        };
        if from > to {
            return Err(bad());
        }
        Ok(Period::Months { from, to })
    }

    /// The first and last month (None for everything).
    pub fn bounds(&self) -> Option<(&str, &str)> {
        match self {
            Period::All => None,
            Period::Months { from, to } => Some((from, to)),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::All => f.write_str("all"),
            Period::Months { from, to } if from == to => f.write_str(from),
            Period::Months { from, to } => write!(f, "{from}..{to}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileReport {
    pub file: String,
    pub record_type: String,
    pub status: FileStatus,
    pub submission_id: Option<String>,
    /// The earlier submission of the same content, when the file was unchanged.
    pub earlier: Option<String>,
    pub mode: Mode,
    pub rows_read: u64,
    pub rows_accepted: u64,
    /// Records added (new keys).
    pub rows_inserted: u64,
    /// Records replaced by a new version (keys already held).
    pub rows_updated: u64,
    /// Records removed: withdrawn, or absent from a snapshot.
    pub rows_removed: u64,
    /// A snapshot's records left as they were because the snapshot's row for them was set
    /// aside (its key could be read, another field could not).
    pub rows_kept: u64,
    pub issues: Vec<RowIssue>,
    pub period: Option<(String, String)>,
    pub imputed: BTreeSet<String>,
    pub table_version: Option<i64>,
    /// Each table this submission committed to, with the version its commit made.
    pub commits: Vec<(String, i64)>,
}

impl FileReport {
    fn new(file: &str, record_type: &str, mode: &Mode) -> FileReport {
        FileReport {
            file: file.to_string(),
            record_type: record_type.to_string(),
            status: FileStatus::Committed,
            submission_id: None,
            earlier: None,
            mode: mode.clone(),
            rows_read: 0,
            rows_accepted: 0,
            rows_inserted: 0,
            rows_updated: 0,
            rows_removed: 0,
            rows_kept: 0,
            issues: vec![],
            period: None,
            imputed: BTreeSet::new(),
            table_version: None,
            commits: Vec::new(),
        }
    }

    pub fn rows_quarantined(&self) -> u64 {
        self.issues
            .iter()
            .map(|i| i.row)
            .collect::<BTreeSet<_>>()
            .len() as u64
    }
}

/// How a submission reached tip (recorded in the ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel<'a> {
    /// `tip load`.
    Load,
    /// The upload API or page.
    Upload,
    /// A partner pipeline, by name.
    Pipeline(&'a str),
}

impl std::fmt::Display for Channel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Load => f.write_str("load"),
            Channel::Upload => f.write_str("upload"),
            Channel::Pipeline(name) => write!(f, "pipeline:{name}"),
        }
    }
}

/// One file from one partner, read with one mapping.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    pub partner: &'a str,
    pub mapping: &'a Mapping,
    pub channel: Channel<'a>,
    pub mode: Mode,
    /// Counted as the file is read, for a progress bar (`tip load` on a terminal).
    pub progress: Option<Arc<Progress>>,
}

pub use crate::util::Progress;

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Today (UTC) as `YYYY-MM-DD`: what fills an imputed submission date.
fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}
