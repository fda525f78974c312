//! `tip load`: files in the canonical layout (or an HTCDS template) for one partner; and the
//! per-file summary that `tip ingest` prints too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use tip::app::Actor;
use tip::ingest::{Channel, FileReport, FileStatus, LoadFormat, Mode, Period, Submission};

use super::{Cli, app, ingestion};

pub struct Request<'a> {
    pub partner: &'a str,
    pub record_type: &'a str,
    pub format: Option<&'a str>,
    pub snapshot: Option<&'a str>,
    pub withdraw: bool,
}

impl Request<'_> {
    fn mode(&self) -> anyhow::Result<Mode> {
        Ok(match (self.snapshot, self.withdraw) {
            (Some(p), _) => {
                Mode::Snapshot(Period::parse(p).map_err(|e| anyhow!("--snapshot: {e}"))?)
            }
            (None, true) => Mode::Withdraw,
            (None, false) => Mode::Upsert,
        })
    }
}

pub async fn run(cli: &Cli, req: &Request<'_>, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mode = req.mode()?;
    let app = app(cli)?;
    let ing = ingestion(&app, cli).await?.ingestor;
    let record = ing.record(req.record_type)?.clone();
    let partner = req.partner;
    let mut rejected = false;
    for path in files {
        let fmt = load_format(req.format, path)?;
        let mapping = ing.mapping_for_load(&record, fmt, path)?;
        let (progress, bar) = super::progress::Bar::file(path);
        let sub = Submission {
            partner,
            mapping: &mapping,
            channel: Channel::Load,
            mode: mode.clone(),
            progress,
        };
        let report = ing.ingest_file_and_compact(&sub, path).await;
        drop(bar);
        let report = report?;
        app.record_file(&report, partner, Channel::Load, Actor::Cli);
        rejected |= matches!(report.status, FileStatus::Rejected(_));
        print_file(&report);
    }
    if rejected {
        eprintln!("tip: one or more files were rejected; nothing of them was committed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--format`, or the file's extension.
pub fn load_format(format: Option<&str>, path: &Path) -> anyhow::Result<LoadFormat> {
    match format {
        Some(f) => LoadFormat::parse(f)
            .ok_or_else(|| anyhow!("unknown format {f:?} ({})", LoadFormat::NAMES.join(", "))),
        None => LoadFormat::from_extension(path)
            .ok_or_else(|| anyhow!("{}: cannot tell the format; give --format", path.display())),
    }
}

/// One file's summary: rows read, accepted and quarantined, and each row problem (row,
/// field, reason code; never the value).
pub fn print_file(f: &FileReport) {
    match &f.status {
        FileStatus::Unchanged => println!(
            "  {} [{}]: unchanged (already ingested as submission {})",
            f.file,
            f.record_type,
            f.earlier.as_deref().unwrap_or("-")
        ),
        FileStatus::Rejected(reason) => {
            println!("  {} [{}]: REJECTED: {reason}", f.file, f.record_type);
            eprintln!("tip: {reason}");
        }
        FileStatus::Committed => print_committed(f),
    }
}

fn print_committed(f: &FileReport) {
    let period = match &f.period {
        Some((a, b)) if a == b => a.clone(),
        Some((a, b)) => format!("{a}..{b}"),
        None => "-".into(),
    };
    let declared = match f.mode.period() {
        Some(p) => format!(" (complete snapshot of {p})"),
        None => String::new(),
    };
    println!(
        "  {} [{}]{declared}: {} rows read, {} accepted, {} quarantined; {} inserted, {} updated, {} removed; period {period}; table version {}",
        f.file,
        f.record_type,
        f.rows_read,
        f.rows_accepted,
        f.rows_quarantined(),
        f.rows_inserted,
        f.rows_updated,
        f.rows_removed,
        f.table_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    );
    if f.rows_kept > 0 {
        println!(
            "    note: {} records kept as they were: the snapshot's rows for them were set aside (see below)",
            f.rows_kept
        );
    }
    if !f.imputed.is_empty() {
        println!(
            "    note: {} filled in from the submission date (the layout has no such column)",
            f.imputed.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    const SHOWN: usize = 20;
    for i in f.issues.iter().take(SHOWN) {
        println!(
            "    {} row {}, field {}: {}",
            f.file, i.row, i.field, i.reason
        );
    }
    if f.issues.len() > SHOWN {
        println!(
            "    ... and {} more (table quarantine)",
            f.issues.len() - SHOWN
        );
    }
}
