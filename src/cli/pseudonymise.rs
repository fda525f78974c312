//! `tip pseudonymise`: partner side — pseudonymises a file locally so raw identifiers never
//! leave the partner. Needs the key, and no lake.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use tip::config::FormatOptions;
use tip::ingest::FileStatus;
use tip::mapping::Mapping;
use tip::source::Format;

use super::{Cli, app, warn_dev_key};

pub fn run(
    cli: &Cli,
    partner: &str,
    record_type: &str,
    format: Option<&str>,
    input: &Path,
    output: &Path,
) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let side = app.partner_side(cli.key_file.as_deref())?;
    warn_dev_key(&app, &side);
    let ing = side.ingestor;
    let record = ing.record(record_type)?.clone();
    let fmt = match format {
        Some(f) => f.to_string(),
        None => input
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default(),
    };
    let f = Format::parse(&fmt)
        .ok_or_else(|| anyhow!("unknown format {fmt:?} (csv, json, ndjson, xlsx)"))?;
    let mapping = Mapping::canonical(&record, f, FormatOptions::default());
    let report = ing.pseudonymise_file(partner, &mapping, input, output)?;
    if let FileStatus::Rejected(reason) = &report.status {
        bail!("{reason}");
    }
    println!(
        "{} [{}]: {} rows pseudonymised into {}, {} left out (key version {})",
        report.file,
        report.record_type,
        report.rows_accepted,
        output.display(),
        report.rows_quarantined(),
        ing.key_version()
    );
    for i in &report.issues {
        println!(
            "  {} row {}, field {}: {}",
            report.file, i.row, i.field, i.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
