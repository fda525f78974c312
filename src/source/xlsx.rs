//! Excel workbooks (xlsx, xlsm) through calamine, including the IOM HTCDS templates, whose
//! hidden first row holds the field names and whose data starts on row 3 (set by the preset).
//! Real Excel dates become ISO dates; text stays text.

use std::io::Read;
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use super::{MAX_COLUMNS, Reason, RowBuffer, Sink, SourceError, SourceSpec, match_headers};

/// The most decompressed bytes a workbook may hold (all its parts together), checked before
/// anything is parsed: a zip bomb is refused, not unpacked.
pub const MAX_WORKBOOK_BYTES: u64 = 256 * 1024 * 1024;

pub(super) fn read(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    check_container(path, file)?;
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
    let unreadable = || SourceError::Structure {
        file: file.into(),
        // Sheet names are partner input (one could be a child's name): not echoed.
        detail: "the chosen sheet cannot be read".into(),
    };
    let mut cells = wb
        .worksheet_cells_reader(&sheet)
        .map_err(|_| unreadable())?;
    let mut rows = Rows::new(file, spec);
    while let Some(cell) = cells.next_cell().map_err(|_| unreadable())? {
        let (r, c) = cell.get_position();
        rows.cell(r, c, Data::from(cell.get_value().clone()), sink)?;
    }
    rows.finish(sink)
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

/// Refuses a workbook whose parts decompress to more than [`MAX_WORKBOOK_BYTES`] — counted
/// while decompressing, since a zip's declared sizes can lie — or that holds too many parts.
fn check_container(path: &Path, file: &str) -> Result<(), SourceError> {
    let bad = |detail: String| SourceError::NotFormat {
        file: file.into(),
        format: "xlsx workbook",
        detail,
    };
    let f = std::fs::File::open(path).map_err(|e| SourceError::Read {
        file: file.into(),
        detail: e.kind().to_string(),
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|_| bad("not a zip container".into()))?;
    if zip.len() > 10_000 {
        return Err(bad(format!("{} parts: too many for a workbook", zip.len())));
    }
    let too_big = || {
        bad(format!(
            "it decompresses to more than {} MiB",
            MAX_WORKBOOK_BYTES / (1024 * 1024)
        ))
    };
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|_| bad("a damaged part".into()))?;
        let budget = MAX_WORKBOOK_BYTES - total;
        if part.size() > budget {
            return Err(too_big());
        }
        let n = std::io::copy(&mut (&mut part).take(budget + 1), &mut std::io::sink())
            .map_err(|_| bad("a damaged part".into()))?;
        total += n;
        if total > MAX_WORKBOOK_BYTES {
            return Err(too_big());
        }
    }
    Ok(())
}

/// Assembles streamed cells into rows: the header row, then the data rows, wanted columns only.
/// A sheet's declared dimension is never used: memory follows the cells actually there.
struct Rows<'a> {
    file: &'a str,
    spec: &'a SourceSpec,
    header_row: u32,
    first: u32,
    headers: std::collections::BTreeMap<u32, String>,
    /// Wanted column → sheet column, once the header is known.
    idx: Option<Vec<Option<u32>>>,
    row: Option<u32>,
    values: Vec<Option<String>>,
    bad: Option<(usize, Reason)>,
    buf: RowBuffer,
    any: bool,
    /// The last row a cell came from.
    last: Option<u32>,
}

impl<'a> Rows<'a> {
    fn new(file: &'a str, spec: &'a SourceSpec) -> Rows<'a> {
        let header_row = spec.header_row.max(1) as u32 - 1;
        Rows {
            file,
            spec,
            header_row,
            first: spec
                .first_data_row
                .map(|r| r.max(1) as u32 - 1)
                .unwrap_or(header_row + 1),
            headers: Default::default(),
            idx: None,
            row: None,
            values: vec![None; spec.wanted.len()],
            bad: None,
            buf: RowBuffer::new(&spec.wanted, spec.batch_rows),
            any: false,
            last: None,
        }
    }

    fn cell(&mut self, r: u32, c: u32, d: Data, sink: &mut Sink<'_>) -> Result<(), SourceError> {
        self.any = true;
        // Rows come in order in every workbook a spreadsheet program writes; a row that comes
        // back would be counted twice.
        if self.last.is_some_and(|last| r < last) {
            return Err(SourceError::Structure {
                file: self.file.into(),
                detail: format!(
                    "row {} comes after a later row: the sheet's rows are out of order",
                    r + 1
                ),
            });
        }
        self.last = Some(r);
        if r == self.header_row {
            if c as usize >= MAX_COLUMNS {
                return Err(SourceError::Structure {
                    file: self.file.into(),
                    detail: format!("the header has columns beyond {MAX_COLUMNS}"),
                });
            }
            if let Some(t) = cell_text(&d) {
                self.headers.insert(c, t);
            }
            return Ok(());
        }
        if r < self.first {
            return Ok(());
        }
        self.header()?;
        if self.row != Some(r) {
            self.flush_row(sink)?;
            self.row = Some(r);
        }
        let idx = self.idx.as_ref().expect("header read");
        for (k, col) in idx.iter().enumerate() {
            if *col == Some(c) {
                match d {
                    Data::Error(_) => {
                        self.bad.get_or_insert((k, Reason::CellError));
                    }
                    ref other => self.values[k] = cell_text(other),
                }
            }
        }
        Ok(())
    }

    /// The wanted columns' positions, from the header row (once).
    fn header(&mut self) -> Result<(), SourceError> {
        if self.idx.is_some() {
            return Ok(());
        }
        let width = self
            .headers
            .keys()
            .next_back()
            .map_or(0, |c| *c as usize + 1);
        let headers: Vec<String> = (0..width as u32)
            .map(|c| self.headers.get(&c).cloned().unwrap_or_default())
            .collect();
        let idx = match_headers(&headers, &self.spec.wanted);
        super::check_required(self.file, self.spec, &idx)?;
        self.idx = Some(idx.into_iter().map(|i| i.map(|i| i as u32)).collect());
        Ok(())
    }

    /// The row assembled so far: taken, set aside (a cell error), or skipped (a blank
    /// template row, nothing in any mapped column).
    fn flush_row(&mut self, sink: &mut Sink<'_>) -> Result<(), SourceError> {
        let Some(r) = self.row.take() else {
            return Ok(());
        };
        let bad = self.bad.take();
        let blank = self
            .values
            .iter()
            .all(|v| v.as_deref().is_none_or(|s| s.trim().is_empty()));
        let row = r as u64 + 1;
        match bad {
            Some((k, reason)) => self.buf.issue(row, &self.spec.wanted[k], reason),
            None if blank => {}
            None => self.buf.push(row, &self.values, sink)?,
        }
        self.values.iter_mut().for_each(|v| *v = None);
        Ok(())
    }

    fn finish(mut self, sink: &mut Sink<'_>) -> Result<u64, SourceError> {
        if !self.any {
            return Err(SourceError::Empty {
                file: self.file.into(),
            });
        }
        self.header()?;
        self.flush_row(sink)?;
        self.buf.flush(sink)?;
        Ok(self.buf.total)
    }
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
