//! Statements: the simple protocol (one message, any number of statements, run in order until
//! one fails) and the extended one (Parse plans through the gate, Bind decodes parameters,
//! Execute runs with its audit record, in the portal's row batches). Answers stream from the
//! engine as Postgres rows, text or binary as the client asks.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use futures::{Sink, Stream, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::{Bind, Close, Parse};
use pgwire::types::format::FormatOptions;

use super::{Shared, caller, core_error, pg_error};
use crate::access::TokenRecord;
use crate::app::analysis::AuditedAnswer;
use crate::app::{Actor, Door};
use crate::query::pg::{self, Described, Params, PgStatement};
use crate::query::{Limits, QueryError};
use crate::serve::sql::Turn;

/// A statement of the extended protocol, as Parse left it.
#[derive(Clone)]
pub struct Prepared {
    statement: PgStatement,
    /// A query's columns and parameter types, planned through the gate at Parse.
    described: Option<Arc<Described>>,
}

pub struct Queries {
    st: Shared,
    parser: Arc<Parser>,
}

pub struct Parser {
    st: Shared,
}

impl Queries {
    pub fn new(st: Shared) -> Queries {
        Queries {
            parser: Arc::new(Parser { st: st.clone() }),
            st,
        }
    }
}

/// A turn among `serve.max_concurrent_queries`, ended with the answer or at the time limit.
async fn turn(st: &Shared) -> PgWireResult<Arc<Turn>> {
    let permit = st
        .queries
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| pg_error("FATAL", "57P01", "the server is shutting down"))?;
    let limit = Duration::from_secs(st.app.config.query.timeout_seconds.max(1));
    Ok(Arc::new(Turn::new(permit, limit)))
}

fn limits(st: &Shared) -> Limits {
    Limits::from(&st.app.config.query)
}

/// What one statement answers. Only queries reach the engine, through the gate; the session
/// statements change nothing.
async fn respond(
    st: &Shared,
    statement: &PgStatement,
    rec: &TokenRecord,
    params: Option<Params>,
    out: Output<'_>,
) -> PgWireResult<Response> {
    let actor = Actor::Token(rec, Door::Postgres);
    Ok(match statement {
        PgStatement::Set => Response::Execution(Tag::new("SET")),
        PgStatement::SetEngine(sql) => {
            let why = "the engine's options are the hub's configuration: SET cannot change them";
            return Err(core_error(st.app.refuse(sql, actor, why)));
        }
        PgStatement::Copy(sql) => {
            let why = "COPY is refused: the lake is read-only, and answers leave by queries";
            return Err(core_error(st.app.refuse(sql, actor, why)));
        }
        PgStatement::Show(name) => show(name, out.format)?,
        PgStatement::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        PgStatement::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        PgStatement::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        // What they free was freed by the caller (`prepared::forget`), which holds the
        // connection.
        PgStatement::Discard { .. } => Response::Execution(Tag::new("DISCARD ALL")),
        PgStatement::Deallocate(None) => Response::Execution(Tag::new("DEALLOCATE ALL")),
        PgStatement::Deallocate(Some(_)) => Response::Execution(Tag::new("DEALLOCATE")),
        PgStatement::Query(sql) => {
            let turn = match out.turn {
                Some(t) => t,
                None => turn(st).await?,
            };
            let session = st.app.pg_session().await.map_err(core_error)?;
            let answer = st
                .app
                .query_stream_with(&session, sql, params, actor)
                .await
                .map_err(core_error)?;
            let plain = Arc::new(plain_schema(&answer.schema()));
            let fields = fields(&plain, out.format, out.options)?;
            let rows = rows(answer, plain, fields.clone(), turn);
            Response::Query(QueryResponse::new(fields, rows))
        }
    })
}

/// How an answer goes back: the columns' format, the client's date style, and the turn of the
/// message it is part of (none: a query takes its own).
struct Output<'a> {
    format: &'a Format,
    options: Arc<FormatOptions>,
    turn: Option<Arc<Turn>>,
}

fn fields(
    schema: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<Arc<Vec<FieldInfo>>> {
    let fields = arrow_pg::datatypes::arrow_schema_to_pg_fields(schema, format, Some(options))
        .map_err(|_| {
            pg_error(
                "ERROR",
                "0A000",
                "a column type Postgres clients cannot read",
            )
        })?;
    Ok(Arc::new(fields))
}

/// The answer's batches as rows, a batch at a time; an error or a limit ends the rows with
/// its error, and so does a revocation of the token (the core checks it before each batch).
/// The turn ends with the rows (or at the time limit).
fn rows(
    answer: AuditedAnswer,
    plain: SchemaRef,
    fields: Arc<Vec<FieldInfo>>,
    turn: Arc<Turn>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    futures::stream::unfold(Some((answer, turn)), move |state| {
        let (fields, plain) = (fields.clone(), plain.clone());
        async move {
            let (mut answer, turn) = state?;
            match answer.next().await {
                Some(Ok(b)) => {
                    let rows: Vec<PgWireResult<DataRow>> = match unpack(b, &plain) {
                        // An encoder's error may hold the column's values: never passed on.
                        Ok(b) => arrow_pg::datatypes::encode_recordbatch(fields, b)
                            .map(|r| r.map_err(|_| encode_error()))
                            .collect(),
                        Err(e) => vec![Err(e)],
                    };
                    Some((futures::stream::iter(rows), Some((answer, turn))))
                }
                Some(Err(e)) => Some((futures::stream::iter(vec![Err(core_error(e))]), None)),
                None => None,
            }
        }
    })
    .flatten()
}

fn encode_error() -> PgWireError {
    pg_error(
        "ERROR",
        "XX000",
        "a value could not be encoded for Postgres",
    )
}

/// The most queries one simple-protocol message may hold: all but the last are read whole
/// (within one answer limit for all of them) before the next starts, so a message runs one
/// query at a time.
const MAX_QUERIES_PER_MESSAGE: usize = 16;

/// A query's whole answer, read within its turn, for a message with more statements to come;
/// the rows held count against `budget` (`query.max_result_mib` for the whole message).
async fn drained(r: Response, budget: &mut usize) -> PgWireResult<Response> {
    let Response::Query(mut q) = r else {
        return Ok(r);
    };
    let mut rows = Vec::new();
    while let Some(row) = q.data_rows.next().await {
        let row = row?;
        match budget.checked_sub(row.data.len() + 8) {
            Some(left) => *budget = left,
            None => {
                return Err(pg_error(
                    "ERROR",
                    "54000",
                    "the answers of a message's queries before its last are held until it ends, \
                     and together they are over the answer limit (query.max_result_mib): send \
                     the queries apart",
                ));
            }
        }
        rows.push(Ok(row));
    }
    Ok(Response::Query(QueryResponse::new(
        q.row_schema.clone(),
        futures::stream::iter(rows),
    )))
}

/// A type as Postgres clients read it: dictionaries (the lake's partition columns, inside
/// lists too) as their values.
fn plain_type(t: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef {
        Arc::new(Field::new(
            f.name(),
            plain_type(f.data_type()),
            f.is_nullable(),
        ))
    };
    match t {
        DataType::Dictionary(_, v) => plain_type(v),
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::Struct(fs) => DataType::Struct(fs.iter().map(field).collect()),
        other => other.clone(),
    }
}

fn plain_schema(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), plain_type(f.data_type()), f.is_nullable()))
            .collect::<Vec<_>>(),
    )
}

/// A batch in the plain types of `plain`.
fn unpack(b: RecordBatch, plain: &SchemaRef) -> PgWireResult<RecordBatch> {
    if b.schema().fields() == plain.fields() {
        return Ok(b);
    }
    let bad = |_| {
        pg_error(
            "ERROR",
            "XX000",
            "a column could not be converted for Postgres",
        )
    };
    let columns = b
        .columns()
        .iter()
        .zip(plain.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    RecordBatch::try_new(plain.clone(), columns).map_err(bad)
}

/// `SHOW name`: one row, one text column named as the setting.
fn show(name: &str, format: &Format) -> PgWireResult<Response> {
    let value = pg::setting(name).ok_or_else(|| {
        pg_error(
            "ERROR",
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        )
    })?;
    let fields = Arc::new(show_fields(name, format));
    let mut enc = DataRowEncoder::new(fields.clone());
    enc.encode_field(&value)?;
    let row = enc.take_row();
    Ok(Response::Query(QueryResponse::new(
        fields,
        futures::stream::iter(vec![Ok(row)]),
    )))
}

fn show_fields(name: &str, format: &Format) -> Vec<FieldInfo> {
    let column = name.trim().to_ascii_lowercase().replace(' ', "_");
    vec![FieldInfo::new(
        column,
        None,
        None,
        Type::TEXT,
        format.format_for(0),
    )]
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let rec = caller(&self.st, client)?;
        let actor = Actor::Token(&rec, Door::Postgres);
        let app = &self.st.app;
        let statements = pg::statements(query, &limits(&self.st))
            .map_err(|e| core_error(app.refused_before_gate(query, actor, e)))?;
        if statements.is_empty() {
            // A comment alone (pgx's `-- ping`): as Postgres answers it.
            return Ok(vec![Response::EmptyQuery]);
        }
        let queries = statements
            .iter()
            .filter(|s| matches!(s, PgStatement::Query(_)))
            .count();
        if queries > MAX_QUERIES_PER_MESSAGE {
            let e = QueryError::Limit(format!(
                "at most {MAX_QUERIES_PER_MESSAGE} queries in one message: send them apart"
            ));
            return Err(core_error(app.refused_before_gate(query, actor, e)));
        }
        // Each query takes a turn of its own, one after the other: the answers before the last
        // are read whole within their turn (and within one answer limit for all of them), so
        // the message never runs two queries at once nor outside the bound.
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let mut budget = limits(&self.st).max_result_bytes;
        let mut out = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            let turn = match s {
                PgStatement::Query(_) => Some(turn(&self.st).await?),
                _ => None,
            };
            let output = Output {
                format: &Format::UnifiedText,
                options: options.clone(),
                turn,
            };
            let last = i + 1 == statements.len();
            if let Err(PgWireError::UserError(info)) = super::prepared::forget(client, s) {
                out.push(Response::Error(info));
                break;
            }
            let answered = match respond(&self.st, s, &rec, None, output).await {
                Ok(r) if !last => drained(r, &mut budget).await,
                other => other,
            };
            match answered {
                Ok(r) => out.push(r),
                Err(PgWireError::UserError(info)) => {
                    out.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let rec = caller(&self.st, client)?;
        let actor = Actor::Token(&rec, Door::Postgres);
        let mut statements = pg::statements(sql, &limits(&self.st))
            .map_err(|e| core_error(self.st.app.refused_before_gate(sql, actor, e)))?;
        if statements.len() > 1 {
            return Err(pg_error(
                "ERROR",
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let described = match &statement {
            PgStatement::Query(q) => {
                let _turn = turn(&self.st).await?;
                let app = &self.st.app;
                let session = app.pg_session().await.map_err(core_error)?;
                let d = app
                    .describe_statement(&session, q, Actor::Token(&rec, Door::Postgres))
                    .await
                    .map_err(core_error)?;
                Some(Arc::new(d))
            }
            _ => None,
        };
        Ok(Some(Prepared {
            statement,
            described,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt
            .described
            .iter()
            .flat_map(|d| d.params.iter())
            .map(|t| {
                t.as_ref()
                    .and_then(|t| arrow_pg::datatypes::into_pg_type(t).ok())
                    .unwrap_or(Type::UNKNOWN)
            })
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        match (&stmt.statement, &stmt.described) {
            (PgStatement::Show(name), _) => Ok(show_fields(name, format)),
            (_, Some(d)) => {
                let options = Arc::new(FormatOptions::default());
                Ok(fields(&plain_schema(&d.schema), format, options)?
                    .as_ref()
                    .clone())
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::prepared::parse(client, message, self.parser.clone()).await
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::prepared::bind(client, message).await
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        super::prepared::close(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let rec = caller(&self.st, client)?;
        let prepared = &portal.statement.statement;
        let params = match &prepared.described {
            Some(d) => {
                Some(pg::decode_params(portal, &d.params).map_err(|e| core_error(e.into()))?)
            }
            None => None,
        };
        super::prepared::forget(client, &prepared.statement)?;
        let output = Output {
            format: &portal.result_column_format,
            options: Arc::new(FormatOptions::from_client_metadata(client.metadata())),
            turn: None,
        };
        respond(&self.st, &prepared.statement, &rec, params, output).await
    }
}
