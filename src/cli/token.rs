//! `tip token new|list|revoke`: access tokens for `tip serve`. Needs no key.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tip::access::Role;
use tip::app::Actor;

use super::{Cli, TokenCommand, app};

pub fn run(cli: &Cli, command: &TokenCommand) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    match command {
        TokenCommand::New { role, org } => {
            let r = Role::parse(role)
                .ok_or_else(|| anyhow!("--role {role:?}: partner, analyst or admin"))?;
            let (token, rec) = app
                .make_token(r, org.as_deref(), Actor::Cli)
                .map_err(|e| anyhow!("--org: {e}"))?;
            println!("{token}");
            eprintln!(
                "tip: token {} ({role}{}) made; it is shown this once and only its hash is kept",
                rec.id,
                rec.org
                    .as_deref()
                    .map(|o| format!(" for {o}"))
                    .unwrap_or_default()
            );
        }
        TokenCommand::List => {
            for t in app.tokens().load()? {
                println!(
                    "{}  {:<8} {:<12} created {}{}",
                    t.id,
                    t.role.as_str(),
                    t.org.as_deref().unwrap_or("-"),
                    t.created_at,
                    t.revoked_at
                        .map(|r| format!("  REVOKED {r}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !app.revoke_token(id, Actor::Cli)? {
                bail!("no live token {id}");
            }
            eprintln!("tip: token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
