//! CSV in any encoding encoding_rs knows (Windows-1257/1250 for Baltic and Polish exports),
//! decoded strictly: a byte that is not valid in the declared encoding rejects the file rather
//! than turning a child's name into mojibake that would never link.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult, Encoding};

use super::{
    MAX_COLUMNS, MAX_LINE_BYTES, Reason, RowBuffer, Sink, SourceError, SourceSpec, match_headers,
};
use crate::normalise;

/// A `Read` that decodes `inner` from a legacy encoding to UTF-8 and fails on malformed input.
struct StrictDecoder<R> {
    inner: R,
    decoder: Decoder,
    inbuf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    finished: bool,
}

impl<R: Read> StrictDecoder<R> {
    fn new(inner: R, encoding: &'static Encoding) -> Self {
        StrictDecoder {
            inner,
            decoder: encoding.new_decoder_with_bom_removal(),
            inbuf: vec![0; 64 * 1024],
            start: 0,
            end: 0,
            eof: false,
            out: vec![0; 3 * 64 * 1024 + 16],
            out_start: 0,
            out_end: 0,
            finished: false,
        }
    }
}

impl<R: Read> Read for StrictDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.out[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            if self.start == self.end && !self.eof {
                let n = self.inner.read(&mut self.inbuf)?;
                self.start = 0;
                self.end = n;
                if n == 0 {
                    self.eof = true;
                }
            }
            let (res, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.inbuf[self.start..self.end],
                &mut self.out,
                self.eof,
            );
            self.start += read;
            self.out_start = 0;
            self.out_end = written;
            match res {
                DecoderResult::Malformed(_, _) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "malformed input for the declared encoding",
                    ));
                }
                DecoderResult::InputEmpty => {
                    if self.eof {
                        self.finished = true;
                    }
                }
                DecoderResult::OutputFull => {}
            }
        }
    }
}

/// What makes a text file unreadable as rows, found while it is decoded.
#[derive(Debug)]
enum TextProblem {
    Nul { line: u64 },
    LongLine { line: u64 },
}

impl std::fmt::Display for TextProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextProblem::Nul { line } => {
                write!(
                    f,
                    "line {line} holds NUL bytes: not a text file in the declared encoding"
                )
            }
            TextProblem::LongLine { line } => write!(
                f,
                "line {line} is longer than {} MiB: not a CSV file tip can read",
                MAX_LINE_BYTES / (1024 * 1024)
            ),
        }
    }
}

impl std::error::Error for TextProblem {}

/// The line feeds of the decoded text that the row loop has not yet passed, by byte offset:
/// rows are numbered by counting them, since the CSV reader's own line count lags behind a
/// CRLF line end (it counts the line feed only when it reads the next row), so it numbered
/// rows after CRLF one line low and took mixed CRLF and LF line ends for a bare CR.
#[derive(Debug, Default)]
struct LineFeeds {
    /// Offsets of line feeds (`true`) and carriage returns (`false`) not yet passed.
    pending: std::collections::VecDeque<(u64, bool)>,
    passed: u64,
}

type Feeds = std::rc::Rc<std::cell::RefCell<LineFeeds>>;

impl LineFeeds {
    /// The line (1-based) a record starts on, given the byte `start` where the reader began
    /// reading it: line ends before it are passed, then the line ends the reader skipped
    /// before the record's first character (a CRLF's line feed, blank lines).
    fn line_of_record(&mut self, start: u64) -> u64 {
        while let Some(&(at, feed)) = self.pending.front() {
            if at >= start {
                break;
            }
            self.pending.pop_front();
            self.passed += feed as u64;
        }
        let mut at_pos = start;
        while let Some(&(at, feed)) = self.pending.front() {
            if at != at_pos {
                break;
            }
            self.pending.pop_front();
            self.passed += feed as u64;
            at_pos += 1;
        }
        self.passed + 1
    }
}

/// Counts lines of decoded text, notes where each line ends (for [`LineFeeds`]) and refuses
/// NUL bytes and lines too long to be a row.
struct TextGuard<R> {
    inner: R,
    line: u64,
    line_len: usize,
    offset: u64,
    feeds: Feeds,
}

impl<R: Read> Read for TextGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut feeds = self.feeds.borrow_mut();
        for &b in &buf[..n] {
            self.offset += 1;
            match b {
                b'\n' => {
                    feeds.pending.push_back((self.offset - 1, true));
                    self.line += 1;
                    self.line_len = 0;
                }
                b'\r' => {
                    feeds.pending.push_back((self.offset - 1, false));
                    self.line_len += 1;
                }
                0 => return Err(std::io::Error::other(TextProblem::Nul { line: self.line })),
                _ => self.line_len += 1,
            }
            if self.line_len > MAX_LINE_BYTES {
                return Err(std::io::Error::other(TextProblem::LongLine {
                    line: self.line,
                }));
            }
        }
        Ok(n)
    }
}

pub(super) fn read(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let raw = open(path, file, spec)?;
    let feeds = Feeds::default();
    let decoded = TextGuard {
        inner: StrictDecoder::new(raw, spec.encoding),
        line: 1,
        line_len: 0,
        offset: 0,
        feeds: feeds.clone(),
    };
    let mut rdr = ::csv::ReaderBuilder::new()
        .delimiter(spec.delimiter)
        .flexible(true)
        .has_headers(false)
        .from_reader(decoded);
    let enc_err = |row: u64| SourceError::Encoding {
        file: file.into(),
        row,
        encoding: spec.encoding.name().to_string(),
    };
    let header_start = rdr.position().byte();
    let headers = header(&mut rdr, file, spec, &enc_err)?;
    let idx = match_headers(&headers, &spec.wanted);
    super::check_required(file, spec, &idx)?;
    let mut buf = RowBuffer::new(&spec.wanted, spec.batch_rows);
    let mut values: Vec<Option<String>> = vec![None; spec.wanted.len()];
    let mut record = ::csv::StringRecord::new();
    // The header's line (a header with line breaks inside its names has no rows after it).
    let mut last_row = feeds.borrow_mut().line_of_record(header_start);
    loop {
        let start = rdr.position().byte();
        match rdr.read_record(&mut record) {
            Ok(true) => {
                // A row is numbered by the line it starts on; it ends that many line breaks
                // inside its (quoted) values later.
                let row = feeds.borrow_mut().line_of_record(start);
                let inside: usize = record.iter().map(|f| f.matches('\n').count()).sum();
                if row <= last_row {
                    return Err(bare_carriage_return(file, row));
                }
                last_row = row + inside as u64;
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                if !spec.multiline && record.iter().any(|f| f.contains(['\n', '\r'])) {
                    return Err(unclosed_quote(file, row));
                }
                if record.len() != headers.len() {
                    buf.issue(row, "*", Reason::WrongFieldCount);
                    continue;
                }
                for (v, i) in values.iter_mut().zip(&idx) {
                    *v = i.and_then(|i| record.get(i)).map(str::to_string);
                }
                buf.push(row, &values, sink)?;
            }
            Ok(false) => break,
            Err(e) => return Err(csv_error(file, e, last_row + 1, &enc_err)),
        }
    }
    buf.flush(sink)?;
    Ok(buf.total)
}

/// A value that runs over several lines where the layout has none: an unclosed quote swallows
/// the rows after it, so the file cannot be split into rows reliably.
fn unclosed_quote(file: &str, row: u64) -> SourceError {
    SourceError::Structure {
        file: file.into(),
        detail: format!(
            "line {row}: a quoted value runs over several lines (an unclosed quote?), so the rows cannot be told apart reliably; nothing was taken. If the export really has line breaks inside values, set format.multiline = true for this partner"
        ),
    }
}

/// Two rows on one line: a carriage return without a line feed ends a row (old Mac line ends,
/// or damage). The rows could not be numbered as the partner sees them.
fn bare_carriage_return(file: &str, row: u64) -> SourceError {
    SourceError::Structure {
        file: file.into(),
        detail: format!(
            "line {row}: a carriage return without a line feed splits the line into rows, so rows cannot be numbered as the partner sees them; nothing was taken. Save the file with ordinary line ends (LF or CRLF)"
        ),
    }
}

/// Opens the file. A UTF-8 byte-order mark in a file declared as a legacy encoding means the
/// pipeline's declaration is wrong: decoding it would silently garble every name.
fn open(path: &Path, file: &str, spec: &SourceSpec) -> Result<BufReader<File>, SourceError> {
    let read_err = |e: std::io::Error| SourceError::Read {
        file: file.into(),
        detail: e.kind().to_string(),
    };
    let mut raw = BufReader::new(File::open(path).map_err(read_err)?);
    use std::io::BufRead;
    let head = raw.fill_buf().map_err(read_err)?;
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(SourceError::Structure {
            file: file.into(),
            detail: "the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as UTF-8 or in the encoding declared for this partner".into(),
        });
    }
    if spec.encoding != encoding_rs::UTF_8 && head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(SourceError::Structure {
            file: file.into(),
            detail: format!(
                "the file is UTF-8 (it starts with a UTF-8 byte-order mark) but the pipeline declares {}",
                spec.encoding.name()
            ),
        });
    }
    Ok(raw)
}

/// The first non-empty record: the header, trimmed.
fn header<R: std::io::Read>(
    rdr: &mut ::csv::Reader<R>,
    file: &str,
    spec: &SourceSpec,
    enc_err: &dyn Fn(u64) -> SourceError,
) -> Result<Vec<String>, SourceError> {
    let mut record = ::csv::StringRecord::new();
    let headers: Vec<String> = loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                break record.iter().map(|h| h.trim().to_string()).collect();
            }
            Ok(false) => return Err(SourceError::Empty { file: file.into() }),
            Err(e) => return Err(csv_error(file, e, 1, enc_err)),
        }
    };
    // One column whose name holds another delimiter: the declared one is probably wrong.
    let other_delimiter = headers.len() == 1 && headers[0].contains([';', ',', '\t', '|']);
    check_header(file, &headers, spec)?;
    if other_delimiter && spec.wanted.len() > 1 {
        return Err(SourceError::NotFormat {
            file: file.into(),
            format: "CSV",
            detail: format!(
                "the header has one column; is the delimiter {:?} right?",
                spec.delimiter as char
            ),
        });
    }
    Ok(headers)
}

/// A header the rows cannot be read against: too many columns, an empty name before named
/// columns, or two columns that match one wanted column (which value would count?). Columns
/// are named by position: a header could hold anything.
fn check_header(file: &str, headers: &[String], spec: &SourceSpec) -> Result<(), SourceError> {
    let bad = |detail: String| SourceError::Structure {
        file: file.into(),
        detail,
    };
    if headers.len() > MAX_COLUMNS {
        return Err(bad(format!(
            "the header has {} columns, more than {MAX_COLUMNS}",
            headers.len()
        )));
    }
    let last_named = headers.iter().rposition(|h| !h.is_empty()).unwrap_or(0);
    if let Some(i) = headers[..last_named].iter().position(String::is_empty) {
        return Err(bad(format!("column {} of the header has no name", i + 1)));
    }
    let folded: Vec<String> = headers.iter().map(|h| normalise::label(h)).collect();
    for w in &spec.wanted {
        let fw = normalise::label(w);
        let at: Vec<usize> = (0..folded.len()).filter(|&i| folded[i] == fw).collect();
        if at.len() > 1 {
            return Err(bad(format!(
                "columns {} and {} of the header have the same name: which one holds the value is ambiguous",
                at[0] + 1,
                at[1] + 1
            )));
        }
    }
    Ok(())
}

fn csv_error(
    file: &str,
    e: ::csv::Error,
    fallback_row: u64,
    enc_err: &dyn Fn(u64) -> SourceError,
) -> SourceError {
    let row = e.position().map(|p| p.line()).unwrap_or(fallback_row);
    if let ::csv::ErrorKind::Io(io) = e.kind()
        && let Some(p) = io.get_ref().and_then(|x| x.downcast_ref::<TextProblem>())
    {
        return SourceError::Structure {
            file: file.into(),
            detail: p.to_string(),
        };
    }
    match e.kind() {
        ::csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => enc_err(row),
        ::csv::ErrorKind::Utf8 { .. } => enc_err(row),
        ::csv::ErrorKind::Io(io) => SourceError::Read {
            file: file.into(),
            detail: io.kind().to_string(),
        },
        _ => SourceError::NotFormat {
            file: file.into(),
            format: "CSV",
            detail: format!("unreadable record near line {row}"),
        },
    }
}
