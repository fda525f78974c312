//! The Postgres dialect of analyst sessions, for `tip serve --postgres`: the statements
//! clients send (rewritten from Postgres's SQL into DataFusion's by datafusion-pg-catalog's
//! parser, or recognised as session statements that change nothing), `pg_catalog` and the
//! Postgres functions tools browse with, the settings `SHOW` and `current_setting` answer,
//! and the parameters of the extended protocol. Every query still goes through the gate and
//! the plan check of [`Session::stream`]: nothing here runs SQL.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::CatalogProviderList;
use datafusion::common::ParamValues;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use super::{CATALOG, Limits, QueryError, Session, answer, gate, plan_read_only};

/// Built once: it tokenises its table of rewrites when made.
static PARSER: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// One statement of what a Postgres client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum PgStatement {
    /// A query, as DataFusion is to read it; it goes through the gate like any other.
    Query(String),
    /// `SET` of a client setting (date style, time zone, application name, ...): accepted and
    /// changes nothing — no setting reaches the engine.
    Set,
    /// `SET` of one of the engine's own options (`datafusion.*`), with its text: refused, so
    /// no session can raise its memory or time limits.
    SetEngine(String),
    /// `COPY`, with its text: refused (to or from a file or the client alike) — answers
    /// leave by queries, within the limits.
    Copy(String),
    /// `SHOW name`.
    Show(String),
    Begin,
    Commit,
    Rollback,
    /// `DISCARD ALL` or `DISCARD PLANS`: the connection's prepared statements and portals are
    /// freed (`DISCARD` of sequences or temporary tables frees nothing: there are none).
    Discard {
        all: bool,
    },
    /// `DEALLOCATE name` (Some) or `DEALLOCATE ALL` (None): the connection frees them.
    Deallocate(Option<String>),
}

/// The settings `SHOW` and `current_setting()` answer, as a Postgres 16 server with tip's
/// fixed choices: UTF-8, ISO dates, UTC, read-only transactions, the lake's schema first.
pub const SETTINGS: &[(&str, &str)] = &[
    ("server_version", "16.0"),
    ("server_version_num", "160000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("standard_conforming_strings", "on"),
    ("integer_datetimes", "on"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("search_path", "lake, public"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
    ("block_size", "8192"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("lc_messages", "C.UTF-8"),
    ("extra_float_digits", "3"),
    ("is_superuser", "off"),
    ("statement_timeout", "0"),
    ("bytea_output", "hex"),
];

/// The value of a setting by its name (any case; `transaction isolation level` too).
pub fn setting(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase().replace(' ', "_");
    let name = match name.as_str() {
        "transaction_isolation_level" => "transaction_isolation",
        "time_zone" => "timezone",
        other => other,
    };
    SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The statements of `sql`, each classified; a query comes back rewritten for DataFusion.
/// What the Postgres parser cannot read goes on as it came, for the gate to judge (and
/// audit). Statements too long or too deep for the parser are refused first.
pub fn statements(sql: &str, limits: &Limits) -> Result<Vec<PgStatement>, QueryError> {
    gate::check_size(sql, limits)?;
    let Ok(parsed) = PARSER.parse(sql) else {
        return Ok(vec![PgStatement::Query(sql.to_string())]);
    };
    Ok(parsed.into_iter().map(classify).collect())
}

fn classify(s: Statement) -> PgStatement {
    match &s {
        Statement::Set(set) => {
            if set.to_string().to_ascii_lowercase().contains("datafusion") {
                PgStatement::SetEngine(s.to_string())
            } else {
                PgStatement::Set
            }
        }
        Statement::ShowVariable { variable } => PgStatement::Show(
            variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Statement::Copy { .. } => PgStatement::Copy(s.to_string()),
        Statement::StartTransaction { .. } => PgStatement::Begin,
        Statement::Commit { .. } => PgStatement::Commit,
        Statement::Rollback {
            savepoint: None, ..
        } => PgStatement::Rollback,
        Statement::Discard { object_type } => PgStatement::Discard {
            all: matches!(
                object_type,
                datafusion::sql::sqlparser::ast::DiscardObject::ALL
                    | datafusion::sql::sqlparser::ast::DiscardObject::PLANS
            ),
        },
        Statement::Deallocate { name, .. } => match name.value.eq_ignore_ascii_case("all") {
            true => PgStatement::Deallocate(None),
            false => PgStatement::Deallocate(Some(name.value.clone())),
        },
        _ => PgStatement::Query(s.to_string()),
    }
}

/// The parameters of an extended-protocol statement, decoded for the plan.
pub struct Params(ParamValues);

/// A statement planned for the extended protocol: its answer's columns and the types of its
/// parameters (`$1`, `$2`, ...), as far as the planner can tell them.
pub struct Described {
    pub schema: SchemaRef,
    pub params: Vec<Option<DataType>>,
}

/// Decodes the parameters a client bound (text or binary, by the types it declared or the
/// planner inferred). A value that does not decode is reported without the value.
pub fn decode_params<S: Clone>(
    portal: &pgwire::api::portal::Portal<S>,
    types: &[Option<DataType>],
) -> Result<Params, QueryError> {
    let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
    arrow_pg::datatypes::df::deserialize_parameters(portal, &refs)
        .map(Params)
        .map_err(|_| {
            QueryError::Sql(
                "a parameter could not be read as the type of its place in the statement".into(),
            )
        })
}

impl Session {
    /// Makes this session answer Postgres clients: `pg_catalog` (tables, columns, types,
    /// namespaces of the lake's own relations), the Postgres functions catalogue queries call,
    /// `current_setting()`, and Postgres's SQL dialect.
    pub async fn speak_postgres(&self) -> Result<(), QueryError> {
        let err = |e: &dyn std::fmt::Display| QueryError::Sql(format!("pg_catalog: {e}"));
        datafusion_pg_catalog::setup_pg_catalog(&self.ctx, CATALOG, EmptyContextProvider)
            .map_err(|e| err(&e))?;
        // The same catalogue over the relations in name order: its OIDs are handed out in the
        // order it walks them, and every statement has a session of its own, so an OID one
        // statement read (psql's `\d`, DBeaver's columns by table OID) must be the OID the next
        // one is given. It holds the session's catalogue list weakly: the list holds it, and a
        // strong handle both ways kept every statement's session alive for good (5 MiB each).
        let sorted = Sorted(Arc::downgrade(self.ctx.state().catalog_list()));
        let static_tables = Arc::new(PgCatalogStaticTables::try_new().map_err(|e| err(&e))?);
        let provider =
            PgCatalogSchemaProvider::try_new(sorted, static_tables, EmptyContextProvider)
                .map_err(|e| err(&e))?;
        self.ctx
            .catalog(CATALOG)
            .ok_or_else(|| err(&"no catalogue"))?
            .register_schema("pg_catalog", Arc::new(provider))
            .map_err(|e| err(&e))?;
        // ... and in the order pg_class walks them, catalogue by schema by table, whichever
        // catalogue table the statement reads first (pg_attribute alone would number only the
        // tables).
        self.ctx
            .sql("SELECT count(*) FROM pg_catalog.pg_class")
            .await
            .map_err(|e| err(&e))?
            .collect()
            .await
            .map_err(|e| err(&e))?;
        self.ctx.register_udf(current_setting());
        self.ctx.register_udf(version());
        self.ctx.register_udf(current_schema());
        self.ctx
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .sql_parser
            .dialect = datafusion::config::Dialect::PostgreSQL;
        Ok(())
    }

    /// The columns and parameter types of a statement, through the gate and the plan check,
    /// without running it (the extended protocol's Parse and Describe; Flight SQL's flight
    /// info and prepared statements through [`Session::describe`]).
    pub async fn describe_statement(&self, sql: &str) -> Result<Described, QueryError> {
        gate::check_size(sql, &self.limits)?;
        gate(sql)?;
        let work = plan_read_only(self.ctx.clone(), sql.to_string(), None);
        let df = match tokio::time::timeout(self.limits.timeout, work).await {
            Ok(Ok(df)) => df,
            Ok(Err(stop)) => return Err(answer::classify(stop, &self.limits)),
            Err(_) => {
                return Err(QueryError::Limit(format!(
                    "planning took longer than {} s (query.timeout_seconds)",
                    self.limits.timeout.as_secs()
                )));
            }
        };
        let types: HashMap<String, Option<DataType>> = df
            .logical_plan()
            .get_parameter_types()
            .map_err(|e| QueryError::Sql(e.to_string()))?;
        let count = types
            .keys()
            .filter_map(|k| k.strip_prefix('$')?.parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        let params = (1..=count)
            .map(|i| types.get(&format!("${i}")).cloned().flatten())
            .collect();
        Ok(Described {
            schema: Arc::new(df.schema().as_arrow().clone()),
            params,
        })
    }

    /// [`Session::stream`] with the parameters of an extended-protocol statement bound.
    pub async fn stream_with(
        &self,
        sql: &str,
        params: Params,
    ) -> Result<super::Answer, QueryError> {
        self.start(sql, Some(params.0)).await
    }
}

/// The session's catalogues, schemas and tables in name order, for `pg_catalog`: a weak
/// handle on the session's catalogue list, which a statement's answer keeps alive while it
/// runs (see `answer::pump`).
#[derive(Debug, Clone)]
struct Sorted(Weak<dyn CatalogProviderList>);

impl Sorted {
    fn list(&self) -> datafusion::error::Result<Arc<dyn CatalogProviderList>> {
        self.0.upgrade().ok_or_else(|| {
            datafusion::error::DataFusionError::Execution(
                "pg_catalog: the statement's session has ended".into(),
            )
        })
    }
}

fn sorted(names: Option<Vec<String>>) -> Option<Vec<String>> {
    names.map(|mut n| {
        n.sort();
        n
    })
}

#[async_trait::async_trait]
impl CatalogInfo for Sorted {
    async fn catalog_names(&self) -> datafusion::error::Result<Vec<String>> {
        let mut names = self.list()?.catalog_names().await?;
        names.sort();
        Ok(names)
    }

    async fn schema_names(&self, catalog: &str) -> datafusion::error::Result<Option<Vec<String>>> {
        Ok(sorted(self.list()?.schema_names(catalog).await?))
    }

    async fn table_names(
        &self,
        catalog: &str,
        schema: &str,
    ) -> datafusion::error::Result<Option<Vec<String>>> {
        Ok(sorted(self.list()?.table_names(catalog, schema).await?))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<SchemaRef>> {
        self.list()?.table_schema(catalog, schema, table).await
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> datafusion::error::Result<Option<datafusion::datasource::TableType>> {
        self.list()?.table_type(catalog, schema, table).await
    }
}

/// `version()`: what a Postgres server says of itself (clients read the first words), and what
/// answers in truth.
fn version() -> datafusion::logical_expr::ScalarUDF {
    let text = format!(
        "PostgreSQL {} on tip {} (Apache DataFusion {})",
        setting("server_version").unwrap_or_default(),
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::Utf8(Some(text.clone())),
            ))
        }),
    )
}

/// `current_schema()`: the lake's schema, where every table and view is.
fn current_schema() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "current_schema",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(
                datafusion::scalar::ScalarValue::Utf8(Some(super::SCHEMA.to_string())),
            ))
        }),
    )
}

/// `current_setting(name)`: the value of a setting of [`SETTINGS`], NULL for another name.
fn current_setting() -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::common::cast::as_string_array(&arrays[0])?;
            let values: StringArray = names.iter().map(|n| n.and_then(setting)).collect();
            let out: ArrayRef = Arc::new(values);
            Ok(ColumnarValue::Array(out))
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> PgStatement {
        let mut v: Vec<PgStatement> = PARSER
            .parse(sql)
            .unwrap()
            .into_iter()
            .map(classify)
            .collect();
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0)
    }

    #[test]
    fn session_statements_are_recognised_and_engine_options_refused() {
        assert_eq!(one("SET extra_float_digits = 3"), PgStatement::Set);
        assert_eq!(one("SET application_name = 'Metabase'"), PgStatement::Set);
        assert_eq!(one("SET TIME ZONE 'UTC'"), PgStatement::Set);
        assert_eq!(
            one("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            PgStatement::Set
        );
        assert_eq!(
            one("SET datafusion.execution.memory_pool_size = '100GB'"),
            PgStatement::SetEngine("SET datafusion.execution.memory_pool_size = '100GB'".into())
        );
        assert_eq!(
            one("SHOW search_path"),
            PgStatement::Show("search_path".into())
        );
        assert_eq!(
            one("SHOW TRANSACTION ISOLATION LEVEL"),
            PgStatement::Show("TRANSACTION ISOLATION LEVEL".into())
        );
        assert_eq!(
            setting("TRANSACTION ISOLATION LEVEL"),
            Some("read committed")
        );
        assert_eq!(setting("DateStyle"), Some("ISO, MDY"));
        assert_eq!(setting("shared_preload_libraries"), None);
        assert_eq!(one("BEGIN"), PgStatement::Begin);
        assert_eq!(one("START TRANSACTION READ ONLY"), PgStatement::Begin);
        assert_eq!(one("COMMIT"), PgStatement::Commit);
        assert_eq!(one("ROLLBACK"), PgStatement::Rollback);
        assert_eq!(one("DISCARD ALL"), PgStatement::Discard { all: true });
        assert_eq!(one("DISCARD TEMP"), PgStatement::Discard { all: false });
        assert_eq!(one("DEALLOCATE ALL"), PgStatement::Deallocate(None));
        assert_eq!(
            one("DEALLOCATE PREPARE _pg3_1"),
            PgStatement::Deallocate(Some("_pg3_1".into()))
        );
        assert!(matches!(one("SELECT 1"), PgStatement::Query(_)));
        // Everything else is a query for the gate to judge, DDL included.
        assert!(matches!(
            one("COPY cases TO '/tmp/x'"),
            PgStatement::Copy(_)
        ));
        assert!(matches!(
            one("COPY (SELECT 1) TO STDOUT"),
            PgStatement::Copy(_)
        ));
        assert!(matches!(one("DROP TABLE cases"), PgStatement::Query(_)));
    }
}
