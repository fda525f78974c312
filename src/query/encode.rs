//! Answers as bytes: an aligned table, CSV (lists written as partners write them), a JSON
//! array, NDJSON, or an Arrow IPC stream. Shared by the CLI and the HTTP API.

use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
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
        OutputFormat::Csv => csv(batches, true, &mut out)?,
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

/// CSV, lists written as partners write them: items separated by ';'.
fn csv(batches: &[RecordBatch], header: bool, out: &mut Vec<u8>) -> Result<(), QueryError> {
    let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
    let mut w = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(header)
        .build(out);
    for b in batches {
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
        let flat = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(err)?;
        w.write(&flat).map_err(err)?;
    }
    Ok(())
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

/// How an answer is written as it streams: CSV, a JSON array, NDJSON or an Arrow IPC stream,
/// batch by batch (an aligned table needs every row first: use [`render`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    Text(OutputFormat),
    ArrowIpc,
}

/// Encodes an answer batch by batch: `start`, then `batch` for each batch, then `finish`; each
/// gives the bytes to send next.
pub struct Encoder {
    format: StreamFormat,
    rows: usize,
    ipc: Option<datafusion::arrow::ipc::writer::StreamWriter<Vec<u8>>>,
}

impl Encoder {
    /// The encoder and the bytes that open the answer. Table output cannot stream.
    pub fn start(
        format: StreamFormat,
        schema: &SchemaRef,
    ) -> Result<(Encoder, Vec<u8>), QueryError> {
        let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
        let mut enc = Encoder {
            format,
            rows: 0,
            ipc: None,
        };
        let head = match format {
            StreamFormat::Text(OutputFormat::Table) => {
                return Err(QueryError::Output("an aligned table cannot stream".into()));
            }
            StreamFormat::Text(OutputFormat::Json) => b"[".to_vec(),
            StreamFormat::Text(OutputFormat::Csv) => {
                // The header alone: an empty answer still names its columns.
                let empty = RecordBatch::new_empty(schema.clone());
                render(&[empty], OutputFormat::Csv)?
            }
            StreamFormat::Text(OutputFormat::Ndjson) => Vec::new(),
            StreamFormat::ArrowIpc => {
                let mut w =
                    datafusion::arrow::ipc::writer::StreamWriter::try_new(Vec::new(), schema)
                        .map_err(err)?;
                let head = std::mem::take(w.get_mut());
                enc.ipc = Some(w);
                head
            }
        };
        Ok((enc, head))
    }

    /// The bytes of one batch.
    pub fn batch(&mut self, b: &RecordBatch) -> Result<Vec<u8>, QueryError> {
        let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
        let first = self.rows == 0;
        if b.num_rows() == 0 {
            return Ok(Vec::new());
        }
        self.rows += b.num_rows();
        match self.format {
            StreamFormat::Text(OutputFormat::Csv) => {
                let mut out = Vec::new();
                csv(std::slice::from_ref(b), false, &mut out)?;
                Ok(out)
            }
            StreamFormat::Text(OutputFormat::Json) => {
                let lines = render(std::slice::from_ref(b), OutputFormat::Ndjson)?;
                let mut out = Vec::with_capacity(lines.len() + 2);
                for (i, line) in lines
                    .split(|c| *c == b'\n')
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    if !(first && i == 0) {
                        out.push(b',');
                    }
                    out.extend_from_slice(line);
                }
                Ok(out)
            }
            StreamFormat::Text(_) => render(std::slice::from_ref(b), OutputFormat::Ndjson),
            StreamFormat::ArrowIpc => {
                let w = self.ipc.as_mut().expect("started");
                w.write(b).map_err(err)?;
                Ok(std::mem::take(w.get_mut()))
            }
        }
    }

    /// The bytes that close the answer.
    pub fn finish(mut self) -> Result<Vec<u8>, QueryError> {
        let err = |e: datafusion::arrow::error::ArrowError| QueryError::Output(e.to_string());
        match self.format {
            StreamFormat::Text(OutputFormat::Json) => Ok(b"]\n".to_vec()),
            StreamFormat::ArrowIpc => {
                let mut w = self.ipc.take().expect("started");
                w.finish().map_err(err)?;
                Ok(std::mem::take(w.get_mut()))
            }
            StreamFormat::Text(_) => Ok(Vec::new()),
        }
    }
}
