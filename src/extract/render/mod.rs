//! The formats an extract is written in, one renderer each, and the labels they share.

pub mod csv;
pub mod html;
pub mod parquet;
pub mod xlsx;

use super::TOTAL;
use super::build::TableOut;
use super::estimates::EstimateOut;
use crate::disclosure::Rules;

/// A text cell that a spreadsheet would run as a formula gets a leading apostrophe.
pub fn neutralise(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub(crate) const LONG_HEADER: [&str; 8] = [
    "table",
    "dimension_1",
    "category_1",
    "dimension_2",
    "category_2",
    "dimension_3",
    "category_3",
    "count",
];

pub(crate) fn long_fields(t: &TableOut, cats: &[String]) -> Vec<String> {
    let mut v = vec![t.name.clone()];
    for i in 0..3 {
        v.push(t.dimensions.get(i).cloned().unwrap_or_default());
        v.push(cats.get(i).cloned().unwrap_or_default());
    }
    v
}

/// The long-form lines of an estimate table: (the seven text fields, label, number).
pub(crate) fn estimate_lines(
    e: &EstimateOut,
    rules: &Rules,
) -> Vec<(Vec<String>, String, Option<u64>)> {
    let mut out = vec![];
    for r in &e.rows {
        for (measure, label, number) in r.measures(rules) {
            let fields = [
                e.name.as_str(),
                "year",
                r.year.as_str(),
                "country",
                r.country.as_str(),
                "measure",
                measure,
            ];
            out.push((fields.map(str::to_string).to_vec(), label, number));
        }
    }
    out
}

/// A grid of labels: header, then one line per row key, then the totals line.
pub fn grid(t: &TableOut, rules: &Rules) -> Vec<Vec<String>> {
    let nrow = t.dimensions.len() - 1;
    let mut header: Vec<String> = t.dimensions[..nrow].to_vec();
    header.extend(t.columns.iter().cloned());
    header.push(TOTAL.into());
    let mut out = vec![header];
    if nrow == 0 {
        // One line: the categories and the total.
        let mut line: Vec<String> = t
            .cells
            .first()
            .map(|r| r.iter().map(|p| p.label(rules)).collect())
            .unwrap_or_else(|| vec![String::new(); t.columns.len()]);
        line.push(t.grand_total.label(rules));
        out.push(line);
        return out;
    }
    for (r, key) in t.row_keys.iter().enumerate() {
        let mut line = key.clone();
        line.extend(t.cells[r].iter().map(|p| p.label(rules)));
        line.push(t.row_totals[r].label(rules));
        out.push(line);
    }
    let mut last = vec![TOTAL.to_string(); nrow];
    last.extend(t.column_totals.iter().map(|p| p.label(rules)));
    last.push(t.grand_total.label(rules));
    out.push(last);
    out
}

pub const RULES_TEXT: &[&str] = &[
    "How these figures are protected",
    "Counts of children are counts of distinct persons: a child reported by two agencies, or twice, counts once in each cell and once in each total.",
    "A count from 1 to {small} is not published: it reads <{t}. A zero is a true zero.",
    "Every other number, totals included, is rounded to a multiple of {b} from the exact figure, and never below {floor}. Rounded numbers need not add up to the rounded totals.",
    "Where a hidden count could otherwise be worked out from the totals, further counts are withheld: they read x.",
    "Before anything is published, an audit works out, for every hidden count, the smallest and largest value the published numbers allow. It must leave a range of at least {t} for each, and for a <{t} count it must not rule out 1. If it does not, nothing is published.",
    "'unknown' means the partner did not record the value; it is not a zero.",
];

pub fn rules_text(rules: &Rules) -> Vec<String> {
    let floor = rules.round(rules.threshold);
    RULES_TEXT
        .iter()
        .map(|s| {
            s.replace("{small}", &(rules.threshold - 1).to_string())
                .replace("{t}", &rules.threshold.to_string())
                .replace("{b}", &rules.rounding_base.to_string())
                .replace("{floor}", &floor.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_neutralised() {
        for s in ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(s).starts_with('\''), "{s:?}");
        }
        assert_eq!(neutralise("LT"), "LT");
        assert_eq!(neutralise("<11"), "<11");
    }
}
