//! `tip pseudonymise`: reads a partner file in the canonical layout and writes a CSV with
//! pseudonyms instead of identifiers, the stored input fields and the original row numbers, so
//! raw identifiers never leave the partner. Rows with problems are reported and left out.

use std::path::Path;

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;

use super::passes::FileJob;
use super::{Channel, FileReport, FileStatus, IngestError, Ingestor, Mode, Submission};
use crate::mapping::Mapping;
use crate::pseudonym::Provenance;
use crate::schema::{FieldClass, RecordSchema};
use crate::source::{self, SourceError};

pub(super) fn pseudonymise_file(
    ing: &Ingestor,
    partner: &str,
    mapping: &Mapping,
    input: &Path,
    output: &Path,
) -> Result<FileReport, IngestError> {
    let sub = Submission {
        partner,
        mapping,
        channel: Channel::Load,
        mode: Mode::Upsert,
        progress: None,
    };
    let org = ing.registry.get(partner).ok_or_else(|| {
        IngestError::Usage(format!(
            "partner {partner:?} is not in the organisation registry"
        ))
    })?;
    let prov = Provenance {
        partner: partner.to_string(),
        reporting_country: org.country.clone(),
        submission_id: String::new(),
        source_sha256: String::new(),
        ingested_at_micros: 0,
    };
    let job = FileJob::new(ing, &sub, input, prov)?;
    let spec = job.spec()?;
    let v = job.validator();
    let columns = output_columns(&job.record);
    // Written to a temporary file beside the output and renamed at the end: a failed run
    // leaves no half-written file.
    let tmp = output.with_extension("partial");
    let out_err = |e: &dyn std::fmt::Display| IngestError::File {
        file: source::display_name(output),
        message: format!("cannot write: {e}"),
    };
    let mut w = ::csv::Writer::from_path(&tmp).map_err(|e| out_err(&e))?;
    w.write_record(&columns).map_err(|e| out_err(&e))?;
    let mut report = FileReport::new(&job.file, &job.record.record_type, &Mode::Upsert);
    let mut write_err: Option<String> = None;
    let mut sink = |raw: source::RawBatch| -> Result<(), SourceError> {
        report.issues.extend(raw.issues);
        let (typed, issues) = job.map_and_validate(&v, &raw.batch)?;
        report.issues.extend(issues);
        report.rows_accepted += typed.num_rows() as u64;
        let stored = job
            .stage
            .apply(&typed, &job.prov)
            .map_err(|e| SourceError::Sink(format!("{}: {e}", job.file)))?;
        write_rows(&mut w, &columns, &stored).map_err(|e| {
            write_err = Some(e.to_string());
            SourceError::Sink(format!("{}: cannot write", source::display_name(output)))
        })
    };
    if let Err(e) = source::read(input, &spec, &mut sink) {
        let _ = std::fs::remove_file(&tmp);
        if let Some(m) = write_err {
            return Err(out_err(&m));
        }
        report.status = FileStatus::Rejected(e.to_string());
        return Ok(report);
    }
    report.rows_read = report.rows_accepted + report.rows_quarantined();
    w.flush().map_err(|e| out_err(&e))?;
    drop(w);
    std::fs::rename(&tmp, output).map_err(|e| out_err(&e))?;
    report
        .issues
        .sort_by(|a, b| (a.row, &a.field).cmp(&(b.row, &b.field)));
    Ok(report)
}

/// `source_row`, the pseudonyms, then the stored input fields.
fn output_columns(record: &RecordSchema) -> Vec<String> {
    let mut columns: Vec<String> = vec!["source_row".into()];
    columns.extend(record.pseudonyms());
    columns.extend(
        record
            .input_fields()
            .filter(|f| f.class != FieldClass::Identifier)
            .map(|f| f.name.clone()),
    );
    columns
}

fn write_rows(
    w: &mut ::csv::Writer<std::fs::File>,
    columns: &[String],
    stored: &RecordBatch,
) -> Result<(), ::csv::Error> {
    let cols: Vec<Vec<Option<String>>> = columns
        .iter()
        .map(|c| {
            stored
                .column_by_name(c)
                .map(canonical_text)
                .unwrap_or_else(|| vec![None; stored.num_rows()])
        })
        .collect();
    for r in 0..stored.num_rows() {
        let row: Vec<&str> = cols.iter().map(|c| c[r].as_deref().unwrap_or("")).collect();
        w.write_record(&row)?;
    }
    Ok(())
}

/// Values in the canonical layout: ISO dates, `true`/`false`, lists joined with `;`.
fn canonical_text(a: &ArrayRef) -> Vec<Option<String>> {
    use arrow::array::Array;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let a = crate::schema::lists_as_text(a, ";");
    match ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()) {
        Ok(f) => (0..a.len())
            .map(|i| a.is_valid(i).then(|| f.value(i).to_string()))
            .collect(),
        Err(_) => vec![None; a.len()],
    }
}
