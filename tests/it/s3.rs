//! The lake, a partner's drop prefix, the upload inbox and the extracts in object storage: a
//! real S3-compatible server (moto's server mode, `tests/python/s3_server.py`) on loopback,
//! the tip binary against it, and the `deltalake` Python package as an independent reader.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use futures::TryStreamExt;
use tip::lake::store::Store;

use crate::common::{Env, repo, stderr, stdout};
use crate::serve;

/// A moto S3 server on a free loopback port, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// A server with `buckets`; `flags` for `tests/python/s3_server.py` (a proxy in front
    /// that drops conditional headers, or loses answers).
    fn start(buckets: &[&str], flags: &[&str]) -> S3Server {
        let mut c = Command::new("python3");
        c.arg(repo().join("tests/python/s3_server.py"));
        for b in buckets {
            c.args(["--bucket", b]);
        }
        c.args(flags);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/python/s3_server.py (needs moto: scripts/test.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line.trim().to_string();
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "the S3 server did not start: {line:?}"
        );
        S3Server { child, endpoint }
    }

    /// What every tip process gets: the endpoint and test credentials, nothing from the
    /// machine's own AWS settings.
    fn vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_PROFILE", ""),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn options(&self) -> BTreeMap<String, String> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn store(&self, url: &str) -> Store {
        Store::open(&url::Url::parse(url).unwrap(), &self.options()).unwrap()
    }

    /// Every object name under `url`, at any depth.
    fn all_objects(&self, url: &str) -> Vec<String> {
        let url = url::Url::parse(url).unwrap();
        let store = deltalake::logstore::store_for(&url, self.options()).unwrap();
        rt().block_on(async {
            store
                .list(None)
                .map_ok(|m| m.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
        })
    }

    fn names(&self, url: &str) -> Vec<String> {
        rt().block_on(async {
            self.store(url)
                .list()
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.name)
                .collect()
        })
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An environment whose lake is `s3://BUCKET/lake`.
fn s3_env(server: &S3Server, bucket: &str) -> Env {
    let mut env = Env::new();
    env.lake = PathBuf::from(format!("s3://{bucket}/lake"));
    env.vars = server.vars();
    env
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    stdout(o)
}

/// A number from `tip query --format csv` (header, then one value).
fn count(env: &Env, extra: &[&str], sql: &str) -> u64 {
    let mut args = extra.to_vec();
    args.extend(["query", "--format", "csv", sql]);
    let out = ok(&env.tip(&args));
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// The deployment file of the S3 test: the Estonian pipeline pulls `s3://hub/drop/ee/` and
/// moves what it ingested under `processed/`; extracts and the inbox are in the bucket; the
/// endpoint comes from `[storage]` (the credentials from the environment).
fn s3_config(env: &Env, server: &S3Server) -> PathBuf {
    let partners = env.path("partners");
    std::fs::create_dir_all(&partners).unwrap();
    let ee = std::fs::read_to_string(repo().join("pipelines/partners/ee-services.toml")).unwrap();
    let ee = ee.replace(
        "path = \"sample-data/ee-services\"",
        "path = \"s3://hub/drop/ee/\"\nafter = \"move\"",
    );
    std::fs::write(partners.join("ee-services.toml"), ee).unwrap();
    let mut text = std::fs::read_to_string(repo().join("pipelines/tip.toml")).unwrap();
    for (from, to) in [
        (
            "partners = \"pipelines/partners\"",
            format!("partners = {partners:?}"),
        ),
        (
            "out = \".tip/extracts\"",
            "out = \"s3://hub/extracts\"".to_string(),
        ),
        (
            "tokens = \".tip/tokens.json\"",
            format!("tokens = {:?}", env.path("tokens.json")),
        ),
        (
            "inbox = \".tip/uploads\"",
            "inbox = \"s3://hub/inbox\"".to_string(),
        ),
        (
            "log = \".tip/audit.log\"",
            format!("log = {:?}", env.path("audit.log")),
        ),
        (
            "[serve]",
            format!(
                "[storage]\nendpoint = {:?}\nallow_http = true\nregion = \"us-east-1\"\n\n[serve]",
                server.endpoint
            ),
        ),
    ] {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, &to);
    }
    let p = env.path("s3.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn upload(server: &S3Server, url: &str, file: &Path) {
    let name = file.file_name().unwrap().to_str().unwrap();
    rt().block_on(server.store(url).upload(file, name)).unwrap();
}

#[test]
fn an_s3_lake_works_like_a_local_one() {
    let server = S3Server::start(&["hub"], &[]);
    let env = s3_env(&server, "hub");
    let cfg = s3_config(&env, &server);
    let cfg = cfg.to_str().unwrap();
    let with = |args: &[&str]| {
        let mut a = vec!["--config", cfg];
        a.extend_from_slice(args);
        env.tip(&a)
    };
    let drop = "s3://hub/drop/ee/";
    let sample = repo().join("sample-data/ee-services");
    for f in ["teenused_2025.csv", "hindamised_2025.csv"] {
        upload(&server, drop, &sample.join(f));
    }
    // A multipart upload still in progress is not an object yet: never listed, never read.
    rt().block_on(async {
        let url = url::Url::parse(drop).unwrap();
        let store = deltalake::logstore::store_for(&url, server.options()).unwrap();
        let mut up = store
            .put_multipart(&"teenused_2026.csv".into())
            .await
            .unwrap();
        up.put_part(PutPayload::from_static(b"juhtumi_nr,eesnimi\n"))
            .await
            .unwrap();
        // Neither completed nor aborted.
        std::mem::forget(up);
    });

    let out = ok(&with(&["ingest"]));
    assert!(!out.contains("teenused_2026"), "{out}");
    assert!(server.names(drop).is_empty(), "{:?}", server.names(drop));
    let processed = server.names(&format!("{drop}processed/"));
    assert_eq!(
        processed,
        vec!["hindamised_2025.csv", "teenused_2025.csv"],
        "moved under processed/"
    );

    // The same file dropped again: skipped by its content hash, and moved again.
    upload(&server, drop, &sample.join("teenused_2025.csv"));
    let again = ok(&with(&["ingest"]));
    assert!(again.contains("unchanged"), "{again}");
    assert!(server.names(drop).is_empty());

    // The same files ingested into a local lake from the local folder, with the same key:
    // the same rows and the same pseudonyms.
    let local = Env {
        key: env.key.clone(),
        ..Env::new()
    };
    ok(&local.tip(&["ingest", "--pipeline", "ee-services"]));
    for sql in [
        "SELECT person_id, record_key, period FROM services ORDER BY 2",
        "SELECT person_id, record_key, stage FROM outcomes ORDER BY 2",
    ] {
        let (a, b) = (
            ok(&with(&["query", "--format", "csv", sql])),
            ok(&local.tip(&["query", "--format", "csv", sql])),
        );
        assert!(a.lines().count() > 10, "{a}");
        assert_eq!(a, b, "{sql}");
    }

    // Time travel: lake version 1 is the first submission.
    let subs = "SELECT count(*) FROM submissions";
    assert_eq!(count(&env, &["--config", cfg], subs), 2);
    let first = ok(&with(&["query", "--as-of", "1", "--format", "csv", subs]));
    assert_eq!(first.lines().nth(1), Some("1"), "{first}");

    // Export to a local directory, and an extract into the bucket.
    let export = env.path("export");
    ok(&with(&["export", "--out", export.to_str().unwrap()]));
    assert!(export.join("manifest.json").exists());
    ok(&with(&[
        "extract",
        "--name",
        "regional-monthly",
        "--month",
        "2025-06",
    ]));
    let extract = server.names("s3://hub/extracts/regional-monthly/2025-06/");
    assert!(
        extract.contains(&"manifest.json".to_string()) && extract.len() > 3,
        "{extract:?}"
    );

    independent_reader_agrees(&server, &env, cfg);
    uploads_through_serve(&server, &env);
    upkeep_and_erasure(&server, &with);
}

/// `tip maintain` and `tip erase` on the bucket: afterwards no object under the lake holds
/// the erased pseudonym (data files, log entries, checkpoints).
fn upkeep_and_erasure(server: &S3Server, with: &dyn Fn(&[&str]) -> Output) {
    ok(&with(&["check"]));
    // The scheduler: its memory (schedule_runs) in the lake, its extract into the bucket.
    let log = ok(&with(&[
        "schedule",
        "--once",
        "--now",
        "2025-08-03T02:05:00Z",
    ]));
    assert!(
        log.contains("extract:regional-monthly slot 2025-08-03T02:00:00Z succeeded"),
        "{log}"
    );
    let july = server.names("s3://hub/extracts/regional-monthly/2025-07/");
    assert!(july.contains(&"manifest.json".to_string()), "{july:?}");
    let tables = ok(&with(&["tables"]));
    assert!(
        tables.contains("person_id") && tables.contains("key_epochs"),
        "{tables}"
    );
    ok(&with(&["maintain"]));
    let q = "SELECT person_id FROM services ORDER BY record_key LIMIT 1";
    let person = ok(&with(&["query", "--format", "csv", q]))
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(person.starts_with("per_"), "{person}");
    ok(&with(&["erase", "--person-id", &person, "--confirm"]));
    let lake = "s3://hub/lake/";
    let store = server.store(lake);
    let objects = server.all_objects(lake);
    assert!(objects.len() > 20, "{objects:?}");
    for name in objects {
        let bytes = rt().block_on(store.get(&name)).unwrap().unwrap();
        assert!(
            !bytes.windows(person.len()).any(|w| w == person.as_bytes()),
            "{name} still holds the erased pseudonym"
        );
    }
}

/// The `deltalake` Python package reads every table of the S3 lake: the same row counts as
/// `tip query`, and every table at protocol (1, 2).
fn independent_reader_agrees(server: &S3Server, env: &Env, cfg: &str) {
    let catalog = tip::schema::Catalog::load(&repo().join("schemas")).unwrap();
    let tables: Vec<String> = tip::lake::Lake::specs(&catalog)
        .into_iter()
        .map(|s| s.name)
        .collect();
    let o = Command::new("python3")
        .arg(repo().join("tests/python/delta_read.py"))
        .args(["--endpoint", &server.endpoint, "s3://hub/lake"])
        .args(&tables)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let read: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for t in &tables {
        let r = &read[t.as_str()];
        assert_eq!(r["min_reader_version"], 1, "{t}: {r}");
        assert_eq!(r["min_writer_version"], 2, "{t}: {r}");
        // The scheduler's memory is not a table analysts query.
        if t != tip::lake::system::RUNS {
            let n = count(
                env,
                &["--config", cfg],
                &format!("SELECT count(*) FROM {t}"),
            );
            assert_eq!(r["rows"].as_u64(), Some(n), "{t}");
        }
    }
}

/// An upload through `tip serve` with the lake and the inbox in the bucket.
fn uploads_through_serve(server: &S3Server, env: &Env) {
    let edits = [(
        "[serve]",
        format!(
            "[storage]\nendpoint = {:?}\nallow_http = true\n\n[serve]",
            server.endpoint
        ),
    )];
    let mut edits: Vec<(String, String)> =
        edits.into_iter().map(|(a, b)| (a.to_string(), b)).collect();
    edits.push((
        format!("inbox = {:?}", env.path("uploads")),
        "inbox = \"s3://hub/inbox\"".to_string(),
    ));
    let edits: Vec<(&str, &str)> = edits
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let s = serve::start_edited(env, true, &edits);
    let partner = serve::token(env, &s.cfg, "partner", Some("LT-NGO-01"));
    let analyst = serve::token(env, &s.cfg, "analyst", None);
    let csv = "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n\
               S3-1,Gabrielė,Kazlauskaitė,2011-05-17,2025-03-04,female,LT,identified,sexual\n";
    let r = serve::post(
        &s,
        "/api/v1/uploads?type=case&format=csv",
        &partner,
        &[("Content-Type", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["upload_id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["status"], "committed");
    // The receipt is kept in the bucket, and read back from there.
    let kept = server.names("s3://hub/inbox/LT-NGO-01/");
    assert_eq!(kept, vec![format!("{id}.json")]);
    let listed = serve::get(&s, "/api/v1/uploads", &partner).json();
    assert_eq!(listed[0]["upload_id"], id.as_str());
    let r = serve::sql(
        &s,
        &analyst,
        "SELECT count(*) AS n FROM cases WHERE partner = 'LT-NGO-01'",
        "application/json",
    );
    assert_eq!(r.json()[0]["n"], 1, "{}", r.text());
    // Nothing identifying was left behind in the bucket: no upload body, only the receipt.
    let inbox = server.all_objects("s3://hub/inbox/");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
}

/// Concurrent writers, each a separate `tip load` process, on one S3 lake: two, then eight.
/// Every submission commits (lost races are retried), and no row is lost or doubled.
#[test]
fn concurrent_loads_on_an_s3_lake_all_commit() {
    let server = S3Server::start(&["race"], &[]);
    let env = s3_env(&server, "race");
    let partners = ["LT-NGO-01", "LT-POL-01", "LV-POL-01", "PL-CP-01"];
    let file = |i: usize| {
        let p = env.path(&format!("cases-{i}.csv"));
        let mut text = "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n".to_string();
        for r in 0..40 {
            text.push_str(&format!(
                "C{i}-{r},Vardas{r},Pavarde{i},2010-0{}-1{},2025-0{}-0{},female,LT,identified,sexual\n",
                1 + r % 9,
                r % 10,
                1 + i % 9,
                1 + r % 9
            ));
        }
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut sent = 0;
    for (round, n) in [(0, 2), (1, 8)] {
        let children: Vec<Child> = (0..n)
            .map(|k| {
                let i = round * 10 + k;
                let f = file(i);
                Command::new(env!("CARGO_BIN_EXE_tip"))
                    .current_dir(repo())
                    .env_remove("TIP_KEY")
                    .envs(env.vars.iter().cloned())
                    .args(["--lake", env.lake.to_str().unwrap()])
                    .args(["--key-file", env.key.to_str().unwrap()])
                    .args([
                        "load",
                        "--partner",
                        partners[k % partners.len()],
                        "--type",
                        "case",
                    ])
                    .arg(&f)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        }
        sent += n * 40;
        assert_eq!(count(&env, &[], "SELECT count(*) FROM cases"), sent as u64);
        assert_eq!(
            count(&env, &[], "SELECT count(DISTINCT record_key) FROM cases"),
            sent as u64
        );
    }
    assert_eq!(count(&env, &[], "SELECT count(*) FROM submissions"), 10);
    assert_eq!(
        count(
            &env,
            &[],
            "SELECT count(DISTINCT submission_id) FROM submissions"
        ),
        10
    );
}

/// A store that accepts a second create of the same object would let two writers overwrite
/// each other's commits: tip refuses to write there, says why, and leaves nothing behind.
#[test]
fn a_store_that_ignores_conditional_writes_is_refused() {
    let server = S3Server::start(&["unsafe"], &["--strip-conditions"]);
    let env = s3_env(&server, "unsafe");
    let f = env.path("cases.csv");
    std::fs::write(
        &f,
        "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n\
         U-1,Ona,Ona,2011-05-17,2025-03-04,female,LT,identified,sexual\n",
    )
    .unwrap();
    let o = env.load_on(&env.lake, "LT-NGO-01", "case", &f);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("does not honour conditional writes") && err.contains("s3://unsafe/lake"),
        "{err}"
    );
    assert!(!err.contains("Ona"), "{err}");
    let left = server.all_objects("s3://unsafe/");
    assert!(left.is_empty(), "{left:?}");
}

/// The store takes a commit but its answer is lost (a 500 after the write): the client retries
/// the create, finds the version taken, and Delta's conflict check finds its own transaction
/// there. The submission is committed once — data and ledger row — and the load succeeds.
#[test]
fn a_commit_whose_answer_was_lost_is_not_committed_twice() {
    let log_dir = tempfile::tempdir().unwrap();
    let lost_log = log_dir.path().join("lost.txt");
    let server = S3Server::start(
        &["lost"],
        &[
            "--lose-answer",
            "/lake/cases/_delta_log/00000000000000000001.json",
            "--lose-answer",
            "/lake/submissions/_delta_log/00000000000000000001.json",
            "--lost-log",
            lost_log.to_str().unwrap(),
        ],
    );
    let env = s3_env(&server, "lost");
    let f = env.path("cases.csv");
    std::fs::write(
        &f,
        "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n\
         L-1,Ona,Jonaitė,2011-05-17,2025-03-04,female,LT,identified,sexual\n\
         L-2,Rasa,Petraitė,2012-01-02,2025-03-05,female,LT,identified,labour\n",
    )
    .unwrap();
    let o = env.load_on(&env.lake, "LT-NGO-01", "case", &f);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let lost = std::fs::read_to_string(&lost_log).unwrap_or_default();
    assert_eq!(lost.lines().count(), 2, "both answers were lost: {lost:?}");
    assert_eq!(count(&env, &[], "SELECT count(*) FROM cases"), 2);
    assert_eq!(count(&env, &[], "SELECT count(*) FROM submissions"), 1);
    for table in ["cases", "submissions"] {
        let log: Vec<String> = server
            .all_objects(&format!("s3://lost/lake/{table}/_delta_log/"))
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .collect();
        assert_eq!(log.len(), 2, "{table}: creation and one commit: {log:?}");
    }
}
