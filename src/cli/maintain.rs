//! `tip maintain`: retention, compaction, checkpoints and vacuum. Needs no key.

use std::process::ExitCode;

use tip::app::Actor;

use super::{Cli, app};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let m = app.maintain(Actor::Cli).await?;
    for (t, n) in &m.expired {
        println!("{t}: {n} records past their retention deleted");
    }
    for (t, u) in &m.tables {
        println!(
            "{t}: {} small files compacted, {} files vacuumed, {} log entries removed",
            u.files_compacted, u.files_vacuumed, u.logs_removed
        );
    }
    println!(
        "time travel reaches back {} days (lake.history_days)",
        app.config.lake.history_days
    );
    Ok(ExitCode::SUCCESS)
}
