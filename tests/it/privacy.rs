//! No raw identifier, and no form of the key, in the lake (Parquet decoded, footers, Delta log
//! and its statistics) or on tip's stdout/stderr.

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use tip::normalise;
use tip::schema::FieldClass;
use tip::source::{self, SourceSpec};

use crate::common::{Env, all_files, repo, stderr, stdout};

/// Every identifier value in the sample data, read with tip's own readers: the identifier
/// fields of every feed, plus the columns no mapping reads (notes, e-mails, phones, addresses).
fn sample_identifiers(ctx: &tip::ingest::Ingestor) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = BTreeSet::new();
    let mut other = BTreeSet::new();
    let extra_columns = [
        "Pastabos",
        "Telefonas",
        "Adresas",
        "prs_Email",
        "prs_MobilePhone",
        "prs_MailingStreet",
        "cas_IncomingReferralDetails",
        "cas_CaseOwner",
    ];
    let pipelines = tip::config::load_pipelines(&repo().join("pipelines/partners")).unwrap();
    for p in &pipelines {
        for (mapping, pattern, _) in
            tip::ingest::pipeline_mappings(&ctx.config, &ctx.catalog, &ctx.registry, p).unwrap()
        {
            let record = ctx.catalog.record(&mapping.record_type).unwrap();
            let dir = repo().join(&p.source.path);
            for f in all_files(&dir) {
                if !tip::config::wildcard_match(&pattern, &source::display_name(&f)) {
                    continue;
                }
                let mut wanted = mapping.wanted();
                wanted.extend(extra_columns.iter().map(|s| s.to_string()));
                let spec = SourceSpec::from_options(
                    "x",
                    mapping.format,
                    &mapping.options,
                    wanted.clone(),
                    1024,
                )
                .unwrap();
                let mut sink = |raw: source::RawBatch| -> Result<(), source::SourceError> {
                    for (i, w) in wanted.iter().enumerate() {
                        let target = mapping
                            .columns
                            .iter()
                            .find(|(s, _)| s == w)
                            .map(|(_, d)| d.clone());
                        let is_ident = match &target {
                            // The issuing country of a document is a country code, not a person's identifier.
                            Some(t) if t == "document_country" => false,
                            Some(t) => record
                                .field(t)
                                .map(|f| f.class == FieldClass::Identifier)
                                .unwrap_or(false),
                            None => extra_columns.contains(&w.as_str()),
                        };
                        if !is_ident {
                            continue;
                        }
                        let col = raw
                            .batch
                            .column(i + 1)
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .unwrap();
                        for v in col.iter().flatten() {
                            let v = v.trim().to_string();
                            if matches!(target.as_deref(), Some("given_name") | Some("family_name"))
                            {
                                names.insert(v);
                            } else {
                                other.insert(v);
                            }
                        }
                    }
                    Ok(())
                };
                source::read(&f, &spec, &mut sink).unwrap();
            }
        }
    }
    (names, other)
}

/// All the strings a leak could take: the raw value and its normalised forms, plus dates in the
/// partners' formats.
fn needles(names: &BTreeSet<String>, other: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for n in names {
        out.insert(n.clone());
        out.insert(n.to_lowercase());
        if let Some(x) = normalise::name(n) {
            out.insert(x);
        }
    }
    for v in other {
        // An Excel serial date (a spreadsheet birth date) is searched as the date it stands
        // for: bare digits also occur in the lake as file sizes and counts.
        if v.len() == 5 && v.bytes().all(|b| b.is_ascii_digit()) {
            let d = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap()
                + chrono::Duration::days(v.parse().unwrap());
            out.insert(d.format("%Y-%m-%d").to_string());
            out.insert(d.format("%d.%m.%Y").to_string());
            continue;
        }
        out.insert(v.clone());
        if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .or_else(|_| chrono::NaiveDate::parse_from_str(v, "%d.%m.%Y"))
        {
            out.insert(d.format("%Y-%m-%d").to_string());
            out.insert(d.format("%d.%m.%Y").to_string());
        }
        // The upper-case letters-and-digits form of a document number. A form with digits only
        // (a date or phone number stripped of separators) is left out: eight digits occur by
        // chance in the hex of 160-bit pseudonyms; the value itself, separators and all, is in.
        if let Some(x) =
            normalise::document(v).filter(|x| x.chars().any(|c| c.is_ascii_alphabetic()))
        {
            out.insert(x);
        }
    }
    // Short strings would match inside unrelated text (a 3-letter name inside "national");
    // exact cell equality below still covers them.
    out
}

fn lake_cells(dir: &Path) -> BTreeSet<String> {
    let mut cells = BTreeSet::new();
    for f in all_files(dir) {
        if f.extension().is_some_and(|e| e == "parquet")
            && !f.to_string_lossy().contains("_delta_log")
        {
            let file = std::fs::File::open(&f).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                for col in batch.columns() {
                    let fmt =
                        ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).unwrap();
                    for i in 0..col.len() {
                        if col.is_valid(i) {
                            cells.insert(fmt.value(i).to_string());
                        }
                    }
                }
            }
        }
    }
    cells
}

#[tokio::test(flavor = "multi_thread")]
async fn no_identifier_or_key_in_lake_or_output() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let (names, other) = sample_identifiers(&ctx);
    assert!(
        names.len() > 100,
        "read the names of the sample data ({})",
        names.len()
    );
    assert!(
        other.iter().any(|v| v.contains('@')),
        "e-mails are in the sample data"
    );
    let needles = needles(&names, &other);

    // A full ingest through the CLI, then a session of queries.
    let out = env.tip(&["ingest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut printed = stdout(&out) + &stderr(&out);
    for q in [
        "SELECT * FROM cases LIMIT 50",
        "SELECT * FROM quarantine",
        "SELECT * FROM submissions",
        "SELECT given_name FROM cases",
    ] {
        let o = env.tip(&["query", "--format", "csv", q]);
        printed += &stdout(&o);
        printed += &stderr(&o);
    }
    assert!(
        printed.contains("quarantined"),
        "the ingest summary was printed"
    );

    // Decoded Parquet cells: no cell equals an identifier in any form.
    let cells = lake_cells(&env.lake);
    assert!(cells.len() > 1000);
    let folded_names: BTreeSet<String> = names.iter().filter_map(|n| normalise::name(n)).collect();
    for c in &cells {
        assert!(
            !needles.contains(c),
            "a lake cell equals an input identifier: {c:?}"
        );
        if let Some(f) = normalise::name(c) {
            assert!(
                !folded_names.contains(&f),
                "a lake cell is a (normalised) name: {c:?}"
            );
        }
    }
    // Raw bytes of every lake file (Parquet pages and footers, Delta log, statistics) and all
    // printed output: no identifier of 5 characters or more, in any form, and no form of the key.
    let key_hex = std::fs::read_to_string(&env.key)
        .unwrap()
        .trim()
        .to_string();
    let key_raw = hex::decode(&key_hex).unwrap();
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(&key_raw);
    let mut patterns: Vec<Vec<u8>> = needles
        .iter()
        .filter(|n| n.chars().count() >= 5)
        .map(|n| n.as_bytes().to_vec())
        .collect();
    let long = patterns.len();
    patterns.extend([
        key_hex.as_bytes().to_vec(),
        key_raw.clone(),
        key_b64.as_bytes().to_vec(),
    ]);
    let ac = aho_corasick::AhoCorasick::new(&patterns).unwrap();
    for f in all_files(&env.lake) {
        let bytes = std::fs::read(&f).unwrap();
        if let Some(m) = ac.find(&bytes) {
            let what = if m.pattern().as_usize() < long {
                "an identifier"
            } else {
                "the key"
            };
            panic!(
                "{what} ({:?}) is in {}",
                String::from_utf8_lossy(&patterns[m.pattern().as_usize()]),
                f.display()
            );
        }
    }
    if let Some(m) = ac.find(printed.as_bytes()) {
        panic!(
            "printed output contains {:?}",
            String::from_utf8_lossy(&patterns[m.pattern().as_usize()])
        );
    }
}
