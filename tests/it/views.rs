//! The analyst views, cross-checked by an independent reader: the sample lake is exported with
//! `tip export`, the same questions written in DuckDB SQL (tests/duckdb/views.py) run on the
//! export, and every view's answers must match tip's exactly.

use crate::common::{Env, repo, stderr, stdout};

pub const VIEWS: &[&str] = &[
    "persons",
    "monthly_trends",
    "information_streams",
    "cross_border_routes",
    "multi_agency_persons",
    "service_totals",
    "outcome_trajectories",
    "country_profiles",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_view_matches_duckdb_on_the_exported_sample_lake() {
    let env = Env::new();
    let ctx = env.ctx().await;
    ctx.run_pipelines(&[]).await.unwrap();
    let export = env.path("export");
    let out = env.tip(&["export", "--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for view in VIEWS {
        let ours = env.tip(&["query", "--format", "csv", &format!("SELECT * FROM {view}")]);
        assert!(ours.status.success(), "{view}: {}", stderr(&ours));
        let mut ours: Vec<String> = stdout(&ours).lines().skip(1).map(str::to_string).collect();
        let theirs = std::process::Command::new("python3")
            .arg(repo().join("tests/duckdb/views.py"))
            .arg(&export)
            .arg(repo().join("schemas/population.csv"))
            .arg(view)
            .output()
            .expect("python3 runs (the test command installs DuckDB)");
        assert!(
            theirs.status.success(),
            "{view}: DuckDB failed: {}",
            stderr(&theirs)
        );
        let mut theirs: Vec<String> = stdout(&theirs).lines().map(str::to_string).collect();
        ours.sort();
        theirs.sort();
        assert!(!ours.is_empty(), "{view} is empty on the sample data");
        assert_eq!(ours.len(), theirs.len(), "{view}: row counts differ");
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a, b, "{view}: tip and DuckDB disagree");
        }
    }
}

/// Every `sql` block of the README's analyst questions runs on the sample lake and answers with
/// rows. (Other sections show SQL for other engines, DuckDB reading the S3 lake among them.)
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_questions_are_answered_by_one_statement_each() {
    let env = Env::new();
    let ctx = env.ctx().await;
    ctx.run_pipelines(&[]).await.unwrap();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let questions = readme
        .split("The questions the partner projects ask")
        .nth(1)
        .expect("the README's analyst questions")
        .split("\n#")
        .next()
        .unwrap();
    let blocks: Vec<&str> = questions
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 7, "{} sql blocks", blocks.len());
    for (i, sql) in blocks.iter().enumerate() {
        let file = env.path(&format!("question-{i}.sql"));
        std::fs::write(&file, sql).unwrap();
        let out = env.tip(&["query", "--format", "csv", "-f", file.to_str().unwrap()]);
        assert!(out.status.success(), "{sql}: {}", stderr(&out));
        assert!(stdout(&out).lines().count() >= 2, "{sql} answered nothing");
    }
}
