//! `POST /api/v1/sql`: analysts' SQL, answered as JSON, CSV or an Arrow IPC stream by `Accept`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Shared, allowed, error};
use crate::access::Role;
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

use crate::app::analysis::AuditedAnswer;
use crate::app::{Actor, AppError, Door};
use crate::query::{Encoder, OutputFormat, QueryError, StreamFormat};

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

/// The answer's encoding and content type, by `Accept` (JSON by default).
fn answer_format(headers: &HeaderMap) -> (StreamFormat, &'static str) {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if accept.contains("text/csv") {
        (
            StreamFormat::Text(OutputFormat::Csv),
            "text/csv; charset=utf-8",
        )
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        (
            StreamFormat::ArrowIpc,
            "application/vnd.apache.arrow.stream",
        )
    } else {
        (StreamFormat::Text(OutputFormat::Json), "application/json")
    }
}

/// The part of an answer held before the response starts: a query that fails or stops at a
/// limit within it gets an error status; after it the answer streams, and a limit reached
/// later cuts the response off (the client sees an incomplete transfer, never a short answer
/// that looks whole).
const PREFETCH_BYTES: usize = 1024 * 1024;

/// What the handler knows once the prefetch is done (one per request: its size is no concern).
#[allow(clippy::large_enum_variant)]
enum Start {
    /// The whole answer.
    Whole(Vec<u8>),
    /// The first part; the rest streams.
    Streaming(Vec<u8>, AuditedAnswer, Encoder),
}

async fn prefetch(mut answer: AuditedAnswer, format: StreamFormat) -> Result<Start, AppError> {
    let (mut enc, mut buf) = Encoder::start(format, &answer.schema())?;
    while buf.len() < PREFETCH_BYTES {
        match answer.next().await {
            None => {
                buf.extend(enc.finish()?);
                return Ok(Start::Whole(buf));
            }
            Some(b) => buf.extend(enc.batch(&b?)?),
        }
    }
    Ok(Start::Streaming(buf, answer, enc))
}

/// A query's turn among the `serve.max_concurrent_queries`: given back when its answer ends or
/// its client goes away, and at the latest at the query's time limit — the engine has dropped
/// the query by then, so a client that stops reading holds no turn and no engine memory.
pub(super) struct Turn(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Turn {
    pub(super) fn new(permit: OwnedSemaphorePermit, limit: Duration) -> Turn {
        let slot = Arc::new(Mutex::new(Some(permit)));
        let at_limit = slot.clone();
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            end(&at_limit);
        });
        Turn(slot)
    }
}

fn end(slot: &Mutex<Option<OwnedSemaphorePermit>>) {
    if let Ok(mut p) = slot.lock() {
        p.take();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        end(&self.0);
    }
}

/// The rest of a streaming answer as body chunks; an error ends the body with an error, which
/// aborts the response. The query's turn ends with it.
fn rest(
    answer: AuditedAnswer,
    enc: Encoder,
    turn: Turn,
) -> impl futures::Stream<Item = Result<Vec<u8>, AppError>> + Send {
    futures::stream::unfold(Some((answer, enc, turn)), |state| async move {
        let (mut answer, mut enc, turn) = state?;
        match answer.next().await {
            Some(Ok(b)) => Some((
                enc.batch(&b).map_err(AppError::from),
                Some((answer, enc, turn)),
            )),
            // The state is dropped with the turn: the answer is over.
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((enc.finish().map_err(AppError::from), None)),
        }
    })
}

pub async fn query(State(st): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let caller = match allowed(&st, &headers, Role::Analyst, "POST /api/v1/sql") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the query is larger than 1 MiB",
        );
    };
    let Ok(SqlBody { sql }) = serde_json::from_slice::<SqlBody>(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected a JSON object {\"sql\": \"...\"}",
        );
    };
    let (format, content_type) = answer_format(&headers);
    // A bounded number of queries at a time; the others wait their turn (within the request
    // time limit).
    let Ok(permit) = st.queries.clone().acquire_owned().await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let limit = Duration::from_secs(st.app.config.query.timeout_seconds.max(1));
    let mut turn = None;
    let started = async {
        let session = st.app.session(None).await?;
        let answer = st
            .app
            .query_stream(&session, &sql, Actor::Token(&caller, Door::Http))
            .await?;
        // The query's time limit is running: it ends the turn at the latest.
        turn = Some(Turn::new(permit, limit));
        prefetch(answer, format).await
    }
    .await;
    match started {
        Ok(Start::Whole(body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Ok(Start::Streaming(first, answer, enc)) => {
            let Some(turn) = turn else {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "the query lost its turn");
            };
            let first = futures::stream::once(async move { Ok::<_, AppError>(first) });
            let body = Body::from_stream(first.chain(rest(answer, enc, turn)));
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(e) => {
            let status = match &e {
                AppError::Query(QueryError::Refused(_) | QueryError::Sql(_)) => {
                    StatusCode::BAD_REQUEST
                }
                AppError::Query(QueryError::Limit(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => {
                    // The server's own trouble (the audit log, the lake): its detail, paths
                    // included, goes to the server's log, not to the client.
                    eprintln!("tip serve: {e}");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the server could not answer; see its log",
                    );
                }
            };
            error(status, &e.to_string())
        }
    }
}
