//! `tip ingest`: runs the partner pipelines and prints a summary per pipeline, then cases by
//! month.

use std::io::Write;
use std::process::ExitCode;

use tip::app::{Actor, App};
use tip::ingest::{Channel, FileStatus};
use tip::query::{OutputFormat, render};

use super::load::print_file;
use super::{Cli, app, ingestion};

pub async fn run(cli: &Cli, pipelines: &[String]) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let ing = ingestion(&app, cli).await?.ingestor;
    let (progress, bar) = super::progress::Bar::rows("tip ingest".into());
    let reports = ing.run_pipelines_counted(pipelines, progress).await;
    drop(bar);
    let reports = reports?;
    let mut rejected = false;
    for p in &reports {
        println!("pipeline {} (partner {})", p.name, p.partner);
        if p.files.is_empty() {
            println!("  no files");
        }
        for f in &p.files {
            app.record_file(f, &p.partner, Channel::Pipeline(&p.name), Actor::Cli);
            rejected |= matches!(f.status, FileStatus::Rejected(_));
            print_file(f);
        }
    }
    print_trend(&app).await?;
    Ok(if rejected {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

const TREND: &str = "SELECT period AS month, count(*) AS case_reports, count(DISTINCT person_id) AS persons, \
    count(DISTINCT CASE WHEN is_minor THEN person_id END) AS children, \
    count(DISTINCT reporting_country) AS countries \
    FROM cases WHERE coalesce(imputed_fields, '') NOT LIKE '%registered_on%' \
    GROUP BY period ORDER BY period";

const UNDATED: &str =
    "SELECT CAST(count(*) AS BIGINT) AS n FROM cases WHERE imputed_fields LIKE '%registered_on%'";

async fn print_trend(app: &App) -> anyhow::Result<()> {
    let session = app.session(None).await?;
    let batches = session.run(TREND).await?;
    println!("\ncases by month of registration (all partners; a person counts once per month)");
    std::io::stdout().write_all(&render(&batches, OutputFormat::Table)?)?;
    let undated = session.run(UNDATED).await?;
    let n = undated
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    if n > 0 {
        println!(
            "({n} case reports without a registration date, such as HTCDS templates, are left out: they carry the submission date)"
        );
    }
    Ok(())
}
