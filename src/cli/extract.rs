//! `tip extract`: the monthly statistical extracts with disclosure control. Needs no key.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use tip::app::Actor;
use tip::app::extracts::{parse_month, read_manifest};

use super::{Cli, app};

pub struct Request<'a> {
    pub month: &'a str,
    pub name: Option<&'a str>,
    pub out: Option<&'a str>,
    pub reproduce: Option<&'a Path>,
}

pub async fn run(cli: &Cli, req: &Request<'_>) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let month = parse_month(req.month)?;
    let chosen = app.choose_extracts(req.name)?;
    if (req.out.is_some() || req.reproduce.is_some()) && chosen.len() > 1 {
        bail!("several extracts are defined: choose one with --name");
    }
    let manifest = req.reproduce.map(read_manifest).transpose()?;
    for def in &chosen {
        let dir = match req.out {
            Some(d) => app.config.location(d)?,
            None => app.extract_dir(def, &month)?,
        };
        let bar = super::progress::Bar::step(format!("extract {} for {month}", def.name));
        let m = app
            .extract(def, &month, &dir, manifest.as_ref(), Actor::Cli)
            .await;
        drop(bar);
        let m = m?;
        println!(
            "extract {} for {month} (lake version {}): {} files in {}{}",
            def.name,
            m.lake_version,
            m.files.len() + 1,
            dir,
            if manifest.is_some() {
                ", byte-identical to the manifest"
            } else {
                ""
            }
        );
        for t in &m.tables {
            println!(
                "  {:<40} {:>4} rows, {:>3} <{} , {:>3} withheld",
                t.name, t.rows, t.suppressed_small, m.rules.threshold, t.withheld
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
