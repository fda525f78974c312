//! The Estonian victim-support service (EE-SVC-01): a service log and risk assessments, UTF-8
//! CSV with ',', Estonian headers and labels, dates as `dd.mm.yyyy`.

use rand::RngExt;

use super::output::{Writer, dmy, write_csv};
use super::people::{Person, date_between, name_in_report, pick_s, year_end};
use super::{GenerateError, SampleRun};

const SERVICE_HEADER: &[&str] = &[
    "juhtumi_nr",
    "eesnimi",
    "perekonnanimi",
    "sünniaeg",
    "kuupäev",
    "teenus",
    "kordi",
    "tunnid",
    "roll",
];

const ASSESSMENT_HEADER: &[&str] = &[
    "juhtumi_nr",
    "eesnimi",
    "perekonnanimi",
    "sünniaeg",
    "hindamise_kuupäev",
    "etapp",
    "riskitase",
    "näitajad",
    "kaasatud",
];

/// Writes `ee-services/teenused_2025.csv` (services) and `ee-services/hindamised_2025.csv`
/// (assessments of minors). The service sees Estonians, persons exploited in Estonia and about
/// a quarter of the other persons with Cyrillic names (from Ukraine), whoever registered them.
pub(super) fn write(run: &mut SampleRun) -> Result<(), GenerateError> {
    let mut services = Writer::new("ee-services/teenused_2025.csv", "EE-SVC-01", "service", 2);
    let mut assessments = Writer::new("ee-services/hindamised_2025.csv", "EE-SVC-01", "outcome", 2);
    let people = run.people;
    let mut ee_no = 0;
    for (i, p) in people.iter().enumerate() {
        let served = p.citizenship == "EE"
            || p.exploitation_country == "EE"
            || (p.cyr.is_some() && run.rng.random_bool(0.25));
        if !served {
            continue;
        }
        ee_no += 1;
        let case = format!("EE-{ee_no:04}");
        push_services(run, &mut services, i, p, &case);
        if p.minor_when_registered() {
            push_assessments(run, &mut assessments, i, p, &case);
        }
    }
    push_bad_service(run, &mut services);
    write_csv(
        &run.path(&services),
        SERVICE_HEADER,
        &services.rows,
        b',',
        false,
    )?;
    write_csv(
        &run.path(&assessments),
        ASSESSMENT_HEADER,
        &assessments.rows,
        b',',
        false,
    )?;
    run.done(services);
    run.done(assessments);
    Ok(())
}

/// Pushes one to five services of person `i`, within 120 days of registration.
fn push_services(run: &mut SampleRun, services: &mut Writer, i: usize, p: &Person, case: &str) {
    let reg = p.registered;
    // One row per case, day, kind of service and role (see the Lithuanian log).
    let mut logged = std::collections::HashSet::new();
    for _ in 0..run.rng.random_range(1..=5) {
        let rng = &mut run.rng;
        let l = &run.labels;
        let (v, g, f) = name_in_report(rng, p, true);
        let d = date_between(
            rng,
            reg,
            (reg + chrono::Duration::days(120)).min(year_end()),
        );
        let st = pick_s(
            rng,
            &[
                "psychological",
                "social",
                "shelter",
                "forensic_interview",
                "legal",
                "education",
            ],
        );
        let row = vec![
            case.to_string(),
            g,
            f,
            dmy(p.birth),
            dmy(d),
            l.get("service_type", "et", st),
            rng.random_range(1..=4).to_string(),
            format!(
                "{},{}",
                rng.random_range(0..6),
                [0, 5][rng.random_range(0..2)]
            ),
            l.get(
                "recipient_role",
                "et",
                if rng.random_bool(0.9) {
                    "victim"
                } else {
                    "witness"
                },
            ),
        ];
        if logged.insert((d, st, row[8].clone())) {
            services.push(row, Some((i, v)));
        }
    }
}

/// Pushes one to three assessments of a minor (intake, review, follow-up), 40 to 100 days
/// apart, the risk falling from high.
fn push_assessments(
    run: &mut SampleRun,
    assessments: &mut Writer,
    i: usize,
    p: &Person,
    case: &str,
) {
    let mut risk = "high";
    let mut d = p.registered;
    for stage in ["intake", "review", "follow_up"]
        .iter()
        .take(run.rng.random_range(1..=3))
    {
        let rng = &mut run.rng;
        let l = &run.labels;
        let (v, g, f) = name_in_report(rng, p, true);
        let indicator = pick_s(
            rng,
            &[
                "missing_episodes",
                "online_risk",
                "self_harm",
                "homelessness",
            ],
        );
        let row = vec![
            case.to_string(),
            g,
            f,
            dmy(p.birth),
            dmy(d),
            l.get("stage", "et", stage),
            l.get("risk_level", "et", risk),
            l.many("indicators", "et", &[indicator], ";"),
            if rng.random_bool(0.85) { "jah" } else { "ei" }.into(),
        ];
        assessments.push(row, Some((i, v)));
        risk = match risk {
            "high" => "medium",
            "medium" => pick_s(rng, &["low", "medium"]),
            _ => "low",
        };
        d = (d + chrono::Duration::days(rng.random_range(40..100))).min(year_end());
    }
}

/// Planted bad row: hours that are not a number.
fn push_bad_service(run: &SampleRun, services: &mut Writer) {
    let p0 = run.first_person();
    let l = &run.labels;
    services.push_bad(
        vec![
            "EE-0001".into(),
            p0.given.clone(),
            p0.family.clone(),
            dmy(p0.birth),
            dmy(p0.registered),
            l.get("service_type", "et", "social"),
            "1".into(),
            "pusteist".into(),
            l.get("recipient_role", "et", "victim"),
        ],
        "hours",
        "invalid_number",
    );
}
