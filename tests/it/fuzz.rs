//! A mutation fuzzer in the suite: random damage to CSV, NDJSON and spreadsheet files fed to
//! the readers, and random token soup fed to the SQL gate, for a fixed time (short here; set
//! TIP_FUZZ_SECONDS for a longer run by hand). Every read must end in rows or a clear
//! rejection — never a panic — and every row read must be accounted for: taken or set aside.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use tip::mapping::Mapping;
use tip::schema::Catalog;
use tip::source::{self, Format, SourceSpec};

use crate::common::repo;

fn budget() -> Duration {
    let s = std::env::var("TIP_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(s)
}

/// One random change to `bytes`.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    const SPECIAL: &[u8] = b"\",;\n\r\0{}[]:\\\xff\xfe";
    if bytes.is_empty() {
        bytes.push(b'"');
        return;
    }
    let at = rng.random_range(0..bytes.len());
    match rng.random_range(0..6) {
        0 => bytes[at] = rng.random(),
        1 => bytes.insert(at, SPECIAL[rng.random_range(0..SPECIAL.len())]),
        2 => {
            bytes.remove(at);
        }
        3 => bytes.truncate(at),
        4 => {
            let end = (at + rng.random_range(1..64)).min(bytes.len());
            let chunk = bytes[at..end].to_vec();
            let to = rng.random_range(0..bytes.len());
            bytes.splice(to..to, chunk);
        }
        _ => bytes[at] = SPECIAL[rng.random_range(0..SPECIAL.len())],
    }
}

/// Reads `bytes` as `format` in the canonical case layout; checks the accounting. Returns
/// whether the file was read (true) or rejected (false).
fn read_once(dir: &std::path::Path, bytes: &[u8], format: Format, catalog: &Catalog) -> bool {
    let path = dir.join(format!("fuzz.{}", format.as_str()));
    std::fs::write(&path, bytes).unwrap();
    let record = catalog.record("case").unwrap();
    let mapping = Mapping::canonical(record, format, Default::default());
    let mut spec =
        SourceSpec::from_options("fuzz", format, &mapping.options, mapping.wanted(), 64).unwrap();
    spec.required = mapping.required_groups(record);
    let (mut rows, mut issue_rows) = (0u64, BTreeSet::new());
    let mut sink = |b: source::RawBatch| {
        rows += b.batch.num_rows() as u64;
        issue_rows.extend(b.issues.iter().map(|i| i.row));
        Ok(())
    };
    match source::read(&path, &spec, &mut sink) {
        Ok(total) => {
            assert_eq!(
                total,
                rows + issue_rows.len() as u64,
                "every row read is taken or set aside: {:?}",
                String::from_utf8_lossy(bytes)
            );
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

fn fuzz_format(format: Format, seed: Vec<u8>) -> (u64, u64) {
    let catalog = Catalog::load(&repo().join("schemas")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(format as u64 + 7);
    let (mut runs, mut read) = (0u64, 0u64);
    let started = Instant::now();
    // At least 20 inputs, however busy the machine, then until the time is up.
    while runs < 20 || started.elapsed() < budget() {
        let mut bytes = seed.clone();
        for _ in 0..rng.random_range(1..8) {
            mutate(&mut rng, &mut bytes);
        }
        read += read_once(dir.path(), &bytes, format, &catalog) as u64;
        runs += 1;
    }
    eprintln!(
        "fuzz {}: {runs} inputs, {read} read, {} rejected",
        format.as_str(),
        runs - read
    );
    (runs, read)
}

const CSV: &str = "case_number,given_name,family_name,birth_date,registered_on,gender,status,exploitation\n\
A1,Ona,Petraitytė,2010-01-02,2025-03-03,female,presumed,sexual;labour\n\
A2,\"Jonas, Jr\",Kazlauskas,2009-05-06,2025-03-04,male,identified,\n\
A3,Eglė,Šimkutė,2011-07-08,2025-04-05,female,presumed,\"online_sexual\"\n";

#[test]
fn fuzz_csv_reader() {
    fuzz_format(Format::Csv, CSV.as_bytes().to_vec());
}

#[test]
fn fuzz_ndjson_reader() {
    let seed = "{\"case_number\":\"A1\",\"given_name\":\"Ona\",\"registered_on\":\"2025-03-03\",\"status\":\"presumed\",\"exploitation\":[\"sexual\",\"labour\"]}\n\
{\"case_number\":\"A2\",\"given_name\":\"Jonas\",\"registered_on\":\"2025-03-04\",\"status\":\"identified\",\"age\":12}\n";
    fuzz_format(Format::Ndjson, seed.as_bytes().to_vec());
}

#[test]
fn fuzz_spreadsheet_reader() {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (r, line) in CSV.lines().enumerate() {
        for (c, cell) in line.split(',').enumerate() {
            ws.write_string(r as u32, c as u16, cell).unwrap();
        }
    }
    fuzz_format(Format::Xlsx, wb.save_to_buffer().unwrap());
}

#[test]
fn fuzz_sql_gate() {
    const WORDS: &[&str] = &[
        "SELECT", "FROM", "WHERE", "(", ")", "1", "+", "OR", "IN", "cases", "*", ",", "'x'",
        "COPY", "TO", "DROP", "CREATE", "SET", "WITH", "AS", ";", "EXPLAIN", "[", "]", "--", "/*",
        "\"", "'", "$1", "::", "UNION", "VALUES", "\n",
    ];
    let limits = tip::query::Limits::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let started = Instant::now();
    let mut runs = 0u64;
    // At least 20 inputs, however busy the machine, then until the time is up.
    while runs < 20 || started.elapsed() < budget() {
        let n = rng.random_range(1..400);
        let sql: Vec<&str> = (0..n)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        let sql = sql.join(" ");
        let sized = tip::query::check_size(&sql, &limits);
        if sized.is_ok() {
            let _ = tip::query::gate(&sql);
        }
        runs += 1;
    }
    eprintln!("fuzz sql gate: {runs} statements");
    assert!(runs > 100);
}
