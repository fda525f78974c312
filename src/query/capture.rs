//! The capture histories of multiple systems estimation, read from the lake: which linked
//! persons each list (partner, kind of agency, configured grouping) registered in a period.
//! Only tip's own statement runs here, with literals it has checked; the histories it returns
//! are small-count tables and never leave the hub.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use serde::Serialize;

use super::answer::Answer;
use super::{QueryError, Session, sql_err};
use crate::config::{EstimateConfig, Registry};
use crate::estimate::capture::{Capture, Record, Stratum};
use crate::estimate::{self, Estimate, EstimateError, Options};

/// Which cases an estimate counts, and what makes a list.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// `partner`, `org_type` or a grouping under `[estimate.lists]`.
    pub lists: String,
    /// First and last month, `YYYY-MM`, inclusive (cases by their `period`).
    pub from: String,
    pub to: String,
    /// The reporting country (ISO alpha-2): only its partners' cases, so its lists are its
    /// agencies. None: the whole region.
    pub country: Option<String>,
}

/// The cases of the selection gathered into persons and lists, and what was left out.
pub struct Gathered {
    pub capture: Capture,
    /// Case records whose status is `not_victim`: left out.
    pub not_victims: u64,
}

fn month_ok(m: &str) -> bool {
    let b = m.as_bytes();
    b.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_digit())
}

/// Reads the selection's cases and gathers them (`to_list` from the registry and config).
pub async fn gather(
    session: &Session,
    registry: &Registry,
    groupings: &EstimateConfig,
    sel: &Selection,
) -> Result<Gathered, QueryError> {
    Ok(gather_split(session, registry, groupings, sel, false)
        .await?
        .0)
}

/// Reads the selection's cases once and gathers them as a whole and, when `split`, for each
/// reporting country apart (each country with cases in the selection, in order): what an
/// extract's estimates per country and for the region need, in one read.
pub async fn gather_split(
    session: &Session,
    registry: &Registry,
    groupings: &EstimateConfig,
    sel: &Selection,
    split: bool,
) -> Result<(Gathered, BTreeMap<String, Gathered>), QueryError> {
    let refuse = |m: String| QueryError::Refused(m);
    if !month_ok(&sel.from) || !month_ok(&sel.to) {
        return Err(refuse("a period is given as YYYY-MM months".into()));
    }
    if sel.lists != "partner"
        && sel.lists != "org_type"
        && !groupings.lists.contains_key(&sel.lists)
    {
        return Err(refuse(format!(
            "--lists {:?}: partner, org_type, or a grouping under [estimate.lists] in the configuration",
            sel.lists
        )));
    }
    let country = match &sel.country {
        Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
            format!(" AND reporting_country = '{c}'")
        }
        Some(_) => {
            return Err(refuse(
                "--country: an ISO 3166-1 alpha-2 code, e.g. LT".into(),
            ));
        }
        None => String::new(),
    };
    let sql = format!(
        "SELECT person_id, partner, CAST(is_minor AS VARCHAR), gender, \
         array_to_string(exploitation, ';'), status, reporting_country FROM cases \
         WHERE period >= '{}' AND period <= '{}'{country}",
        sel.from, sel.to
    );
    let (ctx, limits) = (session.ctx.clone(), session.limits);
    let plan = async move { ctx.sql(&sql).await.map_err(super::answer::Stop::Engine) };
    let mut answer = Answer::start(plan, limits).await?;
    let mut gatherer = Gatherer::new(registry, groupings, sel, split);
    while let Some(b) = answer.next().await {
        gatherer.batch(&b?)?;
    }
    Ok((gatherer.all, gatherer.countries))
}

fn new_gathered() -> Gathered {
    Gathered {
        capture: Capture::default(),
        not_victims: 0,
    }
}

/// The list a partner's records put their persons on (None: on no list).
fn list_of(
    registry: &Registry,
    groupings: &EstimateConfig,
    lists: &str,
    partner: &str,
) -> Option<String> {
    let org = registry.organisations.iter().find(|o| o.org_id == partner);
    match lists {
        "partner" => Some(partner.to_string()),
        "org_type" => org.map(|o| o.org_type.clone()),
        name => org
            .and_then(|o| groupings.list_of(name, o))
            .map(str::to_string),
    }
}

/// The cases read so far, gathered into persons and lists.
struct Gatherer<'a> {
    registry: &'a Registry,
    groupings: &'a EstimateConfig,
    sel: &'a Selection,
    split: bool,
    list_of: HashMap<String, Option<String>>,
    all: Gathered,
    countries: BTreeMap<String, Gathered>,
}

impl<'a> Gatherer<'a> {
    fn new(
        registry: &'a Registry,
        groupings: &'a EstimateConfig,
        sel: &'a Selection,
        split: bool,
    ) -> Gatherer<'a> {
        Gatherer {
            registry,
            groupings,
            sel,
            split,
            list_of: HashMap::new(),
            all: new_gathered(),
            countries: BTreeMap::new(),
        }
    }

    fn batch(&mut self, b: &arrow::record_batch::RecordBatch) -> Result<(), QueryError> {
        let cols: Vec<StringArray> = (0..7)
            .map(|i| {
                arrow::compute::cast(b.column(i), &DataType::Utf8)
                    .ok()
                    .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
                    .ok_or_else(|| sql_err("unexpected column type in cases"))
            })
            .collect::<Result<_, _>>()?;
        let text = |c: usize, r: usize| (!cols[c].is_null(r)).then(|| cols[c].value(r));
        for r in 0..b.num_rows() {
            let country = match self.split {
                true => text(6, r).map(|c| {
                    if !self.countries.contains_key(c) {
                        self.countries.insert(c.to_string(), new_gathered());
                    }
                    c
                }),
                false => None,
            };
            if text(5, r) == Some("not_victim") {
                self.all.not_victims += 1;
                if let Some(g) = country.and_then(|c| self.countries.get_mut(c)) {
                    g.not_victims += 1;
                }
                continue;
            }
            let partner = text(1, r).unwrap_or_default();
            if !self.list_of.contains_key(partner) {
                let list = list_of(self.registry, self.groupings, &self.sel.lists, partner);
                self.list_of.insert(partner.to_string(), list);
            }
            let list = self.list_of.get(partner).and_then(|l| l.as_deref());
            let ex: Vec<&str> = text(4, r)
                .map(|s| s.split(';').filter(|v| !v.is_empty()).collect())
                .unwrap_or_default();
            let record = Record {
                person_id: text(0, r),
                list,
                minor: text(2, r).map(|v| v == "true"),
                sex: text(3, r),
                exploitation: &ex,
            };
            self.all.capture.add(&record);
            if let Some(g) = country.and_then(|c| self.countries.get_mut(c)) {
                g.capture.add(&record);
            }
        }
        Ok(())
    }
}

/// The estimate of one stratum, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct StratumEstimate {
    /// The stratum's values by name (empty: everyone selected).
    pub stratum: BTreeMap<String, String>,
    /// Linked persons in the stratum.
    pub people: u64,
    pub estimate: Option<Estimate>,
    /// Why no estimate is given (too few lists, no estimate exists, no one in the period).
    pub refused: Option<String>,
}

/// Estimates from the lake: what was selected, what was left out, one estimate per stratum.
#[derive(Debug, Clone, Serialize)]
pub struct LakeEstimate {
    pub selection: Selection,
    /// Only persons registered as minors.
    pub children: bool,
    pub by: Vec<Stratum>,
    pub lists: Vec<String>,
    /// Case records in the selection.
    pub records: u64,
    /// Records that could not be placed: no `person_id` (no name or birth date given).
    pub records_without_person_id: u64,
    /// Records of partners that no list of the grouping takes.
    pub records_off_list: u64,
    /// Records assessed as not a victim (status `not_victim`): left out.
    pub records_not_victim: u64,
    /// Linked persons on some list.
    pub people: u64,
    /// About the whole selection (linkage coverage, key epochs).
    pub warnings: Vec<String>,
    pub strata: Vec<StratumEstimate>,
    /// The Delta version of each table read (set by the caller that opened the session).
    pub table_versions: BTreeMap<String, i64>,
}

/// One estimate per stratum of what was gathered (`children`: only persons registered as
/// minors).
pub fn estimates(
    sel: &Selection,
    g: &Gathered,
    children: bool,
    by: &[Stratum],
    o: &Options,
) -> Result<LakeEstimate, EstimateError> {
    let c = &g.capture;
    let mut all_by = by.to_vec();
    if children {
        all_by.insert(0, Stratum::Minor);
    }
    let mut strata = Vec::new();
    for (key, h) in c.histories(&all_by)? {
        if children && key[0] != "minor" {
            continue;
        }
        let skip = usize::from(children);
        let stratum: BTreeMap<String, String> = by
            .iter()
            .map(|s| s.name().to_string())
            .zip(key[skip..].iter().cloned())
            .collect();
        let (estimate, refused) = match estimate::estimate(&h, o) {
            Ok(e) => (Some(e), None),
            Err(e) => (None, Some(e.to_string())),
        };
        strata.push(StratumEstimate {
            stratum,
            people: h.observed(),
            estimate,
            refused,
        });
    }
    if strata.is_empty() && by.is_empty() {
        strata.push(StratumEstimate {
            stratum: BTreeMap::new(),
            people: 0,
            estimate: None,
            refused: Some(format!(
                "no linked {} in {}..{}: nothing to estimate from",
                if children { "child" } else { "person" },
                sel.from,
                sel.to
            )),
        });
    }
    let mut warnings = vec![];
    let placed = c.records - c.unlinked;
    if c.unlinked > 0 {
        warnings.push(format!(
            "{} of {} case records of presumed or identified victims ({:.1}%) have no person_id (no name or birth date) and cannot be placed on lists: the people they stand for are not in the estimate",
            c.unlinked,
            c.records,
            100.0 * c.unlinked as f64 / c.records.max(1) as f64
        ));
    }
    if c.off_list > 0 {
        warnings.push(format!(
            "{} of {placed} linked records come from partners on no list of {:?}: left out",
            c.off_list, sel.lists
        ));
    }
    Ok(LakeEstimate {
        selection: sel.clone(),
        children,
        by: by.to_vec(),
        lists: c.lists(),
        records: c.records + g.not_victims,
        records_without_person_id: c.unlinked,
        records_off_list: c.off_list,
        records_not_victim: g.not_victims,
        people: c.people() as u64,
        warnings,
        strata,
        table_versions: BTreeMap::new(),
    })
}
