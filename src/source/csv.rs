//! CSV in any encoding encoding_rs knows (Windows-1257/1250 for Baltic and Polish exports),
//! decoded strictly: a byte that is not valid in the declared encoding rejects the file rather
//! than turning a child's name into mojibake that would never link.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult, Encoding};

use super::{Reason, RowBuffer, Sink, SourceError, SourceSpec, match_headers};

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

pub(super) fn read(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let raw = open(path, file, spec)?;
    let decoded = StrictDecoder::new(raw, spec.encoding);
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
    let headers = header(&mut rdr, file, spec, &enc_err)?;
    let idx = match_headers(&headers, &spec.wanted);
    super::check_required(file, spec, &idx)?;
    let mut buf = RowBuffer::new(&spec.wanted, spec.batch_rows);
    let mut values: Vec<Option<String>> = vec![None; spec.wanted.len()];
    let mut record = ::csv::StringRecord::new();
    let mut last_row = 1u64;
    loop {
        match rdr.read_record(&mut record) {
            Ok(true) => {
                let row = record.position().map(|p| p.line()).unwrap_or(last_row + 1);
                last_row = row;
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
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

/// Opens the file. A UTF-8 byte-order mark in a file declared as a legacy encoding means the
/// pipeline's declaration is wrong: decoding it would silently garble every name.
fn open(path: &Path, file: &str, spec: &SourceSpec) -> Result<BufReader<File>, SourceError> {
    let read_err = |e: std::io::Error| SourceError::Read {
        file: file.into(),
        detail: e.kind().to_string(),
    };
    let mut raw = BufReader::new(File::open(path).map_err(read_err)?);
    if spec.encoding != encoding_rs::UTF_8 {
        use std::io::BufRead;
        let head = raw.fill_buf().map_err(read_err)?;
        if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
            return Err(SourceError::Structure {
                file: file.into(),
                detail: format!(
                    "the file is UTF-8 (it starts with a UTF-8 byte-order mark) but the pipeline declares {}",
                    spec.encoding.name()
                ),
            });
        }
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

fn csv_error(
    file: &str,
    e: ::csv::Error,
    fallback_row: u64,
    enc_err: &dyn Fn(u64) -> SourceError,
) -> SourceError {
    let row = e.position().map(|p| p.line()).unwrap_or(fallback_row);
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
