//! Nothing a partner or analyst sends can crash tip, exhaust its memory or lose a row silently.
//! A hostile corpus (made at test time) goes through `tip load`; hostile SQL through `tip
//! query`. Each is rejected whole or row-quarantined with a clear reason, the lake is unchanged
//! on rejection, and tip's own peak memory stays bounded.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{Env, all_files, repo};

/// A finished `tip` run: exit status, stderr, stdout and peak resident memory in MiB.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    peak_mib: u64,
}

/// Runs tip through `tests/python/peak.py`, which forks it from a small interpreter, so that
/// the peak memory is tip's own: Linux carries a process's peak RSS across exec, and a child
/// spawned straight from this (busy, multi-threaded) test process would start at its peak.
fn run(env: &Env, config: Option<&Path>, args: &[&str]) -> Run {
    let mut c = std::process::Command::new("python3");
    c.current_dir(repo())
        .env_remove("TIP_KEY")
        .arg(repo().join("tests/python/peak.py"))
        .arg(env!("CARGO_BIN_EXE_tip"));
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.arg("--lake")
        .arg(&env.lake)
        .arg("--key-file")
        .arg(&env.key)
        .args(args);
    let o = c.output().expect("python3 runs tests/python/peak.py");
    let mut stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let at = stderr
        .rfind("\npeak_kib=")
        .expect("peak.py reports the peak");
    let peak_kib: u64 = stderr[at + "\npeak_kib=".len()..].trim().parse().unwrap();
    stderr.truncate(at);
    Run {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr,
        peak_mib: peak_kib / 1024,
    }
}

fn load(env: &Env, format: &str, file: &Path) -> Run {
    run(
        env,
        None,
        &[
            "load",
            "--partner",
            "LT-NGO-01",
            "--type",
            "case",
            "--format",
            format,
            file.to_str().unwrap(),
        ],
    )
}

const HEADER: &str = "case_number,given_name,family_name,birth_date,registered_on,gender,status";

fn row(i: usize) -> String {
    format!("H{i},Ona,Petraitytė,2010-01-02,2025-03-03,female,presumed")
}

/// Writes an xlsx whose first sheet has the given cells (row, column, text) and nothing else.
fn xlsx(path: &Path, cells: &[(u32, u16, &str)]) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, c, t) in cells {
        ws.write_string(*r, *c, *t).unwrap();
    }
    wb.save(path).unwrap();
}

/// An xlsx-shaped zip whose sheet decompresses to `mib` MiB of XML.
fn zip_bomb(path: &Path, mib: usize) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    z.start_file("xl/worksheets/sheet1.xml", opts).unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..mib {
        z.write_all(&chunk).unwrap();
    }
    z.finish().unwrap();
}

struct Case {
    name: &'static str,
    format: &'static str,
    file: PathBuf,
    /// Rejected whole (true) or loaded with rows set aside (false).
    rejected: bool,
    /// What the message must say.
    says: &'static str,
}

fn corpus(env: &Env) -> Vec<Case> {
    let p = |n: &str| env.path(n);
    let write = |n: &str, bytes: Vec<u8>| {
        std::fs::write(p(n), bytes).unwrap();
        p(n)
    };
    let rows: Vec<String> = (0..6).map(row).collect();
    let mut unclosed = rows.clone();
    unclosed[2] = "H2,\"Ona,Petraitytė,2010-01-02,2025-03-03,female,presumed".into();
    let wide: Vec<String> = (0..10_000).map(|i| format!("c{i}")).collect();
    xlsx(
        &p("far.xlsx"),
        &[(0, 0, "case_number"), (1_048_575, 16_383, "x")],
    );
    xlsx(
        &p("tall.xlsx"),
        &[(0, 0, "case_number"), (1_048_575, 51, "x")],
    );
    zip_bomb(&p("bomb.xlsx"), 300);
    vec![
        Case {
            name: "a sheet with cells at A1 and XFD1048576",
            format: "xlsx",
            file: p("far.xlsx"),
            rejected: true,
            says: "missing required column",
        },
        Case {
            name: "a sheet with cells at A1 and AZ1048576",
            format: "xlsx",
            file: p("tall.xlsx"),
            rejected: true,
            says: "missing required column",
        },
        Case {
            name: "a zip bomb (300 MiB of sheet XML)",
            format: "xlsx",
            file: p("bomb.xlsx"),
            rejected: true,
            says: "decompresses to more than",
        },
        Case {
            name: "an unclosed quote",
            format: "csv",
            file: write(
                "unclosed.csv",
                format!("{HEADER}\n{}\n", unclosed.join("\n")).into_bytes(),
            ),
            rejected: true,
            says: "line 4: a quoted value runs over several lines",
        },
        Case {
            name: "two registered_on columns",
            format: "csv",
            file: write(
                "dup.csv",
                format!("{HEADER},registered_on\n{},2025-04-04\n", row(1)).into_bytes(),
            ),
            rejected: true,
            says: "the same name",
        },
        Case {
            name: "NUL bytes",
            format: "csv",
            file: write("nul.csv", format!("{HEADER}\n{}\0\n", row(1)).into_bytes()),
            rejected: true,
            says: "NUL bytes",
        },
        Case {
            name: "UTF-16",
            format: "csv",
            file: write(
                "utf16.csv",
                [0xFF, 0xFE]
                    .into_iter()
                    .chain(HEADER.encode_utf16().flat_map(|u| u.to_le_bytes()))
                    .collect(),
            ),
            rejected: true,
            says: "UTF-16",
        },
        Case {
            name: "a 1 MB field",
            format: "csv",
            file: write(
                "field.csv",
                format!(
                    "{HEADER}\n{}\nH9,{},X,2010-01-02,2025-03-03,female,presumed\n",
                    row(1),
                    "y".repeat(1 << 20)
                )
                .into_bytes(),
            ),
            rejected: false,
            says: "value_too_long",
        },
        Case {
            name: "10 000 columns",
            format: "csv",
            file: write(
                "wide.csv",
                format!("{}\n{}\n", wide.join(","), wide.join(",")).into_bytes(),
            ),
            rejected: true,
            says: "more than 4096",
        },
        Case {
            name: "a 50 MB line",
            format: "csv",
            file: write(
                "line.csv",
                format!("{HEADER}\n{}\n", "z".repeat(50 << 20)).into_bytes(),
            ),
            rejected: true,
            says: "longer than 4 MiB",
        },
        Case {
            name: "deep JSON",
            format: "json",
            file: write(
                "deep.json",
                format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            ),
            rejected: true,
            says: "not a valid JSON file",
        },
        Case {
            name: "a date that does not exist",
            format: "csv",
            file: write(
                "time.csv",
                format!(
                    "{HEADER}\n{}\nH9,Ona,X,2010-01-02,2024-02-29T25:00:00,female,presumed\n",
                    row(1)
                )
                .into_bytes(),
            ),
            rejected: false,
            says: "invalid_date",
        },
    ]
}

#[test]
fn a_hostile_corpus_is_refused_or_set_aside_and_memory_stays_bounded() {
    let env = Env::new();
    let first = load(&env, "csv", &{
        let f = env.path("good.csv");
        std::fs::write(&f, format!("{HEADER}\n{}\n", row(100))).unwrap();
        f
    });
    assert!(first.ok, "{}", first.stderr);
    for case in corpus(&env) {
        let before = all_files(&env.lake);
        let r = load(&env, case.format, &case.file);
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(
            !text.contains("panicked") && !text.contains("overflow"),
            "{}: {text}",
            case.name
        );
        assert!(
            text.contains(case.says),
            "{}: expected {:?} in {text}",
            case.name,
            case.says
        );
        assert!(r.peak_mib < 700, "{}: peak {} MiB", case.name, r.peak_mib);
        if case.rejected {
            assert!(!r.ok, "{} must be rejected", case.name);
            assert_eq!(
                all_files(&env.lake),
                before,
                "{}: the lake changed",
                case.name
            );
        } else {
            assert!(r.ok, "{}: {text}", case.name);
            assert!(
                text.contains("2 rows read, 1 accepted, 1 quarantined"),
                "{}: {text}",
                case.name
            );
        }
        eprintln!("hostile: {} -> peak {} MiB", case.name, r.peak_mib);
    }
}

#[test]
fn hostile_sql_stops_at_a_named_limit() {
    let env = Env::new();
    let text = std::fs::read_to_string(repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace("memory_limit_mib = 2048", "memory_limit_mib = 512")
        .replace("timeout_seconds = 60", "timeout_seconds = 120");
    let cfg = env.path("tip.toml");
    std::fs::write(&cfg, text).unwrap();
    assert!(run(&env, Some(&cfg), &["ingest", "--pipeline", "lt-ngo"]).ok);
    let terms = vec!["1"; 8000].join("+");
    let ors = (0..10_000)
        .map(|i| format!("age = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let list = (0..30_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(String, &str)> = vec![
        (format!("SELECT {terms}"), "query.max_sql_tokens"),
        (
            format!("SELECT count(*) FROM cases WHERE {ors}"),
            "query.max_sql_tokens",
        ),
        (
            format!("SELECT count(*) FROM cases WHERE age IN ({list})"),
            "query.max_sql_tokens",
        ),
        (
            format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200)),
            "query.max_sql_depth",
        ),
        (
            "SELECT value FROM generate_series(1, 300000000)".into(),
            "query.max_result_rows",
        ),
        (
            "SELECT repeat('x', 2147483647)".into(),
            "query.max_value_mib",
        ),
        (
            "SELECT lpad('x', 2147483647, 'y')".into(),
            "query.max_value_mib",
        ),
        (
            "SELECT cardinality(range(1, 500000000))".into(),
            "query.max_value_mib",
        ),
        (
            "SELECT unnest(range(1, 300000000))".into(),
            "query.max_value_mib",
        ),
        // `||` is an operator, not a function: a recursive query doubling a string.
        (
            "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 200000000) SELECT length(max(s)) FROM r".into(),
            "query.max_value_mib",
        ),
        (
            "SELECT length(concat(repeat('x', 12000000), repeat('y', 12000000)))".into(),
            "query.max_value_mib",
        ),
    ];
    let file = env.path("hostile.sql");
    for (sql, limit) in &cases {
        // Statements longer than an argument may be are read from a file, as an analyst would.
        std::fs::write(&file, sql).unwrap();
        let r = run(
            &env,
            Some(&cfg),
            &["query", "--format", "csv", "-f", file.to_str().unwrap()],
        );
        assert!(!r.ok, "{}: must stop", &sql[..sql.len().min(60)]);
        assert!(
            r.stderr.contains(limit),
            "{}: {}",
            &sql[..sql.len().min(60)],
            r.stderr
        );
        assert!(
            r.peak_mib < 1500,
            "{}: peak {} MiB",
            &sql[..sql.len().min(60)],
            r.peak_mib
        );
    }
    // A window over 60 M rows sorted by an expression that reads no column: the sort spills
    // (or stops at the memory limit) instead of sorting every row outside the pool.
    let r = run(
        &env,
        Some(&cfg),
        &[
            "query",
            "--format",
            "csv",
            "SELECT max(r) AS m FROM (SELECT row_number() OVER (ORDER BY random()) AS r FROM generate_series(1, 60000000))",
        ],
    );
    assert!(
        (r.ok && r.stdout == "m\n60000000\n") || r.stderr.contains("query.memory_limit_mib"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.peak_mib < 1024,
        "window over 60 M rows: peak {} MiB",
        r.peak_mib
    );
    eprintln!(
        "hostile sql: window over 60 M rows -> ok {}, peak {} MiB",
        r.ok, r.peak_mib
    );
    // Just under the limits, a long statement still runs (on a worker's large stack).
    let terms = vec!["1"; 4000].join("+");
    let r = run(
        &env,
        Some(&cfg),
        &["query", "--format", "csv", &format!("SELECT {terms} AS n")],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout, "n\n4000\n");
}

/// The server's peak resident memory so far (VmHWM), in MiB.
fn server_peak_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[test]
fn the_hostile_corpus_through_the_upload_api_leaves_the_server_serving() {
    use crate::serve::{get, inbox_files, post, start_with, token};
    let env = Env::new();
    // The configured limits (100 MiB uploads), so every file of the corpus reaches the readers.
    let s = start_with(&env, false);
    let partner = token(&env, &s.cfg, "partner", Some("LT-NGO-01"));
    for case in corpus(&env) {
        let before = all_files(&env.lake);
        let body = std::fs::read(&case.file).unwrap();
        let r = post(
            &s,
            &format!(
                "/api/v1/uploads?type=case&format={}&filename=hostile",
                case.format
            ),
            &partner,
            &[("Content-Type", "application/octet-stream")],
            &body,
        );
        let text = r.text();
        if case.rejected {
            assert_eq!(r.status, 422, "{}: {text}", case.name);
            assert_eq!(r.json()["status"], "rejected", "{}: {text}", case.name);
            assert!(
                text.contains(case.says),
                "{}: expected {:?} in {text}",
                case.name,
                case.says
            );
            assert_eq!(
                all_files(&env.lake),
                before,
                "{}: the lake changed",
                case.name
            );
        } else {
            assert_eq!(r.status, 201, "{}: {text}", case.name);
            assert_eq!(r.json()["rows_quarantined"], 1, "{}: {text}", case.name);
            assert!(text.contains(case.says), "{}: {text}", case.name);
        }
        assert!(
            inbox_files(&env)
                .iter()
                .all(|f| f.extension().is_some_and(|e| e == "json")),
            "{}: a raw upload stayed in the inbox",
            case.name
        );
        assert_eq!(
            get(&s, "/healthz", "").status,
            200,
            "{}: server down",
            case.name
        );
        let peak = server_peak_mib(s.child.id());
        eprintln!("hostile upload: {} -> server peak {peak} MiB", case.name);
        assert!(peak < 1024, "{}: server peak {peak} MiB", case.name);
    }
}

#[test]
fn a_drop_folder_gives_only_its_own_regular_files() {
    let env = Env::new();
    let samples: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("sample-data/lt-ngo"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    };
    assert!(samples.len() >= 2, "two sample files to work with");
    // The partner's folder: one real file, and a symbolic link to a file outside it.
    let drop = env.path("drop");
    let outside = env.path("outside");
    std::fs::create_dir_all(&drop).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let name = |p: &Path| p.file_name().unwrap().to_owned();
    std::fs::copy(&samples[0], drop.join(name(&samples[0]))).unwrap();
    std::fs::copy(&samples[1], outside.join(name(&samples[1]))).unwrap();
    std::os::unix::fs::symlink(
        outside.join(name(&samples[1])),
        drop.join(name(&samples[1])),
    )
    .unwrap();
    let partners = env.path("partners");
    std::fs::create_dir_all(&partners).unwrap();
    let pipeline = std::fs::read_to_string(repo().join("pipelines/partners/lt-ngo.toml"))
        .unwrap()
        .replace(
            "path = \"sample-data/lt-ngo\"",
            &format!("path = {:?}", drop),
        );
    std::fs::write(partners.join("lt-ngo.toml"), pipeline).unwrap();
    let config = std::fs::read_to_string(repo().join("pipelines/tip.toml"))
        .unwrap()
        .replace(
            "partners = \"pipelines/partners\"",
            &format!("partners = {:?}", partners),
        );
    let cfg = env.path("tip.toml");
    std::fs::write(&cfg, config).unwrap();
    let r = run(&env, Some(&cfg), &["ingest", "--pipeline", "lt-ngo"]);
    assert!(r.ok, "{}", r.stderr);
    let q = run(
        &env,
        Some(&cfg),
        &[
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM submissions",
        ],
    );
    assert!(q.ok, "{}", q.stderr);
    assert_eq!(q.stdout, "n\n1\n", "only the regular file is a submission");
}

/// The two statements that escaped `query.memory_limit_mib` (a window over 60 M rows sorted by
/// an expression that reads no column; a recursive query doubling a string with `||`), through
/// every door of one server with a 512 MiB query limit: each answers or stops at a named limit,
/// and the server's peak memory stays bounded.
#[test]
fn the_escaping_statements_are_bounded_on_every_door() {
    use crate::serve::{sql, start_full, token};
    const WINDOW: &str = "SELECT max(r) AS m FROM (SELECT row_number() OVER (ORDER BY random()) AS r FROM generate_series(1, 60000000))";
    const DOUBLING: &str = "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 200000000) SELECT length(max(s)) AS n FROM r";
    let env = Env::new();
    let (s, lines) = start_full(
        &env,
        false,
        &[
            ("memory_limit_mib = 2048", "memory_limit_mib = 512"),
            ("timeout_seconds = 60", "timeout_seconds = 120"),
        ],
        &["--flight", "127.0.0.1:0", "--postgres", "127.0.0.1:0"],
    );
    let port_of = |prefix: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
            .to_string()
    };
    let flight = port_of("tip serve: Flight SQL on grpc://");
    let pg = port_of("tip serve: Postgres on postgresql://");
    let analyst = token(&env, &s.cfg, "analyst", None);
    let o = env.tip(&["--config", s.cfg.to_str().unwrap(), "token", "list"]);
    let analyst_id = crate::common::stdout(&o)
        .lines()
        .rfind(|l| l.split_whitespace().nth(1) == Some("analyst"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    // One statement through each door: (answered, text of the answer or the error).
    let http = |q: &str| {
        let r = sql(&s, &analyst, q, "text/csv");
        (r.status == 200, r.text())
    };
    let flight_sql = |q: &str| {
        let script = "import sys, adbc_driver_flightsql.dbapi as f\n\
            c = f.connect('grpc://' + sys.argv[1], db_kwargs={'adbc.flight.sql.authorization_header': 'Bearer ' + sys.argv[2]})\n\
            cur = c.cursor()\n\
            try:\n    cur.execute(sys.argv[3]); print(cur.fetchall()[0][0])\n\
            except Exception as e:\n    print(e); sys.exit(3)\n";
        let o = std::process::Command::new("python3")
            .args(["-c", script, &flight, &analyst, q])
            .output()
            .unwrap();
        let text = format!("{}{}", crate::common::stdout(&o), crate::common::stderr(&o));
        (o.status.success(), text)
    };
    let (host, port) = pg.rsplit_once(':').unwrap();
    let postgres = |q: &str| {
        let o = std::process::Command::new("psql")
            .args(["-X", "-A", "-t", "-d"])
            .arg(format!(
                "host={host} port={port} dbname=tip user={analyst_id} password={analyst} sslmode=disable"
            ))
            .args(["-c", q])
            .output()
            .unwrap();
        let text = format!("{}{}", crate::common::stdout(&o), crate::common::stderr(&o));
        (o.status.success(), text)
    };
    let doors: [(&str, &dyn Fn(&str) -> (bool, String)); 3] = [
        ("HTTP", &http),
        ("Flight SQL", &flight_sql),
        ("Postgres", &postgres),
    ];
    for (door, run) in doors {
        let (answered, text) = run(WINDOW);
        assert!(
            (answered && text.contains("60000000")) || text.contains("query.memory_limit_mib"),
            "{door}: {text}"
        );
        let (ok, text) = run(DOUBLING);
        assert!(
            !ok && text.contains("query.max_value_mib"),
            "{door}: {text}"
        );
        let peak = server_peak_mib(s.child.id());
        eprintln!(
            "escaping statements via {door}: window answered {answered}, server peak {peak} MiB"
        );
        assert!(peak < 1024, "{door}: server peak {peak} MiB");
    }
    // The server still answers.
    assert_eq!(http("SELECT 1 AS n").1, "n\n1\n");
}
