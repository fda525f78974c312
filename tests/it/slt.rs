//! The views' SQL semantics, pinned by sqllogictest files (`tests/sql/*.slt`) over a small
//! hand-made dataset (`tests/sql/data/PARTNER.TYPE.csv`) whose answers were worked out by hand.
//!
//! A small runner for the format, inside this test binary (the `sqllogictest` crate would turn
//! on another TLS backend across the whole dependency tree and rebuild DataFusion): records are
//! `query <types> [rowsort]` + SQL + `----` + rows of whitespace-separated values, and
//! `statement ok|error <text>` + SQL. NULL is `NULL`, the empty string `(empty)`, lists are
//! joined with `;`.

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use tip::ingest::{Channel, Mode, Submission};
use tip::mapping::Mapping;
use tip::query::Session;
use tip::source::Format;

use crate::common::{Env, all_files, repo};

fn render(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| tip::schema::lists_as_text(c, ";"))
            .collect();
        let opts = FormatOptions::default().with_null("NULL");
        let fmts: Vec<_> = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                fmts.iter()
                    .zip(&cols)
                    .map(|(f, c)| {
                        let v = f.value(r).to_string();
                        if c.is_valid(r) && v.is_empty() {
                            "(empty)".to_string()
                        } else {
                            v
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

async fn run_file(session: &Session, path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut checked = 0;
    for record in text.split("\n\n").map(str::trim).filter(|r| !r.is_empty()) {
        let lines: Vec<&str> = record.lines().filter(|l| !l.starts_with('#')).collect();
        let Some(head) = lines.first() else { continue };
        let words: Vec<&str> = head.split_whitespace().collect();
        match words.first().copied() {
            Some("query") => {
                let sep = lines
                    .iter()
                    .position(|l| *l == "----")
                    .unwrap_or_else(|| panic!("{name}: query without ----"));
                let sql = lines[1..sep].join("\n");
                let mut got = render(
                    &session
                        .run(&sql)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {sql}: {e}")),
                );
                let mut want: Vec<Vec<String>> = lines[sep + 1..]
                    .iter()
                    .map(|l| l.split_whitespace().map(str::to_string).collect())
                    .collect();
                if words.get(2) == Some(&"rowsort") {
                    got.sort();
                    want.sort();
                }
                for row in &got {
                    assert_eq!(row.len(), words[1].len(), "{name}: {sql}: column count");
                }
                assert_eq!(got, want, "{name}: {sql}");
                checked += 1;
            }
            Some("statement") => {
                let sql = lines[1..].join("\n");
                let res = session.run(&sql).await;
                match words.get(1).copied() {
                    Some("ok") => assert!(res.is_ok(), "{name}: {sql}: {:?}", res.err()),
                    Some("error") => {
                        let msg = res
                            .err()
                            .unwrap_or_else(|| panic!("{name}: {sql} should fail"))
                            .to_string();
                        let expect = words[2..].join(" ");
                        assert!(msg.contains(&expect), "{name}: {sql}: {msg}");
                    }
                    other => panic!("{name}: unknown statement kind {other:?}"),
                }
                checked += 1;
            }
            other => panic!("{name}: unknown record {other:?}"),
        }
    }
    checked
}

#[tokio::test(flavor = "multi_thread")]
async fn view_semantics_on_hand_made_data() {
    let env = Env::new();
    let ctx = env.ctx().await;
    for f in all_files(&repo().join("tests/sql/data")) {
        let stem = f.file_stem().unwrap().to_string_lossy().to_string();
        let (partner, record_type) = stem.split_once('.').unwrap();
        let record = ctx.catalog.record(record_type).unwrap().clone();
        let mapping = Mapping::canonical(&record, Format::Csv, Default::default());
        let sub = Submission {
            partner,
            mapping: &mapping,
            channel: Channel::Load,
            mode: Mode::Upsert,
            progress: None,
        };
        let r = ctx.ingest_file(&sub, &f).await.unwrap();
        assert!(r.issues.is_empty(), "{stem}: {:?}", r.issues);
    }
    let session = Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, None)
        .await
        .unwrap();
    let files: Vec<_> = all_files(&repo().join("tests/sql"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "slt"))
        .collect();
    let mut views_covered = 0;
    for f in &files {
        assert!(
            run_file(&session, f).await > 0,
            "{} checks nothing",
            f.display()
        );
        if crate::views::VIEWS
            .iter()
            .any(|v| f.file_stem().is_some_and(|s| s == *v))
        {
            views_covered += 1;
        }
    }
    assert_eq!(
        views_covered,
        crate::views::VIEWS.len(),
        "every view has its .slt file"
    );
}
