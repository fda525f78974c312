//! The command-line contract around keys and the embedded default, pruning, and robustness
//! against arbitrary input.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tip::ingest::{Channel, FileStatus, Mode, Submission};
use tip::mapping::Mapping;
use tip::source::Format;

use crate::common::{Env, repo, stderr, stdout};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn key_new_writes_a_private_key_and_prints_nothing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/network.key");
    let out = Command::new(env!("CARGO_BIN_EXE_tip"))
        .args(["key", "new"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&key).unwrap();
    let hex = text.trim_end();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let printed = stdout(&out) + &stderr(&out);
    assert!(
        !printed.contains(hex) && !printed.contains(&hex[..16]),
        "{printed}"
    );
    // Never overwrites a key.
    let again = Command::new(env!("CARGO_BIN_EXE_tip"))
        .args(["key", "new"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);
    // A key file others can read is refused, with the fix.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_tip"))
        .current_dir(repo())
        .arg("--lake")
        .arg(&env.lake)
        .arg("--key-file")
        .arg(&key)
        .args(["ingest", "--pipeline", "lt-ngo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!env.lake.exists(), "nothing written with a refused key");
}

#[test]
fn embedded_default_creates_a_dev_key_once_and_warns_every_run() {
    // A copy of the repository's configuration, run with no options at all.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("schemas"), &dir.path().join("schemas"));
    copy_dir(&repo().join("pipelines"), &dir.path().join("pipelines"));
    std::fs::remove_file(dir.path().join("pipelines/tip.toml")).unwrap();
    let file = dir.path().join("cases.csv");
    std::fs::write(
        &file,
        "case_number,given_name,family_name,birth_date,registered_on,gender,status\n\
         A1,Ona,Testaite,2010-01-01,2025-03-01,female,presumed\n",
    )
    .unwrap();
    let tip = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tip"));
        c.current_dir(dir.path()).env_remove("TIP_KEY");
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    let count = [
        "query",
        "--format",
        "csv",
        "SELECT count(*) AS n FROM cases",
    ];
    let load = [
        "load",
        "--partner",
        "LT-NGO-01",
        "--type",
        "case",
        "cases.csv",
    ];
    // A reader needs no key and makes none.
    let q = tip(&[], &count);
    assert!(q.status.success(), "{}", stderr(&q));
    assert_eq!(stdout(&q), "n\n0\n");
    assert!(!dir.path().join(".tip/dev.key").exists());
    assert!(!stderr(&q).contains("DEVELOPMENT"), "{}", stderr(&q));
    // The first writer creates the development key, loudly.
    let first = tip(&[], &load);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("DEVELOPMENT pseudonymisation key"),
        "{}",
        stderr(&first)
    );
    assert_eq!(stdout(&tip(&[], &count)), "n\n1\n");
    let key = std::fs::read_to_string(dir.path().join(".tip/dev.key")).unwrap();
    let second = tip(&[], &load);
    assert!(stderr(&second).contains("DEVELOPMENT pseudonymisation key"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".tip/dev.key")).unwrap(),
        key,
        "created once"
    );

    // TIP_KEY takes precedence and is not a development key (on a lake of its own: this one
    // keeps the development key).
    let other = dir.path().join("other-lake");
    let other = other.to_str().unwrap();
    let mut args = vec!["--lake", other];
    args.extend(load);
    let out = tip(&[("TIP_KEY", &"ab".repeat(32))], &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("DEVELOPMENT"));
    let bad = tip(&[("TIP_KEY", "not a key")], &args);
    assert!(!bad.status.success());
    assert!(
        !stderr(&bad).contains("not a key"),
        "the value is not echoed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_on_country_and_period_prune_files() {
    let env = Env::new();
    let ctx = env.ctx().await;
    ctx.run_pipelines(&[]).await.unwrap();
    // Files the scan opened, from the plan's metrics.
    let files = |sql: &str| -> usize {
        let out = env.tip(&[
            "query",
            "--format",
            "csv",
            &format!("EXPLAIN ANALYZE {sql}"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let at = text.find("files_opened=").expect("files_opened metric") + "files_opened=".len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let all = files("SELECT count(gender) FROM cases");
    let lt = files("SELECT count(gender) FROM cases WHERE reporting_country = 'LT'");
    let month = files("SELECT count(gender) FROM cases WHERE period = '2025-03'");
    assert!(all > 20, "{all} files");
    assert!(
        lt > 0 && lt * 3 < all,
        "country filter: {lt} of {all} files"
    );
    assert!(
        month > 0 && month * 5 < all,
        "period filter: {month} of {all} files"
    );
}

/// Arbitrary bytes in every format: tip answers with a report or a clear rejection, never a
/// panic, and never commits a rejected file.
#[tokio::test(flavor = "multi_thread")]
async fn arbitrary_input_never_panics() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let record = ctx.catalog.record("case").unwrap().clone();
    let mut state: u64 = 7;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let valid_csv = "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\nA1,Ona,P,2012-01-02,2025-03-03,female,LT,identified,sexual\n";
    let template = std::fs::read(repo().join("pipelines/presets/htcds-v2-template.xlsx")).unwrap();
    for (i, format) in [Format::Csv, Format::Json, Format::Ndjson, Format::Xlsx]
        .into_iter()
        .cycle()
        .take(60)
        .enumerate()
    {
        // Random bytes, or a valid file with bytes flipped or cut short.
        let mut bytes: Vec<u8> = match i % 3 {
            0 => (0..(next() % 600)).map(|_| next() as u8).collect(),
            1 if format == Format::Xlsx => template.clone(),
            1 => valid_csv.as_bytes().to_vec(),
            _ => br#"[{"case_number":"A","given_name":"B","registered_on":"2025-01-01","status":"presumed","exploitation":[[1]]}, {"x": {"y": 1}}, 3]"#.to_vec(),
        };
        if i % 3 == 1 {
            for _ in 0..(1 + next() % 8) {
                let at = (next() as usize) % bytes.len().max(1);
                if let Some(b) = bytes.get_mut(at) {
                    *b = next() as u8;
                }
            }
            let keep = bytes.len() - (next() as usize % (bytes.len() / 2 + 1));
            bytes.truncate(keep);
        }
        let path = env.path(&format!("fuzz-{i}.bin"));
        std::fs::write(&path, &bytes).unwrap();
        let mapping = Mapping::canonical(&record, format, Default::default());
        let sub = Submission {
            partner: "LT-NGO-01",
            mapping: &mapping,
            channel: Channel::Load,
            mode: Mode::Upsert,
            progress: None,
        };
        let before = ctx
            .lake
            .versions(&crate::common::table_names(&ctx))
            .await
            .unwrap();
        match ctx.ingest_file(&sub, &path).await {
            Ok(r) => {
                if let FileStatus::Rejected(reason) = &r.status {
                    assert!(reason.contains(&format!("fuzz-{i}.bin")), "{reason}");
                    assert_eq!(
                        before,
                        ctx.lake
                            .versions(&crate::common::table_names(&ctx))
                            .await
                            .unwrap()
                    );
                }
            }
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains("panic") && !m.contains("task failed"), "{m}");
            }
        }
    }
}

/// `command` run by `script` on a pseudo-terminal: everything it wrote to the terminal (its
/// stdout and stderr, progress bars included).
fn on_terminal(env: &Env, args: &[&str]) -> String {
    let mut line = vec![
        env!("CARGO_BIN_EXE_tip").to_string(),
        "--lake".into(),
        env.lake.display().to_string(),
        "--key-file".into(),
        env.key.display().to_string(),
    ];
    line.extend(args.iter().map(|a| a.to_string()));
    assert!(
        line.iter().all(|a| !a.contains(['\'', ' '])),
        "plain words: {line:?}"
    );
    let out = Command::new("script")
        .current_dir(repo())
        .env_remove("TIP_KEY")
        .args(["-q", "-e", "-f", "-c", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (util-linux)");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

#[test]
fn progress_bars_on_a_terminal_and_never_off_it() {
    let env = Env::new();
    let out = env.path("export");
    let extract = env.path("extract");
    let jobs: [(Vec<&str>, &str); 3] = [
        (vec!["ingest"], "tip ingest: "),
        (vec!["export", "--out", out.to_str().unwrap()], "export to "),
        (
            vec![
                "extract",
                "--name",
                "regional-monthly",
                "--month",
                "2025-06",
                "--out",
                extract.to_str().unwrap(),
            ],
            "extract regional-monthly for 2025-06: ",
        ),
    ];
    for (args, bar) in &jobs {
        let shown = on_terminal(&env, args);
        assert!(
            shown.contains(bar),
            "{args:?} on a terminal draws a bar {bar:?}: {shown}"
        );
        if args[0] != "extract" {
            assert!(shown.contains(" rows, "), "{args:?}: rows counted: {shown}");
        }
    }
    // The bar is cleared when the job ends: the summaries still print after it.
    let shown = on_terminal(&env, &["ingest"]);
    assert!(shown.contains("unchanged (already ingested"), "{shown}");
    // Off a terminal (logs, pipes, CI) nothing is drawn.
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&extract).unwrap();
    for (args, bar) in &jobs {
        let o = env.tip(args);
        assert!(o.status.success(), "{}", stderr(&o));
        let (so, se) = (stdout(&o), stderr(&o));
        assert!(
            !so.contains(bar) && !se.contains(bar) && !se.contains('\u{1b}'),
            "{args:?} off a terminal drew a bar: {se}"
        );
    }
}
