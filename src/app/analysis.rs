//! The analyst side: sessions with the configured limits, queries with their audit record,
//! exports and the description of the tables. No key is needed or loaded here.

use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::json;

use super::{Actor, App, AppError};
use crate::lake::AsOf;
use crate::query::pg::{Described, Params};
use crate::query::{Answer, Limits, QueryError, Session};
use crate::schema::PROVENANCE;

/// One column of `tip tables`.
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    /// identifier / quasi / attribute / provenance / pseudonym; empty for views.
    pub class: String,
    pub description: String,
}

/// One table or view of `tip tables`.
pub struct TableInfo {
    pub name: String,
    pub description: String,
    pub columns: Vec<ColumnInfo>,
}

/// The system and reference tables, described for analysts.
const OTHER_TABLES: &[(&str, &str)] = &[
    (
        "submissions",
        "the ledger: one row per file committed (partner, record type, SHA-256, rows, period, table version)",
    ),
    (
        "quarantine",
        "rejected rows: submission, row number, field and reason code (never the value)",
    ),
    (
        "key_epochs",
        "the keys the lake's pseudonyms were made with: epoch, key version, since when, why (rows of two epochs do not link)",
    ),
    (
        "organisations",
        "the organisation registry: org_id, name, type, country, region",
    ),
    (
        "population",
        "population on 1 January by country and year, with its source (Eurostat)",
    ),
];

impl App {
    /// An analyst session over the lake (as of `as_of`), with the configured limits.
    pub async fn session(&self, as_of: Option<&AsOf>) -> Result<Session, AppError> {
        Ok(Session::open_with_limits(
            &self.lake,
            &self.catalog,
            &self.registry,
            as_of,
            Limits::from(&self.config.query),
        )
        .await?)
    }

    /// Runs one analyst statement and collects its answer; leaves its audit record.
    pub async fn query(
        &self,
        session: &Session,
        sql: &str,
        actor: Actor<'_>,
    ) -> Result<Vec<RecordBatch>, AppError> {
        let mut answer = self.query_stream(session, sql, actor).await?;
        let mut out = Vec::new();
        while let Some(b) = answer.next().await {
            out.push(b?);
        }
        Ok(out)
    }

    /// Runs one analyst statement; the answer comes batch by batch. The audit record — the
    /// SHA-256 of the text (never the text), who, the outcome and the rows returned — is left
    /// when the answer ends, fails or is dropped unread (`cancelled`), or here when the
    /// statement is refused.
    pub async fn query_stream(
        &self,
        session: &Session,
        sql: &str,
        actor: Actor<'_>,
    ) -> Result<AuditedAnswer, AppError> {
        self.query_stream_with(session, sql, None, actor).await
    }

    /// [`App::query_stream`] with the bound parameters of a Postgres extended-protocol
    /// statement (the audit record hashes the statement's text, not the values).
    pub async fn query_stream_with(
        &self,
        session: &Session,
        sql: &str,
        params: Option<Params>,
        actor: Actor<'_>,
    ) -> Result<AuditedAnswer, AppError> {
        let fields = sql_fields(&self.audit, sql, actor);
        let started = match params {
            None => session.stream(statement(sql)).await,
            Some(p) => session.stream_with(statement(sql), p).await,
        };
        match started {
            Ok(answer) => Ok(AuditedAnswer {
                answer,
                audit: crate::audit::AuditLog::new(self.audit.path()),
                fields,
                recorded: false,
                live: match actor {
                    Actor::Token(t, _) => Some((self.tokens(), t.id.clone())),
                    _ => None,
                },
            }),
            Err(e) => {
                self.record_unanswered(fields, status_of(&e))?;
                Err(e.into())
            }
        }
    }

    /// The columns a statement would answer with, through the same gate, without running it
    /// (Flight SQL's flight info and prepared statements, the Postgres Describe). A refusal
    /// leaves its audit record here, as [`App::query_stream`] does; a statement that passes
    /// is recorded when it runs.
    pub async fn describe_query(
        &self,
        session: &Session,
        sql: &str,
        actor: Actor<'_>,
    ) -> Result<SchemaRef, AppError> {
        Ok(self.describe_statement(session, sql, actor).await?.schema)
    }

    /// An analyst session that also answers Postgres clients (`pg_catalog`, Postgres's
    /// functions and dialect).
    pub async fn pg_session(&self) -> Result<Session, AppError> {
        let session = self.session(None).await?;
        session.speak_postgres().await?;
        Ok(session)
    }

    /// The columns and parameter types of a Postgres extended-protocol statement, through the
    /// same gate; a refusal is audited as in [`App::describe_query`].
    pub async fn describe_statement(
        &self,
        session: &Session,
        sql: &str,
        actor: Actor<'_>,
    ) -> Result<Described, AppError> {
        match session.describe_statement(statement(sql)).await {
            Ok(d) => Ok(d),
            Err(e) => {
                self.record_unanswered(sql_fields(&self.audit, sql, actor), status_of(&e))?;
                Err(e.into())
            }
        }
    }

    /// Refuses, with its audit record, a statement no analyst door runs (`why` says what).
    pub fn refuse(&self, sql: &str, actor: Actor<'_>, why: &str) -> AppError {
        if let Err(e) = self.record_unanswered(sql_fields(&self.audit, sql, actor), "refused") {
            return e;
        }
        QueryError::Refused(why.into()).into()
    }

    /// A statement a door refused before it reached the gate (too long or too deep for the
    /// parser, too many in one message), with its audit record (`refused` or `limit`).
    pub fn refused_before_gate(&self, sql: &str, actor: Actor<'_>, e: QueryError) -> AppError {
        if let Err(audit) =
            self.record_unanswered(sql_fields(&self.audit, sql, actor), status_of(&e))
        {
            return audit;
        }
        e.into()
    }

    /// Refuses, with its audit record, a statement a protocol sends as a change (Flight SQL's
    /// updates and ingestion): the lake is read-only through every door.
    pub fn refuse_change(&self, sql: &str, actor: Actor<'_>) -> AppError {
        if let Err(e) = self.record_unanswered(sql_fields(&self.audit, sql, actor), "refused") {
            return e;
        }
        QueryError::Refused(
            "the lake is read-only: no updates, inserts or ingestion through an analyst door"
                .into(),
        )
        .into()
    }

    fn record_unanswered(
        &self,
        mut fields: serde_json::Map<String, serde_json::Value>,
        status: &str,
    ) -> Result<(), AppError> {
        fields.insert("status".into(), status.into());
        fields.insert("rows".into(), 0.into());
        self.record("sql", serde_json::Value::Object(fields))
    }

    /// A plain hive-partitioned Parquet snapshot of every table under `out`.
    pub async fn export(
        &self,
        out: &Path,
        as_of: Option<&AsOf>,
        actor: Actor<'_>,
        progress: Option<&crate::util::Progress>,
    ) -> Result<Vec<(String, usize)>, AppError> {
        let session = self.session(as_of).await?;
        let partitioned: Vec<String> = self
            .catalog
            .records
            .values()
            .map(|r| r.table.clone())
            .collect();
        let counts = session.export(out, &partitioned, progress).await?;
        self.record(
            "export",
            json!({
                "by": actor.by(), "table_versions": session.versions,
                "rows": counts.iter().map(|(t, n)| (t.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>(),
            }),
        )?;
        Ok(counts)
    }

    /// Every table and view with its columns; record-table columns with their class and
    /// meaning from the schemas.
    pub async fn describe_tables(&self) -> Result<(Vec<TableInfo>, Vec<TableInfo>), AppError> {
        let session = self.session(None).await?;
        let mut tables = Vec::new();
        for r in self.catalog.records.values() {
            let columns = r
                .stored_schema()
                .fields()
                .iter()
                .map(|f| {
                    let (class, description) = match r.field(f.name()) {
                        Some(d) => (d.class.as_str().to_string(), d.description.clone()),
                        None => provenance_or_pseudonym(f.name()),
                    };
                    ColumnInfo {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        class,
                        description,
                    }
                })
                .collect();
            tables.push(TableInfo {
                name: r.table.clone(),
                description: r.description.clone(),
                columns,
            });
        }
        for (name, description) in OTHER_TABLES {
            tables.push(described(&session, name, description).await?);
        }
        let mut views = Vec::new();
        for v in &self.catalog.views {
            views.push(described(&session, &v.name, &v.description).await?);
        }
        Ok((tables, views))
    }
}

async fn described(
    session: &Session,
    name: &str,
    description: &str,
) -> Result<TableInfo, AppError> {
    let columns = session
        .columns(name)
        .await?
        .into_iter()
        .map(|(name, data_type)| ColumnInfo {
            name,
            data_type,
            class: String::new(),
            description: String::new(),
        })
        .collect();
    Ok(TableInfo {
        name: name.to_string(),
        description: description.to_string(),
        columns,
    })
}

fn provenance_or_pseudonym(name: &str) -> (String, String) {
    match PROVENANCE.iter().find(|(p, _)| *p == name) {
        Some((_, d)) => ("provenance".into(), d.to_string()),
        None => (
            "pseudonym".into(),
            "Keyed pseudonym (HMAC-SHA-256); see README, Privacy model.".into(),
        ),
    }
}

/// The statement as the gate sees it: no surrounding blanks, no final semicolon.
fn statement(sql: &str) -> &str {
    sql.trim().trim_end_matches(';')
}

/// An SQL audit record's fields: who, and the SHA-256 of the text (never the text).
/// The fields of a `sql` record: who, by which door, with which role, and the statement's
/// keyed hash (HMAC-SHA-256 under the audit log's own key, [`AuditLog::statement_mac`]):
/// the same statement has the same hash, so repeated queries can be counted, but nobody
/// holding the log without its key can confirm a guessed statement (a look-up of a known
/// pseudonym) by hashing it.
fn sql_fields(
    audit: &crate::audit::AuditLog,
    sql: &str,
    actor: Actor<'_>,
) -> serde_json::Map<String, serde_json::Value> {
    let role = match actor {
        Actor::Token(t, _) => t.role.as_str(),
        _ => "analyst",
    };
    let mac = audit
        .statement_mac(sql)
        .unwrap_or_else(|_| "unavailable: the audit key could not be read".into());
    let fields = json!({
        "by": actor.by(), "door": actor.door(),
        "token_id": match actor { Actor::Token(t, _) => Some(&t.id), _ => None },
        "role": role, "sql_hmac": mac,
    });
    let serde_json::Value::Object(fields) = fields else {
        unreachable!("a JSON object")
    };
    fields
}

fn status_of(e: &QueryError) -> &'static str {
    match e {
        QueryError::Refused(_) => "refused",
        QueryError::Limit(_) => "limit",
        _ => "error",
    }
}

/// An analyst's answer that leaves its audit record when it ends. An answer to a token is
/// read only while the token lives: it is checked again before each batch, so a revocation
/// ends an answer that is streaming — through any door, a suspended Postgres portal included —
/// at its next batch (audited as `revoked`).
pub struct AuditedAnswer {
    answer: Answer,
    audit: crate::audit::AuditLog,
    fields: serde_json::Map<String, serde_json::Value>,
    recorded: bool,
    live: Option<(crate::access::TokenStore, String)>,
}

impl AuditedAnswer {
    pub fn schema(&self) -> SchemaRef {
        self.answer.schema()
    }

    /// The next batch; None once the answer is complete and its audit record written.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, AppError>> {
        match self.answer.next().await {
            Some(Ok(b)) => match self.token_lives() {
                Ok(()) => Some(Ok(b)),
                Err(e) => {
                    let _ = self.finish("revoked");
                    Some(Err(e))
                }
            },
            Some(Err(e)) => {
                let _ = self.finish(status_of(&e));
                Some(Err(e.into()))
            }
            None => self.finish("ok").err().map(Err),
        }
    }

    fn token_lives(&self) -> Result<(), AppError> {
        let Some((store, id)) = &self.live else {
            return Ok(());
        };
        match store.live_by_id(id) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(QueryError::Refused(
                "the token was revoked: the answer ends here".into(),
            )
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    fn finish(&mut self, status: &str) -> Result<(), AppError> {
        if self.recorded {
            return Ok(());
        }
        self.recorded = true;
        let mut fields = std::mem::take(&mut self.fields);
        fields.insert("status".into(), status.into());
        fields.insert("rows".into(), self.answer.rows().into());
        self.audit
            .record("sql", serde_json::Value::Object(fields))
            .map_err(|e| AppError::Audit(self.audit.path().display().to_string(), e.to_string()))
    }
}

impl Drop for AuditedAnswer {
    /// An answer dropped before its end (the client went away): recorded as cancelled.
    fn drop(&mut self) {
        if let Err(e) = self.finish("cancelled") {
            eprintln!("tip: {e}");
        }
    }
}
