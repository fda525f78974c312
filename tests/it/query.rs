//! The analyst query layer: limits, the read-only gate end to end, export.

use std::time::Duration;

use tip::query::{Limits, QueryError, Session};

use crate::common::{Env, all_files, scalar, stderr, stdout};

#[tokio::test(flavor = "multi_thread")]
async fn queries_over_their_limits_fail_cleanly_and_the_session_goes_on() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let limits = Limits {
        memory_bytes: 4 * 1024 * 1024,
        timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let s = Session::open_with_limits(&ctx.lake, &ctx.catalog, &ctx.registry, None, limits)
        .await
        .unwrap();
    // Holds every value in memory: cannot spill.
    match s.run("SELECT array_agg(value) FROM range(20000000)").await {
        Err(QueryError::Limit(m)) => assert!(m.contains("memory limit of 4 MiB"), "{m}"),
        other => panic!(
            "expected the memory limit, got {:?}",
            other.map(|b| b.len())
        ),
    }
    match s
        .run("SELECT count(*) FROM range(1000000000000) WHERE value % 7 = 3")
        .await
    {
        Err(QueryError::Limit(m)) => assert!(m.contains("time limit of 2 s"), "{m}"),
        other => panic!("expected the time limit, got {:?}", other.map(|b| b.len())),
    }
    let b = s.run("SELECT count(*) FROM range(1000)").await.unwrap();
    assert_eq!(b[0].num_rows(), 1);
    // A bounded function over a column: checked row by row, answered in full.
    let b = s
        .run("SELECT sum(length(repeat(CAST(value AS VARCHAR), 2))) AS n FROM range(100000)")
        .await
        .unwrap();
    let n = b[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(n, 2 * (10 + 90 * 2 + 900 * 3 + 9000 * 4 + 90000 * 5));
}

#[test]
fn the_gate_refuses_writes_and_paths_and_nothing_is_written() {
    let env = Env::new();
    let secret = env.path("outside.csv");
    std::fs::write(&secret, "a,b\n1,2\n").unwrap();
    let before: Vec<_> = {
        let o = env.tip(&["ingest", "--pipeline", "lt-ngo"]);
        assert!(o.status.success(), "{}", stderr(&o));
        all_files(&env.lake)
    };
    let s = secret.display().to_string();
    let copy_to = env.path("copied.csv").display().to_string();
    for sql in [
        format!("SELECT * FROM '{s}'"),
        format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{s}'"),
        format!("COPY (SELECT 1) TO '{copy_to}'"),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "INSERT INTO cases SELECT * FROM cases".to_string(),
        "DELETE FROM cases".to_string(),
        "DROP TABLE cases".to_string(),
        "SET datafusion.execution.target_partitions = 1".to_string(),
        "CREATE VIEW v AS SELECT 1".to_string(),
    ] {
        let out = env.tip(&["query", &sql]);
        assert!(!out.status.success(), "{sql} must be refused");
        let err = stderr(&out);
        assert!(
            err.contains("refused") || err.contains("SQL error"),
            "{sql}: {err}"
        );
        assert!(!stdout(&out).contains("1,2"), "{sql} read the file");
    }
    assert!(!env.path("copied.csv").exists());
    assert_eq!(
        before,
        all_files(&env.lake),
        "nothing was written to the lake"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_a_complete_hive_partitioned_snapshot() {
    let env = Env::new();
    let ctx = env.ctx().await;
    ctx.run_pipelines(&[]).await.unwrap();
    let out = env.path("export");
    let o = env.tip(&["export", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for table in [
        "cases",
        "services",
        "referrals",
        "events",
        "outcomes",
        "submissions",
        "quarantine",
        "organisations",
    ] {
        let n = manifest["rows"][table].as_u64().unwrap();
        let files: Vec<_> = all_files(&out.join(table))
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
            .collect();
        let mut rows = 0u64;
        for f in &files {
            let r = datafusion::parquet::file::reader::SerializedFileReader::new(
                std::fs::File::open(f).unwrap(),
            )
            .unwrap();
            use datafusion::parquet::file::reader::FileReader;
            rows += r.metadata().file_metadata().num_rows() as u64;
        }
        assert_eq!(rows, n, "{table}");
        if table != "organisations" {
            assert_eq!(
                n as i64,
                scalar(&ctx, &format!("SELECT count(*) FROM {table}")).await,
                "{table}"
            );
        }
    }
    assert!(out.join("cases/reporting_country=LT").is_dir());
    assert!(
        all_files(&out.join("cases"))
            .iter()
            .any(|f| f.to_string_lossy().contains("period=2025-03"))
    );
    // An export never overwrites.
    let again = env.tip(&["export", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shell_takes_multi_line_statements_and_keeps_history() {
    let env = Env::new();
    let _writer = env.ctx().await;
    let app = env.app();
    let session = app.session(None).await.unwrap();
    let (app, session) = (&app, &session);
    let run = move |sql: String| -> futures::future::BoxFuture<'_, Result<_, String>> {
        Box::pin(async move {
            app.query(session, &sql, tip::app::Actor::Cli)
                .await
                .map_err(|e| e.to_string())
        })
    };
    let history = env.path("history");
    let script = "SELECT 40 + 2\n  AS answer;\nSELEC oops;\n\\history\n\\1\nDROP TABLE cases;\n\\q\nSELECT 'not run';\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    tip::query::shell(
        &run,
        tip::query::OutputFormat::Csv,
        &mut script.as_bytes(),
        &mut out,
        &mut err,
        Some(&history),
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(out.matches("answer\n42\n").count(), 2, "{out}");
    assert!(out.contains("   1  SELECT 40 + 2 AS answer"), "{out}");
    assert!(
        err.contains("SQL error") && err.contains("refused"),
        "{err}"
    );
    assert!(!out.contains("not run"));
    // History survives the session.
    let kept = std::fs::read_to_string(&history).unwrap();
    assert_eq!(
        kept.lines().collect::<Vec<_>>(),
        vec!["SELECT 40 + 2 AS answer", "SELEC oops", "DROP TABLE cases"]
    );
    let (mut out2, mut err2) = (Vec::new(), Vec::new());
    tip::query::shell(
        &run,
        tip::query::OutputFormat::Csv,
        &mut "\\1\n".as_bytes(),
        &mut out2,
        &mut err2,
        Some(&history),
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8(out2).unwrap(), "answer\n42\n");
}
