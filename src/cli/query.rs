//! `tip query`: read-only SQL over the lake, or an interactive shell on a terminal. Needs no
//! key.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow, bail};
use tip::app::Actor;
use tip::lake::AsOf;
use tip::query::{Encoder, OutputFormat, StreamFormat, render};

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
            let (app, session) = (&app, &session);
            let run = move |sql: String| -> futures::future::BoxFuture<'_, Result<_, String>> {
                Box::pin(async move {
                    app.query(session, &sql, Actor::Cli)
                        .await
                        .map_err(|e| e.to_string())
                })
            };
            tip::query::shell(
                &run,
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
    // Written batch by batch, as the answer comes: the first rows show at once and memory does
    // not grow with the answer. A limit reached part-way stops the output with the error on
    // stderr and a non-zero exit (what was written before it is not a whole answer).
    let mut answer = app.query_stream(&session, &text, Actor::Cli).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if fmt == OutputFormat::Table {
        table_pages(&mut answer, &mut out).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let (mut enc, head) = Encoder::start(StreamFormat::Text(fmt), &answer.schema())?;
    out.write_all(&head)?;
    while let Some(b) = answer.next().await {
        out.write_all(&enc.batch(&b?)?)?;
        out.flush()?;
    }
    out.write_all(&enc.finish()?)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Rows an aligned table is sized on: a table is printed per page of about this many rows, as
/// psql does with FETCH_COUNT, so a long answer streams in the table format too.
const TABLE_PAGE_ROWS: usize = 500;

/// The table format, page by page (an empty answer prints its header).
async fn table_pages(
    answer: &mut tip::app::analysis::AuditedAnswer,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let (mut page, mut rows, mut printed) = (Vec::new(), 0usize, false);
    while let Some(b) = answer.next().await {
        let b = b?;
        rows += b.num_rows();
        page.push(b);
        if rows >= TABLE_PAGE_ROWS {
            out.write_all(&render(&page, OutputFormat::Table)?)?;
            out.flush()?;
            (page, rows, printed) = (Vec::new(), 0, true);
        }
    }
    if rows > 0 || !printed {
        if page.is_empty() {
            page.push(arrow::record_batch::RecordBatch::new_empty(answer.schema()));
        }
        out.write_all(&render(&page, OutputFormat::Table)?)?;
    }
    out.flush()?;
    Ok(())
}
