//! The estimate tables of an extract: per reporting country (and the region) and year, how
//! many people were identified and how many there probably are, seen and unseen (multiple
//! systems estimation, [`crate::estimate`]). Only the estimate, its interval and the rounded
//! number identified leave the hub: the capture histories (small-count tables) never do.

use serde::Serialize;

use super::ExtractError;
use super::definition::{EstimateDef, ExtractDef};
use crate::config::{EstimateConfig, Registry};
use crate::disclosure::{Published, Rules};
use crate::estimate::{self, Options, Rule};
use crate::query::Session;
use crate::query::capture::{self, Selection};

/// Label of a number that is not published because no estimate is given.
pub const NOT_ESTIMATED: &str = "not estimated";

/// One country (or the region) and year.
#[derive(Debug, Clone, Serialize)]
pub struct EstimateRow {
    pub year: String,
    /// First and last month counted (`YYYY-MM..YYYY-MM`).
    pub months: String,
    /// Reporting country, or `Total` for the region.
    pub country: String,
    /// Linked people identified, protected like every count.
    pub identified: Published,
    /// Estimate and the 95% BCa interval, rounded; None: not estimated (see `note`).
    pub estimate: Option<[u64; 3]>,
    pub lists: Vec<String>,
    pub terms: Vec<String>,
    /// Why there is no estimate, or what to keep in mind.
    pub note: String,
}

/// An estimate table of an extract.
#[derive(Debug, Clone, Serialize)]
pub struct EstimateOut {
    pub name: String,
    pub title: String,
    pub children: bool,
    pub rule: String,
    pub bootstrap: usize,
    pub seed: u64,
    pub rows: Vec<EstimateRow>,
}

/// The measures of an estimate row, in long form (and a `note` line where there is one).
pub const MEASURES: [&str; 4] = ["identified", "estimate", "lower_95", "upper_95"];

impl EstimateRow {
    /// (measure, label, number) for each measure.
    pub fn measures(&self, rules: &Rules) -> Vec<(&'static str, String, Option<u64>)> {
        let mut out = vec![(
            MEASURES[0],
            self.identified.label(rules),
            self.identified.number(),
        )];
        for (k, m) in MEASURES[1..].iter().enumerate() {
            out.push(match self.estimate {
                Some(v) => (*m, v[k].to_string(), Some(v[k])),
                None => (*m, NOT_ESTIMATED.to_string(), None),
            });
        }
        // Why not estimated, or what to keep in mind: text, no count.
        if !self.note.is_empty() {
            out.push(("note", self.note.clone(), None));
        }
        out
    }
}

/// A count protected alone: zero, small (suppressed) or rounded.
fn protect(n: u64, rules: &Rules) -> Published {
    match n {
        0 => Published::Zero,
        n if n < rules.threshold => Published::Small,
        n => Published::Value(rules.round(n)),
    }
}

/// Builds every estimate table of `def` for `month`.
pub async fn build(
    session: &Session,
    registry: &Registry,
    groupings: &EstimateConfig,
    def: &ExtractDef,
    month: &str,
) -> Result<Vec<EstimateOut>, ExtractError> {
    let mut out = Vec::new();
    for e in &def.estimates {
        out.push(build_one(session, registry, groupings, def, e, month).await?);
    }
    Ok(out)
}

async fn build_one(
    session: &Session,
    registry: &Registry,
    groupings: &EstimateConfig,
    def: &ExtractDef,
    e: &EstimateDef,
    month: &str,
) -> Result<EstimateOut, ExtractError> {
    let year: i32 = month
        .get(..4)
        .and_then(|y| y.parse().ok())
        .ok_or_else(|| ExtractError::Usage(format!("--month {month:?}: expected YYYY-MM")))?;
    let o = Options {
        bootstrap: e.bootstrap,
        seed: e.seed,
        ..Options::default()
    };
    let qerr = |source| ExtractError::Query {
        extract: def.name.clone(),
        table: e.name.clone(),
        source,
    };
    let mut rows = Vec::new();
    for y in (year - e.years + 1..=year).rev() {
        let to = if y == year {
            month.to_string()
        } else {
            format!("{y:04}-12")
        };
        let mut sel = Selection {
            lists: e.lists.clone(),
            from: format!("{y:04}-01"),
            to,
            country: None,
        };
        // One read of the year's cases: the region and each reporting country with cases.
        let (region, countries) = capture::gather_split(session, registry, groupings, &sel, true)
            .await
            .map_err(qerr)?;
        for (c, g) in countries {
            sel.country = Some(c.clone());
            rows.push(row(&sel, &g, e, &o, &def.disclosure, &c));
        }
        sel.country = None;
        rows.push(row(&sel, &region, e, &o, &def.disclosure, super::TOTAL));
    }
    Ok(EstimateOut {
        name: e.name.clone(),
        title: e.title.clone(),
        children: e.children,
        rule: estimate::rule_text(&o),
        bootstrap: e.bootstrap,
        seed: e.seed,
        rows,
    })
}

fn row(
    sel: &Selection,
    g: &capture::Gathered,
    e: &EstimateDef,
    o: &Options,
    rules: &Rules,
    country: &str,
) -> EstimateRow {
    debug_assert_eq!(o.rule, Rule::Stepwise);
    let mut r = EstimateRow {
        year: sel.from[..4].to_string(),
        months: format!("{}..{}", sel.from, sel.to),
        country: country.to_string(),
        identified: Published::Zero,
        estimate: None,
        lists: vec![],
        terms: vec![],
        note: String::new(),
    };
    let c = &g.capture;
    let people = if e.children { c.children() } else { c.people() } as u64;
    // The number identified is published for the region and a whole year only: countries'
    // counts would sit under the region's as unaudited parts of a total, and a year to date
    // differenced month by month would give each month's newly identified.
    r.identified = if country == super::TOTAL && sel.to.ends_with("-12") {
        protect(people, rules)
    } else {
        Published::Withheld
    };
    let least = e.min_people.max(rules.threshold);
    if people < least {
        r.note = format!("fewer than {least} linked people: not estimated");
        return r;
    }
    // More lists than an estimate takes (lists by partner across a region): the row says so,
    // the rest of the extract is published.
    let all = match capture::estimates(sel, g, e.children, &[], o) {
        Ok(all) => all,
        Err(err) => {
            r.note = format!("not estimated: {}", short_reason(&err.to_string()));
            return r;
        }
    };
    let s = &all.strata[0];
    match (&s.estimate, &s.refused) {
        (Some(est), _) => match est.intervals.iter().find(|i| i.level == 0.95) {
            Some(i) => {
                let round = |v: f64| rules.round(v.round().max(0.0) as u64);
                r.estimate = Some([round(est.estimate), round(i.lower), round(i.upper)]);
                r.terms = est.terms.clone();
                // The lists the model used (a list with no one in this group is left out).
                r.lists = est
                    .lists
                    .iter()
                    .filter(|l| !est.warnings.iter().any(|w| left_out(w, l)))
                    .cloned()
                    .collect();
                r.note = notes(&all.warnings, est);
            }
            None => r.note = "no interval could be computed: not estimated".into(),
        },
        (None, reason) => {
            r.note = format!(
                "not estimated: {}",
                short_reason(reason.as_deref().unwrap_or(""))
            )
        }
    }
    r
}

/// Warnings a reader of the published table needs, without any count.
fn notes(selection_warnings: &[String], est: &estimate::Estimate) -> String {
    let mut v = vec![];
    let has = |s: &str| est.warnings.iter().any(|w| w.contains(s));
    let selection = |s: &str| selection_warnings.iter().any(|w| w.contains(s));
    if has("only two lists") {
        v.push("two lists only: their independence is assumed, not tested");
    }
    if selection("no person_id") {
        v.push("some case records could not be linked and are left out");
    }
    if selection("on no list") {
        v.push("some partners are on no list and are left out");
    }
    if has("have no one in common") {
        v.push("some lists have no one in common");
    }
    if has("share fewer than 5 people") {
        v.push("some lists share very few people");
    }
    if has("no one is on list") {
        v.push("some lists have no one in this group");
    }
    if has("bootstrap resamples could not be fitted") {
        v.push("some bootstrap resamples could not be fitted");
    }
    v.join("; ")
}

/// Whether warning `w` says list `l` was left out for having no one.
fn left_out(w: &str, l: &str) -> bool {
    w.strip_prefix("no one is on list(s) ")
        .and_then(|rest| rest.strip_suffix(": left out"))
        .is_some_and(|names| names.split(", ").any(|n| n == l))
}

fn short_reason(r: &str) -> &'static str {
    if r.contains("fewer than two lists") {
        "people are on fewer than two lists"
    } else if r.contains("no estimate exists") {
        "the lists overlap too little for an estimate to exist"
    } else if r.contains("lists: an estimate takes at most") {
        "too many lists"
    } else {
        "no model could be fitted"
    }
}
