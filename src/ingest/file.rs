//! One file, in two passes. The first reads, maps and validates everything without touching
//! the lake: a file that is wrong as a whole is rejected here, and the period the submission
//! covers is learned. The second streams the pseudonymised rows into one Delta commit that
//! replaces the partner's earlier rows for that period. A file already in the ledger (same
//! partner, record type and SHA-256) is skipped. The quarantine rows and then the ledger row
//! follow the data commit: the ledger row marks the submission complete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, Date32Array, StringArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::{FileReport, FileStatus, IngestError, Ingestor, Submission, sha256_file, today};
use crate::config::Registry;
use crate::lake::system::{QuarantineRow, SubmissionRow};
use crate::lake::{self, system};
use crate::mapping::Mapping;
use crate::pseudonym::{Provenance, Stage};
use crate::schema::{Catalog, RecordSchema};
use crate::source::{self, Reason, RowIssue, SourceError, SourceSpec};
use crate::util::months::month_of_days;
use crate::validate::Validator;

/// Everything the reading passes need, owned so they can run on a blocking thread.
pub(super) struct FileJob {
    pub path: PathBuf,
    pub file: String,
    pub record: RecordSchema,
    pub mapping: Mapping,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub partner: String,
    pub submission_date: String,
    pub batch_rows: usize,
    pub key_version: String,
}

/// What the first pass learned.
struct PassOne {
    rows_read: u64,
    accepted: u64,
    issues: Vec<RowIssue>,
    period: Option<(String, String)>,
    imputed: BTreeSet<String>,
}

/// The ingestion of one submission that passed its first pass.
struct Commit<'a> {
    ing: &'a Ingestor,
    sub: &'a Submission<'a>,
    job: Arc<FileJob>,
    sha: String,
    submission_id: String,
    reporting_country: String,
    now: DateTime<Utc>,
}

pub(super) async fn ingest(
    ing: &Ingestor,
    sub: &Submission<'_>,
    path: &Path,
) -> Result<FileReport, IngestError> {
    let job = Arc::new(FileJob::new(ing, sub, path)?);
    let mut report = FileReport::new(&job.file, &job.record.record_type);
    let sha = sha256_file(path).map_err(|e| SourceError::Read {
        file: job.file.clone(),
        detail: e.kind().to_string(),
    })?;
    if ing
        .lake
        .find_submission(sub.partner, &job.record.record_type, &sha)
        .await?
        .is_some()
    {
        report.status = FileStatus::Unchanged;
        return Ok(report);
    }
    let one = match run_blocking(&job.file, {
        let job = job.clone();
        move || job.pass_one()
    })
    .await?
    {
        Ok(o) => o,
        Err(IngestError::Source(e)) => {
            report.status = FileStatus::Rejected(e.to_string());
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    report.rows_read = one.rows_read;
    report.rows_accepted = one.accepted;
    report.issues = one.issues;
    report.period = one.period;
    report.imputed = one.imputed;
    let commit = Commit {
        reporting_country: reporting_country(ing, sub.partner)?,
        ing,
        sub,
        job,
        sha,
        submission_id: uuid::Uuid::new_v4().to_string(),
        now: Utc::now(),
    };
    report.submission_id = Some(commit.submission_id.clone());
    if let Some((from, to)) = report.period.clone() {
        report.table_version = Some(commit.data(&from, &to, one.accepted).await?);
    }
    commit.quarantine(&report.issues).await?;
    commit.ledger(&report).await?;
    Ok(report)
}

fn reporting_country(ing: &Ingestor, partner: &str) -> Result<String, IngestError> {
    ing.registry
        .get(partner)
        .map(|o| o.country.clone())
        .ok_or_else(|| {
            IngestError::Usage(format!(
                "partner {partner:?} is not in the organisation registry"
            ))
        })
}

/// Runs a reading pass on a blocking thread. A task failure carries no input: its message is
/// not passed on.
async fn run_blocking<T: Send + 'static>(
    file: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        IngestError::Usage(format!(
            "{file}: internal error while reading; nothing was committed"
        ))
    })
}

impl Commit<'_> {
    fn provenance(&self) -> Provenance {
        Provenance {
            partner: self.sub.partner.to_string(),
            reporting_country: self.reporting_country.clone(),
            submission_id: self.submission_id.clone(),
            source_sha256: self.sha.clone(),
            ingested_at_micros: self.now.timestamp_micros(),
        }
    }

    /// The second pass: streams pseudonymised rows into one commit replacing the partner's
    /// rows of the same period. Returns the table version.
    async fn data(&self, from: &str, to: &str, accepted: u64) -> Result<i64, IngestError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(4);
        let stage = Stage::new(&self.job.record, &self.ing.catalog, self.ing.key());
        let producer = {
            let (job, prov, sha) = (self.job.clone(), self.provenance(), self.sha.clone());
            tokio::task::spawn_blocking(move || {
                if let Err(e) = job.pass_two(&stage, &prov, &tx, (accepted, sha)) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
        };
        let record = &self.job.record;
        let metadata = vec![
            (
                "tip.submission_id".to_string(),
                serde_json::json!(self.submission_id),
            ),
            (
                "tip.partner".to_string(),
                serde_json::json!(self.sub.partner),
            ),
            (
                "tip.record_type".to_string(),
                serde_json::json!(record.record_type),
            ),
            ("tip.source_sha256".to_string(), serde_json::json!(self.sha)),
        ];
        let scope = lake::submission_scope(self.sub.partner, &self.reporting_country, from, to);
        let res = self
            .ing
            .lake
            .replace_from_channel(&record.table, record.stored_schema(), rx, scope, metadata)
            .await;
        let _ = producer.await;
        Ok(res?)
    }

    async fn quarantine(&self, issues: &[RowIssue]) -> Result<(), IngestError> {
        if issues.is_empty() {
            return Ok(());
        }
        let rows: Vec<QuarantineRow> = issues
            .iter()
            .map(|i| QuarantineRow {
                submission_id: self.submission_id.clone(),
                partner: self.sub.partner.to_string(),
                record_type: self.job.record.record_type.clone(),
                source_sha256: self.sha.clone(),
                source_row: i.row as i64,
                field: i.field.clone(),
                reason: i.reason,
                ingested_at: self.now,
            })
            .collect();
        self.ing.lake.record_quarantine(&rows).await?;
        Ok(())
    }

    /// The ledger row, last: it marks the submission complete.
    async fn ledger(&self, report: &FileReport) -> Result<(), IngestError> {
        let mut names: Vec<String> = lake::Lake::specs(&self.ing.catalog)
            .into_iter()
            .map(|s| s.name)
            .filter(|n| n != system::RUNS)
            .collect();
        names.sort();
        let versions = self.ing.lake.versions(&names).await?;
        let lake_versions = serde_json::to_string(
            &versions
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .map_err(|e| IngestError::Usage(e.to_string()))?;
        let (period_from, period_to) = match &report.period {
            Some((a, b)) => (Some(a.clone()), Some(b.clone())),
            None => (None, None),
        };
        let row = SubmissionRow {
            submission_id: self.submission_id.clone(),
            partner: self.sub.partner.to_string(),
            record_type: self.job.record.record_type.clone(),
            source_sha256: self.sha.clone(),
            format: self.sub.mapping.format.as_str().to_string(),
            channel: self.sub.channel.to_string(),
            period_from,
            period_to,
            rows_read: report.rows_read as i64,
            rows_accepted: report.rows_accepted as i64,
            rows_quarantined: report.rows_quarantined() as i64,
            table_version: report.table_version,
            lake_versions,
            key_version: self.ing.key_version(),
            schema_version: self.job.record.version,
            ingested_at: self.now,
        };
        self.ing.lake.record_submission(&row).await?;
        Ok(())
    }
}

impl FileJob {
    pub fn new(ing: &Ingestor, sub: &Submission<'_>, path: &Path) -> Result<FileJob, IngestError> {
        Ok(FileJob {
            path: path.to_path_buf(),
            file: source::display_name(path),
            record: ing.record(&sub.mapping.record_type)?.clone(),
            mapping: sub.mapping.clone(),
            catalog: ing.catalog.clone(),
            registry: ing.registry.clone(),
            partner: sub.partner.to_string(),
            submission_date: today(),
            batch_rows: ing.config.ingest.batch_rows,
            key_version: ing.key_version(),
        })
    }

    pub fn spec(&self) -> Result<SourceSpec, SourceError> {
        let mut spec = SourceSpec::from_options(
            &self.file,
            self.mapping.format,
            &self.mapping.options,
            self.mapping.wanted(),
            self.batch_rows,
        )?;
        spec.required = self.mapping.required_groups(&self.record);
        Ok(spec)
    }

    pub fn validator(&self) -> Validator<'_> {
        let m = &self.mapping;
        let mut v = Validator::new(
            &self.record,
            &self.catalog,
            &self.registry,
            &self.partner,
            m.options.date_formats.clone().unwrap_or_default(),
            m.options.decimal_separator.as_deref() == Some(","),
            m.format.is_spreadsheet(),
        );
        if m.pseudonymised {
            v.expect_key_version = Some(self.key_version.clone());
        }
        v
    }

    /// The mapping and validation stages for one raw batch: typed rows and row-level problems.
    pub fn map_and_validate(
        &self,
        v: &Validator<'_>,
        raw: &RecordBatch,
    ) -> Result<(RecordBatch, Vec<RowIssue>), SourceError> {
        let canonical = self
            .mapping
            .apply(raw, &self.submission_date)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))?;
        v.apply(&canonical)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))
    }

    /// Reads, maps and validates the whole file; touches no lake.
    fn pass_one(&self) -> Result<PassOne, IngestError> {
        let spec = self.spec()?;
        let v = self.validator();
        let period_idx = self
            .record
            .period_field
            .as_ref()
            .and_then(|p| self.record.validated_schema().index_of(p).ok());
        let mut out = PassOne {
            rows_read: 0,
            accepted: 0,
            issues: vec![],
            period: None,
            imputed: BTreeSet::new(),
        };
        let mut days = DayRange::default();
        let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
            out.issues.extend(raw.issues);
            let (typed, issues) = self.map_and_validate(&v, &raw.batch)?;
            out.issues.extend(issues);
            out.accepted += typed.num_rows() as u64;
            if let Some(i) = period_idx {
                days.extend(typed.column(i));
            }
            collect_imputed(&typed, &mut out.imputed);
            Ok(())
        };
        out.rows_read = source::read(&self.path, &spec, &mut sink)?;
        self.refuse_other_keys(&out.issues)?;
        out.issues
            .sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
        out.period = days.months();
        Ok(out)
    }

    /// Pseudonyms made with another key would never link: the file is refused as a whole.
    fn refuse_other_keys(&self, issues: &[RowIssue]) -> Result<(), IngestError> {
        match issues.iter().find(|i| i.reason == Reason::WrongKeyVersion) {
            Some(i) => Err(SourceError::Structure {
                file: self.file.clone(),
                detail: format!(
                    "row {}: {} was made with a different key than this lake's (key version {}); pseudonymise with the network key",
                    i.row, i.field, self.key_version
                ),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Reads the file again, pseudonymises the accepted rows and sends them to the writer.
    /// Fails if the file changed since the first pass.
    fn pass_two(
        &self,
        stage: &Stage,
        prov: &Provenance,
        tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, String>>,
        expected: (u64, String),
    ) -> Result<(), String> {
        let file = &self.file;
        let spec = self.spec().map_err(|e| e.to_string())?;
        let v = self.validator();
        let mut accepted = 0u64;
        let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
            let (typed, _) = self.map_and_validate(&v, &raw.batch)?;
            if typed.num_rows() == 0 {
                return Ok(());
            }
            accepted += typed.num_rows() as u64;
            let stored = stage
                .apply(&typed, prov)
                .map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
            tx.blocking_send(Ok(stored))
                .map_err(|_| SourceError::Sink(format!("{file}: the lake writer stopped")))
        };
        source::read(&self.path, &spec, &mut sink).map_err(|e| e.to_string())?;
        let sha =
            sha256_file(&self.path).map_err(|e| format!("{file}: cannot read: {}", e.kind()))?;
        if accepted != expected.0 || sha != expected.1 {
            return Err(format!(
                "{file}: the file changed while it was being ingested; nothing was committed"
            ));
        }
        Ok(())
    }
}

/// The fields a mapping filled in (`imputed_fields`, comma-separated per row).
fn collect_imputed(typed: &RecordBatch, into: &mut BTreeSet<String>) {
    if let Some(imp) = typed
        .column_by_name("imputed_fields")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    {
        for s in imp.iter().flatten() {
            into.extend(s.split(',').map(str::to_string));
        }
    }
}

/// The earliest and latest date seen, as Arrow days.
#[derive(Default)]
struct DayRange(Option<(i32, i32)>);

impl DayRange {
    fn extend(&mut self, column: &arrow::array::ArrayRef) {
        let Some(d) = column.as_any().downcast_ref::<Date32Array>() else {
            return;
        };
        for x in d.iter().flatten() {
            self.0 = Some(match self.0 {
                Some((a, b)) => (a.min(x), b.max(x)),
                None => (x, x),
            });
        }
    }

    fn months(&self) -> Option<(String, String)> {
        let (a, b) = self.0?;
        Some((
            month_of_days(a).unwrap_or_default(),
            month_of_days(b).unwrap_or_default(),
        ))
    }
}
