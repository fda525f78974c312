//! How a submission's rows enter a record table, in one Delta commit whose size and memory grow
//! with the submission's months, never with its keys or with the table:
//!
//! 1. [`Lake::scope_keys`] reads the partner's rows in its country once, counts what the
//!    submission replaces, removes or keeps (no key held in memory), and notes the data files
//!    that hold a replaced row and how many such rows each holds.
//! 2. The commit writes the submission's rows a month at a time (one writer per month, as many
//!    at once as there are cores); then, from each noted file that also holds rows the
//!    submission does not replace (other partners' rows after compaction, other keys), it
//!    writes those rows again. A file whose every row is replaced is not read again.
//! 3. One commit adds the new files and removes the noted ones, against the table version the
//!    rows were counted at, declaring that it read the partner's rows in its country: a rival
//!    commit that changed them since makes it conflict, and the submission is counted and
//!    written again against the table as it is then.
//!
//! The Delta writer's general path (`replace_where`) scanned the table several times and held
//! a writer open for every partition at once: a 1 M-row re-export took 911 MiB. Nothing here
//! hands the Delta library a predicate it must parse: the key tests of [`super::scope`] run
//! only inside tip's own scans.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{Expr, cast, ident};
use datafusion::physical_plan::SendableRecordBatchStream;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};

use super::scope::{Scope, ScopeRead};
use super::{Lake, LakeError, TablePoint, commit_properties};
use crate::schema::PARTITION_COLUMNS;

/// The column tip's scans add to name each row's data file (a URL under the table's root).
const FILE_COLUMN: &str = "__tip_file";

/// A data file the commit removes, and whether some of its rows must be written again.
struct Removed {
    url: String,
    remove: Remove,
    rewrite: bool,
}

impl Lake {
    /// Counts the partner's rows that the submission in `scope` replaces, removes or keeps,
    /// which is what an upsert, snapshot or withdrawal reports, and notes the files that hold
    /// the rows it replaces. With a few keys the filter names them, so files whose statistics
    /// rule them out are skipped; otherwise the partner's files in the country are read
    /// (compaction keeps them few) and each row's key is tested as it streams past: no list of
    /// every key is built or held.
    pub async fn scope_keys(
        &self,
        table_name: &str,
        scope: &Scope<'_>,
    ) -> Result<ScopeRead, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(ScopeRead::default());
        };
        let err = |e: &dyn std::fmt::Display| Self::err(table_name, e);
        let ctx = datafusion::prelude::SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| err(&e))?;
        let provider = table
            .table_provider()
            .with_file_column(FILE_COLUMN)
            .await
            .map_err(|e| err(&e))?;
        let mut stream = ctx
            .read_table(provider)
            .and_then(|df| {
                df.filter(scope.read_filter())?.select_columns(&[
                    "record_key",
                    "period",
                    FILE_COLUMN,
                ])
            })
            .map_err(|e| err(&e))?
            .execute_stream()
            .await
            .map_err(|e| err(&e))?;
        let mut read = ScopeRead {
            version: table.version(),
            ..ScopeRead::default()
        };
        while let Some(b) = stream.next().await {
            let b = b.map_err(|e| err(&e))?;
            let text = |i: usize| {
                arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| err(&e))
            };
            let (k, p, f) = (text(0)?, text(1)?, text(2)?);
            let (k, p, f) = (
                k.as_string::<i32>(),
                p.as_string::<i32>(),
                f.as_string::<i32>(),
            );
            for r in 0..b.num_rows() {
                let replaced = scope
                    .count(k.value(r), p.value(r), &mut read)
                    .map_err(|e| {
                        err(&format!(
                            "cannot read the submission's staged record keys ({})",
                            e.kind()
                        ))
                    })?;
                if replaced {
                    *read.touched.entry(f.value(r).to_string()).or_default() += 1;
                }
            }
        }
        Ok(read)
    }

    /// Commits the batches a producer sends on `rx` (an error from it aborts the commit, and
    /// nothing is committed) in place of the rows in `scope`, as counted in `read`. The
    /// batches come a month at a time (see `ingest::passes`): each month is encoded by a writer
    /// of its own and its files are finished when its rows end, so memory holds a few months'
    /// rows, not the file's. The files become part of the table only with the commit: an
    /// error leaves them unreferenced, outside the table. Returns the new table version.
    pub async fn replace_from_channel(
        &self,
        table_name: &str,
        schema: SchemaRef,
        mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, String>>,
        scope: &Scope<'_>,
        read: &ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let err = |e: &dyn std::fmt::Display| Self::err(table_name, e);
        let at = read.version.map(TablePoint::Version);
        let table = self.table(table_name, at.as_ref()).await?;
        let removed = match scope.adds_only() {
            true => Vec::new(),
            false => removed_files(&table, read).await.map_err(|e| err(&e))?,
        };
        let mut months = MonthWriters::new(&table);
        let mut adds = Vec::new();
        let outcome: Result<(), LakeError> = async {
            while let Some(item) = rx.recv().await {
                let batch = item.map_err(|e| err(&e))?;
                adds.extend(months.write(batch).await.map_err(|e| err(&e))?);
            }
            for file in removed.iter().filter(|f| f.rewrite) {
                let mut kept = kept_rows(&table, scope, &file.url, &schema)
                    .await
                    .map_err(|e| err(&e))?;
                while let Some(batch) = kept.next().await {
                    let batch = batch.map_err(|e| err(&e))?;
                    if batch.num_rows() > 0 {
                        adds.extend(months.write(batch).await.map_err(|e| err(&e))?);
                    }
                }
            }
            adds.extend(months.finish().await.map_err(|e| err(&e))?);
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            months.abort().await;
            return Err(e);
        }
        let quoted = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let operation = DeltaOperation::Write {
            mode: match removed.is_empty() {
                true => SaveMode::Append,
                false => SaveMode::Overwrite,
            },
            partition_by: Some(PARTITION_COLUMNS.iter().map(|c| c.to_string()).collect()),
            predicate: Some(format!(
                "partner = {} AND reporting_country = {}",
                quoted(scope.partner),
                quoted(scope.country)
            )),
        };
        let snapshot = table.snapshot().map_err(|e| err(&e))?;
        let actions = adds
            .into_iter()
            .map(Action::Add)
            .chain(removed.into_iter().map(|f| Action::Remove(f.remove)))
            .collect();
        let committed = CommitBuilder::from(commit_properties(metadata.clone()))
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await;
        match committed {
            Ok(c) => Ok(c.version() as i64),
            Err(e) => self.after_failed_commit(table_name, &metadata, e).await,
        }
    }

    /// Removes the rows in `scope` (a withdrawal), as counted in `read`, in one commit
    /// carrying `metadata`: the same commit as a replacement that sends no rows. Returns the
    /// new table version.
    pub async fn delete_where(
        &self,
        table_name: &str,
        schema: SchemaRef,
        scope: &Scope<'_>,
        read: &ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let (_, none) = tokio::sync::mpsc::channel(1);
        self.replace_from_channel(table_name, schema, none, scope, read, metadata)
            .await
    }
}

/// The files of `table` (at the version `read` was made at) that hold a row the commit
/// replaces, each as a Remove action, and whether it also holds rows to keep.
async fn removed_files(
    table: &DeltaTable,
    read: &ScopeRead,
) -> Result<Vec<Removed>, DeltaTableError> {
    if read.touched.is_empty() {
        return Ok(Vec::new());
    }
    let mut root = table.log_store().root_url().clone();
    if !root.path().ends_with('/') {
        root.set_path(&format!("{}/", root.path()));
    }
    let snapshot = table.snapshot()?.snapshot();
    let log_store = table.log_store();
    let mut removed: Vec<Removed> = Vec::with_capacity(read.touched.len());
    let mut views = snapshot.file_views(log_store.as_ref(), None);
    while let Some(view) = views.try_next().await? {
        let Ok(url) = root.join(&view.path()) else {
            continue;
        };
        if let Some(replaced) = read.touched.get(url.as_str()) {
            let all = view.num_records().is_some_and(|n| n as u64 == *replaced);
            removed.push(Removed {
                url: url.to_string(),
                remove: view.remove_action(true),
                rewrite: !all,
            });
        }
    }
    if removed.len() != read.touched.len() {
        // A file the count read is not a file of the version it read: never commit on a
        // guess (rows could be kept twice or lost).
        return Err(DeltaTableError::generic(format!(
            "internal error: {} of the {} files holding rows to replace are not in the table version that was read",
            read.touched.len() - removed.len(),
            read.touched.len()
        )));
    }
    // Files of a month next to each other: their kept rows go to one writer.
    removed.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(removed)
}

/// The rows of one data file that the commit does not replace, in `schema`'s columns.
async fn kept_rows(
    table: &DeltaTable,
    scope: &Scope<'_>,
    url: &str,
    schema: &SchemaRef,
) -> Result<SendableRecordBatchStream, DeltaTableError> {
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table
        .table_provider()
        .with_file_paths([url.to_string()])
        .await?;
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| cast(ident(f.name()), f.data_type().clone()).alias(f.name()))
        .collect();
    // Kept: every row the predicate does not select, a NULL included.
    let stream = ctx
        .read_table(provider)
        .and_then(|df| df.filter(scope.predicate().is_not_true())?.select(columns))
        .map_err(DeltaTableError::generic)?
        .execute_stream()
        .await
        .map_err(DeltaTableError::generic)?;
    Ok(stream)
}

type MonthTask = tokio::task::JoinHandle<Result<Vec<deltalake::kernel::Add>, DeltaTableError>>;

/// The writers of [`Lake::replace_from_channel`]: one task per month (country and period), at most
/// one per core at once; a month's task ends when the next month begins.
struct MonthWriters<'a> {
    table: &'a DeltaTable,
    running: std::collections::VecDeque<MonthTask>,
    current: Option<((String, String), tokio::sync::mpsc::Sender<RecordBatch>)>,
    at_once: usize,
    /// Set when the submission failed: each writer then abandons its files (multipart uploads
    /// aborted) instead of finishing them.
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl<'a> MonthWriters<'a> {
    fn new(table: &'a DeltaTable) -> MonthWriters<'a> {
        MonthWriters {
            table,
            running: Default::default(),
            current: None,
            at_once: std::thread::available_parallelism().map_or(2, |n| n.get()),
            abandoned: Default::default(),
        }
    }

    /// Sends a batch to its month's writer, starting one when the month changes; returns the
    /// files of a month that finished meanwhile.
    async fn write(
        &mut self,
        batch: RecordBatch,
    ) -> Result<Vec<deltalake::kernel::Add>, DeltaTableError> {
        let month = partition_of(&batch).unwrap_or_default();
        let mut done = Vec::new();
        if self.current.as_ref().map(|(m, _)| m) != Some(&month) {
            self.current = None;
            if self.running.len() >= self.at_once {
                done = self.join_oldest().await?;
            }
            // One batch waits for the writer while it encodes the one before: a month's
            // writer holds at most two of them.
            let (tx, rx) = tokio::sync::mpsc::channel::<RecordBatch>(1);
            let abandoned = self.abandoned.clone();
            self.running.push_back(tokio::spawn(write_month(
                self.table.clone(),
                month.clone(),
                rx,
                abandoned,
            )));
            self.current = Some((month, tx));
        }
        if let Some((_, tx)) = &self.current
            && tx.send(batch).await.is_err()
        {
            // The writer stopped: its error is the answer.
            self.current = None;
            return match self.running.pop_back() {
                Some(t) => t.await.map_err(DeltaTableError::generic)?.map(|_| done),
                None => Err(DeltaTableError::generic("month writer stopped")),
            };
        }
        Ok(done)
    }

    async fn join_oldest(&mut self) -> Result<Vec<deltalake::kernel::Add>, DeltaTableError> {
        match self.running.pop_front() {
            Some(t) => t.await.map_err(DeltaTableError::generic)?,
            None => Ok(Vec::new()),
        }
    }

    async fn finish(&mut self) -> Result<Vec<deltalake::kernel::Add>, DeltaTableError> {
        self.current = None;
        let mut adds = Vec::new();
        while !self.running.is_empty() {
            adds.extend(self.join_oldest().await?);
        }
        Ok(adds)
    }

    /// Every writer abandons what it wrote; waits for them to do so.
    async fn abort(&mut self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.current = None;
        for t in self.running.drain(..) {
            let _ = t.await;
        }
    }
}

/// One month's rows into Parquet files in the table's directory (not yet in its log). Every
/// batch is of the one partition `month` (country, period), so it is written to that
/// partition as it is: the writer's general path would split each batch by partition, which
/// copies it whole.
async fn write_month(
    table: DeltaTable,
    month: (String, String),
    mut rx: tokio::sync::mpsc::Receiver<RecordBatch>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Vec<deltalake::kernel::Add>, DeltaTableError> {
    use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
    let mut writer = RecordBatchWriter::for_table(&table)?
        .with_writer_properties(writer_properties())
        .with_target_file_size(TARGET_FILE_BYTES);
    let (country, period) = month;
    let values: indexmap::IndexMap<String, delta_kernel::expressions::Scalar> = [
        (PARTITION_COLUMNS[0].to_string(), country.as_str().into()),
        (PARTITION_COLUMNS[1].to_string(), period.as_str().into()),
    ]
    .into_iter()
    .collect();
    while let Some(b) = rx.recv().await {
        if !in_partition(&b, &country, &period) {
            writer.reset();
            return Err(DeltaTableError::generic(
                "internal error: a batch sent to one partition's writer has rows of another",
            ));
        }
        if let Err(e) = writer.write_partition(b, &values, WriteMode::Default).await {
            writer.reset();
            return Err(e);
        }
    }
    if abandoned.load(std::sync::atomic::Ordering::SeqCst) {
        writer.reset();
        return Ok(Vec::new());
    }
    writer.flush().await
}

/// Data files are finished at about this size (a month of one partner's submission is
/// usually one file).
const TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Parquet as tip writes it: zstd (level 1: about snappy's speed, smaller files), statistics
/// per page for readers that skip, row groups of 128 Ki rows.
fn writer_properties() -> parquet::file::properties::WriterProperties {
    parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(
            parquet::basic::ZstdLevel::try_new(1).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build()
}

/// Every row of `b` is of the partition (`country`, `period`).
fn in_partition(b: &RecordBatch, country: &str, period: &str) -> bool {
    use arrow::array::{Array, Scalar, StringArray};
    let all = |name: &str, value: &str| {
        b.column_by_name(name).is_some_and(|c| {
            arrow::compute::kernels::cmp::eq(c, &Scalar::new(StringArray::from(vec![value])))
                .is_ok_and(|same| same.null_count() == 0 && same.true_count() == b.num_rows())
        })
    };
    all(PARTITION_COLUMNS[0], country) && all(PARTITION_COLUMNS[1], period)
}

/// The partition (country, month) of a batch's first row.
fn partition_of(b: &RecordBatch) -> Option<(String, String)> {
    use arrow::array::Array;
    let text = |name: &str| {
        b.column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .filter(|c| !c.is_empty() && c.is_valid(0))
            .map(|c| c.value(0).to_string())
    };
    Some((text("reporting_country")?, text("period")?))
}
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;

    use super::in_partition;

    fn batch(countries: &[Option<&str>], periods: &[Option<&str>]) -> RecordBatch {
        let rows = Int64Array::from_iter_values(0..countries.len() as i64);
        RecordBatch::try_from_iter([
            ("source_row", Arc::new(rows) as ArrayRef),
            (
                "reporting_country",
                Arc::new(StringArray::from(countries.to_vec())),
            ),
            ("period", Arc::new(StringArray::from(periods.to_vec()))),
        ])
        .expect("batch")
    }

    /// A month's writer takes a batch only when every row is of its partition: it writes the
    /// partition's values for the whole batch without looking at the rows again.
    #[test]
    fn a_partition_writer_takes_only_its_own_rows() {
        let one = batch(
            &[Some("EE"), Some("EE")],
            &[Some("2024-01"), Some("2024-01")],
        );
        assert!(in_partition(&one, "EE", "2024-01"));
        assert!(!in_partition(&one, "EE", "2024-02"));
        assert!(!in_partition(&one, "LV", "2024-01"));
        let two_months = batch(
            &[Some("EE"), Some("EE")],
            &[Some("2024-01"), Some("2024-02")],
        );
        assert!(!in_partition(&two_months, "EE", "2024-01"));
        let two_countries = batch(
            &[Some("EE"), Some("LV")],
            &[Some("2024-01"), Some("2024-01")],
        );
        assert!(!in_partition(&two_countries, "EE", "2024-01"));
        let no_period = batch(&[Some("EE"), Some("EE")], &[Some("2024-01"), None]);
        assert!(!in_partition(&no_period, "EE", "2024-01"));
        let rows = Int64Array::from_iter_values(0..2);
        let no_column = RecordBatch::try_from_iter([("source_row", Arc::new(rows) as ArrayRef)])
            .expect("batch");
        assert!(!in_partition(&no_column, "EE", "2024-01"));
    }
}
