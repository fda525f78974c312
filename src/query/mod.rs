//! Analyst SQL over the lake (DataFusion). Every session registers the record tables, the
//! ledger, the quarantine report, the key epochs, the organisation registry, the population
//! table and the analyst views. The gate ([`gate`]) lets through only SELECT, WITH, EXPLAIN,
//! SHOW and DESCRIBE: no DDL, DML, COPY or SET, and no reading files by path (DataFusion's URL
//! tables stay disabled). A session needs no key and writes nothing.

mod answer;
mod bounds;
pub mod capture;
mod encode;
mod export;
mod gate;
pub mod pg;
mod reference;
mod shell;
mod sortkeys;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

pub use answer::Answer;
use answer::Stop;
pub use encode::{Encoder, OutputFormat, StreamFormat, arrow_ipc, render};
pub use gate::{check_size, gate};
pub use shell::shell;

use crate::config::Registry;
use crate::lake::{self, AsOf, Lake, TableSpec, system};
use crate::schema::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("SQL error: {0}")]
    Sql(String),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error("{0}")]
    Output(String),
    #[error("query stopped: {0}")]
    Limit(String),
}

fn sql_err(e: impl std::fmt::Display) -> QueryError {
    QueryError::Sql(e.to_string())
}

/// Bounds on one query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: std::time::Duration,
    pub max_result_rows: usize,
    pub max_result_bytes: usize,
    pub max_value_bytes: usize,
    pub max_sql_tokens: usize,
    pub max_sql_depth: usize,
}

impl Limits {
    /// The longest statement text the gate reads (64 bytes a token).
    pub fn max_sql_bytes(&self) -> usize {
        self.max_sql_tokens.saturating_mul(64)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&crate::config::QueryConfig::default())
    }
}

impl From<&crate::config::QueryConfig> for Limits {
    fn from(c: &crate::config::QueryConfig) -> Self {
        let mib = |n: usize| n.saturating_mul(1024 * 1024);
        Limits {
            memory_bytes: mib(c.memory_limit_mib),
            timeout: std::time::Duration::from_secs(c.timeout_seconds),
            max_result_rows: c.max_result_rows,
            max_result_bytes: mib(c.max_result_mib),
            max_value_bytes: mib(c.max_value_mib),
            max_sql_tokens: c.max_sql_tokens,
            max_sql_depth: c.max_sql_depth,
        }
    }
}

/// The lake tables a session registers: the record tables and the system tables analysts may
/// read (the scheduler's runs are operations, not data, and stay out).
fn session_tables(catalog: &Catalog) -> Vec<TableSpec> {
    Lake::specs(catalog)
        .into_iter()
        .filter(|s| s.name != system::RUNS)
        .collect()
}

/// A read-only analyst session.
pub struct Session {
    ctx: SessionContext,
    limits: Limits,
    /// The Delta version each table was read at (-1: not created yet, read as empty).
    pub versions: BTreeMap<String, i64>,
}

impl Session {
    /// A session with the default limits.
    pub async fn open(
        lake: &Lake,
        catalog: &Catalog,
        registry: &Registry,
        as_of: Option<&AsOf>,
    ) -> Result<Session, QueryError> {
        Session::open_with_limits(lake, catalog, registry, as_of, Limits::default()).await
    }

    /// A session over the lake as of `as_of` (the latest when None). Tables no writer has
    /// created yet (all of them, on a new lake) read as empty; nothing is written.
    pub async fn open_with_limits(
        lake: &Lake,
        catalog: &Catalog,
        registry: &Registry,
        as_of: Option<&AsOf>,
        limits: Limits,
    ) -> Result<Session, QueryError> {
        let mut ctx = context(limits)?;
        bounds::install(&mut ctx, limits.max_value_bytes);
        let specs = session_tables(catalog);
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let points = match as_of {
            Some(a) => lake.resolve(&names, a).await?,
            None => Default::default(),
        };
        let mut versions = BTreeMap::new();
        for spec in &specs {
            let v = register_table(&ctx, lake, spec, points.get(&spec.name)).await?;
            versions.insert(spec.name.clone(), v);
        }
        whole_submissions_only(&ctx).await?;
        ctx.register_table(
            "organisations",
            Arc::new(reference::organisations_table(registry)?),
        )
        .map_err(sql_err)?;
        ctx.register_table(
            "population",
            Arc::new(reference::population_table(catalog)?),
        )
        .map_err(sql_err)?;
        // The analyst views, in file order (a view may use an earlier one). Registered here,
        // outside the gate: analysts cannot create views.
        for v in &catalog.views {
            ctx.sql(&v.sql)
                .await
                .map_err(|e| QueryError::Sql(format!("view {}: {e}", v.name)))?;
        }
        Ok(Session {
            ctx,
            limits,
            versions,
        })
    }

    /// No table of the lake exists yet: nothing was ever ingested there.
    pub fn lake_is_new(&self) -> bool {
        self.versions.values().all(|v| *v < 0)
    }

    /// Runs one analyst statement through the gate and collects its answer (bounded by the
    /// answer limits). Front ends that pass the answer on use [`Session::stream`].
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        self.stream(sql).await?.collect().await
    }

    /// Runs one analyst statement through the gate; the answer comes batch by batch. Planning
    /// and execution run on a task of the runtime, within the time, memory, answer and value
    /// limits.
    pub async fn stream(&self, sql: &str) -> Result<Answer, QueryError> {
        self.start(sql, None).await
    }

    /// The gate, then the plan and its check, then the run; parameters (the Postgres extended
    /// protocol's) are bound after the check.
    async fn start(
        &self,
        sql: &str,
        params: Option<datafusion::common::ParamValues>,
    ) -> Result<Answer, QueryError> {
        gate::check_size(sql, &self.limits)?;
        gate(sql)?;
        let (ctx, sql) = (self.ctx.clone(), sql.to_string());
        Answer::start(plan_read_only(ctx, sql, params), self.limits).await
    }

    /// The columns a statement would answer with, through the same gate and checks as
    /// [`Session::stream`], without running it (Flight SQL's flight info and prepared
    /// statements, the Postgres wire protocol's Describe).
    pub async fn describe(&self, sql: &str) -> Result<SchemaRef, QueryError> {
        Ok(self.describe_statement(sql).await?.schema)
    }

    /// The tables and views analysts can query, with their columns, by name (for the
    /// browsing calls of Flight SQL and the Postgres catalogue).
    pub async fn relations(&self) -> Result<Vec<Relation>, QueryError> {
        let schema = self
            .ctx
            .catalog(CATALOG)
            .and_then(|c| c.schema(SCHEMA))
            .ok_or_else(|| QueryError::Sql("the lake schema is missing".into()))?;
        let mut names = schema.table_names();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let Some(t) = schema.table(&name).await.map_err(sql_err)? else {
                continue;
            };
            let view = t.table_type() == datafusion::datasource::TableType::View;
            out.push(Relation {
                name,
                view,
                schema: t.schema(),
            });
        }
        Ok(out)
    }

    /// Runs reviewed configuration SQL (extract definitions), outside the analyst gate but
    /// within the same limits.
    pub async fn run_trusted(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let (ctx, sql) = (self.ctx.clone(), sql.to_string());
        let plan = async move { ctx.sql(&sql).await.map_err(Stop::Engine) };
        Answer::start(plan, self.limits).await?.collect().await
    }

    /// Plans reviewed configuration SQL without running it: an error names what is wrong.
    pub async fn plan(&self, sql: &str) -> Result<(), QueryError> {
        self.ctx.sql(sql).await.map(|_| ()).map_err(sql_err)
    }

    /// The columns of a table or view: (name, type).
    pub async fn columns(&self, name: &str) -> Result<Vec<(String, String)>, QueryError> {
        let df = self.ctx.table(name).await.map_err(sql_err)?;
        Ok(df
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect())
    }
}

/// The catalogue and schema every session's tables and views are in (`tip.lake.cases`).
pub const CATALOG: &str = "tip";
pub const SCHEMA: &str = "lake";

/// A table or view of a session.
pub struct Relation {
    pub name: String,
    pub view: bool,
    pub schema: SchemaRef,
}

/// Plans an analyst statement with DDL, DML and statements off, then checks the plan itself;
/// binds the parameters of an extended-protocol statement after the check.
async fn plan_read_only(
    ctx: SessionContext,
    sql: String,
    params: Option<datafusion::common::ParamValues>,
) -> Result<DataFrame, Stop> {
    let opts = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df =
        ctx.sql_with_options(&sql, opts)
            .await
            .map_err(|e| match refuse_or_sql(e.to_string()) {
                refused @ QueryError::Refused(_) => Stop::Refused(refused),
                _ => Stop::Engine(e),
            })?;
    gate::read_only_plan(df.logical_plan())?;
    match params {
        Some(p) => df.with_param_values(p).map_err(Stop::Engine),
        None => Ok(df),
    }
}

/// A session context with a fixed memory pool: operators that can spill (sorts,
/// aggregations, joins) do so to the temporary directory before the limit; a query that still
/// needs more fails.
fn context(limits: Limits) -> Result<SessionContext, QueryError> {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_default_catalog_and_schema(CATALOG, SCHEMA);
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .build_arc()
        .map_err(sql_err)?;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(sortkeys::SortKeysAsColumns))
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// The quarantine rows of submissions in the ledger only: a crash before a submission's data
/// commit can leave its quarantine rows behind, for a submission that never happened.
async fn whole_submissions_only(ctx: &SessionContext) -> Result<(), QueryError> {
    let q = ctx.table(system::QUARANTINE).await.map_err(sql_err)?;
    let ids = ctx
        .table(system::LEDGER)
        .await
        .and_then(|l| l.select_columns(&["submission_id"]))
        .map_err(sql_err)?;
    let whole = q
        .join(
            ids,
            datafusion::logical_expr::JoinType::LeftSemi,
            &["submission_id"],
            &["submission_id"],
            None,
        )
        .map_err(sql_err)?;
    ctx.deregister_table(system::QUARANTINE).map_err(sql_err)?;
    ctx.register_table(system::QUARANTINE, whole.into_view())
        .map_err(sql_err)?;
    Ok(())
}

/// Registers one lake table at its point in history; a table no writer has created yet is
/// registered empty. Returns the Delta version read.
async fn register_table(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    at: Option<&lake::TablePoint>,
) -> Result<i64, QueryError> {
    let name = spec.name.as_str();
    match lake.try_table(name, at).await? {
        Some(t) => {
            t.update_datafusion_session(&ctx.state()).map_err(sql_err)?;
            let provider = t.table_provider().await.map_err(sql_err)?;
            ctx.register_table(name, provider).map_err(sql_err)?;
            Ok(t.version().map(|v| v as i64).unwrap_or(-1))
        }
        None => {
            let empty = MemTable::try_new(spec.schema.clone(), vec![vec![]]).map_err(sql_err)?;
            ctx.register_table(name, Arc::new(empty)).map_err(sql_err)?;
            Ok(-1)
        }
    }
}

fn refuse_or_sql(msg: String) -> QueryError {
    if msg.contains("not supported")
        && (msg.contains("DDL") || msg.contains("DML") || msg.contains("Statement"))
    {
        QueryError::Refused(msg)
    } else {
        QueryError::Sql(msg)
    }
}
