//! The Postgres wire protocol for analysts' own tools (psql, Metabase, Grafana, DBeaver's
//! Postgres driver, psycopg): the same tokens, gate, limits and audit as `POST /api/v1/sql`,
//! on the application core.
//!
//! A client logs in with SCRAM-SHA-256: the user is a token id (or `analyst`, for any analyst
//! token), the password the token; tip keeps only each token's SCRAM verifier, which checks a
//! proof and cannot make one. Analyst tokens only, re-checked at every statement so that a
//! revocation ends what an open connection can do. Queries (simple and extended protocol,
//! with parameters) run through the read-only gate and the plan check; `SET`, `SHOW`,
//! `BEGIN`/`COMMIT`/`ROLLBACK`, `DISCARD` and `DEALLOCATE` are answered here and change
//! nothing (a `SET` of the engine's own options is refused); `COPY` and everything else that
//! is not a read is refused by the gate. TLS is required off loopback.

mod frames;
mod login;
mod prepared;
mod queries;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use pgwire::api::auth::{ServerParameterProvider, StartupHandler};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Shared;
use super::net::{self, TlsFiles};
use crate::access::TokenRecord;
use crate::app::AppError;
use crate::query::QueryError;
use crate::query::pg::setting;

/// The handlers of one connection: its login, and the query handlers every connection shares.
pub struct Postgres {
    st: Shared,
    queries: Arc<queries::Queries>,
    /// With TLS, every connection must be TLS: pgwire would otherwise answer a client that
    /// does not ask for it in plain text.
    tls: bool,
    /// How the connection's login stands (see [`login::PENDING`]).
    login: Arc<AtomicU8>,
}

impl PgWireServerHandlers for Postgres {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    /// Called once per connection: the SCRAM exchange keeps its state in the handler.
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(login::Login::new(
            self.st.clone(),
            self.tls,
            self.login.clone(),
        ))
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Quiet)
    }
}

/// Errors go to the client as they are made here (without values); nothing more is logged.
struct Quiet;

impl ErrorHandler for Quiet {
    fn on_error<C: ClientInfo>(&self, _client: &C, _error: &mut PgWireError) {}
}

/// The analyst a connection logged in as (set only by a completed SCRAM exchange).
pub(super) struct Caller(pub String);

/// The parameters a Postgres server reports at login, from the same settings `SHOW` answers.
struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut p = HashMap::new();
        for (name, key) in [
            ("server_version", "server_version"),
            ("server_encoding", "server_encoding"),
            ("client_encoding", "client_encoding"),
            ("DateStyle", "datestyle"),
            ("IntervalStyle", "intervalstyle"),
            ("TimeZone", "timezone"),
            ("integer_datetimes", "integer_datetimes"),
            ("standard_conforming_strings", "standard_conforming_strings"),
            ("is_superuser", "is_superuser"),
            (
                "default_transaction_read_only",
                "default_transaction_read_only",
            ),
            ("search_path", "search_path"),
        ] {
            p.insert(
                name.to_string(),
                setting(key).unwrap_or_default().to_string(),
            );
        }
        p.insert("in_hot_standby".into(), "off".into());
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        p.insert("session_authorization".into(), user);
        let app = client.metadata().get("application_name").cloned();
        p.insert("application_name".into(), app.unwrap_or_default());
        Some(p)
    }
}

/// An error for the client: Postgres's severity and code, tip's message (never a value).
fn pg_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.into(),
        code.into(),
        message.into(),
    )))
}

/// A core error as a Postgres error. Query errors are the analyst's own (they never hold an
/// identifier: the lake holds none); anything else is reported without its detail.
fn core_error(e: AppError) -> PgWireError {
    match &e {
        AppError::Query(QueryError::Refused(_)) => pg_error("ERROR", "42501", e.to_string()),
        AppError::Query(QueryError::Limit(_)) => pg_error("ERROR", "54000", e.to_string()),
        AppError::Query(QueryError::Sql(_)) => pg_error("ERROR", "42000", e.to_string()),
        _ => {
            eprintln!("tip serve (Postgres): {e}");
            pg_error("ERROR", "XX000", "the server could not answer; see its log")
        }
    }
}

/// The live analyst token of a connection, re-read at every statement: a connection that
/// never finished its login, or whose token was revoked since, is ended.
fn caller<C: ClientInfo>(st: &Shared, client: &C) -> Result<TokenRecord, PgWireError> {
    let ended = || pg_error("FATAL", "28000", "not logged in with a live analyst token");
    let id = client
        .session_extensions()
        .get::<Caller>()
        .ok_or_else(ended)?;
    match st.app.tokens().live_by_id(&id.0) {
        Ok(Some(rec)) if rec.role == crate::access::Role::Analyst => Ok(rec),
        Ok(_) => {
            st.audit(
                "auth_failure",
                serde_json::json!({"route": "postgres", "reason": "unknown_or_revoked_token", "token_id": id.0}),
            );
            Err(ended())
        }
        Err(e) => {
            eprintln!("tip serve (Postgres): {e}");
            Err(pg_error("FATAL", "XX000", "the token store cannot be read"))
        }
    }
}

/// The TLS acceptor of the configured certificate and key; a configuration that does not
/// make one stops the server at start (never a fall back to plain text).
pub fn tls(files: Option<&TlsFiles>) -> std::io::Result<Option<TlsAcceptor>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(f) = files else {
        return Ok(None);
    };
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("serve.{what} (Postgres): {e}"),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&f.cert)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("tls_cert", &e))?;
    if certs.is_empty() {
        return Err(bad("tls_cert", &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(&f.key).map_err(|e| bad("tls_key", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("tls_cert", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("tls_key", &e))?;
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(cfg))))
}

/// Serves the Postgres wire protocol on `listener` until the process stops, `places`
/// connections at once (one over is closed at once).
pub async fn run(
    st: Shared,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    places: Arc<Semaphore>,
) -> std::io::Result<()> {
    let queries = Arc::new(queries::Queries::new(st.clone()));
    let login_time =
        std::time::Duration::from_secs(st.app.config.serve.login_timeout_seconds.max(1));
    // Twice the longest statement the gate reads (a Parse, then a Bind's parameters), and at
    // least 1 MiB.
    let longest = crate::query::Limits::from(&st.app.config.query).max_sql_bytes() as u64;
    let after_login = (2 * longest).max(1 << 20);
    loop {
        let (io, place) = net::accept(&listener, &places, "Postgres")
            .await
            .into_parts();
        let login = Arc::new(AtomicU8::new(login::PENDING));
        let handlers = Postgres {
            st: st.clone(),
            queries: queries.clone(),
            tls: tls.is_some(),
            login: login.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            let _place = place;
            let frames = frames::Frames::new(login.clone(), after_login);
            tokio::select! {
                r = connection(io, tls, handlers, frames) => {
                    if let Err(e) = r {
                        eprintln!("tip serve (Postgres): connection: {e}");
                    }
                }
                _ = login_watch(&login, login_time) => {}
            }
        });
    }
}

/// One connection: pgwire's TLS negotiation and message loop (as its `process_socket`), over
/// a stream whose every message is held to the size limits of [`frames`] before pgwire
/// buffers it. A message over its limit ends the connection with an error that says so, and
/// an audit record.
async fn connection(
    io: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: Postgres,
    frames: frames::Frames,
) -> std::io::Result<()> {
    use futures::{SinkExt, StreamExt};
    use pgwire::api::PgWireConnectionState;
    use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
    use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
    use tokio_util::codec::{Framed, FramedParts};

    let Some(socket) = negotiate_tls::<queries::Prepared>(io, tls).await? else {
        return Ok(()); // a direct TLS handshake on a server without TLS
    };
    let old = socket.into_parts();
    let mut capped = frames::Capped::new(old.io, frames);
    let early = capped.follow(&old.read_buf);
    let mut parts = FramedParts::new(capped, old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);
    let st = handlers.st.clone();
    let startup = handlers.startup_handler();
    let simple = handlers.queries.clone();
    let extended = handlers.queries.clone();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    if early.is_ok() {
        while let Some(Ok(msg)) = socket.next().await {
            // Terminate: the client is leaving; the socket must close (asyncpg waits for it).
            if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
                return Ok(());
            }
            let extended_query = match socket.state() {
                PgWireConnectionState::CopyInProgress(extended) => extended,
                _ => msg.is_extended_query(),
            };
            let answered = process_message(
                msg,
                &mut socket,
                startup.clone(),
                simple.clone(),
                extended.clone(),
                copy.clone(),
                cancel.clone(),
            )
            .await;
            if let Err(mut e) = answered {
                errors.on_error(&socket, &mut e);
                process_error(&mut socket, e, extended_query).await?;
            }
        }
    }
    if let Some(over) = socket.get_ref().refused() {
        st.audit(
            "refused",
            serde_json::json!({
                "route": "postgres",
                "reason": "message_too_large",
                "bytes": over.declared,
                "logged_in": over.logged_in,
            }),
        );
        let e = pg_error("FATAL", "54000", over.to_string());
        let info: ErrorInfo = e.into();
        let _ = socket
            .send(PgWireBackendMessage::ErrorResponse(info.into()))
            .await;
    }
    Ok(())
}

/// Ends (by returning) a connection whose login failed, or has not succeeded within
/// `serve.login_timeout_seconds`: after a failed login pgwire stops writing but keeps reading,
/// so a client that stays connected would hold its place for good.
async fn login_watch(login: &AtomicU8, within: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match login.load(Ordering::Acquire) {
            login::DONE => return std::future::pending().await,
            login::FAILED => return,
            _ if tokio::time::Instant::now() >= deadline => return,
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}
