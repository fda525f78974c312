//! The application core: the analyst side (query, tables, export, extract, tokens) runs where
//! no key exists and never makes one; a lake keeps one key, and a new key is an explicit,
//! audited, recorded epoch.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{Env, all_files, repo, stderr, stdout};

/// A configuration whose every path (key, audit log, extracts, tokens, uploads) is inside the
/// test's directory, so nothing of the repository's `.tip/` is touched.
fn config(env: &Env) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace(
            "\".tip/dev.key\"",
            &format!("{:?}", env.path("keys/dev.key")),
        )
        .replace(
            "\".tip/audit.log\"",
            &format!("{:?}", env.path("audit.log")),
        )
        .replace("\".tip/extracts\"", &format!("{:?}", env.path("extracts")))
        .replace(
            "\".tip/tokens.json\"",
            &format!("{:?}", env.path("tokens.json")),
        )
        .replace("\".tip/uploads\"", &format!("{:?}", env.path("uploads")));
    let p = env.path("tip.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The tip binary on this lake with this configuration, with `key` or with no key at all (no
/// --key-file, no TIP_KEY).
fn tip(env: &Env, key: Option<&Path>, args: &[&str]) -> Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tip"));
    c.current_dir(repo())
        .env_remove("TIP_KEY")
        .arg("--config")
        .arg(config(env))
        .arg("--lake")
        .arg(&env.lake);
    if let Some(k) = key {
        c.arg("--key-file").arg(k);
    }
    c.args(args).output().expect("run tip")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

/// Every file under the lake with its size: what a refused command must leave unchanged.
fn lake_files(env: &Env) -> Vec<(PathBuf, u64)> {
    all_files(&env.lake)
        .into_iter()
        .map(|p| {
            let n = std::fs::metadata(&p).unwrap().len();
            (p, n)
        })
        .collect()
}

fn keys_under(dir: &Path) -> Vec<PathBuf> {
    all_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect()
}

#[test]
fn the_analyst_side_runs_without_a_key_and_makes_none() {
    let env = Env::new();
    ok(&tip(&env, Some(&env.key), &["ingest"]));
    let lake_before = lake_files(&env);
    let q = ok(&tip(
        &env,
        None,
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM cases",
        ],
    ));
    assert!(
        q.lines().nth(1).unwrap().parse::<u64>().unwrap() > 500,
        "{q}"
    );
    let t = ok(&tip(&env, None, &["tables"]));
    assert!(t.contains("person_id") && t.contains("key_epochs"), "{t}");
    let out = env.path("export");
    ok(&tip(
        &env,
        None,
        &["export", "--out", out.to_str().unwrap()],
    ));
    assert!(out.join("manifest.json").exists());
    let x = env.path("x");
    ok(&tip(
        &env,
        None,
        &[
            "extract",
            "--name",
            "regional-monthly",
            "--month",
            "2025-06",
            "--out",
            x.to_str().unwrap(),
        ],
    ));
    assert!(x.join("manifest.json").exists());
    ok(&tip(&env, None, &["token", "new", "--role", "analyst"]));
    // No key appeared anywhere (the configured development key included), and reading wrote
    // nothing to the lake.
    assert_eq!(keys_under(env.dir.path()), vec![env.key.clone()]);
    assert_eq!(
        lake_files(&env),
        lake_before,
        "an analyst command wrote to the lake"
    );
    // On a lake that does not exist yet, a reader answers from empty tables and creates
    // nothing.
    let nowhere = env.path("no-lake-here");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tip"))
        .current_dir(repo())
        .env_remove("TIP_KEY")
        .args([
            "--config",
            config(&env).to_str().unwrap(),
            "--lake",
            nowhere.to_str().unwrap(),
        ])
        .args([
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM cases",
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&o), "n\n0\n");
    assert!(stderr(&o).contains("no lake at"), "{}", stderr(&o));
    assert!(!nowhere.exists());
    assert_eq!(keys_under(env.dir.path()), vec![env.key.clone()]);
}

#[test]
fn a_lake_keeps_one_key_and_a_new_one_is_an_explicit_recorded_epoch() {
    let env = Env::new();
    let case = env.path("cases.csv");
    std::fs::write(
        &case,
        "case_number,given_name,family_name,birth_date,registered_on,gender,status\n\
         A1,Ona,Testaite,2010-01-01,2025-03-01,female,presumed\n",
    )
    .unwrap();
    let case = case.to_str().unwrap();
    let load = ["load", "--partner", "EE-POL-01", "--type", "case", case];
    ok(&tip(&env, Some(&env.key), &load));
    let old = tip::pseudonym::Key::from_file(&env.key).unwrap().version();
    let other = env.path("other.key");
    let new = tip::pseudonym::Key::write_new(&other).unwrap().version();

    // Another key is refused, naming both versions and what to do; the lake is unchanged.
    let before = lake_files(&env);
    let o = tip(&env, Some(&other), &["ingest"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&old) && e.contains(&new) && e.contains("tip key epoch"),
        "{e}"
    );
    assert_eq!(lake_files(&env), before);

    // Without --confirm, the epoch command only explains.
    let o = tip(
        &env,
        Some(&other),
        &["key", "epoch", "--reason", "key lost"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no longer link") || stderr(&o).contains("two different person_ids")
    );
    assert_eq!(lake_files(&env), before);

    let o = ok(&tip(
        &env,
        Some(&other),
        &[
            "key",
            "epoch",
            "--reason",
            "the old key was lost",
            "--confirm",
        ],
    ));
    assert!(o.contains("key epoch 2") && o.contains(&new), "{o}");
    // Now the new key ingests and the old one is refused.
    ok(&tip(
        &env,
        Some(&other),
        &["ingest", "--pipeline", "lt-ngo"],
    ));
    assert!(!tip(&env, Some(&env.key), &["ingest"]).status.success());
    let epochs = ok(&tip(
        &env,
        None,
        &[
            "query",
            "--format",
            "csv",
            "SELECT epoch, key_version, previous_key_version, reason FROM key_epochs ORDER BY epoch",
        ],
    ));
    assert_eq!(
        epochs,
        format!(
            "epoch,key_version,previous_key_version,reason\n1,{old},,first ingestion\n2,{new},{old},the old key was lost\n"
        )
    );
    let versions = ok(&tip(
        &env,
        None,
        &[
            "query",
            "--format",
            "csv",
            "SELECT DISTINCT key_version FROM cases ORDER BY 1",
        ],
    ));
    let mut both = [old.clone(), new.clone()];
    both.sort();
    assert_eq!(versions, format!("key_version\n{}\n{}\n", both[0], both[1]));
    let audit = std::fs::read_to_string(env.path("audit.log")).unwrap();
    let line = audit
        .lines()
        .find(|l| l.contains("key_epoch_started"))
        .expect("the epoch is audited");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["epoch"], 2);
    assert_eq!(v["key_version"], new.as_str());
    assert_eq!(v["previous_key_version"], old.as_str());
    assert_eq!(v["by"], "cli");
}
