//! The two reading passes over one file. The first reads, maps, validates and keys every row
//! and touches no lake: it learns the rows accepted, the row problems (a row without a key, or
//! two rows with one key, included), the keys and the months covered. The second reads the
//! file again and sends the pseudonymised accepted rows to the lake writer.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;

use super::{IngestError, Ingestor, Mode, Submission, sha256_file, today};
use crate::config::Registry;
use crate::mapping::Mapping;
use crate::pseudonym::{Provenance, Stage};
use crate::schema::{Catalog, RecordSchema};
use crate::source::{self, Reason, RowIssue, SourceError, SourceSpec};
use crate::util::months::month_of_days;
use crate::validate::Validator;

/// Everything the reading passes need, owned so they can run on a blocking thread.
pub(crate) struct FileJob {
    pub path: PathBuf,
    pub file: String,
    pub record: RecordSchema,
    pub mapping: Mapping,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub partner: String,
    pub mode: Mode,
    pub submission_date: String,
    pub batch_rows: usize,
    pub key_version: String,
    pub stage: Stage,
    pub prov: Provenance,
}

/// What the first pass learned.
#[derive(Debug, Clone)]
pub(crate) struct PassOne {
    pub rows_read: u64,
    pub accepted: u64,
    pub issues: Vec<RowIssue>,
    pub period: Option<(String, String)>,
    pub imputed: BTreeSet<String>,
    /// The keys of the accepted rows (each once).
    pub keys: Vec<String>,
    /// Rows that passed validation but are not taken: no key, or a key another row has too.
    pub excluded: Arc<HashSet<u64>>,
}

/// Keys seen so far: the first row of each, and the rows of keys seen more than once.
#[derive(Default)]
struct KeyBook {
    first: HashMap<String, u64>,
    repeated: HashMap<String, Vec<u64>>,
    missing: Vec<u64>,
}

impl KeyBook {
    fn add(&mut self, rows: &Int64Array, keys: &ArrayRef) {
        let keys = keys.as_any().downcast_ref::<StringArray>();
        for r in 0..rows.len() {
            let row = rows.value(r) as u64;
            match keys.filter(|k| k.is_valid(r)).map(|k| k.value(r)) {
                None => self.missing.push(row),
                Some(k) => match self.first.get(k) {
                    None => {
                        self.first.insert(k.to_string(), row);
                    }
                    Some(&first) => self
                        .repeated
                        .entry(k.to_string())
                        .or_insert_with(|| vec![first])
                        .push(row),
                },
            }
        }
    }

    /// The unique keys, the rows not taken, and the row problems for them.
    fn finish(mut self, key_inputs: &str) -> (Vec<String>, HashSet<u64>, Vec<RowIssue>) {
        let issue = |row: u64, reason| RowIssue {
            row,
            field: key_inputs.to_string(),
            reason,
        };
        let mut issues: Vec<RowIssue> = self
            .missing
            .iter()
            .map(|&r| issue(r, Reason::MissingKey))
            .collect();
        let mut excluded: HashSet<u64> = self.missing.iter().copied().collect();
        for (k, rows) in &self.repeated {
            self.first.remove(k);
            for &r in rows {
                excluded.insert(r);
                issues.push(issue(r, Reason::DuplicateKey));
            }
        }
        let mut keys: Vec<String> = self.first.into_keys().collect();
        keys.sort();
        (keys, excluded, issues)
    }
}

impl FileJob {
    pub fn new(
        ing: &Ingestor,
        sub: &Submission<'_>,
        path: &Path,
        prov: Provenance,
    ) -> Result<FileJob, IngestError> {
        let record = ing.record(&sub.mapping.record_type)?.clone();
        Ok(FileJob {
            path: path.to_path_buf(),
            file: source::display_name(path),
            stage: Stage::new(&record, &ing.catalog, ing.key()),
            record,
            mapping: sub.mapping.clone(),
            catalog: ing.catalog.clone(),
            registry: ing.registry.clone(),
            partner: sub.partner.to_string(),
            mode: sub.mode.clone(),
            submission_date: today(),
            batch_rows: ing.config.ingest.batch_rows,
            key_version: ing.key_version(),
            prov,
        })
    }

    pub fn spec(&self) -> Result<SourceSpec, SourceError> {
        let mut spec = SourceSpec::from_options(
            &self.file,
            self.mapping.format,
            &self.mapping.options,
            self.mapping.wanted(),
            self.batch_rows,
        )?;
        // A withdrawal needs the key fields only: rows without them are set aside.
        if self.mode != Mode::Withdraw {
            spec.required = self.mapping.required_groups(&self.record);
        }
        Ok(spec)
    }

    pub fn validator(&self) -> Validator<'_> {
        let m = &self.mapping;
        let mut v = Validator::new(
            &self.record,
            &self.catalog,
            &self.registry,
            &self.partner,
            m.options.date_formats.clone().unwrap_or_default(),
            m.options.decimal_separator.as_deref() == Some(","),
            m.format.is_spreadsheet(),
        );
        if m.pseudonymised {
            v.expect_key_version = Some(self.key_version.clone());
        }
        if self.mode == Mode::Withdraw {
            v.only = Some(self.key_fields());
        }
        v
    }

    /// The input fields any key alternative is made from.
    fn key_fields(&self) -> BTreeSet<String> {
        self.record
            .key
            .iter()
            .flatten()
            .flat_map(|c| match self.catalog.pseudonyms.get(c) {
                Some(def) => def.inputs.iter().map(|i| i.field.clone()).collect(),
                None => vec![c.clone()],
            })
            .collect()
    }

    /// The mapping and validation stages for one raw batch: typed rows and row-level problems.
    pub fn map_and_validate(
        &self,
        v: &Validator<'_>,
        raw: &RecordBatch,
    ) -> Result<(RecordBatch, Vec<RowIssue>), SourceError> {
        let canonical = self
            .mapping
            .apply(raw, &self.submission_date)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))?;
        v.apply(&canonical)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))
    }

    /// The record keys of validated rows.
    fn keys(&self, typed: &RecordBatch) -> Result<ArrayRef, SourceError> {
        self.stage
            .keys(typed, &self.prov)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))
    }

    /// Reads, maps, validates and keys the whole file; touches no lake.
    pub fn pass_one(&self) -> Result<PassOne, IngestError> {
        let spec = self.spec()?;
        let v = self.validator();
        let period_idx = self
            .record
            .period_field
            .as_ref()
            .and_then(|p| self.record.validated_schema().index_of(p).ok());
        let mut issues = Vec::new();
        let mut imputed = BTreeSet::new();
        let mut book = KeyBook::default();
        let mut days = DayRange::default();
        let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
            issues.extend(raw.issues);
            let (typed, bad) = self.map_and_validate(&v, &raw.batch)?;
            issues.extend(bad);
            if let Some(i) = period_idx {
                days.extend(typed.column(i));
            }
            collect_imputed(&typed, &mut imputed);
            book.add(source_rows(&typed)?, &self.keys(&typed)?);
            Ok(())
        };
        let rows_read = source::read(&self.path, &spec, &mut sink)?;
        self.refuse_other_keys(&issues)?;
        let (keys, excluded, key_issues) = book.finish(self.stage.key_inputs());
        issues.extend(key_issues);
        issues.sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
        Ok(PassOne {
            rows_read,
            accepted: keys.len() as u64,
            issues,
            period: days.months(),
            imputed,
            keys,
            excluded: Arc::new(excluded),
        })
    }

    /// A snapshot removes what it does not have: with rows set aside, it would remove records
    /// the partner did send. It is refused as a whole instead.
    pub fn check_snapshot(&self, one: &PassOne) -> Result<(), String> {
        if !matches!(self.mode, Mode::Snapshot(_)) || one.issues.is_empty() {
            return Ok(());
        }
        let rows: BTreeSet<u64> = one.issues.iter().map(|i| i.row).collect();
        let shown: Vec<String> = rows.iter().take(10).map(u64::to_string).collect();
        Err(format!(
            "{}: a complete snapshot must have no rows set aside, and {} were (rows {}{}); nothing was committed: correct them, or send the file without declaring a snapshot",
            self.file,
            rows.len(),
            shown.join(", "),
            if rows.len() > 10 { ", ..." } else { "" }
        ))
    }

    /// Pseudonyms made with another key would never link: the file is refused as a whole.
    fn refuse_other_keys(&self, issues: &[RowIssue]) -> Result<(), IngestError> {
        match issues.iter().find(|i| i.reason == Reason::WrongKeyVersion) {
            Some(i) => Err(SourceError::Structure {
                file: self.file.clone(),
                detail: format!(
                    "row {}: {} was made with a different key than this lake's (key version {}); pseudonymise with the network key",
                    i.row, i.field, self.key_version
                ),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Reads the file again, pseudonymises the accepted rows (those not `excluded`) and sends
    /// them to the writer. Fails if the file changed since the first pass.
    pub fn pass_two(
        &self,
        excluded: &HashSet<u64>,
        tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, String>>,
        expected: (u64, String),
    ) -> Result<(), String> {
        let file = &self.file;
        let spec = self.spec().map_err(|e| e.to_string())?;
        let v = self.validator();
        let mut accepted = 0u64;
        let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
            let (typed, _) = self.map_and_validate(&v, &raw.batch)?;
            let stored = self
                .stage
                .apply(&typed, &self.prov)
                .map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
            let stored =
                taken(&stored, excluded).map_err(|e| SourceError::Sink(format!("{file}: {e}")))?;
            if stored.num_rows() == 0 {
                return Ok(());
            }
            accepted += stored.num_rows() as u64;
            tx.blocking_send(Ok(stored))
                .map_err(|_| SourceError::Sink(format!("{file}: the lake writer stopped")))
        };
        source::read(&self.path, &spec, &mut sink).map_err(|e| e.to_string())?;
        let sha =
            sha256_file(&self.path).map_err(|e| format!("{file}: cannot read: {}", e.kind()))?;
        if accepted != expected.0 || sha != expected.1 {
            return Err(format!(
                "{file}: the file changed while it was being ingested; nothing was committed"
            ));
        }
        Ok(())
    }
}

fn source_rows(typed: &RecordBatch) -> Result<&Int64Array, SourceError> {
    typed
        .column_by_name("source_row")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or_else(|| SourceError::Sink("validated rows without source_row".into()))
}

/// The stored rows that are taken: a key, and not set aside.
fn taken(stored: &RecordBatch, excluded: &HashSet<u64>) -> Result<RecordBatch, String> {
    let rows = stored
        .column_by_name("source_row")
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
        .ok_or("stored rows without source_row")?;
    let keys = stored
        .column_by_name("record_key")
        .ok_or("stored rows without record_key")?;
    let keep: BooleanArray = (0..stored.num_rows())
        .map(|r| Some(keys.is_valid(r) && !excluded.contains(&(rows.value(r) as u64))))
        .collect();
    arrow::compute::filter_record_batch(stored, &keep).map_err(|e| e.to_string())
}

/// The fields a mapping filled in (`imputed_fields`, comma-separated per row).
fn collect_imputed(typed: &RecordBatch, into: &mut BTreeSet<String>) {
    if let Some(imp) = typed
        .column_by_name("imputed_fields")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    {
        for s in imp.iter().flatten() {
            into.extend(s.split(',').map(str::to_string));
        }
    }
}

/// The earliest and latest date seen, as Arrow days.
#[derive(Default)]
struct DayRange(Option<(i32, i32)>);

impl DayRange {
    fn extend(&mut self, column: &ArrayRef) {
        let Some(d) = column.as_any().downcast_ref::<Date32Array>() else {
            return;
        };
        for x in d.iter().flatten() {
            self.0 = Some(match self.0 {
                Some((a, b)) => (a.min(x), b.max(x)),
                None => (x, x),
            });
        }
    }

    fn months(&self) -> Option<(String, String)> {
        let (a, b) = self.0?;
        Some((
            month_of_days(a).unwrap_or_default(),
            month_of_days(b).unwrap_or_default(),
        ))
    }
}
