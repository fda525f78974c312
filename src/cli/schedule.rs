//! `tip schedule`: runs pipelines and extracts on their cron schedules (UTC).

use std::process::ExitCode;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use tip::lake::system::RunOutcome;

use super::check::check_or_fail;
use super::{Cli, app, warn_if_dev_key};

pub async fn run(cli: &Cli, once: bool, now: Option<&str>) -> anyhow::Result<ExitCode> {
    let fixed = now
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| anyhow!("--now {s:?}: expected an RFC 3339 time"))
        })
        .transpose()?;
    let app = app(cli)?;
    check_or_fail(&app).await?;
    let scheduler = app.scheduler(cli.key_file.as_deref()).await?;
    warn_if_dev_key(&app, scheduler.dev_key());
    for j in &scheduler.jobs {
        eprintln!("tip schedule: {} at \"{}\" (UTC)", j.name, j.cron);
    }
    let mut failed = false;
    loop {
        let at = fixed.unwrap_or_else(Utc::now);
        let events = match scheduler.tick(at).await {
            Ok(e) => e,
            // A long-running scheduler reports a lake it cannot reach and tries again at the
            // next minute; a single round fails.
            Err(e) if !once && fixed.is_none() => {
                eprintln!(
                    "tip schedule: {}; retrying next minute",
                    e.to_string().replace('\n', " ")
                );
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        for e in events {
            failed |= e.event == RunOutcome::Failed;
            println!(
                "{} {} slot {} {}{}",
                e.at,
                e.job,
                e.slot,
                e.event.as_str(),
                e.message.map(|m| format!(": {m}")).unwrap_or_default()
            );
        }
        if once || fixed.is_some() {
            break;
        }
        // Wake at the start of the next minute.
        let secs = 60 - Utc::now().timestamp().rem_euclid(60) as u64;
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
