//! Synthetic partner reports: what the five sample partners would send over a year, in their
//! own layouts, languages, encodings and date formats. The same children are reported by
//! several partners with different spellings (letter case, accents, spacing and hyphens,
//! Cyrillic or Latin script) so linkage can be measured, and a handful of bad rows are planted.
//! `ground-truth.json` records, for every row, which synthetic person it is and how it was
//! written, and every planted bad row with the reason tip must give. All names are synthetic.
//!
//! One random stream, seeded once, makes the persons and then every partner's files, partner by
//! partner in a fixed order: the same seed gives byte-identical files. Each partner's layout is
//! in its own module (`lt_ngo`, `lv_police`, `pl_child_protection`, `ee_services`, `no_htcds`).

mod ee_services;
mod lt_ngo;
mod lv_police;
mod no_htcds;
mod output;
mod people;
mod pl_child_protection;

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::schema::Catalog;
use output::{Labels, Writer};
use people::Person;

pub use no_htcds::{HTCDS_TEMPLATE, fill_htcds_template};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}

fn io<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> GenerateError + '_ {
    move |e| GenerateError::Io(format!("{what}: {e}"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub persons: usize,
    pub files: Vec<TruthFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthFile {
    /// Path relative to the output directory.
    pub path: String,
    pub partner: String,
    pub record_type: String,
    /// Data rows written, bad rows included.
    pub rows: u64,
    pub bad_rows: Vec<BadRow>,
    /// (row number, person index, name variant) of every good row that names a person.
    pub row_persons: Vec<(u64, usize, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BadRow {
    pub row: u64,
    pub field: String,
    pub reason: String,
}

/// The directory of each sample partner under the output directory.
const PARTNER_DIRS: [&str; 5] = [
    "lt-ngo",
    "lv-police",
    "pl-child-protection",
    "ee-services",
    "no-ngo",
];

/// Organisations a referral may be sent to.
const REFERRAL_ORGS: &[&str] = &[
    "LT-NGO-01",
    "LT-POL-01",
    "LT-CP-01",
    "LV-NGO-01",
    "LV-CP-01",
    "PL-POL-01",
    "PL-CP-01",
    "EE-POL-01",
    "EE-SVC-01",
    "NO-POL-01",
    "NO-CP-01",
    "NO-NGO-01",
];

/// What the partners' writers share in one run. Each partner draws from `rng` in turn, so the
/// order of the partners and of the draws within each is what makes the output reproducible.
struct SampleRun<'a> {
    /// The single random stream, seeded once.
    rng: ChaCha8Rng,
    people: &'a [Person],
    /// For each person, the partners that register them; the first is the primary one.
    reporters: &'a [Vec<&'static str>],
    labels: Labels<'a>,
    /// The output directory.
    out: &'a Path,
    /// The ground truth of every file written so far, in the order written.
    files: Vec<TruthFile>,
}

impl<'a> SampleRun<'a> {
    /// Whether `partner` ("LT", "LV", "PL" or "NO") registers person `i`.
    fn reports(&self, i: usize, partner: &str) -> bool {
        self.reporters[i].contains(&partner)
    }
    /// The person whose names the planted bad rows use.
    fn first_person(&self) -> &'a Person {
        &self.people[0]
    }
    /// Where a file is written.
    fn path(&self, w: &Writer) -> PathBuf {
        self.out.join(&w.truth.path)
    }
    /// Records a written file in the ground truth.
    fn done(&mut self, w: Writer) {
        self.files.push(w.truth);
    }
}

/// Generates the sample partner files under `out` and returns the ground truth.
pub fn generate(out: &Path, persons: usize, seed: u64) -> Result<Truth, GenerateError> {
    let catalog = Catalog::load(Path::new("schemas"))?;
    generate_with(out, persons, seed, &catalog)
}

/// Where the spreadsheets are split into several files: a sheet holds at most 1 048 576 rows,
/// and tip refuses a workbook that decompresses to more than 256 MiB.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// Persons in one Polish workbook (each has a case, about two risk assessments as a child,
    /// and a referral one time in two).
    pub pl_persons_per_workbook: usize,
    /// Rows (persons) in one HTCDS file.
    pub htcds_rows_per_file: usize,
}

impl Default for Split {
    fn default() -> Split {
        Split {
            pl_persons_per_workbook: pl_child_protection::PERSONS_PER_WORKBOOK,
            htcds_rows_per_file: no_htcds::ROWS_PER_FILE,
        }
    }
}

/// Generates the sample partner files for `n_persons` persons under `out`, with the code labels
/// of `catalog`, writes `ground-truth.json` and returns the ground truth.
pub fn generate_with(
    out: &Path,
    n_persons: usize,
    seed: u64,
    catalog: &Catalog,
) -> Result<Truth, GenerateError> {
    generate_split(out, n_persons, seed, catalog, Split::default())
}

/// [`generate_with`], with the spreadsheets split where `split` says. The same seed gives the
/// same rows whatever the split; only the files they are in differ.
pub fn generate_split(
    out: &Path,
    n_persons: usize,
    seed: u64,
    catalog: &Catalog,
    split: Split,
) -> Result<Truth, GenerateError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let people = people::make_people(&mut rng, n_persons);
    for d in PARTNER_DIRS {
        std::fs::create_dir_all(out.join(d)).map_err(io("mkdir"))?;
    }
    let reporters = people::assign_reporters(&mut rng, &people);
    let mut run = SampleRun {
        rng,
        people: &people,
        reporters: &reporters,
        labels: Labels { catalog },
        out,
        files: Vec::new(),
    };
    lt_ngo::write(&mut run)?;
    lv_police::write(&mut run)?;
    pl_child_protection::write(&mut run, split.pl_persons_per_workbook)?;
    ee_services::write(&mut run)?;
    no_htcds::write(&mut run, split.htcds_rows_per_file)?;
    let truth = Truth {
        seed,
        persons: n_persons,
        files: run.files,
    };
    let mut f = std::fs::File::create(out.join("ground-truth.json")).map_err(io("write"))?;
    serde_json::to_writer_pretty(&mut f, &truth).map_err(io("json"))?;
    f.write_all(b"\n").map_err(io("write"))?;
    Ok(truth)
}
