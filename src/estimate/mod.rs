//! Multiple systems estimation: how many people there are, seen and unseen, from how often the
//! same (pseudonymised) people appear on several lists.
//!
//! The estimator is the one of Chan, Silverman & Vincent (2019, "Multiple systems estimation
//! for sparse capture data: inferential challenges when there are non-overlapping lists",
//! JASA): Poisson log-linear models with main effects and stepwise-chosen two-list terms
//! ([`model`]), the checks that the estimate exists and is identifiable, and a bias-corrected
//! and accelerated (BCa) bootstrap interval: the whole selection is rerun on each multinomial
//! resample of the observed people, with a fixed seed so a result can be reproduced.

pub mod capture;
pub mod model;
mod stats;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde::Serialize;

pub use model::Rule;
use model::{Pair, Table};

#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    #[error("{file}: {message}")]
    Input { file: String, message: String },
    #[error("{0}")]
    Model(String),
}

/// The assumptions an estimate rests on, in plain words, shown next to every result.
pub const ASSUMPTIONS: &[&str] = &[
    "The population is closed over the period: no one joins or leaves it between the lists.",
    "Each person is linked correctly across lists: one pseudonym per person, no two people under one.",
    "Given the model's two-list terms, the lists are independent: a three-list dependence, or people who are harder to reach for every list alike, biases the estimate (usually down).",
    "Everyone in the population had some chance of being on some list.",
];

/// Capture histories: one 0/1 flag per list and how many people have that history.
#[derive(Debug, Clone)]
pub struct Histories {
    pub lists: Vec<String>,
    /// (lists as a bit mask, bit i = list i; people).
    pub rows: Vec<(u32, u64)>,
}

/// The most lists an estimate takes (2^t − 1 cells; the published analyses use up to 8).
pub const MAX_LISTS: usize = 12;

impl Histories {
    /// The layout researchers publish: one 0/1 column per list, and a `count` column (also
    /// `n`, `freq` or `frequency`); each row a history and how many people have it.
    pub fn from_csv(file: &str, text: &str) -> Result<Histories, EstimateError> {
        let bad = |message: String| EstimateError::Input {
            file: file.to_string(),
            message,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| bad(format!("cannot read the header: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let is_count = |h: &str| {
            matches!(
                h.to_ascii_lowercase().as_str(),
                "count" | "n" | "freq" | "frequency"
            )
        };
        let Some(count_at) = header.iter().position(|h| is_count(h)) else {
            return Err(bad("no count column (count, n, freq or frequency)".into()));
        };
        let lists: Vec<String> = header
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != count_at)
            .map(|(_, h)| h.clone())
            .collect();
        if lists.len() < 2 || lists.len() > MAX_LISTS {
            return Err(bad(format!(
                "{} lists: an estimate takes from 2 to {MAX_LISTS}",
                lists.len()
            )));
        }
        let mut rows = vec![];
        for (r, rec) in reader.records().enumerate() {
            let line = r + 2;
            let rec = rec.map_err(|e| bad(format!("line {line}: {e}")))?;
            let mut mask = 0u32;
            for (k, i) in (0..header.len()).filter(|i| *i != count_at).enumerate() {
                match rec.get(i) {
                    Some("1") => mask |= 1 << k,
                    Some("0") => {}
                    _ => {
                        return Err(bad(format!(
                            "line {line}, column {}: expected 0 or 1",
                            header[i]
                        )));
                    }
                }
            }
            let n: u64 = rec
                .get(count_at)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "line {line}, column {}: expected a whole number",
                        header[count_at]
                    ))
                })?;
            if mask == 0 && n > 0 {
                return Err(bad(format!(
                    "line {line}: a history on no list cannot be observed"
                )));
            }
            if mask != 0 {
                rows.push((mask, n));
            }
        }
        Histories { lists, rows }.check_size(bad)
    }

    pub fn observed(&self) -> u64 {
        self.rows.iter().map(|r| r.1).sum()
    }
}

/// The most people a capture-history table may hold: far past any population (the bootstrap
/// draws each resample's histories, not each person), but a bound on counts read from a file.
pub const MAX_PEOPLE: u64 = 1_000_000_000;

impl Histories {
    fn check_size(self, bad: impl Fn(String) -> EstimateError) -> Result<Histories, EstimateError> {
        let total = self
            .rows
            .iter()
            .try_fold(0u64, |s, r| s.checked_add(r.1))
            .filter(|t| *t <= MAX_PEOPLE);
        match total {
            Some(_) => Ok(self),
            None => Err(bad(format!(
                "more than {MAX_PEOPLE} people: not a capture-history table tip estimates from"
            ))),
        }
    }
}

/// How to estimate.
#[derive(Debug, Clone)]
pub struct Options {
    /// A two-list term enters when its p-value is below this (0.02, the paper's choice).
    pub p_enter: f64,
    /// Bootstrap resamples (1000); 0: no interval.
    pub bootstrap: usize,
    pub seed: u64,
    /// How the model's two-list terms are chosen.
    pub rule: Rule,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rule: Rule::Stepwise,
            p_enter: 0.02,
            bootstrap: 1000,
            seed: 1234,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// 0.95 for a 95% interval.
    pub level: f64,
    pub lower: f64,
    pub upper: f64,
}

/// An estimate, with what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub lists: Vec<String>,
    pub observed: u64,
    /// Observed plus the estimated unobserved.
    pub estimate: f64,
    pub unobserved: f64,
    /// Two-list terms of the chosen model, in the order they entered (`A:B`).
    pub terms: Vec<String>,
    /// Terms of pairs that never overlap: their parameter is −∞ (no one is expected on both).
    pub never_overlapping_terms: Vec<String>,
    /// BCa bootstrap intervals (95% and 80%); empty without a bootstrap.
    pub intervals: Vec<Interval>,
    /// The model-conditional 95% interval (lognormal on the unobserved count; ignores the
    /// uncertainty of the model choice, so it is usually too narrow).
    pub model_interval: Interval,
    pub bootstrap: usize,
    pub seed: u64,
    /// BCa acceleration (jackknife) and bias correction.
    pub acceleration: Option<f64>,
    pub bias_correction: Option<f64>,
    /// The chosen model's estimate exists and is identifiable (always true for a model the
    /// rule chose; reported so a reader sees it was checked).
    pub checks_passed: bool,
    pub aic: f64,
    pub rule: String,
    pub warnings: Vec<String>,
}

/// The table of the histories, leaving out lists on which no one is (their main effect would
/// be −∞, and they tell nothing). Returns the table and the lists kept.
fn table(lists: usize, rows: &[(u32, f64)]) -> (Table, Vec<usize>) {
    let kept: Vec<usize> = (0..lists)
        .filter(|&i| rows.iter().any(|(m, n)| m >> i & 1 == 1 && *n > 0.0))
        .collect();
    let remapped: Vec<(u32, f64)> = rows
        .iter()
        .filter(|r| r.1 > 0.0)
        .map(|&(m, n)| {
            let mask = kept
                .iter()
                .enumerate()
                .fold(0u32, |a, (k, &i)| a | ((m >> i & 1) << k));
            (mask, n)
        })
        .collect();
    (Table::new(kept.len(), &remapped), kept)
}

/// The point estimate of one set of rows by the rule; None when no model can be fitted.
fn point(lists: usize, rows: &[(u32, f64)], o: &Options) -> Option<f64> {
    let (t, _) = table(lists, rows);
    if t.lists < 2 || !model::check(&t, &[]).pass() {
        return None;
    }
    model::select(&t, o.rule, o.p_enter)
        .map(|(fit, _)| fit.estimate())
        .filter(|v| v.is_finite())
}

pub fn estimate(h: &Histories, o: &Options) -> Result<Estimate, EstimateError> {
    let rows: Vec<(u32, f64)> = h.rows.iter().map(|&(m, n)| (m, n as f64)).collect();
    let (t, kept) = table(h.lists.len(), &rows);
    let mut warnings = vec![];
    if kept.len() < h.lists.len() {
        let empty: Vec<&str> = (0..h.lists.len())
            .filter(|i| !kept.contains(i))
            .map(|i| h.lists[i].as_str())
            .collect();
        warnings.push(format!(
            "no one is on list(s) {}: left out",
            empty.join(", ")
        ));
    }
    if kept.len() < 2 {
        return Err(EstimateError::Model(
            "people are on fewer than two lists: nothing links them, no estimate is possible"
                .into(),
        ));
    }
    let main = model::check(&t, &[]);
    if !main.pass() {
        return Err(EstimateError::Model(format!(
            "no estimate exists for these histories: {} (usually lists that have no one in common: with two lists, or with every list apart, nothing says how many are on none)",
            if main.exists {
                "the model is not identifiable"
            } else {
                "even the model of independent lists has no maximum-likelihood estimate"
            }
        )));
    }
    let (fit, terms) = model::select(&t, o.rule, o.p_enter).ok_or_else(|| {
        EstimateError::Model("a model of these histories could not be fitted".into())
    })?;
    let name = |&(i, j): &Pair| format!("{}:{}", h.lists[kept[i]], h.lists[kept[j]]);
    warnings.extend(caveats(&t, &kept, h));
    let (b0, se0) = (fit.beta[0], fit.se0);
    let observed = h.observed();
    let lognormal = |z: f64| observed as f64 + (b0 + z * se0).exp();
    let z975 = stats::normal_quantile(0.975);
    let mut e = Estimate {
        lists: h.lists.clone(),
        observed,
        estimate: fit.estimate(),
        unobserved: b0.exp(),
        terms: terms.iter().map(name).collect(),
        never_overlapping_terms: fit.design.empty.iter().map(name).collect(),
        intervals: vec![],
        model_interval: Interval {
            level: 0.95,
            lower: lognormal(-z975),
            upper: lognormal(z975),
        },
        bootstrap: o.bootstrap,
        seed: o.seed,
        acceleration: None,
        bias_correction: None,
        checks_passed: model::check(&t, &terms).pass(),
        aic: fit.aic(),
        rule: rule_text(o),
        warnings,
    };
    if o.bootstrap > 0 {
        bootstrap_intervals(h, &rows, o, &mut e);
    }
    Ok(e)
}

/// The model choice in words.
pub fn rule_text(o: &Options) -> String {
    let choice = match o.rule {
        Rule::Stepwise => format!(
            "chosen stepwise (enter at p < {}; Chan, Silverman & Vincent 2019)",
            o.p_enter
        ),
        Rule::Aic => "chosen by forward selection on AIC".to_string(),
        Rule::Bic => {
            "chosen by forward selection on BIC (log of the people observed per parameter)"
                .to_string()
        }
    };
    format!("Poisson log-linear model, main effects and the two-list terms {choice}")
}

/// What a reader should know about the data before trusting the number.
fn caveats(t: &Table, kept: &[usize], h: &Histories) -> Vec<String> {
    let mut out = vec![];
    if kept.len() == 2 {
        out.push(
            "only two lists: the estimate assumes they are independent, which two lists cannot test"
                .into(),
        );
    }
    let pairs = model::all_pairs(t.lists);
    let never = pairs.iter().filter(|p| t.overlap(**p) == 0.0).count();
    if never > 0 {
        out.push(format!(
            "{never} of {} pairs of lists have no one in common: the estimate leans on the lists that do overlap",
            pairs.len()
        ));
    }
    let sparse = pairs
        .iter()
        .filter(|p| (1.0..5.0).contains(&t.overlap(**p)))
        .count();
    if sparse > 0 {
        out.push(format!(
            "{sparse} of {} pairs of lists share fewer than 5 people: the two-list terms rest on very few people",
            pairs.len()
        ));
    }
    if h.observed() < 50 {
        out.push(format!(
            "only {} people observed: the interval is wide and the model choice unstable",
            h.observed()
        ));
    }
    out
}

/// The BCa intervals: the stepwise estimate of each multinomial resample of the observed
/// people, and the delete-one jackknife for the acceleration.
fn bootstrap_intervals(h: &Histories, rows: &[(u32, f64)], o: &Options, e: &mut Estimate) {
    let lists = h.lists.len();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut boots = Vec::with_capacity(o.bootstrap);
    let mut failed = 0;
    for _ in 0..o.bootstrap {
        let counts = resample(rows, h.observed(), &mut rng);
        let resample: Vec<(u32, f64)> = rows.iter().zip(&counts).map(|(r, &n)| (r.0, n)).collect();
        match point(lists, &resample, o) {
            Some(v) if v.is_finite() => boots.push(v),
            _ => failed += 1,
        }
    }
    if failed > 0 {
        e.warnings.push(format!(
            "{failed} of {} bootstrap resamples could not be fitted and were left out",
            o.bootstrap
        ));
    }
    let a = jackknife_acceleration(h, o);
    let levels = [0.95, 0.80];
    if boots.is_empty() {
        e.warnings
            .push("no bootstrap resample could be estimated: no interval".into());
        return;
    }
    match bca(e.estimate, &mut boots, a, &levels) {
        Some((z0, intervals)) => {
            e.acceleration = Some(a);
            e.bias_correction = Some(z0);
            e.intervals = intervals;
        }
        None => e.warnings.push(
            "every bootstrap estimate fell on one side of the estimate: no BCa interval".into(),
        ),
    }
}

/// One multinomial resample of `total` people over the histories (`rows`: history, people):
/// what drawing `total` people with replacement gives, drawn as one binomial per history
/// (each given what the histories before it took), so a resample costs the same for a
/// hundred people or a million.
fn resample(rows: &[(u32, f64)], total: u64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    use rand_distr::{Binomial, Distribution};
    let mut counts = vec![0.0; rows.len()];
    let last = rows.iter().rposition(|r| r.1 > 0.0);
    let (mut left, mut mass) = (total, rows.iter().map(|r| r.1).sum::<f64>());
    for (k, r) in rows.iter().enumerate() {
        if left == 0 || r.1 <= 0.0 {
            continue;
        }
        let n = match Some(k) == last {
            true => left,
            false => Binomial::new(left, (r.1 / mass).clamp(0.0, 1.0))
                .map(|b| b.sample(rng))
                .unwrap_or(0),
        };
        counts[k] = n as f64;
        left -= n.min(left);
        mass -= r.1;
    }
    counts
}

/// The BCa acceleration â from the delete-one jackknife: the estimate with one person fewer of
/// each observed history, weighted by how many people have that history.
pub fn jackknife_acceleration(h: &Histories, o: &Options) -> f64 {
    let rows: Vec<(u32, f64)> = h.rows.iter().map(|&(m, n)| (m, n as f64)).collect();
    let jack: Vec<(f64, f64)> = (0..rows.len())
        .filter(|&r| rows[r].1 > 0.0)
        .filter_map(|r| {
            let mut less = rows.clone();
            less[r].1 -= 1.0;
            point(h.lists.len(), &less, o).map(|v| (rows[r].1, v))
        })
        .collect();
    let a = acceleration(&jack);
    if a.is_finite() { a } else { 0.0 }
}

fn acceleration(jack: &[(f64, f64)]) -> f64 {
    let w: f64 = jack.iter().map(|j| j.0).sum();
    let mean = jack.iter().map(|(n, v)| n * v).sum::<f64>() / w;
    let (mut num, mut den) = (0.0, 0.0);
    for (n, v) in jack {
        let d = mean - v;
        num += n * d.powi(3);
        den += n * d * d;
    }
    if den == 0.0 {
        0.0
    } else {
        num / (6.0 * den.powf(1.5))
    }
}

/// BCa limits at each level from bootstrap estimates: the bias correction z0 and the intervals;
/// None when every estimate is on one side of `point`.
///
/// z0 = Φ⁻¹(share of the bootstrap estimates below `point`). A resample can reproduce the
/// data's sufficient statistics and so the estimate itself, up to rounding; such ties (within
/// 1e-9 relatively) count half. (R's SparseMSE counts strictly below, which lets rounding noise
/// decide ties: its limits can differ from these where a tie occurs.)
pub fn bca(point: f64, boots: &mut [f64], a: f64, levels: &[f64]) -> Option<(f64, Vec<Interval>)> {
    if boots.is_empty() {
        return None;
    }
    boots.sort_by(f64::total_cmp);
    let tie = |b: f64| (b - point).abs() <= 1e-9 * point.abs();
    let below = boots.iter().filter(|&&b| b < point && !tie(b)).count() as f64
        + 0.5 * boots.iter().filter(|&&b| tie(b)).count() as f64;
    if below == 0.0 || below == boots.len() as f64 {
        return None;
    }
    let z0 = stats::normal_quantile(below / boots.len() as f64);
    let limit = |alpha: f64| {
        let w = z0 + stats::normal_quantile(alpha);
        let d = 1.0 - a * w;
        // Past the formula's pole the limit is the extreme resample on that side.
        let q = if d <= 0.0 {
            if w > 0.0 { 1.0 } else { 0.0 }
        } else {
            stats::normal_cdf(z0 + w / d)
        };
        stats::quantile_type8(boots, q)
    };
    let intervals = levels
        .iter()
        .map(|&level| Interval {
            level,
            lower: limit((1.0 - level) / 2.0),
            upper: limit((1.0 + level) / 2.0),
        })
        .collect();
    Some((z0, intervals))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resample keeps every person (the counts add up to the people observed), draws no
    /// one into a history no one has, and its counts average out at the observed shares, as
    /// drawing each person with replacement would.
    #[test]
    fn a_resample_draws_the_observed_people_over_their_histories() {
        let rows = [
            (1u32, 600_000.0),
            (2, 0.0),
            (3, 300_000.0),
            (5, 99_990.0),
            (7, 10.0),
        ];
        let total = 1_000_000u64;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut sums = [0.0; 5];
        let draws = 200;
        for _ in 0..draws {
            let c = resample(&rows, total, &mut rng);
            assert_eq!(c.iter().sum::<f64>(), total as f64);
            assert_eq!(c[1], 0.0);
            for (s, v) in sums.iter_mut().zip(&c) {
                *s += v;
            }
        }
        for (r, s) in rows.iter().zip(sums) {
            let mean = s / draws as f64;
            // The standard error of a mean of 200 binomial counts: sqrt(n p (1 - p) / 200).
            let p = r.1 / total as f64;
            let se = (total as f64 * p * (1.0 - p) / draws as f64).sqrt();
            assert!((mean - r.1).abs() <= 5.0 * se + 1e-9, "{r:?}: mean {mean}");
        }
        // The same seed draws the same resample.
        let a = resample(&rows, total, &mut ChaCha8Rng::seed_from_u64(1));
        let b = resample(&rows, total, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
    }
}
