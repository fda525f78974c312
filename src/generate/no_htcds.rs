//! The Norwegian NGO (NO-NGO-01): the IOM HTCDS v2.0 Excel template, filled with one row per
//! person, with HTCDS field names and English labels, dates as ISO text or Excel serials.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::NaiveDate;
use rand::RngExt;
use rand::rngs::ChaCha8Rng;

use super::output::{Writer, iso};
use super::people::{Person, name_in_report, pick_s};
use super::{GenerateError, SampleRun, io};

/// The HTCDS v2.0 Excel template (IOM, CC BY 4.0), filled to make the HTCDS partner's file.
pub const HTCDS_TEMPLATE: &[u8] = include_bytes!("../../pipelines/presets/htcds-v2-template.xlsx");

/// One HTCDS row: field name to value.
type HtcdsRow = BTreeMap<String, String>;

/// Rows per file. A sheet holds at most 1 048 576 rows, and tip refuses a workbook that
/// decompresses to more than 256 MiB (about 180 000 rows of this template, at some 1.4 kB
/// each), so a larger register is written as `htcds_cases_2025.xlsx`,
/// `htcds_cases_2025_2.xlsx`, ...
pub(super) const ROWS_PER_FILE: usize = 100_000;

/// Writes `no-ngo/htcds_cases_2025.xlsx`, and more files (`htcds_cases_2025_2.xlsx`, ...) past
/// `per_file` persons; the random stream is drawn in the same order whatever the split.
pub(super) fn write(run: &mut SampleRun, per_file: usize) -> Result<(), GenerateError> {
    let people = run.people;
    let new_file = |k: usize| {
        (
            Writer::new(&htcds_file(k), "NO-NGO-01", "case", 3),
            Vec::new(),
        )
    };
    let mut files: Vec<(Writer, Vec<HtcdsRow>)> = vec![new_file(0)];
    for (i, p) in people.iter().enumerate() {
        if !run.reports(i, "NO") {
            continue;
        }
        if files
            .last()
            .is_some_and(|(_, rows)| rows.len() >= per_file.max(1))
        {
            files.push(new_file(files.len()));
        }
        let (v, g, f) = name_in_report(&mut run.rng, p, false);
        let mut m = person_fields(&mut run.rng, i, p, g, f);
        add_victim_fields(&mut run.rng, &mut m, p);
        if let Some((cases, rows)) = files.last_mut() {
            rows.push(m);
            cases.push(vec![], Some((i, v)));
        }
    }
    for (cases, rows) in files {
        let xlsx = fill_htcds_template(HTCDS_TEMPLATE, &rows)?;
        std::fs::write(run.path(&cases), xlsx).map_err(io("write"))?;
        run.done(cases);
    }
    Ok(())
}

/// The path of the `k`-th HTCDS file (from 0).
fn htcds_file(k: usize) -> String {
    match k {
        0 => "no-ngo/htcds_cases_2025.xlsx".into(),
        _ => format!("no-ngo/htcds_cases_2025_{}.xlsx", k + 1),
    }
}

/// The case and person fields of person `i`, named `given` `family` in this report.
fn person_fields(
    rng: &mut ChaCha8Rng,
    i: usize,
    p: &Person,
    given: String,
    family: String,
) -> HtcdsRow {
    let mut m = BTreeMap::new();
    m.insert("cas_CaseOwner".into(), "Case worker A".into());
    m.insert("prs_FirstName".into(), given);
    m.insert("prs_SecondName".into(), family);
    m.insert(
        "prs_Birthdate".into(),
        if rng.random_bool(0.5) {
            iso(p.birth)
        } else {
            format!(
                "N:{}",
                (p.birth - NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default()).num_days()
            )
        },
    );
    m.insert("prs_Gender".into(), htcds_gender(p.gender).into());
    m.insert("prs_Citizenship".into(), p.citizenship.into());
    m.insert("prs_Email".into(), format!("person{i}@example.org"));
    m.insert(
        "prs_MobilePhone".into(),
        format!("+47 9{:07}", rng.random_range(0..10_000_000)),
    );
    m.insert(
        "prs_MailingStreet".into(),
        format!("Storgata {}", rng.random_range(1..200)),
    );
    m.insert("con_Consent".into(), "Yes".into());
    m
}

/// The victim fields: trafficking status and who decided it, recruitment, control,
/// exploitation, and the referral note.
fn add_victim_fields(rng: &mut ChaCha8Rng, m: &mut HtcdsRow, p: &Person) {
    m.insert(
        "vic_TraffickingStatus".into(),
        if rng.random_bool(0.5) {
            "Actual victim of trafficking"
        } else {
            "Possible victim of trafficking"
        }
        .into(),
    );
    m.insert(
        "vic_TraffickinStatusDecisionMakingOrg".into(),
        (pick_s(rng, &["Police", "NGO", "Court or prosecution"])).into(),
    );
    m.insert(
        "vic_MethodOfRecruitment".into(),
        htcds_recruitment(p.recruitment).into(),
    );
    m.insert(
        "vic_MethodsOfControl".into(),
        p.control
            .iter()
            .map(|c| htcds_control(c))
            .collect::<Vec<_>>()
            .join(";"),
    );
    m.insert(
        "vic_TypeOfExploitation".into(),
        p.exploitation
            .iter()
            .map(|c| htcds_exploitation(c))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(";"),
    );
    m.insert(
        "vic_LocationOfExploitation".into(),
        p.exploitation_country.into(),
    );
    m.insert(
        "cas_IncomingReferralDetails".into(),
        "Referred after an interview; see notes".into(),
    );
}

fn htcds_gender(g: &str) -> &'static str {
    match g {
        "female" => "Feminine",
        "male" => "Masculine",
        _ => "NonSpecifiedUnknown",
    }
}

fn htcds_exploitation(c: &str) -> &'static str {
    match c {
        "sexual" | "online_sexual" => "Sexual exploitation",
        "labour" => "Forced labour",
        "begging" => "Forced begging",
        "forced_marriage" => "Forced marriage",
        "domestic_servitude" => "Servitude",
        _ => "Other",
    }
}

/// The HTCDS label of a means of control (the template's own label has a trailing space for
/// debt bondage).
fn htcds_control(c: &str) -> &'static str {
    match c {
        "threats" => "Physical threats",
        "debt_bondage" => "Debt bondage ",
        "false_promises" => "False promises",
        "physical_abuse" => "Physical abuse",
        "psychological_abuse" => "Psychological abuse",
        "withholds_documents" => "Withholds documents",
        "substances" => "Psychoactive substance",
        "withholds_earnings" => "Takes earnings",
        _ => "Other",
    }
}

fn htcds_recruitment(c: &str) -> &'static str {
    match c {
        "online_social_network" => "Through online social networks",
        "online_advertisement" => "Through an online advertisement",
        "job_offer" => "At work",
        "family" => "Through family or family events",
        "friend_or_acquaintance" => "Through friends or social events",
        _ => "Other",
    }
}

fn column_letters(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Fills rows 3, 4, ... of an HTCDS template's first sheet. Each row maps HTCDS field names to
/// values; a value `N:123` is written as a number (an Excel serial date), others as text.
/// Columns are found by the template's field-name row, as a partner's copy would have them.
pub fn fill_htcds_template(
    template: &[u8],
    rows: &[BTreeMap<String, String>],
) -> Result<Vec<u8>, GenerateError> {
    let cols = field_columns(template)?;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(template)).map_err(io("template"))?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for k in 0..archive.len() {
        let mut entry = archive.by_index(k).map_err(io("template"))?;
        let name = entry.name().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(io("template"))?;
        if name == "xl/worksheets/sheet1.xml" {
            let xml = String::from_utf8(data).map_err(io("template"))?;
            data = fill_rows(xml, rows, &cols)?.into_bytes();
        }
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        out.start_file(name, opts).map_err(io("zip"))?;
        out.write_all(&data).map_err(io("zip"))?;
    }
    Ok(out.finish().map_err(io("zip"))?.into_inner())
}

/// The column of each HTCDS field, from the field-name row (the first) of the first sheet.
fn field_columns(template: &[u8]) -> Result<BTreeMap<String, usize>, GenerateError> {
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(template)).map_err(io("template"))?;
    let first = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| GenerateError::Io("template has no sheet".into()))?;
    let range = wb.worksheet_range(&first).map_err(io("template"))?;
    let mut cols: BTreeMap<String, usize> = BTreeMap::new();
    for c in 0..=range.end().map(|e| e.1).unwrap_or(0) {
        if let Some(calamine::Data::String(s)) = range.get_value((0, c)) {
            cols.insert(s.clone(), c as usize);
        }
    }
    Ok(cols)
}

/// The sheet XML of the `n`-th data row (sheet row `n + 3`): its number in column A, then the
/// row's fields in column order; fields the template lacks are left out.
fn row_xml(n: usize, row: &HtcdsRow, cols: &BTreeMap<String, usize>) -> String {
    let r = n + 3;
    let mut cells: Vec<(usize, String)> = vec![(0, format!("<c r=\"A{r}\"><v>{}</v></c>", n + 1))];
    for (field, value) in row {
        let Some(&c) = cols.get(field) else { continue };
        let at = format!("{}{r}", column_letters(c));
        let cell = match value.strip_prefix("N:") {
            Some(num) => format!("<c r=\"{at}\"><v>{num}</v></c>"),
            None => format!(
                "<c r=\"{at}\" t=\"inlineStr\"><is><t xml:space=\"preserve\">{}</t></is></c>",
                xml_escape(value)
            ),
        };
        cells.push((c, cell));
    }
    cells.sort_by_key(|(c, _)| *c);
    format!(
        "<row r=\"{r}\" spans=\"1:39\">{}</row>",
        cells.into_iter().map(|(_, s)| s).collect::<String>()
    )
}

/// The data rows in the sheet: each in place of the template's sheet row of its number, the
/// rest in order at the end of the sheet data. The template's rows are found once and the new
/// ones gathered and inserted once, so the time grows with the rows, not with their square.
fn fill_rows(
    mut xml: String,
    rows: &[HtcdsRow],
    cols: &BTreeMap<String, usize>,
) -> Result<String, GenerateError> {
    let in_template: std::collections::BTreeSet<usize> = xml
        .match_indices("<row r=\"")
        .filter_map(|(i, m)| {
            let rest = &xml[i + m.len()..];
            let digits = rest.find('"')?;
            rest[..digits].parse().ok()
        })
        .collect();
    let mut tail = String::new();
    for (n, row) in rows.iter().enumerate() {
        let (r, new_row) = (n + 3, row_xml(n, row, cols));
        if !in_template.contains(&r) {
            tail.push_str(&new_row);
            continue;
        }
        let open = format!("<row r=\"{r}\" ");
        let start = xml
            .find(&open)
            .ok_or_else(|| GenerateError::Io("template row not found".into()))?;
        let end = xml[start..]
            .find("</row>")
            .map(|e| start + e + 6)
            .ok_or_else(|| GenerateError::Io("template row not closed".into()))?;
        xml.replace_range(start..end, &new_row);
    }
    let end = xml
        .find("</sheetData>")
        .ok_or_else(|| GenerateError::Io("template has no sheetData".into()))?;
    xml.insert_str(end, &tail);
    Ok(xml)
}
