//! `GET/POST /api/v1/tokens`, `DELETE /api/v1/tokens/{id}`: token administration (admins).

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Shared, allowed, error};
use crate::access::Role;
use crate::app::{Actor, AppError, Door};

#[derive(Deserialize)]
struct NewToken {
    role: String,
    org: Option<String>,
}

pub async fn list(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(r) = allowed(&st, &headers, Role::Admin, "GET /api/v1/tokens") {
        return r;
    }
    match st.app.tokens().load() {
        Ok(all) => axum::Json(
            all.into_iter()
                .map(|t| json!({"id": t.id, "role": t.role, "org": t.org, "created_at": t.created_at, "revoked_at": t.revoked_at}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn create(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
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
    match st
        .app
        .make_token(role, req.org.as_deref(), Actor::Token(&caller, Door::Http))
    {
        Ok((token, rec)) => (
            StatusCode::CREATED,
            axum::Json(json!({"id": rec.id, "token": token, "role": role, "org": rec.org})),
        )
            .into_response(),
        Err(AppError::Usage(_)) => error(StatusCode::BAD_REQUEST, "unknown organisation"),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

pub async fn revoke(
    State(st): State<Shared>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let caller = match allowed(&st, &headers, Role::Admin, "DELETE /api/v1/tokens/{id}") {
        Ok(c) => c,
        Err(r) => return r,
    };
    match st.app.revoke_token(&id, Actor::Token(&caller, Door::Http)) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such live token"),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
