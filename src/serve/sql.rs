//! `POST /api/v1/sql`: analysts' SQL, answered as JSON, CSV or an Arrow IPC stream by `Accept`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Shared, allowed, error};
use crate::access::Role;
use crate::app::{Actor, AppError};
use crate::query::{OutputFormat, QueryError, arrow_ipc, render};

#[derive(Deserialize)]
struct SqlBody {
    sql: String,
}

/// The answer's encoding and content type, by `Accept` (JSON by default).
fn answer_format(headers: &HeaderMap) -> (Option<OutputFormat>, &'static str) {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if accept.contains("text/csv") {
        (Some(OutputFormat::Csv), "text/csv; charset=utf-8")
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        (None, "application/vnd.apache.arrow.stream")
    } else {
        (Some(OutputFormat::Json), "application/json")
    }
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
    let result = async {
        let session = st.app.session(None).await?;
        let batches = st.app.query(&session, &sql, Actor::Token(&caller)).await?;
        Ok::<_, AppError>(match format {
            Some(f) => render(&batches, f)?,
            None => arrow_ipc(&batches)?,
        })
    }
    .await;
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            let status = match &e {
                AppError::Query(QueryError::Refused(_) | QueryError::Sql(_)) => {
                    StatusCode::BAD_REQUEST
                }
                AppError::Query(QueryError::Limit(_)) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, &e.to_string())
        }
    }
}
