//! A small dense two-phase simplex, enough to bound one count of a statistical table given the
//! published numbers. Tables here have at most a few hundred unknowns; the audit solves two
//! programmes per suppressed cell. Bland's rule keeps it from cycling on the degenerate
//! programmes that tables of counts produce.

const EPS: f64 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    Eq,
    Ge,
    Le,
}

/// `sum(coef * x) sense rhs`.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub terms: Vec<(usize, f64)>,
    pub sense: Sense,
    pub rhs: f64,
}

/// Variables with bounds `lower <= x <= upper` (`upper` may be infinite) and linear constraints.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    pub constraints: Vec<Constraint>,
}

/// A feasible basis of a program, reused for every objective.
pub struct Solver {
    t: Vec<Vec<f64>>,
    basis: Vec<usize>,
    /// Column of each variable, or None when its bounds fix it.
    column: Vec<Option<usize>>,
    lower: Vec<f64>,
    /// Columns that may enter the basis (structural and slack columns).
    usable: usize,
    width: usize,
}

/// A row over the shifted variables `y = x - lower >= 0`: terms, sense, right-hand side.
type Row = (Vec<(usize, f64)>, Sense, f64);

/// The column of each variable (None when its bounds fix it) and the number of columns; None
/// when some bounds are contradictory.
fn columns(p: &Program) -> Option<(Vec<Option<usize>>, usize)> {
    let mut column = vec![None; p.lower.len()];
    let mut ny = 0;
    for (j, col) in column.iter_mut().enumerate() {
        if p.upper[j] - p.lower[j] > EPS {
            *col = Some(ny);
            ny += 1;
        } else if p.upper[j] < p.lower[j] - EPS {
            return None;
        }
    }
    Some((column, ny))
}

/// The constraints and finite upper bounds as rows over the shifted variables; None when a
/// constraint on fixed variables alone fails.
fn shifted_rows(p: &Program, column: &[Option<usize>]) -> Option<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    for c in &p.constraints {
        let mut rhs = c.rhs;
        let mut terms = Vec::new();
        for &(j, a) in &c.terms {
            rhs -= a * p.lower[j];
            if let Some(col) = column[j] {
                terms.push((col, a));
            }
        }
        if terms.is_empty() {
            let ok = match c.sense {
                Sense::Eq => rhs.abs() <= EPS,
                Sense::Ge => rhs <= EPS,
                Sense::Le => rhs >= -EPS,
            };
            if !ok {
                return None;
            }
            continue;
        }
        rows.push((terms, c.sense, rhs));
    }
    for (j, col) in column.iter().enumerate() {
        if let Some(col) = *col
            && p.upper[j].is_finite()
        {
            rows.push((vec![(col, 1.0)], Sense::Le, p.upper[j] - p.lower[j]));
        }
    }
    Some(rows)
}

impl Solver {
    /// Phase one. None when the program has no solution.
    pub fn new(p: &Program) -> Option<Solver> {
        let (column, ny) = columns(p)?;
        let rows = shifted_rows(p, &column)?;
        let mut s = Solver::tableau(&rows, ny, column, p.lower.clone());
        if !s.phase_one() {
            return None;
        }
        s.drop_artificials();
        Some(s)
    }

    /// The starting tableau: a slack per inequality and an artificial variable per row, which
    /// make the first basis.
    fn tableau(rows: &[Row], ny: usize, column: Vec<Option<usize>>, lower: Vec<f64>) -> Solver {
        let m = rows.len();
        let ns = rows.iter().filter(|r| r.1 != Sense::Eq).count();
        let usable = ny + ns;
        let width = usable + m;
        let mut t = vec![vec![0.0; width + 1]; m];
        let mut basis = vec![0; m];
        let mut slack = ny;
        for (i, (terms, sense, rhs)) in rows.iter().enumerate() {
            for &(col, a) in terms {
                t[i][col] += a;
            }
            match sense {
                Sense::Le => {
                    t[i][slack] = 1.0;
                    slack += 1;
                }
                Sense::Ge => {
                    t[i][slack] = -1.0;
                    slack += 1;
                }
                Sense::Eq => {}
            }
            t[i][width] = *rhs;
            if *rhs < 0.0 {
                for v in t[i].iter_mut() {
                    *v = -*v;
                }
            }
            t[i][usable + i] = 1.0;
            basis[i] = usable + i;
        }
        Solver {
            t,
            basis,
            column,
            lower,
            usable,
            width,
        }
    }

    /// Minimises the sum of the artificial variables; false when it cannot reach zero (the
    /// program has no solution).
    fn phase_one(&mut self) -> bool {
        let (usable, width) = (self.usable, self.width);
        let mut obj = vec![0.0; width + 1];
        for row in &self.t {
            for (j, v) in row.iter().enumerate() {
                if j < usable || j == width {
                    obj[j] -= v;
                }
            }
        }
        self.simplex(&mut obj, usable);
        -obj[width] <= 1e-7
    }

    /// Drives the artificial variables out of the basis; drops rows that are redundant.
    fn drop_artificials(&mut self) {
        let usable = self.usable;
        let mut i = 0;
        while i < self.t.len() {
            if self.basis[i] >= usable {
                match (0..usable).find(|&j| self.t[i][j].abs() > 1e-7) {
                    Some(j) => self.pivot(i, j, None),
                    None => {
                        self.t.remove(i);
                        self.basis.remove(i);
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    /// The least and the greatest value of variable `k` (the greatest may be infinite).
    /// Each optimisation starts from the basis the previous one ended with (any feasible
    /// basis will do), which saves most of the pivots when bounding many counts in turn.
    pub fn range(&mut self, k: usize) -> (f64, f64) {
        let Some(col) = self.column[k] else {
            return (self.lower[k], self.lower[k]);
        };
        let lo = self.minimise(col, 1.0).map(|v| self.lower[k] + v);
        let hi = self.minimise(col, -1.0).map(|v| self.lower[k] - v);
        (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY))
    }

    /// min(sign * y_col), None when unbounded.
    fn minimise(&mut self, col: usize, sign: f64) -> Option<f64> {
        let mut obj = vec![0.0; self.width + 1];
        obj[col] = sign;
        for (i, &b) in self.basis.iter().enumerate() {
            if b == col {
                for (j, v) in self.t[i].iter().enumerate() {
                    obj[j] -= sign * v;
                }
            }
        }
        if self.simplex(&mut obj, self.usable) {
            Some(-obj[self.width])
        } else {
            None
        }
    }

    /// Minimises; entering columns below `limit`. False when unbounded.
    fn simplex(&mut self, obj: &mut [f64], limit: usize) -> bool {
        loop {
            let Some(e) = (0..limit).find(|&j| obj[j] < -EPS) else {
                return true;
            };
            let mut leave: Option<(usize, f64)> = None;
            for (i, row) in self.t.iter().enumerate() {
                if row[e] > EPS {
                    let ratio = row[self.width] / row[e];
                    let better = match leave {
                        None => true,
                        Some((l, r)) => {
                            ratio < r - EPS
                                || ((ratio - r).abs() <= EPS && self.basis[i] < self.basis[l])
                        }
                    };
                    if better {
                        leave = Some((i, ratio));
                    }
                }
            }
            let Some((l, _)) = leave else {
                return false;
            };
            self.pivot(l, e, Some(obj));
        }
    }

    fn pivot(&mut self, r: usize, c: usize, obj: Option<&mut [f64]>) {
        let p = self.t[r][c];
        for v in self.t[r].iter_mut() {
            *v /= p;
        }
        let prow = self.t[r].clone();
        for (i, row) in self.t.iter_mut().enumerate() {
            if i != r {
                let f = row[c];
                if f != 0.0 {
                    for (v, pv) in row.iter_mut().zip(&prow) {
                        *v -= f * pv;
                    }
                }
            }
        }
        if let Some(obj) = obj {
            let f = obj[c];
            if f != 0.0 {
                for (v, pv) in obj.iter_mut().zip(&prow) {
                    *v -= f * pv;
                }
            }
        }
        self.basis[r] = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eq(terms: &[(usize, f64)], rhs: f64) -> Constraint {
        Constraint {
            terms: terms.to_vec(),
            sense: Sense::Eq,
            rhs,
        }
    }

    #[test]
    fn bounds_a_cell_of_a_two_by_two_table() {
        // a b | 10
        // c d | 20
        // 12 18
        let inf = f64::INFINITY;
        let p = Program {
            lower: vec![0.0; 4],
            upper: vec![inf; 4],
            constraints: vec![
                eq(&[(0, 1.0), (1, 1.0)], 10.0),
                eq(&[(2, 1.0), (3, 1.0)], 20.0),
                eq(&[(0, 1.0), (2, 1.0)], 12.0),
                eq(&[(1, 1.0), (3, 1.0)], 18.0),
            ],
        };
        let mut s = Solver::new(&p).expect("feasible");
        assert_eq!(s.range(0), (0.0, 10.0));
        assert_eq!(s.range(3), (8.0, 18.0));
        let mut fixed = p.clone();
        fixed.lower[1] = 4.0;
        fixed.upper[1] = 4.0;
        let mut s = Solver::new(&fixed).expect("feasible");
        assert_eq!(s.range(0), (6.0, 6.0));
        assert_eq!(s.range(2), (6.0, 6.0));
        let mut bad = p.clone();
        bad.lower[0] = 11.0;
        assert!(Solver::new(&bad).is_none());
    }

    #[test]
    fn unbounded_and_inequalities() {
        let p = Program {
            lower: vec![1.0, 11.0],
            upper: vec![f64::INFINITY; 2],
            constraints: vec![Constraint {
                terms: vec![(0, 1.0), (1, 1.0)],
                sense: Sense::Ge,
                rhs: 15.0,
            }],
        };
        let mut s = Solver::new(&p).expect("feasible");
        assert_eq!(s.range(0), (1.0, f64::INFINITY));
    }
}
