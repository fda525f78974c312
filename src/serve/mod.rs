//! `tip serve`: the partner upload API and page, the analyst SQL API, token administration.
//!
//! Who is calling comes from the bearer token (or a page session made from one) only: a
//! partner's organisation is the token's, never a parameter. Partners upload and see their own
//! submissions; analysts query; admins manage tokens. An upload is streamed to a server-named
//! file in the partner's inbox (the original name kept only as sanitised metadata), ingested
//! with the same code as `tip load`, then deleted: its receipt stays. Every upload, refusal,
//! authentication failure, denial and query goes to the audit log.

pub mod page;
pub mod tokens;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Digest;
use tokio::sync::Semaphore;

use crate::audit::AuditLog;
use crate::config::ServeConfig;
use crate::ingest::{self, Context, FileStatus, Submission};
use crate::query::{OutputFormat, QueryError, Session};
use tokens::{Role, TokenRecord, TokenStore};

/// Formats an upload may declare.
pub const FORMATS: &[&str] = &["csv", "json", "ndjson", "xlsx", "htcds-v2"];

pub struct AppState {
    pub ctx: Context,
    pub cfg: ServeConfig,
    pub tokens: TokenStore,
    pub audit: AuditLog,
    pub inbox: PathBuf,
    ingestions: Semaphore,
    sessions: Mutex<HashMap<String, page::WebSession>>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn new(ctx: Context) -> AppState {
        let cfg = ctx.config.serve.clone();
        AppState {
            tokens: TokenStore::new(&ctx.config.resolve(&cfg.tokens)),
            audit: AuditLog::new(&ctx.config.resolve(&ctx.config.audit.log)),
            inbox: ctx.config.resolve(&cfg.inbox),
            ingestions: Semaphore::new(cfg.max_concurrent_ingestions.max(1)),
            sessions: Mutex::new(HashMap::new()),
            cfg,
            ctx,
        }
    }

    /// Records an audit event; a failure to write it is reported on stderr, never dropped.
    pub fn audit(&self, event: &str, fields: serde_json::Value) {
        if let Err(e) = self.audit.record(event, fields) {
            eprintln!(
                "tip serve: cannot write the audit log {}: {e}",
                self.audit.path().display()
            );
        }
    }
}

pub fn router(state: Shared) -> Router {
    let timeout = Duration::from_secs(state.cfg.request_timeout_seconds.max(1));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/uploads", post(api_upload).get(api_list))
        .route("/api/v1/uploads/{id}", get(api_get))
        .route("/api/v1/sql", post(api_sql))
        .route("/api/v1/tokens", get(api_tokens).post(api_token_new))
        .route("/api/v1/tokens/{id}", delete(api_token_revoke))
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
        .with_state(state)
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

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: TokenRecord,
}

/// The caller from `Authorization: Bearer`, or 401 (audited). The body is not read.
pub fn authenticate(st: &AppState, headers: &HeaderMap, route: &str) -> Result<Caller, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let found = match bearer {
        Some(t) => st.tokens.verify(t),
        None => Ok(None),
    };
    match found {
        Ok(Some(token)) => Ok(Caller { token }),
        Ok(None) => {
            st.audit(
                "auth_failure",
                json!({ "route": route, "reason": if bearer.is_some() { "unknown_or_revoked_token" } else { "no_token" } }),
            );
            let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tip\""),
            );
            Err(r)
        }
        Err(e) => {
            eprintln!("tip serve: {e}");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the token store cannot be read",
            ))
        }
    }
}

/// 403 (audited) unless the caller has `role`.
pub fn authorise(st: &AppState, c: &Caller, role: Role, route: &str) -> Result<(), Response> {
    if c.token.role == role {
        return Ok(());
    }
    st.audit(
        "denied",
        json!({ "route": route, "token_id": c.token.id, "role": c.token.role.as_str(), "needs": role.as_str() }),
    );
    Err(error(
        StatusCode::FORBIDDEN,
        &format!("this needs a {} token", role.as_str()),
    ))
}

/// The caller, if authenticated (401 otherwise) and holding `role` (403 otherwise); both audited.
pub fn allowed(
    st: &AppState,
    headers: &HeaderMap,
    role: Role,
    route: &str,
) -> Result<Caller, Response> {
    let caller = authenticate(st, headers, route)?;
    authorise(st, &caller, role, route)?;
    Ok(caller)
}

/// A client's file name as metadata: the last path component, letters, digits, `.-_ `
/// only, at most 100 characters.
pub fn sanitise_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.').trim().to_string();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// What a partner gets back for an upload. Row numbers, field names and reason codes only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub upload_id: String,
    pub submission_id: Option<String>,
    pub status: String,
    pub record_type: String,
    pub format: String,
    pub original_name: String,
    pub bytes: u64,
    pub sha256: String,
    pub received_at: String,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_quarantined: u64,
    pub quarantined: Vec<QuarantinedRow>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub row: u64,
    pub field: String,
    pub reason: String,
}

/// Why an upload was refused before ingestion.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }
}

/// Everything an upload needs besides its bytes.
pub struct UploadRequest {
    pub record_type: String,
    pub format: String,
    pub original_name: String,
    pub gzip: bool,
}

impl AppState {
    pub fn check_upload(&self, record_type: &str, format: &str) -> Result<(), Refusal> {
        if self.ctx.catalog.record(record_type).is_none() {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown record type {record_type:?} (known: {})",
                    self.ctx
                        .catalog
                        .records
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !FORMATS.contains(&format) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "format {format:?} is not accepted (allowed: {})",
                    FORMATS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn max_upload(&self) -> u64 {
        self.cfg.max_upload_mib.saturating_mul(1024 * 1024)
    }

    /// Streams `body` into the partner's inbox under a server-made name, enforcing the size
    /// limits; ingests it; deletes it; keeps and returns the receipt.
    pub async fn receive<S, E>(
        &self,
        org: &str,
        req: &UploadRequest,
        body: S,
    ) -> Result<Receipt, Refusal>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self.inbox.join(org);
        std::fs::create_dir_all(&dir).map_err(|_| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inbox cannot be written",
            )
        })?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let ext = match req.format.as_str() {
            "htcds-v2" => "xlsx",
            f => f,
        };
        let incoming = dir.join(format!(".incoming-{upload_id}"));
        let stored = dir.join(format!("{upload_id}.{ext}"));
        let cleanup = |paths: &[&Path]| {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        };
        let written = write_limited(&incoming, body, self.max_upload()).await;
        let bytes = match written {
            Ok(n) => n,
            Err(r) => {
                cleanup(&[&incoming]);
                return Err(r);
            }
        };
        if req.gzip {
            let cap = self.cfg.max_decompressed_mib.saturating_mul(1024 * 1024);
            let (src, dst) = (incoming.clone(), stored.clone());
            let res = tokio::task::spawn_blocking(move || gunzip_limited(&src, &dst, cap))
                .await
                .unwrap_or_else(|_| {
                    Err(Refusal::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "decompression failed",
                    ))
                });
            cleanup(&[&incoming]);
            if let Err(r) = res {
                cleanup(&[&stored]);
                return Err(r);
            }
        } else if std::fs::rename(&incoming, &stored).is_err() {
            cleanup(&[&incoming]);
            return Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inbox cannot be written",
            ));
        }
        let sha = ingest::sha256_file(&stored).unwrap_or_default();
        // A bounded number of ingestions at a time; the others wait their turn.
        let _permit = self.ingestions.acquire().await.map_err(|_| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            )
        })?;
        let result = self.ingest(org, req, &stored).await;
        cleanup(&[&stored]);
        let report = match result {
            Ok(r) => r,
            Err(message) => {
                return Err(Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, message));
            }
        };
        let stored_name = stored.display().to_string();
        let (status, reason) = match &report.status {
            FileStatus::Committed => ("committed", None),
            FileStatus::Unchanged => ("unchanged", None),
            FileStatus::Rejected(r) => (
                "rejected",
                Some(r.replace(&stored_name, &req.original_name)),
            ),
        };
        let receipt = Receipt {
            upload_id: upload_id.clone(),
            submission_id: report.submission_id.clone(),
            status: status.into(),
            record_type: req.record_type.clone(),
            format: req.format.clone(),
            original_name: req.original_name.clone(),
            bytes,
            sha256: sha,
            received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            rows_read: report.rows_read,
            rows_accepted: report.rows_accepted,
            rows_quarantined: report.rows_quarantined(),
            quarantined: report
                .issues
                .iter()
                .map(|i| QuarantinedRow {
                    row: i.row,
                    field: i.field.clone(),
                    reason: i.reason.to_string(),
                })
                .collect(),
            reason,
        };
        let path = dir.join(format!("{upload_id}.json"));
        if let Ok(b) = serde_json::to_vec_pretty(&receipt) {
            let _ = std::fs::write(&path, b);
        }
        Ok(receipt)
    }

    async fn ingest(
        &self,
        org: &str,
        req: &UploadRequest,
        path: &Path,
    ) -> Result<ingest::FileReport, String> {
        let record = self
            .ctx
            .record(&req.record_type)
            .map_err(|e| e.to_string())?
            .clone();
        let mapping = ingest::mapping_for_load(&self.ctx, &record, &req.format, path)
            .map_err(|e| e.to_string())?;
        let sub = Submission {
            partner: org,
            mapping: &mapping,
            channel: "upload",
        };
        ingest::ingest_file(&self.ctx, &sub, path)
            .await
            .map_err(|e| {
                e.to_string()
                    .replace(&path.display().to_string(), &req.original_name)
            })
    }

    /// The receipts of one organisation's uploads, newest first.
    pub fn receipts(&self, org: &str) -> Vec<Receipt> {
        let dir = self.inbox.join(org);
        let mut out: Vec<Receipt> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        out.sort_by(|a: &Receipt, b: &Receipt| {
            b.received_at
                .cmp(&a.received_at)
                .then(b.upload_id.cmp(&a.upload_id))
        });
        out
    }

    pub fn audit_upload(&self, caller: &TokenRecord, channel: &str, r: &Result<Receipt, Refusal>) {
        match r {
            Ok(rc) => self.audit(
                if rc.status == "rejected" {
                    "upload_rejected"
                } else {
                    "upload_accepted"
                },
                json!({
                    "channel": channel, "token_id": caller.id, "org": caller.org,
                    "upload_id": rc.upload_id, "submission_id": rc.submission_id,
                    "status": rc.status, "record_type": rc.record_type, "format": rc.format,
                    "bytes": rc.bytes, "sha256": rc.sha256, "rows_accepted": rc.rows_accepted,
                    "rows_quarantined": rc.rows_quarantined,
                }),
            ),
            Err(f) => self.audit(
                "upload_rejected",
                json!({
                    "channel": channel, "token_id": caller.id, "org": caller.org,
                    "http_status": f.status.as_u16(), "reason": f.message,
                }),
            ),
        }
    }
}

/// Writes a stream to `path`, failing with 413 past `max` bytes.
async fn write_limited<S, E>(path: &Path, mut body: S, max: u64) -> Result<u64, Refusal>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut f = std::fs::File::create(path).map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the inbox cannot be written",
        )
    })?;
    let mut n: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the upload was interrupted: {e}"),
            )
        })?;
        n += chunk.len() as u64;
        if n > max {
            return Err(too_large(max));
        }
        f.write_all(&chunk).map_err(|_| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inbox cannot be written",
            )
        })?;
    }
    f.sync_all().ok();
    Ok(n)
}

fn too_large(max: u64) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than {} MiB", max / (1024 * 1024)),
    )
}

fn gunzip_limited(src: &Path, dst: &Path, cap: u64) -> Result<(), Refusal> {
    let bad = |m: &str| Refusal::new(StatusCode::BAD_REQUEST, m.to_string());
    let input = std::fs::File::open(src).map_err(|_| bad("the upload cannot be read"))?;
    let mut dec = flate2::read::GzDecoder::new(std::io::BufReader::new(input));
    let mut out = std::fs::File::create(dst).map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the inbox cannot be written",
        )
    })?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n: u64 = 0;
    loop {
        let k = std::io::Read::read(&mut dec, &mut buf)
            .map_err(|_| bad("the upload is not valid gzip"))?;
        if k == 0 {
            return Ok(());
        }
        n += k as u64;
        if n > cap {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload decompresses to more than {} MiB",
                    cap / (1024 * 1024)
                ),
            ));
        }
        out.write_all(&buf[..k]).map_err(|_| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the inbox cannot be written",
            )
        })?;
    }
}

async fn api_upload(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "POST /api/v1/uploads") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(org) = caller.token.org.clone() else {
        return error(StatusCode::FORBIDDEN, "this token has no organisation");
    };
    let req = UploadRequest {
        record_type: q.get("type").cloned().unwrap_or_default(),
        format: q.get("format").cloned().unwrap_or_default(),
        original_name: sanitise_name(
            q.get("filename")
                .map(String::as_str)
                .or_else(|| headers.get("x-filename").and_then(|v| v.to_str().ok()))
                .unwrap_or("upload"),
        ),
        gzip: headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip")),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result = match st.check_upload(&req.record_type, &req.format) {
        Err(r) => Err(r),
        Ok(()) if declared.is_some_and(|n| n > st.max_upload()) => Err(too_large(st.max_upload())),
        Ok(()) => st.receive(&org, &req, body.into_data_stream()).await,
    };
    st.audit_upload(&caller.token, "api", &result);
    match result {
        Ok(rc) => {
            let code = if rc.status == "rejected" {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::CREATED
            };
            (code, axum::Json(rc)).into_response()
        }
        Err(f) => error(f.status, &f.message),
    }
}

async fn api_list(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "GET /api/v1/uploads") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let org = caller.token.org.clone().unwrap_or_default();
    axum::Json(st.receipts(&org)).into_response()
}

async fn api_get(
    State(st): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "GET /api/v1/uploads/{id}") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let org = caller.token.org.clone().unwrap_or_default();
    // Only the caller's own inbox is looked in; another partner's id is simply not there.
    match st.receipts(&org).into_iter().find(|r| r.upload_id == id) {
        Some(r) => axum::Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such upload"),
    }
}

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

async fn api_sql(State(st): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let route = "POST /api/v1/sql";
    let caller = match allowed(&st, &headers, Role::Analyst, route) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let bytes = match axum::body::to_bytes(body, 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the query is larger than 1 MiB",
            );
        }
    };
    let Ok(SqlBody { sql }) = serde_json::from_slice::<SqlBody>(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON object {\"sql\": \"...\"}",
        );
    };
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let (format, content_type) = if accept.contains("text/csv") {
        (OutputFormat::Csv, "text/csv; charset=utf-8")
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        (OutputFormat::Json, "application/vnd.apache.arrow.stream")
    } else {
        (OutputFormat::Json, "application/json")
    };
    let arrow = content_type.starts_with("application/vnd.apache.arrow");
    let sql_hash = hex::encode(sha2::Sha256::digest(sql.as_bytes()));
    let limits = crate::query::Limits::from(&st.ctx.config.query);
    let result = async {
        let session = Session::open_with_limits(
            &st.ctx.lake,
            &st.ctx.catalog,
            &st.ctx.registry,
            None,
            limits,
        )
        .await?;
        let batches = session.run(sql.trim().trim_end_matches(';')).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let body = if arrow {
            arrow_ipc(&batches).map_err(QueryError::Output)?
        } else {
            crate::query::render(&batches, format)?
        };
        Ok::<_, QueryError>((rows, body))
    }
    .await;
    let audit = |status: &str, rows: usize| {
        st.audit(
            "sql",
            json!({ "token_id": caller.token.id, "role": caller.token.role.as_str(), "sql_sha256": sql_hash, "status": status, "rows": rows }),
        )
    };
    match result {
        Ok((rows, body)) => {
            audit("ok", rows);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(e) => {
            let (status, label) = match &e {
                QueryError::Refused(_) => (StatusCode::BAD_REQUEST, "refused"),
                QueryError::Limit(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit"),
                QueryError::Sql(_) => (StatusCode::BAD_REQUEST, "error"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "error"),
            };
            audit(label, 0);
            error(status, &e.to_string())
        }
    }
}

fn arrow_ipc(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Result<Vec<u8>, String> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(datafusion::arrow::datatypes::Schema::empty()));
    let mut buf = Vec::new();
    let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &schema)
        .map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    Ok(buf)
}

#[derive(Deserialize)]
struct NewToken {
    role: String,
    org: Option<String>,
}

async fn api_tokens(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = allowed(&st, &headers, Role::Admin, "GET /api/v1/tokens") {
        return r;
    }
    match st.tokens.load() {
        Ok(all) => axum::Json(
            all.into_iter()
                .map(|t| json!({"id": t.id, "role": t.role, "org": t.org, "created_at": t.created_at, "revoked_at": t.revoked_at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_token_new(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let caller = match allowed(&st, &headers, Role::Admin, "POST /api/v1/tokens") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_slice::<NewToken>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected {\"role\": ..., \"org\": ...}",
        );
    };
    let Some(role) = Role::parse(&req.role) else {
        return error(StatusCode::BAD_REQUEST, "role: partner, analyst or admin");
    };
    if let Some(o) = &req.org
        && st.ctx.registry.get(o).is_none()
    {
        return error(StatusCode::BAD_REQUEST, "unknown organisation");
    }
    match st.tokens.create(role, req.org.as_deref()) {
        Ok((token, rec)) => {
            st.audit("token_created", json!({"by": caller.token.id, "token_id": rec.id, "role": role.as_str(), "org": rec.org}));
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": rec.id, "token": token, "role": role, "org": rec.org})),
            )
                .into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn api_token_revoke(
    State(st): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Admin, "DELETE /api/v1/tokens/{id}") {
        Ok(c) => c,
        Err(r) => return r,
    };
    match st.tokens.revoke(&id) {
        Ok(true) => {
            st.audit(
                "token_revoked",
                json!({"by": caller.token.id, "token_id": id}),
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no such live token"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Serves until the process is stopped. Prints the address it listens on.
pub async fn serve(ctx: Context, listen: &str) -> std::io::Result<()> {
    let state = Arc::new(AppState::new(ctx));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("tip serve: listening on http://{addr}");
    std::io::stdout().flush().ok();
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_are_neutralised() {
        assert_eq!(sanitise_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitise_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitise_name(".."), "upload");
        assert_eq!(
            sanitise_name("cases\n2025;rm -rf.csv"),
            "cases2025rm -rf.csv"
        );
        assert_eq!(sanitise_name(".hidden"), "hidden");
        assert_eq!(sanitise_name(&"a".repeat(500)).len(), 100);
    }
}
