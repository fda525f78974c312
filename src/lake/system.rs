//! The system tables the lake keeps beside the record tables, each with its schema and a typed
//! row next to it:
//!
//! - `submissions`, the ledger: one row per file committed (partner, record type, SHA-256,
//!   rows, period, every table's version once it was committed, key version);
//! - `quarantine`: row-level problems (row number, field, reason code, never the value);
//! - `schedule_runs`: the scheduler's memory (job, slot, started / succeeded / failed);
//! - `key_epochs`: which key the lake's pseudonyms are made with, and since when.
//!
//! Rows cross into Arrow through serde (`arrow::json`), so a row type and its schema are the
//! only things to keep in step, and a test does that for each.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Lake, LakeError, TableSpec};
use crate::source::Reason;

/// The ledger of submissions: one row per file accepted into the lake.
pub const LEDGER: &str = "submissions";
/// Row-level problems: row number, field and reason code, never values.
pub const QUARANTINE: &str = "quarantine";
/// The scheduler's runs.
pub const RUNS: &str = "schedule_runs";
/// The keys the lake's pseudonyms were made with.
pub const KEY_EPOCHS: &str = "key_epochs";
/// Erasures (GDPR Art. 17): when, what kind, how many rows — never whose.
pub const ERASURES: &str = "erasures";

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// The system tables, unpartitioned.
pub fn specs() -> Vec<TableSpec> {
    [
        (LEDGER, ledger_schema()),
        (QUARANTINE, quarantine_schema()),
        (RUNS, runs_schema()),
        (KEY_EPOCHS, key_epochs_schema()),
        (ERASURES, erasures_schema()),
    ]
    .into_iter()
    .map(|(name, schema)| TableSpec {
        name: name.into(),
        schema,
        partitions: vec![],
    })
    .collect()
}

/// One file committed to the lake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRow {
    pub submission_id: String,
    pub partner: String,
    pub record_type: String,
    pub source_sha256: String,
    pub format: String,
    pub channel: String,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    pub rows_read: i64,
    pub rows_accepted: i64,
    pub rows_quarantined: i64,
    pub table_version: Option<i64>,
    /// Every table's version once this submission was committed, as JSON: the lake version
    /// `--as-of N` (N a version of this ledger) reads each table at.
    pub lake_versions: String,
    pub key_version: String,
    pub schema_version: i32,
    pub ingested_at: DateTime<Utc>,
    /// `upsert`, `snapshot` or `withdraw`.
    pub mode: String,
    /// The period a snapshot declared (`all`, `YYYY-MM`, `YYYY-MM..YYYY-MM`).
    pub snapshot_period: Option<String>,
    pub rows_inserted: i64,
    pub rows_updated: i64,
    pub rows_removed: i64,
}

pub fn ledger_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("submission_id", false),
        text("partner", false),
        text("record_type", false),
        text("source_sha256", false),
        text("format", false),
        text("channel", false),
        text("period_from", true),
        text("period_to", true),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_accepted", DataType::Int64, false),
        Field::new("rows_quarantined", DataType::Int64, false),
        Field::new("table_version", DataType::Int64, true),
        text("lake_versions", false),
        text("key_version", false),
        Field::new("schema_version", DataType::Int32, false),
        Field::new("ingested_at", utc(), false),
        text("mode", false),
        text("snapshot_period", true),
        Field::new("rows_inserted", DataType::Int64, false),
        Field::new("rows_updated", DataType::Int64, false),
        Field::new("rows_removed", DataType::Int64, false),
    ]))
}

/// One row-level problem of a submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRow {
    pub submission_id: String,
    pub partner: String,
    pub record_type: String,
    pub source_sha256: String,
    pub source_row: i64,
    pub field: String,
    pub reason: Reason,
    pub ingested_at: DateTime<Utc>,
}

pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("submission_id", false),
        text("partner", false),
        text("record_type", false),
        text("source_sha256", false),
        Field::new("source_row", DataType::Int64, false),
        text("field", false),
        text("reason", false),
        Field::new("ingested_at", utc(), false),
    ]))
}

/// What happened to a scheduled run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunOutcome {
    Started,
    Succeeded,
    Failed,
}

impl RunOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Started => "started",
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
        }
    }
}

/// One line of the scheduler's run log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEvent {
    pub job: String,
    pub slot: String,
    pub event: RunOutcome,
    pub at: String,
    pub message: Option<String>,
}

pub fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("job", false),
        text("slot", false),
        text("event", false),
        text("at", false),
        text("message", true),
    ]))
}

/// A key epoch: from `started_at`, the lake's pseudonyms are made with `key_version`.
/// Children reported in two epochs do not link across them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEpoch {
    pub epoch: i64,
    pub key_version: String,
    pub previous_key_version: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Why the epoch began, in the operator's words (`first ingestion` for the first).
    pub reason: String,
}

pub fn key_epochs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("epoch", DataType::Int64, false),
        text("key_version", false),
        text("previous_key_version", true),
        Field::new("started_at", utc(), false),
        text("reason", false),
    ]))
}

/// One erasure. It names no person and no case: the audit log names the pseudonym.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRow {
    pub erased_at: DateTime<Utc>,
    /// `person` or `case`.
    pub kind: String,
    pub rows_removed: i64,
    /// The ledger's version when the erasure ran: `--as-of` an earlier lake version is refused.
    pub lake_version: i64,
    /// Every table's version after the erasure, as JSON: the earliest readable version.
    pub table_versions: String,
}

pub fn erasures_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("erased_at", utc(), false),
        text("kind", false),
        Field::new("rows_removed", DataType::Int64, false),
        Field::new("lake_version", DataType::Int64, false),
        text("table_versions", false),
    ]))
}

/// Typed rows as one Arrow batch of `schema`.
pub fn to_batch<T: Serialize>(schema: SchemaRef, rows: &[T]) -> Result<RecordBatch, String> {
    let mut d = arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    d.serialize(rows).map_err(|e| e.to_string())?;
    Ok(d.flush()
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// Arrow batches as typed rows.
pub fn from_batches<T: DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<T>, String> {
    let plain: Vec<RecordBatch> = batches
        .iter()
        .map(plain_strings)
        .collect::<Result<_, _>>()?;
    let mut w = arrow::json::ArrayWriter::new(Vec::new());
    w.write_batches(&plain.iter().collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    let buf = w.into_inner();
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| e.to_string())
}

/// Delta scans may hand strings over as `Utf8View`; the rows read them as plain text.
fn plain_strings(b: &RecordBatch) -> Result<RecordBatch, String> {
    let cols = b
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => {
                arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())
            }
            _ => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .zip(&cols)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), f.is_nullable()))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
}

/// Runs `sql` (the table is `t`) on one table snapshot and returns typed rows.
async fn select<T: DeserializeOwned>(
    table: &DeltaTable,
    name: &str,
    sql: &str,
) -> Result<Vec<T>, LakeError> {
    let err = |e: &dyn std::fmt::Display| Lake::err(name, e);
    let ctx = datafusion::prelude::SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| err(&e))?;
    let provider = table.table_provider().await.map_err(|e| err(&e))?;
    ctx.register_table("t", provider).map_err(|e| err(&e))?;
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| err(&e))?
        .collect()
        .await
        .map_err(|e| err(&e))?;
    from_batches(&batches).map_err(|e| err(&e))
}

/// A SQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl Lake {
    async fn select<T: DeserializeOwned>(
        &self,
        name: &str,
        sql: &str,
    ) -> Result<Vec<T>, LakeError> {
        match self.try_table(name, None).await? {
            Some(t) => select(&t, name, sql).await,
            None => Ok(Vec::new()),
        }
    }

    async fn append_rows<T: Serialize>(
        &self,
        name: &str,
        schema: SchemaRef,
        rows: &[T],
        submission: Option<&str>,
    ) -> Result<i64, LakeError> {
        let batch = to_batch(schema, rows).map_err(|e| Lake::err(name, e))?;
        let metadata = submission
            .map(|id| vec![(super::SUBMISSION_METADATA.to_string(), id.into())])
            .unwrap_or_default();
        self.append(name, vec![batch], metadata).await
    }

    /// The submission already committed for this partner, record type, file content, mode and
    /// snapshot period.
    pub async fn find_submission(
        &self,
        partner: &str,
        record_type: &str,
        sha256: &str,
        mode: &str,
        snapshot_period: Option<&str>,
    ) -> Result<Option<SubmissionRow>, LakeError> {
        let sql = format!(
            "SELECT * FROM t WHERE partner = {} AND record_type = {} AND source_sha256 = {} \
             AND mode = {} AND coalesce(snapshot_period, '') = {} ORDER BY ingested_at LIMIT 1",
            quoted(partner),
            quoted(record_type),
            quoted(sha256),
            quoted(mode),
            quoted(snapshot_period.unwrap_or(""))
        );
        Ok(self.select(LEDGER, &sql).await?.into_iter().next())
    }

    pub async fn record_submission(&self, row: &SubmissionRow) -> Result<i64, LakeError> {
        self.append_rows(
            LEDGER,
            ledger_schema(),
            std::slice::from_ref(row),
            Some(&row.submission_id),
        )
        .await
    }

    /// The id of every submission in the ledger.
    pub async fn submission_ids(&self) -> Result<std::collections::HashSet<String>, LakeError> {
        #[derive(Deserialize)]
        struct Id {
            submission_id: String,
        }
        let rows: Vec<Id> = self.select(LEDGER, "SELECT submission_id FROM t").await?;
        Ok(rows.into_iter().map(|r| r.submission_id).collect())
    }

    /// The key versions of every submission, newest first.
    pub async fn ledger_key_versions(&self) -> Result<Vec<String>, LakeError> {
        #[derive(Deserialize)]
        struct V {
            key_version: String,
        }
        let rows: Vec<V> = self
            .select(
                LEDGER,
                "SELECT key_version, max(ingested_at) AS last FROM t GROUP BY key_version ORDER BY last DESC",
            )
            .await?;
        Ok(rows.into_iter().map(|v| v.key_version).collect())
    }

    pub async fn record_quarantine(&self, rows: &[QuarantineRow]) -> Result<i64, LakeError> {
        let submission = rows.first().map(|r| r.submission_id.as_str());
        self.append_rows(QUARANTINE, quarantine_schema(), rows, submission)
            .await
    }

    /// The scheduler's run log, oldest first.
    pub async fn run_events(&self) -> Result<Vec<RunEvent>, LakeError> {
        self.select(RUNS, "SELECT * FROM t ORDER BY at, job, slot, event")
            .await
    }

    pub async fn record_run(&self, e: &RunEvent) -> Result<i64, LakeError> {
        self.append_rows(RUNS, runs_schema(), std::slice::from_ref(e), None)
            .await
    }

    /// The erasures, oldest first.
    pub async fn erasures(&self) -> Result<Vec<ErasureRow>, LakeError> {
        self.select(ERASURES, "SELECT * FROM t ORDER BY erased_at")
            .await
    }

    pub async fn record_erasure(&self, e: &ErasureRow) -> Result<i64, LakeError> {
        self.append_rows(ERASURES, erasures_schema(), std::slice::from_ref(e), None)
            .await
    }

    /// The key epochs, oldest first.
    pub async fn key_epochs(&self) -> Result<Vec<KeyEpoch>, LakeError> {
        self.select(KEY_EPOCHS, "SELECT * FROM t ORDER BY epoch, started_at")
            .await
    }

    pub async fn record_key_epoch(&self, e: &KeyEpoch) -> Result<i64, LakeError> {
        self.append_rows(
            KEY_EPOCHS,
            key_epochs_schema(),
            std::slice::from_ref(e),
            None,
        )
        .await
    }
}

/// The `lake_versions` of the most recent ledger row in this ledger snapshot.
pub(crate) async fn latest_lake_versions(
    ledger: &DeltaTable,
) -> Result<HashMap<String, u64>, LakeError> {
    #[derive(Deserialize)]
    struct V {
        lake_versions: String,
    }
    let rows: Vec<V> = select(ledger, LEDGER, "SELECT lake_versions FROM t").await?;
    // Each row recorded the ledger's version just before it was appended: the highest is the
    // newest row, whatever the clocks of concurrent ingestions said.
    let mut best: Option<HashMap<String, u64>> = None;
    for r in rows {
        let v: HashMap<String, u64> =
            serde_json::from_str(&r.lake_versions).map_err(|e| Lake::err(LEDGER, e))?;
        let pos = v.get(LEDGER).copied().unwrap_or(0);
        if best
            .as_ref()
            .is_none_or(|b| b.get(LEDGER).copied().unwrap_or(0) <= pos)
        {
            best = Some(v);
        }
    }
    Ok(best.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-11-03T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        schema: SchemaRef,
        rows: Vec<T>,
    ) {
        let b = to_batch(schema.clone(), &rows).expect("to batch");
        assert_eq!(b.schema(), schema);
        assert_eq!(from_batches::<T>(&[b]).expect("from batch"), rows);
    }

    #[test]
    fn system_rows_match_their_schemas() {
        round_trip(
            ledger_schema(),
            vec![SubmissionRow {
                submission_id: "s".into(),
                partner: "LT-NGO-01".into(),
                record_type: "case".into(),
                source_sha256: "ab".into(),
                format: "csv".into(),
                channel: "load".into(),
                period_from: Some("2025-01".into()),
                period_to: None,
                rows_read: 3,
                rows_accepted: 2,
                rows_quarantined: 1,
                table_version: Some(4),
                lake_versions: "{}".into(),
                key_version: "k00000000".into(),
                schema_version: 1,
                ingested_at: at(),
                mode: "snapshot".into(),
                snapshot_period: Some("2025-01..2025-03".into()),
                rows_inserted: 1,
                rows_updated: 1,
                rows_removed: 4,
            }],
        );
        round_trip(
            quarantine_schema(),
            vec![QuarantineRow {
                submission_id: "s".into(),
                partner: "p".into(),
                record_type: "case".into(),
                source_sha256: "ab".into(),
                source_row: 7,
                field: "gender".into(),
                reason: Reason::UnknownCode,
                ingested_at: at(),
            }],
        );
        round_trip(
            runs_schema(),
            vec![RunEvent {
                job: "extract:x".into(),
                slot: "2025-01-03T02:00:00Z".into(),
                event: RunOutcome::Failed,
                at: "2025-01-03T02:00:05Z".into(),
                message: None,
            }],
        );
        round_trip(
            erasures_schema(),
            vec![ErasureRow {
                erased_at: at(),
                kind: "person".into(),
                rows_removed: 7,
                lake_version: 12,
                table_versions: "{}".into(),
            }],
        );
        round_trip(
            key_epochs_schema(),
            vec![KeyEpoch {
                epoch: 2,
                key_version: "k12345678".into(),
                previous_key_version: Some("k87654321".into()),
                started_at: at(),
                reason: "key compromised".into(),
            }],
        );
    }
}
