//! `tip tables`: the tables and views, with their columns. Needs no key.

use std::process::ExitCode;

use super::{Cli, app};

pub async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let app = app(cli)?;
    let (tables, views) = app.describe_tables().await?;
    for t in &tables {
        println!("{} — {}", t.name, t.description);
        for c in &t.columns {
            println!(
                "  {:<22} {:<28} {:<11} {}",
                c.name, c.data_type, c.class, c.description
            );
        }
        println!();
    }
    println!("views");
    for v in &views {
        println!("\n{} — {}", v.name, v.description);
        for c in &v.columns {
            println!("  {:<22} {}", c.name, c.data_type);
        }
    }
    Ok(ExitCode::SUCCESS)
}
