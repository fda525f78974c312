//! What every partner file is made of: code labels in the partner's language, the rows of one
//! file with their ground truth, and the CSV and NDJSON writers.

use std::path::Path;

use chrono::NaiveDate;

use super::people::Variant;
use super::{BadRow, GenerateError, TruthFile, io};
use crate::schema::Catalog;

/// Labels of a code in a language, from the code lists (the first label).
#[derive(Clone, Copy)]
pub(super) struct Labels<'a> {
    pub(super) catalog: &'a Catalog,
}

impl Labels<'_> {
    pub(super) fn get(&self, list: &str, lang: &str, code: &str) -> String {
        self.catalog
            .lists
            .get(list)
            .and_then(|l| l.labels.get(lang))
            .and_then(|m| m.get(code))
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| code.to_string())
    }
    pub(super) fn many(&self, list: &str, lang: &str, codes: &[&str], sep: &str) -> String {
        codes
            .iter()
            .map(|c| self.get(list, lang, c))
            .collect::<Vec<_>>()
            .join(sep)
    }
    pub(super) fn country(&self, lang: &str, code: &str) -> String {
        match (lang, code) {
            ("lt", "LT") => "Lietuva".into(),
            ("lt", "LV") => "Latvija".into(),
            ("lt", "PL") => "Lenkija".into(),
            ("lt", "NO") => "Norvegija".into(),
            ("lt", "UA") => "Ukraina".into(),
            ("pl", "PL") => "Polska".into(),
            ("pl", "UA") => "Ukraina".into(),
            ("pl", "DE") => "Niemcy".into(),
            _ => code.to_string(),
        }
    }
}

/// The rows of one partner file, and its ground truth: which person each row names and how the
/// name was written, and which rows are planted bad ones.
pub(super) struct Writer {
    pub(super) rows: Vec<Vec<String>>,
    pub(super) truth: TruthFile,
    next_row: u64,
}

impl Writer {
    pub(super) fn new(path: &str, partner: &str, record_type: &str, first_row: u64) -> Writer {
        Writer {
            rows: Vec::new(),
            truth: TruthFile {
                path: path.into(),
                partner: partner.into(),
                record_type: record_type.into(),
                rows: 0,
                bad_rows: vec![],
                row_persons: vec![],
            },
            next_row: first_row,
        }
    }
    pub(super) fn push(&mut self, row: Vec<String>, person: Option<(usize, Variant)>) {
        if let Some((p, v)) = person {
            self.truth
                .row_persons
                .push((self.next_row, p, v.name().into()));
        }
        self.rows.push(row);
        self.truth.rows += 1;
        self.next_row += 1;
    }
    pub(super) fn push_bad(&mut self, row: Vec<String>, field: &str, reason: &str) {
        self.truth.bad_rows.push(BadRow {
            row: self.next_row,
            field: field.into(),
            reason: reason.into(),
        });
        self.rows.push(row);
        self.truth.rows += 1;
        self.next_row += 1;
    }
}

/// A date as `31.12.2025`.
pub(super) fn dmy(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}
/// A date as `2025-12-31`.
pub(super) fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Writes a CSV file with `delim` between fields, in Windows-1257 if `cp1257`, else UTF-8.
pub(super) fn write_csv(
    path: &Path,
    header: &[&str],
    rows: &[Vec<String>],
    delim: u8,
    cp1257: bool,
) -> Result<(), GenerateError> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .from_writer(Vec::new());
    w.write_record(header).map_err(io("csv"))?;
    for r in rows {
        w.write_record(r).map_err(io("csv"))?;
    }
    let text = String::from_utf8(w.into_inner().map_err(io("csv"))?).map_err(io("csv"))?;
    let bytes = if cp1257 {
        let (b, _, bad) = encoding_rs::WINDOWS_1257.encode(&text);
        if bad {
            return Err(GenerateError::Io(format!(
                "{}: text not representable in Windows-1257",
                path.display()
            )));
        }
        b.into_owned()
    } else {
        text.into_bytes()
    };
    std::fs::write(path, bytes).map_err(io("write"))
}

/// Writes one JSON object per row, under `keys`; empty values are left out, values of the keys
/// in `lists` are split on `|` into arrays, and a few known keys are booleans or numbers.
pub(super) fn write_ndjson(
    path: &Path,
    keys: &[&str],
    rows: &[Vec<String>],
    lists: &[&str],
) -> Result<(), GenerateError> {
    let mut out = Vec::new();
    for r in rows {
        let mut m = serde_json::Map::new();
        for (k, v) in keys.iter().zip(r) {
            if v.is_empty() {
                continue;
            }
            let val = if lists.contains(k) {
                serde_json::Value::Array(
                    v.split('|')
                        .map(|s| serde_json::Value::String(s.into()))
                        .collect(),
                )
            } else if *k == "bez_pavadibas" || *k == "piekrisana" {
                serde_json::Value::Bool(v == "true")
            } else if *k == "kartas_nr" {
                serde_json::json!(v.parse::<i64>().unwrap_or(0))
            } else {
                serde_json::Value::String(v.clone())
            };
            m.insert(k.to_string(), val);
        }
        serde_json::to_writer(&mut out, &m).map_err(io("json"))?;
        out.push(b'\n');
    }
    std::fs::write(path, out).map_err(io("write"))
}
