//! Access tokens and the check every front end makes, with their audit records.

use serde_json::json;

use super::{Actor, App, AppError};
use crate::access::{Denial, Role, TokenRecord, TokenStore};

impl App {
    /// The token store (hashes only).
    pub fn tokens(&self) -> TokenStore {
        TokenStore::new(&self.path(&self.config.serve.tokens))
    }

    /// Makes a token; returns it (to be shown once) and its record. A partner token's
    /// organisation must be in the registry.
    pub fn make_token(
        &self,
        role: Role,
        org: Option<&str>,
        actor: Actor<'_>,
    ) -> Result<(String, TokenRecord), AppError> {
        if let Some(o) = org
            && self.registry.get(o).is_none()
        {
            return Err(AppError::Usage(format!(
                "organisation {o:?} is not in the organisation registry"
            )));
        }
        let (token, rec) = self.tokens().create(role, org)?;
        self.record(
            "token_created",
            json!({"by": actor.by(), "token_id": rec.id, "role": role.as_str(), "org": rec.org}),
        )?;
        Ok((token, rec))
    }

    /// Revokes a token by id; false when there is no live token with that id.
    pub fn revoke_token(&self, id: &str, actor: Actor<'_>) -> Result<bool, AppError> {
        let done = self.tokens().revoke(id)?;
        if done {
            self.record("token_revoked", json!({"by": actor.by(), "token_id": id}))?;
        }
        Ok(done)
    }

    /// The caller behind `token` if it is live and holds `role`; a refusal is audited
    /// (`auth_failure` or `denied`, with the route, never the token).
    pub fn authorise(
        &self,
        token: Option<&str>,
        role: Role,
        route: &str,
    ) -> Result<TokenRecord, Denial> {
        self.judged(self.tokens().authorise(token, role), route)
    }

    /// The same judgement for a caller found another way (a Postgres SCRAM login, whose proof
    /// matched `found`, or none): audited as [`App::authorise`] audits.
    pub fn authorise_found(
        &self,
        found: Option<TokenRecord>,
        role: Role,
        route: &str,
    ) -> Result<TokenRecord, Denial> {
        let result = match found {
            None => Err(Denial::UnknownToken),
            Some(rec) if rec.role == role => Ok(rec),
            Some(rec) => Err(Denial::WrongRole {
                token: Box::new(rec),
                needs: role,
            }),
        };
        self.judged(result, route)
    }

    fn judged(
        &self,
        result: Result<TokenRecord, Denial>,
        route: &str,
    ) -> Result<TokenRecord, Denial> {
        let audit = match &result {
            Ok(_) | Err(Denial::Store(_)) => None,
            Err(Denial::NoToken) => Some((
                "auth_failure",
                json!({"route": route, "reason": "no_token"}),
            )),
            Err(Denial::UnknownToken) => Some((
                "auth_failure",
                json!({"route": route, "reason": "unknown_or_revoked_token"}),
            )),
            Err(Denial::WrongRole { token, needs }) => Some((
                "denied",
                json!({"route": route, "token_id": token.id, "role": token.role.as_str(), "needs": needs.as_str()}),
            )),
        };
        if let Some((event, fields)) = audit
            && let Err(e) = self.record(event, fields)
        {
            eprintln!("tip: {e}");
        }
        result
    }
}
