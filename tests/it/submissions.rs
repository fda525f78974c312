//! Submissions never lose data: records have keys; a submission upserts by key; a declared
//! snapshot removes exactly what it leaves out of its period; withdrawals remove exactly their
//! keys; the same file twice changes nothing; receipts and the ledger say what changed.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Env, all_files, stderr, stdout};

const HEADER: &str = "case_number,given_name,family_name,birth_date,registered_on,gender,status";

fn file(env: &Env, name: &str, rows: &[&str]) -> PathBuf {
    let p = env.path(name);
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn load(env: &Env, partner: &str, extra: &[&str], f: &Path) -> Output {
    let mut args = vec!["load", "--partner", partner, "--type", "case"];
    args.extend(extra);
    args.push(f.to_str().unwrap());
    env.tip(&args)
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

/// `SELECT ...` as CSV lines without the header.
fn rows(env: &Env, sql: &str) -> Vec<String> {
    ok(&env.tip(&["query", "--format", "csv", sql]))
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn count(env: &Env, sql: &str) -> u64 {
    rows(env, sql)[0].parse().unwrap()
}

const WEEK1: [&str; 3] = [
    "N1,Ona,Petraitytė,2010-01-02,2025-11-03,female,presumed",
    "N2,Jonas,Kazlauskas,2009-05-06,2025-11-04,male,presumed",
    "N3,Eglė,Šimkutė,2011-07-08,2025-11-05,female,identified",
];
const WEEK2: [&str; 3] = [
    "N4,Rūta,Jankauskaitė,2010-03-04,2025-11-10,female,presumed",
    "N5,Tomas,Vaitkus,2008-09-10,2025-11-11,male,identified",
    "N6,Ieva,Stankevičiūtė,2012-11-12,2025-11-12,female,presumed",
];

#[test]
fn weekly_increments_keep_every_case_and_corrections_replace() {
    let env = Env::new();
    let w1 = ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &file(&env, "week1.csv", &WEEK1),
    ));
    assert!(w1.contains("3 inserted, 0 updated, 0 removed"), "{w1}");
    let w2 = ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &file(&env, "week2.csv", &WEEK2),
    ));
    assert!(w2.contains("3 inserted, 0 updated, 0 removed"), "{w2}");
    assert_eq!(
        count(&env, "SELECT count(*) FROM cases"),
        6,
        "week 1 is kept"
    );

    // A late correction of one case: replaced, nothing else touched.
    let fix = file(
        &env,
        "fix.csv",
        &["N2,Jonas,Kazlauskas,2009-05-06,2025-11-04,male,identified"],
    );
    let f = ok(&load(&env, "LT-NGO-01", &[], &fix));
    assert!(f.contains("0 inserted, 1 updated, 0 removed"), "{f}");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 6);
    assert_eq!(
        rows(
            &env,
            "SELECT status, count(*) FROM cases GROUP BY status ORDER BY status"
        ),
        vec!["identified,3", "presumed,3"]
    );

    // The same file twice changes nothing, not even a version.
    let before = all_files(&env.lake);
    let again = ok(&load(&env, "LT-NGO-01", &[], &fix));
    assert!(
        again.contains("unchanged (already ingested as submission"),
        "{again}"
    );
    assert_eq!(all_files(&env.lake), before);

    // The ledger says what each submission changed.
    assert_eq!(
        rows(
            &env,
            "SELECT mode, rows_inserted, rows_updated, rows_removed FROM submissions ORDER BY ingested_at"
        ),
        vec!["upsert,3,0,0", "upsert,3,0,0", "upsert,0,1,0"]
    );
}

#[test]
fn two_rows_with_one_key_are_both_set_aside() {
    let env = Env::new();
    let f = file(
        &env,
        "dup.csv",
        &[
            "D1,Ona,Petraitytė,2010-01-02,2025-11-03,female,presumed",
            "D2,Jonas,Kazlauskas,2009-05-06,2025-11-04,male,presumed",
            "D1,Ona,Petraitytė,2010-01-02,2025-11-05,female,identified",
        ],
    );
    let o = ok(&load(&env, "LT-NGO-01", &[], &f));
    assert!(o.contains("3 rows read, 1 accepted, 2 quarantined"), "{o}");
    assert!(o.contains("row 2, field case_number: duplicate_key"), "{o}");
    assert!(o.contains("row 4, field case_number: duplicate_key"), "{o}");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 1);
}

#[test]
fn a_declared_snapshot_removes_exactly_what_it_leaves_out_of_its_period() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w2.csv", &WEEK2)));
    let october = file(
        &env,
        "oct.csv",
        &["O1,Greta,Paulauskaitė,2010-02-02,2025-10-20,female,presumed"],
    );
    ok(&load(&env, "LT-NGO-01", &[], &october));
    let latvia = file(
        &env,
        "lv.csv",
        &["L1,Anna,Bērziņa,2012-02-02,2025-11-05,female,identified"],
    );
    ok(&load(&env, "LV-POL-01", &[], &latvia));

    // November, complete: N1, N2 (corrected), N4, N5 and a new N7. N3 and N6 are gone.
    let november = file(
        &env,
        "november.csv",
        &[
            WEEK1[0],
            "N2,Jonas,Kazlauskas,2009-05-06,2025-11-04,male,identified",
            WEEK2[0],
            WEEK2[1],
            "N7,Lukas,Petrauskas,2011-04-04,2025-11-20,male,presumed",
        ],
    );
    let o = ok(&load(
        &env,
        "LT-NGO-01",
        &["--snapshot", "2025-11"],
        &november,
    ));
    assert!(o.contains("complete snapshot of 2025-11"), "{o}");
    assert!(o.contains("1 inserted, 4 updated, 2 removed"), "{o}");
    assert_eq!(
        rows(
            &env,
            "SELECT partner, period, count(*) FROM cases GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        vec![
            "LT-NGO-01,2025-10,1",
            "LT-NGO-01,2025-11,5",
            "LV-POL-01,2025-11,1"
        ]
    );
    // The same snapshot again changes nothing.
    let before = all_files(&env.lake);
    let again = ok(&load(
        &env,
        "LT-NGO-01",
        &["--snapshot", "2025-11"],
        &november,
    ));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(all_files(&env.lake), before);
    // The period is declared, never guessed: a bad period is refused.
    let o = load(&env, "LT-NGO-01", &["--snapshot", "November"], &november);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("YYYY-MM"), "{}", stderr(&o));
    assert_eq!(
        rows(
            &env,
            "SELECT snapshot_period, rows_removed FROM submissions WHERE mode = 'snapshot'"
        ),
        vec!["2025-11,2"]
    );
}

#[test]
fn a_snapshot_with_rows_set_aside_is_refused_whole() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    let before = all_files(&env.lake);
    let bad = file(
        &env,
        "bad.csv",
        &[
            WEEK1[0],
            "N2,Jonas,Kazlauskas,2009-05-06,2025-11-31,male,presumed",
        ],
    );
    let o = load(&env, "LT-NGO-01", &["--snapshot", "2025-11"], &bad);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("must have no rows set aside"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("rows 3"), "{}", stderr(&o));
    assert_eq!(all_files(&env.lake), before, "nothing committed");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 3);
}

#[test]
fn withdrawals_remove_exactly_the_withdrawn_keys() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    ok(&load(&env, "LV-POL-01", &[], &file(&env, "lv.csv", &WEEK1)));
    // Only the case numbers: a withdrawal reads the key fields alone.
    let w = env.path("withdraw.csv");
    std::fs::write(&w, "case_number\nN1\nN3\nX9\n").unwrap();
    let o = ok(&load(&env, "LT-NGO-01", &["--withdraw"], &w));
    assert!(o.contains("0 inserted, 0 updated, 2 removed"), "{o}");
    assert_eq!(
        rows(
            &env,
            "SELECT partner, count(*) FROM cases GROUP BY 1 ORDER BY 1"
        ),
        vec!["LT-NGO-01,1", "LV-POL-01,3"],
        "the same case numbers at another partner are other cases"
    );
    let before = all_files(&env.lake);
    let again = ok(&load(&env, "LT-NGO-01", &["--withdraw"], &w));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(all_files(&env.lake), before);
    assert_eq!(
        rows(
            &env,
            "SELECT mode, rows_removed FROM submissions WHERE mode = 'withdraw'"
        ),
        vec!["withdraw,2"]
    );
}
