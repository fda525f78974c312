//! `tip serve` over real HTTP on loopback: the tip binary listening on a free port, requests
//! written by hand on a TCP socket (so the test sees exactly what is sent and when), tokens made
//! with `tip token new`, and the upload page driven in headless Chromium.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Env, all_files, repo, stderr};

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) cfg: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's configuration: the test's own token file, inbox and audit log, and (`small`)
/// upload limits of 1 MiB / 2 MiB decompressed and answers of at most 200 000 rows.
fn config(env: &Env, small: bool) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("pipelines/tip.toml")).unwrap();
    for (from, to) in [
        (
            "tokens = \".tip/tokens.json\"",
            format!("tokens = {:?}", env.path("tokens.json")),
        ),
        (
            "inbox = \".tip/uploads\"",
            format!("inbox = {:?}", env.path("uploads")),
        ),
        (
            "log = \".tip/audit.log\"",
            format!("log = {:?}", env.path("audit.log")),
        ),
    ]
    .into_iter()
    .chain(
        small
            .then(|| {
                [
                    ("max_upload_mib = 100", "max_upload_mib = 1".to_string()),
                    (
                        "max_result_rows = 5000000",
                        "max_result_rows = 200000".to_string(),
                    ),
                    (
                        "max_decompressed_mib = 1024",
                        "max_decompressed_mib = 2".to_string(),
                    ),
                    // Compactions happen in the tests, not only after 50 commits.
                    ("compact_every = 50", "compact_every = 3".to_string()),
                ]
            })
            .into_iter()
            .flatten(),
    ) {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, &to);
    }
    let p = env.path("serve.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn start(env: &Env) -> Server {
    start_with(env, true)
}

pub(crate) fn start_with(env: &Env, small: bool) -> Server {
    start_edited(env, small, &[])
}

/// A server whose configuration has `edits` (text replacements) made too.
pub(crate) fn start_edited(env: &Env, small: bool, edits: &[(&str, &str)]) -> Server {
    start_full(env, small, edits, &[]).0
}

/// A server started with `serve_args` after `--listen 127.0.0.1:0`, and the lines it printed
/// after its first: one for each other port (Flight SQL).
pub(crate) fn start_full(
    env: &Env,
    small: bool,
    edits: &[(&str, &str)],
    serve_args: &[&str],
) -> (Server, Vec<String>) {
    let cfg = config(env, small);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tip"))
        .current_dir(repo())
        .env_remove("TIP_KEY")
        .envs(env.vars.iter().cloned())
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--lake",
            env.lake.to_str().unwrap(),
        ])
        .args([
            "--key-file",
            env.key.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(serve_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tip serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("tip serve: listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let others = serve_args
        .iter()
        .filter(|a| a.starts_with("--flight") || a.starts_with("--postgres"))
        .map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            l.trim().to_string()
        })
        .collect();
    (Server { child, addr, cfg }, others)
}

/// Every relation analysts see, and a directory of their answers through `tip query`
/// (`<relation>.ndjson`), for the protocol tests to compare against.
pub(crate) fn relation_answers(env: &Env, cfg: &Path) -> (Vec<String>, PathBuf) {
    let cfg = cfg.to_str().unwrap();
    let listed = env.tip(&[
        "--config",
        cfg,
        "query",
        "--format",
        "csv",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'lake' ORDER BY 1",
    ]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let relations: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert!(relations.len() >= 15, "{relations:?}");
    let answers = env.path("answers");
    std::fs::create_dir_all(&answers).unwrap();
    for name in &relations {
        let sql = format!("SELECT * FROM {name}");
        let o = env.tip(&["--config", cfg, "query", "--format", "ndjson", &sql]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        std::fs::write(answers.join(format!("{name}.ndjson")), &o.stdout).unwrap();
    }
    (relations, answers)
}

pub(crate) fn token(env: &Env, cfg: &Path, role: &str, org: Option<&str>) -> String {
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "token",
        "new",
        "--role",
        role,
    ];
    if let Some(o) = org {
        args.extend(["--org", o]);
    }
    let o = env.tip(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "the token alone on stdout");
    out.trim().to_string()
}

pub(crate) struct Reply {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// False when the server cut a streamed answer off.
    complete: bool,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }
}

/// One HTTP/1.1 exchange. `body` None sends the headers only (with `length` declared).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    length: Option<usize>,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    // Generous: a bounded statement on a loaded two-core machine can take a while; the
    // timeout only keeps a hung server from hanging the suite.
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let len = length.or(body.map(|b| b.len())).unwrap_or(0);
    req.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        // The server may answer (413) and close before it has read everything.
        let _ = s.write_all(b);
    }
    read_reply(&mut s)
}

fn read_reply(s: &mut TcpStream) -> Reply {
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).expect("a response");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .unwrap();
    let mut headers = HashMap::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
    }
    let mut body = Vec::new();
    let mut complete = true;
    if let Some(n) = headers.get("content-length") {
        body.resize(n.parse().unwrap(), 0);
        r.read_exact(&mut body).unwrap();
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        // A response the server aborts (an answer stopped part-way) ends without the last,
        // empty chunk: it is then not complete.
        complete = false;
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                break;
            };
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            if n == 0 {
                complete = true;
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Reply {
        status,
        headers,
        body,
        complete,
    }
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

pub(crate) fn get(s: &Server, path: &str, token: &str) -> Reply {
    http(
        &s.addr,
        "GET",
        path,
        &[("Authorization", &bearer(token))],
        None,
        None,
    )
}

/// POSTs `body` with the token and `headers`.
pub(crate) fn post(
    s: &Server,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let auth = bearer(token);
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    http(&s.addr, "POST", path, &all, Some(body), None)
}

const NAMES: [&str; 4] = ["Gabrielė", "Kazlauskaitė", "Mantas", "Žukauskas"];

fn cases_csv() -> String {
    "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n\
     UP-1,Gabrielė,Kazlauskaitė,2011-05-17,2025-03-04,female,LT,identified,sexual\n\
     UP-2,Mantas,Žukauskas,2010-09-30,2025-03-12,male,LT,presumed,labour\n\
     UP-3,Mantas,Žukauskas,2010-09-30,2025-13-12,male,LT,presumed,labour\n"
        .to_string()
}

fn ledger_rows(s: &Server, analyst: &str) -> u64 {
    let r = sql(
        s,
        analyst,
        "SELECT count(*) AS n FROM submissions",
        "application/json",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()[0]["n"].as_u64().unwrap()
}

pub(crate) fn sql(s: &Server, t: &str, q: &str, accept: &str) -> Reply {
    let body = serde_json::to_vec(&serde_json::json!({ "sql": q })).unwrap();
    http(
        &s.addr,
        "POST",
        "/api/v1/sql",
        &[
            ("Authorization", &bearer(t)),
            ("Content-Type", "application/json"),
            ("Accept", accept),
        ],
        Some(&body),
        None,
    )
}

pub(crate) fn inbox_files(env: &Env) -> Vec<PathBuf> {
    let d = env.path("uploads");
    if d.exists() {
        all_files(&d)
    } else {
        Vec::new()
    }
}

#[test]
fn partner_uploads_analyst_queries_and_every_rule_holds() {
    let env = Env::new();
    let s = start(&env);
    let a = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    let b = token(&env, &s.cfg, "partner", Some("PL-CP-01"));
    let analyst = token(&env, &s.cfg, "analyst", None);
    let admin = token(&env, &s.cfg, "admin", None);
    let tokens_file = std::fs::read_to_string(env.path("tokens.json")).unwrap();
    for t in [&a, &b, &analyst, &admin] {
        assert!(!tokens_file.contains(&t[4..]), "a token stored in clear");
    }

    assert_eq!(
        http(&s.addr, "GET", "/healthz", &[], None, None).status,
        200
    );

    // No token, a wrong token: 401 at once, without the server waiting for the 50 MB body.
    let started = std::time::Instant::now();
    let r = http(
        &s.addr,
        "POST",
        "/api/v1/uploads?type=case&format=csv",
        &[],
        None,
        Some(50_000_000),
    );
    assert_eq!(r.status, 401);
    assert!(r.headers.contains_key("www-authenticate"));
    let r = http(
        &s.addr,
        "POST",
        "/api/v1/uploads?type=case&format=csv",
        &[("Authorization", "Bearer tip_0123456789abcdef")],
        None,
        Some(50_000_000),
    );
    assert_eq!(r.status, 401);
    assert!(started.elapsed() < Duration::from_secs(20));

    // Partner A uploads names and birth dates, pretending to be partner B, with a hostile name.
    let csv = cases_csv();
    let r = post(
        &s,
        "/api/v1/uploads?type=case&format=csv&partner=PL-CP-01&filename=..%2F..%2Fetc%2Fpasswd",
        &a,
        &[("Content-Type", "text/csv")],
        csv.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let receipt = r.json();
    assert_eq!(receipt["status"], "committed");
    assert_eq!(receipt["rows_accepted"], 2);
    assert_eq!(receipt["rows_quarantined"], 1);
    assert_eq!(receipt["quarantined"][0]["row"], 4);
    assert_eq!(receipt["quarantined"][0]["field"], "registered_on");
    assert_eq!(receipt["original_name"], "passwd");
    for n in NAMES
        .iter()
        .chain(["2011-05-17", "2010-09-30", "2025-13-12"].iter())
    {
        assert!(!r.text().contains(n), "the receipt repeats {n}");
    }
    let upload_id = receipt["upload_id"].as_str().unwrap().to_string();
    // The raw file is gone; only receipts remain, inside the partner's own inbox.
    for f in inbox_files(&env) {
        assert!(
            f.starts_with(env.path("uploads").join("LT-NGO-01")),
            "{}",
            f.display()
        );
        assert_eq!(f.extension().unwrap(), "json", "{}", f.display());
    }

    // The lake: A's organisation (from the token, not the parameter), pseudonyms only.
    let r = sql(&s, &analyst, "SELECT * FROM cases", "application/json");
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    for row in rows.as_array().unwrap() {
        assert_eq!(row["partner"], "LT-NGO-01");
        assert!(row["person_id"].as_str().unwrap().starts_with("per_"));
    }
    for n in NAMES {
        assert!(!r.text().contains(n), "the lake holds {n}");
    }

    // A sees its upload; B sees none of A's and cannot read it by id.
    let r = get(&s, "/api/v1/uploads", &a);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 1);
    let r = get(&s, "/api/v1/uploads", &b);
    assert_eq!(r.json().as_array().unwrap().len(), 0);
    let own = format!("/api/v1/uploads/{upload_id}");
    assert_eq!(get(&s, &own, &a).status, 200);
    assert_eq!(get(&s, &own, &b).status, 404);
    // Partners do not query; analysts do not upload.
    assert_eq!(sql(&s, &a, "SELECT 1", "application/json").status, 403);
    let r = post(
        &s,
        "/api/v1/uploads?type=case&format=csv",
        &analyst,
        &[],
        csv.as_bytes(),
    );
    assert_eq!(r.status, 403);

    // The analyst API: JSON, CSV and Arrow IPC by Accept; COPY and DDL refused.
    let q = "SELECT reporting_country, count(*) AS n FROM cases GROUP BY reporting_country";
    let r = sql(&s, &analyst, q, "text/csv");
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/csv"));
    assert_eq!(
        r.text().lines().collect::<Vec<_>>(),
        vec!["reporting_country,n", "LT,2"]
    );
    let r = sql(&s, &analyst, q, "application/vnd.apache.arrow.stream");
    assert_eq!(r.status, 200);
    assert_eq!(
        &r.body[..4],
        &[0xff, 0xff, 0xff, 0xff],
        "an Arrow IPC stream"
    );
    for bad in [
        "COPY (SELECT * FROM cases) TO '/tmp/out.csv'",
        "CREATE TABLE t AS SELECT * FROM cases",
        "DROP TABLE cases",
        "SELECT 1; DROP TABLE cases",
    ] {
        let r = sql(&s, &analyst, bad, "application/json");
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.text().contains("refused"), "{bad}: {}", r.text());
    }

    // Limits: nothing written for any refused upload.
    let ledger_before = ledger_rows(&s, &analyst);
    let inbox_before = inbox_files(&env);
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = post(&s, "/api/v1/uploads?type=case&format=csv", &a, &[], &big);
    assert_eq!(r.status, 413);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(csv.lines().next().unwrap().as_bytes())
        .unwrap();
    gz.write_all(b"\n").unwrap();
    gz.write_all(&vec![b'0'; 20 * 1024 * 1024]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 100 * 1024, "a bomb: {} bytes", bomb.len());
    let r = post(
        &s,
        "/api/v1/uploads?type=case&format=csv",
        &a,
        &[("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = post(&s, "/api/v1/uploads?type=case&format=exe", &a, &[], b"MZ");
    assert_eq!(r.status, 415);
    assert_eq!(
        inbox_files(&env),
        inbox_before,
        "a refused upload left a file"
    );
    assert_eq!(ledger_rows(&s, &analyst), ledger_before);
    // A gzip upload within the limits goes through.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        csv.replace("UP-", "GZ-")
            .replace("2025-03-", "2025-04-")
            .as_bytes(),
    )
    .unwrap();
    let r = post(
        &s,
        "/api/v1/uploads?type=case&format=csv",
        &a,
        &[("Content-Encoding", "gzip")],
        &gz.finish().unwrap(),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Tokens: only admins manage them; a revocation is effective at the next request.
    let r = get(&s, "/api/v1/tokens", &analyst);
    assert_eq!(r.status, 403);
    let r = get(&s, "/api/v1/tokens", &admin);
    assert_eq!(r.status, 200);
    assert_eq!(r.json().as_array().unwrap().len(), 4);
    assert!(!r.text().contains("sha256"));
    let b_id = r.json().as_array().unwrap()[1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = env.tip(&[
        "--config",
        s.cfg.to_str().unwrap(),
        "token",
        "revoke",
        &b_id,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = get(&s, "/api/v1/uploads", &b);
    assert_eq!(r.status, 401, "revoked without a restart");

    // The audit log: every kind of event, one JSON object per line, no name, no token.
    let log = std::fs::read_to_string(env.path("audit.log")).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for k in [
        "auth_failure",
        "denied",
        "upload_accepted",
        "upload_rejected",
        "sql",
        "token_created",
        "token_revoked",
    ] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }
    for n in NAMES {
        assert!(!log.contains(n), "the audit log holds {n}");
    }
    for t in [&a, &b, &analyst, &admin] {
        assert!(!log.contains(&t[4..]), "the audit log holds a token");
    }
    assert!(
        !log.contains("SELECT"),
        "SQL text in the audit log (only its hash belongs there)"
    );
    let sql_event = events
        .iter()
        .find(|e| e["event"] == "sql" && e["status"] == "ok")
        .unwrap();
    assert_eq!(sql_event["role"], "analyst");
    assert_eq!(sql_event["sql_hmac"].as_str().unwrap().len(), 64);
    assert_eq!(sql_event["door"], "http");
}

#[test]
fn the_upload_page_works_in_a_real_browser() {
    let env = Env::new();
    let s = start(&env);
    let a = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    // Lithuanian for a browser that prefers it, English otherwise.
    let r = http(
        &s.addr,
        "GET",
        "/",
        &[("Accept-Language", "lt-LT,lt;q=0.9,en;q=0.5")],
        None,
        None,
    );
    assert!(
        r.text().contains("<html lang=\"lt\">") && r.text().contains("Prisijungti"),
        "{}",
        r.text()
    );
    let r = http(
        &s.addr,
        "GET",
        "/",
        &[("Accept-Language", "en-GB,en;q=0.9")],
        None,
        None,
    );
    assert!(r.text().contains("<html lang=\"en\">") && r.text().contains("Sign in"));
    assert!(r.headers["content-security-policy"].contains("default-src 'none'"));

    let file = env.path("march-cases.csv");
    std::fs::write(&file, cases_csv()).unwrap();
    let shot = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&shot).unwrap();
    let shot = shot.join("upload-page.png");
    let _ = std::fs::remove_file(&shot);
    let o = Command::new("python3")
        .arg(repo().join("tests/browser/drive.py"))
        .args(["upload", &format!("http://{}", s.addr), &a])
        .arg(&file)
        .arg("case")
        .arg(&shot)
        .arg("lt-LT")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["lang"], "lt", "{seen}");
    let receipt = seen["receipt"].as_str().unwrap();
    assert!(
        receipt.contains("Kvitas") && receipt.contains("išsaugota"),
        "{receipt}"
    );
    assert!(receipt.contains("march-cases.csv"), "{receipt}");
    assert!(
        receipt.contains("registered_on"),
        "the set-aside row is explained: {receipt}"
    );
    for n in NAMES {
        assert!(!receipt.contains(n), "the receipt shows {n}");
    }
    assert_eq!(seen["history"].as_array().unwrap().len(), 1, "{seen}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 5_000);
    // A page without its sign-in cannot upload.
    let r = http(
        &s.addr,
        "POST",
        "/upload",
        &[("Content-Type", "multipart/form-data; boundary=x")],
        Some(b"--x--\r\n"),
        None,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn uploads_declare_snapshots_and_withdrawals_and_receipts_count_the_changes() {
    let env = Env::new();
    let s = start(&env);
    let a = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    let analyst = token(&env, &s.cfg, "analyst", None);
    let upload = |query: &str, body: &str| {
        post(
            &s,
            &format!("/api/v1/uploads?type=case&format=csv{query}"),
            &a,
            &[("Content-Type", "text/csv")],
            body.as_bytes(),
        )
    };
    let header = "case_number,given_name,family_name,birth_date,registered_on,gender,status";
    let r = upload(
        "",
        &format!(
            "{header}\nS1,Ona,Petraitytė,2010-01-02,2025-03-03,female,presumed\nS2,Jonas,Kazlauskas,2009-05-06,2025-03-04,male,presumed\nS3,Eglė,Šimkutė,2011-07-08,2025-04-05,female,presumed\n"
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rc = r.json();
    assert_eq!(
        (rc["mode"].as_str(), rc["rows_inserted"].as_u64()),
        (Some("upsert"), Some(3))
    );
    // A snapshot needs its period; March complete: S1 corrected, S2 gone, S3 (April) kept.
    let r = upload(
        "&mode=snapshot",
        &format!("{header}\nS1,Ona,Petraitytė,2010-01-02,2025-03-03,female,identified\n"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = upload(
        "&mode=snapshot&period=2025-03",
        &format!("{header}\nS1,Ona,Petraitytė,2010-01-02,2025-03-03,female,identified\n"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rc = r.json();
    assert_eq!(rc["snapshot_period"], "2025-03");
    assert_eq!(
        (
            rc["rows_inserted"].as_u64(),
            rc["rows_updated"].as_u64(),
            rc["rows_removed"].as_u64()
        ),
        (Some(0), Some(1), Some(1))
    );
    let r = upload("&mode=withdraw", "case_number\nS3\n");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["rows_removed"], 1);
    let q = sql(
        &s,
        &analyst,
        "SELECT count(*) AS n FROM cases",
        "application/json",
    );
    assert_eq!(q.json()[0]["n"], 1);
    let q = sql(
        &s,
        &analyst,
        "SELECT mode, rows_inserted, rows_updated, rows_removed FROM submissions ORDER BY ingested_at",
        "text/csv",
    );
    assert_eq!(
        q.text(),
        "mode,rows_inserted,rows_updated,rows_removed\nupsert,3,0,0\nsnapshot,0,1,1\nwithdraw,0,0,1\n"
    );
}

/// A partner's monthly full re-export through the upload API: 30 000 records sent again, each
/// changed, then again as a complete snapshot with rows set aside whose keys can be read.
#[test]
fn a_whole_register_uploaded_again_replaces_every_record() {
    const N: usize = 30_000;
    let env = Env::new();
    // Not the small configuration: a register of 30 000 rows is over its 1 MiB upload limit.
    let s = start_with(&env, false);
    let a = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    let analyst = token(&env, &s.cfg, "analyst", None);
    let register = |status: &str, bad_every: usize| {
        let mut csv = String::from(
            "case_number,given_name,family_name,birth_date,registered_on,gender,status\n",
        );
        for i in 0..N {
            // Every `bad_every`th row has a birth date that does not exist (its key is fine).
            let born = match bad_every > 0 && i % bad_every == 0 {
                true => "2010-02-30".to_string(),
                false => format!("2010-01-{:02}", 1 + i % 28),
            };
            csv.push_str(&format!(
                "R{i},Given{},Family{},{born},2025-{:02}-{:02},female,{status}\n",
                i % 997,
                i % 1009,
                1 + i % 12,
                1 + i % 28
            ));
        }
        csv
    };
    let upload = |query: &str, body: String| {
        post(
            &s,
            &format!("/api/v1/uploads?type=case&format=csv{query}"),
            &a,
            &[("Content-Type", "text/csv")],
            body.as_bytes(),
        )
    };
    let changes = |r: &Reply| {
        assert_eq!(r.status, 201, "{}", r.text());
        let rc = r.json();
        [
            "rows_inserted",
            "rows_updated",
            "rows_removed",
            "rows_kept",
            "rows_quarantined",
        ]
        .map(|k| rc[k].as_u64().unwrap())
    };
    assert_eq!(
        changes(&upload("", register("presumed", 0))),
        [N as u64, 0, 0, 0, 0]
    );
    assert_eq!(
        changes(&upload("", register("identified", 0))),
        [0, N as u64, 0, 0, 0]
    );
    // A snapshot of every period with every 1000th row set aside: those 30 records stay as
    // they were (identified), the rest are replaced (presumed), nothing is removed.
    let snap = changes(&upload(
        "&mode=snapshot&period=all",
        register("presumed", 1000),
    ));
    assert_eq!(snap, [0, N as u64 - 30, 0, 30, 30]);
    let q = sql(
        &s,
        &analyst,
        "SELECT status, count(*) AS n FROM cases GROUP BY 1 ORDER BY 1",
        "text/csv",
    );
    assert_eq!(
        q.text(),
        format!("status,n\nidentified,30\npresumed,{}\n", N - 30)
    );
}

#[test]
fn hostile_uploads_and_sql_leave_the_server_serving() {
    let env = Env::new();
    let s = start(&env);
    let a = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    let analyst = token(&env, &s.cfg, "analyst", None);
    // A 2 KB sheet with cells at A1 and XFD1048576.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "case_number").unwrap();
    ws.write_string(1_048_575, 16_383, "x").unwrap();
    let far = wb.save_to_buffer().unwrap();
    let r = post(
        &s,
        "/api/v1/uploads?type=case&format=xlsx",
        &a,
        &[("Content-Type", "application/octet-stream")],
        &far,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["status"], "rejected");
    assert!(
        inbox_files(&env)
            .iter()
            .all(|p| p.extension().is_some_and(|x| x == "json")),
        "the raw upload is gone"
    );
    assert_eq!(get(&s, "/healthz", "").status, 200);
    // A limit reached before the answer starts: an error status naming it.
    let r = sql(
        &s,
        &analyst,
        "SELECT repeat('x', 2147483647)",
        "application/json",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("query.max_value_mib"), "{}", r.text());
    assert_eq!(get(&s, "/healthz", "").status, 200);
    // An answer larger than the first megabyte streams, in chunks, whole.
    let r = sql(
        &s,
        &analyst,
        "SELECT value FROM generate_series(1, 190000)",
        "text/csv",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.headers.get("transfer-encoding").map(String::as_str),
        Some("chunked")
    );
    assert!(r.complete);
    let text = r.text();
    assert_eq!(text.lines().count(), 190_001);
    assert_eq!(text.lines().last(), Some("190000"));
    // One that reaches the answer limit after it started streaming is cut off: the client
    // never takes a short answer for a whole one.
    let r = sql(
        &s,
        &analyst,
        "SELECT value FROM generate_series(1, 300000000)",
        "application/json",
    );
    assert_eq!(r.status, 200);
    assert!(!r.complete, "the transfer must be incomplete");
    assert!(!r.text().trim_end().ends_with(']'));
    let log = std::fs::read_to_string(env.path("audit.log")).unwrap();
    let last_sql: serde_json::Value = log
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["event"] == "sql")
        .unwrap();
    assert_eq!(last_sql["status"], "limit", "{last_sql}");
    assert_eq!(get(&s, "/healthz", "").status, 200);
    let terms = vec!["1"; 8000].join("+");
    let r = sql(&s, &analyst, &format!("SELECT {terms}"), "application/json");
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("query.max_sql_tokens"), "{}", r.text());
    assert_eq!(get(&s, "/healthz", "").status, 200);
}

/// Eight uploaders at once, three uploads each, while every third commit to a table makes the
/// upload that made it compact the table: every upload is stored (201) — none loses its commit
/// to a compaction or to another upload — every case is there exactly once, the ledger has every
/// submission, and the live files stay few (24 submissions over three months would leave 72).
#[test]
fn concurrent_uploads_with_compaction_lose_nothing() {
    let env = Env::new();
    let s = start(&env);
    let partner = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    let analyst = token(&env, &s.cfg, "analyst", None);
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let uploaders: Vec<_> = (0..8)
            .map(|u| {
                let (s, partner) = (&s, &partner);
                sc.spawn(move || {
                    (0..3)
                        .map(|i| {
                            let mut csv = String::from(
                                "case_number,given_name,family_name,birth_date,registered_on,gender,status\n",
                            );
                            for m in 1..=3 {
                                csv.push_str(&format!(
                                    "U{u}-{i}-{m},Ona,Petraitytė,2010-01-02,2025-0{m}-1{i},female,presumed\n"
                                ));
                            }
                            post(
                                s,
                                &format!("/api/v1/uploads?type=case&format=csv&filename=u{u}-{i}.csv"),
                                partner,
                                &[("Content-Type", "text/csv")],
                                csv.as_bytes(),
                            )
                            .status
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        uploaders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses, vec![201; 24]);
    let n = |q: &str| {
        let r = sql(&s, &analyst, q, "application/json");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()[0]["n"].as_u64().unwrap()
    };
    assert_eq!(n("SELECT count(*) AS n FROM cases"), 72);
    assert_eq!(n("SELECT count(DISTINCT record_key) AS n FROM cases"), 72);
    assert_eq!(ledger_rows(&s, &analyst), 24);
    let live = crate::common::live_files(&env.lake, "cases");
    assert!(live < 72 / 2, "{live} live files in cases");
    assert_eq!(
        http(&s.addr, "GET", "/healthz", &[], None, None).status,
        200
    );
}

/// With `serve.max_concurrent_queries = 1`, a second query waits while a first one's answer is
/// still being sent: the number of queries holding memory at once is bounded. A first client
/// that stops reading holds the turn only until its query's time limit (6 s here), when the
/// engine has dropped the query: then the second is answered, though the first connection is
/// still open.
#[test]
fn queries_beyond_the_limit_wait_their_turn() {
    let env = Env::new();
    let s = start_edited(
        &env,
        true,
        &[
            ("max_concurrent_queries = 4", "max_concurrent_queries = 1"),
            ("max_result_rows = 200000", "max_result_rows = 5000000"),
            ("timeout_seconds = 60", "timeout_seconds = 6"),
        ],
    );
    let analyst = token(&env, &s.cfg, "analyst", None);
    let send = |q: &str| {
        let body = serde_json::to_vec(&serde_json::json!({ "sql": q })).unwrap();
        let mut c = TcpStream::connect(&s.addr).unwrap();
        let req = format!(
            "POST /api/v1/sql HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {analyst}\r\nAccept: text/csv\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            s.addr,
            body.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        c.write_all(&body).unwrap();
        c
    };
    // A long answer (about 15 MB of CSV) whose client reads its first bytes, then stops.
    let mut first = send("SELECT a.value FROM generate_series(1, 2000000) AS a");
    let mut head = [0u8; 64];
    first.read_exact(&mut head).unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A second query waits for its turn ...
    let mut second = send("SELECT count(*) AS n FROM cases");
    second
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = second.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the second query was answered while the first held the only turn: {waited:?}"
    );
    // ... and is answered once the first query's time is up, its client still connected.
    second
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let reply = read_reply(&mut second);
    assert_eq!(reply.status, 200, "{}", reply.text());
    drop(first);
    assert_eq!(
        http(&s.addr, "GET", "/healthz", &[], None, None).status,
        200
    );
}
