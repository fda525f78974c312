//! Source readers: a partner file in, Arrow batches of text out. One reader per format. A reader
//! materialises only the columns the mapping asks for (unmapped columns, such as free-text notes,
//! are never read into memory as data) and pushes batches of `batch_rows` rows to a sink, so a
//! file is never collected whole (spreadsheets excepted: calamine reads one sheet at a time).
//!
//! Every batch has the column `source_row` (the row number as the partner sees it: the line of a
//! CSV record, the spreadsheet row, the NDJSON line, the index of the JSON array element) and one
//! `Utf8` column per wanted source column, named as in the mapping. Values of JSON arrays are
//! joined with [`LIST_JOIN`].

mod csv;
mod json;
mod xlsx;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::config::FormatOptions;
use crate::normalise;

/// Joins the items of a list that arrived as a JSON array.
pub const LIST_JOIN: char = '\u{1F}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
    Ndjson,
    Xlsx,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "xlsx" | "xlsm" => Some(Format::Xlsx),
            _ => None,
        }
    }

    /// The name used on the command line and in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn is_spreadsheet(self) -> bool {
        self == Format::Xlsx
    }
}

/// A file-level problem: the file is rejected as a whole and nothing of it is committed.
/// Messages name the file and where, never a cell's content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("{file}: cannot read: {detail}")]
    Read { file: String, detail: String },
    #[error("{file}: is empty (no data rows)")]
    Empty { file: String },
    #[error("{file}: not a valid {format} file: {detail}")]
    NotFormat {
        file: String,
        format: &'static str,
        detail: String,
    },
    #[error(
        "{file}: row {row}: bytes that are not valid {encoding}; check the encoding declared for this partner"
    )]
    Encoding {
        file: String,
        row: u64,
        encoding: String,
    },
    #[error("{file}: {detail}")]
    Structure { file: String, detail: String },
    #[error("{file}: unknown encoding {encoding:?}")]
    UnknownEncoding { file: String, encoding: String },
    #[error("{0}")]
    Sink(String),
}

/// Why a row was set aside. Shown to partners and stored in the quarantine table as its code
/// (`unknown_code`, ...), never with the value that caused it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A required field is empty.
    MissingRequired,
    /// A label that no code list or partner value map knows.
    UnknownCode,
    /// Not a date in any of the partner's declared formats.
    InvalidDate,
    /// Has the shape of a date but does not exist (31.02.2025).
    ImpossibleDate,
    /// Two declared formats read it as two different dates.
    AmbiguousDate,
    /// A date after today.
    FutureDate,
    /// Not a number.
    InvalidNumber,
    /// A number outside the field's range.
    OutOfRange,
    /// Not a yes/no value.
    InvalidBoolean,
    /// Not a country code or name tip knows.
    UnknownCountry,
    /// Not a region code of the registry.
    UnknownRegion,
    /// Not an organisation of the registry.
    UnknownOrg,
    /// Dates that contradict each other (a reply before the referral).
    InconsistentDates,
    /// A CSV line with more or fewer fields than its header.
    WrongFieldCount,
    /// A JSON value that is an object or an array of objects.
    NestedValue,
    /// A JSON row that is not an object.
    NotAnObject,
    /// A line that is not valid JSON.
    MalformedRow,
    /// A spreadsheet cell holding an error (#DIV/0!, #REF!).
    CellError,
    /// A pseudonym made with another key than the lake's.
    WrongKeyVersion,
    /// A value in a pseudonym column that is not a pseudonym.
    InvalidPseudonym,
    /// None of the record type's keys is complete: the record cannot be identified.
    MissingKey,
    /// Another row of the same file has the same key: neither is taken.
    DuplicateKey,
    /// A value longer than any field can hold (more than 64 KiB).
    ValueTooLong,
    /// Two keys of one JSON object name the same field: which value counts is ambiguous.
    DuplicateField,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingRequired => "missing_required",
            Reason::UnknownCode => "unknown_code",
            Reason::InvalidDate => "invalid_date",
            Reason::ImpossibleDate => "impossible_date",
            Reason::AmbiguousDate => "ambiguous_date",
            Reason::FutureDate => "future_date",
            Reason::InvalidNumber => "invalid_number",
            Reason::OutOfRange => "out_of_range",
            Reason::InvalidBoolean => "invalid_boolean",
            Reason::UnknownCountry => "unknown_country",
            Reason::UnknownRegion => "unknown_region",
            Reason::UnknownOrg => "unknown_org",
            Reason::InconsistentDates => "inconsistent_dates",
            Reason::WrongFieldCount => "wrong_field_count",
            Reason::NestedValue => "nested_value",
            Reason::NotAnObject => "not_an_object",
            Reason::MalformedRow => "malformed_row",
            Reason::CellError => "cell_error",
            Reason::WrongKeyVersion => "wrong_key_version",
            Reason::InvalidPseudonym => "invalid_pseudonym",
            Reason::MissingKey => "missing_key",
            Reason::DuplicateKey => "duplicate_key",
            Reason::ValueTooLong => "value_too_long",
            Reason::DuplicateField => "duplicate_field",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row-level problem found while reading: the row is quarantined, the file goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    pub row: u64,
    pub field: String,
    pub reason: Reason,
}

/// What a reader needs to know.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub format: Format,
    pub delimiter: u8,
    pub encoding: &'static encoding_rs::Encoding,
    pub sheet: Option<String>,
    pub sheet_index: usize,
    pub header_row: usize,
    pub first_data_row: Option<usize>,
    /// Source column names to read (as written in the mapping).
    pub wanted: Vec<String>,
    /// For each required field, the source columns of which at least one must be present in a
    /// header (CSV, spreadsheets). A file without them is rejected as a whole.
    pub required: Vec<(String, Vec<String>)>,
    pub batch_rows: usize,
    /// Quoted CSV values may hold line breaks (the partner's export really has them). Off by
    /// default: a line break inside a value then means an unclosed quote.
    pub multiline: bool,
}

/// The longest value a field may hold; a longer one sets its row aside.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The longest line a text file may have; a longer one rejects the file.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// The most columns a file may have.
pub const MAX_COLUMNS: usize = 4096;

impl SourceSpec {
    pub fn from_options(
        file: &str,
        format: Format,
        o: &FormatOptions,
        wanted: Vec<String>,
        batch_rows: usize,
    ) -> Result<SourceSpec, SourceError> {
        let enc_label = o.encoding.clone().unwrap_or_else(|| "utf-8".into());
        let encoding = encoding_rs::Encoding::for_label(enc_label.as_bytes()).ok_or_else(|| {
            SourceError::UnknownEncoding {
                file: file.into(),
                encoding: enc_label.clone(),
            }
        })?;
        let delimiter = match o.delimiter.as_deref() {
            None => b',',
            Some("\\t") | Some("\t") => b'\t',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(_) => {
                return Err(SourceError::Structure {
                    file: file.into(),
                    detail: "the delimiter must be one ASCII character".into(),
                });
            }
        };
        Ok(SourceSpec {
            format,
            delimiter,
            encoding,
            sheet: o.sheet.clone(),
            sheet_index: o.sheet_index.unwrap_or(0),
            header_row: o.header_row.unwrap_or(1),
            first_data_row: o.first_data_row,
            wanted,
            required: Vec::new(),
            batch_rows,
            multiline: o.multiline.unwrap_or(false),
        })
    }
}

/// A batch of raw rows and the row-level problems met while reading them.
pub struct RawBatch {
    pub batch: RecordBatch,
    pub issues: Vec<RowIssue>,
}

pub type Sink<'a> = dyn FnMut(RawBatch) -> Result<(), SourceError> + 'a;

/// Reads `path` and pushes its rows to `sink` in batches.
pub fn read(path: &Path, spec: &SourceSpec, sink: &mut Sink<'_>) -> Result<u64, SourceError> {
    let file = display_name(path);
    let rows = match spec.format {
        Format::Csv => csv::read(path, &file, spec, sink)?,
        Format::Json => json::read_array(path, &file, spec, sink)?,
        Format::Ndjson => json::read_lines(path, &file, spec, sink)?,
        Format::Xlsx => xlsx::read(path, &file, spec, sink)?,
    };
    if rows == 0 {
        return Err(SourceError::Empty { file });
    }
    Ok(rows)
}

/// The file's name as shown in messages (no directories, which may hold partner details).
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// Matches source headers to wanted columns: case-, accent- and space-insensitive.
pub(crate) fn match_headers(headers: &[String], wanted: &[String]) -> Vec<Option<usize>> {
    let folded: Vec<String> = headers.iter().map(|h| normalise::label(h)).collect();
    wanted
        .iter()
        .map(|w| {
            let fw = normalise::label(w);
            folded.iter().position(|h| *h == fw)
        })
        .collect()
}

/// Rejects a file whose header lacks every source column of a required field.
pub(crate) fn check_required(
    file: &str,
    spec: &SourceSpec,
    idx: &[Option<usize>],
) -> Result<(), SourceError> {
    for (field, sources) in &spec.required {
        let present = sources.iter().any(|s| {
            spec.wanted
                .iter()
                .position(|w| w == s)
                .and_then(|i| idx[i])
                .is_some()
        });
        if !present {
            return Err(SourceError::Structure {
                file: file.into(),
                detail: format!(
                    "missing required column for field {field} (expected {})",
                    if sources.is_empty() {
                        field.clone()
                    } else {
                        sources.join(" or ")
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Accumulates rows and emits Arrow batches.
pub(crate) struct RowBuffer {
    schema: SchemaRef,
    rows: Int64Builder,
    cols: Vec<StringBuilder>,
    issues: Vec<RowIssue>,
    len: usize,
    batch_rows: usize,
    pub total: u64,
}

impl RowBuffer {
    pub fn new(wanted: &[String], batch_rows: usize) -> RowBuffer {
        let mut fields = vec![Field::new("source_row", DataType::Int64, false)];
        fields.extend(wanted.iter().map(|w| Field::new(w, DataType::Utf8, true)));
        RowBuffer {
            schema: Arc::new(Schema::new(fields)),
            rows: Int64Builder::new(),
            cols: wanted.iter().map(|_| StringBuilder::new()).collect(),
            issues: Vec::new(),
            len: 0,
            batch_rows,
            total: 0,
        }
    }

    /// Adds a row; `values[i]` is the value of wanted column `i`.
    pub fn push<S: AsRef<str>>(
        &mut self,
        row: u64,
        values: &[Option<S>],
        sink: &mut Sink<'_>,
    ) -> Result<(), SourceError> {
        if let Some(i) = values.iter().position(|v| {
            v.as_ref()
                .is_some_and(|s| s.as_ref().len() > MAX_VALUE_BYTES)
        }) {
            let field = self.schema.field(i + 1).name().clone();
            self.issue(row, &field, Reason::ValueTooLong);
            return Ok(());
        }
        self.rows.append_value(row as i64);
        for (b, v) in self.cols.iter_mut().zip(values) {
            match v {
                Some(s) if !s.as_ref().trim().is_empty() => b.append_value(s.as_ref().trim()),
                _ => b.append_null(),
            }
        }
        self.len += 1;
        self.total += 1;
        if self.len >= self.batch_rows {
            self.flush(sink)?;
        }
        Ok(())
    }

    /// Records a row that could not be read; it counts as a row of the file.
    pub fn issue(&mut self, row: u64, field: &str, reason: Reason) {
        self.issues.push(RowIssue {
            row,
            field: field.to_string(),
            reason,
        });
        self.total += 1;
    }

    pub fn flush(&mut self, sink: &mut Sink<'_>) -> Result<(), SourceError> {
        if self.len == 0 && self.issues.is_empty() {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.rows.finish())];
        arrays.extend(
            self.cols
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| SourceError::Sink(e.to_string()))?;
        self.len = 0;
        sink(RawBatch {
            batch,
            issues: std::mem::take(&mut self.issues),
        })
    }
}

#[cfg(test)]
mod tests {
    //! One numbering rule for every reader: a row is numbered as the partner's own program
    //! shows it — the line a CSV record or NDJSON object starts on, the spreadsheet row, the
    //! position (from 1) of a JSON array's element — and so are the rows set aside.
    use super::*;
    use arrow::array::AsArray;

    fn spec(format: Format) -> SourceSpec {
        let o = FormatOptions::default();
        let wanted = vec!["id".to_string(), "name".to_string()];
        SourceSpec::from_options("f", format, &o, wanted, 2).unwrap()
    }

    /// The rows read (number, id) and the rows set aside (number, reason), in file order.
    fn read_bytes(
        format: Format,
        spec: &SourceSpec,
        bytes: &[u8],
    ) -> Result<(Vec<(u64, String)>, Vec<(u64, Reason)>), SourceError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let (mut rows, mut issues) = (Vec::new(), Vec::new());
        let mut sink = |b: RawBatch| {
            let n = b
                .batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>();
            let id = b.batch.column(1).as_string::<i32>();
            for r in 0..b.batch.num_rows() {
                rows.push((n.value(r) as u64, id.value(r).to_string()));
            }
            issues.extend(b.issues.into_iter().map(|i| (i.row, i.reason)));
            Ok(())
        };
        assert_eq!(spec.format, format);
        read(&path, spec, &mut sink)?;
        Ok((rows, issues))
    }

    fn csv_rows(text: &str) -> Result<(Vec<(u64, String)>, Vec<(u64, Reason)>), SourceError> {
        read_bytes(Format::Csv, &spec(Format::Csv), text.as_bytes())
    }

    fn numbered(rows: &[(u64, String)]) -> Vec<u64> {
        rows.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn csv_rows_are_numbered_by_line_whatever_the_line_ends() {
        for end in ["\n", "\r\n"] {
            let text = ["id,name", "a,x", "b,y", "c,z", ""].join(end);
            let (rows, _) = csv_rows(&text).unwrap();
            assert_eq!(numbered(&rows), [2, 3, 4], "line end {end:?}");
        }
        // A file edited on two systems: CRLF and LF alternate, no bare CR anywhere.
        let (rows, _) = csv_rows("id,name\r\na,x\nb,y\r\nc,z\nd,w\r\n").unwrap();
        assert_eq!(numbered(&rows), [2, 3, 4, 5]);
        let (rows, _) = csv_rows("id,name\na,x\r\nb,y\nc,z\r\n").unwrap();
        assert_eq!(numbered(&rows), [2, 3, 4]);
        // Blank lines count as lines; the last row may lack a line end.
        let (rows, _) = csv_rows("\r\nid,name\r\n\r\na,x\n\nb,y").unwrap();
        assert_eq!(numbered(&rows), [4, 6]);
    }

    #[test]
    fn csv_rows_set_aside_carry_their_line() {
        let (rows, issues) = csv_rows("id,name\r\na,x\r\nb\r\nc,z\r\n").unwrap();
        assert_eq!(numbered(&rows), [2, 4]);
        assert_eq!(issues, [(3, Reason::WrongFieldCount)]);
    }

    #[test]
    fn a_bare_carriage_return_is_refused_but_crlf_is_not() {
        let err = csv_rows("id,name\r\na,x\rb,y\r\n").unwrap_err().to_string();
        assert!(err.contains("line 2: a carriage return"), "{err}");
        assert!(csv_rows("id,name\r\na,x\r\n").is_ok());
    }

    #[test]
    fn a_multiline_value_numbers_its_row_by_its_first_line() {
        let mut s = spec(Format::Csv);
        s.multiline = true;
        let text = "id,name\r\na,\"two\r\nlines\"\r\nb,y\nc,\"x\ny\nz\"\nd,w\n";
        let (rows, _) = read_bytes(Format::Csv, &s, text.as_bytes()).unwrap();
        assert_eq!(numbered(&rows), [2, 4, 5, 8]);
    }

    #[test]
    fn ndjson_rows_are_numbered_by_line() {
        let text = "{\"id\":\"a\"}\r\n\n{\"id\":\"b\"}\n[1]\n{\"id\":\"c\"}";
        let (rows, issues) =
            read_bytes(Format::Ndjson, &spec(Format::Ndjson), text.as_bytes()).unwrap();
        assert_eq!(numbered(&rows), [1, 3, 5]);
        assert_eq!(issues, [(4, Reason::NotAnObject)]);
    }

    #[test]
    fn json_array_elements_are_numbered_from_one() {
        let text = "[\n{\"id\":\"a\"},\n 7,\n{\"id\":\"b\"}]";
        let (rows, issues) =
            read_bytes(Format::Json, &spec(Format::Json), text.as_bytes()).unwrap();
        assert_eq!(numbered(&rows), [1, 3]);
        assert_eq!(issues, [(2, Reason::NotAnObject)]);
    }

    #[test]
    fn spreadsheet_rows_are_the_sheet_rows() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        // A title row and a blank row above the header, as partner templates have.
        sheet.write_string(0, 0, "Register export").unwrap();
        sheet.write_string(2, 0, "id").unwrap();
        sheet.write_string(2, 1, "name").unwrap();
        sheet.write_string(3, 0, "a").unwrap();
        sheet.write_string(5, 0, "b").unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let mut s = spec(Format::Xlsx);
        s.header_row = 3;
        let (rows, _) = read_bytes(Format::Xlsx, &s, &bytes).unwrap();
        assert_eq!(numbered(&rows), [4, 6]);
    }
}
