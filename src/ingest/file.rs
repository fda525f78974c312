//! One file, as one submission. The reading pass ([`passes`](super::passes)) reads the file
//! once, on every core, and maps, validates, keys and pseudonymises everything into a private
//! spill without touching the lake: a file that is wrong as a whole is rejected here, and
//! leaves nothing. Then, in this order: the quarantine rows, the data commit (one Delta commit
//! that adds the new records and removes what they replace, what a snapshot leaves out or what
//! is withdrawn; it carries the submission's ledger row in its commit metadata), and the ledger
//! row, which marks the submission complete. A crash between the data commit and the ledger row
//! is repaired from that metadata ([`reconcile`](super::reconcile)). A file already in the
//! ledger (same partner, record type, content, mode and period) is skipped.

use std::path::Path;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use super::passes::{FileJob, PassOne};
use super::{FileReport, FileStatus, IngestError, Ingestor, Mode, Submission, sha256_file};
use crate::lake::system::{QuarantineRow, SubmissionRow};
use crate::lake::{self, system};
use crate::pseudonym::Provenance;
use crate::source::SourceError;

/// The commit metadata key that carries a submission's ledger row.
pub const LEDGER_METADATA: &str = "tip.ledger";

/// The ingestion of one submission that passed its first pass.
struct Commit<'a> {
    ing: &'a Ingestor,
    sub: &'a Submission<'a>,
    job: Arc<FileJob>,
    sha: String,
    now: DateTime<Utc>,
}

pub(super) async fn ingest(
    ing: &Ingestor,
    sub: &Submission<'_>,
    path: &Path,
) -> Result<FileReport, IngestError> {
    let prov = Provenance {
        partner: sub.partner.to_string(),
        reporting_country: reporting_country(ing, sub.partner)?,
        submission_id: uuid::Uuid::new_v4().to_string(),
        source_sha256: sha256_file(path).map_err(|e| SourceError::Read {
            file: crate::source::display_name(path),
            detail: e.kind().to_string(),
        })?,
        ingested_at_micros: Utc::now().timestamp_micros(),
    };
    let job = Arc::new(FileJob::new(ing, sub, path, prov)?);
    let mut report = FileReport::new(&job.file, &job.record.record_type, &sub.mode);
    let period = sub.mode.period().map(|p| p.to_string());
    let earlier = ing
        .lake
        .find_submission(
            sub.partner,
            &job.record.record_type,
            &job.prov.source_sha256,
            sub.mode.as_str(),
            period.as_deref(),
        )
        .await?;
    if let Some(e) = earlier {
        report.status = FileStatus::Unchanged;
        report.earlier = Some(e.submission_id);
        return Ok(report);
    }
    let mut one = match first_pass(&job).await? {
        Ok(o) => o,
        Err(reason) => {
            report.status = FileStatus::Rejected(reason);
            return Ok(report);
        }
    };
    report.rows_read = one.rows_read;
    report.rows_accepted = one.accepted;
    report.issues = std::mem::take(&mut one.issues);
    report.period = one.period.clone();
    report.imputed = std::mem::take(&mut one.imputed);
    report.submission_id = Some(job.prov.submission_id.clone());
    let one = Arc::new(one);
    let commit = Commit {
        sha: job.prov.source_sha256.clone(),
        ing,
        sub,
        job,
        now: Utc::now(),
    };
    commit.quarantine(&mut report).await?;
    commit.data(&one, &mut report).await?;
    commit.ledger(&mut report).await?;
    Ok(report)
}

/// The reading pass on a blocking thread (it spreads over every core), then the check that
/// the file is still the one whose SHA-256 the ledger will name. A file-level problem is the
/// inner error (the file is rejected); a task failure carries no input: its message is not
/// passed on.
async fn first_pass(job: &Arc<FileJob>) -> Result<Result<PassOne, String>, IngestError> {
    let j = job.clone();
    let res = tokio::task::spawn_blocking(move || {
        let one = j.pass_one()?;
        Ok(j.check_unchanged().map(|()| one))
    })
    .await
    .map_err(|_| {
        IngestError::Usage(format!(
            "{}: internal error while reading; nothing was committed",
            job.file
        ))
    })?;
    match res {
        Ok(Ok(one)) => Ok(Ok(one)),
        Ok(Err(changed)) => Ok(Err(changed)),
        Err(IngestError::Source(e)) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
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

impl Commit<'_> {
    fn metadata(
        &self,
        ledger: &SubmissionRow,
    ) -> Result<Vec<(String, serde_json::Value)>, IngestError> {
        let row = serde_json::to_value(ledger).map_err(|e| IngestError::Usage(e.to_string()))?;
        Ok(vec![
            (
                lake::SUBMISSION_METADATA.to_string(),
                serde_json::json!(self.job.prov.submission_id),
            ),
            (LEDGER_METADATA.to_string(), row),
        ])
    }

    /// The data commit. When another writer changed the same rows first (a lost race: the
    /// commit kept nothing), the submission is counted and written again against the table as
    /// it is now, after a random pause, a few times before giving up.
    async fn data(&self, one: &Arc<PassOne>, report: &mut FileReport) -> Result<(), IngestError> {
        const ATTEMPTS: u32 = 8;
        let mut attempt = 1;
        loop {
            match self.data_once(one, report).await {
                Err(IngestError::Lake(lake::LakeError::Conflict { .. })) if attempt < ATTEMPTS => {
                    let pause = rand::random_range(50..200u64) << attempt.min(5);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                r => return r,
            }
        }
    }

    /// Counts what the submission will insert, update and remove, then commits it: one Delta
    /// commit for the data, whatever the mode.
    async fn data_once(
        &self,
        one: &Arc<PassOne>,
        report: &mut FileReport,
    ) -> Result<(), IngestError> {
        let record = &self.job.record;
        let country = &self.job.prov.reporting_country;
        let staged = |e: std::io::Error| IngestError::File {
            file: self.job.file.clone(),
            message: format!(
                "cannot read the staged record keys ({}); nothing was committed",
                e.kind()
            ),
        };
        let snapshot = self.sub.mode.period().map(|p| p.bounds());
        if one.keys.is_empty() && snapshot.is_none() {
            return Ok(()); // nothing to add, replace or withdraw
        }
        // A few keys make a filter that skips files by their statistics; many are tested row
        // by row against the staged key set, so the predicate never grows with the file.
        let few = match one.keys.len() {
            0..=lake::FEW_KEYS => one.keys.texts().map_err(staged)?,
            _ => Vec::new(),
        };
        let keys = match one.keys.len() {
            0 => lake::Keys::None,
            n if n <= lake::FEW_KEYS => lake::Keys::Few(&few),
            _ => lake::Keys::Set({
                let one = one.clone();
                Arc::new(move |k: &str| one.keys.contains(k))
            }),
        };
        let kept: Option<lake::KeyTest> = match one.kept.iter().all(|k| k.is_empty()) {
            true => None,
            false => Some({
                let one = one.clone();
                Arc::new(move |k: &str| {
                    for set in &one.kept {
                        if set.contains(k)? {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                })
            }),
        };
        let scope = lake::Scope {
            partner: self.sub.partner,
            country,
            keys,
            snapshot,
            kept,
        };
        // The rows the commit will replace, remove or keep: only those are counted.
        let read = self.ing.lake.scope_keys(&record.table, &scope).await?;
        count_changes(&self.sub.mode, one.keys.len() as u64, &read, report);
        let changes = report.rows_inserted + report.rows_updated + report.rows_removed;
        if one.keys.is_empty() && changes == 0 {
            return Ok(());
        }
        // Nothing held and no snapshot: the commit only adds (and conflicts with any rival
        // commit for the partner). Otherwise it replaces the rows of every key it sends, as a
        // rival commit of the same keys would conflict with it.
        let replaces = read.held > 0 || snapshot.is_some() || self.sub.mode == Mode::Withdraw;
        let scope = match replaces {
            true => scope,
            false => lake::Scope {
                keys: lake::Keys::None,
                ..scope
            },
        };
        let metadata = self.metadata(&self.ledger_row(report, "{}".into()))?;
        let version = match self.sub.mode {
            Mode::Withdraw => self.withdraw(&scope, &read, metadata).await?,
            _ => self.write(one, &scope, &read, metadata).await?,
        };
        report.table_version = Some(version);
        report.commits.push((record.table.clone(), version));
        Ok(())
    }

    /// A withdrawal: the commit removes the rows in `scope` and adds none.
    async fn withdraw(
        &self,
        scope: &lake::Scope<'_>,
        read: &lake::ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, IngestError> {
        let record = &self.job.record;
        let schema = record.stored_schema();
        let lake = &self.ing.lake;
        Ok(lake
            .delete_where(&record.table, schema, scope, read, metadata)
            .await?)
    }

    /// The spill's accepted rows stream into the commit.
    async fn write(
        &self,
        one: &Arc<PassOne>,
        scope: &lake::Scope<'_>,
        read: &lake::ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, IngestError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, String>>(2);
        let producer = {
            let (job, one) = (self.job.clone(), one.clone());
            tokio::task::spawn_blocking(move || {
                // An error, or a panic, reaches the writer as an error before the channel
                // closes: a producer that stopped early never looks like a complete file.
                let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    job.send_spill(&one, &tx)
                }));
                let failed = match sent {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e,
                    Err(_) => format!(
                        "{}: internal error while writing; nothing was committed",
                        job.file
                    ),
                };
                let _ = tx.blocking_send(Err(failed));
            })
        };
        let record = &self.job.record;
        let res = self
            .ing
            .lake
            .replace_from_channel(
                &record.table,
                record.stored_schema(),
                rx,
                scope,
                read,
                metadata,
            )
            .await;
        let _ = producer.await;
        Ok(res?)
    }

    async fn quarantine(&self, report: &mut FileReport) -> Result<(), IngestError> {
        let issues = &report.issues;
        if issues.is_empty() {
            return Ok(());
        }
        let rows: Vec<QuarantineRow> = issues
            .iter()
            .map(|i| QuarantineRow {
                submission_id: self.job.prov.submission_id.clone(),
                partner: self.sub.partner.to_string(),
                record_type: self.job.record.record_type.clone(),
                source_sha256: self.sha.clone(),
                source_row: i.row as i64,
                field: i.field.clone(),
                reason: i.reason,
                ingested_at: self.now,
            })
            .collect();
        let version = self.ing.lake.record_quarantine(&rows).await?;
        report
            .commits
            .push((system::QUARANTINE.to_string(), version));
        Ok(())
    }

    fn ledger_row(&self, report: &FileReport, lake_versions: String) -> SubmissionRow {
        let (period_from, period_to) = match &report.period {
            Some((a, b)) => (Some(a.clone()), Some(b.clone())),
            None => (None, None),
        };
        SubmissionRow {
            submission_id: self.job.prov.submission_id.clone(),
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
            mode: self.sub.mode.as_str().to_string(),
            snapshot_period: self.sub.mode.period().map(|p| p.to_string()),
            rows_inserted: report.rows_inserted as i64,
            rows_updated: report.rows_updated as i64,
            rows_removed: report.rows_removed as i64,
        }
    }

    /// The ledger row, last: it marks the submission complete.
    async fn ledger(&self, report: &mut FileReport) -> Result<(), IngestError> {
        let lake_versions = lake_versions(self.ing).await?;
        let row = self.ledger_row(report, lake_versions);
        let version = self.ing.lake.record_submission(&row).await?;
        report.commits.push((system::LEDGER.to_string(), version));
        Ok(())
    }
}

/// Every table's version now, as the JSON the ledger keeps (`--as-of` reads it back).
pub(super) async fn lake_versions(ing: &Ingestor) -> Result<String, IngestError> {
    let names: Vec<String> = lake::Lake::specs(&ing.catalog)
        .into_iter()
        .map(|s| s.name)
        .filter(|n| n != system::RUNS)
        .collect();
    let versions = ing.lake.versions(&names).await?;
    serde_json::to_string(
        &versions
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .map_err(|e| IngestError::Usage(e.to_string()))
}

/// Inserted (new keys), updated (keys held), removed (withdrawn keys held, or what a snapshot
/// leaves out of its period), kept (a snapshot's records whose row was set aside), from what
/// [`lake::Lake::scope_keys`] counted and the number of keys sent.
fn count_changes(mode: &Mode, sent: u64, read: &lake::ScopeRead, report: &mut FileReport) {
    match mode {
        Mode::Withdraw => report.rows_removed = read.held,
        Mode::Upsert => {
            report.rows_updated = read.held;
            report.rows_inserted = sent.saturating_sub(read.held);
        }
        Mode::Snapshot(_) => {
            report.rows_updated = read.held;
            report.rows_inserted = sent.saturating_sub(read.held);
            report.rows_removed = read.left_out;
            report.rows_kept = read.kept;
        }
    }
}
