//! The lake: one Delta table per record type, plus the system tables (the submission ledger,
//! the quarantine report, the scheduler's runs and the key epochs, in [`system`]), in a local
//! directory (default) or object storage. All Delta-specific code lives here and in `query`.
//!
//! Opening a lake reads nothing and writes nothing: readers (analysts, extracts) never create
//! a table or a directory. Only a writer calls [`Lake::create_missing_tables`].
//!
//! A submission is committed as one Delta commit on its record table: new files added and the
//! partner's earlier rows for the same period removed together (`replace_where`), so a reader
//! sees the old submission or the new one, never both or neither. The ledger row is written
//! after the data commit; a crash between the two leaves consistent data, and re-running the
//! same file replaces it with identical rows.

mod scope;
pub mod store;
pub mod system;

pub use scope::{FEW_KEYS, KeyTest, Keys, Scope, ScopeRead};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::provider_as_source;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use deltalake::kernel::Transaction;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitProperties, TransactionError};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::StreamExt;
use url::Url;

use crate::schema::{Catalog, PARTITION_COLUMNS};

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake {location}: {message}")]
    Location { location: String, message: String },
    #[error("lake table {table}: {message}")]
    Delta { table: String, message: String },
    #[error(
        "lake table {table}: another writer changed the same rows at the same moment; nothing of this commit was kept ({message})"
    )]
    Conflict { table: String, message: String },
    #[error(
        "{location}: this store does not honour conditional writes (If-None-Match: *): {why}. Two writers could overwrite each other's commits and lose submissions without an error, so tip does not write here. Use a store that refuses to create an object that exists (Amazon S3 does, as do many S3-compatible services), or a local directory"
    )]
    UnsafeStore { location: String, why: String },
    #[error("--as-of {0:?}: expected a Delta version number or an RFC 3339 timestamp")]
    AsOf(String),
    #[error(
        "no lake at {0}: nothing has been ingested there yet (a writer creates it: `tip ingest` or `tip load`)"
    )]
    Missing(String),
    #[error(
        "{point} is before an erasure on {erased_at} (GDPR Art. 17): the lake's history before it was purged and cannot be read"
    )]
    Purged { point: String, erased_at: String },
    #[error(
        "table {0} cannot be read at that point: it is older than the lake's history (the time-travel window, lake.history_days, which `tip maintain` keeps), or not a point of the table at all"
    )]
    OutsideHistory(String),
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

/// What the upkeep of one table did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Upkeep {
    pub files_compacted: usize,
    pub files_vacuumed: usize,
    pub logs_removed: usize,
}

/// A table tip keeps: its name, columns and partition columns.
pub struct TableSpec {
    pub name: String,
    pub schema: SchemaRef,
    pub partitions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Lake {
    root: Url,
    pub location: String,
    /// Object storage options (endpoint, region...), for every table and store.
    options: BTreeMap<String, String>,
    /// Set once this process has checked that the store refuses a second create.
    checked_store: Arc<tokio::sync::OnceCell<()>>,
    /// Tables already loaded by this process, brought up to date incrementally (only new log
    /// entries are read), so that a long-running server's checks do not replay every log.
    cache: Arc<Mutex<HashMap<String, DeltaTable>>>,
}

impl Lake {
    /// The lake at a directory or URL. Reads and writes nothing.
    pub fn open(location: &str) -> Result<Lake, LakeError> {
        Lake::open_with(location, BTreeMap::new())
    }

    /// The lake at a directory or URL, with object storage options. Reads and writes nothing.
    pub fn open_with(location: &str, options: BTreeMap<String, String>) -> Result<Lake, LakeError> {
        store::register();
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
            let abs = std::path::absolute(location).map_err(|e| bad(e.kind().to_string()))?;
            Url::from_directory_path(&abs).map_err(|_| bad("not an absolute path".into()))?
        };
        Ok(Lake {
            root,
            location: location.to_string(),
            options,
            checked_store: Arc::default(),
            cache: Arc::default(),
        })
    }

    /// Whether the lake is in object storage (not a local directory).
    pub fn is_remote(&self) -> bool {
        self.root.scheme() != "file"
    }

    /// A store at `url` with this lake's object storage options.
    pub fn store(&self, url: &Url) -> Result<store::Store, LakeError> {
        store::Store::open(url, &self.options)
    }

    fn builder(&self, name: &str) -> Result<DeltaTableBuilder, LakeError> {
        let b =
            DeltaTableBuilder::from_url(self.table_url(name)).map_err(|e| Self::err(name, e))?;
        Ok(if self.options.is_empty() {
            b
        } else {
            b.with_storage_options(self.options.clone().into_iter().collect())
        })
    }

    /// Writers only, once per process: in object storage, that the store refuses to create an
    /// object twice (see [`store::Store::check_conditional_create`]).
    pub async fn check_writable(&self) -> Result<(), LakeError> {
        if !self.is_remote() {
            return Ok(());
        }
        self.checked_store
            .get_or_try_init(|| async { self.store(&self.root)?.check_conditional_create().await })
            .await
            .map(|_| ())
    }

    pub fn table_url(&self, name: &str) -> Url {
        self.root
            .join(&format!("{name}/"))
            .expect("table names are plain identifiers")
    }

    pub(crate) fn err(table: &str, e: impl std::fmt::Display) -> LakeError {
        LakeError::Delta {
            table: table.to_string(),
            message: e.to_string(),
        }
    }

    /// Every table of a lake: one per record type, then the system tables.
    pub fn specs(catalog: &Catalog) -> Vec<TableSpec> {
        let mut out: Vec<TableSpec> = catalog
            .records
            .values()
            .map(|r| TableSpec {
                name: r.table.clone(),
                schema: r.stored_schema(),
                partitions: PARTITION_COLUMNS.iter().map(|s| s.to_string()).collect(),
            })
            .collect();
        out.extend(system::specs());
        out
    }

    /// Whether the lake has been created (by a writer): its ledger exists.
    pub async fn exists(&self) -> bool {
        self.try_table(system::LEDGER, None)
            .await
            .is_ok_and(|t| t.is_some())
    }

    /// Fails with a clear message when nothing was ever written here.
    pub async fn require(&self) -> Result<(), LakeError> {
        if self.exists().await {
            Ok(())
        } else {
            Err(LakeError::Missing(self.location.clone()))
        }
    }

    /// Writers only: creates every table that does not exist yet, empty, so a query on a new
    /// lake answers 0.
    pub async fn create_missing_tables(&self, catalog: &Catalog) -> Result<(), LakeError> {
        self.check_writable().await?;
        for spec in Lake::specs(catalog) {
            self.create_table(&spec).await?;
        }
        Ok(())
    }

    async fn create_table(&self, spec: &TableSpec) -> Result<(), LakeError> {
        let name = spec.name.as_str();
        if let Ok(dir) = self.table_url(name).to_file_path() {
            std::fs::create_dir_all(&dir).map_err(|e| Self::err(name, e.kind()))?;
        }
        let mut table = self
            .builder(name)?
            .build()
            .map_err(|e| Self::err(name, e))?;
        match table.load().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => {}
            Err(e) => return Err(Self::err(name, e)),
        }
        if table.version().is_some() {
            return Ok(());
        }
        let kernel: deltalake::kernel::StructType = spec
            .schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| Self::err(name, e))?;
        let res = table
            .create()
            .with_table_name(name)
            .with_columns(kernel.fields().cloned())
            .with_partition_columns(spec.partitions.clone())
            .with_configuration_property(
                deltalake::TableProperty::EnableExpiredLogCleanup,
                Some("false"),
            )
            .with_save_mode(SaveMode::Ignore)
            .await;
        if let Err(e) = res {
            // Another process may have created it at the same moment.
            if self.try_table(name, None).await?.is_none() {
                return Err(Self::err(name, e));
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
        if at.is_none() {
            let cached = self.cache.lock().ok().and_then(|c| c.get(name).cloned());
            let table = match cached {
                Some(mut t) => {
                    t.update_incremental(None)
                        .await
                        .map_err(|e| Self::err(name, e))?;
                    t
                }
                None => self.load(name, None).await?,
            };
            if let Ok(mut c) = self.cache.lock() {
                c.insert(name.to_string(), table.clone());
            }
            return Ok(table);
        }
        self.load(name, at).await
    }

    async fn load(&self, name: &str, at: Option<&TablePoint>) -> Result<DeltaTable, LakeError> {
        let mut b = self.builder(name)?;
        match at {
            Some(TablePoint::Version(v)) => b = b.with_version(*v),
            Some(TablePoint::Timestamp(t)) => b = b.with_timestamp(*t),
            None => {}
        }
        b.load().await.map_err(|e| match at {
            Some(_) => LakeError::OutsideHistory(name.to_string()),
            None => Self::err(name, e),
        })
    }

    /// The table, or None when no writer has created it.
    pub async fn try_table(
        &self,
        name: &str,
        at: Option<&TablePoint>,
    ) -> Result<Option<DeltaTable>, LakeError> {
        let exists = match self.table_url(name).to_file_path() {
            Ok(dir) => dir.join("_delta_log").is_dir(),
            Err(_) => {
                let t = self
                    .builder(name)?
                    .build()
                    .map_err(|e| Self::err(name, e))?;
                t.verify_deltatable_existence().await.unwrap_or(false)
            }
        };
        if !exists {
            return Ok(None);
        }
        self.table(name, at).await.map(Some)
    }

    /// Where each of `tables` is read for a lake-wide point in history.
    pub async fn resolve(
        &self,
        tables: &[String],
        as_of: &AsOf,
    ) -> Result<HashMap<String, TablePoint>, LakeError> {
        let erasures = self.erasures().await?;
        let purged = |point: String, e: &system::ErasureRow| LakeError::Purged {
            point,
            erased_at: e.erased_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        };
        let floor: HashMap<String, u64> = match as_of {
            AsOf::Version(v) => {
                if let Some(e) = erasures.iter().rev().find(|e| (*v as i64) < e.lake_version) {
                    return Err(purged(format!("lake version {v}"), e));
                }
                erasures
                    .last()
                    .and_then(|e| serde_json::from_str(&e.table_versions).ok())
                    .unwrap_or_default()
            }
            AsOf::Timestamp(t) => {
                if let Some(e) = erasures.iter().rev().find(|e| *t < e.erased_at) {
                    return Err(purged(t.to_rfc3339(), e));
                }
                HashMap::new()
            }
        };
        let mut points = self.points(tables, as_of).await?;
        // After an erasure, no table is read at a version older than the erasure's.
        for (name, point) in points.iter_mut() {
            if let (TablePoint::Version(v), Some(f)) = (&point, floor.get(name)) {
                *point = TablePoint::Version((*v).max(*f));
            }
        }
        Ok(points)
    }

    async fn points(
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
                let latest = self.versions(&[system::LEDGER.to_string()]).await?;
                if latest.get(system::LEDGER).is_none_or(|l| (*v as i64) > *l) {
                    return Err(LakeError::AsOf(format!(
                        "{v} (the lake has no version {v})"
                    )));
                }
                let ledger = self
                    .table(system::LEDGER, Some(&TablePoint::Version(*v)))
                    .await?;
                let versions = system::latest_lake_versions(&ledger).await?;
                let mut out = HashMap::new();
                for n in tables {
                    let point = if n == system::LEDGER {
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

    /// The latest version of each table (-1 for a table not created yet).
    pub async fn versions(&self, names: &[String]) -> Result<HashMap<String, i64>, LakeError> {
        let mut out = HashMap::new();
        for n in names {
            let v = match self.try_table(n, None).await? {
                Some(t) => t.version().map(|v| v as i64).unwrap_or(-1),
                None => -1,
            };
            out.insert(n.clone(), v);
        }
        Ok(out)
    }

    /// Commits a stream of rows into `table`, replacing the rows that match `replace` in the
    /// same commit. Returns the new table version. When the stream fails, nothing is committed.
    async fn replace_with_stream(
        &self,
        table_name: &str,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        replace: Option<Expr>,
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
        let commit = commit_properties(metadata.clone());
        // The same Parquet as a first load writes (row groups of 128 Ki rows, zstd), and files
        // of the same size: a replacing commit's files are read like any other.
        let write = table
            .write(vec![])
            .with_input_plan(plan)
            .with_writer_properties(writer_properties())
            .with_target_file_size(std::num::NonZeroU64::new(TARGET_FILE_BYTES))
            .with_commit_properties(commit);
        let written = match replace {
            Some(p) => {
                write
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(p)
                    .await
            }
            None => write.with_save_mode(SaveMode::Append).await,
        };
        match written {
            Ok(t) => Ok(t.version().map(|v| v as i64).unwrap_or(-1)),
            Err(e) => self.after_failed_commit(table_name, &metadata, e).await,
        }
    }

    /// A commit failed: if it landed all the same (the store took it but the answer was lost,
    /// or a retried request found it), its version; otherwise the error, as a conflict when
    /// another writer won. Only commits that carry a submission id can be recognised, by the
    /// Delta transaction (app id) they carry.
    async fn after_failed_commit(
        &self,
        table_name: &str,
        metadata: &[(String, serde_json::Value)],
        e: DeltaTableError,
    ) -> Result<i64, LakeError> {
        if let Some(v) = self.landed(table_name, metadata).await {
            return Ok(v);
        }
        Err(commit_err(table_name, e))
    }

    /// The version at which the commit carrying `metadata`'s submission id landed, if it did.
    async fn landed(
        &self,
        table_name: &str,
        metadata: &[(String, serde_json::Value)],
    ) -> Option<i64> {
        let app = submission_txn(metadata)?;
        let table = self.table(table_name, None).await.ok()?;
        let state = table.snapshot().ok()?;
        state
            .transaction_version(table.log_store().as_ref(), &app)
            .await
            .ok()??;
        let id = metadata
            .iter()
            .find(|(k, _)| k == SUBMISSION_METADATA)
            .map(|(_, v)| v.clone())?;
        self.recent_commits(table_name, 1000)
            .await
            .ok()?
            .into_iter()
            .find(|(_, m)| m.get(SUBMISSION_METADATA) == Some(&id))
            .map(|(v, _)| v)
    }

    /// Commits the batches a producer sends on `rx` (an error from it aborts the commit), in
    /// place of the rows in `scope`.
    pub async fn replace_from_channel(
        &self,
        table_name: &str,
        schema: SchemaRef,
        rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, String>>,
        scope: &Scope<'_>,
        read: &ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        if scope.adds_only() {
            return self
                .append_months(table_name, rx, scope, read, metadata)
                .await;
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|x| (x.map_err(datafusion::error::DataFusionError::Execution), rx))
        });
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema.clone(),
            stream.boxed(),
        ));
        self.replace_with_stream(
            table_name,
            schema,
            stream,
            Some(scope.predicate()),
            metadata,
        )
        .await
    }

    /// Adds the batches a producer sends on `rx` in one commit that replaces nothing. The
    /// batches come a month at a time (see `ingest::passes`): each month is encoded by a writer
    /// of its own, as many at once as there are cores, and its files are finished when its
    /// rows end, so memory holds a few months' rows, not the file's, and files are as large
    /// as their month allows. The files become part of the table only with the commit: an
    /// error leaves them unreferenced, outside the table.
    ///
    /// The commit is made against the version [`Lake::scope_keys`] read, and declares that it
    /// read the partner's rows in its country: a commit that added rows of that partner since
    /// (another submission of the same records, racing) makes it conflict, so the submission is
    /// counted again against the table as it is then, never appended beside them.
    async fn append_months(
        &self,
        table_name: &str,
        mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, String>>,
        scope: &Scope<'_>,
        read: &ScopeRead,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let err = |e: &dyn std::fmt::Display| Self::err(table_name, e);
        let at = read.version.map(TablePoint::Version);
        let table = self.table(table_name, at.as_ref()).await?;
        let mut months = MonthWriters::new(&table);
        let mut adds = Vec::new();
        let outcome: Result<(), LakeError> = async {
            while let Some(item) = rx.recv().await {
                let batch = item.map_err(|e| err(&e))?;
                adds.extend(months.write(batch).await.map_err(|e| err(&e))?);
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
        let operation = deltalake::protocol::DeltaOperation::Write {
            mode: SaveMode::Append,
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
            .map(deltalake::kernel::Action::Add)
            .collect();
        let committed = deltalake::kernel::transaction::CommitBuilder::from(commit_properties(
            metadata.clone(),
        ))
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await;
        match committed {
            Ok(c) => Ok(c.version() as i64),
            Err(e) => self.after_failed_commit(table_name, &metadata, e).await,
        }
    }

    /// Deletes the rows in `scope` in one commit carrying `metadata`. Returns the new table
    /// version.
    pub async fn delete_where(
        &self,
        table_name: &str,
        scope: &Scope<'_>,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let table = self.table(table_name, None).await?;
        let commit = commit_properties(metadata.clone());
        let written = table
            .delete()
            .with_predicate(scope.predicate())
            .with_commit_properties(commit)
            .await;
        match written {
            Ok((t, _)) => Ok(t.version().map(|v| v as i64).unwrap_or(-1)),
            Err(e) => self.after_failed_commit(table_name, &metadata, e).await,
        }
    }

    /// Counts the partner's rows that the submission in `scope` replaces, removes or keeps,
    /// which is what an upsert, snapshot or withdrawal reports. With a few keys the filter
    /// names them, so files whose statistics rule them out are skipped; otherwise the
    /// partner's files in the country are read (compaction keeps them few) and each row's key
    /// is tested as it streams past: no list of every key is built or held.
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
        let provider = table.table_provider().await.map_err(|e| err(&e))?;
        let mut stream = ctx
            .read_table(provider)
            .and_then(|df| {
                df.filter(scope.read_filter())?
                    .select_columns(&["record_key", "period"])
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
            let (k, p) = (text(0)?, text(1)?);
            let (k, p) = (k.as_string::<i32>(), p.as_string::<i32>());
            for r in 0..b.num_rows() {
                scope
                    .count(k.value(r), p.value(r), &mut read)
                    .map_err(|e| {
                        err(&format!(
                            "cannot read the submission's staged record keys ({})",
                            e.kind()
                        ))
                    })?;
            }
        }
        Ok(read)
    }

    /// Deletes the rows where `column = value` in one commit; returns how many rows went.
    pub async fn delete_matching(
        &self,
        table_name: &str,
        column: &str,
        value: &str,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<u64, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(0);
        };
        let commit = commit_properties(metadata);
        let (_, metrics) = table
            .delete()
            .with_predicate(col(column).eq(lit(value)))
            .with_commit_properties(commit)
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(metrics.num_deleted_rows.unwrap_or(0) as u64)
    }

    /// Erases a table's history: a checkpoint at the current version, every data file the
    /// current version does not use deleted (whatever its age), and every older log entry
    /// deleted. Time travel to before it is impossible afterwards. Returns the files removed.
    pub async fn purge_history(&self, table_name: &str) -> Result<usize, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(0);
        };
        let err = |e: &dyn std::fmt::Display| Self::err(table_name, e);
        let (table, metrics) = table
            .vacuum()
            .with_commit_properties(commit_properties(vec![]))
            .with_retention_period(chrono::Duration::zero())
            .with_enforce_retention_duration(false)
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .await
            .map_err(|e| err(&e))?;
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(|e| err(&e))?;
        let version = table.version().unwrap_or(0);
        let future = chrono::Utc::now().timestamp_millis() + 60_000;
        deltalake::checkpoints::cleanup_expired_logs_for(
            version,
            table.log_store().as_ref(),
            future,
            None,
        )
        .await
        .map_err(|e| err(&e))?;
        Ok(metrics.files_deleted.len())
    }

    /// Compacts the small files of a table in one commit (only partitions with more than one
    /// small file are rewritten); the files it replaces stay for time travel until `tip
    /// maintain` purges them. Returns how many files were compacted.
    pub async fn compact(&self, table_name: &str) -> Result<usize, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(0);
        };
        let (_, metrics) = table
            .optimize()
            .with_commit_properties(commit_properties(vec![]))
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(metrics.num_files_removed as usize)
    }

    /// Upkeep of one table: small files compacted, a checkpoint written, and what is older than
    /// `history` purged — files no version inside the window uses, and log entries — so time
    /// travel reaches back `history` and no further.
    pub async fn maintain_table(
        &self,
        table_name: &str,
        history: chrono::Duration,
    ) -> Result<Upkeep, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(Upkeep::default());
        };
        let err = |e: &dyn std::fmt::Display| Self::err(table_name, e);
        let (table, optimized) = table
            .optimize()
            .with_commit_properties(commit_properties(vec![]))
            .await
            .map_err(|e| err(&e))?;
        let (table, vacuumed) = table
            .vacuum()
            .with_commit_properties(commit_properties(vec![]))
            .with_retention_period(history)
            .with_enforce_retention_duration(false)
            .await
            .map_err(|e| err(&e))?;
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(|e| err(&e))?;
        let cutoff = (chrono::Utc::now() - history).timestamp_millis();
        let logs = deltalake::checkpoints::cleanup_expired_logs_for(
            table.version().unwrap_or(0),
            table.log_store().as_ref(),
            cutoff,
            None,
        )
        .await
        .map_err(|e| err(&e))?;
        Ok(Upkeep {
            files_compacted: optimized.num_files_removed as usize,
            files_vacuumed: vacuumed.files_deleted.len(),
            logs_removed: logs,
        })
    }

    /// Deletes a partitioned table's rows of months before `first_kept` (`YYYY-MM`); rows of
    /// an unknown month are kept. Returns the rows deleted.
    pub async fn delete_before(
        &self,
        table_name: &str,
        first_kept: &str,
    ) -> Result<u64, LakeError> {
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(0);
        };
        let predicate = col("period")
            .lt(lit(first_kept))
            .and(col("period").not_eq(lit("unknown")));
        let (_, metrics) = table
            .delete()
            .with_predicate(predicate)
            .with_commit_properties(commit_properties(vec![]))
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(metrics.num_deleted_rows.unwrap_or(0) as u64)
    }

    /// The custom metadata of the table's latest `limit` commits, newest first, with each
    /// commit's version.
    pub async fn recent_commits(
        &self,
        table_name: &str,
        limit: usize,
    ) -> Result<Vec<(i64, HashMap<String, serde_json::Value>)>, LakeError> {
        use futures::TryStreamExt;
        let Some(table) = self.try_table(table_name, None).await? else {
            return Ok(Vec::new());
        };
        let latest = table.version().map(|v| v as i64).unwrap_or(-1);
        let infos: Vec<_> = table
            .history(Some(limit))
            .try_collect()
            .await
            .map_err(|e| Self::err(table_name, e))?;
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| (latest - i as i64, info.info))
            .collect())
    }

    /// Appends rows to a table in one commit. With `metadata` that carries a submission id,
    /// the rows are appended once: a retry after an ambiguous failure finds them.
    pub async fn append(
        &self,
        table_name: &str,
        batches: Vec<RecordBatch>,
        metadata: Vec<(String, serde_json::Value)>,
    ) -> Result<i64, LakeError> {
        let table = self.table(table_name, None).await?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(table.version().map(|v| v as i64).unwrap_or(-1));
        }
        let written = table
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(commit_properties(metadata.clone()))
            .await;
        match written {
            Ok(t) => Ok(t.version().map(|v| v as i64).unwrap_or(-1)),
            Err(e) => self.after_failed_commit(table_name, &metadata, e).await,
        }
    }
}

type MonthTask = tokio::task::JoinHandle<Result<Vec<deltalake::kernel::Add>, DeltaTableError>>;

/// The writers of [`Lake::append_months`]: one task per month (country and period), at most
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

/// The properties of every commit tip makes. Log entries older than the time-travel window are
/// removed by `tip maintain` (`lake.history_days`), never by a commit: Delta's default would,
/// after every commit, list the whole log and delete the entries older than 30 days, which
/// would shorten time travel to 30 days and make every commit slower as the log grows.
///
/// A commit that carries a submission id ([`SUBMISSION_METADATA`]) also carries it as a Delta
/// transaction (`txn`: app id `tip:ID`, version 1): if the commit is retried after it landed
/// (an answer lost on the way back from object storage), Delta's conflict check sees its own
/// transaction and refuses to commit it twice, and [`Lake::landed`] finds it.
fn commit_properties(metadata: Vec<(String, serde_json::Value)>) -> CommitProperties {
    let txn = submission_txn(&metadata);
    let props = CommitProperties::default()
        .with_metadata(metadata)
        .with_cleanup_expired_logs(Some(false));
    match txn {
        Some(app) => props.with_application_transaction(Transaction::new(app, 1)),
        None => props,
    }
}

/// The commit metadata key that carries the id of the submission a commit belongs to.
pub const SUBMISSION_METADATA: &str = "tip.submission_id";

/// The Delta transaction app id of a commit whose metadata carries a submission id. One
/// submission makes one commit per table, so the app id is unique per table.
fn submission_txn(metadata: &[(String, serde_json::Value)]) -> Option<String> {
    metadata
        .iter()
        .find(|(k, _)| k == SUBMISSION_METADATA)
        .and_then(|(_, v)| v.as_str())
        .map(|id| format!("tip:{id}"))
}

/// A failed commit as tip reports it: a lost race with another writer, or another failure.
fn commit_err(table: &str, e: DeltaTableError) -> LakeError {
    let conflict = LakeError::Conflict {
        table: table.to_string(),
        message: e.to_string(),
    };
    match &e {
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        } => conflict,
        // Another commit landed while this one was written, and the Delta conflict checker
        // could not parse this commit's predicate back (it cannot know tip's key tests), so it
        // could not tell whether the two touch the same rows. Taken as a conflict: the
        // submission is counted and written again against the table as it is now.
        _ if [scope::SENT_KEY, scope::KEPT_KEY]
            .iter()
            .any(|f| e.to_string().contains(&format!("Invalid function '{f}'"))) =>
        {
            conflict
        }
        _ => Lake::err(table, e),
    }
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
