//! The workbook of an extract: a sheet with the rules, then a sheet per table.

use super::{grid, rules_text};
use crate::extract::{Built, EstimateOut, ExtractDef, ExtractError};

pub fn bytes(def: &ExtractDef, month: &str, built: &Built) -> Result<Vec<u8>, ExtractError> {
    let tables = &built.tables;
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "xlsx".into(),
        message: e.to_string(),
    };
    let rules = &def.disclosure;
    let mut wb = Workbook::new();
    // A fixed creation date: the file is a function of the data, not of the clock.
    let created = ExcelDateTime::from_ymd(2000, 1, 1).map_err(|e| err(&e))?;
    wb.set_properties(
        &DocProperties::new()
            .set_title(&def.title)
            .set_creation_datetime(&created),
    );
    let bold = Format::new().set_bold();
    {
        let ws = wb.add_worksheet();
        ws.set_name("Rules").map_err(|e| err(&e))?;
        ws.write_string_with_format(0, 0, format!("{} — {month}", def.title), &bold)
            .map_err(|e| err(&e))?;
        for (i, line) in rules_text(rules).iter().enumerate() {
            ws.write_string(i as u32 + 2, 0, line)
                .map_err(|e| err(&e))?;
        }
        ws.set_column_width(0, 120).map_err(|e| err(&e))?;
    }
    for (n, t) in tables.iter().enumerate() {
        let heading = format!("{} ({}), {month}", t.title, t.unit);
        let first_count = t.dimensions.len() - 1;
        let counts = |c: usize| c >= first_count;
        add_sheet(&mut wb, n + 1, &t.name, &heading, &grid(t, rules), &counts)?;
    }
    for (n, e) in built.estimates.iter().enumerate() {
        let heading = format!("{}, {month}", e.title);
        let numbers = |c: usize| (3..=6).contains(&c);
        let g = estimate_grid(e, rules);
        add_sheet(
            &mut wb,
            tables.len() + n + 1,
            &e.name,
            &heading,
            &g,
            &numbers,
        )?;
    }
    wb.save_to_buffer().map_err(|e| err(&e))
}

/// A sheet numbered `n`: a bold heading, then the grid (bold header line; the cells of the
/// columns `numeric` picks written as numbers where they are numbers).
fn add_sheet(
    wb: &mut rust_xlsxwriter::Workbook,
    n: usize,
    name: &str,
    heading: &str,
    grid: &[Vec<String>],
    numeric: &dyn Fn(usize) -> bool,
) -> Result<(), ExtractError> {
    let err = |e: &dyn std::fmt::Display| ExtractError::Io {
        path: "xlsx".into(),
        message: e.to_string(),
    };
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet();
    // Sheet names: at most 31 characters, some characters forbidden, unique by number.
    let sheet: String = format!("{n} {name}")
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .take(31)
        .collect();
    ws.set_name(&sheet).map_err(|e| err(&e))?;
    ws.write_string_with_format(0, 0, heading, &bold)
        .map_err(|e| err(&e))?;
    for (r, line) in grid.iter().enumerate() {
        for (c, cell) in line.iter().enumerate() {
            let (row, col) = (r as u32 + 2, c as u16);
            match cell.parse::<u64>() {
                Ok(v) if r > 0 && numeric(c) => {
                    ws.write_number(row, col, v as f64).map_err(|e| err(&e))?;
                }
                _ if r == 0 => {
                    ws.write_string_with_format(row, col, cell, &bold)
                        .map_err(|e| err(&e))?;
                }
                _ => {
                    ws.write_string(row, col, cell).map_err(|e| err(&e))?;
                }
            }
        }
    }
    Ok(())
}

/// An estimate table as a grid: header, then one line per country and year.
pub(crate) fn estimate_grid(e: &EstimateOut, rules: &crate::disclosure::Rules) -> Vec<Vec<String>> {
    let mut out = vec![
        [
            "year",
            "months",
            "country",
            "identified",
            "estimate",
            "95% interval from",
            "95% interval to",
            "lists",
            "two-list terms",
            "note",
        ]
        .map(str::to_string)
        .to_vec(),
    ];
    for r in &e.rows {
        let mut line = vec![r.year.clone(), r.months.clone(), r.country.clone()];
        line.extend(r.measures(rules).into_iter().map(|m| m.1));
        line.push(r.lists.join(", "));
        line.push(r.terms.join(", "));
        line.push(r.note.clone());
        out.push(line.into_iter().map(|s| super::neutralise(&s)).collect());
    }
    out
}
