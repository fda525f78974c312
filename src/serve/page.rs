//! The partner page: sign in with the partner token, upload a file, see the receipt and
//! earlier submissions. Server-rendered HTML, no script; readable on a phone; English and
//! Lithuanian, chosen by the browser's Accept-Language.
//!
//! Signing in makes a page session: a random id in an HttpOnly, SameSite=Strict cookie,
//! mapped in memory to the token's hash (never the token). Every request checks the hash
//! against the token store again, so a revoked token signs its sessions out at once. Forms
//! carry a per-session CSRF value.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::{Shared, refusal_status};
use crate::access::{Role, TokenRecord, TokenStore};
use crate::app::upload::{
    Receipt, ReceiptStatus, Refusal, RefusalKind, UploadRequest, parse_mode, sanitise_name,
};
use crate::ingest::LoadFormat;
use crate::util::html::escape;
use crate::util::random;

pub struct WebSession {
    token_hash: String,
    csrf: String,
    expires: Instant,
}

const COOKIE: &str = "tip_session";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Lt,
}

/// The first language of Accept-Language that the page speaks, by quality.
pub fn language(headers: &HeaderMap) -> Lang {
    let Some(v) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Lang::En;
    };
    let mut prefs: Vec<(f32, usize, &str)> = v
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, i, tag))
        })
        .collect();
    prefs.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    for (_, _, tag) in prefs {
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        match primary.as_str() {
            "lt" => return Lang::Lt,
            "en" => return Lang::En,
            _ => {}
        }
    }
    Lang::En
}

fn t(lang: Lang, key: &str) -> &'static str {
    let (en, lt) = match key {
        "title" => ("tip — partner uploads", "tip — partnerių duomenų įkėlimas"),
        "intro" => (
            "Upload your organisation's monthly report. Names and other identifiers are replaced by pseudonyms before anything is stored; the file itself is deleted once it is processed.",
            "Įkelkite savo organizacijos mėnesio ataskaitą. Vardai ir kiti identifikatoriai prieš saugojimą pakeičiami pseudonimais; pats failas ištrinamas, kai tik apdorojamas.",
        ),
        "token" => ("Access token", "Prieigos raktas"),
        "signin" => ("Sign in", "Prisijungti"),
        "signout" => ("Sign out", "Atsijungti"),
        "bad_token" => ("That token is not valid.", "Šis prieigos raktas negalioja."),
        "partner_only" => (
            "This page is for partner tokens.",
            "Šis puslapis skirtas partnerių prieigos raktams.",
        ),
        "signed_in_as" => ("Signed in for", "Prisijungta kaip"),
        "upload" => ("Upload a file", "Įkelti failą"),
        "type" => ("Record type", "Įrašų tipas"),
        "format" => ("Format", "Formatas"),
        "file" => ("File", "Failas"),
        "send" => ("Upload", "Įkelti"),
        "receipt" => ("Receipt", "Kvitas"),
        "status" => ("Status", "Būsena"),
        "accepted" => ("Rows accepted", "Priimta eilučių"),
        "quarantined" => ("Rows set aside", "Atidėta eilučių"),
        "row" => ("Row", "Eilutė"),
        "field" => ("Field", "Laukas"),
        "reason" => ("Reason", "Priežastis"),
        "history" => ("Earlier submissions", "Ankstesni pateikimai"),
        "received" => ("Received", "Gauta"),
        "name" => ("File name", "Failo pavadinimas"),
        "submission" => ("Submission", "Pateikimas"),
        "none" => ("None yet.", "Kol kas nėra."),
        "refused" => ("The upload was refused", "Įkėlimas atmestas"),
        "expired" => ("Please sign in again.", "Prisijunkite iš naujo."),
        "committed" => ("stored", "išsaugota"),
        "unchanged" => ("already received", "jau gauta anksčiau"),
        "rejected" => ("rejected: nothing stored", "atmesta: niekas neišsaugota"),
        "changes" => (
            "Records added / corrected / removed",
            "Įrašų pridėta / pataisyta / pašalinta",
        ),
        "mode" => ("What the file is", "Kas yra šis failas"),
        "upsert" => (
            "new and corrected records (nothing else changes)",
            "nauji ir pataisyti įrašai (kiti nekeičiami)",
        ),
        "snapshot" => (
            "all our records of a period (records of the period missing from it are removed)",
            "visi mūsų laikotarpio įrašai (trūkstami laikotarpio įrašai pašalinami)",
        ),
        "withdraw" => (
            "records to withdraw (only their case numbers and key fields are read)",
            "atšaukiami įrašai (skaitomi tik bylų numeriai ir rakto laukai)",
        ),
        "period" => (
            "Period of a complete file: all, 2025-11 or 2025-01..2025-06",
            "Viso failo laikotarpis: all, 2025-11 arba 2025-01..2025-06",
        ),
        _ => ("", ""),
    };
    match lang {
        Lang::En => en,
        Lang::Lt => lt,
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:44rem;padding:1rem;color:#222;line-height:1.45}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}label{display:block;margin:.7rem 0 .2rem;font-weight:600}\
input,select,button{font-size:1rem;padding:.5rem;max-width:100%;box-sizing:border-box}input[type=password],select{width:100%}\
button{margin-top:1rem;background:#1b6ca8;color:#fff;border:0;border-radius:4px;padding:.6rem 1.2rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}th,td{border-bottom:1px solid #ddd;padding:.3rem;text-align:left}\
.box{border:1px solid #cfd8e3;background:#f5f8fb;border-radius:6px;padding:.8rem;margin:1rem 0}.err{border-color:#d1495b;background:#fdf1f3}\
.scroll{overflow-x:auto}form.inline{display:inline}";

fn shell(lang: Lang, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n<h1>{}</h1>\n{body}\n</body>\n</html>\n",
        if lang == Lang::Lt { "lt" } else { "en" },
        t(lang, "title"),
        t(lang, "title")
    )
}

fn signin_page(lang: Lang, message: Option<&str>) -> String {
    let msg = message
        .map(|m| format!("<div class=\"box err\" role=\"alert\">{}</div>", escape(m)))
        .unwrap_or_default();
    shell(
        lang,
        &format!(
            "<p>{}</p>{msg}<form id=\"signin\" method=\"post\" action=\"/signin\"><label for=\"token\">{}</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required><button type=\"submit\">{}</button></form>",
            t(lang, "intro"),
            t(lang, "token"),
            t(lang, "signin")
        ),
    )
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_string)
        })
}

/// The page session and its live partner token, if any.
fn session(st: &Shared, headers: &HeaderMap) -> Option<(String, String, TokenRecord)> {
    let id = cookie_value(headers)?;
    let (hash, csrf) = {
        let mut sessions = st.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.expires > Instant::now());
        let s = sessions.get(&id)?;
        (s.token_hash.clone(), s.csrf.clone())
    };
    let rec = st.app.tokens().by_hash(&hash).ok().flatten();
    match rec {
        Some(r) if r.role == Role::Partner && r.org.is_some() => Some((id, csrf, r)),
        _ => {
            st.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            None
        }
    }
}

pub async fn home(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let lang = language(&headers);
    match session(&st, &headers) {
        Some((_, csrf, rec)) => {
            let history = history(&st, &rec).await;
            Html(main_page(&st, lang, &csrf, &rec, &history, None)).into_response()
        }
        None => Html(signin_page(lang, None)).into_response(),
    }
}

pub async fn signin(
    State(st): State<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let lang = language(&headers);
    let token = form.get("token").map(|s| s.trim()).unwrap_or("");
    let rec = st.app.tokens().verify(token).ok().flatten();
    let Some(rec) = rec else {
        st.audit(
            "auth_failure",
            json!({"route": "POST /signin", "reason": "unknown_or_revoked_token"}),
        );
        return (
            StatusCode::UNAUTHORIZED,
            Html(signin_page(lang, Some(t(lang, "bad_token")))),
        )
            .into_response();
    };
    if rec.role != Role::Partner || rec.org.is_none() {
        st.audit("denied", json!({"route": "POST /signin", "token_id": rec.id, "role": rec.role.as_str(), "needs": "partner"}));
        return (
            StatusCode::FORBIDDEN,
            Html(signin_page(lang, Some(t(lang, "partner_only")))),
        )
            .into_response();
    }
    let id = random::hex(32);
    st.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            id.clone(),
            WebSession {
                token_hash: TokenStore::hash(token),
                csrf: random::hex(16),
                expires: Instant::now() + Duration::from_secs(st.cfg().session_hours.max(1) * 3600),
            },
        );
    st.audit("signin", json!({"token_id": rec.id, "org": rec.org}));
    let mut r = Redirect::to("/").into_response();
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        st.cfg().session_hours.max(1) * 3600
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub async fn signout(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers) {
        st.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("tip_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

pub async fn upload(State(st): State<Shared>, headers: HeaderMap, mut mp: Multipart) -> Response {
    let lang = language(&headers);
    let Some((_, csrf, rec)) = session(&st, &headers) else {
        st.audit(
            "auth_failure",
            json!({"route": "POST /upload", "reason": "no_session"}),
        );
        return (
            StatusCode::UNAUTHORIZED,
            Html(signin_page(lang, Some(t(lang, "expired")))),
        )
            .into_response();
    };
    let org = rec.org.clone().unwrap_or_default();
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut result: Option<Result<Receipt, Refusal>> = None;
    while let Ok(Some(field)) = mp.next_field().await {
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            // The form puts the file last: the CSRF value, type and format are known here.
            if fields.get("csrf") != Some(&csrf) {
                st.audit(
                    "denied",
                    json!({"route": "POST /upload", "token_id": rec.id, "reason": "csrf"}),
                );
                return (StatusCode::FORBIDDEN, "forbidden").into_response();
            }
            let given = |k: &str| {
                fields
                    .get(k)
                    .map(String::as_str)
                    .filter(|v| !v.trim().is_empty())
            };
            let r = match (parse_mode(given("mode"), given("period")), &st.uploads) {
                (Err(e), _) => Err(e),
                (_, None) => Err(no_uploads()),
                (Ok(mode), Some(desk)) => {
                    let req = UploadRequest {
                        record_type: fields.get("type").cloned().unwrap_or_default(),
                        format: fields.get("format").cloned().unwrap_or_default(),
                        original_name: sanitise_name(field.file_name().unwrap_or("upload")),
                        gzip: false,
                        mode,
                    };
                    desk.receive(&org, &req, Box::pin(field)).await
                }
            };
            result = Some(r);
            break;
        } else if let Ok(v) = field.text().await {
            fields.insert(name, v.chars().take(200).collect());
        }
    }
    let Some(result) = result else {
        return (
            StatusCode::BAD_REQUEST,
            Html(main_page(
                &st,
                lang,
                &csrf,
                &rec,
                &history(&st, &rec).await,
                Some(Err("no file")),
            )),
        )
            .into_response();
    };
    st.app.audit_upload(&rec, "page", &result);
    super::compact_later(&st, &result);
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err(f) => refusal_status(f),
    };
    let shown = result.as_ref().map_err(|f| f.message.as_str());
    let history = history(&st, &rec).await;
    (
        status,
        Html(main_page(&st, lang, &csrf, &rec, &history, Some(shown))),
    )
        .into_response()
}

fn no_uploads() -> Refusal {
    Refusal {
        kind: RefusalKind::Unavailable,
        message: "this server takes no uploads: it holds no pseudonymisation key".into(),
    }
}

/// The caller's receipts, newest first.
async fn history(st: &Shared, rec: &TokenRecord) -> Vec<Receipt> {
    match &st.uploads {
        Some(d) => d.receipts(rec.org.as_deref().unwrap_or_default()).await,
        None => Vec::new(),
    }
}

fn main_page(
    st: &Shared,
    lang: Lang,
    csrf: &str,
    rec: &TokenRecord,
    history: &[Receipt],
    receipt: Option<Result<&Receipt, &str>>,
) -> String {
    let org = rec.org.clone().unwrap_or_default();
    let org_name = st
        .app
        .registry
        .get(&org)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let mut b = format!(
        "<p>{} <strong>{}</strong> ({})</p><form class=\"inline\" method=\"post\" action=\"/signout\"><button type=\"submit\">{}</button></form>",
        t(lang, "signed_in_as"),
        escape(&org_name),
        escape(&org),
        t(lang, "signout")
    );
    match receipt {
        Some(Ok(r)) => b.push_str(&receipt_box(lang, r)),
        Some(Err(m)) => b.push_str(&format!(
            "<div id=\"receipt\" class=\"box err\" role=\"alert\"><strong>{}</strong>: {}</div>",
            t(lang, "refused"),
            escape(m)
        )),
        None => {}
    }
    let types: String = st
        .app
        .catalog
        .records
        .keys()
        .map(|k| format!("<option value=\"{0}\">{0}</option>", escape(k)))
        .collect();
    let modes: String = ["upsert", "snapshot", "withdraw"]
        .iter()
        .map(|m| format!("<option value=\"{m}\">{}</option>", t(lang, m)))
        .collect();
    let formats: String = LoadFormat::NAMES
        .iter()
        .map(|f| format!("<option value=\"{0}\">{0}</option>", f))
        .collect();
    b.push_str(&format!(
        "<h2>{}</h2><form id=\"upload\" method=\"post\" action=\"/upload\" enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><label for=\"type\">{}</label><select id=\"type\" name=\"type\">{types}</select><label for=\"format\">{}</label><select id=\"format\" name=\"format\">{formats}</select><label for=\"mode\">{}</label><select id=\"mode\" name=\"mode\">{modes}</select><label for=\"period\">{}</label><input id=\"period\" name=\"period\" type=\"text\" maxlength=\"20\"><label for=\"file\">{}</label><input id=\"file\" name=\"file\" type=\"file\" required><button type=\"submit\">{}</button></form>",
        t(lang, "upload"),
        escape(csrf),
        t(lang, "type"),
        t(lang, "format"),
        t(lang, "mode"),
        t(lang, "period"),
        t(lang, "file"),
        t(lang, "send")
    ));
    b.push_str(&format!("<h2>{}</h2>", t(lang, "history")));
    if history.is_empty() {
        b.push_str(&format!("<p>{}</p>", t(lang, "none")));
    } else {
        b.push_str(&format!(
            "<div class=\"scroll\"><table id=\"history\"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            t(lang, "received"),
            t(lang, "name"),
            t(lang, "type"),
            t(lang, "status"),
            t(lang, "accepted"),
            t(lang, "quarantined")
        ));
        for r in history.iter().take(50) {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.received_at),
                escape(&r.original_name),
                escape(&r.record_type),
                t(lang, r.status.as_str()),
                r.rows_accepted,
                r.rows_quarantined
            ));
        }
        b.push_str("</tbody></table></div>");
    }
    shell(lang, &b)
}

fn receipt_box(lang: Lang, r: &Receipt) -> String {
    let mut b = format!(
        "<div id=\"receipt\" class=\"box{}\" role=\"status\"><h2>{}</h2><p>{}: <strong>{}</strong><br>{}: {}<br>{}: {}<br>{}: {}<br>{}: <span id=\"changes\">{} / {} / {}</span><br>{}: <code>{}</code></p>",
        if r.status == ReceiptStatus::Rejected {
            " err"
        } else {
            ""
        },
        t(lang, "receipt"),
        t(lang, "status"),
        t(lang, r.status.as_str()),
        t(lang, "name"),
        escape(&r.original_name),
        t(lang, "accepted"),
        r.rows_accepted,
        t(lang, "quarantined"),
        r.rows_quarantined,
        t(lang, "changes"),
        r.rows_inserted,
        r.rows_updated,
        r.rows_removed,
        t(lang, "submission"),
        escape(r.submission_id.as_deref().unwrap_or(&r.upload_id))
    );
    if let Some(reason) = &r.reason {
        b.push_str(&format!("<p>{}</p>", escape(reason)));
    }
    if !r.quarantined.is_empty() {
        b.push_str(&format!(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            t(lang, "row"),
            t(lang, "field"),
            t(lang, "reason")
        ));
        for q in r.quarantined.iter().take(200) {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                q.row,
                escape(&q.field),
                escape(&q.reason)
            ));
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</div>");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn language_follows_the_browser() {
        assert!(language(&h("lt-LT,lt;q=0.9,en;q=0.8")) == Lang::Lt);
        assert!(language(&h("en-GB,en;q=0.9,lt;q=0.8")) == Lang::En);
        assert!(language(&h("de-DE,lt;q=0.7,en;q=0.5")) == Lang::Lt);
        assert!(language(&h("en;q=0.2,lt;q=0.9")) == Lang::Lt);
        assert!(language(&h("fr")) == Lang::En);
        assert!(language(&HeaderMap::new()) == Lang::En);
    }
}
