//! Statistical disclosure control for the published extracts.
//!
//! Counts are related by sums: the cells of a row add up to the row total, the row totals to
//! the grand total, and tables of the same extract that count the same children share totals.
//! A [`Problem`] holds the true counts and those relations; [`protect`] decides what is
//! published:
//!
//! 1. **Primary suppression.** A count from 1 to `threshold − 1` is published as `<threshold`.
//!    Zero is published as 0.
//! 2. **Rounding.** Every other count, margins included, is rounded to the nearest multiple of
//!    `rounding_base` from its unrounded value, and never below the first multiple at or above
//!    the threshold (so 11 and 12 are published as 15, not 10).
//! 3. **Secondary suppression.** Further counts are withheld (`x`) until [`audit`] passes.
//!
//! The audit is the proof. For every withheld count it computes, by linear programming, the
//! smallest and largest value consistent with everything published — each rounded number
//! standing for its whole rounding interval, zeros exact, a `<11` count at least 1 and an `x`
//! at least the threshold — and the relations. It passes when every interval is at least
//! `threshold` wide and, for a `<11` count, still reaches down as far as the table's shape and
//! the labels alone allow (usually 1; a total of two nonzero cells is at least 2 whatever is
//! published): the numbers tell nothing about how small a small count is. Generation fails
//! closed when it does not pass.

pub mod lp;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use lp::{Constraint, Program, Sense, Solver};

/// The disclosure settings of an extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Counts from 1 to threshold − 1 are suppressed.
    pub threshold: u64,
    /// Published counts are multiples of this.
    pub rounding_base: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            threshold: 11,
            rounding_base: 5,
        }
    }
}

impl Rules {
    pub fn check(&self) -> Result<(), String> {
        if self.threshold < 2 {
            return Err("disclosure.threshold must be at least 2".into());
        }
        if self.rounding_base == 0 {
            return Err("disclosure.rounding_base must be at least 1".into());
        }
        Ok(())
    }

    /// The smallest number ever published other than 0.
    fn floor_published(&self) -> u64 {
        self.threshold.div_ceil(self.rounding_base) * self.rounding_base
    }

    /// The published form of a count of `threshold` or more.
    pub fn round(&self, v: u64) -> u64 {
        let b = self.rounding_base;
        (((v + b / 2) / b) * b).max(self.floor_published())
    }

    /// The true values a published number stands for.
    pub fn interval(&self, published: u64) -> (u64, u64) {
        let b = self.rounding_base;
        let hi = published + b - 1 - b / 2;
        let lo = if published == self.floor_published() {
            self.threshold
        } else {
            published.saturating_sub(b / 2).max(self.threshold)
        };
        (lo, hi)
    }
}

/// What is published for one count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Published {
    Zero,
    Value(u64),
    /// Primary suppression: 1 to threshold − 1.
    Small,
    /// Secondary suppression: withheld so that a small count cannot be worked out.
    Withheld,
}

impl Published {
    pub fn label(&self, rules: &Rules) -> String {
        match self {
            Published::Zero => "0".into(),
            Published::Value(v) => v.to_string(),
            Published::Small => format!("<{}", rules.threshold),
            Published::Withheld => "x".into(),
        }
    }

    pub fn number(&self) -> Option<u64> {
        match self {
            Published::Zero => Some(0),
            Published::Value(v) => Some(*v),
            _ => None,
        }
    }

    pub fn suppressed(&self) -> bool {
        matches!(self, Published::Small | Published::Withheld)
    }
}

/// A relation `sum(left) ⋚ sum(right)` between counts, as true of the unrounded data. With
/// `subset`, `right` is one count whose units include those of every count on the left (a
/// margin and its cells), so each left count is also at most the right one.
#[derive(Debug, Clone)]
struct Relation {
    left: Vec<usize>,
    right: Vec<usize>,
    sense: Sense,
    subset: bool,
}

/// The counts of an extract and how they are related.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    values: Vec<u64>,
    margin: Vec<bool>,
    table: Vec<usize>,
    relations: Vec<Relation>,
}

impl Problem {
    /// Adds a count; returns its index.
    pub fn count(&mut self, value: u64, table: usize, margin: bool) -> usize {
        self.values.push(value);
        self.margin.push(margin);
        self.table.push(table);
        self.values.len() - 1
    }

    /// Records how the counts `left` add up against `right`. Distinct counts need not add up
    /// (a child with two forms of exploitation is in two cells of a row): the relation recorded
    /// is the one that holds, equality when it does.
    pub fn relate(&mut self, left: Vec<usize>, right: Vec<usize>, subset: bool) {
        let l: u64 = left.iter().map(|&i| self.values[i]).sum();
        let r: u64 = right.iter().map(|&i| self.values[i]).sum();
        let sense = match l.cmp(&r) {
            std::cmp::Ordering::Equal => Sense::Eq,
            std::cmp::Ordering::Greater => Sense::Ge,
            std::cmp::Ordering::Less => Sense::Le,
        };
        let subset = subset && right.len() == 1;
        self.relations.push(Relation {
            left,
            right,
            sense,
            subset,
        });
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn value(&self, i: usize) -> u64 {
        self.values[i]
    }
}

/// The bounds the audit found for one withheld count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    pub index: usize,
    pub lower: u64,
    /// None: no upper bound.
    pub upper: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    #[error(
        "disclosure audit failed: a withheld count can be narrowed to {lower}..{upper} from the published numbers"
    )]
    Audit {
        index: usize,
        lower: u64,
        upper: String,
    },
    #[error("disclosure audit failed: the published numbers contradict each other")]
    Inconsistent,
    #[error("{0}")]
    Rules(String),
}

/// Decides what is published. Fails closed: the result has passed [`audit`].
pub fn protect(
    p: &Problem,
    rules: &Rules,
) -> Result<(Vec<Published>, Vec<Bound>), DisclosureError> {
    rules.check().map_err(DisclosureError::Rules)?;
    let mut published: Vec<Published> = p
        .values
        .iter()
        .map(|&v| match v {
            0 => Published::Zero,
            v if v < rules.threshold => Published::Small,
            v => Published::Value(rules.round(v)),
        })
        .collect();
    loop {
        match first_failure(p, &published, rules) {
            Ok(_) => break,
            Err(DisclosureError::Audit { index, .. }) => {
                let Some(next) = complement(p, &published, rules, index) else {
                    return Err(first_failure(p, &published, rules)
                        .err()
                        .unwrap_or(DisclosureError::Inconsistent));
                };
                published[next] = Published::Withheld;
            }
            Err(e) => return Err(e),
        }
    }
    let bounds = audit(p, &published, rules)?;
    Ok((published, bounds))
}

/// Proves that no withheld count can be narrowed below the threshold from the published
/// numbers; returns the bounds of each.
pub fn audit(
    p: &Problem,
    published: &[Published],
    rules: &Rules,
) -> Result<Vec<Bound>, DisclosureError> {
    first_failure(p, published, rules)
}

fn first_failure(
    p: &Problem,
    published: &[Published],
    rules: &Rules,
) -> Result<Vec<Bound>, DisclosureError> {
    // Published values must be what the rules make of the true ones.
    for (i, pubd) in published.iter().enumerate() {
        let v = p.values[i];
        let ok = match pubd {
            Published::Zero => v == 0,
            Published::Value(r) => v >= rules.threshold && rules.round(v) == *r,
            Published::Small => (1..rules.threshold).contains(&v),
            Published::Withheld => v >= rules.threshold,
        };
        if !ok {
            return Err(DisclosureError::Inconsistent);
        }
    }
    let suppressed: Vec<usize> = (0..published.len())
        .filter(|&i| published[i].suppressed())
        .collect();
    if suppressed.is_empty() {
        return Ok(Vec::new());
    }
    let mut with_numbers = Bounder::new(program(p, published, rules, false));
    // What the table's shape and the labels alone say (every number hidden): a margin of two
    // nonzero cells is at least 2 whatever is published.
    let mut shape_only = Bounder::new(program(p, published, rules, true));
    let t = rules.threshold as f64;
    let mut bounds = Vec::new();
    for &i in &suppressed {
        let (lo, hi) = with_numbers.range(i)?;
        let wide = hi - lo >= t - 1e-6;
        let nothing_more = published[i] != Published::Small || lo <= shape_only.range(i)?.0 + 1e-6;
        let lower = (lo - 1e-6).ceil().max(0.0) as u64;
        let upper = hi.is_finite().then(|| (hi + 1e-6).floor() as u64);
        if !(wide && nothing_more) {
            return Err(DisclosureError::Audit {
                index: i,
                lower,
                upper: upper.map(|u| u.to_string()).unwrap_or_else(|| "∞".into()),
            });
        }
        bounds.push(Bound {
            index: i,
            lower,
            upper,
        });
    }
    Ok(bounds)
}

/// Bounds counts of a programme. Counts that no relation connects are bounded separately: one
/// small programme per connected group (a universe of tables), each solved once and reused.
struct Bounder {
    program: Program,
    parent: Vec<usize>,
    solvers: HashMap<usize, (Solver, HashMap<usize, usize>)>,
}

impl Bounder {
    fn new(program: Program) -> Bounder {
        let mut parent: Vec<usize> = (0..program.lower.len()).collect();
        for c in &program.constraints {
            if let Some(&(first, _)) = c.terms.first() {
                for &(j, _) in &c.terms[1..] {
                    let (a, b) = (root(&mut parent, first), root(&mut parent, j));
                    if a != b {
                        parent[a] = b;
                    }
                }
            }
        }
        Bounder {
            program,
            parent,
            solvers: HashMap::new(),
        }
    }

    fn range(&mut self, i: usize) -> Result<(f64, f64), DisclosureError> {
        let group = root(&mut self.parent, i);
        if !self.solvers.contains_key(&group) {
            let members: Vec<usize> = (0..self.parent.len())
                .filter(|&j| root(&mut self.parent, j) == group)
                .collect();
            let local: HashMap<usize, usize> =
                members.iter().enumerate().map(|(k, &j)| (j, k)).collect();
            let sub = Program {
                lower: members.iter().map(|&j| self.program.lower[j]).collect(),
                upper: members.iter().map(|&j| self.program.upper[j]).collect(),
                constraints: self
                    .program
                    .constraints
                    .iter()
                    .filter(|c| c.terms.first().is_some_and(|(j, _)| local.contains_key(j)))
                    .map(|c| Constraint {
                        terms: c.terms.iter().map(|(j, a)| (local[j], *a)).collect(),
                        sense: c.sense,
                        rhs: c.rhs,
                    })
                    .collect(),
            };
            let solver = Solver::new(&sub).ok_or(DisclosureError::Inconsistent)?;
            self.solvers.insert(group, (solver, local));
        }
        let (solver, local) = self.solvers.get_mut(&group).expect("just inserted");
        Ok(solver.range(local[&i]))
    }
}

fn root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// What an outsider knows: the published numbers and the relations.
fn program(p: &Problem, published: &[Published], rules: &Rules, shape_only: bool) -> Program {
    let mut prog = Program::default();
    for pubd in published {
        let (lo, hi) = match pubd {
            Published::Zero => (0.0, 0.0),
            Published::Value(_) if shape_only => (rules.threshold as f64, f64::INFINITY),
            Published::Value(r) => {
                let (lo, hi) = rules.interval(*r);
                (lo as f64, hi as f64)
            }
            Published::Small => (1.0, f64::INFINITY),
            Published::Withheld => (rules.threshold as f64, f64::INFINITY),
        };
        prog.lower.push(lo);
        prog.upper.push(hi);
    }
    for r in &p.relations {
        let mut terms: Vec<(usize, f64)> = r.left.iter().map(|&i| (i, 1.0)).collect();
        terms.extend(r.right.iter().map(|&i| (i, -1.0)));
        prog.constraints.push(Constraint {
            terms,
            sense: r.sense,
            rhs: 0.0,
        });
        if r.subset && r.sense != Sense::Eq {
            for &i in &r.left {
                prog.constraints.push(Constraint {
                    terms: vec![(i, 1.0), (r.right[0], -1.0)],
                    sense: Sense::Le,
                    rhs: 0.0,
                });
            }
        }
    }
    prog
}

/// The count to withhold next to protect `failing`: of the candidates (published counts
/// related to it, cells before margins, the smallest first; else of its table; else any), the
/// first that widens what the published numbers allow for it.
fn complement(
    p: &Problem,
    published: &[Published],
    rules: &Rules,
    failing: usize,
) -> Option<usize> {
    let candidates = candidates(p, published, failing);
    let width = |pubd: &[Published]| -> Option<(f64, f64)> {
        let mut b = Bounder::new(program(p, pubd, rules, false));
        b.range(failing).ok()
    };
    let before = width(published)?;
    let mut trial = published.to_vec();
    for &c in candidates.iter().take(40) {
        let old = trial[c];
        trial[c] = Published::Withheld;
        if let Some(after) = width(&trial)
            && (after.1 - after.0 > before.1 - before.0 + 1e-6 || after.0 < before.0 - 1e-6)
        {
            return Some(c);
        }
        trial[c] = old;
    }
    candidates.first().copied()
}

fn candidates(p: &Problem, published: &[Published], failing: usize) -> Vec<usize> {
    let open = |i: &usize| matches!(published[*i], Published::Value(_));
    let rank = |i: &usize| (p.margin[*i], p.values[*i], *i);
    let related: Vec<usize> = p
        .relations
        .iter()
        .filter(|r| r.left.contains(&failing) || r.right.contains(&failing))
        .flat_map(|r| r.left.iter().chain(r.right.iter()).copied())
        .filter(open)
        .collect();
    let mut related = related;
    related.sort_by_key(rank);
    related.dedup();
    let table = p.table[failing];
    let mut same_table: Vec<usize> = (0..published.len())
        .filter(|i| p.table[*i] == table && !related.contains(i))
        .filter(open)
        .collect();
    same_table.sort_by_key(rank);
    let mut rest: Vec<usize> = (0..published.len())
        .filter(|i| p.table[*i] != table && !related.contains(i))
        .filter(open)
        .collect();
    rest.sort_by_key(rank);
    related.extend(same_table);
    related.extend(rest);
    related
}

/// A two-way table: `cells[r][c]` with row totals, column totals and the grand total, all
/// counted independently (distinct units). Returns the indices: (cells, row totals, column
/// totals, grand total).
pub fn add_two_way(
    p: &mut Problem,
    table: usize,
    cells: &[Vec<u64>],
    row_totals: &[u64],
    col_totals: &[u64],
    grand: u64,
) -> (Vec<Vec<usize>>, Vec<usize>, Vec<usize>, usize) {
    let idx: Vec<Vec<usize>> = cells
        .iter()
        .map(|row| row.iter().map(|&v| p.count(v, table, false)).collect())
        .collect();
    // A one-row table's column totals are its cells and its row total the grand total (and
    // likewise for one column): the same count, one variable, so it is published once.
    let g = p.count(grand, table, true);
    let rt: Vec<usize> = if col_totals.len() == 1 {
        idx.iter().map(|row| row[0]).collect()
    } else if row_totals.len() == 1 {
        vec![g]
    } else {
        row_totals
            .iter()
            .map(|&v| p.count(v, table, true))
            .collect()
    };
    let ct: Vec<usize> = if row_totals.len() == 1 {
        idx[0].clone()
    } else if col_totals.len() == 1 {
        vec![g]
    } else {
        col_totals
            .iter()
            .map(|&v| p.count(v, table, true))
            .collect()
    };
    for (r, row) in idx.iter().enumerate() {
        if row.len() > 1 {
            p.relate(row.clone(), vec![rt[r]], true);
        }
    }
    for (c, &col) in ct.iter().enumerate() {
        if idx.len() > 1 {
            p.relate(idx.iter().map(|row| row[c]).collect(), vec![col], true);
        }
    }
    if rt.len() > 1 {
        p.relate(rt.clone(), vec![g], true);
    }
    if ct.len() > 1 {
        p.relate(ct.clone(), vec![g], true);
    }
    (idx, rt, ct, g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn rounding_never_publishes_below_the_threshold() {
        let r = Rules::default();
        assert_eq!(r.round(11), 15);
        assert_eq!(r.round(17), 15);
        assert_eq!(r.round(18), 20);
        assert_eq!(r.round(22), 20);
        assert_eq!(r.round(23), 25);
        assert_eq!(r.interval(15), (11, 17));
        assert_eq!(r.interval(20), (18, 22));
        for v in 11..200 {
            let (lo, hi) = r.interval(r.round(v));
            assert!(lo <= v && v <= hi, "{v}");
        }
    }

    fn random_table(rng: &mut rand::rngs::ChaCha8Rng) -> (Vec<Vec<u64>>, bool) {
        let rows = rng.random_range(1..6usize);
        let cols = rng.random_range(1..6usize);
        let additive = rng.random_bool(0.7);
        let cells = (0..rows)
            .map(|_| {
                (0..cols)
                    .map(|_| match rng.random_range(0..10) {
                        0..=2 => 0,
                        3..=5 => rng.random_range(1..11),
                        _ => rng.random_range(11..120),
                    })
                    .collect()
            })
            .collect();
        (cells, additive)
    }

    /// Margins of distinct counts: additive, or with some units counted in two cells.
    fn margins(cells: &[Vec<u64>], additive: bool) -> (Vec<u64>, Vec<u64>, u64) {
        // A distinct count of a union: at most the sum, at least the largest part.
        let shave = |parts: Vec<u64>| {
            let s: u64 = parts.iter().sum();
            let max = parts.iter().copied().max().unwrap_or(0);
            if additive { s } else { (s - s / 7).max(max) }
        };
        let rows: Vec<u64> = cells.iter().map(|r| shave(r.clone())).collect();
        let cols: Vec<u64> = (0..cells[0].len())
            .map(|c| shave(cells.iter().map(|r| r[c]).collect()))
            .collect();
        let grand = shave(cells.iter().flatten().copied().collect());
        let grand = grand
            .max(rows.iter().copied().max().unwrap_or(0))
            .max(cols.iter().copied().max().unwrap_or(0));
        (rows, cols, grand)
    }

    #[test]
    fn property_random_tables_are_protected() {
        let rules = Rules::default();
        let (mut small, mut withheld) = (0, 0);
        for seed in 0..300u64 {
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(seed);
            let (cells, additive) = random_table(&mut rng);
            let (rows, cols, grand) = margins(&cells, additive);
            let mut p = Problem::default();
            add_two_way(&mut p, 0, &cells, &rows, &cols, grand);
            let (published, bounds) = protect(&p, &rules).unwrap_or_else(|e| {
                panic!("seed {seed}: {e}: {cells:?} {rows:?} {cols:?} {grand} additive={additive}")
            });
            for (i, pubd) in published.iter().enumerate() {
                if let Some(n) = pubd.number() {
                    assert!(
                        n == 0 || n >= rules.threshold,
                        "seed {seed}: published {n} in 1..{}",
                        rules.threshold - 1
                    );
                    assert_eq!(n % rules.rounding_base, 0, "seed {seed}: {n}");
                    assert_eq!(n == 0, p.value(i) == 0, "seed {seed}: zeros are exact");
                }
                if (1..rules.threshold).contains(&p.value(i)) {
                    assert_eq!(*pubd, Published::Small, "seed {seed}");
                }
            }
            // Every suppressed count has a bound, wide enough, and true of the real value.
            let suppressed = published.iter().filter(|p| p.suppressed()).count();
            small += published.iter().filter(|p| **p == Published::Small).count();
            withheld += published
                .iter()
                .filter(|p| **p == Published::Withheld)
                .count();
            assert_eq!(bounds.len(), suppressed, "seed {seed}");
            for b in &bounds {
                let width = b.upper.map(|u| u - b.lower).unwrap_or(u64::MAX);
                assert!(width >= rules.threshold, "seed {seed}: {b:?}");
                assert!(b.lower <= p.value(b.index), "seed {seed}: {b:?}");
                assert!(b.upper.is_none_or(|u| u >= p.value(b.index)), "seed {seed}");
                if published[b.index] == Published::Small && !p.margin[b.index] {
                    assert_eq!(b.lower, 1, "seed {seed}: a small cell's lower bound");
                }
            }
        }
        // The property is not vacuous: both kinds of suppression happened.
        assert!(
            small > 100 && withheld > 50,
            "{small} small, {withheld} withheld"
        );
    }

    #[test]
    fn a_lone_small_cell_in_a_row_takes_a_partner_with_it() {
        // 3 | 40 | 43 — publishing 40 (rounded) and 45 would give the 3 away within ±4.
        let rules = Rules::default();
        let mut p = Problem::default();
        let cells = vec![vec![3, 40], vec![25, 30]];
        add_two_way(&mut p, 0, &cells, &[43, 55], &[28, 70], 98);
        let (published, _) = protect(&p, &rules).expect("protected");
        assert_eq!(published[0], Published::Small);
        let withheld = published
            .iter()
            .filter(|p| **p == Published::Withheld)
            .count();
        assert!(withheld >= 1, "{published:?}");
        // Publishing everything but the small cell fails the audit.
        let naive: Vec<Published> = (0..p.len())
            .map(|i| match p.value(i) {
                v if v < 11 => Published::Small,
                v => Published::Value(rules.round(v)),
            })
            .collect();
        assert!(matches!(
            audit(&p, &naive, &rules),
            Err(DisclosureError::Audit { index: 0, .. })
        ));
    }
}
