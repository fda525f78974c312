//! `tip export`: a plain hive-partitioned Parquet snapshot of every table. Needs no key.

use std::path::Path;
use std::process::ExitCode;

use tip::app::Actor;
use tip::lake::AsOf;

use super::{Cli, app};

pub async fn run(cli: &Cli, out: &Path, as_of: Option<&str>) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let as_of = as_of.map(AsOf::parse).transpose()?;
    let (progress, bar) = super::progress::Bar::rows(format!("export to {}", out.display()));
    let counts = app
        .export(out, as_of.as_ref(), Actor::Cli, progress.as_deref())
        .await;
    drop(bar);
    for (t, n) in counts? {
        println!("{t}: {n} rows");
    }
    println!("exported to {}", out.display());
    Ok(ExitCode::SUCCESS)
}
