//! `POST/GET /api/v1/uploads`, `GET /api/v1/uploads/{id}`: partners' uploads and receipts.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Shared, allowed, error, refusal_status};
use crate::access::Role;
use crate::app::upload::{ReceiptStatus, Refusal, UploadRequest, parse_mode, sanitise_name};

fn request(q: &HashMap<String, String>, headers: &HeaderMap) -> Result<UploadRequest, Refusal> {
    let name = q
        .get("filename")
        .map(String::as_str)
        .or_else(|| headers.get("x-filename").and_then(|v| v.to_str().ok()))
        .unwrap_or("upload");
    Ok(UploadRequest {
        mode: parse_mode(
            q.get("mode").map(String::as_str),
            q.get("period").map(String::as_str),
        )?,
        record_type: q.get("type").cloned().unwrap_or_default(),
        format: q.get("format").cloned().unwrap_or_default(),
        original_name: sanitise_name(name),
        gzip: headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip")),
    })
}

pub async fn create(
    State(st): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "POST /api/v1/uploads") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(org) = caller.org.clone() else {
        return error(StatusCode::FORBIDDEN, "this token has no organisation");
    };
    let desk = match st.uploads() {
        Ok(d) => d,
        Err(r) => return r,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let result = match request(&q, &headers) {
        Err(r) => Err(r),
        Ok(req) => match desk.check(&req.record_type, &req.format) {
            Err(r) => Err(r),
            Ok(_) if declared.is_some_and(|n| n > desk.max_upload()) => Err(desk.too_large()),
            Ok(_) => desk.receive(&org, &req, body.into_data_stream()).await,
        },
    };
    st.app.audit_upload(&caller, "api", &result);
    super::compact_later(&st, &result);
    match result {
        Ok(rc) => {
            let code = if rc.status == ReceiptStatus::Rejected {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::CREATED
            };
            (code, axum::Json(rc)).into_response()
        }
        Err(f) => error(refusal_status(&f), &f.message),
    }
}

pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "GET /api/v1/uploads") {
        Ok(c) => c,
        Err(r) => return r,
    };
    match st.uploads() {
        Ok(d) => {
            axum::Json(d.receipts(caller.org.as_deref().unwrap_or_default()).await).into_response()
        }
        Err(r) => r,
    }
}

pub async fn one(
    State(st): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Partner, "GET /api/v1/uploads/{id}") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let desk = match st.uploads() {
        Ok(d) => d,
        Err(r) => return r,
    };
    // Only the caller's own inbox is looked in; another partner's id is simply not there.
    let org = caller.org.as_deref().unwrap_or_default();
    match desk
        .receipts(org)
        .await
        .into_iter()
        .find(|r| r.upload_id == id)
    {
        Some(r) => axum::Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such upload"),
    }
}
