//! `tip key new PATH`, `tip key epoch --reason TEXT --confirm`.

use std::process::ExitCode;

use tip::app::Actor;
use tip::app::ingestion::EPOCH_CONSEQUENCES;
use tip::pseudonym::Key;

use super::{Cli, KeyCommand, app};

pub async fn run(cli: &Cli, command: &KeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeyCommand::New { path } => {
            let k = Key::write_new(path)?;
            eprintln!(
                "tip: wrote a new key to {} (key version {})",
                path.display(),
                k.version()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Epoch { reason, confirm } => {
            eprintln!("tip: {EPOCH_CONSEQUENCES}");
            if !confirm {
                eprintln!(
                    "tip: nothing changed; run again with --confirm to start the new key epoch"
                );
                return Ok(ExitCode::FAILURE);
            }
            let app = app(cli)?;
            let e = app
                .start_key_epoch(cli.key_file.as_deref(), reason, Actor::Cli)
                .await?;
            println!(
                "key epoch {} started: key version {} (before: {})",
                e.epoch,
                e.key_version,
                e.previous_key_version.as_deref().unwrap_or("none")
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
