//! Submissions never lose data: records have keys; a submission upserts by key; a declared
//! snapshot removes exactly what it leaves out of its period; withdrawals remove exactly their
//! keys; the same file twice changes nothing; receipts and the ledger say what changed.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Env, all_files, live_files, stderr, stdout};

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

/// `tip load` of `f` for LT-NGO-01 as a process of its own (to run beside others, or to kill).
fn load_command(env: &Env, f: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tip"));
    c.current_dir(crate::common::repo())
        .env_remove("TIP_KEY")
        .args(["--lake", env.lake.to_str().unwrap()])
        .args(["--key-file", env.key.to_str().unwrap()])
        .args(["load", "--partner", "LT-NGO-01", "--type", "case"])
        .arg(f);
    c
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

/// `SELECT count(...)` on the lake as it was at `as_of` (a lake version or a time).
fn count_as_of(env: &Env, as_of: &str, sql: &str) -> u64 {
    let out = ok(&env.tip(&["query", "--as-of", as_of, "--format", "csv", sql]));
    out.lines().nth(1).expect("a row").parse().unwrap()
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

/// Every `lake.compact_every`-th commit to a table compacts it (every 4th here): the files a
/// reader opens stay few however many submissions arrive — a submission adds one to every month
/// it touches — and compaction loses, duplicates and hides nothing: every case is there once,
/// a file already ingested is still recognised, a correction still replaces its case, and the
/// lake still reads as it was before the compactions.
#[test]
fn compaction_keeps_the_live_files_few_and_every_row() {
    let env = Env::new();
    let text = std::fs::read_to_string(crate::common::repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace("compact_every = 50", "compact_every = 4");
    let cfg = env.path("tip.toml");
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap();
    let submit = |name: &str, rows: &[String]| {
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let f = file(&env, name, &rows);
        let args = [
            "--config",
            cfg,
            "load",
            "--partner",
            "LT-NGO-01",
            "--type",
            "case",
        ];
        ok(&env.tip(&[&args[..], &[f.to_str().unwrap()]].concat()))
    };
    // Twelve weekly files, each with one case in each of three months.
    let week = |i: usize| -> Vec<String> {
        (1..=3)
            .map(|m| {
                format!(
                    "W{i}-{m},Ona,Petraitytė,2010-01-02,2025-0{m}-1{},female,presumed",
                    i % 10
                )
            })
            .collect()
    };
    let mut halfway = None;
    for i in 0..12 {
        let out = submit(&format!("w{i}.csv"), &week(i));
        assert!(out.contains("3 inserted, 0 updated, 0 removed"), "{out}");
        if i == 5 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            halfway = Some(chrono::Utc::now().to_rfc3339());
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
    }
    // Without compaction: 36 files (12 submissions x 3 months) and 12 ledger files.
    let cases = live_files(&env.lake, "cases");
    assert!(cases <= 12, "{cases} live files in cases");
    let ledger = live_files(&env.lake, "submissions");
    assert!(ledger <= 4, "{ledger} live files in the ledger");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 36);
    assert_eq!(
        count(&env, "SELECT count(DISTINCT record_key) FROM cases"),
        36
    );
    assert_eq!(count(&env, "SELECT count(*) FROM submissions"), 12);
    // The compacted ledger still recognises a file already ingested ...
    let again = submit("w3.csv", &week(3));
    assert!(
        again.contains("unchanged (already ingested as submission"),
        "{again}"
    );
    // ... a correction replaces its case in the compacted files ...
    let mut fix = week(0);
    fix.truncate(1);
    fix[0] = fix[0].replace("presumed", "identified");
    let f = submit("fix.csv", &fix);
    assert!(f.contains("0 inserted, 1 updated, 0 removed"), "{f}");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 36);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM cases WHERE status = 'identified'"
        ),
        1
    );
    // ... and time travel reads the lake as it was halfway, before most compactions.
    let halfway = halfway.unwrap();
    assert_eq!(
        count_as_of(&env, &halfway, "SELECT count(*) FROM cases"),
        18
    );
}

/// Time travel reaches back `lake.history_days` (400 days), not Delta's default of 30: no commit
/// deletes old log entries (only `tip maintain` does, at the configured window), so a lake
/// whose log is two months old still reads as it was after its first submission.
#[test]
fn commits_keep_log_entries_older_than_thirty_days() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w2.csv", &WEEK2)));
    // A checkpoint at the latest version: what Delta's cleanup keeps the log from.
    ok(&env.tip(&["maintain"]));
    let sixty_days_ago =
        std::time::SystemTime::now() - std::time::Duration::from_secs(60 * 24 * 3600);
    let logs: Vec<PathBuf> = all_files(&env.lake)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("_delta_log") && p.extension().is_some_and(|e| e == "json")
        })
        .collect();
    assert!(logs.len() > 10, "{logs:?}");
    for p in &logs {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(sixty_days_ago)
            .unwrap();
    }
    // Commits after the checkpoint (Delta's default would now delete the old entries) ...
    let fix = file(
        &env,
        "fix.csv",
        &["N2,Jonas,Kazlauskas,2009-05-06,2025-11-04,male,identified"],
    );
    ok(&load(&env, "LT-NGO-01", &[], &fix));
    assert!(
        logs.iter().all(|p| p.exists()),
        "a commit deleted old log entries"
    );
    // ... and the lake still reads as it was after the first submission.
    assert_eq!(count_as_of(&env, "1", "SELECT count(*) FROM cases"), 3);
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
fn a_snapshot_keeps_the_records_of_rows_set_aside_and_applies_the_rest() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    // N1 unchanged, N2 with a birth date that does not exist (its key, the case number, can
    // be read), N3 left out, N8 new, and two rows sharing the case number N9 (a key that can
    // be read, but neither row is taken).
    let november = file(
        &env,
        "november.csv",
        &[
            WEEK1[0],
            "N2,Jonas,Kazlauskas,2009-02-30,2025-11-04,male,identified",
            "N8,Lukas,Petrauskas,2011-04-04,2025-11-20,male,presumed",
            "N9,Aistė,Kairytė,2011-04-04,2025-11-21,female,presumed",
            "N9,Aistė,Kairytė,2011-04-04,2025-11-22,female,presumed",
        ],
    );
    let o = ok(&load(
        &env,
        "LT-NGO-01",
        &["--snapshot", "2025-11"],
        &november,
    ));
    assert!(o.contains("1 inserted, 1 updated, 1 removed"), "{o}");
    assert!(o.contains("1 records kept as they were"), "{o}");
    assert!(o.contains("3 quarantined"), "{o}");
    assert_eq!(
        rows(&env, "SELECT status FROM cases ORDER BY registered_on"),
        vec!["presumed", "presumed", "presumed"],
        "N1, N2 as it was (not the set-aside correction), N8; N3 removed"
    );
    assert_eq!(
        rows(
            &env,
            "SELECT source_row, reason FROM quarantine ORDER BY 1, 2"
        ),
        vec!["3,impossible_date", "5,duplicate_key", "6,duplicate_key"]
    );

    // A row whose key cannot be read might be any record: the snapshot is refused whole.
    let before = all_files(&env.lake);
    let keyless = file(
        &env,
        "keyless.csv",
        &[
            WEEK1[0],
            // No case number, and the person's birth date (the other key) does not exist.
            ",Jonas,Kazlauskas,2009-02-30,2025-11-04,male,presumed",
            // Too few fields: nothing of the row is read.
            "N5,Tomas",
            // No case number but a valid person: keyed by the person, taken.
            ",Rūta,Jankauskaitė,2010-03-04,2025-11-10,female,presumed",
        ],
    );
    let o = load(&env, "LT-NGO-01", &["--snapshot", "2025-11"], &keyless);
    assert!(!o.status.success());
    assert!(
        stderr(&o)
            .contains("2 of its rows were set aside without a key that can be read (rows 3, 4)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(all_files(&env.lake), before, "nothing committed");
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 3);
}

/// A register of `n` cases, one a row, every field but the status the same in each version.
fn register(env: &Env, name: &str, n: usize, status: &str) -> PathBuf {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "R{i},Given{},Family{},2010-01-{:02},2025-{:02}-{:02},female,{status}",
                i % 997,
                i % 1009,
                1 + i % 28,
                1 + i % 12,
                1 + i % 28
            )
        })
        .collect();
    let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
    file(env, name, &refs)
}

/// A partner's monthly full re-export: every record sent again, each one changed. The commit
/// replaced them by a predicate naming every key, which overflowed the stack and aborted `tip
/// load` at about 30 000 records.
#[test]
fn a_whole_register_sent_again_replaces_every_record() {
    const N: usize = 30_000;
    let env = Env::new();
    let first = ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &register(&env, "a.csv", N, "presumed"),
    ));
    assert!(
        first.contains(&format!("{N} inserted, 0 updated")),
        "{first}"
    );
    let again = ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &register(&env, "b.csv", N, "identified"),
    ));
    assert!(
        again.contains(&format!("0 inserted, {N} updated, 0 removed")),
        "{again}"
    );
    assert_eq!(
        rows(&env, "SELECT status, count(*) FROM cases GROUP BY 1"),
        vec![format!("identified,{N}")]
    );
    // The same register as a complete snapshot of every period, less its last 5 000 cases.
    let fewer = register(&env, "c.csv", N - 5_000, "presumed");
    let snap = ok(&load(&env, "LT-NGO-01", &["--snapshot", "all"], &fewer));
    assert!(
        snap.contains(&format!("0 inserted, {} updated, 5000 removed", N - 5_000)),
        "{snap}"
    );
    // Then 20 000 of them withdrawn.
    let w = env.path("withdraw.csv");
    let ids: String = (0..20_000).map(|i| format!("R{i}\n")).collect();
    std::fs::write(&w, format!("case_number\n{ids}")).unwrap();
    let o = ok(&load(&env, "LT-NGO-01", &["--withdraw"], &w));
    assert!(o.contains("20000 removed"), "{o}");
    assert_eq!(
        rows(
            &env,
            "SELECT status, count(*), min(case_id) IS NOT NULL FROM cases GROUP BY 1"
        ),
        vec!["presumed,5000,true"]
    );
}

/// SIGKILL at random moments while a 30 000-row register is sent again and again: after every
/// kill the lake is readable and holds one whole version of the register, never a mix.
#[test]
fn killed_resubmissions_leave_one_whole_version() {
    use rand::{RngExt, SeedableRng};
    const N: usize = 30_000;
    const KILLS: usize = 8;
    let env = Env::new();
    // Four versions, each with another status and gender: consecutive tries send different
    // files (a file the lake already holds would return at once as unchanged).
    let versions: Vec<PathBuf> = [
        ("presumed", "female"),
        ("identified", "female"),
        ("presumed", "male"),
        ("identified", "male"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (status, gender))| {
        let p = register(&env, &format!("v{i}.csv"), N, status);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace(",female,", &format!(",{gender},"));
        std::fs::write(&p, text).unwrap();
        p
    })
    .collect();
    let spawn = |f: &Path| {
        load_command(&env, f)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let t0 = std::time::Instant::now();
    assert!(spawn(&versions[0]).wait().unwrap().success());
    let t1 = std::time::Instant::now();
    assert!(spawn(&versions[1]).wait().unwrap().success());
    let span = t1.elapsed().max(t1 - t0).as_millis() as u64 + 50;
    let whole = || {
        let r = rows(
            &env,
            "SELECT count(*), count(DISTINCT status || gender) FROM cases",
        );
        assert_eq!(
            r,
            vec![format!("{N},1")],
            "one whole version of the register"
        );
    };
    whole();
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(5);
    let (mut kills, mut tries) = (0, 0);
    while kills < KILLS && tries < 40 {
        tries += 1;
        let mut child = spawn(&versions[tries % 4]);
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..span)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
        whole();
    }
    assert!(kills >= KILLS, "only {kills} kills landed in {tries} tries");
    // A new export after the kills replaces every record. (A file sent before is recognised
    // as already submitted and changes nothing, so the last one is new.)
    let last = register(&env, "last.csv", N, "identified");
    let text = std::fs::read_to_string(&last)
        .unwrap()
        .replace(",female,", ",unknown,");
    std::fs::write(&last, text).unwrap();
    ok(&load(&env, "LT-NGO-01", &[], &last));
    assert_eq!(
        rows(
            &env,
            "SELECT status, gender, count(*) FROM cases GROUP BY 1, 2"
        ),
        vec![format!("identified,unknown,{N}")]
    );
}

/// Four large re-submissions of one partner's records at once: each replaces its records with
/// a row test of its keys, which the Delta conflict checker cannot read back; a commit that
/// lost the race is counted and written again, never refused or doubled.
#[test]
fn racing_large_resubmissions_all_land() {
    const N: usize = 12_000;
    let env = Env::new();
    ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &register(&env, "all.csv", N, "presumed"),
    ));
    // Four slices of the register, each sent again with a new status.
    let slices: Vec<PathBuf> = (0..4)
        .map(|s| {
            let all = register(&env, &format!("all-{s}.csv"), N, "identified");
            let text = std::fs::read_to_string(&all).unwrap();
            let mut lines = text.lines();
            let mut out = format!("{}\n", lines.next().unwrap());
            for (i, l) in lines.enumerate() {
                if i % 4 == s {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            std::fs::write(&all, out).unwrap();
            all
        })
        .collect();
    let children: Vec<_> = slices
        .iter()
        .map(|f| {
            load_command(&env, f)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        let out = ok(&o);
        assert!(
            out.contains(&format!("0 inserted, {} updated", N / 4)),
            "{out}"
        );
    }
    assert_eq!(
        rows(&env, "SELECT status, count(*) FROM cases GROUP BY 1"),
        vec![format!("identified,{N}")]
    );
    let ledger = rows(
        &env,
        "SELECT submission_id, source_sha256, rows_inserted, rows_updated, table_version \
         FROM submissions ORDER BY ingested_at",
    );
    assert_eq!(ledger.len(), 5, "{ledger:#?}");
}

/// A ledger row written a second time for the same submission (a starting writer restored it
/// from the data commit while the writer that made the commit was about to write it) is kept
/// once: four racing loads left five ledger rows for four submissions.
#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_row_written_twice_is_kept_once() {
    let env = Env::new();
    ok(&load(&env, "LT-NGO-01", &[], &file(&env, "w1.csv", &WEEK1)));
    let sha = rows(&env, "SELECT source_sha256 FROM submissions")[0].clone();
    let lake = tip::lake::Lake::open(env.lake.to_str().unwrap()).unwrap();
    let row = lake
        .find_submission("LT-NGO-01", "case", &sha, "upsert", None)
        .await
        .unwrap()
        .expect("the ledger row");
    let first = rows(&env, "SELECT table_version FROM submissions");
    let again = lake.record_submission(&row).await.unwrap();
    assert!(again >= 0);
    assert_eq!(count(&env, "SELECT count(*) FROM submissions"), 1);
    assert_eq!(rows(&env, "SELECT table_version FROM submissions"), first);
}

/// A file edited on two systems (CRLF and LF lines alternate) is read, and its rows are
/// numbered by CSV line in the summary and in the quarantine, as the partner sees them.
#[test]
fn mixed_line_ends_are_read_and_rows_are_numbered_by_line() {
    let env = Env::new();
    let p = env.path("mixed.csv");
    let text = format!(
        "{HEADER}\r\n{}\n{}\r\n{}\n",
        WEEK1[0], "N2,Jonas,Kazlauskas,2009-02-30,2025-11-04,male,presumed", WEEK1[2]
    );
    std::fs::write(&p, text).unwrap();
    let o = ok(&load(&env, "LT-NGO-01", &[], &p));
    assert!(o.contains("2 inserted"), "{o}");
    assert!(o.contains("row 3"), "{o}");
    assert_eq!(
        rows(&env, "SELECT source_row, reason FROM quarantine"),
        vec!["3,impossible_date"]
    );
    assert_eq!(
        rows(&env, "SELECT source_row FROM cases ORDER BY 1"),
        vec!["2", "4"]
    );
}

/// Two partners of one country share the files of each month once they are compacted. A
/// correction, a snapshot and a withdrawal of one partner remove those files and write again
/// exactly the rows they do not replace: the other partner's rows and the untouched keys.
#[test]
fn a_submission_keeps_every_row_it_does_not_replace_in_shared_files() {
    let env = Env::new();
    let register = |name: &str, prefix: &str, n: usize, status: &str| {
        let rows: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "{prefix}{i},Given{i},Family{i},2010-01-{:02},2025-{:02}-{:02},female,{status}",
                    1 + i % 28,
                    1 + i % 12,
                    1 + i % 28
                )
            })
            .collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        file(&env, name, &refs)
    };
    ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &register("ngo.csv", "N", 300, "presumed"),
    ));
    ok(&load(
        &env,
        "LT-POL-01",
        &[],
        &register("pol.csv", "P", 240, "presumed"),
    ));
    ok(&env.tip(&["maintain"]));
    // Twelve months, both partners in each: one file per month holds both partners' rows.
    assert_eq!(live_files(&env.lake, "cases"), 12);
    let police = "SELECT record_key, status, period, case_id FROM cases \
                  WHERE partner = 'LT-POL-01' ORDER BY 1";
    let before = rows(&env, police);
    assert_eq!(before.len(), 240);

    // A correction of 120 of the NGO's 300 cases, in every month.
    let o = ok(&load(
        &env,
        "LT-NGO-01",
        &[],
        &register("fix.csv", "N", 120, "identified"),
    ));
    assert!(o.contains("0 inserted, 120 updated, 0 removed"), "{o}");
    assert_eq!(
        rows(
            &env,
            "SELECT partner, status, count(*) FROM cases GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        vec![
            "LT-NGO-01,identified,120",
            "LT-NGO-01,presumed,180",
            "LT-POL-01,presumed,240"
        ]
    );
    assert_eq!(rows(&env, police), before);
    assert_eq!(
        count(&env, "SELECT count(DISTINCT record_key) FROM cases"),
        540
    );

    // A complete snapshot of March from the NGO, with one case only: its other March cases go.
    let march = file(
        &env,
        "march.csv",
        &["N2,Given2,Family2,2010-01-03,2025-03-03,female,identified"],
    );
    let o = ok(&load(&env, "LT-NGO-01", &["--snapshot", "2025-03"], &march));
    assert!(o.contains("0 inserted, 1 updated, 24 removed"), "{o}");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM cases WHERE partner = 'LT-NGO-01' AND period = '2025-03'"
        ),
        1
    );
    assert_eq!(rows(&env, police), before);

    // A withdrawal of 30 NGO cases (none of March but N2).
    let w = env.path("withdraw.csv");
    let ids: String = (100..130).map(|i| format!("N{i}\n")).collect();
    std::fs::write(&w, format!("case_number\n{ids}")).unwrap();
    let o = ok(&load(&env, "LT-NGO-01", &["--withdraw"], &w));
    assert!(o.contains("0 inserted, 0 updated, 28 removed"), "{o}");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM cases WHERE partner = 'LT-NGO-01'"
        ),
        300 - 24 - (100..130).filter(|i| i % 12 != 2).count() as u64
    );
    assert_eq!(rows(&env, police), before);
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

/// Kills `tip load` with SIGKILL at many moments across quarantine, data commit and ledger;
/// after every kill the lake is readable and each file's records are there whole or not at all;
/// after re-running every file the counts are exact and no submission is recorded twice.
#[test]
fn killed_loads_lose_nothing_and_duplicate_nothing() {
    use rand::{RngExt, SeedableRng};
    const ROWS: usize = 40;
    const KILLS: usize = 30;
    let env = Env::new();
    // File f registers its cases on day f (one day each) and has one bad row (a day that does
    // not exist), so each submission writes quarantine rows too.
    let make = |f: usize| {
        let day =
            chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(f as i64);
        let rows: Vec<String> = (0..ROWS)
            .map(|r| {
                let on = if r == 1 {
                    "2025-02-30".to_string()
                } else {
                    day.to_string()
                };
                format!("K{f}-{r},Name{r},Family{f},2010-01-01,{on},female,presumed")
            })
            .collect();
        let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
        file(&env, &format!("k{f}.csv"), &refs)
    };
    let spawn = |f: &Path| {
        load_command(&env, f)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let whole = |env: &Env| {
        // Readable, and per file (one registration day each) all of its rows or none.
        for line in rows(env, "SELECT registered_on, count(*) FROM cases GROUP BY 1") {
            let n: usize = line.split(',').nth(1).unwrap().parse().unwrap();
            assert_eq!(n, ROWS - 1, "a partial submission is visible: {line}");
        }
    };
    // How long one load takes here, to kill within it.
    let mut files = vec![make(0)];
    let t0 = std::time::Instant::now();
    assert!(spawn(&files[0]).wait().unwrap().success());
    let span = t0.elapsed().as_millis() as u64 + 50;
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(11);
    let mut kills = 0;
    while kills < KILLS && files.len() < 200 {
        let f = make(files.len());
        files.push(f.clone());
        // Some files are tried twice: a kill may hit the repair of the first attempt.
        for _ in 0..1 + (files.len() % 3 == 0) as usize {
            let mut child = spawn(&f);
            std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..span)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
            child.wait().unwrap();
            whole(&env);
        }
    }
    assert!(kills >= KILLS, "only {kills} kills landed");
    for f in &files {
        ok(&load(&env, "LT-NGO-01", &[], f));
    }
    whole(&env);
    let n = files.len();
    assert_eq!(
        count(&env, "SELECT count(*) FROM cases") as usize,
        n * (ROWS - 1)
    );
    assert_eq!(
        rows(
            &env,
            "SELECT count(*), count(DISTINCT source_sha256) FROM submissions"
        ),
        vec![format!("{n},{n}")],
        "one ledger row per file"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM quarantine") as usize,
        n,
        "each file's one bad row, once"
    );
    eprintln!("killed_loads: {kills} kills over {n} files");
}

/// A crash after the data commit and before the ledger row: the next writer restores the
/// ledger row from the data commit's metadata, and the same file is then recognised.
#[test]
fn a_lost_ledger_row_is_restored_from_the_data_commit() {
    let env = Env::new();
    let f = file(&env, "w1.csv", &WEEK1);
    ok(&load(&env, "LT-NGO-01", &[], &f));
    // Undo the ledger append: remove the ledger's newest commit, as if the process had died
    // just before writing it.
    let log = env.lake.join("submissions/_delta_log");
    let newest = all_files(&log)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .unwrap();
    std::fs::remove_file(&newest).unwrap();
    assert_eq!(count(&env, "SELECT count(*) FROM submissions"), 0);
    assert_eq!(
        count(&env, "SELECT count(*) FROM cases"),
        3,
        "the data commit is whole"
    );
    let again = ok(&load(&env, "LT-NGO-01", &[], &f));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(
        rows(
            &env,
            "SELECT mode, rows_read, rows_accepted, rows_inserted FROM submissions"
        ),
        vec!["upsert,3,3,3"]
    );
    assert_eq!(count(&env, "SELECT count(*) FROM cases"), 3);
}

/// `tip maintain`: records past their retention go, small files are compacted, and time travel
/// beyond `lake.history_days` fails with a message that says so (a reproduction included).
#[test]
fn maintain_keeps_retention_and_the_time_travel_window() {
    let env = Env::new();
    let text = std::fs::read_to_string(crate::common::repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace("history_days = 400", "history_days = 0")
        .replace("retention_years = {}", "retention_years = { outcome = 1 }")
        .replace("\".tip/extracts\"", &format!("{:?}", env.path("extracts")));
    let cfg = env.path("tip.toml");
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap();
    ok(&env.tip(&["--config", cfg, "ingest"]));
    ok(&env.tip(&[
        "--config",
        cfg,
        "load",
        "--partner",
        "LT-NGO-01",
        "--type",
        "case",
        file(&env, "w1.csv", &WEEK1).to_str().unwrap(),
    ]));
    let out = env.path("x");
    ok(&env.tip(&[
        "--config",
        cfg,
        "extract",
        "--name",
        "regional-monthly",
        "--month",
        "2025-06",
        "--out",
        out.to_str().unwrap(),
    ]));
    let outcomes_before = count(&env, "SELECT count(*) FROM outcomes");
    let cases_before = count(&env, "SELECT count(*) FROM cases");
    assert!(outcomes_before > 0);
    let files_before = all_files(&env.lake.join("cases")).len();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let m = ok(&env.tip(&["--config", cfg, "maintain"]));
    assert!(
        m.contains("outcome: ") && m.contains("records past their retention deleted"),
        "{m}"
    );
    // The sample's assessments are all from 2025, more than a year before today.
    let cutoff = chrono::Utc::now() - chrono::Duration::days(366);
    let old = count(
        &env,
        &format!(
            "SELECT count(*) FROM outcomes WHERE period < '{}'",
            cutoff.format("%Y-%m")
        ),
    );
    assert_eq!(old, 0);
    assert!(
        all_files(&env.lake.join("cases")).len() < files_before,
        "compacted and vacuumed"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM cases"),
        cases_before,
        "cases have no retention"
    );
    // Outside the window: refused with the reason.
    let o = env.tip(&[
        "--config",
        cfg,
        "query",
        "--as-of",
        "1",
        "SELECT count(*) FROM cases",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("time-travel window"), "{}", stderr(&o));
    let o = env.tip(&[
        "--config",
        cfg,
        "extract",
        "--name",
        "regional-monthly",
        "--month",
        "2025-06",
        "--out",
        env.path("y").to_str().unwrap(),
        "--reproduce",
        out.join("manifest.json").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("time-travel window"), "{}", stderr(&o));
}
