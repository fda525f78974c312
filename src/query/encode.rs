//! Answers as bytes: an aligned table, CSV (lists written as partners write them), a JSON
//! array, NDJSON, or an Arrow IPC stream. Shared by the CLI and the HTTP API.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;

use super::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Ndjson,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Option<OutputFormat> {
        match s {
            "table" => Some(OutputFormat::Table),
            "csv" => Some(OutputFormat::Csv),
            "json" => Some(OutputFormat::Json),
            "ndjson" => Some(OutputFormat::Ndjson),
            _ => None,
        }
    }
}

/// Renders batches in the chosen format.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<Vec<u8>, QueryError> {
    let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
    let mut out: Vec<u8> = Vec::new();
    match format {
        OutputFormat::Table => {
            let s = datafusion::arrow::util::pretty::pretty_format_batches(batches).map_err(err)?;
            out.extend_from_slice(s.to_string().as_bytes());
            out.push(b'\n');
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                // Lists as partners write them: items separated by ';'.
                let cols: Vec<_> = b
                    .columns()
                    .iter()
                    .map(|c| crate::schema::lists_as_text(c, ";"))
                    .collect();
                let fields: Vec<Field> = b
                    .schema()
                    .fields()
                    .iter()
                    .zip(&cols)
                    .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                    .collect();
                let flat =
                    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(err)?;
                w.write(&flat).map_err(err)?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
        }
        OutputFormat::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            w.write_batches(&refs).map_err(err)?;
            w.finish().map_err(err)?;
        }
    }
    Ok(out)
}

/// An Arrow IPC stream, for pandas, Polars and DuckDB.
pub fn arrow_ipc(batches: &[RecordBatch]) -> Result<Vec<u8>, QueryError> {
    let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    let mut buf = Vec::new();
    let mut w =
        datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &schema).map_err(err)?;
    for b in batches {
        w.write(b).map_err(err)?;
    }
    w.finish().map_err(err)?;
    drop(w);
    Ok(buf)
}
