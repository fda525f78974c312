//! Erasure (GDPR Art. 17): after `tip erase`, no file under the lake (data, logs,
//! checkpoints) holds the erased person's rows, queries at any version do not return them, and
//! time travel to before the erasure says so plainly.

use std::path::Path;

use crate::common::{Env, all_files, stderr, stdout};

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

fn csv(env: &Env, args: &[&str], sql: &str) -> Vec<String> {
    let mut a = vec!["query", "--format", "csv"];
    a.extend(args);
    a.push(sql);
    ok(&env.tip(&a))
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every value of `column` in every Parquet file under `dir`, referenced or not.
fn parquet_values(dir: &Path, column: &str) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for f in all_files(dir) {
        if f.extension().is_none_or(|x| x != "parquet")
            || f.to_string_lossy().contains("_delta_log")
        {
            continue;
        }
        let file = std::fs::File::open(&f).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            let b = b.unwrap();
            if let Some(c) = b.column_by_name(column) {
                let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap();
                let c = c.as_string::<i32>();
                out.extend(
                    (0..c.len())
                        .filter(|&i| c.is_valid(i))
                        .map(|i| c.value(i).to_string()),
                );
            }
        }
    }
    out
}

#[test]
fn an_erased_person_is_in_no_file_and_no_version() {
    let env = Env::new();
    ok(&env.tip(&["ingest"]));
    let person = csv(
        &env,
        &[],
        "SELECT person_id FROM persons WHERE partner_count >= 3 ORDER BY person_id LIMIT 1",
    )
    .remove(0);
    let other = csv(
        &env,
        &[],
        "SELECT person_id FROM persons WHERE partner_count >= 2 ORDER BY person_id DESC LIMIT 1",
    )
    .remove(0);
    let reports = |env: &Env, args: &[&str], p: &str| {
        csv(
            env,
            args,
            &format!("SELECT count(*) FROM person_reports WHERE person_id = '{p}'"),
        )[0]
        .parse::<u64>()
        .unwrap()
    };
    let n = reports(&env, &[], &person);
    let kept = reports(&env, &[], &other);
    assert!(n >= 3 && kept >= 2);
    // The erasure's own delete leaves the person's rows in files only history holds (and
    // their pseudonym in the log's statistics): the purge must remove those too.
    assert!(parquet_values(&env.lake, "person_id").contains(&person));

    // Without --confirm nothing happens.
    let o = env.tip(&["erase", "--person-id", &person]);
    assert!(!o.status.success());
    assert_eq!(reports(&env, &[], &person), n);

    let out = ok(&env.tip(&["erase", "--person-id", &person, "--confirm"]));
    assert!(out.contains(&format!("erased {n} rows")), "{out}");
    // No file under the lake holds the pseudonym: data, logs, checkpoints.
    for f in all_files(&env.lake) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(person.len()).any(|w| w == person.as_bytes()),
            "{} still holds the erased person",
            f.display()
        );
    }
    assert!(!parquet_values(&env.lake, "person_id").contains(&person));
    assert_eq!(reports(&env, &[], &person), 0);
    assert_eq!(reports(&env, &[], &other), kept, "others are untouched");
    // Time travel to before the erasure is refused plainly; after it, answers without them.
    let o = env.tip(&["query", "--as-of", "1", "SELECT count(*) FROM cases"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("before an erasure"), "{}", stderr(&o));
    let latest = csv(&env, &[], "SELECT max(lake_version) FROM erasures").remove(0);
    assert_eq!(reports(&env, &["--as-of", &latest], &person), 0);
    assert_eq!(reports(&env, &["--as-of", &latest], &other), kept);
    // The lake records the erasure without the pseudonym; the audit log names the pseudonym.
    assert_eq!(
        csv(&env, &[], "SELECT kind, rows_removed FROM erasures"),
        vec![format!("person,{n}")]
    );
}
