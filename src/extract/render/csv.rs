//! The CSV of an extract: RFC 4180, one line per published number.

use super::{LONG_HEADER, estimate_lines, long_fields, neutralise};
use crate::disclosure::Rules;
use crate::extract::{EstimateOut, ExtractError, TableOut};

/// RFC 4180: CRLF line ends, quotes where needed, formula-like text neutralised. Estimate
/// tables follow the count tables, one line per measure (identified, estimate, limits).
pub fn bytes(
    tables: &[TableOut],
    estimates: &[EstimateOut],
    rules: &Rules,
) -> Result<Vec<u8>, ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "csv".into(),
        message: e.to_string(),
    };
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(LONG_HEADER).map_err(|e| err(&e))?;
    for t in tables {
        for (cats, p) in t.long_rows() {
            let mut rec: Vec<String> = long_fields(t, &cats)
                .iter()
                .map(|s| neutralise(s))
                .collect();
            rec.push(neutralise(&p.label(rules)));
            w.write_record(&rec).map_err(|e| err(&e))?;
        }
    }
    for e in estimates {
        for (fields, label, _) in estimate_lines(e, rules) {
            let mut rec: Vec<String> = fields.iter().map(|s| neutralise(s)).collect();
            rec.push(label);
            w.write_record(&rec).map_err(|e| err(&e))?;
        }
    }
    w.into_inner().map_err(|e| err(&e))
}
