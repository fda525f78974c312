//! `tip generate`: synthetic partner reports for demos, tests and benchmarks.

use std::path::Path;
use std::process::ExitCode;

pub fn run(out: &Path, rows: usize, seed: u64) -> anyhow::Result<ExitCode> {
    let truth = tip::generate::generate(out, rows, seed)?;
    println!(
        "generated {} persons, {} rows in {} files ({} planted bad rows) under {}",
        truth.persons,
        truth.files.iter().map(|f| f.rows).sum::<u64>(),
        truth.files.len(),
        truth.files.iter().map(|f| f.bad_rows.len()).sum::<usize>(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
