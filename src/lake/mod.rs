//! The lake: one Delta table per record type, plus the system tables (the submission ledger,
//! the quarantine report, the scheduler's runs and the key epochs, in [`system`]), in a local
//! directory (default) or object storage. All Delta-specific code lives here and in `query`.
//!
//! Opening a lake reads nothing and writes nothing: readers (analysts, extracts) never create
//! a table or a directory. Only a writer calls [`Lake::create_missing_tables`].
//!
//! A submission is committed as one Delta commit on its record table: its new files added, and
//! the files holding rows it replaces removed in the same commit (the rows of those files that
//! it keeps written again, see [`submit`]), so a reader sees the old submission or the new one,
//! never both or neither. The ledger row is written
//! after the data commit; a crash between the two leaves consistent data, and re-running the
//! same file replaces it with identical rows.

mod scope;
pub mod store;
mod submit;
pub mod system;

pub use scope::{FEW_KEYS, KeyTest, Keys, Scope, ScopeRead};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{col, lit};
use deltalake::kernel::Transaction;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitProperties, TransactionError};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
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
    /// the rows are appended once: a retry after an ambiguous failure, or a second writer of
    /// the same rows, finds them.
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
        // Appended once: another writer may have written the same rows meanwhile (a starting
        // writer restores the ledger row of a data commit it finds without one, while the
        // writer that made the commit is about to write it). Two at the same moment conflict
        // on the submission's Delta transaction, and the loser finds the winner's.
        if let Some(v) = self.landed(table_name, &metadata).await {
            return Ok(v);
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
        _ => Lake::err(table, e),
    }
}
