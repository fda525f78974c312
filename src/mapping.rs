//! Mapping: a partner's columns and labels → the canonical layout of a record type. Per-partner
//! value maps translate the partner's own labels where the multilingual code lists do not
//! already know them; imputations fill fields a layout does not have (the HTCDS template has no
//! registration date) and record that they did.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::config::{FeedConfig, FormatOptions, Impute, PresetConfig};
use crate::normalise;
use crate::schema::{FieldClass, FieldType, RecordSchema};
use crate::source::{Format, LIST_JOIN};

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{0}")]
    Arrow(String),
}

/// Everything needed to read one partner feed into the canonical layout.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub record_type: String,
    pub format: Format,
    pub options: FormatOptions,
    /// Source column → canonical field.
    pub columns: Vec<(String, String)>,
    /// Canonical field → (folded partner label → canonical code).
    values: HashMap<String, HashMap<String, String>>,
    /// Canonical field → what fills it when empty (`submission_date`).
    pub impute: BTreeMap<String, Impute>,
    /// Canonical input fields, in schema order.
    targets: Vec<String>,
    list_fields: Vec<String>,
    list_separator: char,
    schema: SchemaRef,
    /// The file was pseudonymised at the partner (`tip pseudonymise`): it carries pseudonyms and
    /// its own `source_row` instead of identifiers.
    pub pseudonymised: bool,
}

/// A partner layout: source columns → fields, partner labels → codes, imputed fields.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub columns: BTreeMap<String, String>,
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    pub impute: BTreeMap<String, Impute>,
}

/// The canonical input fields a layout can fill: with pseudonym columns (a file pseudonymised
/// at the partner), the pseudonyms instead of the identifiers.
fn targets(record: &RecordSchema, columns: &BTreeMap<String, String>) -> Vec<String> {
    let mut targets: Vec<String> = record.input_fields().map(|f| f.name.clone()).collect();
    if columns.values().any(|d| record.pseudonyms().contains(d)) {
        targets.retain(|t| {
            record
                .field(t)
                .is_some_and(|f| f.class != FieldClass::Identifier)
        });
        targets.extend(record.pseudonyms());
    }
    targets
}

/// Partner labels folded like the code lists' own labels.
fn value_maps(
    values: &BTreeMap<String, BTreeMap<String, String>>,
) -> HashMap<String, HashMap<String, String>> {
    values
        .iter()
        .map(|(field, map)| {
            let m = map
                .iter()
                .map(|(k, v)| (normalise::label(k), v.clone()))
                .collect();
            (field.clone(), m)
        })
        .collect()
}

impl Mapping {
    /// Builds and checks a mapping. `file` names the config file for error messages.
    pub fn new(
        file: &str,
        record: &RecordSchema,
        format: Format,
        options: FormatOptions,
        layout: &Layout,
    ) -> Result<Mapping, MappingError> {
        let bad = |message: String| MappingError::Config {
            file: file.to_string(),
            message,
        };
        let targets = targets(record, &layout.columns);
        for (src, dst) in &layout.columns {
            if !targets.contains(dst) {
                return Err(bad(format!(
                    "column {src:?} maps to {dst:?}, which is not an input field of {} (fields: {})",
                    record.record_type,
                    targets.join(", ")
                )));
            }
        }
        let named = [
            ("values", layout.values.keys().collect::<Vec<_>>()),
            ("impute", layout.impute.keys().collect()),
        ];
        for (section, fields) in named {
            if let Some(field) = fields.into_iter().find(|f| !targets.contains(f)) {
                return Err(bad(format!(
                    "{section}.{field}: no such field in {}",
                    record.record_type
                )));
            }
        }
        let list_separator = match options.list_separator.as_deref() {
            None => ';',
            Some(s) if s.chars().count() == 1 => s.chars().next().unwrap_or(';'),
            Some(_) => return Err(bad("list_separator must be one character".into())),
        };
        let mut fields = vec![Field::new("source_row", DataType::Int64, false)];
        fields.extend(targets.iter().map(|t| Field::new(t, DataType::Utf8, true)));
        fields.push(Field::new("imputed_fields", DataType::Utf8, true));
        Ok(Mapping {
            record_type: record.record_type.clone(),
            format,
            options,
            columns: layout.columns.clone().into_iter().collect(),
            values: value_maps(&layout.values),
            impute: layout.impute.clone(),
            list_fields: record
                .fields
                .iter()
                .filter(|f| f.ftype == FieldType::CodeList)
                .map(|f| f.name.clone())
                .collect(),
            pseudonymised: layout
                .columns
                .values()
                .any(|d| record.pseudonyms().contains(d)),
            targets,
            list_separator,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The canonical layout as-is (`tip load` without a pipeline): every input field's name is
    /// its own column.
    pub fn canonical(record: &RecordSchema, format: Format, options: FormatOptions) -> Mapping {
        let names = record.input_fields().map(|f| f.name.clone());
        Mapping::identity("canonical layout", record, format, options, names)
    }

    /// The layout `tip pseudonymise` writes: pseudonyms instead of identifiers, the stored
    /// input fields, and the partner's own row numbers.
    pub fn pseudonymised(record: &RecordSchema, format: Format, options: FormatOptions) -> Mapping {
        let names = record
            .input_fields()
            .filter(|f| f.class != FieldClass::Identifier)
            .map(|f| f.name.clone())
            .chain(record.pseudonyms());
        Mapping::identity("pseudonymised layout", record, format, options, names)
    }

    /// A layout whose column names are the canonical names.
    fn identity(
        label: &str,
        record: &RecordSchema,
        format: Format,
        options: FormatOptions,
        names: impl Iterator<Item = String>,
    ) -> Mapping {
        let layout = Layout {
            columns: names.map(|n| (n.clone(), n)).collect(),
            ..Layout::default()
        };
        Mapping::new(label, record, format, options, &layout)
            .expect("a layout of the schema's own names maps onto the schema")
    }

    /// A pipeline feed, optionally through a preset, with the pipeline's format defaults.
    pub fn for_feed(
        file: &str,
        record: &RecordSchema,
        feed: &FeedConfig,
        pipeline_format: &FormatOptions,
        preset: Option<&PresetConfig>,
    ) -> Result<Mapping, MappingError> {
        let mut options = pipeline_format.clone();
        let mut layout = Layout::default();
        if let Some(p) = preset {
            options = p.format.or(&options);
            layout.columns.extend(p.columns.clone());
            layout.values.extend(p.values.clone());
            layout.impute.extend(p.impute.clone());
        }
        if let Some(s) = &feed.sheet {
            options.sheet = Some(s.clone());
        }
        layout.columns.extend(feed.columns.clone());
        for (f, m) in &feed.values {
            layout
                .values
                .entry(f.clone())
                .or_default()
                .extend(m.clone());
        }
        layout.impute.extend(feed.impute.clone());
        let kind = options.kind.clone().unwrap_or_else(|| "csv".into());
        let format = Format::parse(&kind).ok_or_else(|| MappingError::Config {
            file: file.into(),
            message: format!("format.kind {kind:?} is not one of csv, json, ndjson, xlsx"),
        })?;
        Mapping::new(file, record, format, options, &layout)
    }

    /// Source column names to read.
    pub fn wanted(&self) -> Vec<String> {
        let mut w: Vec<String> = Vec::new();
        if self.pseudonymised {
            w.push("source_row".to_string());
        }
        for (s, _) in &self.columns {
            if !w.contains(s) {
                w.push(s.clone());
            }
        }
        w
    }

    /// Source columns that must be present for each required field (any one of each group).
    pub fn required_groups(&self, record: &RecordSchema) -> Vec<(String, Vec<String>)> {
        record
            .input_fields()
            .filter(|f| f.required && !self.impute.contains_key(&f.name))
            .map(|f| {
                let srcs = self
                    .columns
                    .iter()
                    .filter(|(_, d)| *d == f.name)
                    .map(|(s, _)| s.clone())
                    .collect();
                (f.name.clone(), srcs)
            })
            .collect()
    }

    /// Maps a raw batch to the canonical layout: columns renamed and coalesced, partner labels
    /// translated, lists joined with the canonical separator, imputations applied.
    pub fn apply(
        &self,
        raw: &RecordBatch,
        submission_date: &str,
    ) -> Result<RecordBatch, MappingError> {
        let rows = raw.num_rows();
        let src_rows = raw
            .column_by_name("source_row")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or_else(|| MappingError::Arrow("raw batch has no source_row".into()))?;
        // A pseudonymised file keeps the row numbers of the partner's original file.
        let given_rows = raw
            .column_by_name("source_row")
            .filter(|_| self.pseudonymised)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let rows_out: Int64Array = match &given_rows {
            Some(g) => (0..rows)
                .map(|r| {
                    g.is_valid(r)
                        .then(|| g.value(r).trim().parse::<i64>().ok())
                        .flatten()
                        .unwrap_or(src_rows.value(r))
                })
                .collect(),
            None => src_rows.clone(),
        };
        let mut out: Vec<ArrayRef> = vec![Arc::new(rows_out)];
        let mut imputed: Vec<Vec<&str>> = vec![Vec::new(); rows];
        for target in &self.targets {
            let sources: Vec<&StringArray> = self
                .columns
                .iter()
                .filter(|(_, d)| d == target)
                .filter_map(|(s, _)| raw.column_by_name(s))
                .filter_map(|c| c.as_any().downcast_ref::<StringArray>())
                .collect();
            let vmap = self.values.get(target);
            let is_list = self.list_fields.contains(target);
            let impute = self.impute.get(target);
            let mut b = StringBuilder::with_capacity(rows, rows * 8);
            for (r, imp) in imputed.iter_mut().enumerate() {
                let v = sources.iter().find(|a| a.is_valid(r)).map(|a| a.value(r));
                match v {
                    Some(v) if is_list => b.append_value(self.map_list(v, vmap)),
                    Some(v) => match vmap.and_then(|m| m.get(&normalise::label(v))) {
                        Some(code) => b.append_value(code),
                        None => b.append_value(v),
                    },
                    None if impute.is_some() => {
                        b.append_value(submission_date);
                        imp.push(target.as_str());
                    }
                    None => b.append_null(),
                }
            }
            out.push(Arc::new(b.finish()));
        }
        let mut ib = StringBuilder::new();
        for imp in &imputed {
            if imp.is_empty() {
                ib.append_null();
            } else {
                ib.append_value(imp.join(","));
            }
        }
        out.push(Arc::new(ib.finish()));
        RecordBatch::try_new(self.schema.clone(), out)
            .map_err(|e| MappingError::Arrow(e.to_string()))
    }

    fn map_list(&self, v: &str, vmap: Option<&HashMap<String, String>>) -> String {
        let parts: Vec<&str> = if v.contains(LIST_JOIN) {
            v.split(LIST_JOIN).collect()
        } else {
            v.split(self.list_separator).collect()
        };
        let mapped: Vec<String> = parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match vmap.and_then(|m| m.get(&normalise::label(p))) {
                Some(c) => c.clone(),
                None => p.to_string(),
            })
            .collect();
        mapped.join(&LIST_JOIN.to_string())
    }
}
