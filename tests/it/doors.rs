//! The analysts' doors under a dashboard's steady load and under attack (issue 31): the
//! server's memory stays flat over thousands of statements, a stranger cannot make it buffer
//! a large message before login (nor an analyst after), silent sockets lose their places, and
//! token changes made at the same moment are all kept.

use std::process::Command;

use crate::common::{Env, repo, stderr, stdout};
use crate::postgres::token_id;
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

/// `tests/python/pg_doors.py CHECK` against the server, its JSON line.
fn doors(env: &Env, server: &Server, host: &str, port: &str, check: &str) -> serde_json::Value {
    let secret = token(env, &server.cfg, "analyst", None);
    let id = token_id(env, &server.cfg, "analyst");
    let revoke = serde_json::json!([
        env!("CARGO_BIN_EXE_tip"),
        "--config",
        server.cfg.to_str().unwrap(),
        "token",
        "revoke",
        id
    ]);
    let o = Command::new("python3")
        .current_dir(repo())
        .env("REVOKE_CMD", revoke.to_string())
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
    let id = token_id(&env, &server.cfg, "analyst");
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

/// The same on the Flight SQL door: sockets that never make an authorised call are ended at
/// the login time, and a real client (the ADBC driver) then gets a place; one that logged in
/// keeps its connection past that time.
#[tokio::test(flavor = "multi_thread")]
async fn silent_flight_connections_lose_their_places_at_the_login_time() {
    use std::io::Read;
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let edits = [
        ("login_timeout_seconds = 10", "login_timeout_seconds = 2"),
        ("max_connections = 64", "max_connections = 8"),
    ];
    let (server, lines) = start_full(&env, false, &edits, &["--flight", "127.0.0.1:0"]);
    let addr = lines[0]
        .strip_prefix("tip serve: Flight SQL on grpc://")
        .unwrap_or_else(|| panic!("unexpected line {:?}", lines[0]))
        .to_string();
    let secret = token(&env, &server.cfg, "analyst", None);
    let t0 = std::time::Instant::now();
    let ended: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                    .unwrap();
                let mut buf = [0u8; 1024];
                // The server's HTTP/2 settings may come first; then the end.
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return std::time::Instant::now(),
                        Ok(_) => continue,
                    }
                }
            })
        })
        .collect();
    let script = r#"
import sys, time
import adbc_driver_flightsql.dbapi as flight_sql
addr, token = sys.argv[1:3]
t0 = time.monotonic()
while True:
    try:
        conn = flight_sql.connect(f"grpc://{addr}", db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"})
        cur = conn.cursor()
        cur.execute("SELECT 1 AS one")
        assert cur.fetchall() == [(1,)]
        break
    except Exception:
        if time.monotonic() - t0 > 10:
            raise
        time.sleep(0.2)
# Logged in: the connection outlives the login time.
time.sleep(3)
cur.execute("SELECT 2 AS two")
assert cur.fetchall() == [(2,)]
print(round(time.monotonic() - t0, 2))
"#;
    let o = Command::new("python3")
        .args(["-c", script, &addr, &secret])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for e in ended {
        let at = e.join().unwrap().duration_since(t0).as_secs_f64();
        assert!(
            (1.5..6.0).contains(&at),
            "a silent connection ended after {at:.1} s"
        );
    }
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

/// A simple-protocol message of several queries: the answers before its last are held until
/// the message ends, so together they are held to one answer limit (each alone is within it).
#[tokio::test(flavor = "multi_thread")]
async fn a_messages_held_answers_share_one_answer_limit() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let edits = [("max_result_mib = 512", "max_result_mib = 1")];
    let (server, host, port) = postgres(&env, &edits);
    let secret = token(&env, &server.cfg, "analyst", None);
    let id = token_id(&env, &server.cfg, "analyst");
    let psql = |sql: &str| {
        Command::new("psql")
            .args(["-X", "-A", "-t", "-d"])
            .arg(format!(
                "host={host} port={port} dbname=tip user={id} password={secret} sslmode=disable"
            ))
            .args(["-c", sql])
            .output()
            .expect("psql")
    };
    let part = "SELECT repeat('x', 1000) FROM generate_series(1, 600)";
    // One such answer, or two sent apart, are within the limit ...
    let one = psql(part);
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(stdout(&one).lines().count(), 600);
    let two = psql(&format!("{part}; SELECT 1"));
    assert!(two.status.success(), "{}", stderr(&two));
    // ... three held in one message are not.
    let three = psql(&format!("{part}; {part}; SELECT 1"));
    assert!(!three.status.success(), "{}", stdout(&three));
    assert!(
        stderr(&three).contains("together they are over the answer limit"),
        "{}",
        stderr(&three)
    );
    // Refusals before the gate (too many queries in one message, a statement too long for
    // the parser) leave their audit record too, naming the door.
    let many = psql(&vec!["SELECT 1"; 17].join("; "));
    assert!(!many.status.success());
    // Longer than a command line takes: from a file (one statement, one message).
    let file = env.path("long.sql");
    std::fs::write(&file, format!("SELECT '{}';", "x".repeat(700_000))).unwrap();
    let long = Command::new("psql")
        .args(["-X", "-A", "-t", "-d"])
        .arg(format!(
            "host={host} port={port} dbname=tip user={id} password={secret} sslmode=disable"
        ))
        .args(["-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .output()
        .expect("psql");
    assert!(!long.status.success());
    assert!(
        stderr(&long).contains("max_sql_tokens"),
        "{}",
        stderr(&long)
    );
    let limits = audit(&env)
        .into_iter()
        .filter(|a| a["event"] == "sql" && a["door"] == "postgres" && a["status"] == "limit")
        .count();
    assert!(limits >= 2, "{limits} limit records");
}

/// A revocation ends an answer that is streaming at its next batch, not at its end.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_ends_a_streaming_answer() {
    let env = Env::new();
    env.ctx().await.run_pipelines(&[]).await.unwrap();
    let (server, host, port) = postgres(&env, &[]);
    let r = doors(&env, &server, &host, &port, "revoked");
    let rows = r["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < 3_000_000, "{r}");
    assert!(r["error"].as_str().unwrap().contains("revoked"), "{r}");
}

/// The HTTP port has a connection cap and a deadline for a whole first request: silent
/// sockets and one that trickles its headers a byte at a time are closed at the login time,
/// and a real request then gets a place.
#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_http_connections_lose_their_places_at_the_login_time() {
    use std::io::{Read, Write};
    let env = Env::new();
    let edits = [
        ("login_timeout_seconds = 10", "login_timeout_seconds = 2"),
        ("max_http_connections = 256", "max_http_connections = 8"),
    ];
    let (server, _) = start_full(&env, false, &edits, &[]);
    let t0 = std::time::Instant::now();
    let ended: Vec<_> = (0..8)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                    .unwrap();
                let slow = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
                let mut buf = [0u8; 1024];
                for k in 0..100 {
                    // One socket trickles its headers, a byte every 300 ms; the others say
                    // nothing.
                    if i == 0 && k < slow.len() && s.write_all(&slow[k..k + 1]).is_err() {
                        return std::time::Instant::now();
                    }
                    match s.read(&mut buf) {
                        Ok(0) => return std::time::Instant::now(),
                        Ok(_) => continue,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            continue;
                        }
                        Err(_) => return std::time::Instant::now(),
                    }
                }
                std::time::Instant::now()
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut answered = None;
    while t0.elapsed() < std::time::Duration::from_secs(8) {
        let ok = std::panic::catch_unwind(|| crate::serve::get(&server, "/healthz", "none"));
        if let Ok(r) = ok
            && r.status == 200
        {
            answered = Some(t0.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let answered = answered.expect("no answer within 8 s while the places were held");
    assert!(
        answered < 4.5,
        "the first answer came after {answered:.1} s"
    );
    for e in ended {
        let at = e.join().unwrap().duration_since(t0).as_secs_f64();
        assert!(
            (1.5..6.0).contains(&at),
            "an idle or slow connection ended after {at:.1} s"
        );
    }
}
