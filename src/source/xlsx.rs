//! Excel workbooks (xlsx, xlsm) through calamine, including the IOM HTCDS templates, whose
//! hidden first row holds the field names and whose data starts on row 3 (set by the preset).
//! Real Excel dates become ISO dates; text stays text.

use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use super::{Reason, RowBuffer, Sink, SourceError, SourceSpec, match_headers};

pub(super) fn read(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let mut wb: Xlsx<_> = open_workbook(path).map_err(|e| SourceError::NotFormat {
        file: file.into(),
        format: "xlsx workbook",
        detail: match e {
            calamine::XlsxError::Io(io) => io.kind().to_string(),
            calamine::XlsxError::Zip(_) => "not a zip container".into(),
            _ => "unreadable workbook structure".into(),
        },
    })?;
    let sheet = choose_sheet(&wb.sheet_names(), file, spec)?;
    let range = wb
        .worksheet_range(&sheet)
        .map_err(|_| SourceError::Structure {
            file: file.into(),
            detail: format!("sheet {sheet:?} cannot be read"),
        })?;
    if range.start().is_none() {
        return Err(SourceError::Empty { file: file.into() });
    }
    let (_, end_col) = range.end().unwrap_or((0, 0));
    let header_row = spec.header_row.max(1) as u32 - 1;
    let headers: Vec<String> = (0..=end_col)
        .map(|c| {
            range
                .get_value((header_row, c))
                .map(cell_text)
                .unwrap_or_default()
                .unwrap_or_default()
        })
        .collect();
    let idx = match_headers(&headers, &spec.wanted);
    super::check_required(file, spec, &idx)?;
    let first = spec
        .first_data_row
        .map(|r| r.max(1) as u32 - 1)
        .unwrap_or(header_row + 1);
    read_rows(&range, first, &idx, spec, sink)
}

/// The sheet the spec names (by name, case-insensitively, or by position).
fn choose_sheet(names: &[String], file: &str, spec: &SourceSpec) -> Result<String, SourceError> {
    match &spec.sheet {
        Some(s) => names
            .iter()
            .find(|n| n.trim().eq_ignore_ascii_case(s.trim()))
            .cloned()
            .ok_or_else(|| SourceError::Structure {
                file: file.into(),
                // Sheet names are partner input (one could be a child's name): not echoed.
                detail: format!(
                    "no sheet named {s:?} (the workbook has {} sheets)",
                    names.len()
                ),
            }),
        None => names
            .get(spec.sheet_index)
            .cloned()
            .ok_or_else(|| SourceError::Structure {
                file: file.into(),
                detail: format!("the workbook has no sheet {}", spec.sheet_index + 1),
            }),
    }
}

/// The data rows from `first` on, wanted columns only. Rows with nothing in any mapped column
/// are blank template rows, not records.
fn read_rows(
    range: &calamine::Range<Data>,
    first: u32,
    idx: &[Option<usize>],
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let (end_row, _) = range.end().unwrap_or((0, 0));
    let mut buf = RowBuffer::new(&spec.wanted, spec.batch_rows);
    let mut values: Vec<Option<String>> = vec![None; spec.wanted.len()];
    for r in first..=end_row {
        let mut bad: Option<(usize, Reason)> = None;
        for (k, (v, i)) in values.iter_mut().zip(idx).enumerate() {
            *v = match i.and_then(|c| range.get_value((r, c as u32))) {
                Some(Data::Error(_)) => {
                    bad.get_or_insert((k, Reason::CellError));
                    None
                }
                Some(d) => cell_text(d),
                None => None,
            };
        }
        if values
            .iter()
            .all(|v| v.as_deref().is_none_or(|s| s.trim().is_empty()))
            && bad.is_none()
        {
            continue;
        }
        let row = r as u64 + 1;
        if let Some((k, reason)) = bad {
            buf.issue(row, &spec.wanted[k], reason);
            continue;
        }
        buf.push(row, &values, sink)?;
    }
    buf.flush(sink)?;
    Ok(buf.total)
}

fn cell_text(d: &Data) -> Option<String> {
    match d {
        Data::Empty | Data::Error(_) => None,
        Data::String(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) => Some(if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", *f as i64)
        } else {
            f.to_string()
        }),
        Data::Bool(b) => Some(b.to_string()),
        Data::DateTime(dt) => dt.as_datetime().map(|t| {
            if t.time() == chrono::NaiveTime::MIN {
                t.date().format("%Y-%m-%d").to_string()
            } else {
                t.format("%Y-%m-%dT%H:%M:%S").to_string()
            }
        }),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
    }
}
