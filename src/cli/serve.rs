//! `tip serve`: the partner upload API and page, the analyst SQL API. With
//! `serve.uploads = false` the server never loads the key and answers analysts only.

use std::process::ExitCode;
use std::sync::Arc;

use super::check::check_or_fail;
use super::{Cli, app, ingestion};

pub async fn run(
    cli: &Cli,
    listen: &Option<String>,
    flight: &Option<String>,
    postgres: &Option<String>,
) -> anyhow::Result<ExitCode> {
    let app = Arc::new(app(cli)?);
    check_or_fail(&app).await?;
    let uploads = if app.config.serve.uploads {
        Some(app.uploads(ingestion(&app, cli).await?)?)
    } else {
        eprintln!("tip serve: serve.uploads = false: analysts only, no key loaded");
        None
    };
    let cfg = &app.config.serve;
    let listen = tip::serve::Listen {
        http: listen.clone().unwrap_or_else(|| cfg.listen.clone()),
        flight: flight.clone().or_else(|| cfg.flight_listen.clone()),
        postgres: postgres.clone().or_else(|| cfg.postgres_listen.clone()),
    };
    tip::serve::serve(app, uploads, &listen).await?;
    Ok(ExitCode::SUCCESS)
}
