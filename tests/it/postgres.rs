//! The Postgres wire protocol on `tip serve --postgres`, driven by real clients: Debian's psql
//! and psycopg 3 from PyPI (`tests/python/pg_check.py`), replaying what pgjdbc (DBeaver,
//! Metabase) and Grafana send. Every table and view answers through Postgres as through
//! `tip query`; the same tokens, gate and audit hold; TLS is required off loopback.

use std::process::Command;

use crate::common::{Env, repo, stderr, stdout};
use crate::serve::{relation_answers, start_full, token};

/// The id of the newest token of `role` (`tip token list`).
pub(crate) fn token_id(env: &Env, cfg: &std::path::Path, role: &str) -> String {
    let o = env.tip(&["--config", cfg.to_str().unwrap(), "token", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .rfind(|l| l.split_whitespace().nth(1) == Some(role))
        .and_then(|l| l.split_whitespace().next())
        .expect("a token of the role")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_answers_as_every_other_door_with_the_same_tokens_gate_and_audit() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, lines) = start_full(&env, false, &[], &["--postgres", "127.0.0.1:0"]);
    let pg = lines[0]
        .strip_prefix("tip serve: Postgres on postgresql://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]))
        .to_string();
    let (host, port) = pg.rsplit_once(':').unwrap();
    let cfg = server.cfg.to_str().unwrap().to_string();
    let analyst = token(&env, &server.cfg, "analyst", None);
    let analyst_id = token_id(&env, &server.cfg, "analyst");
    let partner = token(&env, &server.cfg, "partner", Some("LT-NGO-01"));

    let (relations, answers) = relation_answers(&env, &server.cfg);

    let check = Command::new("python3")
        .arg(repo().join("tests/python/pg_check.py"))
        .args([host, port, &analyst_id, &analyst, &partner])
        .arg(&answers)
        .arg(repo().join("README.md"))
        .output()
        .expect("python3");
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    let report: serde_json::Value = serde_json::from_str(stdout(&check).trim()).unwrap();
    let compared = report["relations"].as_object().unwrap();
    assert_eq!(compared.len(), relations.len());
    assert!(compared["cases"].as_u64().unwrap() > 500, "{report}");
    assert!(compared["persons"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(report["refusals"], 11, "{report}");
    assert_eq!(report["logins"], 6, "{report}");
    assert!(report["startup"].as_u64().unwrap() >= 20, "{report}");

    // One audit record per statement run (its hash, never its text), refusals included; the
    // failed logins are recorded as authentication failures or denials, never with a token.
    let audit = std::fs::read_to_string(env.path("audit.log")).unwrap();
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_analyst = |status: &str| {
        records
            .iter()
            .filter(|r| r["event"] == "sql" && r["status"] == status && r["token_id"] == analyst_id)
            .count()
    };
    assert!(by_analyst("refused") >= 11, "{audit}");
    assert!(by_analyst("ok") >= 2 * relations.len(), "{audit}");
    let failures = records
        .iter()
        .filter(|r| r["event"] == "auth_failure" && r["route"] == "postgres login")
        .count();
    assert!(failures >= 3, "{audit}");
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "denied" && r["route"] == "postgres login"),
        "{audit}"
    );
    assert!(
        !audit.contains("SELECT") && !audit.contains("COPY"),
        "{audit}"
    );
    assert!(
        !audit.contains(&analyst[4..]),
        "the token itself in the audit log"
    );
    assert!(
        !audit.contains(&partner[4..]),
        "the token itself in the audit log"
    );

    // A revoked token ends what its open logins can do, and cannot log in again.
    let o = env.tip(&["--config", &cfg, "token", "revoke", &analyst_id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let psql = Command::new("psql")
        .args(["-X", "-d"])
        .arg(format!(
            "host={host} port={port} dbname=tip user={analyst_id} password={analyst} sslmode=disable"
        ))
        .args(["-c", "SELECT 1"])
        .output()
        .expect("psql");
    assert!(!psql.status.success());
    assert!(
        stderr(&psql).contains("authentication failed"),
        "{}",
        stderr(&psql)
    );
}

/// Over TLS (a self-signed certificate made here), psql logs in with `sslmode=require` on an
/// address that is not loopback; without TLS, or with a certificate that does not load, the
/// Postgres port stops `tip serve` at start: it never answers in plain text.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_speaks_tls_and_refuses_plain_text_off_loopback() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let cfg = repo().join("pipelines/tip.toml");
    let o = env.tip(&[
        "--config",
        cfg.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--postgres",
        "0.0.0.0:0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not loopback"), "{}", stderr(&o));

    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nbm90\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbm90\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let tls = format!("[serve]\ntls_cert = {cert:?}\ntls_key = {key:?}\n");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[serve]\n", &tls);
    let broken = env.path("broken.toml");
    std::fs::write(&broken, text).unwrap();
    let o = env.tip(&[
        "--config",
        broken.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--postgres",
        "0.0.0.0:0",
    ]);
    assert!(!o.status.success(), "started with a broken certificate");
    assert!(stderr(&o).contains("serve.tls_"), "{}", stderr(&o));

    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", stderr(&made));
    let env2 = Env::new();
    env2.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, lines) = start_full(
        &env2,
        false,
        &[("[serve]\n", &tls)],
        &["--postgres", "0.0.0.0:0"],
    );
    let port = lines[0].rsplit_once(':').unwrap().1.to_string();
    let analyst = token(&env2, &server.cfg, "analyst", None);
    let run = |sslmode: &str| {
        Command::new("psql")
            .args(["-X", "-A", "-t", "-d"])
            .arg(format!(
                "host=127.0.0.1 port={port} dbname=tip user=analyst password={analyst} sslmode={sslmode}"
            ))
            .args(["-c", "SELECT count(*) FROM cases"])
            .output()
            .expect("psql")
    };
    let o = run("require");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).trim().parse::<u64>().unwrap() > 500,
        "{}",
        stdout(&o)
    );
    // A client that does not ask for TLS is turned away, not answered in plain text.
    let o = run("disable");
    assert!(
        !o.status.success(),
        "answered in plain text: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("requires TLS"), "{}", stderr(&o));
    drop(server);
}
