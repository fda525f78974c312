//! The one reading pass over a file, and the hand-over of its rows to the commit. The pass
//! reads the file once; its batches are mapped, validated, keyed and pseudonymised on every
//! core ([`parallel`](super::parallel)), and the stored rows wait in a private spill. It
//! touches no lake: it learns the rows accepted, the row problems (a row without a key, or two
//! rows with one key, included), the keys and the months covered, so a file wrong as a whole
//! is rejected before anything is written. The commit then streams the spill's accepted rows
//! to the lake writer.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array, Int64Array, StringArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::keys::KeyBook;
pub(crate) use super::keys::KeySet;
use super::{IngestError, Ingestor, Mode, Progress, Submission, parallel, sha256_file, today};
use crate::config::Registry;
use crate::mapping::Mapping;
use crate::pseudonym::{Provenance, Stage};
use crate::schema::{Catalog, RecordSchema};
use crate::source::{self, Reason, RowIssue, SourceError, SourceSpec};
use crate::util::months::month_of_days;
use crate::util::staging::Staging;
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
    /// Keyed rows held in memory before they are sorted to disk (`ingest.keys_in_memory`).
    pub keys_in_memory: usize,
    pub key_version: String,
    pub stage: Stage,
    pub prov: Provenance,
    /// Rows done so far, for a progress bar.
    pub progress: Option<Arc<Progress>>,
}

/// What the one reading pass learned. The stored rows it made wait in `spill` until the commit.
pub(crate) struct PassOne {
    pub rows_read: u64,
    pub accepted: u64,
    pub issues: Vec<RowIssue>,
    pub period: Option<(String, String)>,
    pub imputed: BTreeSet<String>,
    /// The keys of the accepted rows (each once).
    pub keys: KeySet,
    /// A snapshot's keys whose rows were set aside although the key could be read (a bad
    /// field elsewhere in the row, or a key two rows shared): their records stay as they were
    /// rather than be removed as absent. Empty for other modes.
    pub kept: Vec<KeySet>,
    /// Rows that passed validation but are not taken: no key, or a key another row has too.
    pub excluded: Arc<HashSet<u64>>,
    /// The pseudonymised rows, as written by the pass (none for a withdrawal).
    pub spill: Option<Spill>,
}

/// The pseudonymised rows of one file between the reading pass and the commit: one Arrow IPC
/// stream (LZ4) per month, in a private staging directory removed when dropped. It holds
/// exactly what the lake will hold, never a raw identifier. Kept by month so the commit hands
/// the writer one partition at a time: files sized for readers, and a writer that holds one
/// month's rows, not the file's.
pub(crate) struct Spill {
    _dir: Staging,
    /// Each month's stream, in month order.
    months: Vec<PathBuf>,
}

/// What one raw batch became on a worker.
struct Piece {
    issues: Vec<RowIssue>,
    days: DayRange,
    imputed: BTreeSet<String>,
    rows: Int64Array,
    keys: ArrayRef,
    /// The stored rows, by month.
    stored: Vec<(String, RecordBatch)>,
    /// A snapshot's rows set aside by validation, with their keys where the key fields could
    /// be read (null where not).
    aside: Option<(Int64Array, ArrayRef)>,
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
            keys_in_memory: ing.config.ingest.keys_in_memory,
            key_version: ing.key_version(),
            prov,
            progress: sub.progress.clone(),
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

    /// A snapshot keys the rows it sets aside (see [`PassOne::kept`]).
    fn is_snapshot(&self) -> bool {
        matches!(self.mode, Mode::Snapshot(_))
    }

    /// The input fields of one key alternative.
    fn alternative_fields(&self, alternative: &[String]) -> BTreeSet<String> {
        alternative
            .iter()
            .flat_map(|c| match self.catalog.pseudonyms.get(c) {
                Some(def) => def.inputs.iter().map(|i| i.field.clone()).collect(),
                None => vec![c.clone()],
            })
            .collect()
    }

    /// The keys of the rows of `canonical` that validation set aside (`bad`), made as an
    /// accepted row's would be: from the first key alternative whose fields the row has, when
    /// those fields are valid. A row whose first present alternative is invalid, or that has
    /// none, gets no key (it cannot be told which record it is).
    fn aside_keys(
        &self,
        canonical: &RecordBatch,
        bad: &[RowIssue],
    ) -> Result<(Int64Array, ArrayRef), SourceError> {
        let sink = |e: String| SourceError::Sink(format!("{}: {e}", self.file));
        let set_aside: HashSet<u64> = bad.iter().map(|i| i.row).collect();
        let rows = source_rows(canonical)?;
        let pick = |keep: &dyn Fn(usize) -> bool, b: &RecordBatch| {
            let mask: BooleanArray = (0..b.num_rows()).map(|r| Some(keep(r))).collect();
            arrow::compute::filter_record_batch(b, &mask).map_err(|e| sink(e.to_string()))
        };
        let picked = pick(&|r| set_aside.contains(&(rows.value(r) as u64)), canonical)?;
        let picked_rows = source_rows(&picked)?.clone();
        let mut decided: HashSet<u64> = HashSet::new();
        let (mut out_rows, mut out_keys) = (Vec::new(), Vec::new());
        for alternative in &self.record.key {
            let fields = self.alternative_fields(alternative);
            let has = |r: usize| {
                fields.iter().all(|f| {
                    picked.column_by_name(f).is_some_and(|c| {
                        c.is_valid(r)
                            && c.as_any()
                                .downcast_ref::<StringArray>()
                                .is_none_or(|s| !s.value(r).trim().is_empty())
                    })
                })
            };
            let complete = |r: usize| !decided.contains(&(picked_rows.value(r) as u64)) && has(r);
            let sub = pick(&complete, &picked)?;
            if sub.num_rows() == 0 {
                continue;
            }
            decided.extend(source_rows(&sub)?.values().iter().map(|&r| r as u64));
            let mut v = self.validator();
            v.only = Some(fields);
            let (typed, _) = v.apply(&sub).map_err(sink)?;
            let keys = self.keys(&typed)?;
            let keys = keys
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| sink("record keys are not text".into()))?;
            out_rows.extend(source_rows(&typed)?.values().iter().copied());
            out_keys.extend(keys.iter().map(|k| k.map(str::to_string)));
        }
        Ok((
            Int64Array::from(out_rows),
            Arc::new(StringArray::from(out_keys)) as ArrayRef,
        ))
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

    /// One raw batch through mapping, validation and pseudonymisation (a withdrawal keys its
    /// rows only): what a worker does.
    fn piece(
        &self,
        v: &Validator<'_>,
        period_idx: Option<usize>,
        raw: source::RawBatch,
    ) -> Result<Piece, SourceError> {
        let mut issues = raw.issues;
        let canonical = self
            .mapping
            .apply(&raw.batch, &self.submission_date)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))?;
        let (typed, bad) = v
            .apply(&canonical)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", self.file)))?;
        let aside = match self.is_snapshot() && !bad.is_empty() {
            true => Some(self.aside_keys(&canonical, &bad)?),
            false => None,
        };
        issues.extend(bad);
        let mut days = DayRange::default();
        if let Some(i) = period_idx {
            days.extend(typed.column(i));
        }
        let mut imputed = BTreeSet::new();
        collect_imputed(&typed, &mut imputed);
        let rows = source_rows(&typed)?.clone();
        let sink = |e: String| SourceError::Sink(format!("{}: {e}", self.file));
        let (keys, stored) = if self.mode == Mode::Withdraw {
            (self.keys(&typed)?, Vec::new())
        } else {
            let (keys, stored) = self.stage.apply_keyed(&typed, &self.prov).map_err(sink)?;
            (keys, by_month(&stored).map_err(sink)?)
        };
        Ok(Piece {
            issues,
            days,
            imputed,
            rows,
            keys,
            stored,
            aside,
        })
    }

    /// The one reading pass: reads the file once, maps, validates and pseudonymises its
    /// batches on every core, learns the keys, row problems and months, and writes the stored
    /// rows to a spill for the commit. Touches no lake: a file wrong as a whole is an error
    /// here, and nothing of it is anywhere but in the spill, which is dropped with it.
    pub fn pass_one(&self) -> Result<PassOne, IngestError> {
        let spec = self.spec()?;
        let v = self.validator();
        let period_idx = self
            .record
            .period_field
            .as_ref()
            .and_then(|p| self.record.validated_schema().index_of(p).ok());
        let mut spill = match self.mode {
            Mode::Withdraw => None,
            _ => Some(SpillWriter::new(&self.file, self.record.stored_schema())?),
        };
        let (mut issues, mut imputed) = (Vec::new(), BTreeSet::new());
        let (mut book, mut days) = (
            KeyBook::with_limit(self.keys_in_memory),
            DayRange::default(),
        );
        // A snapshot's rows set aside, by key: the rows whose key could be read.
        let (mut aside_book, mut aside_keyed) =
            (KeyBook::with_limit(self.keys_in_memory), HashSet::new());
        let consume = |p: Piece| -> Result<(), SourceError> {
            issues.extend(p.issues);
            days.merge(&p.days);
            imputed.extend(p.imputed);
            book.add(&p.rows, &p.keys)?;
            if let Some((rows, keys)) = &p.aside {
                aside_book.add(rows, keys)?;
                aside_keyed.extend(
                    (0..rows.len())
                        .filter(|&r| keys.is_valid(r))
                        .map(|r| rows.value(r) as u64),
                );
            }
            if let Some(w) = spill.as_mut() {
                for (month, b) in p.stored {
                    w.write(&month, &b)?;
                }
            }
            if let Some(progress) = &self.progress {
                progress.rows(p.rows.len() as u64);
            }
            Ok(())
        };
        let rows_read = parallel::ordered(
            parallel::workers(),
            |push| source::read(&self.path, &spec, push),
            |raw| self.piece(&v, period_idx, raw),
            consume,
        )?;
        let spill = spill.map(SpillWriter::finish).transpose()?;
        self.refuse_other_keys(&issues)?;
        let finished = book.finish(self.stage.key_inputs())?;
        let mut kept = Vec::new();
        if self.is_snapshot() {
            // Rows sharing a key were set aside with a key that could be read, too.
            aside_keyed.extend(
                finished
                    .issues
                    .iter()
                    .filter(|i| i.reason == Reason::DuplicateKey)
                    .map(|i| i.row),
            );
            self.refuse_unkeyed_aside(&issues, &finished.issues, &aside_keyed)?;
            let aside = aside_book.finish(self.stage.key_inputs())?;
            kept = vec![aside.keys, aside.shared, finished.shared];
        }
        issues.extend(finished.issues);
        issues.sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
        Ok(PassOne {
            rows_read,
            accepted: finished.keys.len() as u64,
            issues,
            period: days.months(),
            imputed,
            keys: finished.keys,
            kept,
            excluded: Arc::new(finished.excluded),
            spill,
        })
    }

    /// A snapshot removes what it does not have. A row set aside whose key could be read keeps
    /// that key's record as it was (see [`PassOne::kept`]); a row set aside whose key could not
    /// be read might be a record the snapshot would wrongly remove, so the snapshot is refused
    /// as a whole, naming those rows.
    fn refuse_unkeyed_aside(
        &self,
        issues: &[RowIssue],
        key_issues: &[RowIssue],
        keyed: &HashSet<u64>,
    ) -> Result<(), IngestError> {
        let rows: BTreeSet<u64> = issues
            .iter()
            .chain(key_issues)
            .map(|i| i.row)
            .filter(|r| !keyed.contains(r))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = rows.iter().take(10).map(u64::to_string).collect();
        Err(SourceError::Structure {
            file: self.file.clone(),
            detail: format!(
                "a complete snapshot removes the records it does not list, and {} of its rows were set aside without a key that can be read (rows {}{}), so tip cannot tell which records they are; nothing was committed: correct them, or send the file without declaring a snapshot",
                rows.len(),
                shown.join(", "),
                if rows.len() > 10 { ", ..." } else { "" }
            ),
        }
        .into())
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

    /// Sends the accepted rows of the spill (those not `excluded`) to the writer: the commit
    /// reads what the pass made, not the file again. Fails if the file changed since the pass
    /// began (its content would not be what the ledger names).
    pub fn send_spill(
        &self,
        one: &PassOne,
        tx: &tokio::sync::mpsc::Sender<Result<RecordBatch, String>>,
    ) -> Result<(), String> {
        let file = &self.file;
        let Some(spill) = &one.spill else {
            return Err(format!("{file}: nothing to write"));
        };
        let staged =
            |e: &dyn std::fmt::Display| format!("{file}: cannot read the staged rows: {e}");
        let mut accepted = 0u64;
        for path in &spill.months {
            let reader = std::fs::File::open(path)
                .map_err(|e| staged(&e.kind()))
                .and_then(|f| {
                    arrow::ipc::reader::StreamReader::try_new(std::io::BufReader::new(f), None)
                        .map_err(|e| staged(&e))
                })?;
            let schema = reader.schema();
            let mut pending: Vec<RecordBatch> = Vec::new();
            let mut rows = 0usize;
            let mut send = |pending: &mut Vec<RecordBatch>| -> Result<(), String> {
                let b = arrow::compute::concat_batches(&schema, pending.iter())
                    .map_err(|e| staged(&e))?;
                pending.clear();
                accepted += b.num_rows() as u64;
                tx.blocking_send(Ok(b))
                    .map_err(|_| format!("{file}: the lake writer stopped"))
            };
            for batch in reader {
                let stored = taken(&batch.map_err(|e| staged(&e))?, &one.excluded)
                    .map_err(|e| format!("{file}: {e}"))?;
                rows += stored.num_rows();
                pending.push(stored);
                if rows >= SEND_ROWS {
                    send(&mut pending)?;
                    rows = 0;
                }
            }
            if rows > 0 {
                send(&mut pending)?;
            }
        }
        if accepted != one.accepted {
            return Err(format!(
                "{file}: internal error: the staged rows do not match the file; nothing was committed"
            ));
        }
        Ok(())
    }

    /// The file's content is still what it was when its SHA-256 was taken for the ledger.
    pub fn check_unchanged(&self) -> Result<(), String> {
        let file = &self.file;
        let sha =
            sha256_file(&self.path).map_err(|e| format!("{file}: cannot read: {}", e.kind()))?;
        if sha != self.prov.source_sha256 {
            return Err(format!(
                "{file}: the file changed while it was being ingested; nothing was committed"
            ));
        }
        Ok(())
    }
}

/// Rows per batch handed to the lake writer (the staged pieces of a month are joined to this).
/// The writer gathers them into row groups of 128 Ki rows; a smaller batch is less memory in
/// flight between the spill and the writer.
const SEND_ROWS: usize = 32_768;

/// A batch's rows grouped by month (`period`), months in order.
fn by_month(b: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, String> {
    use arrow::array::AsArray;
    let err = |e: arrow::error::ArrowError| e.to_string();
    let i = b.schema().index_of("period").map_err(err)?;
    let order = arrow::compute::sort_to_indices(b.column(i), None, None).map_err(err)?;
    let sorted = arrow::compute::take_record_batch(b, &order).map_err(err)?;
    let months = sorted
        .column(i)
        .as_string_opt::<i32>()
        .ok_or("period is not text")?;
    let runs = arrow::compute::partition(&[sorted.column(i).clone()]).map_err(err)?;
    Ok(runs
        .ranges()
        .into_iter()
        .map(|r| {
            (
                months.value(r.start).to_string(),
                sorted.slice(r.start, r.len()),
            )
        })
        .collect())
}

/// Writes the stored rows of a pass to a spill, one stream per month.
struct SpillWriter {
    dir: Staging,
    schema: SchemaRef,
    months: std::collections::BTreeMap<String, (PathBuf, MonthWriter)>,
    file: String,
}

type MonthWriter = arrow::ipc::writer::StreamWriter<std::io::BufWriter<std::fs::File>>;

impl SpillWriter {
    fn new(file: &str, schema: SchemaRef) -> Result<SpillWriter, SourceError> {
        let dir = Staging::new()
            .map_err(|e| SourceError::Sink(format!("{file}: cannot stage rows: {}", e.kind())))?;
        Ok(SpillWriter {
            dir,
            schema,
            months: Default::default(),
            file: file.to_string(),
        })
    }

    fn err(&self, e: &dyn std::fmt::Display) -> SourceError {
        SourceError::Sink(format!("{}: cannot stage rows: {e}", self.file))
    }

    fn write(&mut self, month: &str, b: &RecordBatch) -> Result<(), SourceError> {
        if !self.months.contains_key(month) {
            let path = self
                .dir
                .path()
                .join(format!("{}.arrows", self.months.len()));
            let out = std::fs::File::create(&path).map_err(|e| self.err(&e.kind()))?;
            let options = arrow::ipc::writer::IpcWriteOptions::default()
                .try_with_compression(Some(arrow::ipc::CompressionType::LZ4_FRAME))
                .map_err(|e| self.err(&e))?;
            let w = arrow::ipc::writer::StreamWriter::try_new_with_options(
                std::io::BufWriter::with_capacity(64 * 1024, out),
                &self.schema,
                options,
            )
            .map_err(|e| self.err(&e))?;
            self.months.insert(month.to_string(), (path, w));
        }
        let res = match self.months.get_mut(month) {
            Some((_, w)) => w.write(b),
            None => return Err(self.err(&"month not staged")),
        };
        res.map_err(|e| self.err(&e))
    }

    fn finish(mut self) -> Result<Spill, SourceError> {
        let mut months = Vec::with_capacity(self.months.len());
        for (_, (path, mut w)) in std::mem::take(&mut self.months) {
            w.finish().map_err(|e| self.err(&e))?;
            let out = w.into_inner().map_err(|e| self.err(&e))?;
            out.into_inner().map_err(|e| self.err(&e.error().kind()))?;
            months.push(path);
        }
        Ok(Spill {
            _dir: self.dir,
            months,
        })
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

    fn merge(&mut self, other: &DayRange) {
        if let Some((a, b)) = other.0 {
            self.0 = Some(match self.0 {
                Some((x, y)) => (x.min(a), y.max(b)),
                None => (a, b),
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
