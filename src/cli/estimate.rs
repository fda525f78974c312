//! `tip estimate`: multiple systems estimation from a capture-history file, as a table or JSON,
//! with the model, the checks, the warnings and the assumptions next to the number.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use tip::app::estimates::ASSUMPTIONS;
use tip::app::{Actor, App};
use tip::estimate::capture::Stratum;
use tip::estimate::{Estimate, Options, Rule};
use tip::query::capture::{LakeEstimate, Selection};

use super::{Cli, app};

#[derive(clap::Args)]
pub struct Args {
    /// Estimate from a capture-history file instead of the lake: one 0/1 column per list and
    /// a `count` column.
    #[arg(long = "capture-histories", alias = "histories", value_name = "FILE")]
    histories: Option<PathBuf>,
    /// What makes a list: partner, org_type (the registry's organisation types), or a grouping
    /// under [estimate.lists] in the configuration.
    #[arg(long, default_value = "org_type")]
    lists: String,
    /// The year of the cases (by their period); default: last year (the last complete one).
    #[arg(long)]
    year: Option<i32>,
    /// Only the cases of partners in this reporting country (ISO alpha-2); default: the region.
    #[arg(long)]
    country: Option<String>,
    /// Only children: persons registered as minors.
    #[arg(long)]
    children: bool,
    /// One estimate per stratum: minor, sex, exploitation (comma-separated).
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// table or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Bootstrap resamples for the interval (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Seed of the bootstrap: the same seed gives the same interval.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// How two-list terms are chosen: stepwise (Chan, Silverman & Vincent), aic or bic.
    #[arg(long, default_value = "stepwise")]
    rule: String,
    /// Stepwise: a two-list term enters the model when its p-value is below this.
    #[arg(long = "p-enter", default_value_t = 0.02)]
    p_enter: f64,
}

pub async fn run(cli: &Cli, a: &Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.p_enter) {
        bail!("--p-enter: a probability between 0 and 1");
    }
    if a.format != "json" && a.format != "table" {
        bail!("--format {:?}: table or json", a.format);
    }
    let Some(rule) = Rule::parse(&a.rule) else {
        bail!("--rule {:?}: stepwise, aic or bic", a.rule);
    };
    let o = Options {
        p_enter: a.p_enter,
        bootstrap: a.bootstrap,
        seed: a.seed,
        rule,
    };
    let app = app(cli)?;
    let Some(file) = &a.histories else {
        return from_lake(&app, a, &o).await;
    };
    let e = app.estimate_histories(file, &o)?;
    if a.format == "json" {
        let mut v = serde_json::to_value(&e)?;
        v["assumptions"] = serde_json::json!(ASSUMPTIONS);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}{}", table(&e), assumptions());
    }
    Ok(ExitCode::SUCCESS)
}

async fn from_lake(app: &App, a: &Args, o: &Options) -> anyhow::Result<ExitCode> {
    let by: Vec<Stratum> =
        a.by.iter()
            .map(|s| {
                Stratum::parse(s)
                    .ok_or_else(|| anyhow::anyhow!("--by {s:?}: minor, sex or exploitation"))
            })
            .collect::<Result<_, _>>()?;
    // The last complete calendar year unless told.
    let year = a
        .year
        .unwrap_or_else(|| chrono::Datelike::year(&chrono::Utc::now()) - 1);
    let sel = Selection {
        lists: a.lists.clone(),
        from: format!("{year:04}-01"),
        to: format!("{year:04}-12"),
        country: a.country.clone(),
    };
    let e = app
        .estimate_lake(&sel, a.children, &by, o, Actor::Cli)
        .await?;
    if a.format == "json" {
        let mut v = serde_json::to_value(&e)?;
        v["assumptions"] = serde_json::json!(ASSUMPTIONS);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}{}", lake_table(&e, year), assumptions());
    }
    match e.strata.iter().find(|s| s.estimate.is_some()) {
        Some(_) => Ok(ExitCode::SUCCESS),
        None if e.strata.len() == 1 => bail!(
            "no estimate: {}",
            e.strata[0].refused.clone().unwrap_or_default()
        ),
        None => bail!("no stratum has an estimate"),
    }
}

fn lake_table(e: &LakeEstimate, year: i32) -> String {
    let who = if e.children { "children" } else { "persons" };
    let place = e.selection.country.as_deref().unwrap_or("the region");
    let mut s = format!(
        "{who} in {place}, {year} (cases {}..{}), lists by {}: {}\n",
        e.selection.from,
        e.selection.to,
        e.selection.lists,
        e.lists.join(", ")
    );
    s.push_str(&format!(
        "case records: {} ({} without person_id, {} not a victim, {} off the lists); linked persons: {}\n",
        e.records, e.records_without_person_id, e.records_not_victim, e.records_off_list, e.people
    ));
    for w in &e.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    for st in &e.strata {
        if !st.stratum.is_empty() {
            let name: Vec<String> = st
                .stratum
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            s.push_str(&format!(
                "\n== {} ({} persons)\n",
                name.join(", "),
                st.people
            ));
        }
        match (&st.estimate, &st.refused) {
            (Some(est), _) => s.push_str(&table(est)),
            (None, r) => s.push_str(&format!("no estimate: {}\n", r.as_deref().unwrap_or(""))),
        }
    }
    s
}

fn assumptions() -> String {
    let mut s = "assumptions:\n".to_string();
    for a in ASSUMPTIONS {
        s.push_str(&format!("  - {a}\n"));
    }
    s
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
    s
}
