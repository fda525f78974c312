//! The canonical layout that `tip load` and the upload API accept: field names as in
//! `schemas/`, ISO dates, `;` between list values — or an HTCDS template, or a CSV made by
//! `tip pseudonymise`.

use std::path::Path;

use super::IngestError;
use crate::config::{self, FormatOptions, TipConfig};
use crate::mapping::Mapping;
use crate::schema::{FieldClass, RecordSchema};
use crate::source::Format;

/// A format a submission may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFormat {
    /// A plain file format in the canonical layout.
    Plain(Format),
    /// The IOM HTCDS v2.0 Excel template, read by its preset.
    HtcdsV2,
}

impl LoadFormat {
    pub const NAMES: &'static [&'static str] = &["csv", "json", "ndjson", "xlsx", "htcds-v2"];

    pub fn parse(s: &str) -> Option<LoadFormat> {
        match s {
            "htcds-v2" => Some(LoadFormat::HtcdsV2),
            other => Format::parse(other).map(LoadFormat::Plain),
        }
    }

    /// The format a file's extension suggests.
    pub fn from_extension(path: &Path) -> Option<LoadFormat> {
        let ext = path.extension()?.to_string_lossy().to_lowercase();
        Format::parse(&ext).map(LoadFormat::Plain)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LoadFormat::Plain(f) => f.as_str(),
            LoadFormat::HtcdsV2 => "htcds-v2",
        }
    }

    /// The file extension a stored upload of this format gets.
    pub fn extension(self) -> &'static str {
        match self {
            LoadFormat::Plain(f) => f.as_str(),
            LoadFormat::HtcdsV2 => "xlsx",
        }
    }
}

pub(super) fn mapping_for_load(
    config: &TipConfig,
    record: &RecordSchema,
    format: LoadFormat,
    path: &Path,
) -> Result<Mapping, IngestError> {
    match format {
        LoadFormat::HtcdsV2 => {
            let preset = config::load_preset(&config.resolve(&config.paths.presets), "htcds-v2")?;
            let feed = config::FeedConfig {
                record_type: record.record_type.clone(),
                files: "*".into(),
                preset: Some("htcds-v2".into()),
                sheet: None,
                columns: Default::default(),
                values: Default::default(),
                impute: Default::default(),
                snapshot: None,
            };
            Ok(Mapping::for_feed(
                "htcds-v2 preset",
                record,
                &feed,
                &FormatOptions::default(),
                Some(&preset),
            )?)
        }
        LoadFormat::Plain(f) if f == Format::Csv && is_pseudonymised_csv(path, record) => {
            Ok(Mapping::pseudonymised(record, f, FormatOptions::default()))
        }
        LoadFormat::Plain(f) => Ok(Mapping::canonical(record, f, FormatOptions::default())),
    }
}

/// True when a CSV file's header has this record type's pseudonym columns and none of its
/// identifier fields: a file made by `tip pseudonymise`.
pub fn is_pseudonymised_csv(path: &Path, record: &RecordSchema) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    use std::io::BufRead;
    if std::io::BufReader::new(f).read_line(&mut first).is_err() {
        return false;
    }
    let cols: Vec<String> = first
        .trim_start_matches('\u{FEFF}')
        .trim()
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let has_pseudonym = record.pseudonyms().iter().any(|p| cols.contains(p));
    let has_identifier = record
        .fields
        .iter()
        .any(|f| f.class == FieldClass::Identifier && cols.contains(&f.name));
    has_pseudonym && !has_identifier
}
