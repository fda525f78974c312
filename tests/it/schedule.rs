//! The scheduler on a fake clock, with its state in a real lake: due and not due, missed runs
//! caught up once, a run that died mid-way retried, a failing job given up; and
//! `tip schedule --once` producing the extract that is due.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tip::cron::Cron;
use tip::lake::system::{RunEvent, RunOutcome};
use tip::schedule::{Job, JobKind, MAX_ATTEMPTS, Runner, tick};

use crate::common::{Env, stderr, stdout};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Records what it ran; fails while `fail` is set.
#[derive(Default)]
struct Fake {
    ran: Mutex<Vec<(String, String)>>,
    fail: Mutex<bool>,
}

impl Runner for Fake {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        slot: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.ran
                .lock()
                .unwrap()
                .push((job.name.clone(), slot.to_rfc3339()));
            if *self.fail.lock().unwrap() {
                Err("the partner server did not answer".into())
            } else {
                Ok("done".into())
            }
        })
    }
}

impl Fake {
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.ran.lock().unwrap())
    }
}

#[tokio::test]
async fn jobs_run_when_due_once_after_downtime_and_again_after_a_crash() {
    let env = Env::new();
    let ctx = env.ctx().await;
    let jobs = vec![
        Job {
            name: "extract:monthly".into(),
            cron: Cron::parse("0 2 3 * *").unwrap(),
            kind: JobKind::Extract("monthly".into()),
        },
        Job {
            name: "pipeline:daily".into(),
            cron: Cron::parse("30 1 * * *").unwrap(),
            kind: JobKind::Pipeline("daily".into()),
        },
    ];
    let fake = Fake::default();
    let slot = |s: &str| t(s).to_rfc3339();

    // First start: each job runs once, for its latest slot.
    tick(&ctx.lake, &jobs, t("2025-04-03T01:00:00Z"), &fake)
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![
            ("extract:monthly".into(), slot("2025-03-03T02:00:00Z")),
            ("pipeline:daily".into(), slot("2025-04-02T01:30:00Z")),
        ]
    );
    // Not due: nothing new since.
    tick(&ctx.lake, &jobs, t("2025-04-03T01:20:00Z"), &fake)
        .await
        .unwrap();
    assert!(fake.take().is_empty());
    // Due: the daily job at 01:30, the monthly one at 02:00.
    tick(&ctx.lake, &jobs, t("2025-04-03T01:45:00Z"), &fake)
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![("pipeline:daily".into(), slot("2025-04-03T01:30:00Z"))]
    );
    tick(&ctx.lake, &jobs, t("2025-04-03T02:00:00Z"), &fake)
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![("extract:monthly".into(), slot("2025-04-03T02:00:00Z"))]
    );

    // Three months down: each job runs once, for its latest missed slot; then not again.
    tick(&ctx.lake, &jobs, t("2025-07-10T12:00:00Z"), &fake)
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![
            ("extract:monthly".into(), slot("2025-07-03T02:00:00Z")),
            ("pipeline:daily".into(), slot("2025-07-10T01:30:00Z")),
        ]
    );
    tick(&ctx.lake, &jobs, t("2025-07-10T12:01:00Z"), &fake)
        .await
        .unwrap();
    assert!(fake.take().is_empty());

    // A run that started and never finished (the process died) is retried at the next tick.
    ctx.lake
        .record_run(&RunEvent {
            job: "extract:monthly".into(),
            slot: "2025-08-03T02:00:00Z".into(),
            event: RunOutcome::Started,
            at: "2025-08-03T02:00:00Z".into(),
            message: None,
        })
        .await
        .unwrap();
    tick(&ctx.lake, &jobs[..1], t("2025-08-03T02:10:00Z"), &fake)
        .await
        .unwrap();
    assert_eq!(
        fake.take(),
        vec![("extract:monthly".into(), slot("2025-08-03T02:00:00Z"))]
    );
    tick(&ctx.lake, &jobs[..1], t("2025-08-03T02:11:00Z"), &fake)
        .await
        .unwrap();
    assert!(fake.take().is_empty(), "succeeded: not run again");

    // A job that keeps failing is retried, then given up after MAX_ATTEMPTS starts.
    *fake.fail.lock().unwrap() = true;
    for minute in 0..(MAX_ATTEMPTS + 2) {
        tick(
            &ctx.lake,
            &jobs[..1],
            t(&format!("2025-09-03T02:{minute:02}:00Z")),
            &fake,
        )
        .await
        .unwrap();
    }
    assert_eq!(fake.take().len(), MAX_ATTEMPTS);
    let events = ctx.lake.run_events().await.unwrap();
    let failed: Vec<&RunEvent> = events
        .iter()
        .filter(|e| e.slot == "2025-09-03T02:00:00Z" && e.event == RunOutcome::Failed)
        .collect();
    assert_eq!(failed.len(), MAX_ATTEMPTS);
    assert_eq!(
        failed[0].message.as_deref(),
        Some("the partner server did not answer")
    );
}

#[test]
fn schedule_once_produces_the_due_extract() {
    let env = Env::new();
    let cfg = crate::extract::test_config(&env, None);
    let cfg = cfg.to_str().unwrap();
    let o = env.tip(&["--config", cfg, "ingest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.tip(&[
        "--config",
        cfg,
        "schedule",
        "--once",
        "--now",
        "2025-04-03T02:05:00Z",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let log = stdout(&o);
    assert!(
        log.contains("extract:regional-monthly slot 2025-04-03T02:00:00Z succeeded"),
        "{log}"
    );
    let dir = env
        .path("extracts")
        .join("regional-monthly")
        .join("2025-03");
    assert!(dir.join("manifest.json").exists(), "{log}");
    assert!(dir.join("regional-monthly-2025-03.html").exists());
    // The same time again: nothing is due.
    let o = env.tip(&[
        "--config",
        cfg,
        "schedule",
        "--once",
        "--now",
        "2025-04-03T02:06:00Z",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains("extract:regional-monthly"),
        "{}",
        stdout(&o)
    );
}
