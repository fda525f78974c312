//! Analyst SQL over the lake (DataFusion). Every session registers the record tables, the
//! ledger, the quarantine report and the organisation registry. The gate lets through only
//! SELECT, WITH, EXPLAIN, SHOW and DESCRIBE: no DDL, DML, COPY or SET, and no reading files by
//! path (DataFusion's URL tables stay disabled).

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;

use crate::config::Registry;
use crate::lake::{self, AsOf, Lake};
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

/// Bounds on one query.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from(&crate::config::QueryConfig::default())
    }
}

impl From<&crate::config::QueryConfig> for Limits {
    fn from(c: &crate::config::QueryConfig) -> Self {
        Limits {
            memory_bytes: c.memory_limit_mib.saturating_mul(1024 * 1024),
            timeout: std::time::Duration::from_secs(c.timeout_seconds),
        }
    }
}

/// A read-only analyst session.
pub struct Session {
    pub ctx: SessionContext,
    limits: Limits,
    /// The Delta version each table was read at.
    pub versions: std::collections::BTreeMap<String, i64>,
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

    pub async fn open_with_limits(
        lake: &Lake,
        catalog: &Catalog,
        registry: &Registry,
        as_of: Option<&AsOf>,
        limits: Limits,
    ) -> Result<Session, QueryError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema("tip", "lake");
        // A fixed memory pool: operators that can spill (sorts, aggregations, joins) do so to
        // the temporary directory before the limit; a query that still needs more fails.
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        let mut tables: Vec<String> = catalog.records.values().map(|r| r.table.clone()).collect();
        tables.push(lake::LEDGER.into());
        tables.push(lake::QUARANTINE.into());
        let points = match as_of {
            Some(a) => lake.resolve(&tables, a).await?,
            None => Default::default(),
        };
        let mut versions = std::collections::BTreeMap::new();
        for name in &tables {
            let t = lake.table(name, points.get(name)).await?;
            versions.insert(name.clone(), t.version().map(|v| v as i64).unwrap_or(-1));
            t.update_datafusion_session(&ctx.state())
                .map_err(|e| QueryError::Sql(e.to_string()))?;
            let provider = t
                .table_provider()
                .await
                .map_err(|e| QueryError::Sql(e.to_string()))?;
            ctx.register_table(name.as_str(), provider)
                .map_err(|e| QueryError::Sql(e.to_string()))?;
        }
        ctx.register_table("organisations", Arc::new(organisations_table(registry)?))
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        ctx.register_table("population", Arc::new(population_table(catalog)?))
            .map_err(|e| QueryError::Sql(e.to_string()))?;
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

    /// Runs one statement through the gate.
    pub async fn run(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        gate(sql)?;
        let opts = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .ctx
            .sql_with_options(sql, opts)
            .await
            .map_err(|e| refuse_or_sql(e.to_string()))?;
        match tokio::time::timeout(self.limits.timeout, df.collect()).await {
            Err(_) => Err(QueryError::Limit(format!(
                "over the time limit of {} s (query.timeout_seconds)",
                self.limits.timeout.as_secs()
            ))),
            Ok(Err(e)) => Err(self.classify(e)),
            Ok(Ok(b)) => Ok(b),
        }
    }

    fn classify(&self, e: datafusion::error::DataFusionError) -> QueryError {
        let text = e.to_string();
        if matches!(
            e.find_root(),
            datafusion::error::DataFusionError::ResourcesExhausted(_)
        ) || text.contains("Resources exhausted")
        {
            QueryError::Limit(format!(
                "over the memory limit of {} MiB (query.memory_limit_mib)",
                self.limits.memory_bytes / (1024 * 1024)
            ))
        } else {
            QueryError::Sql(text)
        }
    }

    /// Writes every table as a plain hive-partitioned Parquet snapshot under `out`, with a
    /// `manifest.json` of the table versions. The directory appears complete or not at all.
    pub async fn export(
        &self,
        out: &std::path::Path,
        partitioned: &[String],
    ) -> Result<Vec<(String, usize)>, QueryError> {
        let err = |e: &dyn std::fmt::Display| QueryError::Output(format!("{}: {e}", out.display()));
        if out.exists()
            && std::fs::read_dir(out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(QueryError::Output(format!(
                "{}: exists and is not empty",
                out.display()
            )));
        }
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
        let staging = parent.join(format!(".tip-export-{}", uuid::Uuid::new_v4()));
        let mut counts = Vec::new();
        let mut names: Vec<String> = self.versions.keys().cloned().collect();
        names.push("organisations".into());
        for name in &names {
            let df = self.ctx.table(name.as_str()).await.map_err(|e| err(&e))?;
            let rows = df.clone().count().await.map_err(|e| err(&e))?;
            let dir = staging.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
            if rows > 0 {
                let mut opts = datafusion::dataframe::DataFrameWriteOptions::new();
                if partitioned.contains(name) {
                    opts = opts.with_partition_by(
                        crate::schema::PARTITION_COLUMNS
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    );
                }
                df.write_parquet(&format!("{}/", dir.display()), opts, None)
                    .await
                    .map_err(|e| err(&e))?;
            }
            counts.push((name.clone(), rows));
        }
        let manifest = serde_json::json!({
            "table_versions": self.versions,
            "rows": counts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "partitioned_by": crate::schema::PARTITION_COLUMNS,
        });
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| err(&e))?;
        std::fs::write(staging.join("manifest.json"), bytes).map_err(|e| err(&e))?;
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| err(&e))?;
        }
        std::fs::rename(&staging, out).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            err(&e)
        })?;
        Ok(counts)
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

/// Accepts exactly one read-only statement.
pub fn gate(sql: &str) -> Result<(), QueryError> {
    let stmts = DFParser::parse_sql(sql).map_err(|e| QueryError::Sql(e.to_string()))?;
    if stmts.len() != 1 {
        return Err(QueryError::Refused(format!(
            "exactly one statement per query ({} given)",
            stmts.len()
        )));
    }
    let ok = match &stmts[0] {
        DFStatement::Statement(s) => {
            matches!(
                s.as_ref(),
                Statement::Query(_)
                    | Statement::ShowTables { .. }
                    | Statement::ShowColumns { .. }
                    | Statement::ExplainTable { .. }
            ) || matches!(s.as_ref(), Statement::Explain { statement, analyze: false, .. } if matches!(statement.as_ref(), Statement::Query(_)))
        }
        DFStatement::Explain(e) => matches!(
            e.statement.as_ref(),
            DFStatement::Statement(s) if matches!(s.as_ref(), Statement::Query(_))
        ),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(QueryError::Refused(
            "only SELECT, WITH, EXPLAIN, SHOW and DESCRIBE are allowed; the lake is read-only"
                .into(),
        ))
    }
}

fn population_table(catalog: &Catalog) -> Result<MemTable, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("country", DataType::Utf8, false),
        Field::new("year", DataType::Int32, false),
        Field::new("population", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
    ]));
    let p = &catalog.population;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|x| x.country.as_str()),
            )),
            Arc::new(datafusion::arrow::array::Int32Array::from_iter_values(
                p.iter().map(|x| x.year),
            )),
            Arc::new(datafusion::arrow::array::Int64Array::from_iter_values(
                p.iter().map(|x| x.population),
            )),
            Arc::new(StringArray::from_iter_values(
                p.iter().map(|x| x.source.as_str()),
            )),
        ],
    )
    .map_err(|e| QueryError::Sql(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| QueryError::Sql(e.to_string()))
}

fn organisations_table(registry: &Registry) -> Result<MemTable, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("org_id", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, true),
    ]));
    let o = &registry.organisations;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.org_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.org_type.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                o.iter().map(|x| x.country.as_str()),
            )),
            Arc::new(StringArray::from_iter(
                o.iter().map(|x| x.region.as_deref()),
            )),
        ],
    )
    .map_err(|e| QueryError::Sql(e.to_string()))?;
    MemTable::try_new(schema, vec![vec![batch]]).map_err(|e| QueryError::Sql(e.to_string()))
}

/// The query shell: statements end with `;` and may span lines; `\history` lists earlier
/// statements (kept in `history`, one per line, across sessions), `\N` runs statement N again,
/// `\q` quits. Errors are printed and the shell goes on.
pub async fn shell(
    session: &Session,
    format: OutputFormat,
    input: &mut dyn std::io::BufRead,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
    history: Option<&std::path::Path>,
) -> std::io::Result<()> {
    let mut past: Vec<String> = history
        .and_then(|h| std::fs::read_to_string(h).ok())
        .map(|t| {
            t.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    writeln!(
        err,
        "tip query shell: end statements with ';', \\history lists earlier ones, \\q quits"
    )?;
    let mut buf = String::new();
    loop {
        write!(err, "{}", if buf.is_empty() { "tip> " } else { "...> " })?;
        err.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        let cmd = line.trim();
        if buf.is_empty() && cmd.starts_with('\\') {
            match cmd {
                "\\q" => break,
                "\\history" => {
                    for (i, h) in past.iter().enumerate() {
                        writeln!(out, "{:>4}  {h}", i + 1)?;
                    }
                }
                _ => match cmd[1..]
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| past.get(n.wrapping_sub(1)))
                    .cloned()
                {
                    Some(sql) => run_in_shell(session, format, &sql, out, err).await?,
                    None => writeln!(err, "unknown command {cmd}")?,
                },
            }
            continue;
        }
        buf.push_str(&line);
        if cmd.ends_with(';') {
            let sql = buf.split_whitespace().collect::<Vec<_>>().join(" ");
            let sql = sql.trim_end_matches(';').trim().to_string();
            buf.clear();
            if sql.is_empty() {
                continue;
            }
            past.push(sql.clone());
            if let Some(h) = history {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(h)?;
                std::io::Write::write_all(&mut f, format!("{sql}\n").as_bytes())?;
            }
            run_in_shell(session, format, &sql, out, err).await?;
        }
    }
    Ok(())
}

async fn run_in_shell(
    session: &Session,
    format: OutputFormat,
    sql: &str,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match session.run(sql).await {
        Ok(b) => match render(&b, format) {
            Ok(bytes) => out.write_all(&bytes),
            Err(e) => writeln!(err, "{e}"),
        },
        Err(e) => writeln!(err, "{e}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Option<OutputFormat> {
        match s {
            "table" => Some(OutputFormat::Table),
            "csv" => Some(OutputFormat::Csv),
            "json" => Some(OutputFormat::Json),
            "ndjson" => Some(OutputFormat::Ndjson),
            _ => None,
        }
    }
}

/// Renders batches in the chosen format.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<Vec<u8>, QueryError> {
    let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
    let mut out: Vec<u8> = Vec::new();
    match format {
        OutputFormat::Table => {
            let s = datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(err)?;
            out.extend_from_slice(s.to_string().as_bytes());
            out.push(b'\n');
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                // Lists as partners write them: items separated by ';'.
                let cols: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| crate::schema::lists_as_text(c, ";"))
                    .collect();
                let fields: Vec<Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                    .collect();
                let flat =
                    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(err)?;
                w.write(&flat).map_err(err)?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
        }
        OutputFormat::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_allows_reads_only() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "DESCRIBE cases",
        ] {
            assert!(gate(ok).is_ok(), "{ok}: {:?}", gate(ok));
        }
        for bad in [
            "CREATE TABLE x (a INT)",
            "DROP TABLE cases",
            "INSERT INTO cases VALUES (1)",
            "DELETE FROM cases",
            "UPDATE cases SET age = 1",
            "COPY cases TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            "SELECT 1; DROP TABLE cases",
        ] {
            assert!(
                matches!(
                    gate(bad),
                    Err(QueryError::Refused(_)) | Err(QueryError::Sql(_))
                ),
                "{bad}: {:?}",
                gate(bad)
            );
        }
    }
}
