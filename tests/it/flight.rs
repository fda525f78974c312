//! Arrow Flight SQL on `tip serve --flight`, driven by a real client: the ADBC Flight SQL
//! driver from PyPI (`tests/python/flight_check.py`), the one pandas, Polars and the ODBC
//! driver's Go core share. Every table and view answers the same through Flight SQL (plain and
//! prepared), the HTTP API and `tip query`; the same tokens, gate and audit hold.

use std::process::Command;

use crate::common::{Env, repo, stderr, stdout};
use crate::serve::{relation_answers, start_full, token};

#[tokio::test(flavor = "multi_thread")]
async fn flight_sql_answers_as_every_other_door_with_the_same_tokens_gate_and_audit() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, lines) = start_full(&env, false, &[], &["--flight", "127.0.0.1:0"]);
    let flight = lines[0]
        .strip_prefix("tip serve: Flight SQL on grpc://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]))
        .to_string();
    let analyst = token(&env, &server.cfg, "analyst", None);

    // Every relation analysts see, answered by `tip query`.
    let (relations, answers) = relation_answers(&env, &server.cfg);

    let check = Command::new("python3")
        .arg(repo().join("tests/python/flight_check.py"))
        .args([&flight, &server.addr, &analyst])
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
    let views = report["views"].as_array().unwrap();
    assert!(views.iter().any(|v| v == "cross_border_routes"), "{report}");
    assert!(!views.iter().any(|v| v == "cases"), "{report}");
    assert_eq!(report["refusals"], 12);

    // One audit record per statement run (its hash, never its text), refusals included; the
    // bad tokens are recorded as authentication failures.
    let audit = std::fs::read_to_string(env.path("audit.log")).unwrap();
    let records: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_flight = |status: &str| {
        records
            .iter()
            .filter(|r| r["event"] == "sql" && r["status"] == status && r["role"] == "analyst")
            .count()
    };
    assert!(by_flight("refused") >= 12, "{audit}");
    assert!(by_flight("ok") >= 4 * relations.len(), "{audit}");
    assert!(
        records.iter().any(|r| r["event"] == "auth_failure"
            && r["route"].as_str().unwrap().starts_with("flight-sql")),
        "{audit}"
    );
    assert!(
        !audit.contains("SELECT") && !audit.contains("COPY"),
        "{audit}"
    );
    assert!(
        !audit.contains(&analyst),
        "the token itself in the audit log"
    );
}

/// A Flight SQL port on an address other than loopback without TLS, or with a certificate
/// that does not load, stops `tip serve` at start: it never answers in plain text.
#[test]
fn flight_sql_refuses_plain_text_off_loopback_and_a_broken_certificate() {
    let env = Env::new();
    let cfg = repo().join("pipelines/tip.toml");
    let cfg = cfg.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["--config", cfg, "serve", "--listen", "127.0.0.1:0"];
        args.extend(extra);
        env.tip(&args)
    };
    let o = serve(&["--flight", "0.0.0.0:0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not loopback"), "{}", stderr(&o));

    let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text = text.replace(
        "[serve]\n",
        &format!("[serve]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
    );
    let broken = env.path("broken.toml");
    std::fs::write(&broken, text).unwrap();
    let o = env.tip(&[
        "--config",
        broken.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--flight",
        "0.0.0.0:0",
    ]);
    assert!(!o.status.success(), "started with a broken certificate");
    assert!(stderr(&o).contains("serve.tls_cert"), "{}", stderr(&o));
}
