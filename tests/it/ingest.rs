//! Ingestion end to end: sample data against the generator's ground truth, idempotence,
//! atomic resubmission, whole-file rejection.

use std::collections::BTreeMap;

use tip::generate::Truth;
use tip::ingest::{Channel, FileStatus, Mode, Submission};
use tip::mapping::Mapping;
use tip::source::Format;

use crate::common::{Env, repo, scalar, stderr, stdout};

fn truth() -> Truth {
    let text = std::fs::read_to_string(repo().join("sample-data/ground-truth.json"))
        .expect("ground truth");
    serde_json::from_str(&text).expect("ground truth json")
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_data_matches_ground_truth_and_reingest_is_a_noop() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let reports = ctx.run_pipelines(&[]).await.expect("ingest");
    let truth = truth();

    // Every truth file has exactly one report, with its accepted rows and its planted bad rows.
    let mut by_key: BTreeMap<(String, String), &tip::ingest::FileReport> = BTreeMap::new();
    for p in &reports {
        for f in &p.files {
            assert_eq!(f.status, FileStatus::Committed, "{} {}", p.name, f.file);
            by_key.insert((p.partner.clone(), f.record_type.clone()), f);
        }
    }
    assert_eq!(by_key.len(), truth.files.len());
    let mut expected_per_type: BTreeMap<String, u64> = BTreeMap::new();
    for tf in &truth.files {
        let r = by_key
            .get(&(tf.partner.clone(), tf.record_type.clone()))
            .unwrap_or_else(|| panic!("no report for {}", tf.path));
        let good = tf.rows - tf.bad_rows.len() as u64;
        assert_eq!(r.rows_read, tf.rows, "{} rows read", tf.path);
        assert_eq!(r.rows_accepted, good, "{} rows accepted", tf.path);
        let got: Vec<(u64, String, String)> = r
            .issues
            .iter()
            .map(|i| (i.row, i.field.clone(), i.reason.to_string()))
            .collect();
        let want: Vec<(u64, String, String)> = tf
            .bad_rows
            .iter()
            .map(|b| (b.row, b.field.clone(), b.reason.clone()))
            .collect();
        assert_eq!(got, want, "{} quarantine", tf.path);
        *expected_per_type.entry(tf.record_type.clone()).or_default() += good;
    }
    let planted: usize = truth.files.iter().map(|f| f.bad_rows.len()).sum();
    assert!(planted >= 6, "a handful of planted bad rows");
    let reasons: std::collections::BTreeSet<&str> = truth
        .files
        .iter()
        .flat_map(|f| f.bad_rows.iter().map(|b| b.reason.as_str()))
        .collect();
    for r in [
        "unknown_code",
        "impossible_date",
        "missing_required",
        "invalid_number",
    ] {
        assert!(reasons.contains(r), "planted {r}");
    }

    // The lake holds exactly the accepted rows.
    for (t, table) in [
        ("case", "cases"),
        ("service", "services"),
        ("referral", "referrals"),
        ("event", "events"),
        ("outcome", "outcomes"),
    ] {
        let n = scalar(&ctx, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(n as u64, expected_per_type[t], "{table}");
    }
    assert_eq!(
        scalar(&ctx, "SELECT count(*) FROM quarantine").await as usize,
        planted
    );
    assert_eq!(
        scalar(&ctx, "SELECT count(*) FROM submissions").await as usize,
        truth.files.len()
    );
    // Provenance on every row; cross-border referrals derived from the registry.
    assert_eq!(
        scalar(&ctx, "SELECT count(*) FROM cases WHERE key_version IS NULL OR source_sha256 IS NULL OR submission_id IS NULL OR partner IS NULL").await,
        0
    );
    assert!(scalar(&ctx, "SELECT count(*) FROM referrals WHERE cross_border").await > 0);
    // The same children are linked across partners.
    assert!(
        scalar(&ctx, "SELECT count(*) FROM (SELECT person_id FROM cases WHERE person_id IS NOT NULL GROUP BY person_id HAVING count(DISTINCT partner) > 1)").await
            > 10
    );
    // HTCDS rows took the submission date, and say so.
    assert!(
        scalar(&ctx, "SELECT count(*) FROM cases WHERE partner = 'NO-NGO-01' AND imputed_fields = 'registered_on'").await
            > 0
    );

    // Re-ingest: nothing changes, not even a Delta version.
    let before = ctx
        .lake
        .versions(&crate::common::table_names(&ctx))
        .await
        .unwrap();
    let again = ctx.run_pipelines(&[]).await.expect("re-ingest");
    for p in &again {
        for f in &p.files {
            assert_eq!(f.status, FileStatus::Unchanged, "{}", f.file);
        }
    }
    let after = ctx
        .lake
        .versions(&crate::common::table_names(&ctx))
        .await
        .unwrap();
    assert_eq!(before, after);
}

/// The committed sample data is exactly what `tip generate` makes from its seed.
#[test]
fn sample_data_is_reproducible_from_the_generator() {
    let dir = tempfile::tempdir().unwrap();
    let truth = truth();
    let catalog = tip::schema::Catalog::load(&repo().join("schemas")).unwrap();
    tip::generate::generate_with(dir.path(), truth.persons, truth.seed, &catalog).unwrap();
    let committed = repo().join("sample-data");
    for f in crate::common::all_files(dir.path()) {
        let rel = f.strip_prefix(dir.path()).unwrap();
        let a = std::fs::read(&f).unwrap();
        let b = std::fs::read(committed.join(rel)).unwrap_or_default();
        assert!(
            a == b,
            "sample-data/{} differs from `tip generate --seed {}`",
            rel.display(),
            truth.seed
        );
    }
}

/// A generated register too large for one sheet is written as several workbooks (a sheet holds
/// at most 1 048 576 rows): the pipelines read them all, and the lake holds the same rows as from
/// one workbook. Run with small limits, the same code paths as at ten million rows.
#[test]
fn a_register_split_across_workbooks_ingests_the_same_rows() {
    let catalog = tip::schema::Catalog::load(&repo().join("schemas")).unwrap();
    let env = Env::new();
    let split = tip::generate::Split {
        pl_persons_per_workbook: 40,
        htcds_rows_per_file: 60,
    };
    let mut answers = Vec::new();
    for (name, split) in [("whole", tip::generate::Split::default()), ("split", split)] {
        let hub = env.path(name);
        std::fs::create_dir_all(&hub).unwrap();
        for link in ["schemas", "pipelines"] {
            std::os::unix::fs::symlink(repo().join(link), hub.join(link)).unwrap();
        }
        let out = hub.join("sample-data");
        let truth = tip::generate::generate_split(&out, 300, 11, &catalog, split).unwrap();
        let workbooks = |dir: &str| {
            truth
                .files
                .iter()
                .filter(|f| f.path.starts_with(dir))
                .map(|f| f.path.split('#').next().unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let (pl, no) = (workbooks("pl-child-protection/"), workbooks("no-ngo/"));
        if name == "whole" {
            assert_eq!((pl.len(), no.len()), (1, 1), "{pl:?} {no:?}");
        } else {
            assert!(pl.len() >= 2 && no.len() >= 2, "split: {pl:?} {no:?}");
            assert!(
                pl.contains("pl-child-protection/rejestr_2025_2.xlsx"),
                "{pl:?}"
            );
            for f in truth.files.iter().filter(|f| f.path.contains(".xlsx")) {
                assert!(f.rows <= 60 * 3, "{}: {} rows", f.path, f.rows);
            }
        }
        let tip = |args: &[&str]| {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_tip"))
                .current_dir(&hub)
                .env_remove("TIP_KEY")
                .arg("--lake")
                .arg(hub.join("lake"))
                .arg("--key-file")
                .arg(&env.key)
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "{name}: {}{}", stdout(&o), stderr(&o));
            stdout(&o)
        };
        let ingested = tip(&[
            "ingest",
            "--pipeline",
            "pl-child-protection",
            "--pipeline",
            "no-htcds",
        ]);
        if name == "split" {
            assert!(ingested.contains("rejestr_2025_2.xlsx"), "{ingested}");
            assert!(ingested.contains("htcds_cases_2025_2.xlsx"), "{ingested}");
        }
        let sql = "SELECT 'cases', partner, count(*), count(DISTINCT person_id) FROM cases GROUP BY partner \
                   UNION ALL SELECT 'outcomes', partner, count(*), count(DISTINCT person_id) FROM outcomes GROUP BY partner \
                   UNION ALL SELECT 'referrals', partner, count(*), count(DISTINCT person_id) FROM referrals GROUP BY partner \
                   UNION ALL SELECT 'quarantine', partner, count(*), 0 FROM quarantine GROUP BY partner \
                   ORDER BY 1, 2";
        answers.push(tip(&["query", "--format", "csv", sql]));
    }
    assert!(answers[0].lines().count() >= 5, "{}", answers[0]);
    assert_eq!(
        answers[0], answers[1],
        "the split register lost or gained rows"
    );
}

fn write(env: &Env, name: &str, text: &str) -> std::path::PathBuf {
    let p = env.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

const HEADER: &str = "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation";

#[tokio::test(flavor = "multi_thread")]
async fn a_resubmission_replaces_its_records_in_one_commit() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let record = ctx.catalog.record("case").unwrap().clone();
    let mapping = Mapping::canonical(&record, Format::Csv, Default::default());
    let sub = Submission {
        partner: "LT-NGO-01",
        mapping: &mapping,
        channel: Channel::Load,
        mode: Mode::Upsert,
        progress: None,
    };

    let first = write(
        &env,
        "march.csv",
        &format!(
            "{HEADER}\nA1,Ona,Petraitytė,2012-01-02,2025-03-03,female,LT,identified,sexual\nA2,Jonas,Kazlauskas,2011-05-06,2025-03-10,male,LT,presumed,labour\nA3,Eglė,Šimkutė,2010-07-08,2025-03-20,female,LT,identified,sexual;online_sexual\n"
        ),
    );
    let r1 = ctx.ingest_file(&sub, &first).await.unwrap();
    assert_eq!(r1.status, FileStatus::Committed);
    assert_eq!(r1.rows_accepted, 3);
    let v1 = r1.table_version.unwrap();
    // Another partner's rows in the same month must survive the replacement.
    let other = Submission {
        partner: "LV-POL-01",
        mapping: &mapping,
        channel: Channel::Load,
        mode: Mode::Upsert,
        progress: None,
    };
    let lv = write(
        &env,
        "lv.csv",
        &format!("{HEADER}\nB1,Anna,Bērziņa,2012-02-02,2025-03-05,female,LV,identified,sexual\n"),
    );
    ctx.ingest_file(&other, &lv).await.unwrap();
    let lake_version_before = ctx
        .lake
        .versions(&["submissions".to_string()])
        .await
        .unwrap()["submissions"];

    let corrected = write(
        &env,
        "march-corrected.csv",
        &format!(
            "{HEADER}\nA1,Ona,Petraitytė,2012-01-02,2025-03-03,female,LT,identified,sexual\nA3,Eglė,Šimkutė,2010-07-08,2025-03-21,female,LT,identified,sexual\n"
        ),
    );
    let r2 = ctx.ingest_file(&sub, &corrected).await.unwrap();
    assert_eq!(r2.status, FileStatus::Committed);
    // A1 and A3 are replaced by their new versions; A2, absent from an increment, stays.
    assert_eq!(
        (r2.rows_inserted, r2.rows_updated, r2.rows_removed),
        (0, 2, 0)
    );
    let v2 = r2.table_version.unwrap();
    assert_eq!(
        v2,
        v1 + 2,
        "one commit for the other partner, one for the replacement"
    );
    assert_eq!(
        scalar(
            &ctx,
            "SELECT count(*) FROM cases WHERE partner = 'LT-NGO-01'"
        )
        .await,
        3
    );
    let on = |day: &str| {
        format!(
            "SELECT count(*) FROM cases WHERE partner = 'LT-NGO-01' AND registered_on = DATE '{day}'"
        )
    };
    assert_eq!(
        scalar(&ctx, &on("2025-03-21")).await,
        1,
        "the corrected date"
    );
    assert_eq!(
        scalar(&ctx, &on("2025-03-20")).await,
        0,
        "the old version is gone"
    );
    assert_eq!(
        scalar(
            &ctx,
            "SELECT count(*) FROM cases WHERE partner = 'LV-POL-01'"
        )
        .await,
        1
    );
    // Time travel: the lake version before the replacement had the old submission whole.
    let before = tip::lake::AsOf::Version(lake_version_before as u64);
    let s = tip::query::Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, Some(&before))
        .await
        .unwrap();
    let b = s
        .run("SELECT count(*) AS n FROM cases WHERE partner = 'LT-NGO-01' AND registered_on = DATE '2025-03-20'")
        .await
        .unwrap();
    let text =
        String::from_utf8(tip::query::render(&b, tip::query::OutputFormat::Csv).unwrap()).unwrap();
    assert_eq!(text, "n\n1\n");
    // A2 still comes from the first submission, A1 and A3 from the second.
    assert_eq!(
        scalar(
            &ctx,
            &format!(
                "SELECT count(*) FROM cases WHERE partner = 'LT-NGO-01' AND submission_id = '{}'",
                r2.submission_id.clone().unwrap()
            )
        )
        .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_files_leave_every_table_version_unchanged() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let good = write(
        &env,
        "good.csv",
        &format!("{HEADER}\nA1,Ona,Petraitytė,2012-01-02,2025-03-03,female,LT,identified,sexual\n"),
    );
    let out = env.load_on(&env.lake, "LT-NGO-01", "case", &good);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = ctx
        .lake
        .versions(&crate::common::table_names(&ctx))
        .await
        .unwrap();

    let mut cp1257 = encoding_rs::WINDOWS_1257
        .encode(&format!(
            "{HEADER}\nA9,Žydrūnė,Šimkutė,2012-01-02,2025-04-03,female,LT,identified,sexual\n"
        ))
        .0
        .into_owned();
    cp1257.extend_from_slice(b"A10,x\xff,y,2012-01-02,2025-04-03,female,LT,identified,sexual\n");
    std::fs::write(env.path("latin.csv"), &cp1257).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing-column.csv",
            "case_number,given_name,family_name,birth_date,gender\nA1,Ona,P,2012-01-02,female\n"
                .into(),
            "missing required column",
        ),
        ("empty.csv", String::new(), "empty"),
        ("header-only.csv", format!("{HEADER}\n"), "empty"),
        (
            "not-json.json",
            "this is not json".into(),
            "not a valid JSON",
        ),
        (
            "not-ndjson.ndjson",
            "[1,2,3]\n".into(),
            "not a valid NDJSON",
        ),
        (
            "not-xlsx.xlsx",
            "PK but not really a workbook".into(),
            "not a valid xlsx",
        ),
    ];
    for (name, text, _) in &cases {
        write(&env, name, text);
    }
    let mut all: Vec<(&str, &str)> = cases.iter().map(|(n, _, m)| (*n, *m)).collect();
    all.push(("latin.csv", "not valid UTF-8"));
    for (name, msg) in all {
        let p = env.path(name);
        let out = env.load_on(&env.lake, "LT-NGO-01", "case", &p);
        assert!(!out.status.success(), "{name} must be rejected");
        let err = stderr(&out);
        assert!(err.contains(name) && err.contains(msg), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        // No input value is echoed.
        assert!(
            !err.contains("Ona") && !err.contains("Žydrūnė"),
            "{name}: {err}"
        );
        let after = ctx
            .lake
            .versions(&crate::common::table_names(&ctx))
            .await
            .unwrap();
        assert_eq!(before, after, "{name} changed the lake");
    }
    // Row-level problems do not fail the file: they are counted and reported by row and field.
    let mixed = write(
        &env,
        "mixed.csv",
        &format!(
            "{HEADER}\nA1,Ona,Petraitytė,2012-01-02,2025-05-03,female,LT,identified,sexual\nA2,Jonas,Kazlauskas,2011-05-06,2025-05-32,male,LT,presumed,labour\nA3,Eglė,Šimkutė,2010-07-08,2025-05-20,girlish,LT,identified,sexual\nA4,Rūta,Ū,2010-07-08,2025-05-20,female,LT,,sexual\n"
        ),
    );
    let out = env.load_on(&env.lake, "LT-NGO-01", "case", &mixed);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(o.contains("1 accepted, 3 quarantined"), "{o}");
    assert!(
        o.contains("mixed.csv row 3, field registered_on: invalid_date")
            || o.contains("mixed.csv row 3, field registered_on: impossible_date"),
        "{o}"
    );
    assert!(
        o.contains("mixed.csv row 4, field gender: unknown_code"),
        "{o}"
    );
    assert!(
        o.contains("mixed.csv row 5, field status: missing_required"),
        "{o}"
    );
    assert!(!o.contains("girlish") && !o.contains("Kazlauskas"), "{o}");
}

#[test]
fn cli_queries_a_fresh_lake_and_lists_tables() {
    let env = Env::new();
    let out = env.tip(&[
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n FROM cases",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), r#"[{"n":0}]"#);
    let out = env.tip(&["query", "DROP TABLE cases"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    let out = env.tip(&["tables"]);
    let o = stdout(&out);
    for t in [
        "cases",
        "services",
        "referrals",
        "events",
        "outcomes",
        "organisations",
        "person_id",
        "reporting_country",
    ] {
        assert!(o.contains(t), "{t} in `tip tables`");
    }
    assert!(!o.contains("given_name"), "identifiers are not columns");
    let out = env.tip(&[
        "query",
        "--format",
        "csv",
        "SELECT org_id, country FROM organisations ORDER BY org_id LIMIT 2",
    ]);
    assert_eq!(stdout(&out), "org_id,country\nEE-POL-01,EE\nEE-SVC-01,EE\n");
}

/// One row of the canonical case layout for the batch tests: case number `C{i}`, a month of
/// 2024–2025 by `i`.
fn case_row(i: usize, case_number: &str) -> String {
    format!(
        "{case_number},Ona{},Petraitytė,2010-01-02,{}-{:02}-1{},female,LT,identified,sexual",
        i % 97,
        2024 + (i / 12) % 2,
        1 + i % 12,
        i % 10
    )
}

/// A file read in batches of 7 rows, on every core, is one submission as a whole: every row is
/// accepted or set aside exactly once, a key repeated in batches far apart sets both rows aside,
/// months from every batch land, and the private staging of the rows is gone afterwards. Its
/// keys go to disk past 20 (sorted runs merged, the unique keys kept on disk), as a file of
/// millions of rows does past `ingest.keys_in_memory`. A second file with more than 20 keys
/// (matched as the partner's rows stream past, not by an IN list) replaces the records it
/// holds and adds the rest.
#[test]
fn a_file_read_in_many_small_batches_on_every_core_is_one_submission() {
    let mut env = Env::new();
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    env.vars
        .push(("TMPDIR".into(), tmp.to_str().unwrap().into()));
    let config = std::fs::read_to_string(repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace("batch_rows = 8192", "batch_rows = 7")
        .replace("keys_in_memory = 2097152", "keys_in_memory = 20");
    assert!(config.contains("batch_rows = 7") && config.contains("keys_in_memory = 20"));
    let cfg = env.path("tip.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut text = format!("{HEADER}\n");
    for i in 0..300 {
        let line = match i {
            250 => case_row(i, "C50"), // C50 again
            100 => ",,,,2025-01-10,female,LT,identified,sexual".to_string(), // no key at all
            150 => case_row(i, "C150").replace("female", "girlish"), // an unknown code
            _ => case_row(i, &format!("C{i}")),
        };
        text.push_str(&line);
        text.push('\n');
    }
    let file = write(&env, "batches.csv", &text);
    let load = |file: &std::path::Path| {
        env.tip(&[
            "--config",
            cfg.to_str().unwrap(),
            "load",
            "--partner",
            "LT-NGO-01",
            "--type",
            "case",
            file.to_str().unwrap(),
        ])
    };
    let out = load(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("300 rows read, 296 accepted, 4 quarantined; 296 inserted, 0 updated"),
        "{}",
        stdout(&out)
    );
    let csv = |sql: &str| {
        let o = env.tip(&["query", "--format", "csv", sql]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    // Lines 2..=301 of the file: each is in the table or in the quarantine, never both.
    assert_eq!(
        csv(
            "SELECT count(*) AS n, count(DISTINCT source_row) AS rows, min(source_row) AS lo, max(source_row) AS hi, count(DISTINCT period) AS months FROM cases"
        ),
        "n,rows,lo,hi,months\n296,296,2,301,24\n"
    );
    assert_eq!(
        csv("SELECT source_row, reason FROM quarantine ORDER BY source_row"),
        "source_row,reason\n52,duplicate_key\n102,missing_key\n152,unknown_code\n252,duplicate_key\n"
    );
    assert_eq!(
        csv("SELECT count(*) AS n FROM cases WHERE source_row IN (52, 102, 152, 252)"),
        "n\n0\n"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the staged rows are removed"
    );
    // 25 records held (C0..C24, corrected) and 15 new (C1000..C1014).
    let mut text = format!("{HEADER}\n");
    for i in 0..25 {
        text.push_str(&case_row(i, &format!("C{i}")).replace("sexual", "labour"));
        text.push('\n');
    }
    for i in 0..15 {
        text.push_str(&case_row(i, &format!("C{}", 1000 + i)));
        text.push('\n');
    }
    let second = write(&env, "second.csv", &text);
    let out = load(&second);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("40 accepted, 0 quarantined; 15 inserted, 25 updated, 0 removed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        csv("SELECT count(*) AS n, count(DISTINCT case_id) AS cases FROM cases"),
        "n,cases\n311,311\n"
    );
    // The second submission holds its 40 records: the 25 it replaced and the 15 it added.
    assert_eq!(
        csv("SELECT count(*) AS n FROM cases GROUP BY submission_id ORDER BY n"),
        "n\n40\n271\n"
    );
}

/// Memory does not grow with the input as a whole file would: eight times the rows, and the
/// peak resident memory of `tip load` stays within 64 MiB of the smaller load's. The rows pass
/// through in batches; what is kept per row is its 24-byte key, and each month's Parquet writer
/// buffers up to one row group (128 k rows) before it flushes, which is most of the growth
/// measured here (30-41 MiB on the two-core machine, alone or beside the rest of the suite).
#[test]
fn the_memory_of_a_load_does_not_grow_with_the_file() {
    let env = Env::new();
    let peak = |rows: usize| {
        let mut text = format!("{HEADER}\n");
        for i in 0..rows {
            text.push_str(&case_row(i, &format!("M{i}")));
            text.push('\n');
        }
        let file = write(&env, &format!("m{rows}.csv"), &text);
        let lake = env.path(&format!("lake{rows}"));
        let o = std::process::Command::new("python3")
            .current_dir(repo())
            .env_remove("TIP_KEY")
            .arg(repo().join("tests/python/peak.py"))
            .arg(env!("CARGO_BIN_EXE_tip"))
            .args(["--lake", lake.to_str().unwrap(), "--key-file"])
            .arg(&env.key)
            .args(["load", "--partner", "LT-NGO-01", "--type", "case"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        let kib: u64 = err
            .rsplit("peak_kib=")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        kib / 1024
    };
    let (small, large) = (peak(20_000), peak(160_000));
    eprintln!("tip load peak: 20 000 rows {small} MiB, 160 000 rows {large} MiB");
    assert!(
        large <= small + 64,
        "160 000 rows peaked at {large} MiB, 20 000 at {small} MiB"
    );
}
