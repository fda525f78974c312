//! JSON (one top-level array of objects, streamed element by element) and NDJSON (one object
//! per line). Error messages carry line and column only: serde_json's own messages can quote
//! input values, so they are never passed on.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{LIST_JOIN, MAX_LINE_BYTES, Reason, RowBuffer, Sink, SourceError, SourceSpec};
use crate::normalise;

fn open(path: &Path, file: &str) -> Result<BufReader<File>, SourceError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(256 * 1024, f))
        .map_err(|e| SourceError::Read {
            file: file.into(),
            detail: e.kind().to_string(),
        })
}

/// Index from folded key to wanted column.
struct Keys {
    folded: Vec<String>,
}

impl Keys {
    fn new(wanted: &[String]) -> Keys {
        Keys {
            folded: wanted.iter().map(|w| normalise::label(w)).collect(),
        }
    }

    /// Values of the wanted columns in `obj`, or the reason the object cannot be read.
    fn extract(&self, obj: &Map<String, Value>) -> Result<Vec<Option<String>>, Reason> {
        let mut out = vec![None; self.folded.len()];
        let mut seen = vec![false; self.folded.len()];
        for (k, v) in obj {
            let fk = normalise::label(k);
            if let Some(i) = self.folded.iter().position(|w| *w == fk) {
                if std::mem::replace(&mut seen[i], true) {
                    return Err(Reason::DuplicateField);
                }
                out[i] = scalar(v)?;
            }
        }
        Ok(out)
    }
}

fn scalar(v: &Value) -> Result<Option<String>, Reason> {
    Ok(match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Value::Array(_) | Value::Object(_) => return Err(Reason::NestedValue),
                    other => {
                        if let Some(s) = scalar(other)? {
                            parts.push(s);
                        }
                    }
                }
            }
            Some(parts.join(&LIST_JOIN.to_string()))
        }
        Value::Object(_) => return Err(Reason::NestedValue),
    })
}

fn syntax_error(file: &str, format: &'static str, e: &serde_json::Error) -> SourceError {
    if e.is_io() {
        // Invalid UTF-8 surfaces as an I/O error.
        return SourceError::Encoding {
            file: file.into(),
            row: e.line() as u64,
            encoding: "UTF-8".into(),
        };
    }
    SourceError::NotFormat {
        file: file.into(),
        format,
        detail: format!("syntax error at line {}, column {}", e.line(), e.column()),
    }
}

pub(super) fn read_lines(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let mut rdr = open(path, file)?;
    let keys = Keys::new(&spec.wanted);
    let mut buf = RowBuffer::new(&spec.wanted, spec.batch_rows);
    let mut line = Vec::new();
    let mut n: u64 = 0;
    let mut parsed_any = false;
    loop {
        line.clear();
        let read = std::io::Read::take(std::io::Read::by_ref(&mut rdr), MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| SourceError::Read {
                file: file.into(),
                detail: e.kind().to_string(),
            })?;
        if read == 0 {
            break;
        }
        n += 1;
        if line.len() > MAX_LINE_BYTES {
            return Err(SourceError::Structure {
                file: file.into(),
                detail: format!(
                    "line {n} is longer than {} MiB: not an NDJSON file tip can read",
                    MAX_LINE_BYTES / (1024 * 1024)
                ),
            });
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim_start_matches('\u{FEFF}').trim(),
            Err(_) => {
                return Err(SourceError::Encoding {
                    file: file.into(),
                    row: n,
                    encoding: "UTF-8".into(),
                });
            }
        };
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => {
                parsed_any = true;
                match keys.extract(&obj) {
                    Ok(vals) => buf.push(n, &vals, sink)?,
                    Err(reason) => buf.issue(n, "*", reason),
                }
            }
            Ok(_) if parsed_any => buf.issue(n, "*", Reason::NotAnObject),
            Err(_) if parsed_any => buf.issue(n, "*", Reason::MalformedRow),
            // The first line decides whether this is NDJSON at all.
            Ok(_) => {
                return Err(SourceError::NotFormat {
                    file: file.into(),
                    format: "NDJSON",
                    detail: format!("line {n} is not a JSON object"),
                });
            }
            Err(e) => {
                return Err(SourceError::NotFormat {
                    file: file.into(),
                    format: "NDJSON",
                    detail: format!("line {n}: syntax error at column {}", e.column()),
                });
            }
        }
    }
    buf.flush(sink)?;
    Ok(buf.total)
}

pub(super) fn read_array(
    path: &Path,
    file: &str,
    spec: &SourceSpec,
    sink: &mut Sink<'_>,
) -> Result<u64, SourceError> {
    let mut rdr = open(path, file)?;
    // Skip a UTF-8 byte-order mark.
    if rdr
        .fill_buf()
        .map(|b| b.starts_with(&[0xEF, 0xBB, 0xBF]))
        .unwrap_or(false)
    {
        rdr.consume(3);
    }
    let keys = Keys::new(&spec.wanted);
    let mut buf = RowBuffer::new(&spec.wanted, spec.batch_rows);
    let mut sink_error: Option<SourceError> = None;
    let mut de = serde_json::Deserializer::from_reader(rdr);
    let seed = Elements {
        keys: &keys,
        buf: &mut buf,
        sink,
        sink_error: &mut sink_error,
    };
    let res = seed.deserialize(&mut de).and_then(|_| de.end());
    if let Some(e) = sink_error {
        return Err(e);
    }
    if let Err(e) = res {
        if e.is_data() {
            return Err(SourceError::NotFormat {
                file: file.into(),
                format: "JSON",
                detail: "the top level must be an array of objects".into(),
            });
        }
        return Err(syntax_error(file, "JSON", &e));
    }
    Ok(buf.total)
}

struct Elements<'a, 'b, 'c> {
    keys: &'a Keys,
    buf: &'a mut RowBuffer,
    sink: &'a mut Sink<'b>,
    sink_error: &'c mut Option<SourceError>,
}

impl<'de> DeserializeSeed<'de> for Elements<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n: u64 = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            n += 1;
            let res = match v {
                Value::Object(obj) => match self.keys.extract(&obj) {
                    Ok(vals) => self.buf.push(n, &vals, self.sink),
                    Err(reason) => {
                        self.buf.issue(n, "*", reason);
                        Ok(())
                    }
                },
                _ => {
                    self.buf.issue(n, "*", Reason::NotAnObject);
                    Ok(())
                }
            };
            if let Err(e) = res {
                *self.sink_error = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
        if let Err(e) = self.buf.flush(self.sink) {
            *self.sink_error = Some(e);
            return Err(serde::de::Error::custom("stopped"));
        }
        Ok(())
    }
}
