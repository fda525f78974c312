//! Monthly statistical extracts: the files that leave the pseudonymised zone.
//!
//! An extract definition (`pipelines/extracts/*.toml`) names its tables, each an SQL query that
//! returns its dimensions and the unit counted. tip counts distinct units per cell and per
//! total, protects every count with [`crate::disclosure`] and writes CSV, XLSX, Parquet and a
//! self-contained HTML report, plus `manifest.json` (lake versions, rules, row counts, the
//! audit's bounds and the SHA-256 of every file). Every file but the manifest is a pure
//! function of the lake version and the definition, so `--reproduce` rebuilds it byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::{ConfigError, read_toml};
use crate::disclosure::{self, Bound, Problem, Published, Rules};
use crate::lake::{self, AsOf, Lake};
use crate::query::{QueryError, Session};

/// Label of a dimension value that the data leaves empty.
pub const UNKNOWN: &str = "unknown";
/// Label of a margin.
pub const TOTAL: &str = "Total";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum OutFormat {
    Csv,
    Xlsx,
    Parquet,
    Html,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Charts {
    /// A table with dimensions [month, country]: a line per country.
    pub trend: Option<String>,
    /// A table whose first two dimensions are the sending and receiving country.
    pub flows: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    pub name: String,
    pub title: String,
    /// Tables of one universe count the same units and are audited together.
    pub universe: String,
    pub dimensions: Vec<String>,
    /// What is counted, as a column heading ("children", "persons", "cases").
    pub unit: String,
    pub sql: String,
    /// Dimension values (placeholders allowed) that select the part of this table that counts
    /// the same units as the other tables of its universe.
    #[serde(default)]
    pub slice: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractDef {
    pub name: String,
    pub title: String,
    /// Cron expression (UTC): when the scheduler produces the extract for the previous month.
    pub schedule: String,
    pub formats: Vec<OutFormat>,
    #[serde(default)]
    pub disclosure: Rules,
    #[serde(default)]
    pub charts: Charts,
    #[serde(rename = "table")]
    pub tables: Vec<TableDef>,
    #[serde(skip)]
    pub file: PathBuf,
    /// SHA-256 of the definition file.
    #[serde(skip)]
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("extract {extract}, table {table}: {source}")]
    Query {
        extract: String,
        table: String,
        source: QueryError,
    },
    #[error(transparent)]
    Session(#[from] QueryError),
    #[error(transparent)]
    Lake(#[from] lake::LakeError),
    #[error("extract {extract}: {message}; nothing was written")]
    Disclosure { extract: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("reproduction of {0} differs: {1}")]
    NotReproduced(String, String),
}

fn io_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> ExtractError + '_ {
    move |e| ExtractError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Loads every `*.toml` under `dir`, sorted by file name.
pub fn load_extracts(dir: &Path) -> Result<Vec<ExtractDef>, ExtractError> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in files {
        let mut def: ExtractDef = read_toml(&f)?;
        let bytes = std::fs::read(&f).map_err(|e| io_err(&f)(&e))?;
        def.sha256 = hex::encode(sha2::Sha256::digest(&bytes));
        def.file = f.clone();
        check(&def).map_err(|message| ConfigError::Invalid {
            file: f.display().to_string(),
            message,
        })?;
        out.push(def);
    }
    Ok(out)
}

fn check(def: &ExtractDef) -> Result<(), String> {
    def.disclosure.check()?;
    crate::schedule::Cron::parse(&def.schedule).map_err(|e| format!("schedule: {e}"))?;
    if def.tables.is_empty() {
        return Err("an extract needs at least one [[table]]".into());
    }
    let mut names = HashSet::new();
    for t in &def.tables {
        if !names.insert(t.name.as_str()) {
            return Err(format!("table {} is defined twice", t.name));
        }
        if t.dimensions.is_empty() || t.dimensions.len() > 3 {
            return Err(format!(
                "table {}: one to three dimensions ({} given)",
                t.name,
                t.dimensions.len()
            ));
        }
        for d in t.slice.keys() {
            if !t.dimensions.contains(d) {
                return Err(format!("table {}: slice on {d}, not a dimension", t.name));
            }
        }
    }
    for (role, name) in [("trend", &def.charts.trend), ("flows", &def.charts.flows)] {
        if let Some(n) = name {
            let Some(t) = def.tables.iter().find(|t| &t.name == n) else {
                return Err(format!("charts.{role}: no table {n}"));
            };
            if t.dimensions.len() < 2 {
                return Err(format!("charts.{role}: table {n} needs two dimensions"));
            }
        }
    }
    Ok(())
}

/// `YYYY-MM` → the month `delta` months later (or earlier).
pub fn shift_month(month: &str, delta: i32) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) {
        return None;
    }
    let idx = y * 12 + (m - 1) + delta;
    Some(format!(
        "{:04}-{:02}",
        idx.div_euclid(12),
        idx.rem_euclid(12) + 1
    ))
}

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
    pub lake_version: i64,
    pub table_versions: BTreeMap<String, i64>,
}

/// Counts, protects and audits every table of `def` for `month`, reading the lake at
/// `lake_version` (a version of the submissions ledger; the latest when None).
pub async fn build(
    lake: &Lake,
    catalog: &crate::schema::Catalog,
    registry: &crate::config::Registry,
    def: &ExtractDef,
    month: &str,
    lake_version: Option<i64>,
) -> Result<Built, ExtractError> {
    let version = match lake_version {
        Some(v) => v,
        None => lake
            .versions(&[lake::LEDGER.to_string()])
            .await?
            .get(lake::LEDGER)
            .copied()
            .unwrap_or(0),
    };
    let session = Session::open(
        lake,
        catalog,
        registry,
        Some(&AsOf::Version(version.max(0) as u64)),
    )
    .await?;
    let first_month = shift_month(month, -11)
        .ok_or_else(|| ExtractError::Usage(format!("--month {month:?}: expected YYYY-MM")))?;
    let fill = |s: &str| {
        s.replace("{month}", month)
            .replace("{first_month}", &first_month)
    };

    // Distinct units per cell and margin.
    struct Raw {
        row_keys: Vec<Vec<String>>,
        columns: Vec<String>,
        cells: Vec<Vec<u64>>,
        rows: Vec<u64>,
        cols: Vec<u64>,
        grand: u64,
    }
    let mut raws = Vec::new();
    for t in &def.tables {
        let dims: Vec<String> = t
            .dimensions
            .iter()
            .map(|d| format!("coalesce(CAST(\"{d}\" AS VARCHAR), '{UNKNOWN}') AS \"{d}\""))
            .collect();
        let sql = format!(
            "SELECT DISTINCT {}, CAST(unit AS VARCHAR) AS unit FROM ({}) WHERE unit IS NOT NULL",
            dims.join(", "),
            fill(&t.sql)
        );
        let qerr = |source| ExtractError::Query {
            extract: def.name.clone(),
            table: t.name.clone(),
            source,
        };
        // Extract definitions are reviewed configuration, not analyst input: they run on the
        // session directly, outside the analyst gate.
        let batches = session
            .ctx
            .sql(&sql)
            .await
            .map_err(|e| qerr(QueryError::Sql(e.to_string())))?
            .collect()
            .await
            .map_err(|e| qerr(QueryError::Sql(e.to_string())))?;
        let n = t.dimensions.len();
        let mut cell: HashMap<(Vec<String>, String), HashSet<String>> = HashMap::new();
        let mut row: HashMap<Vec<String>, HashSet<String>> = HashMap::new();
        let mut col: HashMap<String, HashSet<String>> = HashMap::new();
        let mut all: HashSet<String> = HashSet::new();
        for b in &batches {
            let cols: Vec<StringArray> = (0..=n)
                .map(|i| {
                    datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                        .map(|a| a.as_any().downcast_ref::<StringArray>().cloned())
                        .ok()
                        .flatten()
                        .ok_or_else(|| qerr(QueryError::Sql("unexpected column type".into())))
                })
                .collect::<Result<_, _>>()?;
            for i in 0..b.num_rows() {
                let key: Vec<String> = (0..n - 1).map(|d| cols[d].value(i).to_string()).collect();
                let c = cols[n - 1].value(i).to_string();
                let unit = cols[n].value(i).to_string();
                cell.entry((key.clone(), c.clone()))
                    .or_default()
                    .insert(unit.clone());
                row.entry(key).or_default().insert(unit.clone());
                col.entry(c).or_default().insert(unit.clone());
                all.insert(unit);
            }
        }
        let row_keys = sorted(row.keys().cloned().collect());
        let columns: Vec<String> = sorted_labels(col.keys().cloned().collect());
        let cells = row_keys
            .iter()
            .map(|k| {
                columns
                    .iter()
                    .map(|c| {
                        cell.get(&(k.clone(), c.clone()))
                            .map(|s| s.len() as u64)
                            .unwrap_or(0)
                    })
                    .collect()
            })
            .collect();
        raws.push(Raw {
            rows: row_keys.iter().map(|k| row[k].len() as u64).collect(),
            cols: columns.iter().map(|c| col[c].len() as u64).collect(),
            grand: all.len() as u64,
            row_keys,
            columns,
            cells,
        });
    }

    // One disclosure problem for the whole extract.
    let mut problem = Problem::default();
    let mut index = Vec::new();
    for (ti, raw) in raws.iter().enumerate() {
        // A table with no rows still publishes its grand total of 0.
        let (c, r, k, g) = disclosure::add_two_way(
            &mut problem,
            ti,
            &raw.cells,
            &raw.rows,
            &raw.cols,
            raw.grand,
        );
        index.push((c, r, k, g));
    }
    link_universes(
        def,
        &raws
            .iter()
            .map(|r| (&r.row_keys, &r.columns))
            .collect::<Vec<_>>(),
        &index,
        &fill,
        &mut problem,
    );
    let (published, bounds) =
        disclosure::protect(&problem, &def.disclosure).map_err(|e| ExtractError::Disclosure {
            extract: def.name.clone(),
            message: e.to_string(),
        })?;
    let bound_of: HashMap<usize, Bound> = bounds.into_iter().map(|b| (b.index, b)).collect();

    let mut tables = Vec::new();
    for (ti, (t, raw)) in def.tables.iter().zip(raws).enumerate() {
        let (ci, ri, ki, gi) = &index[ti];
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
        tables.push(TableOut {
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
        });
    }
    Ok(Built {
        tables,
        lake_version: version,
        table_versions: session.versions.clone(),
    })
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
    index: &[(Vec<Vec<usize>>, Vec<usize>, Vec<usize>, usize)],
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

/// The files written for one extract and month.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub extract: String,
    pub title: String,
    pub month: String,
    /// The only wall-clock time in the output.
    pub generated_at: String,
    pub tip_version: String,
    pub definition_sha256: String,
    pub lake_version: i64,
    pub table_versions: BTreeMap<String, i64>,
    pub rules: Rules,
    pub tables: Vec<ManifestTable>,
    pub files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestTable {
    pub name: String,
    pub rows: usize,
    pub suppressed_small: usize,
    pub withheld: usize,
    /// For every suppressed count: its categories and the interval the published numbers
    /// allow (upper null: unbounded).
    pub audit: Vec<AuditEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AuditEntry {
    pub categories: Vec<String>,
    pub lower: u64,
    pub upper: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub sha256: String,
    pub bytes: u64,
}

/// Writes the extract under `out` (created; files replaced atomically as a directory).
pub fn write(
    def: &ExtractDef,
    month: &str,
    built: &Built,
    out: &Path,
) -> Result<Manifest, ExtractError> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent)(&e))?;
    let staging = parent.join(format!(".tip-extract-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&staging).map_err(|e| io_err(&staging)(&e))?;
    let result = write_files(def, month, built, &staging);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| io_err(out)(&e))?;
    }
    std::fs::rename(&staging, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        io_err(out)(&e)
    })?;
    Ok(manifest)
}

fn write_files(
    def: &ExtractDef,
    month: &str,
    built: &Built,
    dir: &Path,
) -> Result<Manifest, ExtractError> {
    let rules = &def.disclosure;
    let stem = format!("{}-{}", def.name, month);
    let mut files = BTreeMap::new();
    let mut formats = def.formats.clone();
    formats.sort();
    formats.dedup();
    for f in formats {
        let (name, bytes) = match f {
            OutFormat::Csv => (format!("{stem}.csv"), csv_bytes(&built.tables, rules)?),
            OutFormat::Xlsx => (
                format!("{stem}.xlsx"),
                xlsx_bytes(def, month, &built.tables)?,
            ),
            OutFormat::Parquet => (
                format!("{stem}.parquet"),
                parquet_bytes(&built.tables, rules)?,
            ),
            OutFormat::Html => (
                format!("{stem}.html"),
                crate::report::html(def, month, &built.tables).into_bytes(),
            ),
        };
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|e| io_err(&path)(&e))?;
        files.insert(
            name,
            ManifestFile {
                sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            },
        );
    }
    let manifest = Manifest {
        extract: def.name.clone(),
        title: def.title.clone(),
        month: month.to_string(),
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tip_version: env!("CARGO_PKG_VERSION").to_string(),
        definition_sha256: def.sha256.clone(),
        lake_version: built.lake_version,
        table_versions: built.table_versions.clone(),
        rules: *rules,
        tables: built
            .tables
            .iter()
            .map(|t| {
                let rows = t.long_rows();
                ManifestTable {
                    name: t.name.clone(),
                    rows: rows.len(),
                    suppressed_small: rows.iter().filter(|r| r.1 == Published::Small).count(),
                    withheld: rows.iter().filter(|r| r.1 == Published::Withheld).count(),
                    audit: t
                        .bounds
                        .iter()
                        .map(|(c, l, u)| AuditEntry {
                            categories: c.clone(),
                            lower: *l,
                            upper: *u,
                        })
                        .collect(),
                }
            })
            .collect(),
        files,
    };
    let path = dir.join("manifest.json");
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| io_err(&path)(&e))?;
    std::fs::write(&path, bytes).map_err(|e| io_err(&path)(&e))?;
    Ok(manifest)
}

/// A text cell that a spreadsheet would run as a formula gets a leading apostrophe.
pub fn neutralise(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

const LONG_HEADER: [&str; 8] = [
    "table",
    "dimension_1",
    "category_1",
    "dimension_2",
    "category_2",
    "dimension_3",
    "category_3",
    "count",
];

fn long_fields(t: &TableOut, cats: &[String]) -> Vec<String> {
    let mut v = vec![t.name.clone()];
    for i in 0..3 {
        v.push(t.dimensions.get(i).cloned().unwrap_or_default());
        v.push(cats.get(i).cloned().unwrap_or_default());
    }
    v
}

/// RFC 4180: CRLF line ends, quotes where needed, formula-like text neutralised.
fn csv_bytes(tables: &[TableOut], rules: &Rules) -> Result<Vec<u8>, ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "csv".into(),
        message: e.to_string(),
    };
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(LONG_HEADER).map_err(|e| err(&e))?;
    for t in tables {
        for (cats, p) in t.long_rows() {
            let mut rec: Vec<String> = long_fields(t, &cats)
                .iter()
                .map(|s| neutralise(s))
                .collect();
            rec.push(neutralise(&p.label(rules)));
            w.write_record(&rec).map_err(|e| err(&e))?;
        }
    }
    w.into_inner().map_err(|e| err(&e))
}

fn parquet_bytes(tables: &[TableOut], rules: &Rules) -> Result<Vec<u8>, ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "parquet".into(),
        message: e.to_string(),
    };
    let mut text: Vec<Vec<Option<String>>> = vec![Vec::new(); 7];
    let mut count = Vec::new();
    let mut flag = Vec::new();
    for t in tables {
        for (cats, p) in t.long_rows() {
            for (i, s) in long_fields(t, &cats).into_iter().enumerate() {
                text[i].push((!s.is_empty()).then_some(s));
            }
            count.push(p.number().map(|n| n as i64));
            flag.push(p.suppressed().then(|| p.label(rules)));
        }
    }
    let mut fields: Vec<Field> = LONG_HEADER[..7]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, *n != "table"))
        .collect();
    fields.push(Field::new("count", DataType::Int64, true));
    fields.push(Field::new("suppressed", DataType::Utf8, true));
    let mut cols: Vec<ArrayRef> = text
        .into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    cols.push(Arc::new(Int64Array::from(count)));
    cols.push(Arc::new(StringArray::from(flag)));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(&e))?;
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_created_by(format!("tip {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut buf = Vec::new();
    let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props))
        .map_err(|e| err(&e))?;
    w.write(&batch).map_err(|e| err(&e))?;
    w.close().map_err(|e| err(&e))?;
    Ok(buf)
}

/// A grid of labels: header, then one line per row key, then the totals line.
pub fn grid(t: &TableOut, rules: &Rules) -> Vec<Vec<String>> {
    let nrow = t.dimensions.len() - 1;
    let mut header: Vec<String> = t.dimensions[..nrow].to_vec();
    header.extend(t.columns.iter().cloned());
    header.push(TOTAL.into());
    let mut out = vec![header];
    if nrow == 0 {
        // One line: the categories and the total.
        let mut line: Vec<String> = t
            .cells
            .first()
            .map(|r| r.iter().map(|p| p.label(rules)).collect())
            .unwrap_or_else(|| vec![String::new(); t.columns.len()]);
        line.push(t.grand_total.label(rules));
        out.push(line);
        return out;
    }
    for (r, key) in t.row_keys.iter().enumerate() {
        let mut line = key.clone();
        line.extend(t.cells[r].iter().map(|p| p.label(rules)));
        line.push(t.row_totals[r].label(rules));
        out.push(line);
    }
    let mut last = vec![TOTAL.to_string(); nrow];
    last.extend(t.column_totals.iter().map(|p| p.label(rules)));
    last.push(t.grand_total.label(rules));
    out.push(last);
    out
}

pub const RULES_TEXT: &[&str] = &[
    "How these figures are protected",
    "Counts of children are counts of distinct persons: a child reported by two agencies, or twice, counts once in each cell and once in each total.",
    "A count from 1 to {small} is not published: it reads <{t}. A zero is a true zero.",
    "Every other number, totals included, is rounded to a multiple of {b} from the exact figure, and never below {floor}. Rounded numbers need not add up to the rounded totals.",
    "Where a hidden count could otherwise be worked out from the totals, further counts are withheld: they read x.",
    "Before anything is published, an audit works out, for every hidden count, the smallest and largest value the published numbers allow. It must leave a range of at least {t} for each, and for a <{t} count it must not rule out 1. If it does not, nothing is published.",
    "'unknown' means the partner did not record the value; it is not a zero.",
];

pub fn rules_text(rules: &Rules) -> Vec<String> {
    let floor = rules.round(rules.threshold);
    RULES_TEXT
        .iter()
        .map(|s| {
            s.replace("{small}", &(rules.threshold - 1).to_string())
                .replace("{t}", &rules.threshold.to_string())
                .replace("{b}", &rules.rounding_base.to_string())
                .replace("{floor}", &floor.to_string())
        })
        .collect()
}

fn xlsx_bytes(def: &ExtractDef, month: &str, tables: &[TableOut]) -> Result<Vec<u8>, ExtractError> {
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "xlsx".into(),
        message: e.to_string(),
    };
    let rules = &def.disclosure;
    let mut wb = Workbook::new();
    // A fixed creation date: the file is a function of the data, not of the clock.
    let created = ExcelDateTime::from_ymd(2000, 1, 1).map_err(|e| err(&e))?;
    wb.set_properties(
        &DocProperties::new()
            .set_title(&def.title)
            .set_creation_datetime(&created),
    );
    let bold = Format::new().set_bold();
    {
        let ws = wb.add_worksheet();
        ws.set_name("Rules").map_err(|e| err(&e))?;
        ws.write_string_with_format(0, 0, format!("{} — {month}", def.title), &bold)
            .map_err(|e| err(&e))?;
        for (i, line) in rules_text(rules).iter().enumerate() {
            ws.write_string(i as u32 + 2, 0, line)
                .map_err(|e| err(&e))?;
        }
        ws.set_column_width(0, 120).map_err(|e| err(&e))?;
    }
    for (n, t) in tables.iter().enumerate() {
        let ws = wb.add_worksheet();
        // Sheet names: at most 31 characters, some characters forbidden, unique by number.
        let sheet: String = format!("{} {}", n + 1, t.name)
            .chars()
            .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
            .take(31)
            .collect();
        ws.set_name(&sheet).map_err(|e| err(&e))?;
        ws.write_string_with_format(0, 0, format!("{} ({}), {month}", t.title, t.unit), &bold)
            .map_err(|e| err(&e))?;
        for (r, line) in grid(t, rules).iter().enumerate() {
            for (c, cell) in line.iter().enumerate() {
                let (row, col) = (r as u32 + 2, c as u16);
                match cell.parse::<u64>() {
                    Ok(v) if r > 0 && c >= t.dimensions.len() - 1 => {
                        ws.write_number(row, col, v as f64).map_err(|e| err(&e))?;
                    }
                    _ if r == 0 => {
                        ws.write_string_with_format(row, col, cell, &bold)
                            .map_err(|e| err(&e))?;
                    }
                    _ => {
                        ws.write_string(row, col, cell).map_err(|e| err(&e))?;
                    }
                }
            }
        }
    }
    wb.save_to_buffer().map_err(|e| err(&e))
}

impl Manifest {
    /// The audit-log line of an extract produced: which, when, from which lake version, the
    /// SHA-256 of each file. `by` is `cli` or `schedule`.
    pub fn record(
        &self,
        log: &crate::audit::AuditLog,
        by: &str,
        reproduced: bool,
    ) -> std::io::Result<()> {
        log.record(
            "extract",
            serde_json::json!({
                "by": by, "extract": self.extract, "month": self.month,
                "lake_version": self.lake_version, "reproduced": reproduced,
                "files": self.files.iter().map(|(k, v)| (k.clone(), v.sha256.clone())).collect::<BTreeMap<_, _>>(),
            }),
        )
    }
}

/// `tip extract`: builds and writes one extract; with `reproduce`, from the lake version and
/// definition a manifest records, and checks that every file is byte-identical.
pub async fn run(
    lake: &Lake,
    catalog: &crate::schema::Catalog,
    registry: &crate::config::Registry,
    def: &ExtractDef,
    month: &str,
    out: &Path,
    reproduce: Option<&Manifest>,
) -> Result<Manifest, ExtractError> {
    let version = match reproduce {
        Some(m) => {
            if m.extract != def.name || m.month != month {
                return Err(ExtractError::Usage(format!(
                    "the manifest is for {} {}, not {} {month}",
                    m.extract, m.month, def.name
                )));
            }
            if m.definition_sha256 != def.sha256 {
                return Err(ExtractError::NotReproduced(
                    def.name.clone(),
                    format!(
                        "the definition {} has changed since the manifest",
                        def.file.display()
                    ),
                ));
            }
            Some(m.lake_version)
        }
        None => None,
    };
    let built = build(lake, catalog, registry, def, month, version).await?;
    if let Some(m) = reproduce
        && m.table_versions != built.table_versions
    {
        return Err(ExtractError::NotReproduced(
            def.name.clone(),
            "the lake no longer has the table versions the manifest records".into(),
        ));
    }
    let manifest = write(def, month, &built, out)?;
    if let Some(m) = reproduce {
        for (name, f) in &m.files {
            if manifest.files.get(name) != Some(f) {
                return Err(ExtractError::NotReproduced(
                    def.name.clone(),
                    format!("{name} differs"),
                ));
            }
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_shift_across_years() {
        assert_eq!(shift_month("2025-03", -11).as_deref(), Some("2024-04"));
        assert_eq!(shift_month("2025-01", -1).as_deref(), Some("2024-12"));
        assert_eq!(shift_month("2025-12", 1).as_deref(), Some("2026-01"));
        assert_eq!(shift_month("2025-13", 0), None);
        assert_eq!(shift_month("25-01", 0), None);
    }

    #[test]
    fn formula_like_text_is_neutralised() {
        for s in ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(s).starts_with('\''), "{s:?}");
        }
        assert_eq!(neutralise("LT"), "LT");
        assert_eq!(neutralise("<11"), "<11");
    }

    #[test]
    fn the_shipped_definition_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/extracts");
        let defs = load_extracts(&dir).expect("extracts");
        let d = defs
            .iter()
            .find(|d| d.name == "regional-monthly")
            .expect("regional-monthly");
        assert_eq!(d.disclosure, Rules::default());
        assert_eq!(d.formats.len(), 4);
    }
}
