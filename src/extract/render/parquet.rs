//! The Parquet of an extract: long form, `count` null where suppressed, with a `suppressed`
//! marker.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::{LONG_HEADER, estimate_lines, long_fields};
use crate::disclosure::Rules;
use crate::extract::{EstimateOut, ExtractError, TableOut};

pub fn bytes(
    tables: &[TableOut],
    estimates: &[EstimateOut],
    rules: &Rules,
) -> Result<Vec<u8>, ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "parquet".into(),
        message: e.to_string(),
    };
    let mut text: Vec<Vec<Option<String>>> = vec![Vec::new(); 7];
    let mut count = Vec::new();
    let mut flag = Vec::new();
    for t in tables {
        for (cats, p) in t.long_rows() {
            for (i, s) in long_fields(t, &cats).into_iter().enumerate() {
                text[i].push((!s.is_empty()).then_some(s));
            }
            count.push(p.number().map(|n| n as i64));
            flag.push(p.suppressed().then(|| p.label(rules)));
        }
    }
    for e in estimates {
        for (fields, label, number) in estimate_lines(e, rules) {
            for (i, s) in fields.into_iter().enumerate() {
                text[i].push(Some(s));
            }
            count.push(number.map(|n| n as i64));
            flag.push(number.is_none().then_some(label));
        }
    }
    let mut fields: Vec<Field> = LONG_HEADER[..7]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, *n != "table"))
        .collect();
    fields.push(Field::new("count", DataType::Int64, true));
    fields.push(Field::new("suppressed", DataType::Utf8, true));
    let mut cols: Vec<ArrayRef> = text
        .into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    cols.push(Arc::new(Int64Array::from(count)));
    cols.push(Arc::new(StringArray::from(flag)));
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| err(&e))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_created_by(format!("tip {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut buf = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut buf, schema, Some(props)).map_err(|e| err(&e))?;
    w.write(&batch).map_err(|e| err(&e))?;
    w.close().map_err(|e| err(&e))?;
    Ok(buf)
}
