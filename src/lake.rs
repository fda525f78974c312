//! The lake: one Delta table per record type, plus the submission ledger and the quarantine
//! report, in a local directory (default) or object storage. All Delta-specific code lives here
//! and in `query`.
//!
//! A submission is committed as one Delta commit on its record table: new files added and the
//! partner's earlier rows for the same period removed together (`replace_where`), so a reader
//! sees the old submission or the new one, never both or neither. The ledger row is written
//! after the data commit; a crash between the two leaves consistent data, and re-running the
//! same file replaces it with identical rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::StreamExt;
use url::Url;

use crate::schema::{Catalog, PARTITION_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake {location}: {message}")]
    Location { location: String, message: String },
    #[error("lake table {table}: {message}")]
    Delta { table: String, message: String },
    #[error("--as-of {0:?}: expected a Delta version number or an RFC 3339 timestamp")]
    AsOf(String),
}

/// The ledger of submissions: one row per file accepted into the lake.
pub const LEDGER: &str = "submissions";
/// Row-level problems: row number, field and reason code, never values.
pub const QUARANTINE: &str = "quarantine";

pub fn ledger_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("partner", DataType::Utf8, false),
        Field::new("record_type", DataType::Utf8, false),
        Field::new("source_sha256", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("period_from", DataType::Utf8, true),
        Field::new("period_to", DataType::Utf8, true),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_accepted", DataType::Int64, false),
        Field::new("rows_quarantined", DataType::Int64, false),
        Field::new("table_version", DataType::Int64, true),
        // Every table's version once this submission was committed, as JSON: the lake version
        // `--as-of N` (N a version of this ledger) reads each table at.
        Field::new("lake_versions", DataType::Utf8, false),
        Field::new("key_version", DataType::Utf8, false),
        Field::new("schema_version", DataType::Int32, false),
        Field::new("ingested_at", ts, false),
    ]))
}

pub fn quarantine_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("submission_id", DataType::Utf8, false),
        Field::new("partner", DataType::Utf8, false),
        Field::new("record_type", DataType::Utf8, false),
        Field::new("source_sha256", DataType::Utf8, false),
        Field::new("source_row", DataType::Int64, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("ingested_at", ts, false),
    ]))
}

/// A point in the lake's history: a lake version (a version of the `submissions` ledger, each
/// of which records the version of every table) or a time.
#[derive(Debug, Clone)]
pub enum AsOf {
    Version(u64),
    Timestamp(chrono::DateTime<chrono::Utc>),
}

/// Where to read one table: its own Delta version, or a time.
#[derive(Debug, Clone)]
pub enum TablePoint {
    Version(u64),
    Timestamp(chrono::DateTime<chrono::Utc>),
}

impl AsOf {
    pub fn parse(s: &str) -> Result<AsOf, LakeError> {
        if let Ok(v) = s.parse::<u64>() {
            return Ok(AsOf::Version(v));
        }
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| AsOf::Timestamp(t.with_timezone(&chrono::Utc)))
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| {
                    AsOf::Timestamp(d.and_hms_opt(23, 59, 59).unwrap_or_default().and_utc())
                })
            })
            .map_err(|_| LakeError::AsOf(s.to_string()))
    }
}

#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    pub location: String,
}

impl Lake {
    /// Opens the lake at a directory or URL, creating a local directory when needed.
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        let bad = |message: String| LakeError::Location {
            location: location.to_string(),
            message,
        };
        let root = if location.contains("://") {
            let mut u = Url::parse(location).map_err(|e| bad(e.to_string()))?;
            if !u.path().ends_with('/') {
                u.set_path(&format!("{}/", u.path()));
            }
            u
        } else {
            std::fs::create_dir_all(location).map_err(|e| bad(e.kind().to_string()))?;
            let abs = std::fs::canonicalize(location).map_err(|e| bad(e.kind().to_string()))?;
            Url::from_directory_path(&abs).map_err(|_| bad("not an absolute path".into()))?
        };
        Ok(Lake {
            root,
            location: location.to_string(),
        })
    }

    pub fn table_url(&self, name: &str) -> Url {
        self.root
            .join(&format!("{name}/"))
            .expect("table names are plain identifiers")
    }

    fn err(table: &str, e: impl std::fmt::Display) -> LakeError {
        LakeError::Delta {
            table: table.to_string(),
            message: e.to_string(),
        }
    }

    /// Creates every table that does not exist yet, empty, so a query on a new lake answers 0.
    pub async fn ensure_tables(&self, catalog: &Catalog) -> Result<(), LakeError> {
        let mut wanted: Vec<(String, SchemaRef, Vec<String>)> = catalog
            .records
            .values()
            .map(|r| {
                (
                    r.table.clone(),
                    r.stored_schema(),
                    PARTITION_COLUMNS.iter().map(|s| s.to_string()).collect(),
                )
            })
            .collect();
        wanted.push((LEDGER.into(), ledger_schema(), vec![]));
        wanted.push((QUARANTINE.into(), quarantine_schema(), vec![]));
        wanted.push((
            crate::schedule::RUNS.into(),
            crate::schedule::runs_schema(),
            vec![],
        ));
        for (name, schema, parts) in wanted {
            if let Ok(dir) = self.table_url(&name).to_file_path() {
                std::fs::create_dir_all(&dir).map_err(|e| Self::err(&name, e.kind()))?;
            }
            let table = DeltaTable::try_from_url(self.table_url(&name))
                .await
                .map_err(|e| Self::err(&name, e))?;
            if table.version().is_some() {
                continue;
            }
            let kernel: deltalake::kernel::StructType = schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| Self::err(&name, e))?;
            let res = table
                .create()
                .with_table_name(&name)
                .with_columns(kernel.fields().cloned())
                .with_partition_columns(parts)
                .with_save_mode(SaveMode::Ignore)
                .await;
            if let Err(e) = res {
                // Another process may have created it at the same moment.
                let again = DeltaTable::try_from_url(self.table_url(&name))
                    .await
                    .map_err(|e| Self::err(&name, e))?;
                if again.version().is_none() {
                    return Err(Self::err(&name, e));
                }
            }
        }
        Ok(())
    }

    /// Loads a table at its latest version or at a point of its own history.
    pub async fn table(
        &self,
        name: &str,
        at: Option<&TablePoint>,
    ) -> Result<DeltaTable, LakeError> {
        let mut b =
            DeltaTableBuilder::from_url(self.table_url(name)).map_err(|e| Self::err(name, e))?;
        match at {
            Some(TablePoint::Version(v)) => b = b.with_version(*v),
            Some(TablePoint::Timestamp(t)) => b = b.with_timestamp(*t),
            None => {}
        }
        b.load().await.map_err(|e| Self::err(name, e))
    }

    /// Where each of `tables` is read for a lake-wide point in history.
    pub async fn resolve(
        &self,
        tables: &[String],
        as_of: &AsOf,
    ) -> Result<HashMap<String, TablePoint>, LakeError> {
        match as_of {
            AsOf::Timestamp(t) => Ok(tables
                .iter()
                .map(|n| (n.clone(), TablePoint::Timestamp(*t)))
                .collect()),
            AsOf::Version(v) => {
                let ledger = self
                    .table(LEDGER, Some(&TablePoint::Version(*v)))
                    .await
                    .map_err(|_| LakeError::AsOf(format!("{v} (the lake has no version {v})")))?;
                let versions = latest_lake_versions(&ledger).await?;
                let mut out = HashMap::new();
                for n in tables {
                    let point = if n == LEDGER {
                        TablePoint::Version(*v)
                    } else {
                        // A table no submission had touched yet is at its creation.
                        TablePoint::Version(versions.get(n).copied().unwrap_or(0))
                    };
                    out.insert(n.clone(), point);
                }
                Ok(out)
            }
        }
    }

    /// The latest version of each table.
    pub async fn versions(&self, names: &[String]) -> Result<HashMap<String, i64>, LakeError> {
        let mut out = HashMap::new();
        for n in names {
            let t = self.table(n, None).await?;
            out.insert(n.clone(), t.version().map(|v| v as i64).unwrap_or(-1));
        }
        Ok(out)
    }

    /// Commits a stream of rows into `table`, replacing the rows that match `replace` in the
    /// same commit. Returns the new table version. When the stream fails, nothing is committed.
    pub async fn replace_with_stream(
        &self,
        table_name: &str,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        replace: Expr,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let table = self.table(table_name, None).await?;
        let part: Arc<dyn PartitionStream> = Arc::new(OnceStream {
            schema: schema.clone(),
            stream: Mutex::new(Some(stream)),
        });
        let provider =
            StreamingTable::try_new(schema, vec![part]).map_err(|e| Self::err(table_name, e))?;
        let plan =
            LogicalPlanBuilder::scan("submission", provider_as_source(Arc::new(provider)), None)
                .and_then(|b| b.build())
                .map_err(|e| Self::err(table_name, e))?;
        let commit = CommitProperties::default().with_metadata(metadata);
        let written = table
            .write(vec![])
            .with_input_plan(plan)
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(replace)
            .with_commit_properties(commit)
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(written.version().map(|v| v as i64).unwrap_or(-1))
    }

    /// Appends rows to a table in one commit.
    pub async fn append(
        &self,
        table_name: &str,
        batches: Vec<RecordBatch>,
    ) -> Result<i64, LakeError> {
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(self
                .table(table_name, None)
                .await?
                .version()
                .map(|v| v as i64)
                .unwrap_or(-1));
        }
        let table = self.table(table_name, None).await?;
        let written = table
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(written.version().map(|v| v as i64).unwrap_or(-1))
    }
}

/// The `lake_versions` of the most recent ledger row in this ledger snapshot.
async fn latest_lake_versions(ledger: &DeltaTable) -> Result<HashMap<String, u64>, LakeError> {
    use datafusion::arrow::array::{Array, StringArray};
    let ctx = datafusion::prelude::SessionContext::new();
    let err = |e: &dyn std::fmt::Display| Lake::err(LEDGER, e);
    ledger
        .update_datafusion_session(&ctx.state())
        .map_err(|e| err(&e))?;
    let provider = ledger.table_provider().await.map_err(|e| err(&e))?;
    ctx.register_table("ledger", provider)
        .map_err(|e| err(&e))?;
    let batches = ctx
        .sql("SELECT lake_versions FROM ledger")
        .await
        .map_err(|e| err(&e))?
        .collect()
        .await
        .map_err(|e| err(&e))?;
    // Each row recorded the ledger's version just before it was appended: the highest is the
    // newest row, whatever the clocks of concurrent ingestions said.
    let mut best: Option<HashMap<String, u64>> = None;
    for b in &batches {
        // Delta scans may hand strings over as Utf8View.
        let col =
            datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| err(&e))?;
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| err(&"lake_versions is not text"))?;
        for i in 0..col.len() {
            let v: HashMap<String, u64> =
                serde_json::from_str(col.value(i)).map_err(|e| err(&e))?;
            let pos = v.get(LEDGER).copied().unwrap_or(0);
            if best
                .as_ref()
                .is_none_or(|b| b.get(LEDGER).copied().unwrap_or(0) <= pos)
            {
                best = Some(v);
            }
        }
    }
    Ok(best.unwrap_or_default())
}

/// `partner = P AND reporting_country = C AND period BETWEEN from AND to`.
pub fn submission_scope(partner: &str, country: &str, from: &str, to: &str) -> Expr {
    col("partner")
        .eq(lit(partner))
        .and(col("reporting_country").eq(lit(country)))
        .and(col("period").gt_eq(lit(from)))
        .and(col("period").lt_eq(lit(to)))
}

/// A partition stream that hands out one prepared stream, once.
struct OnceStream {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnceStream")
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        match self.stream.lock().ok().and_then(|mut s| s.take()) {
            Some(s) => s,
            None => {
                let err = futures::stream::once(async {
                    Err(datafusion::error::DataFusionError::Execution(
                        "submission stream already consumed".into(),
                    ))
                });
                Box::pin(RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    err.boxed(),
                ))
            }
        }
    }
}
