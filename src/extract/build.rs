//! Counting and protecting: distinct units per cell and margin, one disclosure problem for the
//! whole extract (tables of one universe linked), primary and secondary suppression, the audit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::StringArray;
use arrow::datatypes::DataType;

use super::definition::{ExtractDef, TableDef};
use super::estimates::EstimateOut;
use super::{ExtractError, Sources, TOTAL, UNKNOWN};
use crate::disclosure::{self, Bound, Problem, Published};
use crate::lake::{self, AsOf};
use crate::query::{QueryError, Session};
use crate::util::months::shift_month;

/// A protected table, laid out as rows (all dimensions but the last) × columns (the last).
#[derive(Debug, Clone)]
pub struct TableOut {
    pub name: String,
    pub title: String,
    pub unit: String,
    pub dimensions: Vec<String>,
    pub row_keys: Vec<Vec<String>>,
    pub columns: Vec<String>,
    pub cells: Vec<Vec<Published>>,
    pub row_totals: Vec<Published>,
    pub column_totals: Vec<Published>,
    pub grand_total: Published,
    /// The audit's bounds on each suppressed count: (categories, lower, upper).
    pub bounds: Vec<(Vec<String>, u64, Option<u64>)>,
}

impl TableOut {
    /// Long form: one line per published count, margins labelled `Total`. A margin that
    /// repeats another (the row totals of a one-column table) is left out.
    pub fn long_rows(&self) -> Vec<(Vec<String>, Published)> {
        let nrow = self.dimensions.len() - 1;
        let mut out = Vec::new();
        for (r, key) in self.row_keys.iter().enumerate() {
            for (c, col) in self.columns.iter().enumerate() {
                let mut k = key.clone();
                k.push(col.clone());
                out.push((k, self.cells[r][c]));
            }
            if self.columns.len() > 1 && nrow > 0 {
                let mut k = key.clone();
                k.push(TOTAL.into());
                out.push((k, self.row_totals[r]));
            }
        }
        if self.row_keys.len() > 1 {
            for (c, col) in self.columns.iter().enumerate() {
                let mut k = vec![TOTAL.to_string(); nrow];
                k.push(col.clone());
                out.push((k, self.column_totals[c]));
            }
        }
        out.push((vec![TOTAL.to_string(); nrow + 1], self.grand_total));
        out
    }
}

/// The result of building an extract, before it is written.
pub struct Built {
    pub tables: Vec<TableOut>,
    /// Multiple systems estimates per country and year.
    pub estimates: Vec<EstimateOut>,
    pub lake_version: i64,
    pub table_versions: BTreeMap<String, i64>,
    /// The key epochs of the lake at that version: with more than one, a child reported in
    /// two epochs has two pseudonyms and counts twice.
    pub key_epochs: Vec<KeyEpochRef>,
}

/// A key epoch as an extract records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyEpochRef {
    pub epoch: i64,
    pub key_version: String,
    pub started_at: String,
}

/// Distinct units per cell and margin of one table, before protection.
struct Raw {
    row_keys: Vec<Vec<String>>,
    columns: Vec<String>,
    cells: Vec<Vec<u64>>,
    rows: Vec<u64>,
    cols: Vec<u64>,
    grand: u64,
}

/// Where a table's counts sit in the disclosure problem: cells, row totals, column totals and
/// the grand total.
type Index = (Vec<Vec<usize>>, Vec<usize>, Vec<usize>, usize);

/// Counts, protects and audits every table of `def` for `month`, reading the lake at
/// `lake_version` (a version of the submissions ledger; the latest when None).
pub async fn build(
    src: &Sources<'_>,
    def: &ExtractDef,
    month: &str,
    lake_version: Option<i64>,
) -> Result<Built, ExtractError> {
    let lake = src.lake;
    // The latest ledger version; -1 for a lake nothing was ingested into (empty tables).
    let version = match lake_version {
        Some(v) => v,
        None => lake
            .versions(&[lake::system::LEDGER.to_string()])
            .await?
            .get(lake::system::LEDGER)
            .copied()
            .unwrap_or(-1),
    };
    let at = (version >= 0).then_some(AsOf::Version(version as u64));
    let session = Session::open(lake, src.catalog, src.registry, at.as_ref()).await?;
    let first_month = shift_month(month, -11)
        .ok_or_else(|| ExtractError::Usage(format!("--month {month:?}: expected YYYY-MM")))?;
    let fill = |s: &str| {
        s.replace("{month}", month)
            .replace("{first_month}", &first_month)
    };
    let mut raws = Vec::new();
    for t in &def.tables {
        raws.push(count(&session, def, t, &fill).await?);
    }
    let tables = protect(def, raws, &fill)?;
    let estimates =
        super::estimates::build(&session, src.registry, src.groupings, def, month).await?;
    Ok(Built {
        tables,
        estimates,
        lake_version: version,
        table_versions: session.versions.clone(),
        key_epochs: key_epochs(&session).await?,
    })
}

async fn key_epochs(session: &Session) -> Result<Vec<KeyEpochRef>, ExtractError> {
    let sql = "SELECT DISTINCT epoch, key_version, CAST(started_at AS VARCHAR) AS started_at \
               FROM key_epochs ORDER BY epoch";
    let batches = session.run_trusted(sql).await?;
    let mut out = Vec::new();
    for b in &batches {
        let text = |i: usize| {
            arrow::compute::cast(b.column(i), &DataType::Utf8)
                .ok()
                .and_then(|a| a.as_any().downcast_ref::<StringArray>().cloned())
        };
        let (Some(e), Some(k), Some(t)) = (text(0), text(1), text(2)) else {
            continue;
        };
        for r in 0..b.num_rows() {
            out.push(KeyEpochRef {
                epoch: e.value(r).parse().unwrap_or(0),
                key_version: k.value(r).to_string(),
                started_at: t.value(r).to_string(),
            });
        }
    }
    Ok(out)
}

/// Runs a table's SQL and counts distinct units per cell, row, column and in all. The engine
/// counts (one aggregate per level over the distinct units of the table), so an extract of a
/// month of a million children holds its few hundred counts, never the units themselves.
async fn count(
    session: &Session,
    def: &ExtractDef,
    t: &TableDef,
    fill: &(dyn Fn(&str) -> String + Sync),
) -> Result<Raw, ExtractError> {
    let qerr = |source| ExtractError::Query {
        extract: def.name.clone(),
        table: t.name.clone(),
        source,
    };
    let batches = session
        .run_trusted(&count_sql(t, fill))
        .await
        .map_err(qerr)?;
    let n = t.dimensions.len();
    let mut counts = Counts::default();
    for b in &batches {
        let text = |i: usize| {
            arrow::compute::cast(b.column(i), &DataType::Utf8)
                .map(|a| a.as_any().downcast_ref::<StringArray>().cloned())
                .ok()
                .flatten()
                .ok_or_else(|| qerr(QueryError::Sql("unexpected column type".into())))
        };
        let cast = |i: usize, to: &DataType| arrow::compute::cast(b.column(i), to).ok();
        let (Some(level), Some(units)) = (cast(0, &DataType::Int64), cast(n + 1, &DataType::Int64))
        else {
            return Err(qerr(QueryError::Sql("unexpected column type".into())));
        };
        let level = level.as_any().downcast_ref::<arrow::array::Int64Array>();
        let units = units.as_any().downcast_ref::<arrow::array::Int64Array>();
        let (Some(level), Some(units)) = (level, units) else {
            return Err(qerr(QueryError::Sql("unexpected column type".into())));
        };
        let dims: Vec<StringArray> = (1..=n).map(text).collect::<Result<_, _>>()?;
        for i in 0..b.num_rows() {
            let key: Vec<String> = (0..n - 1).map(|d| dims[d].value(i).to_string()).collect();
            let column = dims[n - 1].value(i).to_string();
            counts.add(level.value(i), key, column, units.value(i) as u64);
        }
    }
    Ok(counts.into_raw(n))
}

/// The counting query of a table: level 0 the distinct units per cell, 1 per row (all
/// dimensions but the last), 2 per column (the last dimension), 3 in all. Each level counts
/// the distinct (categories, unit) pairs of its own grouping, so a unit in several cells of a
/// row counts once in the row's total.
fn count_sql(t: &TableDef, fill: &dyn Fn(&str) -> String) -> String {
    let q = |d: &str| format!("\"{}\"", d.replace('"', "\"\""));
    let dims: Vec<String> = t.dimensions.iter().map(|d| q(d)).collect();
    let select: Vec<String> = t
        .dimensions
        .iter()
        .map(|d| {
            format!(
                "coalesce(CAST({} AS VARCHAR), '{UNKNOWN}') AS {}",
                q(d),
                q(d)
            )
        })
        .collect();
    let n = dims.len();
    let none = "CAST(NULL AS VARCHAR)";
    // One level: the dimensions it keeps (the others stand as NULL) and their distinct units.
    let level = |id: u8, keep: &[bool]| {
        let kept: Vec<&str> = (0..n)
            .filter(|&i| keep[i])
            .map(|i| dims[i].as_str())
            .collect();
        // Every column named in every branch: the union's columns never depend on the first.
        let shown: Vec<String> = (0..n)
            .map(|i| match keep[i] {
                true => dims[i].clone(),
                false => format!("{none} AS {}", dims[i]),
            })
            .collect();
        let mut distinct = kept.clone();
        distinct.push("unit");
        let group = match kept.is_empty() {
            true => String::new(),
            false => format!(" GROUP BY {}", kept.join(", ")),
        };
        format!(
            "SELECT CAST({id} AS BIGINT) AS level, {}, CAST(count(*) AS BIGINT) AS units \
             FROM (SELECT DISTINCT {} FROM d){group}",
            shown.join(", "),
            distinct.join(", "),
        )
    };
    let all = vec![true; n];
    let rows: Vec<bool> = (0..n).map(|i| i + 1 < n).collect();
    let cols: Vec<bool> = (0..n).map(|i| i + 1 == n).collect();
    let mut levels = vec![level(0, &all), level(2, &cols), level(3, &vec![false; n])];
    if n > 1 {
        levels.push(level(1, &rows));
    }
    format!(
        "WITH d AS (SELECT {}, CAST(unit AS VARCHAR) AS unit FROM ({}) WHERE unit IS NOT NULL) {}",
        select.join(", "),
        fill(&t.sql),
        levels.join(" UNION ALL ")
    )
}

/// The distinct units per cell, row, column and in all, as the engine counted them.
#[derive(Default)]
struct Counts {
    cell: HashMap<(Vec<String>, String), u64>,
    row: HashMap<Vec<String>, u64>,
    col: HashMap<String, u64>,
    all: u64,
}

impl Counts {
    fn add(&mut self, level: i64, key: Vec<String>, column: String, units: u64) {
        match level {
            0 => {
                self.cell.insert((key, column), units);
            }
            1 => {
                self.row.insert(key, units);
            }
            2 => {
                self.col.insert(column, units);
            }
            _ => self.all = units,
        }
    }

    fn into_raw(mut self, n: usize) -> Raw {
        // A table of one dimension has one row, whose total is the grand total.
        if n == 1 && !self.cell.is_empty() {
            self.row.insert(Vec::new(), self.all);
        }
        let row_keys = sorted(self.row.keys().cloned().collect());
        let columns: Vec<String> = sorted_labels(self.col.keys().cloned().collect());
        let cells = row_keys
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .map(|c| self.cell.get(&(k.clone(), c.clone())).copied().unwrap_or(0))
                    .collect()
            })
            .collect();
        Raw {
            rows: row_keys.iter().map(|k| self.row[k]).collect(),
            cols: columns.iter().map(|c| self.col[c]).collect(),
            grand: self.all,
            row_keys,
            columns,
            cells,
        }
    }
}

/// One disclosure problem for the whole extract: suppression and the audit, then each
/// table's published labels and the audit's bounds.
fn protect(
    def: &ExtractDef,
    raws: Vec<Raw>,
    fill: &dyn Fn(&str) -> String,
) -> Result<Vec<TableOut>, ExtractError> {
    let mut problem = Problem::default();
    let mut index: Vec<Index> = Vec::new();
    for (ti, raw) in raws.iter().enumerate() {
        // A table with no rows still publishes its grand total of 0.
        index.push(disclosure::add_two_way(
            &mut problem,
            ti,
            &raw.cells,
            &raw.rows,
            &raw.cols,
            raw.grand,
        ));
    }
    let layout: Vec<_> = raws.iter().map(|r| (&r.row_keys, &r.columns)).collect();
    link_universes(def, &layout, &index, fill, &mut problem);
    let (published, bounds) =
        disclosure::protect(&problem, &def.disclosure).map_err(|e| ExtractError::Disclosure {
            extract: def.name.clone(),
            message: e.to_string(),
        })?;
    let bound_of: HashMap<usize, Bound> = bounds.into_iter().map(|b| (b.index, b)).collect();
    Ok(def
        .tables
        .iter()
        .zip(raws)
        .zip(&index)
        .map(|((t, raw), idx)| table_out(t, raw, idx, &published, &bound_of))
        .collect())
}

/// A table's published labels, and the audit's bounds on each suppressed count.
fn table_out(
    t: &TableDef,
    raw: Raw,
    (ci, ri, ki, gi): &Index,
    published: &[Published],
    bound_of: &HashMap<usize, Bound>,
) -> TableOut {
    let nrow = t.dimensions.len() - 1;
    let mut bounds = Vec::new();
    let mut noted = HashSet::new();
    // A count that stands in two places (a one-row table's column totals) is noted once.
    let mut note = |i: usize, cats: Vec<String>| {
        if let Some(b) = bound_of.get(&i)
            && noted.insert(i)
        {
            bounds.push((cats, b.lower, b.upper));
        }
    };
    for (r, key) in raw.row_keys.iter().enumerate() {
        for (c, col) in raw.columns.iter().enumerate() {
            let mut k = key.clone();
            k.push(col.clone());
            note(ci[r][c], k);
        }
        let mut k = key.clone();
        k.push(TOTAL.into());
        note(ri[r], k);
    }
    for (c, col) in raw.columns.iter().enumerate() {
        let mut k = vec![TOTAL.to_string(); nrow];
        k.push(col.clone());
        note(ki[c], k);
    }
    note(*gi, vec![TOTAL.to_string(); nrow + 1]);
    TableOut {
        name: t.name.clone(),
        title: t.title.clone(),
        unit: t.unit.clone(),
        dimensions: t.dimensions.clone(),
        cells: ci
            .iter()
            .map(|row| row.iter().map(|&i| published[i]).collect())
            .collect(),
        row_totals: ri.iter().map(|&i| published[i]).collect(),
        column_totals: ki.iter().map(|&i| published[i]).collect(),
        grand_total: published[*gi],
        row_keys: raw.row_keys,
        columns: raw.columns,
        bounds,
    }
}

fn sorted(mut v: Vec<Vec<String>>) -> Vec<Vec<String>> {
    v.sort_by(|a, b| {
        let ka: Vec<(bool, &String)> = a.iter().map(|s| (s == UNKNOWN, s)).collect();
        let kb: Vec<(bool, &String)> = b.iter().map(|s| (s == UNKNOWN, s)).collect();
        ka.cmp(&kb)
    });
    v
}

fn sorted_labels(v: Vec<String>) -> Vec<String> {
    sorted(v.into_iter().map(|s| vec![s]).collect())
        .into_iter()
        .map(|mut k| k.remove(0))
        .collect()
}

/// Tables of one universe count the same units: on the dimensions they share, their cells add
/// up to the same totals (or, where a unit sits in several cells, to at least them). Those
/// relations go into the problem, so the audit sees what one table tells about another.
fn link_universes(
    def: &ExtractDef,
    layout: &[(&Vec<Vec<String>>, &Vec<String>)],
    index: &[Index],
    fill: &dyn Fn(&str) -> String,
    problem: &mut Problem,
) {
    // Every cell with its categories by dimension name, restricted to the table's slice.
    let cells_of = |ti: usize| -> Vec<(BTreeMap<String, String>, usize)> {
        let t = &def.tables[ti];
        let (rows, cols) = layout[ti];
        let slice: BTreeMap<String, String> =
            t.slice.iter().map(|(k, v)| (k.clone(), fill(v))).collect();
        let mut out = Vec::new();
        for (r, key) in rows.iter().enumerate() {
            for (c, col) in cols.iter().enumerate() {
                let mut cats: BTreeMap<String, String> = BTreeMap::new();
                for (d, v) in t
                    .dimensions
                    .iter()
                    .zip(key.iter().chain(std::iter::once(col)))
                {
                    cats.insert(d.clone(), v.clone());
                }
                if slice.iter().all(|(k, v)| cats.get(k) == Some(v)) {
                    for k in slice.keys() {
                        cats.remove(k);
                    }
                    out.push((cats, index[ti].0[r][c]));
                }
            }
        }
        out
    };
    for a in 0..def.tables.len() {
        for b in a + 1..def.tables.len() {
            if def.tables[a].universe != def.tables[b].universe {
                continue;
            }
            let dims = |t: &TableDef| -> BTreeSet<String> {
                t.dimensions
                    .iter()
                    .filter(|d| !t.slice.contains_key(*d))
                    .cloned()
                    .collect()
            };
            let common: Vec<String> = dims(&def.tables[a])
                .intersection(&dims(&def.tables[b]))
                .cloned()
                .collect();
            let group = |cells: Vec<(BTreeMap<String, String>, usize)>| {
                let mut g: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
                for (cats, i) in cells {
                    let k = common.iter().map(|d| cats[d].clone()).collect();
                    g.entry(k).or_default().push(i);
                }
                g
            };
            // Two whole tables of one universe count the same units in total.
            if def.tables[a].slice.is_empty() && def.tables[b].slice.is_empty() {
                problem.relate(vec![index[a].3], vec![index[b].3], false);
            }
            let ga = group(cells_of(a));
            let mut gb = group(cells_of(b));
            for (k, left) in ga {
                let right = gb.remove(&k).unwrap_or_default();
                problem.relate(left, right, false);
            }
            for (_, right) in gb {
                problem.relate(Vec::new(), right, false);
            }
        }
    }
}
