//! Poisson log-linear models of a capture-history table, the checks that their estimate exists
//! and is identifiable, and the stepwise choice of two-list terms — the rule of Chan, Silverman
//! & Vincent (2019), as the SparseMSE R package implements it:
//!
//! - the model has an intercept and every main effect, always; only two-list terms are chosen;
//! - a pair of lists that never overlap, once in the model, has its term at −∞: the cells that
//!   hold both lists are removed and the term is not fitted (the extended estimate);
//! - a model is fitted only when a linear programme finds a strictly positive table with the
//!   data's sufficient statistics (otherwise the estimate does not exist) and its design has
//!   full rank (otherwise it is not identifiable);
//! - from main effects only, each round adds the pair whose observed overlap is least likely
//!   under the current fit (p = min(P(X ≤ n), P(X ≥ n)), X ~ Poisson(fitted overlap)), if that
//!   p is below the threshold (0.02); a pair whose model fails the checks has p = 1.

use crate::disclosure::lp::{Constraint, Program, Sense, Solver};

use super::stats::{poisson_ge, poisson_le};

/// A pair of lists, by index (first < second).
pub type Pair = (usize, usize);

/// Every observable capture history (a non-empty set of lists, as a bit mask) and its count;
/// histories nobody has are there with 0.
#[derive(Debug, Clone)]
pub struct Table {
    pub lists: usize,
    pub cells: Vec<u32>,
    pub counts: Vec<f64>,
}

impl Table {
    /// The full table of `lists` lists from (history, count) rows; repeated histories add up.
    pub fn new(lists: usize, rows: &[(u32, f64)]) -> Table {
        let mut cells: Vec<u32> = (1..(1u32 << lists)).collect();
        cells.sort_by_key(|m| m.count_ones());
        let mut counts = vec![0.0; cells.len()];
        for &(mask, n) in rows {
            if let Some(i) = cells.iter().position(|&c| c == mask) {
                counts[i] += n;
            }
        }
        Table {
            lists,
            cells,
            counts,
        }
    }

    /// How many were seen on both lists of `pair` (whatever else).
    pub fn overlap(&self, (i, j): Pair) -> f64 {
        self.cells
            .iter()
            .zip(&self.counts)
            .filter(|(c, _)| has(**c, i) && has(**c, j))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }
}

fn has(mask: u32, list: usize) -> bool {
    mask >> list & 1 == 1
}

/// Every pair of `lists` lists, in the order the stepwise rule breaks ties by.
pub fn all_pairs(lists: usize) -> Vec<Pair> {
    (0..lists)
        .flat_map(|i| (i + 1..lists).map(move |j| (i, j)))
        .collect()
}

/// The design of a model on a table: the cells left once the never-overlapping pairs of the
/// model have removed theirs, their counts, and one row per cell (intercept, main effects,
/// the overlapping pairs' products).
#[derive(Debug, Clone)]
pub struct Design {
    pub cells: Vec<u32>,
    pub y: Vec<f64>,
    pub x: Vec<Vec<f64>>,
    pub overlapping: Vec<Pair>,
    /// Pairs of the model that never overlap: their term is −∞.
    pub empty: Vec<Pair>,
}

pub fn design(t: &Table, pairs: &[Pair]) -> Design {
    let (empty, overlapping): (Vec<Pair>, Vec<Pair>) =
        pairs.iter().copied().partition(|p| t.overlap(*p) == 0.0);
    let mut d = Design {
        cells: vec![],
        y: vec![],
        x: vec![],
        overlapping,
        empty,
    };
    for (&c, &n) in t.cells.iter().zip(&t.counts) {
        if d.empty.iter().any(|&(i, j)| has(c, i) && has(c, j)) {
            continue;
        }
        let mut row = vec![1.0];
        row.extend((0..t.lists).map(|i| if has(c, i) { 1.0 } else { 0.0 }));
        row.extend(
            d.overlapping
                .iter()
                .map(|&(i, j)| if has(c, i) && has(c, j) { 1.0 } else { 0.0 }),
        );
        d.cells.push(c);
        d.y.push(n);
        d.x.push(row);
    }
    d
}

/// What the checks found about a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// A strictly positive table with the data's sufficient statistics exists: the (extended)
    /// maximum-likelihood estimate exists.
    pub exists: bool,
    /// The design has full column rank.
    pub identifiable: bool,
}

impl Checks {
    pub fn pass(self) -> bool {
        self.exists && self.identifiable
    }
}

pub fn check(t: &Table, pairs: &[Pair]) -> Checks {
    let d = design(t, pairs);
    Checks {
        exists: largest_smallest_cell(&d) > 1e-9,
        identifiable: rank(&d.x) == d.x.first().map_or(0, Vec::len),
    }
}

/// max s such that some table x ≥ s on every cell has the data's sufficient statistics
/// (Fienberg & Rinaldo 2012): zero when the data lie on the boundary of the model's cone.
fn largest_smallest_cell(d: &Design) -> f64 {
    let (cells, params) = (d.x.len(), d.x.first().map_or(0, Vec::len));
    let s = cells;
    let mut constraints: Vec<Constraint> = (0..params)
        .map(|k| Constraint {
            terms: (0..cells)
                .map(|w| (w, d.x[w][k]))
                .filter(|t| t.1 != 0.0)
                .collect(),
            sense: Sense::Eq,
            rhs: (0..cells).map(|w| d.x[w][k] * d.y[w]).sum(),
        })
        .collect();
    constraints.extend((0..cells).map(|w| Constraint {
        terms: vec![(w, 1.0), (s, -1.0)],
        sense: Sense::Ge,
        rhs: 0.0,
    }));
    let p = Program {
        lower: vec![0.0; cells + 1],
        upper: vec![f64::INFINITY; cells + 1],
        constraints,
    };
    match Solver::new(&p) {
        Some(mut solver) => solver.range(s).1,
        None => 0.0,
    }
}

/// Column rank (Gaussian elimination with partial pivoting, R's relative tolerance 1e-7).
fn rank(rows: &[Vec<f64>]) -> usize {
    let mut m: Vec<Vec<f64>> = rows.to_vec();
    let cols = m.first().map_or(0, Vec::len);
    let scale = m
        .iter()
        .flatten()
        .fold(0.0f64, |a, v| a.max(v.abs()))
        .max(1.0);
    let mut r = 0;
    for c in 0..cols {
        let Some(p) = (r..m.len()).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs())) else {
            break;
        };
        if m[p][c].abs() <= 1e-7 * scale {
            continue;
        }
        m.swap(r, p);
        let pivot = m[r].clone();
        for row in m.iter_mut().skip(r + 1) {
            let f = row[c] / pivot[c];
            if f != 0.0 {
                for (v, pv) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *v -= f * pv;
                }
            }
        }
        r += 1;
    }
    r
}

/// A fitted model.
#[derive(Debug, Clone)]
pub struct Fit {
    pub design: Design,
    pub beta: Vec<f64>,
    /// Fitted means of the design's cells.
    pub mu: Vec<f64>,
    /// Standard error of the intercept (the log of the unobserved count).
    pub se0: f64,
    pub deviance: f64,
}

impl Fit {
    /// Observed plus exp(intercept).
    pub fn estimate(&self) -> f64 {
        self.design.y.iter().sum::<f64>() + self.beta[0].exp()
    }

    /// AIC, each −∞ term counted as a parameter (as SparseMSE does).
    pub fn aic(&self) -> f64 {
        self.information(2.0)
    }

    /// −2 log-likelihood + `per_parameter` × parameters (each −∞ term counted as one).
    pub fn information(&self, per_parameter: f64) -> f64 {
        let ll: f64 = self
            .design
            .y
            .iter()
            .zip(&self.mu)
            .map(|(&y, &m)| y * m.ln() - m - super::stats::ln_gamma(y + 1.0))
            .sum();
        -2.0 * ll + per_parameter * (self.beta.len() + self.design.empty.len()) as f64
    }
}

/// Fits a Poisson log-linear model by iteratively reweighted least squares (R's `glm`: start at
/// y + 0.1, stop when the deviance changes by less than 1e-8 relatively).
pub fn fit(d: Design) -> Option<Fit> {
    let p = d.x.first()?.len();
    let mut mu: Vec<f64> = d.y.iter().map(|y| y + 0.1).collect();
    let mut dev_old = f64::INFINITY;
    let mut beta;
    let mut rounds = 0;
    loop {
        // Working response z = eta + (y - mu) / mu, weights mu.
        let z: Vec<f64> = (0..d.y.len())
            .map(|i| mu[i].ln() + (d.y[i] - mu[i]) / mu[i])
            .collect();
        let (info, rhs) = normal_equations(&d.x, &mu, &z, p);
        beta = solve(&info, &rhs)?;
        mu = d.x.iter().map(|row| dot(row, &beta).exp()).collect();
        let dev = deviance(&d.y, &mu);
        rounds += 1;
        if (dev - dev_old).abs() / (dev.abs() + 0.1) < 1e-8 || rounds == 100 {
            break;
        }
        dev_old = dev;
    }
    let (info, _) = normal_equations(&d.x, &mu, &mu, p);
    let mut e0 = vec![0.0; p];
    e0[0] = 1.0;
    let se0 = solve(&info, &e0)?[0].sqrt();
    let deviance = deviance(&d.y, &mu);
    Some(Fit {
        design: d,
        beta,
        mu,
        se0,
        deviance,
    })
}

/// XᵀWX and XᵀWz with weights w = mu.
fn normal_equations(x: &[Vec<f64>], mu: &[f64], z: &[f64], p: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mut info = vec![vec![0.0; p]; p];
    let mut rhs = vec![0.0; p];
    for (i, row) in x.iter().enumerate() {
        for a in 0..p {
            if row[a] == 0.0 {
                continue;
            }
            rhs[a] += row[a] * mu[i] * z[i];
            for b in 0..p {
                info[a][b] += row[a] * mu[i] * row[b];
            }
        }
    }
    (info, rhs)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn deviance(y: &[f64], mu: &[f64]) -> f64 {
    2.0 * y
        .iter()
        .zip(mu)
        .map(|(&y, &m)| if y > 0.0 { y * (y / m).ln() } else { 0.0 } - (y - m))
        .sum::<f64>()
}

/// Solves a x = b (Gaussian elimination with partial pivoting); None when a is singular.
fn solve(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &v)| {
            let mut r = row.clone();
            r.push(v);
            r
        })
        .collect();
    let scale = a.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs()));
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() <= 1e-13 * scale {
            return None;
        }
        m.swap(c, p);
        let pivot = m[c].clone();
        for (i, row) in m.iter_mut().enumerate() {
            let f = row[c] / pivot[c];
            if i != c && f != 0.0 {
                for (v, pv) in row[c..].iter_mut().zip(&pivot[c..]) {
                    *v -= f * pv;
                }
            }
        }
    }
    Some((0..n).map(|i| m[i][n] / m[i][i]).collect())
}

/// The stepwise choice of two-list terms (threshold `p_enter`, 0.02 by the paper). None when
/// even the main-effects model cannot be fitted.
///
/// Each round takes the pair with the smallest p whose model passes the checks (a pair whose
/// model fails has p = 1 in SparseMSE, so it never enters). The checks are a linear programme
/// each: they run on the candidates in order of p, only until one passes — the same choice as
/// checking every pair, at a fraction of the cost.
pub fn stepwise(t: &Table, p_enter: f64) -> Option<(Fit, Vec<Pair>)> {
    let pairs = all_pairs(t.lists);
    let observed: Vec<f64> = pairs.iter().map(|&p| t.overlap(p)).collect();
    let mut model: Vec<Pair> = vec![];
    let mut current = fit(design(t, &model))?;
    loop {
        let mut round: Vec<(f64, usize)> = vec![];
        for (k, &(i, j)) in pairs.iter().enumerate() {
            if model.contains(&(i, j)) {
                continue;
            }
            let d = &current.design;
            let expected: f64 = d
                .cells
                .iter()
                .zip(&current.mu)
                .filter(|(c, _)| has(**c, i) && has(**c, j))
                .map(|(_, m)| m)
                .sum();
            let n = observed[k];
            round.push((poisson_le(n, expected).min(poisson_ge(n, expected)), k));
        }
        // Smallest p first; ties go to the first pair in order.
        round.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let chosen = round
            .iter()
            .take_while(|(p, _)| *p < p_enter)
            .map(|&(_, k)| pairs[k])
            .find(|&pair| {
                let mut with = model.clone();
                with.push(pair);
                check(t, &with).pass()
            });
        match chosen {
            Some(pair) => {
                model.push(pair);
                current = fit(design(t, &model))?;
            }
            None => return Some((current, model)),
        }
    }
}

/// How the two-list terms of the model are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// Chan, Silverman & Vincent (2019): add the pair least likely under the current fit while
    /// its p-value is below the threshold.
    Stepwise,
    /// Forward selection by Akaike's criterion: add the pair that lowers AIC most, while one does.
    Aic,
    /// Forward selection by the Bayesian criterion (log of the people observed per parameter).
    Bic,
}

impl Rule {
    pub fn parse(s: &str) -> Option<Rule> {
        match s {
            "stepwise" => Some(Rule::Stepwise),
            "aic" => Some(Rule::Aic),
            "bic" => Some(Rule::Bic),
            _ => None,
        }
    }
}

/// The chosen model by `rule`; None when even the main-effects model cannot be fitted.
pub fn select(t: &Table, rule: Rule, p_enter: f64) -> Option<(Fit, Vec<Pair>)> {
    match rule {
        Rule::Stepwise => stepwise(t, p_enter),
        Rule::Aic => forward(t, |f| f.aic()),
        Rule::Bic => {
            let n = t.total().max(1.0);
            forward(t, move |f| f.information(n.ln()))
        }
    }
}

/// Forward selection by an information criterion: from main effects, add the pair whose model
/// passes the checks and has the lowest criterion, while that is lower than the current one.
/// Candidates are fitted first and checked (a linear programme) in order of their criterion,
/// only until one passes.
fn forward(t: &Table, criterion: impl Fn(&Fit) -> f64) -> Option<(Fit, Vec<Pair>)> {
    let pairs = all_pairs(t.lists);
    let mut model: Vec<Pair> = vec![];
    let mut current = fit(design(t, &model))?;
    let mut score = criterion(&current);
    loop {
        let mut candidates: Vec<(f64, usize, Fit)> = vec![];
        for (k, p) in pairs.iter().enumerate().filter(|(_, p)| !model.contains(p)) {
            let mut with = model.clone();
            with.push(*p);
            if let Some(f) = fit(design(t, &with)) {
                let c = criterion(&f);
                if c.is_finite() && c < score - 1e-9 {
                    candidates.push((c, k, f));
                }
            }
        }
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let chosen = candidates.into_iter().find(|(_, k, _)| {
            let mut with = model.clone();
            with.push(pairs[*k]);
            check(t, &with).pass()
        });
        match chosen {
            Some((c, k, f)) => {
                model.push(pairs[k]);
                current = f;
                score = c;
            }
            None => return Some((current, model)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Artificial_3 of SparseMSE (Chan, Silverman & Vincent, Table 2): A only 40, B only 30,
    /// C only 20, A and B 6.
    fn artificial() -> Table {
        Table::new(
            3,
            &[(0b001, 40.0), (0b010, 30.0), (0b100, 20.0), (0b011, 6.0)],
        )
    }

    #[test]
    fn the_checks_of_the_papers_artificial_example() {
        let t = artificial();
        let (ab, ac, bc) = ((0, 1), (0, 2), (1, 2));
        assert!(check(&t, &[]).pass());
        assert!(check(&t, &[ac]).pass());
        assert!(check(&t, &[bc]).pass());
        assert!(check(&t, &[ac, bc]).pass());
        let c = check(&t, &[ab, ac, bc]);
        assert!(!c.identifiable, "{c:?}");
        for m in [vec![ab], vec![ab, ac], vec![ab, bc]] {
            let c = check(&t, &m);
            assert!(!c.exists && c.identifiable, "{m:?}: {c:?}");
        }
    }
}
