//! The prepared statements and portals one connection holds: at most [`MAX_STATEMENTS`]
//! statements of at most [`MAX_STATEMENT_BYTES`] of text in all, and [`MAX_PORTALS`] named
//! portals, freed by `Close`, `DEALLOCATE` (a name or `ALL`) and `DISCARD ALL`. pgwire keeps
//! them in the connection without a bound: 400 statements of 500 KB held 223 MiB.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Sink, SinkExt};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, portal::Portal};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL,
    TARGET_TYPE_BYTE_STATEMENT,
};

use super::pg_error;
use crate::query::pg::PgStatement;

/// Prepared statements one connection may hold (pgjdbc caches 256, psycopg 100).
pub const MAX_STATEMENTS: usize = 256;
/// The text of a connection's prepared statements, in all.
pub const MAX_STATEMENT_BYTES: usize = 16 << 20;
/// Named portals one connection may hold open.
pub const MAX_PORTALS: usize = 64;

/// What a connection holds, by name (the unnamed statement and portal included).
#[derive(Default)]
pub struct Held {
    statements: BTreeMap<String, usize>,
    portals: BTreeSet<String>,
}

impl Held {
    fn bytes(&self) -> usize {
        self.statements.values().sum()
    }
}

fn held<C: ClientInfo>(client: &C) -> Arc<Mutex<Held>> {
    client
        .session_extensions()
        .get_or_insert_with(|| Mutex::new(Held::default()))
}

fn lock(h: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Parse`: as pgwire's own, within the bounds.
pub async fn parse<C, Q>(client: &mut C, message: Parse, parser: Q) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = Q::Statement>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    Q: QueryParser,
{
    let name = message.name.clone().unwrap_or_else(|| DEFAULT_NAME.into());
    let size = message.query.len();
    let held = held(client);
    {
        let h = lock(&held);
        let replaced = h.statements.get(&name).copied();
        if replaced.is_none() && h.statements.len() >= MAX_STATEMENTS {
            return Err(pg_error(
                "ERROR",
                "54000",
                format!(
                    "at most {MAX_STATEMENTS} prepared statements per connection: DEALLOCATE or close some first"
                ),
            ));
        }
        if h.bytes() - replaced.unwrap_or(0) + size > MAX_STATEMENT_BYTES {
            return Err(pg_error(
                "ERROR",
                "54000",
                format!(
                    "at most {} MiB of prepared statements per connection: DEALLOCATE or close some first",
                    MAX_STATEMENT_BYTES >> 20
                ),
            ));
        }
    }
    match StoredStatement::parse(client, &message, parser).await? {
        Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
        None => client.portal_store().put_empty_statement(&name),
    }
    lock(&held).statements.insert(name, size);
    client
        .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
        .await?;
    Ok(())
}

/// `Bind`: as pgwire's own, within the bound on named portals.
pub async fn bind<C, S>(client: &mut C, message: Bind) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = S>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    S: Clone + Send + Sync + 'static,
{
    let statement = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
    let portal = message
        .portal_name
        .clone()
        .unwrap_or_else(|| DEFAULT_NAME.into());
    let held = held(client);
    {
        let h = lock(&held);
        if !h.portals.contains(&portal) && h.portals.len() >= MAX_PORTALS {
            return Err(pg_error(
                "ERROR",
                "54000",
                format!("at most {MAX_PORTALS} open portals per connection: close some first"),
            ));
        }
    }
    match client.portal_store().get_statement(statement) {
        Some(Entry::Value(stmt)) => {
            let p = Portal::try_new(&message, stmt)?;
            client.portal_store().put_portal(Arc::new(p));
        }
        Some(Entry::Empty) => {
            if !message.parameters.is_empty() {
                return Err(pg_error(
                    "ERROR",
                    "08P01",
                    "a bind message supplies parameters to an empty statement",
                ));
            }
            client.portal_store().put_empty_portal(&portal);
        }
        None => return Err(PgWireError::StatementNotFound(statement.to_owned())),
    }
    lock(&held).portals.insert(portal);
    client
        .send(PgWireBackendMessage::BindComplete(BindComplete::new()))
        .await?;
    Ok(())
}

/// `Close` of a statement or a portal.
pub async fn close<C, S>(client: &mut C, message: Close) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = S>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    let held = held(client);
    match message.target_type {
        TARGET_TYPE_BYTE_STATEMENT => {
            lock(&held).statements.remove(name);
            client.portal_store().rm_statement(name);
        }
        TARGET_TYPE_BYTE_PORTAL => {
            lock(&held).portals.remove(name);
            client.portal_store().rm_portal(name);
        }
        _ => {}
    }
    client
        .send(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
        .await?;
    Ok(())
}

/// What `DEALLOCATE` and `DISCARD` free (nothing for any other statement). `DEALLOCATE` of a
/// name the connection does not hold is an error, as in Postgres.
pub fn forget<C>(client: &C, statement: &PgStatement) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore,
    C::PortalStore: PortalStore,
{
    let held = held(client);
    let mut h = lock(&held);
    let store = client.portal_store();
    match statement {
        PgStatement::Deallocate(Some(name)) => {
            if h.statements.remove(name).is_none() {
                return Err(pg_error(
                    "ERROR",
                    "26000",
                    format!("prepared statement \"{name}\" does not exist"),
                ));
            }
            store.rm_statement(name);
        }
        PgStatement::Deallocate(None) | PgStatement::Discard { all: true } => {
            // The unnamed statement is the one running (over the extended protocol): it stays.
            let names: Vec<String> = h
                .statements
                .keys()
                .filter(|n| *n != DEFAULT_NAME)
                .cloned()
                .collect();
            for name in names {
                h.statements.remove(&name);
                store.rm_statement(&name);
            }
            if matches!(statement, PgStatement::Discard { .. }) {
                for name in std::mem::take(&mut h.portals) {
                    if name != DEFAULT_NAME {
                        store.rm_portal(&name);
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}
