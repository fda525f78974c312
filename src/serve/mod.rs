//! `tip serve`: the partner upload API and page, the analyst SQL API, token administration —
//! thin handlers over the application core: each parses, calls the app, renders.
//!
//! Who is calling comes from the bearer token (or a page session made from one) only: a
//! partner's organisation is the token's, never a parameter. Partners upload and see their own
//! submissions; analysts query; admins manage tokens. A server started without the key serves
//! the analyst side only: uploads answer 503.

// Handlers and their helpers return a ready HTTP response as their error.
#![allow(clippy::result_large_err)]

mod flight;
mod net;
mod page;
mod postgres;
mod sql;
mod tokens;
mod uploads;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use crate::access::{Denial, Role, TokenRecord};
use crate::app::App;
use crate::app::upload::{Receipt, Refusal, RefusalKind, Uploads};
use crate::config::ServeConfig;

pub struct AppState {
    pub app: Arc<App>,
    /// The receiving desk; None on a server without the key.
    pub uploads: Option<Uploads>,
    sessions: Mutex<HashMap<String, page::WebSession>>,
    /// Queries answered at once (`serve.max_concurrent_queries`); the others wait their turn.
    queries: Arc<tokio::sync::Semaphore>,
    /// The HTTP connections that have not yet sent a whole request (see [`HttpListener`]).
    http_logins: net::Logins,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(app: Arc<App>, uploads: Option<Uploads>) -> AppState {
        let queries = app.config.serve.max_concurrent_queries.clamp(1, 1024);
        AppState {
            app,
            uploads,
            sessions: Mutex::new(HashMap::new()),
            queries: Arc::new(tokio::sync::Semaphore::new(queries)),
            http_logins: net::Logins::default(),
        }
    }

    fn cfg(&self) -> &ServeConfig {
        &self.app.config.serve
    }

    /// Records an audit event; a failure to write it is reported on stderr, never dropped.
    pub fn audit(&self, event: &str, fields: serde_json::Value) {
        if let Err(e) = self.app.record(event, fields) {
            eprintln!("tip serve: {e}");
        }
    }

    /// The receiving desk, or 503 on a server that holds no key.
    fn uploads(&self) -> Result<&Uploads, Response> {
        self.uploads.as_ref().ok_or_else(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this server takes no uploads: it holds no pseudonymisation key",
            )
        })
    }
}

/// Compacts, on a task of its own, what an upload made due — after its receipt and audit record
/// are written, so a compaction can neither delay them nor, by outlasting the request's time
/// limit, lose them.
pub(crate) fn compact_later(st: &Shared, r: &Result<Receipt, Refusal>) {
    let Ok(rc) = r else {
        return;
    };
    if rc.compact.is_empty() {
        return;
    }
    let (st, tables) = (st.clone(), rc.compact.clone());
    tokio::spawn(async move {
        if let Some(desk) = &st.uploads {
            desk.compact(&tables).await;
        }
    });
}

pub fn router(state: Shared) -> Router {
    let timeout = Duration::from_secs(state.cfg().request_timeout_seconds.max(1));
    let logins = state.http_logins.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/uploads", post(uploads::create).get(uploads::list))
        .route("/api/v1/uploads/{id}", get(uploads::one))
        .route("/api/v1/sql", post(sql::query))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .route("/", get(page::home))
        .route("/signin", post(page::signin))
        .route("/signout", post(page::signout))
        .route("/upload", post(page::upload))
        // Uploads are bounded by tip's own counting (413), not by a buffer.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => error(StatusCode::REQUEST_TIMEOUT, "the request took too long"),
                }
            },
        ))
        .layer(axum::middleware::from_fn(security_headers))
        // A whole request arrived: its connection keeps its place past the login time.
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let peer = req
                    .extensions()
                    .get::<axum::extract::ConnectInfo<Peer>>()
                    .map(|c| c.0.0);
                logins.mark(peer);
                next.run(req)
            },
        ))
        .with_state(state)
}

/// The HTTP port: at most `serve.max_http_connections` connections open at once (one more is
/// closed at once), and a connection that has not sent a whole request (its headers) within
/// `serve.login_timeout_seconds` is closed, so idle or slow sockets cannot exhaust the
/// server's file descriptors nor hold places.
pub struct HttpListener {
    listener: tokio::net::TcpListener,
    places: Arc<tokio::sync::Semaphore>,
    logins: net::Logins,
    within: Duration,
}

/// The address an HTTP connection comes from, for the login deadline.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = net::Limited;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let c = net::accept_watched(
                &self.listener,
                &self.places,
                "HTTP",
                &self.logins,
                self.within,
            )
            .await;
            if let Some(peer) = c.peer() {
                return (c, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

pub fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// The HTTP status of a refused upload.
fn refusal_status(r: &Refusal) -> StatusCode {
    match r.kind {
        RefusalKind::BadRequest => StatusCode::BAD_REQUEST,
        RefusalKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RefusalKind::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RefusalKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        RefusalKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The caller, if authenticated by `Authorization: Bearer` (401 otherwise) and holding `role`
/// (403 otherwise); both refusals audited. The body is not read.
fn allowed(
    st: &AppState,
    headers: &HeaderMap,
    role: Role,
    route: &str,
) -> Result<TokenRecord, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    st.app.authorise(bearer, role, route).map_err(|d| match d {
        Denial::NoToken | Denial::UnknownToken => {
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tip\""),
            );
            r
        }
        Denial::WrongRole { needs, .. } => error(
            StatusCode::FORBIDDEN,
            &format!("this needs a {} token", needs.as_str()),
        ),
        Denial::Store(e) => {
            eprintln!("tip serve: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the token store cannot be read",
            )
        }
    })
}

/// Where `tip serve` listens: HTTP always; Flight SQL and the Postgres wire protocol when
/// given an address.
pub struct Listen {
    pub http: String,
    pub flight: Option<String>,
    pub postgres: Option<String>,
}

/// Serves until the process is stopped. Binds every port, and checks the TLS configuration,
/// before it prints the addresses it listens on (HTTP first), so a broken configuration stops
/// it at start.
pub async fn serve(
    app: Arc<App>,
    uploads: Option<Uploads>,
    listen: &Listen,
) -> std::io::Result<()> {
    let tls = net::tls_files(&app.config.serve)?;
    let app_cfg = app.config.serve.clone();
    let places = app.config.serve.max_connections.clamp(1, 100_000);
    let state = Arc::new(AppState::new(app, uploads));
    let listener = tokio::net::TcpListener::bind(&listen.http).await?;
    let flight = match &listen.flight {
        Some(a) => {
            let l = net::bind(a, "Flight SQL", tls.is_some()).await?;
            Some((flight::server(&app_cfg, tls.as_ref())?, l))
        }
        None => None,
    };
    let postgres = match &listen.postgres {
        Some(a) => {
            let l = net::bind(a, "Postgres", tls.is_some()).await?;
            Some((postgres::tls(tls.as_ref())?, l))
        }
        None => None,
    };
    println!("tip serve: listening on http://{}", listener.local_addr()?);
    if let Some((_, l)) = &flight {
        println!("tip serve: Flight SQL on grpc://{}", l.local_addr()?);
    }
    if let Some((_, l)) = &postgres {
        println!("tip serve: Postgres on postgresql://{}", l.local_addr()?);
    }
    std::io::stdout().flush().ok();
    let http = HttpListener {
        listener,
        places: Arc::new(tokio::sync::Semaphore::new(
            app_cfg.max_http_connections.clamp(1, 1_000_000),
        )),
        logins: state.http_logins.clone(),
        within: Duration::from_secs(app_cfg.login_timeout_seconds.max(1)),
    };
    let service = router(state.clone()).into_make_service_with_connect_info::<Peer>();
    let http = async { axum::serve(http, service).await };
    let flight = async {
        match flight {
            Some((server, l)) => {
                let places = Arc::new(tokio::sync::Semaphore::new(places));
                flight::run(state.clone(), server, l, places).await
            }
            None => std::future::pending().await,
        }
    };
    let postgres = async {
        match postgres {
            Some((acceptor, l)) => {
                let places = Arc::new(tokio::sync::Semaphore::new(places));
                postgres::run(state.clone(), l, acceptor, places).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = http => r,
        r = flight => r,
        r = postgres => r,
    }
}
