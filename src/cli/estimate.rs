//! `tip estimate`: multiple systems estimation from a capture-history file, as a table or JSON,
//! with the model, the checks, the warnings and the assumptions next to the number.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use tip::app::estimates::ASSUMPTIONS;
use tip::estimate::{Estimate, Options};

use super::{Cli, app};

#[derive(clap::Args)]
pub struct Args {
    /// Capture histories: one 0/1 column per list and a `count` column.
    #[arg(long)]
    histories: PathBuf,
    /// table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Bootstrap resamples for the interval (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap: the same seed gives the same interval.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// A two-list term enters the model when its p-value is below this.
    #[arg(long = "p-enter", default_value_t = 0.02)]
    p_enter: f64,
}

pub fn run(cli: &Cli, a: &Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.p_enter) {
        bail!("--p-enter: a probability between 0 and 1");
    }
    let o = Options {
        p_enter: a.p_enter,
        bootstrap: a.bootstrap,
        seed: a.seed,
    };
    let app = app(cli)?;
    let e = app.estimate_histories(&a.histories, &o)?;
    match a.format.as_str() {
        "json" => {
            let mut v = serde_json::to_value(&e)?;
            v["assumptions"] = serde_json::json!(ASSUMPTIONS);
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" => print!("{}", table(&e)),
        other => bail!("--format {other:?}: table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(e: &Estimate) -> String {
    let mut s = format!(
        "lists: {} ({} people observed)\nestimate: {:.0} people ({} observed, {:.0} not observed by any list)\n",
        e.lists.join(", "),
        e.observed,
        e.estimate,
        e.observed,
        e.unobserved
    );
    for i in &e.intervals {
        s.push_str(&format!(
            "{:.0}% interval: {:.0} to {:.0} (BCa bootstrap, {} resamples, seed {})\n",
            i.level * 100.0,
            i.lower,
            i.upper,
            e.bootstrap,
            e.seed
        ));
    }
    let m = &e.model_interval;
    s.push_str(&format!(
        "95% interval of the chosen model alone: {:.0} to {:.0} (ignores the uncertainty of the model choice)\n",
        m.lower, m.upper
    ));
    let terms = if e.terms.is_empty() {
        "none".to_string()
    } else {
        e.terms.join(", ")
    };
    s.push_str(&format!("model: main effects; two-list terms: {terms}\n"));
    if !e.never_overlapping_terms.is_empty() {
        s.push_str(&format!(
            "  at minus infinity (these lists never overlap): {}\n",
            e.never_overlapping_terms.join(", ")
        ));
    }
    s.push_str(&format!(
        "checks: the estimate {} (linear programme) and the model {} identifiable\nrule: {}\n",
        if e.checks_passed {
            "exists"
        } else {
            "may not exist"
        },
        if e.checks_passed { "is" } else { "may not be" },
        e.rule
    ));
    for w in &e.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    s.push_str("assumptions:\n");
    for a in ASSUMPTIONS {
        s.push_str(&format!("  - {a}\n"));
    }
    s
}
