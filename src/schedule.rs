//! `tip schedule`: runs partner pipelines and extracts on their cron schedules.
//!
//! Each job's runs are recorded in the lake (`schedule_runs`: job, slot, started / succeeded /
//! failed), so the state survives restarts and moves with the lake. At every tick a job is due
//! when its latest scheduled time (its *slot*) at or before now has no successful run: after
//! downtime that is the latest missed slot only, so a missed job runs once, not once per missed
//! slot. A run that started and never finished (the process died) is retried at the next tick;
//! a slot is given up after [`MAX_ATTEMPTS`] starts. Times are UTC. What a job does is the
//! [`Runner`]'s business (the application core's).

use chrono::{DateTime, Datelike, Utc};
use futures::future::BoxFuture;

use crate::cron::Cron;
use crate::lake::system::{RunEvent, RunOutcome};
use crate::lake::{Lake, LakeError};

/// Starts of one slot before the scheduler gives it up.
pub const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Pipeline(String),
    Extract(String),
    /// `tip maintain`.
    Maintain,
}

#[derive(Debug, Clone)]
pub struct Job {
    /// `pipeline:NAME`, `extract:NAME` or `maintain`.
    pub name: String,
    pub cron: Cron,
    pub kind: JobKind,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The slot `job` should run for now, if any.
pub fn due(job: &Job, now: DateTime<Utc>, events: &[RunEvent]) -> Option<DateTime<Utc>> {
    let slot = job.cron.latest_at_or_before(now)?;
    let s = stamp(slot);
    let mine = events.iter().filter(|e| e.job == job.name && e.slot == s);
    let mut starts = 0;
    for e in mine {
        match e.event {
            RunOutcome::Succeeded => return None,
            RunOutcome::Started => starts += 1,
            RunOutcome::Failed => {}
        }
    }
    (starts < MAX_ATTEMPTS).then_some(slot)
}

/// Runs a job for a slot; Ok carries a one-line summary, Err the reason it failed.
pub trait Runner {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        slot: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// One tick: runs every due job, in order, recording each run. Returns the events recorded.
pub async fn tick(
    lake: &Lake,
    jobs: &[Job],
    now: DateTime<Utc>,
    runner: &dyn Runner,
) -> Result<Vec<RunEvent>, LakeError> {
    let events = lake.run_events().await?;
    let mut out = Vec::new();
    for job in jobs {
        let Some(slot) = due(job, now, &events) else {
            continue;
        };
        let start = RunEvent {
            job: job.name.clone(),
            slot: stamp(slot),
            event: RunOutcome::Started,
            at: stamp(now),
            message: None,
        };
        lake.record_run(&start).await?;
        out.push(start.clone());
        let result = runner.run(job, slot).await;
        let (event, message) = match result {
            Ok(m) => (RunOutcome::Succeeded, m),
            Err(m) => (RunOutcome::Failed, m),
        };
        let end = RunEvent {
            event,
            message: Some(message.replace('\n', " ")),
            at: stamp(Utc::now().max(now)),
            ..start
        };
        lake.record_run(&end).await?;
        out.push(end);
    }
    Ok(out)
}

/// The month an extract due at `slot` reports: the month before the slot's.
pub fn month_for_slot(slot: DateTime<Utc>) -> String {
    let m = format!("{:04}-{:02}", slot.year(), slot.month());
    crate::util::months::shift_month(&m, -1).unwrap_or(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn month_for_a_slot_is_the_previous_month() {
        assert_eq!(month_for_slot(t("2025-04-03T02:00:00Z")), "2025-03");
        assert_eq!(month_for_slot(t("2025-01-03T02:00:00Z")), "2024-12");
    }
}
