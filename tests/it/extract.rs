//! Monthly extracts on the sample data: four formats and a manifest, disclosure rules in the
//! published files, no pseudonym anywhere, byte-identical reproduction after new data, an
//! independent read of the Parquet by DuckDB, and the HTML report in a real headless browser.

use std::path::{Path, PathBuf};

use crate::common::{Env, all_files, repo, stderr, stdout};

/// A configuration like the shipped one, with extracts written under the test's directory and
/// optionally read from another definitions directory.
pub fn test_config(env: &Env, extracts: Option<&Path>) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("pipelines/tip.toml")).unwrap();
    let out = env.path("extracts");
    text = text.replace(
        "out = \".tip/extracts\"",
        &format!("out = {:?}", out.to_str().unwrap()),
    );
    if let Some(dir) = extracts {
        text = text.replace(
            "extracts = \"pipelines/extracts\"",
            &format!("extracts = {:?}", dir.to_str().unwrap()),
        );
    }
    let p = env.path("tip.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The busiest month of the sample: the most case, referral and service reports (case reports
/// whose month is only the HTCDS submission date left aside).
fn busiest_month(env: &Env) -> String {
    let o = env.tip(&[
        "query",
        "--format",
        "csv",
        "SELECT period FROM (SELECT period FROM cases WHERE coalesce(imputed_fields, '') NOT LIKE '%registered_on%' \
         UNION ALL SELECT period FROM referrals UNION ALL SELECT period FROM services) \
         GROUP BY period ORDER BY count(*) DESC, period LIMIT 1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .nth(1)
        .expect("a month")
        .trim()
        .to_string()
}

/// `tip extract --name regional-monthly --month MONTH --out OUT [more]`, which must succeed.
fn extract(env: &Env, cfg: &str, month: &str, out: &Path, more: &[&str]) {
    let mut args = vec![
        "--config",
        cfg,
        "extract",
        "--month",
        month,
        "--name",
        "regional-monthly",
    ];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(more);
    let o = env.tip(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn cases_in(env: &Env, cfg: &str, month: &str) -> u64 {
    let sql = format!("SELECT count(*) FROM cases WHERE period = '{month}'");
    let o = env.tip(&["--config", cfg, "query", "--format", "csv", &sql]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).lines().nth(1).unwrap().trim().parse().unwrap()
}

fn sha256(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

fn artifacts() -> PathBuf {
    let d = repo().join("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every text a file carries (XLSX and Parquet included, decompressed where zipped).
fn texts(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    if p.extension().is_some_and(|e| e == "xlsx") {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut all = String::new();
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).unwrap();
            all.push_str(&s);
        }
        all
    } else {
        String::from_utf8_lossy(&bytes).to_string()
    }
}

#[test]
fn monthly_extract_is_protected_complete_and_reproducible() {
    let env = Env::new();
    let cfg = test_config(&env, None);
    let cfg = cfg.to_str().unwrap();
    let o = env.tip(&["--config", cfg, "ingest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let month = busiest_month(&env);
    let out = env.path("first");
    extract(&env, cfg, &month, &out, &[]);

    // Four formats and the manifest, each file's hash recorded.
    let stem = format!("regional-monthly-{month}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for ext in ["csv", "xlsx", "parquet", "html"] {
        let name = format!("{stem}.{ext}");
        let f = out.join(&name);
        assert!(f.exists(), "{name} missing");
        assert_eq!(manifest["files"][&name]["sha256"], sha256(&f), "{name}");
    }
    assert_eq!(manifest["rules"]["threshold"], 11);
    assert_eq!(manifest["rules"]["rounding_base"], 5);
    assert!(manifest["lake_version"].as_i64().unwrap() > 0);
    assert!(manifest["table_versions"]["cases"].as_i64().unwrap() > 0);
    let tables = manifest["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 6, "{manifest}");

    // The published numbers: 0, <11, x, or a multiple of 5 of at least 15.
    let csv = std::fs::read_to_string(out.join(format!("{stem}.csv"))).unwrap();
    assert!(csv.contains("\r\n"), "RFC 4180 line ends");
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let (mut numbers, mut small, mut withheld, mut zeros, mut rows) = (0, 0, 0, 0, 0);
    // The estimate table's lines (identified, estimate, interval per country and year):
    // protected counts or rounded estimates, or "not estimated"; outside the count audit.
    let (mut est_rows, mut est_numbers, mut est_small, mut est_notes) = (0, 0, 0, 0);
    for rec in r.records() {
        let rec = rec.unwrap();
        rows += 1;
        let count = &rec[7];
        if &rec[0] == "estimated_children" {
            est_rows += 1;
            if &rec[6] == "note" {
                est_notes += 1;
                continue;
            }
            match count {
                "not estimated" | "x" => {}
                "<11" => est_small += 1,
                n => {
                    let n: u64 = n.parse().unwrap_or_else(|_| panic!("estimate {n:?}"));
                    assert!(n == 0 || (n >= 15 && n.is_multiple_of(5)), "published {n}");
                    est_numbers += 1;
                }
            }
            continue;
        }
        match count {
            "0" => zeros += 1,
            "<11" => small += 1,
            "x" => withheld += 1,
            n => {
                let n: u64 = n.parse().unwrap_or_else(|_| panic!("count {n:?}"));
                assert!(n >= 15 && n.is_multiple_of(5), "published {n}");
                numbers += 1;
            }
        }
    }
    let manifest_rows: u64 = tables.iter().map(|t| t["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, manifest_rows + est_rows);
    let estimates = &manifest["estimates"][0];
    assert_eq!(estimates["name"], "estimated_children", "{manifest}");
    assert_eq!(
        est_rows - est_notes,
        4 * estimates["rows"].as_u64().unwrap()
    );
    assert!(est_numbers > 0, "the region has an estimate");
    assert!(
        numbers > 0 && small > 0 && zeros > 0,
        "{numbers} {small} {zeros}"
    );
    // The audit's bounds: every suppressed count has an interval at least 11 wide.
    let audited: usize = tables
        .iter()
        .map(|t| {
            for a in t["audit"].as_array().unwrap() {
                let lo = a["lower"].as_u64().unwrap();
                if let Some(hi) = a["upper"].as_u64() {
                    assert!(hi - lo >= 11, "{a}");
                }
            }
            t["audit"].as_array().unwrap().len()
        })
        .sum();
    // The long form leaves out margins that repeat another count; the audit covers them too.
    assert!(audited >= small + withheld, "{audited} audited");
    println!(
        "extract {month}: {rows} rows, {numbers} published, {small} <11, {withheld} x, {zeros} zeros"
    );

    // Every count of each table is the number of distinct units of its cell or margin, as an
    // independent count over the table's own SQL gives it, then protected.
    for table in tables {
        check_counts(&env, cfg, &month, table["name"].as_str().unwrap(), &csv);
    }

    // No pseudonym, and no unit, in any file.
    for f in all_files(&out) {
        let t = texts(&f);
        for prefix in ["per_k", "cas_k", "ref_k", "doc_k", "sub_"] {
            assert!(!t.contains(prefix), "{} carries {prefix}", f.display());
        }
    }

    // DuckDB reads the Parquet on its own and agrees with the CSV.
    let script = format!(
        "import duckdb\nprint(duckdb.sql(\"SELECT count(*), count(count), sum(CASE WHEN suppressed = '<11' THEN 1 ELSE 0 END) FROM '{}'\").fetchall()[0])",
        out.join(format!("{stem}.parquet")).display()
    );
    let py = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        format!(
            "({rows}, {}, {})",
            numbers + zeros + est_numbers,
            small + est_small
        )
    );

    // New data for the same month arrives (from a partner that had sent no cases: a partner's
    // resubmission would replace its month); the reproduction is byte-identical all the same.
    let extra = env.path("late.csv");
    let before = cases_in(&env, cfg, &month);
    std::fs::write(
        &extra,
        format!(
            "case_number,given_name,family_name,birth_date,registered_on,gender,citizenship,status,exploitation\n\
             LATE-1,Aistė,Late,2012-02-02,{month}-10,female,LT,identified,sexual\n\
             LATE-2,Jonas,Late,2011-03-03,{month}-11,male,LT,identified,labour\n"
        ),
    )
    .unwrap();
    let o = env.load_on(&env.lake, "EE-SVC-01", "case", &extra);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = cases_in(&env, cfg, &month);
    assert!(after > before, "the late file added cases to {month}");
    let again = env.path("again");
    extract(
        &env,
        cfg,
        &month,
        &again,
        &["--reproduce", out.join("manifest.json").to_str().unwrap()],
    );
    for ext in ["csv", "xlsx", "parquet", "html"] {
        let name = format!("{stem}.{ext}");
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            std::fs::read(again.join(&name)).unwrap(),
            "{name} is not byte-identical"
        );
    }
    // A fresh extract sees the late data: a later lake version.
    let latest = env.path("latest");
    extract(&env, cfg, &month, &latest, &[]);
    let m2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(latest.join("manifest.json")).unwrap()).unwrap();
    assert!(m2["lake_version"].as_i64() > manifest["lake_version"].as_i64());

    // The report in a real browser: no console error, both charts drawn; a screenshot kept.
    let shot = artifacts().join("extract-report.png");
    let _ = std::fs::remove_file(&shot);
    let html = out.join(format!("{stem}.html"));
    let b = std::process::Command::new("python3")
        .arg(repo().join("tests/browser/drive.py"))
        .arg("report")
        .arg(&html)
        .arg(&shot)
        .output()
        .unwrap();
    assert!(
        b.status.success(),
        "{}{}",
        String::from_utf8_lossy(&b.stdout),
        String::from_utf8_lossy(&b.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert!(seen["trend_series"].as_u64().unwrap() >= 3, "{seen}");
    assert!(seen["flows"].as_u64().unwrap() >= 1, "{seen}");
    // Six count tables and the estimate table.
    assert_eq!(seen["tables"].as_u64().unwrap(), 7, "{seen}");
    assert!(seen["trend_width"].as_u64().unwrap() > 300, "{seen}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "screenshot"
    );
}

/// The published counts of one table against the distinct units a plain count over the
/// table's SQL finds per cell, row, column and in all: a rounded count is the true count
/// rounded, a `<11` count is 1 to 10, a zero is zero. A unit in two cells of a row (a child
/// with two forms of exploitation) counts once in the row's total.
fn check_counts(env: &Env, cfg: &str, month: &str, table: &str, csv: &str) {
    use std::collections::{BTreeMap, BTreeSet};
    let defs: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo().join("pipelines/extracts/regional-monthly.toml")).unwrap(),
    )
    .unwrap();
    let def = defs["table"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str() == Some(table))
        .unwrap();
    let dims: Vec<String> = def["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let first = {
        let (y, m) = month.split_once('-').unwrap();
        let i = y.parse::<i32>().unwrap() * 12 + m.parse::<i32>().unwrap() - 1 - 11;
        format!("{}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1)
    };
    let sql = def["sql"]
        .as_str()
        .unwrap()
        .replace("{month}", month)
        .replace("{first_month}", &first);
    let cols: Vec<String> = dims
        .iter()
        .map(|d| format!("coalesce(CAST(\"{d}\" AS VARCHAR), 'unknown')"))
        .collect();
    let o = env.tip(&[
        "--config",
        cfg,
        "query",
        "--format",
        "csv",
        &format!(
            "SELECT DISTINCT {}, CAST(unit AS VARCHAR) FROM ({sql}) WHERE unit IS NOT NULL",
            cols.join(", ")
        ),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut truth: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    let n = dims.len();
    for rec in csv::Reader::from_reader(text.as_bytes()).records() {
        let rec = rec.unwrap();
        let cats: Vec<&str> = (0..n).map(|i| &rec[i]).collect();
        let unit = rec[n].to_string();
        // The cell, its row total (all but the last category), its column total, the grand total.
        let total = "Total";
        let mut row: Vec<String> = cats[..n - 1].iter().map(|c| c.to_string()).collect();
        row.push(total.into());
        let mut col = vec![total.to_string(); n - 1];
        col.push(cats[n - 1].to_string());
        let cell: Vec<String> = cats.iter().map(|c| c.to_string()).collect();
        for k in [cell, row, col, vec![total.to_string(); n]] {
            truth.entry(k).or_default().insert(unit.clone());
        }
    }
    let mut checked = 0;
    for rec in csv::Reader::from_reader(csv.as_bytes()).records() {
        let rec = rec.unwrap();
        if &rec[0] != table {
            continue;
        }
        let key: Vec<String> = (0..n).map(|i| rec[2 + 2 * i].to_string()).collect();
        let want = truth.get(&key).map_or(0, |s| s.len() as u64);
        match &rec[7] {
            "x" => continue,
            "<11" => assert!((1..=10).contains(&want), "{table} {key:?}: <11 for {want}"),
            "0" => assert_eq!(want, 0, "{table} {key:?}"),
            p => {
                let p: u64 = p.parse().unwrap();
                let rounded = (((want + 2) / 5) * 5).max(15);
                assert_eq!(p, rounded, "{table} {key:?}: {p} published for {want}");
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "{table}: no count checked");
}

#[test]
fn formula_like_labels_are_neutralised_in_every_format() {
    let env = Env::new();
    let defs = env.path("defs");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("evil.toml"),
        r#"
name = "evil"
title = "Labels a spreadsheet would run"
schedule = "0 2 3 * *"
formats = ["csv", "xlsx", "html"]

[[table]]
name = "labels"
title = "Labels"
universe = "u"
dimensions = ["label"]
unit = "units"
sql = """
SELECT l.label, CAST(r.n AS VARCHAR) || l.label AS unit
FROM (SELECT column1 AS label FROM (VALUES ('=HYPERLINK("http://x")'), ('+SUM(1)'), ('-2+3'), ('@cmd'), ('plain'), ('<b>bold</b>'))) AS l
CROSS JOIN (SELECT value AS n FROM generate_series(0, 29)) AS r
"""
"#,
    )
    .unwrap();
    let cfg = test_config(&env, Some(&defs));
    let out = env.path("evil-out");
    let o = env.tip(&[
        "--config",
        cfg.to_str().unwrap(),
        "extract",
        "--month",
        "2025-03",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("evil-2025-03.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let labels: Vec<String> = r.records().map(|x| x.unwrap()[2].to_string()).collect();
    for l in &labels {
        assert!(
            !l.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "CSV cell {l:?} would run as a formula"
        );
    }
    assert!(
        labels.contains(&"'=HYPERLINK(\"http://x\")".to_string()),
        "{labels:?}"
    );
    assert!(labels.contains(&"plain".to_string()));
    // Each label counts 30 units: published as 30.
    assert!(csv.contains("plain,,,,,30\r\n"), "{csv}");
    // XLSX stores them as text cells (never formulas); HTML escapes markup.
    let xlsx = texts(&out.join("evil-2025-03.xlsx"));
    assert!(!xlsx.contains("<f>"), "a formula in the workbook");
    let html = std::fs::read_to_string(out.join("evil-2025-03.html")).unwrap();
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt;") && !html.contains("<b>bold</b>"));
}
