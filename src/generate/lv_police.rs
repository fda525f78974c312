//! The Latvian police (LV-POL-01): cases, referrals and route events, NDJSON with Latvian keys
//! and labels, dates as ISO 8601, lists as JSON arrays.

use chrono::NaiveDate;
use rand::RngExt;

use super::output::{Writer, iso, write_ndjson};
use super::people::{Person, date_between, name_in_report, pick_s, year_end};
use super::{GenerateError, REFERRAL_ORGS, SampleRun};

const CASE_KEYS: &[&str] = &[
    "lietas_nr",
    "vards",
    "uzvards",
    "dzimsanas_datums",
    "pases_nr",
    "pases_valsts",
    "registrets",
    "dzimums",
    "pilsoniba",
    "statuss",
    "identificeja",
    "ekspluatacija",
    "vervesana",
    "kontrole",
    "ekspluatacijas_valsts",
    "regions",
    "bez_pavadibas",
    "migracijas_statuss",
    "piekrisana",
];

const REFERRAL_KEYS: &[&str] = &[
    "nosutijuma_nr",
    "lietas_nr",
    "vards",
    "uzvards",
    "dzimsanas_datums",
    "veids",
    "nosutits",
    "uz_iestadi",
    "iemesls",
    "kanals",
    "statuss",
    "atbildets",
];

const EVENT_KEYS: &[&str] = &[
    "lietas_nr",
    "notikuma_veids",
    "valsts",
    "regions",
    "datums",
    "kartas_nr",
];

/// Writes `lv-police/lietas_2025.ndjson` (cases), `nosutijumi_2025.ndjson` (referrals) and
/// `notikumi_2025.ndjson` (route events).
pub(super) fn write(run: &mut SampleRun) -> Result<(), GenerateError> {
    let mut cases = Writer::new("lv-police/lietas_2025.ndjson", "LV-POL-01", "case", 1);
    let mut refs = Writer::new(
        "lv-police/nosutijumi_2025.ndjson",
        "LV-POL-01",
        "referral",
        1,
    );
    let mut events = Writer::new("lv-police/notikumi_2025.ndjson", "LV-POL-01", "event", 1);
    let people = run.people;
    let mut lv_no = 500;
    for (i, p) in people.iter().enumerate() {
        if !run.reports(i, "LV") {
            continue;
        }
        lv_no += 1;
        let case = format!("VP-2025-{lv_no:05}");
        push_case(run, &mut cases, i, p, &case);
        push_referrals(run, &mut refs, (i, p), &case, lv_no);
        push_route(run, &mut events, p, &case);
    }
    push_bad_rows(run, &mut cases, &mut refs);
    let lists = ["ekspluatacija", "kontrole"];
    write_ndjson(&run.path(&cases), CASE_KEYS, &cases.rows, &lists)?;
    write_ndjson(&run.path(&refs), REFERRAL_KEYS, &refs.rows, &[])?;
    write_ndjson(&run.path(&events), EVENT_KEYS, &events.rows, &[])?;
    run.done(cases);
    run.done(refs);
    run.done(events);
    Ok(())
}

/// Pushes person `i`'s case row; the draws from the random stream happen in column order.
fn push_case(run: &mut SampleRun, cases: &mut Writer, i: usize, p: &Person, case: &str) {
    let rng = &mut run.rng;
    let l = &run.labels;
    let (v, g, f) = name_in_report(rng, p, true);
    let reg = p.registered;
    let labels_of = |list: &str, codes: &[&str]| {
        codes
            .iter()
            .map(|c| l.get(list, "lv", c))
            .collect::<Vec<_>>()
            .join("|")
    };
    let row = vec![
        case.to_string(),
        g,
        f,
        iso(p.birth),
        p.document.clone().unwrap_or_default(),
        if p.document.is_some() {
            p.citizenship.into()
        } else {
            String::new()
        },
        iso(reg),
        l.get("gender", "lv", p.gender),
        p.citizenship.into(),
        l.get(
            "victim_status",
            "lv",
            if rng.random_bool(0.6) {
                "identified"
            } else {
                "presumed"
            },
        ),
        l.get("identified_by", "lv", "police"),
        labels_of("exploitation", &p.exploitation),
        l.get("recruitment", "lv", p.recruitment),
        labels_of("means_of_control", &p.control),
        p.exploitation_country.into(),
        (pick_s(rng, &["LV006", "LV007", "LV005"])).into(),
        if rng.random_bool(0.15) {
            "true"
        } else {
            "false"
        }
        .into(),
        l.get(
            "migration_status",
            "lv",
            if p.citizenship == "LV" {
                "national"
            } else {
                "eu_citizen"
            },
        ),
        "true".into(),
    ];
    cases.push(row, Some((i, v)));
}

/// Pushes zero to two referrals of person `i`, sent within 30 days of registration.
fn push_referrals(
    run: &mut SampleRun,
    refs: &mut Writer,
    (i, p): (usize, &Person),
    case: &str,
    lv_no: i32,
) {
    let reg = p.registered;
    for k in 0..run.rng.random_range(0..=2) {
        let rng = &mut run.rng;
        let (v, g, f) = name_in_report(rng, p, true);
        let sent = date_between(rng, reg, (reg + chrono::Duration::days(30)).min(year_end()));
        let status = pick_s(
            rng,
            &[
                "accepted",
                "accepted",
                "acknowledged",
                "completed",
                "rejected",
                "no_response",
            ],
        );
        let responded = (status != "no_response")
            .then(|| sent + chrono::Duration::days(rng.random_range(0..21)));
        let mut row = vec![format!("NS-{lv_no}-{k}"), case.to_string(), g, f];
        row.extend(referral_columns(run, p, sent, status, responded));
        refs.push(row, Some((i, v)));
    }
}

/// The columns of a referral after the names; the draws happen in column order.
fn referral_columns(
    run: &mut SampleRun,
    p: &Person,
    sent: NaiveDate,
    status: &str,
    responded: Option<NaiveDate>,
) -> Vec<String> {
    let rng = &mut run.rng;
    let l = &run.labels;
    vec![
        iso(p.birth),
        l.get(
            "referral_kind",
            "lv",
            pick_s(
                rng,
                &[
                    "referral",
                    "referral",
                    "information_request",
                    "intelligence_report",
                    "alert",
                ],
            ),
        ),
        iso(sent),
        pick_s(rng, REFERRAL_ORGS).into(),
        l.get(
            "referral_reason",
            "lv",
            pick_s(rng, &["services", "protection", "investigation", "return"]),
        ),
        l.get(
            "channel",
            "lv",
            pick_s(rng, &["secure_platform", "email", "phone", "joint_team"]),
        ),
        l.get("referral_status", "lv", status),
        responded.map(iso).unwrap_or_default(),
    ]
}

/// Pushes the person's route: recruitment at home (month only), sometimes transit, exploitation,
/// identification in Latvia.
fn push_route(run: &mut SampleRun, events: &mut Writer, p: &Person, case: &str) {
    let rng = &mut run.rng;
    let reg = p.registered;
    let start = reg - chrono::Duration::days(rng.random_range(30..300));
    let mut legs: Vec<(&str, &str, String)> = vec![(
        "recruitment",
        p.citizenship,
        start.format("%Y-%m").to_string(),
    )];
    if rng.random_bool(0.5) {
        legs.push((
            "transit",
            pick_s(rng, &["PL", "LT", "EE"]),
            iso(start + chrono::Duration::days(10)),
        ));
    }
    legs.push((
        "exploitation",
        p.exploitation_country,
        iso(start + chrono::Duration::days(20)),
    ));
    legs.push(("identification", "LV", iso(reg)));
    for (s, (t, c, d)) in legs.into_iter().enumerate() {
        events.push(
            vec![
                case.to_string(),
                run.labels.get("event_type", "lv", t),
                c.into(),
                String::new(),
                d,
                (s + 1).to_string(),
            ],
            None,
        );
    }
}

/// Planted bad rows: a case without a status and a referral to an unknown organisation.
fn push_bad_rows(run: &SampleRun, cases: &mut Writer, refs: &mut Writer) {
    let p0 = run.first_person();
    let mut case = vec![String::new(); 19];
    case[0] = "VP-2025-99999".into();
    case[1] = p0.given.clone();
    case[2] = p0.family.clone();
    case[3] = iso(p0.birth);
    case[6] = iso(p0.registered);
    case[7] = "sieviete".into();
    case[8] = "LT".into();
    case[16] = "false".into();
    case[18] = "true".into();
    cases.push_bad(case, "status", "missing_required");
    let mut referral = vec![String::new(); 12];
    referral[0] = "NS-X".into();
    referral[1] = "VP-2025-00001".into();
    referral[2] = p0.given.clone();
    referral[3] = p0.family.clone();
    referral[4] = iso(p0.birth);
    referral[5] = "nosūtījums".into();
    referral[6] = "2025-05-05".into();
    referral[7] = "LV-XXX-99".into();
    refs.push_bad(referral, "to_org", "unknown_org");
}
