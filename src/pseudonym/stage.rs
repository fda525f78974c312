//! The pseudonymisation stage: validated rows (identifiers normalised) → stored rows
//! (identifiers replaced by pseudonyms and dropped, provenance added).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Date32Array, Int32Array, Int64Array, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;

use super::{Key, Pseudonymiser};
use crate::schema::{FieldClass, PseudonymScope, RecordSchema};
use crate::util::months::{write_date, write_month};

/// Provenance of one submission, stamped on every row.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub partner: String,
    pub reporting_country: String,
    pub submission_id: String,
    pub source_sha256: String,
    pub ingested_at_micros: i64,
}

/// One pseudonym column and how it is made.
struct Maker {
    column: String,
    pseudonymiser: Pseudonymiser,
    inputs: Vec<String>,
    partner_scoped: bool,
}

pub struct Stage {
    record: RecordSchema,
    makers: Vec<Maker>,
    key_version: String,
    /// The record key's alternatives, as column indices of the stored schema.
    key_columns: Vec<Vec<usize>>,
    /// The input fields the first key alternative is made from, for messages to partners.
    key_inputs: String,
}

impl Stage {
    pub fn new(record: &RecordSchema, catalog: &crate::schema::Catalog, key: &Key) -> Stage {
        let makers = record
            .pseudonyms()
            .into_iter()
            .filter_map(|p| {
                let def = catalog.pseudonyms.get(&p)?;
                Some(Maker {
                    pseudonymiser: Pseudonymiser::new(key, &p, &def.prefix),
                    inputs: def.inputs.iter().map(|i| i.field.clone()).collect(),
                    partner_scoped: def.scope == PseudonymScope::Partner,
                    column: p,
                })
            })
            .collect();
        let stored = record.stored_schema();
        let key_columns = record
            .key
            .iter()
            .map(|alt| alt.iter().filter_map(|c| stored.index_of(c).ok()).collect())
            .collect();
        let key_inputs = record.key[0]
            .iter()
            .flat_map(|c| match catalog.pseudonyms.get(c) {
                Some(def) => def.inputs.iter().map(|i| i.field.clone()).collect(),
                None => vec![c.clone()],
            })
            .collect::<Vec<_>>()
            .join("+");
        Stage {
            record: record.clone(),
            makers,
            key_version: key.version(),
            key_columns,
            key_inputs,
        }
    }

    /// The input fields a partner must fill for a row to have a key (for messages).
    pub fn key_inputs(&self) -> &str {
        &self.key_inputs
    }

    pub fn key_version(&self) -> &str {
        &self.key_version
    }

    /// Stored rows: pseudonyms, the stored fields, then the provenance columns.
    pub fn apply(&self, validated: &RecordBatch, prov: &Provenance) -> Result<RecordBatch, String> {
        let cols = self.columns(validated, prov)?;
        RecordBatch::try_new(self.record.stored_schema(), cols).map_err(|e| e.to_string())
    }

    /// Every row's record key (null where no key alternative is complete), and the stored rows
    /// of the rows that have one: a row without a key is set aside, never stored.
    pub fn apply_keyed(
        &self,
        validated: &RecordBatch,
        prov: &Provenance,
    ) -> Result<(ArrayRef, RecordBatch), String> {
        let mut cols = self.columns(validated, prov)?;
        let keys = cols
            .last()
            .cloned()
            .ok_or_else(|| "no columns".to_string())?;
        if keys.null_count() > 0 {
            let keep = arrow::compute::is_not_null(&keys).map_err(|e| e.to_string())?;
            cols = cols
                .iter()
                .map(|c| arrow::compute::filter(c, &keep))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
        }
        let stored =
            RecordBatch::try_new(self.record.stored_schema(), cols).map_err(|e| e.to_string())?;
        Ok((keys, stored))
    }

    /// The record key of each row only (rows validated for their key fields alone, as in a
    /// withdrawal): null where no key alternative is complete.
    pub fn keys(&self, validated: &RecordBatch, prov: &Provenance) -> Result<ArrayRef, String> {
        let mut cols = self.columns(validated, prov)?;
        cols.pop().ok_or_else(|| "no columns".to_string())
    }

    /// The stored columns, in the stored schema's order (the record key last).
    fn columns(&self, validated: &RecordBatch, prov: &Provenance) -> Result<Vec<ArrayRef>, String> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.key_columns.len() + 40);
        for m in &self.makers {
            cols.push(self.pseudonyms(m, validated, &prov.partner)?);
        }
        for f in &self.record.fields {
            if f.class != FieldClass::Identifier {
                cols.push(column(validated, &f.name)?);
            }
        }
        cols.extend(self.provenance(validated, prov)?);
        cols.push(self.record_keys(&cols, validated.num_rows())?);
        Ok(cols)
    }

    /// The key of each row: `k<alternative>_` and 128 bits of the SHA-256 of the alternative's
    /// values (length-prefixed), or null when no alternative is complete.
    fn record_keys(&self, cols: &[ArrayRef], n: usize) -> Result<ArrayRef, String> {
        use arrow::util::display::{ArrayFormatter, FormatOptions};
        use sha2::Digest;
        let opts = FormatOptions::default();
        let mut formatters = Vec::with_capacity(self.key_columns.len());
        for alt in &self.key_columns {
            let f: Vec<(ArrayFormatter<'_>, &ArrayRef)> = alt
                .iter()
                .map(|&i| Ok((ArrayFormatter::try_new(cols[i].as_ref(), &opts)?, &cols[i])))
                .collect::<Result<_, arrow::error::ArrowError>>()
                .map_err(|e| e.to_string())?;
            formatters.push(f);
        }
        let mut b = StringBuilder::with_capacity(n, n * 36);
        let mut text = String::new();
        for r in 0..n {
            let alt = formatters
                .iter()
                .position(|alt| alt.iter().all(|(_, a)| a.is_valid(r)));
            let Some(k) = alt else {
                b.append_null();
                continue;
            };
            let mut h = sha2::Sha256::new();
            for (f, _) in &formatters[k] {
                text.clear();
                use std::fmt::Write;
                let _ = write!(text, "{}", f.value(r));
                h.update((text.len() as u32).to_be_bytes());
                h.update(text.as_bytes());
            }
            let digest = h.finalize();
            b.append_value(format!("k{}_{}", k + 1, hex::encode(&digest[..16])));
        }
        Ok(Arc::new(b.finish()))
    }

    /// One pseudonym column. A pseudonym is made only when every one of its inputs is present;
    /// otherwise it is null (an unlinkable row).
    fn pseudonyms(
        &self,
        m: &Maker,
        validated: &RecordBatch,
        partner: &str,
    ) -> Result<ArrayRef, String> {
        let n = validated.num_rows();
        let arrays: Vec<ArrayRef> = m
            .inputs
            .iter()
            .map(|f| column(validated, f))
            .collect::<Result<_, _>>()?;
        let scope = if m.partner_scoped { partner } else { "" };
        let given = validated
            .column_by_name(&m.column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        let mut b = StringBuilder::with_capacity(n, n * 56);
        // Reused for every row: the inputs' text (wiped after each row) and the pseudonym.
        let mut parts: Vec<String> = vec![String::new(); arrays.len()];
        let mut out = String::with_capacity(64);
        for r in 0..n {
            // Made at the partner with the same key (checked in validation).
            if let Some(g) = given.as_ref().filter(|g| g.is_valid(r)) {
                b.append_value(g.value(r));
                continue;
            }
            let complete = collect_inputs(&arrays, r, &mut parts);
            if complete {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                m.pseudonymiser.pseudonym_into(scope, &refs, &mut out);
                b.append_value(&out);
            } else {
                b.append_null();
            }
            for p in parts.iter_mut() {
                zeroize::Zeroize::zeroize(p);
            }
        }
        Ok(Arc::new(b.finish()))
    }

    /// The provenance columns, in the order of `schema::PROVENANCE`.
    fn provenance(
        &self,
        validated: &RecordBatch,
        prov: &Provenance,
    ) -> Result<Vec<ArrayRef>, String> {
        let n = validated.num_rows();
        let rep = |s: &str| Arc::new(StringArray::from(vec![s; n])) as ArrayRef;
        let source_row = validated
            .column_by_name("source_row")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
            .ok_or("missing source_row")?;
        Ok(vec![
            rep(&prov.partner),
            rep(&prov.reporting_country),
            self.periods(validated),
            rep(&prov.submission_id),
            rep(&prov.source_sha256),
            Arc::new(source_row),
            rep(&self.key_version),
            Arc::new(Int32Array::from(vec![self.record.version; n])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![prov.ingested_at_micros; n])
                    .with_timezone("UTC"),
            ),
            column(validated, "imputed_fields")?,
        ])
    }

    /// Each row's month (`YYYY-MM`) by the record type's period field, `unknown` without one.
    fn periods(&self, validated: &RecordBatch) -> ArrayRef {
        let n = validated.num_rows();
        let days = self
            .record
            .period_field
            .as_ref()
            .and_then(|p| validated.column_by_name(p))
            .and_then(|c| c.as_any().downcast_ref::<Date32Array>().cloned());
        let mut period = StringBuilder::with_capacity(n, n * 7);
        let mut month = String::with_capacity(7);
        for r in 0..n {
            month.clear();
            match days.as_ref().filter(|a| a.is_valid(r)) {
                Some(a) if write_month(a.value(r), &mut month) => period.append_value(&month),
                _ => period.append_value("unknown"),
            }
        }
        Arc::new(period.finish())
    }
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef, String> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| format!("missing {name}"))
}

/// The inputs of row `r` as text into `parts` (one per input); false when one is missing.
fn collect_inputs(arrays: &[ArrayRef], r: usize, parts: &mut [String]) -> bool {
    for (a, part) in arrays.iter().zip(parts.iter_mut()) {
        part.clear();
        if a.is_null(r) {
            return false;
        }
        if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
            part.push_str(s.value(r));
        } else if let Some(d) = a.as_any().downcast_ref::<Date32Array>() {
            if !write_date(d.value(r), part) {
                return false;
            }
        } else {
            return false;
        }
    }
    true
}
