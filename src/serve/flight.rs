//! Arrow Flight SQL for analysts' own tools (DBeaver and Tableau through the Flight SQL JDBC
//! driver, Excel and Power BI through the ODBC driver, pandas and Polars through ADBC): the
//! same tokens, gate, limits and audit as `POST /api/v1/sql`, on the application core.
//!
//! Every call carries `authorization: Bearer <token>`, or first makes the Basic handshake that
//! JDBC and ODBC send (any user name, the token as password), which answers with the bearer
//! header. Analyst tokens only. Statements and prepared statements are planned through the
//! read-only gate when the client asks for their flight info, and run (with their audit
//! record) when it fetches the ticket; tickets and handles carry the statement itself, so the
//! server keeps no state between calls and a ticket is worth nothing without a token. Updates,
//! ingestion, transactions and Substrait plans are refused.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use base64::Engine;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::metadata::MetadataValue;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use super::Shared;
use super::net::{self, TlsFiles};
use super::sql::Turn;
use crate::access::{Denial, Role, TokenRecord};
use crate::app::analysis::AuditedAnswer;
use crate::app::{Actor, AppError, Door};
use crate::config::ServeConfig;
use crate::query::{CATALOG, QueryError, SCHEMA};

/// The Flight SQL service over the application core.
#[derive(Clone)]
pub struct FlightSql {
    st: Shared,
    info: Arc<SqlInfoData>,
    /// The connections not yet authorised (see [`net::accept_watched`]).
    logins: net::Logins,
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

impl FlightSql {
    pub fn new(st: Shared, logins: net::Logins) -> FlightSql {
        FlightSql {
            st,
            info: Arc::new(sql_info()),
            logins,
        }
    }

    /// The gRPC service to serve.
    pub fn service(self) -> FlightServiceServer<FlightSql> {
        FlightServiceServer::new(self)
    }

    /// The analyst behind the call's bearer token; a refusal is audited by the core.
    fn caller<T>(&self, req: &Request<T>, call: &str) -> Result<TokenRecord, Status> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let bearer = header
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let route = format!("flight-sql {call}");
        let rec = self
            .st
            .app
            .authorise(bearer, Role::Analyst, &route)
            .map_err(denied)?;
        self.logins.mark(req.remote_addr());
        Ok(rec)
    }

    /// Plans `sql` through the gate and answers with a flight info whose ticket is `ticket`.
    async fn info_for(
        &self,
        sql: &str,
        caller: &TokenRecord,
        ticket: Any,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let _slot = self.slot().await?;
        let app = &self.st.app;
        let session = app.session(None).await.map_err(status)?;
        let schema = app
            .describe_query(&session, sql, Actor::Token(caller, Door::Flight))
            .await
            .map_err(status)?;
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&wire_schema(schema))
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// A turn among `serve.max_concurrent_queries`: planning (flight infos, prepared
    /// statements, the table listing) takes one as running does, so no call opens sessions
    /// and plans beyond the bound.
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.st
            .queries
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))
    }

    /// Runs `sql` within the server's concurrent-query bound and streams its answer.
    async fn answer(&self, sql: &str, caller: &TokenRecord) -> Result<DoGetStream, Status> {
        let permit = self.slot().await?;
        let app = &self.st.app;
        let session = app.session(None).await.map_err(status)?;
        let answer = app
            .query_stream(&session, sql, Actor::Token(caller, Door::Flight))
            .await
            .map_err(status)?;
        let limit = Duration::from_secs(app.config.query.timeout_seconds.max(1));
        Ok(flight_stream(answer, Turn::new(permit, limit)))
    }

    /// A metadata answer (catalogues, tables, SQL info) as one batch.
    fn batch_stream(
        schema: arrow::datatypes::SchemaRef,
        batch: Result<arrow::record_batch::RecordBatch, FlightError>,
    ) -> Response<DoGetStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { batch }))
            .map_err(Status::from);
        Response::new(Box::pin(stream))
    }
}

/// The columns as Flight SQL sends them: the encoder sends a dictionary (the lake's partition
/// columns, nested ones too) as its values, so flight infos, prepared statements and the
/// table listing announce what the answer will carry.
fn wire_schema(schema: arrow::datatypes::SchemaRef) -> arrow::datatypes::SchemaRef {
    FlightDataEncoderBuilder::new()
        .with_schema(schema.clone())
        .build(futures::stream::empty())
        .known_schema()
        .unwrap_or(schema)
}

/// The answer's batches as Flight data; an error or a limit ends the stream with its status.
/// The query's turn ends with the stream (or at its time limit).
fn flight_stream(answer: AuditedAnswer, turn: Turn) -> DoGetStream {
    let schema = answer.schema();
    let batches = futures::stream::unfold(Some((answer, turn)), |state| async move {
        let (mut answer, turn) = state?;
        match answer.next().await {
            Some(Ok(b)) => Some((Ok(b), Some((answer, turn)))),
            Some(Err(e)) => Some((Err(FlightError::Tonic(Box::new(status(e)))), None)),
            None => None,
        }
    });
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .map_err(Status::from);
    Box::pin(stream)
}

/// A core error as a gRPC status. Query errors are the analyst's own (they never hold an
/// identifier: the lake holds none); anything else is reported without its detail.
fn status(e: AppError) -> Status {
    match &e {
        AppError::Query(QueryError::Refused(_)) => Status::permission_denied(e.to_string()),
        AppError::Query(QueryError::Limit(_)) => Status::resource_exhausted(e.to_string()),
        AppError::Query(QueryError::Sql(_)) => Status::invalid_argument(e.to_string()),
        _ => {
            eprintln!("tip serve (Flight SQL): {e}");
            Status::internal("the server could not answer; see its log")
        }
    }
}

fn denied(d: Denial) -> Status {
    match d {
        Denial::NoToken | Denial::UnknownToken => Status::unauthenticated(
            "a valid analyst token is required (bearer, or the token as password)",
        ),
        Denial::WrongRole { needs, .. } => {
            Status::permission_denied(format!("this needs an {} token", needs.as_str()))
        }
        Denial::Store(e) => {
            eprintln!("tip serve (Flight SQL): {e}");
            Status::internal("the token store cannot be read")
        }
    }
}

/// The statement a ticket or handle carries.
fn utf8(bytes: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(bytes).map_err(|_| Status::invalid_argument("not a tip statement handle"))
}

/// What `GetSqlInfo` tells JDBC, ODBC and ADBC drivers about this server.
fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "tip");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlQuotedIdentifierCase, 3i64);
    b.append(SqlInfo::SqlIdentifierCase, 2i64);
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlMaxConnections, 0i64);
    b.build().expect("a fixed set of SQL info")
}

/// Answers the Basic handshake JDBC and ODBC make: the password is the token; the answer
/// carries it back as the bearer header the driver sends from then on.
fn handshake_token(req: &Request<Streaming<HandshakeRequest>>) -> Option<String> {
    let header = req.metadata().get("authorization")?.to_str().ok()?;
    if let Some(b) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
    {
        return Some(b.trim().to_string());
    }
    let basic = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    // Go's Flight client (under the ADBC and ODBC drivers) sends it unpadded.
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(basic.trim().trim_end_matches('='))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.to_string())
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let token = handshake_token(&request);
        self.st
            .app
            .authorise(token.as_deref(), Role::Analyst, "flight-sql handshake")
            .map_err(denied)?;
        self.logins.mark(request.remote_addr());
        let token = token.unwrap_or_default();
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let stream: Pin<Box<dyn Stream<Item = _> + Send>> =
            Box::pin(futures::stream::iter([Ok(answer)]));
        let mut response = Response::new(stream);
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::invalid_argument("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, "statement")?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into_bytes().into(),
        };
        self.info_for(&query.query, &caller, ticket.as_any(), request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request, "statement")?;
        let sql = utf8(&ticket.statement_handle)?;
        Ok(Response::new(self.answer(sql, &caller).await?))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request, "prepare")?;
        let _slot = self.slot().await?;
        let app = &self.st.app;
        let session = app.session(None).await.map_err(status)?;
        let schema = app
            .describe_query(&session, &query.query, Actor::Token(&caller, Door::Flight))
            .await
            .map_err(status)?;
        let schema = wire_schema(schema);
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let IpcMessage(parameter_schema) =
            SchemaAsIpc::new(&Schema::empty(), &IpcWriteOptions::default())
                .try_into()
                .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request, "prepared statement")?;
        let sql = utf8(&cmd.prepared_statement_handle)?.to_string();
        self.info_for(&sql, &caller, cmd.as_any(), request.into_inner())
            .await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let caller = self.caller(&request, "prepared statement")?;
        let sql = utf8(&cmd.prepared_statement_handle)?;
        Ok(Response::new(self.answer(sql, &caller).await?))
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.caller(&request, "bind parameters")?;
        Err(Status::invalid_argument(
            "tip's prepared statements take no parameters: write the values into the statement",
        ))
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        // Handles carry their statement: there is nothing to free.
        self.caller(&request, "close prepared statement")?;
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request, "update")?;
        Err(status(self.st.app.refuse_change(
            &cmd.query,
            Actor::Token(&caller, Door::Flight),
        )))
    }

    async fn do_put_prepared_statement_update(
        &self,
        cmd: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request, "update")?;
        let sql = String::from_utf8_lossy(&cmd.prepared_statement_handle).to_string();
        Err(status(
            self.st
                .app
                .refuse_change(&sql, Actor::Token(&caller, Door::Flight)),
        ))
    }

    async fn do_put_statement_ingest(
        &self,
        cmd: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request, "ingest")?;
        let what = format!("INGEST INTO {}", cmd.table);
        Err(status(
            self.st
                .app
                .refuse_change(&what, Actor::Token(&caller, Door::Flight)),
        ))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, "catalogs")?;
        let schema = query.into_builder().schema();
        metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request, "catalogs")?;
        let mut b = query.into_builder();
        b.append(CATALOG);
        Ok(Self::batch_stream(b.schema(), b.build()))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, "schemas")?;
        let schema = query.clone().into_builder().schema();
        metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request, "schemas")?;
        let mut b = query.into_builder();
        b.append(CATALOG, SCHEMA);
        Ok(Self::batch_stream(b.schema(), b.build()))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, "tables")?;
        let schema = query.clone().into_builder().schema();
        metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request, "tables")?;
        let _slot = self.slot().await?;
        let app = &self.st.app;
        let session = app.session(None).await.map_err(status)?;
        let relations = session
            .relations()
            .await
            .map_err(|e| status(AppError::Query(e)))?;
        let mut b = query.into_builder();
        for r in relations {
            let kind = if r.view { "VIEW" } else { "TABLE" };
            b.append(CATALOG, SCHEMA, &r.name, kind, &wire_schema(r.schema))
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(Self::batch_stream(b.schema(), b.build()))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, "table types")?;
        let schema = query.into_builder().schema();
        metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request, "table types")?;
        let mut b = query.into_builder();
        b.append("TABLE");
        b.append("VIEW");
        Ok(Self::batch_stream(b.schema(), b.build()))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request, "sql info")?;
        let schema = query.clone().into_builder(&self.info).schema();
        metadata_info(&schema, query.as_any(), request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request, "sql info")?;
        let b = query.into_builder(&self.info);
        Ok(Self::batch_stream(b.schema(), b.build()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The flight info of a metadata call: its schema, and the command itself as the ticket.
fn metadata_info(
    schema: &Schema,
    ticket: Any,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket.encode_to_vec())))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// The gRPC server, with TLS when configured; a certificate or key that does not load stops
/// `tip serve` at start (it never falls back to plain text). A connection has
/// `serve.request_timeout_seconds` to finish its TLS handshake and each call to start its
/// answer, at most 16 calls at once, and keep-alive pings that end dead connections, so
/// connections that never send anything cannot hold the `serve.max_connections` places.
pub fn server(cfg: &ServeConfig, tls: Option<&TlsFiles>) -> std::io::Result<Server> {
    let limit = Duration::from_secs(cfg.request_timeout_seconds.clamp(1, 60));
    let server = Server::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(cfg.request_timeout_seconds.max(1)))
        .max_concurrent_streams(16)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    match tls {
        None => Ok(server),
        Some(f) => {
            // The S3 client's dependencies build both of rustls's providers, so it picks
            // none by itself: aws-lc-rs, as the S3 client uses. (Already installed: fine.)
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let identity = Identity::from_pem(&f.cert, &f.key);
            server
                .tls_config(ServerTlsConfig::new().identity(identity).timeout(limit))
                .map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("serve.tls_cert / serve.tls_key: {e}"),
                    )
                })
        }
    }
}

/// Serves Flight SQL on `listener` until the process stops, `places` connections at once.
pub async fn run(
    st: Shared,
    mut server: Server,
    listener: TcpListener,
    places: Arc<Semaphore>,
) -> std::io::Result<()> {
    let logins = net::Logins::default();
    let within = Duration::from_secs(st.app.config.serve.login_timeout_seconds.max(1));
    let state = (listener, places, logins.clone());
    let incoming = futures::stream::unfold(state, move |(l, p, w)| async move {
        let c = net::accept_watched(&l, &p, "Flight SQL", &w, within).await;
        Some((Ok::<_, std::io::Error>(c), (l, p, w)))
    });
    server
        .add_service(FlightSql::new(st, logins).service())
        .serve_with_incoming(incoming)
        .await
        .map_err(std::io::Error::other)
}
