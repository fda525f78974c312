//! The analysts' doors under a dashboard's steady load and under attack (issue 31): the
//! server's memory stays flat over thousands of statements, a stranger cannot make it buffer
//! a large message before login (nor an analyst after), silent sockets lose their places, and
//! token changes made at the same moment are all kept.

use std::process::Command;

use crate::common::{Env, repo, stderr, stdout};
use crate::serve::{Server, start_full, token};

/// The server with a Postgres port, and that port's host and number.
fn postgres(env: &Env, edits: &[(&str, &str)]) -> (Server, String, String) {
    let (server, lines) = start_full(env, false, edits, &["--postgres", "127.0.0.1:0"]);
    let pg = lines[0]
        .strip_prefix("tip serve: Postgres on postgresql://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]))
        .to_string();
    let (host, port) = pg.rsplit_once(':').unwrap();
    (server, host.to_string(), port.to_string())
}

/// The id of the newest token of `role`.
fn newest_id(env: &Env, server: &Server, role: &str) -> String {
    let o = env.tip(&["--config", server.cfg.to_str().unwrap(), "token", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .rfind(|l| l.split_whitespace().nth(1) == Some(role))
        .and_then(|l| l.split_whitespace().next())
        .expect("a token of the role")
        .to_string()
}

/// `tests/python/pg_doors.py CHECK` against the server, its JSON line.
fn doors(env: &Env, server: &Server, host: &str, port: &str, check: &str) -> serde_json::Value {
    let secret = token(env, &server.cfg, "analyst", None);
    let id = newest_id(env, server, "analyst");
    let o = Command::new("python3")
        .arg(repo().join("tests/python/pg_doors.py"))
        .args([
            host,
            port,
            &id,
            &secret,
            &server.child.id().to_string(),
            check,
        ])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap()
}

fn audit(env: &Env) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each Postgres statement's session held a handle on itself through `pg_catalog` and was
/// never freed: 300 `SELECT 1` grew the server by 1.6 GiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_dashboards_statements_leave_the_servers_memory_flat() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, host, port) = postgres(&env, &[]);
    let r = doors(&env, &server, &host, &port, "statements");
    eprintln!("server resident memory (MiB): {r}");
    let before = r["before"].as_f64().unwrap();
    for after in ["after_one", "after_twenty"] {
        let grown = r[after].as_f64().unwrap() - before;
        assert!(
            grown < 50.0,
            "{after}: the server grew by {grown:.0} MiB: {r}"
        );
    }
}

/// A message's declared length is checked at its header: 64 sockets that never log in, each
/// declaring 1 GiB, are ended without the server holding their messages, while a real client
/// logs in within a second throughout; a logged-in statement over the limit is refused with
/// an error that names it, and audited.
#[tokio::test(flavor = "multi_thread")]
async fn messages_over_the_limit_are_refused_at_their_header_before_and_after_login() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, host, port) = postgres(&env, &[]);
    let r = doors(&env, &server, &host, &port, "giants");
    eprintln!("giants: {r}");
    let grown = r["peak"].as_f64().unwrap() - r["base"].as_f64().unwrap();
    assert!(grown < 100.0, "the server grew by {grown:.0} MiB: {r}");
    assert_eq!(r["closed"], 64, "{r}");
    assert!(r["logins"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["slowest_login"].as_f64().unwrap() < 1.0, "{r}");
    let refused = r["refused"].as_str().unwrap();
    assert!(refused.contains("over this server's limit"), "{refused}");
    let records = audit(&env);
    let too_large = |logged_in: bool| {
        records
            .iter()
            .filter(|a| a["reason"] == "message_too_large" && a["logged_in"] == logged_in)
            .count()
    };
    assert_eq!(too_large(false), 64, "{records:?}");
    assert_eq!(too_large(true), 1, "{records:?}");
}

/// Prepared statements are bounded per connection, and `DEALLOCATE ALL` frees them (psycopg
/// with libpq before 17 relies on it); `DEALLOCATE` of an unknown name fails as in Postgres.
#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_are_bounded_and_deallocate_frees_them() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, host, port) = postgres(&env, &[]);
    let r = doors(&env, &server, &host, &port, "prepared");
    // psycopg names its statements; the unnamed one is the 257th place.
    let prepared = r["prepared"].as_u64().unwrap();
    assert!((255..=256).contains(&prepared), "{r}");
    assert!(
        r["refused"]
            .as_str()
            .unwrap()
            .contains("at most 256 prepared statements"),
        "{r}"
    );
    assert_eq!(r["after_deallocate"], 200, "{r}");
    assert_eq!(r["unknown"], "26000", "{r}");
}

/// Sockets that connect and say nothing hold a place only until the login time
/// (`serve.login_timeout_seconds`): with every place taken by silent sockets, psql still logs
/// in once their time is up.
#[tokio::test(flavor = "multi_thread")]
async fn silent_sockets_lose_their_places_at_the_login_time() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let edits = [
        ("login_timeout_seconds = 10", "login_timeout_seconds = 2"),
        ("max_connections = 64", "max_connections = 8"),
    ];
    let (server, host, port) = postgres(&env, &edits);
    let secret = token(&env, &server.cfg, "analyst", None);
    let id = newest_id(&env, &server, "analyst");
    let silent: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(format!("{host}:{port}")).unwrap())
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let mut logged_in = false;
    while t0.elapsed() < std::time::Duration::from_secs(8) {
        let psql = Command::new("psql")
            .args(["-X", "-A", "-t", "-d"])
            .arg(format!(
                "host={host} port={port} dbname=tip user={id} password={secret} sslmode=disable connect_timeout=5"
            ))
            .args(["-c", "SELECT 1"])
            .output()
            .expect("psql");
        if psql.status.success() {
            logged_in = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let waited = t0.elapsed().as_secs_f64();
    assert!(
        logged_in,
        "no login within 8 s while silent sockets held the places"
    );
    assert!(waited < 4.0, "the first login came after {waited:.1} s");
    drop(silent);
}

/// `tip token new` and `tip token revoke` at the same moment: every revocation holds and every
/// token made is kept, and all share one SCRAM salt (a lost revocation was reported done).
#[test]
fn racing_token_changes_lose_nothing() {
    let env = Env::new();
    let cfg = env.path("tokens.toml");
    let text = std::fs::read_to_string(repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace(
            "tokens = \".tip/tokens.json\"",
            &format!("tokens = \"{}\"", env.path("tokens.json").display()),
        );
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let tip = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tip"));
        c.current_dir(repo()).args(["--config", &cfg]).args(args);
        c
    };
    let made: Vec<String> = (0..30)
        .map(|_| {
            let o = tip(&["token", "new", "--role", "analyst"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", stderr(&o));
            String::from_utf8_lossy(&o.stdout).to_string()
        })
        .collect();
    assert_eq!(made.len(), 30);
    let list = tip(&["token", "list"]).output().unwrap();
    let ids: Vec<String> = stdout(&list)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("analyst"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 30);
    // Thirty revocations racing thirty new tokens.
    let children: Vec<std::process::Child> = ids
        .iter()
        .flat_map(|id| {
            [
                tip(&["token", "revoke", id]).spawn().unwrap(),
                tip(&["token", "new", "--role", "analyst"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
            ]
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let tokens: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(env.path("tokens.json")).unwrap()).unwrap();
    assert_eq!(tokens.len(), 60, "a token made at the same moment was lost");
    let revoked = tokens
        .iter()
        .filter(|t| ids.contains(&t["id"].as_str().unwrap().to_string()))
        .filter(|t| !t["revoked_at"].is_null())
        .count();
    assert_eq!(revoked, 30, "a revocation was lost");
    let salts: std::collections::BTreeSet<String> = tokens
        .iter()
        .filter_map(|t| t["scram_sha256"].as_str())
        .filter_map(|s| {
            s.split('$')
                .nth(1)
                .map(|s| s.split(':').nth(1).unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(salts.len(), 1, "{salts:?}");
}
