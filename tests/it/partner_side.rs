//! Partner-side pseudonymisation: `tip pseudonymise` at the partner, then `tip load` centrally,
//! gives the same lake rows as loading the raw file centrally; a file made with another key is
//! refused.

use crate::common::{Env, stderr, stdout};

const RAW: &str = "case_number,given_name,family_name,birth_date,document_number,document_country,phone,registered_on,gender,citizenship,status,exploitation,region\n\
LT-1,Žydrūnė,Šimkutė,2011-03-04,AB123456,LT,+37060000000,2025-02-03,female,LT,identified,sexual;online_sexual,LT011\n\
LT-2,Олександр,Шевченко,2009-12-31,,,,2025-02-10,male,UA,presumed,labour,\n\
LT-3,Jonas,,2010-01-01,,,,2025-02-11,male,LT,presumed,begging,\n\
LT-4,Eglė,Kazlauskaitė,2012-05-06,,,,2025-02-30,female,LT,identified,sexual,\n";

const COMPARE: &str = "SELECT person_id, document_id, case_id, registered_on, gender, age, age_band, is_minor, citizenship, status, \
    exploitation, region, partner, reporting_country, period, source_row, key_version, schema_version, imputed_fields \
    FROM cases ORDER BY source_row";

#[test]
fn pseudonymised_at_the_partner_equals_central() {
    let env = Env::new();
    let raw = env.path("cases.csv");
    std::fs::write(&raw, RAW).unwrap();

    // Central: the raw file.
    let central = env.path("central");
    let out = env.load_on(&central, "LT-NGO-01", "case", &raw);
    assert!(out.status.success(), "{}", stderr(&out));

    // Partner side: pseudonymise locally, then send only the output.
    let pseud = env.path("cases.pseudonymised.csv");
    let out = env.tip_on(
        &env.path("partner-lake"),
        &[
            "pseudonymise",
            "--partner",
            "LT-NGO-01",
            "--type",
            "case",
            raw.to_str().unwrap(),
            pseud.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 rows pseudonymised"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("cases.csv row 5, field registered_on: impossible_date"),
        "{}",
        stdout(&out)
    );
    let text = std::fs::read_to_string(&pseud).unwrap();
    for raw_value in [
        "Žydrūnė",
        "Šimkutė",
        "zydrune",
        "Шевченко",
        "shevchenko",
        "2011-03-04",
        "AB123456",
        "+3706",
        "LT-1,",
    ] {
        assert!(!text.contains(raw_value), "{raw_value} left the partner");
    }
    assert!(
        text.starts_with("source_row,case_id,person_id,document_id,"),
        "{text}"
    );

    let partner_lake = env.path("via-partner");
    let out = env.load_on(&partner_lake, "LT-NGO-01", "case", &pseud);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("3 accepted, 0 quarantined"),
        "{}",
        stdout(&out)
    );

    let a = env.tip_on(&central, &["query", "--format", "csv", COMPARE]);
    let b = env.tip_on(&partner_lake, &["query", "--format", "csv", COMPARE]);
    assert!(a.status.success() && b.status.success());
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(stdout(&a).lines().count(), 4, "{}", stdout(&a));
    // The row without a family name cannot be linked: no person_id, but a case_id.
    assert!(
        stdout(&a).lines().nth(3).unwrap().starts_with(','),
        "{}",
        stdout(&a)
    );

    // A file pseudonymised with another key is refused whole.
    let other = Env::new();
    let out = other.tip(&[
        "load",
        "--partner",
        "LT-NGO-01",
        "--type",
        "case",
        pseud.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("different key"), "{}", stderr(&out));
    let n = other.tip(&[
        "query",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM cases",
    ]);
    assert_eq!(stdout(&n), "n\n0\n");
}
