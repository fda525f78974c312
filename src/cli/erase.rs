//! `tip erase`: a person's or a case's rows out of every table and out of the lake's history.

use std::process::ExitCode;

use tip::app::Actor;
use tip::app::erasure::ErasureTarget;

use super::{Cli, app};

const WHAT_IT_DOES: &str = "An erasure removes every row of the person (or of the partner's case) from every table, then purges the lake's history: files that held earlier versions are deleted and time travel to before the erasure is no longer possible (it is refused with a message). Extracts already published and exports made with `tip export` are not touched: delete or remake exports that may hold the rows. Run it when no ingestion is running.";

pub async fn run(cli: &Cli, target: ErasureTarget<'_>, confirm: bool) -> anyhow::Result<ExitCode> {
    eprintln!("tip: {WHAT_IT_DOES}");
    if !confirm {
        eprintln!("tip: nothing changed; run again with --confirm to erase");
        return Ok(ExitCode::FAILURE);
    }
    let app = app(cli)?;
    let e = app
        .erase(target, cli.key_file.as_deref(), Actor::Cli)
        .await?;
    for (t, n) in &e.tables {
        println!("{t}: {n} rows erased");
    }
    println!(
        "erased {} rows; history purged ({} files deleted)",
        e.rows_removed, e.files_purged
    );
    Ok(ExitCode::SUCCESS)
}
