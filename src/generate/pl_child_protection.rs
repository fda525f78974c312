//! The Polish child-protection service (PL-CP-01): one Excel workbook with three sheets (cases,
//! risk assessments, referrals), Polish headers and labels, real Excel dates and some dates
//! typed as text.

use chrono::{Datelike, NaiveDate};
use rand::RngExt;
use rust_xlsxwriter::{Format, Worksheet};

use super::output::{Writer, dmy, iso};
use super::people::{Person, name_in_report, pick_s, year_end};
use super::{GenerateError, REFERRAL_ORGS, SampleRun, io};

const WORKBOOK: &str = "pl-child-protection/rejestr_2025";

/// Persons per workbook. A sheet holds at most 1 048 576 rows, and tip refuses a workbook that
/// decompresses to more than 256 MiB (about 180 000 persons here, at some 1.5 kB each), so a
/// larger register is written as `rejestr_2025.xlsx`, `rejestr_2025_2.xlsx`, ... (the
/// pipeline reads `rejestr_*.xlsx`), each person's rows in one workbook.
pub(super) const PERSONS_PER_WORKBOOK: usize = 100_000;

/// The path of the `k`-th workbook (from 0).
fn workbook(k: usize) -> String {
    match k {
        0 => format!("{WORKBOOK}.xlsx"),
        _ => format!("{WORKBOOK}_{}.xlsx", k + 1),
    }
}

const CASE_HEADER: &[&str] = &[
    "Nr sprawy",
    "Imię",
    "Nazwisko",
    "Data urodzenia",
    "Data rejestracji",
    "Płeć",
    "Obywatelstwo",
    "Status",
    "Zidentyfikowana przez",
    "Forma wyzysku",
    "Sposób werbunku",
    "Metody kontroli",
    "Kraj wyzysku",
    "Województwo",
    "Bez opieki",
    "Status migracyjny",
    "Zgoda",
];

const ASSESSMENT_HEADER: &[&str] = &[
    "Nr sprawy",
    "Imię",
    "Nazwisko",
    "Data urodzenia",
    "Data oceny",
    "Etap",
    "Poziom ryzyka",
    "Wskaźniki",
    "Zaangażowanie",
];

const REFERRAL_HEADER: &[&str] = &[
    "Nr skierowania",
    "Nr sprawy",
    "Imię",
    "Nazwisko",
    "Data urodzenia",
    "Rodzaj",
    "Data wysłania",
    "Do instytucji",
    "Powód",
    "Kanał",
    "Status",
    "Data odpowiedzi",
];

/// A value written as an Excel date: `D:` and the ISO date.
fn excel_date(d: NaiveDate) -> String {
    format!("D:{}", iso(d))
}

/// Writes `pl-child-protection/rejestr_2025.xlsx` with the sheets `Sprawy` (cases), `Oceny
/// ryzyka` (risk assessments of minors) and `Skierowania` (referrals), and more workbooks
/// (`rejestr_2025_2.xlsx`, ...) past `per_workbook` persons. The random stream is drawn in the
/// same order whatever the split.
pub(super) fn write(run: &mut SampleRun, per_workbook: usize) -> Result<(), GenerateError> {
    let people = run.people;
    let reported: Vec<usize> = (0..people.len())
        .filter(|&i| run.reports(i, "PL"))
        .collect();
    let chunks: Vec<&[usize]> = if reported.is_empty() {
        vec![&[]]
    } else {
        reported.chunks(per_workbook.max(1)).collect()
    };
    let last = chunks.len() - 1;
    let mut pl_no = 0;
    for (k, chunk) in chunks.into_iter().enumerate() {
        let wb = workbook(k);
        let mut cases = Writer::new(&format!("{wb}#Sprawy"), "PL-CP-01", "case", 2);
        let mut assessments = Writer::new(&format!("{wb}#Oceny ryzyka"), "PL-CP-01", "outcome", 2);
        let mut refs = Writer::new(&format!("{wb}#Skierowania"), "PL-CP-01", "referral", 2);
        for &i in chunk {
            let p = &people[i];
            pl_no += 1;
            let case = format!("{pl_no}/2025/OPS");
            push_case(run, &mut cases, i, p, &case);
            if p.minor_when_registered() {
                push_risk_assessments(run, &mut assessments, i, p, &case);
            }
            if run.rng.random_bool(0.5) {
                push_referral(run, &mut refs, (i, p), &case, pl_no);
            }
        }
        if k == last {
            push_bad_assessment(run, &mut assessments);
        }
        let sheets: [(&str, &[&str], &Writer); 3] = [
            ("Sprawy", CASE_HEADER, &cases),
            ("Oceny ryzyka", ASSESSMENT_HEADER, &assessments),
            ("Skierowania", REFERRAL_HEADER, &refs),
        ];
        write_workbook(run, &wb, sheets)?;
        run.done(cases);
        run.done(assessments);
        run.done(refs);
    }
    Ok(())
}

/// Pushes person `i`'s case row; the draws from the random stream happen in column order.
fn push_case(run: &mut SampleRun, cases: &mut Writer, i: usize, p: &Person, case: &str) {
    let rng = &mut run.rng;
    let l = &run.labels;
    let (v, g, f) = name_in_report(rng, p, false);
    let row = vec![
        case.to_string(),
        g,
        f,
        excel_date(p.birth),
        excel_date(p.registered),
        l.get("gender", "pl", p.gender),
        l.country("pl", p.citizenship),
        l.get(
            "victim_status",
            "pl",
            if rng.random_bool(0.5) {
                "identified"
            } else {
                "presumed"
            },
        ),
        l.get(
            "identified_by",
            "pl",
            pick_s(rng, &["police", "child_protection", "border_guard"]),
        ),
        l.many("exploitation", "pl", &p.exploitation, ", "),
        l.get("recruitment", "pl", p.recruitment),
        l.many("means_of_control", "pl", &p.control, ", "),
        l.country("pl", p.exploitation_country),
        (pick_s(rng, &["PL91", "PL84", "PL21"])).into(),
        if rng.random_bool(0.2) { "tak" } else { "nie" }.into(),
        l.get("migration_status", "pl", migration_status(p.citizenship)),
        "tak".into(),
    ];
    cases.push(row, Some((i, v)));
}

/// Poles are nationals, Ukrainians refugees, everyone else EU citizens.
fn migration_status(citizenship: &str) -> &'static str {
    if citizenship == "PL" {
        "national"
    } else if citizenship == "UA" {
        "refugee"
    } else {
        "eu_citizen"
    }
}

/// Pushes one to four risk assessments of a minor (intake, review, review, closure), 30 to 90
/// days apart, the risk mostly falling.
fn push_risk_assessments(
    run: &mut SampleRun,
    assessments: &mut Writer,
    i: usize,
    p: &Person,
    case: &str,
) {
    let mut risk = pick_s(&mut run.rng, &["high", "high", "medium"]);
    let mut d = p.registered;
    // One assessment per case, day and stage: a second review that the year's end pushes onto
    // the same day as the first is not written.
    let mut held = std::collections::HashSet::new();
    for stage in ["intake", "review", "review", "closure"]
        .iter()
        .take(run.rng.random_range(1..=4))
    {
        let rng = &mut run.rng;
        let l = &run.labels;
        let (v, g, f) = name_in_report(rng, p, false);
        let text_date = rng.random_bool(0.3);
        let row = vec![
            case.to_string(),
            g,
            f,
            if text_date {
                dmy(p.birth)
            } else {
                excel_date(p.birth)
            },
            excel_date(d),
            l.get("stage", "pl", stage),
            l.get("risk_level", "pl", risk),
            l.many(
                "indicators",
                "pl",
                &[pick_s(
                    rng,
                    &[
                        "missing_episodes",
                        "school_absence",
                        "online_risk",
                        "substance_misuse",
                    ],
                )],
                ", ",
            ),
            if rng.random_bool(0.8) { "tak" } else { "nie" }.into(),
        ];
        if held.insert((d, *stage)) {
            assessments.push(row, Some((i, v)));
        }
        risk = match risk {
            "high" => pick_s(rng, &["high", "medium", "medium"]),
            "medium" => pick_s(rng, &["medium", "low", "low"]),
            _ => pick_s(rng, &["low", "none"]),
        };
        d = (d + chrono::Duration::days(rng.random_range(30..90))).min(year_end());
    }
}

/// Pushes a referral of person `i`, sent within 20 days of registration and accepted.
fn push_referral(
    run: &mut SampleRun,
    refs: &mut Writer,
    (i, p): (usize, &Person),
    case: &str,
    pl_no: i32,
) {
    let rng = &mut run.rng;
    let l = &run.labels;
    let (v, g, f) = name_in_report(rng, p, false);
    let sent = (p.registered + chrono::Duration::days(rng.random_range(0..20))).min(year_end());
    let to = pick_s(rng, REFERRAL_ORGS);
    let row = vec![
        format!("SK-{pl_no}"),
        case.to_string(),
        g,
        f,
        excel_date(p.birth),
        l.get("referral_kind", "pl", "referral"),
        excel_date(sent),
        to.into(),
        l.get(
            "referral_reason",
            "pl",
            pick_s(rng, &["services", "protection", "relocation"]),
        ),
        l.get(
            "channel",
            "pl",
            pick_s(rng, &["email", "letter", "secure_platform"]),
        ),
        l.get("referral_status", "pl", "accepted"),
        excel_date((sent + chrono::Duration::days(rng.random_range(1..15))).min(year_end())),
    ];
    refs.push(row, Some((i, v)));
}

/// Planted bad row: a risk level that is not in the code list.
fn push_bad_assessment(run: &SampleRun, assessments: &mut Writer) {
    let p0 = run.first_person();
    assessments.push_bad(
        vec![
            "1/2025/OPS".into(),
            p0.given.clone(),
            p0.family.clone(),
            dmy(p0.birth),
            excel_date(p0.registered),
            run.labels.get("stage", "pl", "intake"),
            "bardzo wysokie".into(),
            String::new(),
            "tak".into(),
        ],
        "risk_level",
        "unknown_code",
    );
}

/// Writes the workbook, one sheet per (name, header, rows).
fn write_workbook(
    run: &SampleRun,
    path: &str,
    sheets: [(&str, &[&str], &Writer); 3],
) -> Result<(), GenerateError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    // A fixed creation time keeps the workbook byte-for-byte reproducible from the seed.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 1, 1).map_err(io("xlsx"))?;
    wb.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
    let date_fmt = Format::new().set_num_format("dd.mm.yyyy");
    for (name, header, w) in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(name).map_err(io("xlsx"))?;
        for (c, h) in header.iter().enumerate() {
            ws.write_string(0, c as u16, *h).map_err(io("xlsx"))?;
        }
        for (r, row) in w.rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                write_cell(ws, (r as u32 + 1, c as u16), v, &date_fmt)?;
            }
        }
    }
    wb.save(run.out.join(path)).map_err(io("xlsx"))?;
    Ok(())
}

/// Writes one cell: nothing if empty, a formatted Excel date if `D:`-prefixed, text otherwise.
fn write_cell(
    ws: &mut Worksheet,
    (row, col): (u32, u16),
    v: &str,
    date_fmt: &Format,
) -> Result<(), GenerateError> {
    if v.is_empty() {
        return Ok(());
    }
    if let Some(d) = v.strip_prefix("D:") {
        let nd = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(io("date"))?;
        let xd = rust_xlsxwriter::ExcelDateTime::from_ymd(
            nd.year() as u16,
            nd.month() as u8,
            nd.day() as u8,
        )
        .map_err(io("xlsx"))?;
        ws.write_datetime_with_format(row, col, &xd, date_fmt)
            .map_err(io("xlsx"))?;
    } else {
        ws.write_string(row, col, v).map_err(io("xlsx"))?;
    }
    Ok(())
}
