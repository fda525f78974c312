//! The login: SCRAM-SHA-256 (RFC 5802, RFC 7677) against the token store's verifiers. The
//! user is a token id, or a role name (`analyst`) to be checked against each of the role's
//! tokens (they share the store's salt). Every failure ends the connection (FATAL): pgwire
//! would otherwise take a non-fatal error during the login as the end of it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{StartupHandler, finish_authentication, protocol_negotiation};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use super::{Caller, Parameters, Shared, pg_error};
use crate::access::{Denial, Role, SCRAM_ITERATIONS, Scram, TokenRecord};

const MECHANISM: &str = "SCRAM-SHA-256";

/// How a connection's login stands, for the watch that ends failed and stalled logins.
pub const PENDING: u8 = 0;
pub const DONE: u8 = 1;
pub const FAILED: u8 = 2;
const ROUTE: &str = "postgres login";

/// One connection's login.
pub struct Login {
    st: Shared,
    /// The server has TLS: a client that did not ask for it is turned away.
    require_tls: bool,
    state: Mutex<State>,
    outcome: Arc<AtomicU8>,
}

enum State {
    Initial,
    /// The server-first message is sent; the client's proof is awaited.
    Challenged(Box<Challenge>),
    Done,
}

struct Challenge {
    candidates: Vec<(TokenRecord, Scram)>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Login {
    pub fn new(st: Shared, require_tls: bool, outcome: Arc<AtomicU8>) -> Login {
        Login {
            st,
            require_tls,
            state: Mutex::new(State::Initial),
            outcome,
        }
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let result = match self.step(client, message).await {
            Ok(()) => Ok(()),
            Err(PgWireError::UserError(info)) if info.severity == "FATAL" => {
                Err(PgWireError::UserError(info))
            }
            Err(_) => Err(pg_error(
                "FATAL",
                "08P01",
                "the login did not follow SCRAM-SHA-256",
            )),
        };
        if result.is_err() {
            self.outcome.store(FAILED, Ordering::Release);
        } else if matches!(*self.state.lock().await, State::Done) {
            self.outcome.store(DONE, Ordering::Release);
        }
        result
    }
}

impl Login {
    async fn step<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.state.lock().await;
        match (&*state, message) {
            (State::Initial, PgWireFrontendMessage::Startup(startup)) => {
                if self.require_tls && !client.is_secure() {
                    return Err(pg_error(
                        "FATAL",
                        "28000",
                        "this server requires TLS: connect with sslmode=require (or verify-full)",
                    ));
                }
                protocol_negotiation(client, &startup).await?;
                // The client's parameters (user, database, application name) as it sent
                // them; none of them is trusted as who is calling.
                client.metadata_mut().extend(startup.parameters.clone());
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                        vec![MECHANISM.to_string()],
                    )))
                    .await?;
                Ok(())
            }
            (State::Initial, PgWireFrontendMessage::PasswordMessageFamily(msg)) => {
                let first = msg.into_sasl_initial_response()?;
                if first.auth_method != MECHANISM {
                    return Err(fatal("only SCRAM-SHA-256 is offered"));
                }
                let data = first.data.ok_or_else(|| fatal("an empty SCRAM message"))?;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let challenge = self.challenge(&user, text(&data)?)?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(challenge.server_first.clone().into()),
                    ))
                    .await?;
                *state = State::Challenged(Box::new(challenge));
                Ok(())
            }
            (State::Challenged(ch), PgWireFrontendMessage::PasswordMessageFamily(msg)) => {
                let last = msg.into_sasl_response()?;
                let (rec, signature) = self.verify(ch, text(&last.data)?)?;
                let final_message = format!("v={}", B64.encode(signature));
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(final_message.into_bytes().into()),
                    ))
                    .await?;
                *state = State::Done;
                self.st.audit(
                    "login",
                    serde_json::json!({"route": ROUTE, "door": "postgres", "token_id": rec.id}),
                );
                client.session_extensions().insert(Caller(rec.id));
                let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(&*client);
                client.set_pid_and_secret_key(pid, secret);
                finish_authentication(client, &Parameters).await
            }
            _ => Err(fatal("a message out of order during the login")),
        }
    }

    /// The server-first message for `client_first` of a login as `user`.
    fn challenge(&self, user: &str, client_first: &str) -> PgWireResult<Challenge> {
        let (gs2_header, bare) = split_gs2(client_first)?;
        let client_nonce = attribute(bare, "r").ok_or_else(|| fatal("no client nonce"))?;
        let tokens = self.st.app.tokens();
        let mut candidates = tokens.scram_candidates(user).map_err(store_error)?;
        // An unknown user gets a challenge like any other (the store's own salt, so it cannot
        // be told from a known one), and fails at the proof.
        let (salt, iterations) = match candidates.first() {
            Some((_, s)) => (s.salt.clone(), s.iterations),
            None => (tokens.scram_salt().map_err(store_error)?, SCRAM_ITERATIONS),
        };
        candidates.retain(|(_, s)| s.salt == salt && s.iterations == iterations);
        let mut server_nonce = [0u8; 18];
        crate::util::random::fill(&mut server_nonce);
        let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        Ok(Challenge {
            candidates,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }

    /// The token whose verifier accepts the client's proof, and the server's signature; a
    /// failure is audited (`auth_failure`, or `denied` for a token of another role).
    fn verify(&self, ch: &Challenge, client_final: &str) -> PgWireResult<(TokenRecord, [u8; 32])> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or_else(|| fatal("no client proof"))?;
        let proof = B64.decode(proof).map_err(|_| fatal("a malformed proof"))?;
        let binding = attribute(without_proof, "c").ok_or_else(|| fatal("no channel binding"))?;
        if binding != B64.encode(&ch.gs2_header) {
            return Err(fatal("the channel binding does not match"));
        }
        if attribute(without_proof, "r") != Some(ch.nonce.as_str()) {
            return Err(fatal("the nonce does not match"));
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            ch.client_first_bare, ch.server_first
        );
        let found = ch
            .candidates
            .iter()
            .find(|(_, s)| s.accepts(auth_message.as_bytes(), &proof));
        let signature = found.map(|(_, s)| s.server_signature(auth_message.as_bytes()));
        match self
            .st
            .app
            .authorise_found(found.map(|(r, _)| r.clone()), Role::Analyst, ROUTE)
        {
            Ok(rec) => Ok((rec, signature.unwrap_or_default())),
            Err(Denial::WrongRole { .. }) => {
                Err(pg_error("FATAL", "28000", "this needs an analyst token"))
            }
            Err(_) => Err(pg_error(
                "FATAL",
                "28P01",
                "password authentication failed: the password is an analyst token, the user its id or \"analyst\"",
            )),
        }
    }
}

fn store_error(e: crate::access::TokenError) -> PgWireError {
    eprintln!("tip serve (Postgres): {e}");
    pg_error("FATAL", "XX000", "the token store cannot be read")
}

fn fatal(why: &str) -> PgWireError {
    pg_error("FATAL", "08P01", format!("SCRAM-SHA-256: {why}"))
}

fn text(data: &[u8]) -> PgWireResult<&str> {
    std::str::from_utf8(data).map_err(|_| fatal("a message that is not UTF-8"))
}

/// The GS2 header (`n,,` or `y,,`: no channel binding, which is not offered) and the bare
/// client-first message.
fn split_gs2(client_first: &str) -> PgWireResult<(&str, &str)> {
    let flag_end = client_first
        .find(',')
        .ok_or_else(|| fatal("no GS2 header"))?;
    let flag = &client_first[..flag_end];
    if flag != "n" && flag != "y" {
        return Err(fatal("channel binding is not offered"));
    }
    let rest = &client_first[flag_end + 1..];
    let authzid_end = rest.find(',').ok_or_else(|| fatal("no GS2 header"))?;
    if authzid_end != 0 {
        return Err(fatal("an authorisation identity is not supported"));
    }
    let header_len = flag_end + 1 + authzid_end + 1;
    Ok((&client_first[..header_len], &client_first[header_len..]))
}

/// The value of attribute `name` (`r=...`) of a SCRAM message.
fn attribute<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_messages_are_read_as_rfc_5802_writes_them() {
        let (h, bare) = split_gs2("n,,n=,r=abc").unwrap();
        assert_eq!((h, bare), ("n,,", "n=,r=abc"));
        assert_eq!(B64.encode(h), "biws");
        assert_eq!(split_gs2("y,,n=u,r=x").unwrap().0, "y,,");
        assert!(split_gs2("p=tls-server-end-point,,n=,r=x").is_err());
        assert!(split_gs2("n,a=admin,n=,r=x").is_err());
        assert_eq!(attribute("c=biws,r=abc,p=xyz", "r"), Some("abc"));
        assert_eq!(attribute("c=biws,r=abc", "p"), None);
    }
}
