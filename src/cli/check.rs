//! `tip check`: every configuration file, partner mapping, preset and extract definition.

use std::process::ExitCode;

use anyhow::bail;
use tip::app::App;

use super::{Cli, app};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let report = app.check().await?;
    for f in &report.files {
        println!("  {}", f.display());
    }
    if report.problems.is_empty() {
        println!(
            "tip check: configuration, schemas, registry and {} more files are valid",
            report.files.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &report.problems {
        eprintln!("tip check: {p}");
    }
    eprintln!("tip check: {} problem(s)", report.problems.len());
    Ok(ExitCode::FAILURE)
}

/// Runs the check before a long-running command starts; any problem stops it.
pub async fn check_or_fail(app: &App) -> anyhow::Result<()> {
    let report = app.check().await?;
    if let Some(first) = report.problems.first() {
        bail!(
            "the configuration has {} problem(s) (run `tip check`); the first: {first}",
            report.problems.len()
        );
    }
    Ok(())
}
