//! `tip query`: read-only SQL over the lake, or an interactive shell on a terminal. Needs no
//! key.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use tip::app::Actor;
use tip::lake::AsOf;
use tip::query::{OutputFormat, render};

use super::{Cli, app};

pub async fn run(
    cli: &Cli,
    format: &str,
    file: Option<&Path>,
    as_of: Option<&str>,
    sql: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let fmt = OutputFormat::parse(format)
        .ok_or_else(|| anyhow!("unknown --format {format:?} (table, csv, json, ndjson)"))?;
    let app = app(cli)?;
    let as_of = as_of.map(AsOf::parse).transpose()?;
    let session = app.session(as_of.as_ref()).await?;
    if session.lake_is_new() {
        eprintln!(
            "tip: no lake at {} yet (nothing ingested there): every table is empty",
            app.lake.location
        );
    }
    let text = match (file, sql) {
        (Some(f), None) => {
            std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?
        }
        (None, Some(s)) => s.to_string(),
        (Some(_), Some(_)) => bail!("give SQL or -f FILE, not both"),
        (None, None) if std::io::stdin().is_terminal() => {
            let history =
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".tip_query_history"));
            tip::query::shell(
                &session,
                fmt,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout(),
                &mut std::io::stderr(),
                history.as_deref(),
            )
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        (None, None) => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
    };
    let batches = app.query(&session, &text, Actor::Cli).await?;
    std::io::stdout().write_all(&render(&batches, fmt)?)?;
    Ok(ExitCode::SUCCESS)
}
