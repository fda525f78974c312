//! The Lithuanian NGO (LT-NGO-01): cases and services, CSV with ';', in Windows-1257, Lithuanian
//! headers and labels, dates as `dd.mm.yyyy`.

use chrono::NaiveDate;
use rand::RngExt;

use super::output::{Writer, dmy, write_csv};
use super::people::{Person, date_between, name_in_report, pick_s, year_end};
use super::{GenerateError, SampleRun};

const CASE_HEADER: &[&str] = &[
    "Bylos Nr.",
    "Vardas",
    "Pavardė",
    "Gimimo data",
    "Asmens dokumento Nr.",
    "Dokumentą išdavusi šalis",
    "Telefonas",
    "Adresas",
    "Registravimo data",
    "Lytis",
    "Pilietybė",
    "Statusas",
    "Nustatė",
    "Išnaudojimo forma",
    "Verbavimo būdas",
    "Kontrolės priemonės",
    "Išnaudojimo šalis",
    "Apskritis",
    "Be palydos",
    "Migracinis statusas",
    "Sutikimas",
    "Pastabos",
];

const SERVICE_HEADER: &[&str] = &[
    "Bylos Nr.",
    "Vardas",
    "Pavardė",
    "Gimimo data",
    "Paslaugos data",
    "Paslaugos rūšis",
    "Užsiėmimų skaičius",
    "Valandos",
    "Gavėjas",
];

/// Writes `lt-ngo/bylos_2025.csv` (cases) and `lt-ngo/paslaugos_2025.csv` (services).
pub(super) fn write(run: &mut SampleRun) -> Result<(), GenerateError> {
    let mut cases = Writer::new("lt-ngo/bylos_2025.csv", "LT-NGO-01", "case", 2);
    let mut services = Writer::new("lt-ngo/paslaugos_2025.csv", "LT-NGO-01", "service", 2);
    let people = run.people;
    let mut case_no = 1000;
    for (i, p) in people.iter().enumerate() {
        if !run.reports(i, "LT") {
            continue;
        }
        case_no += 1;
        let case = format!("LT-{case_no}");
        let registered = push_case(run, &mut cases, i, p, &case);
        push_services(run, &mut services, (i, p), &case, registered);
    }
    push_bad_cases(run, &mut cases);
    write_csv(&run.path(&cases), CASE_HEADER, &cases.rows, b';', true)?;
    write_csv(
        &run.path(&services),
        SERVICE_HEADER,
        &services.rows,
        b';',
        true,
    )?;
    run.done(cases);
    run.done(services);
    Ok(())
}

/// The gender as the NGO writes it: `M` (moteris), `V` (vyras) or `nežinoma`.
fn gender_label(g: &str) -> String {
    match g {
        "female" => "M".to_string(),
        "male" => "V".to_string(),
        _ => "nežinoma".to_string(),
    }
}

/// Pushes person `i`'s case row and returns the date the NGO registered them: the person's own
/// registration date if the NGO is the primary partner, up to 60 days later otherwise.
fn push_case(
    run: &mut SampleRun,
    cases: &mut Writer,
    i: usize,
    p: &Person,
    case: &str,
) -> NaiveDate {
    let rng = &mut run.rng;
    let (v, g, f) = name_in_report(rng, p, false);
    let reg = if run.reporters[i][0] == "LT" {
        p.registered
    } else {
        date_between(rng, p.registered, p.registered + chrono::Duration::days(60)).min(year_end())
    };
    let status = if rng.random_bool(0.7) {
        "identified"
    } else {
        "presumed"
    };
    let row = case_row(run, p, case, (g, f), reg, status);
    cases.push(row, Some((i, v)));
    reg
}

/// A case row; the draws from the random stream happen in column order.
fn case_row(
    run: &mut SampleRun,
    p: &Person,
    case: &str,
    (g, f): (String, String),
    reg: NaiveDate,
    status: &str,
) -> Vec<String> {
    let rng = &mut run.rng;
    let l = &run.labels;
    vec![
        case.to_string(),
        g,
        f,
        dmy(p.birth),
        p.document.clone().unwrap_or_default(),
        if p.document.is_some() {
            l.country("lt", p.citizenship)
        } else {
            String::new()
        },
        format!("+3706{:07}", rng.random_range(0..10_000_000)),
        format!(
            "Gatvė {} - {}",
            rng.random_range(1..99),
            rng.random_range(1..40)
        ),
        dmy(reg),
        gender_label(p.gender),
        l.country("lt", p.citizenship),
        l.get("victim_status", "lt", status),
        l.get(
            "identified_by",
            "lt",
            pick_s(rng, &["police", "ngo", "child_protection", "border_guard"]),
        ),
        l.many("exploitation", "lt", &p.exploitation, ", "),
        l.get("recruitment", "lt", p.recruitment),
        l.many("means_of_control", "lt", &p.control, ", "),
        l.country("lt", p.exploitation_country),
        l.get(
            "region",
            "local",
            pick_s(rng, &["LT011", "LT022", "LT023", "LT026"]),
        ),
        if rng.random_bool(0.2) { "taip" } else { "ne" }.into(),
        l.get("migration_status", "lt", migration_status(p.citizenship)),
        "taip".into(),
        "Pastaba: vaikas papasakojo apie išnaudojimą".into(),
    ]
}

/// Lithuanians are nationals, Ukrainians refugees, everyone else EU citizens.
fn migration_status(citizenship: &str) -> &'static str {
    if citizenship == "LT" {
        "national"
    } else if citizenship == "UA" {
        "refugee"
    } else {
        "eu_citizen"
    }
}

/// Pushes zero to four service rows for person `i`, within 150 days of registration.
fn push_services(
    run: &mut SampleRun,
    services: &mut Writer,
    (i, p): (usize, &Person),
    case: &str,
    reg: NaiveDate,
) {
    let n_services = run.rng.random_range(0..=4);
    // A service log has one row per case, day and kind of service (two sessions that day are
    // one row with sessions = 2): a draw that repeats one is not written.
    let mut logged = std::collections::HashSet::new();
    for _ in 0..n_services {
        let rng = &mut run.rng;
        let l = &run.labels;
        let (v, g, f) = name_in_report(rng, p, false);
        let d = date_between(
            rng,
            reg,
            (reg + chrono::Duration::days(150)).min(year_end()),
        );
        let st = pick_s(
            rng,
            &[
                "psychological",
                "legal",
                "social",
                "shelter",
                "medical",
                "interpretation",
            ],
        );
        let row = vec![
            case.to_string(),
            g,
            f,
            dmy(p.birth),
            dmy(d),
            l.get("service_type", "lt", st),
            rng.random_range(1..=6).to_string(),
            format!(
                "{},{}",
                rng.random_range(1..8),
                [0, 5][rng.random_range(0..2)]
            ),
            l.get("recipient_role", "lt", "victim"),
        ];
        if logged.insert((d, st)) {
            services.push(row, Some((i, v)));
        }
    }
}

/// Planted bad rows: an unknown gender label and a date that does not exist.
fn push_bad_cases(run: &SampleRun, cases: &mut Writer) {
    let p0 = run.first_person();
    cases.push_bad(
        bad_case_row(run, "LT-9001", dmy(p0.registered), "Q"),
        "gender",
        "unknown_code",
    );
    cases.push_bad(
        bad_case_row(run, "LT-9002", "31.02.2025".into(), "M"),
        "registered_on",
        "impossible_date",
    );
}

/// A case row of the first person with only the required columns filled.
fn bad_case_row(run: &SampleRun, case: &str, registered: String, gender: &str) -> Vec<String> {
    let p0 = run.first_person();
    let mut row = vec![String::new(); 22];
    row[0] = case.into();
    row[1] = p0.given.clone();
    row[2] = p0.family.clone();
    row[3] = dmy(p0.birth);
    row[8] = registered;
    row[9] = gender.into();
    row[10] = "Lietuva".into();
    row[11] = run.labels.get("victim_status", "lt", "presumed");
    row[18] = "ne".into();
    row[20] = "taip".into();
    row
}
