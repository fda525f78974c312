//! `tip schedule`: runs partner pipelines and extracts on their cron schedules.
//!
//! Each job's runs are recorded in the lake (`schedule_runs`: job, slot, started / succeeded /
//! failed), so the state survives restarts and moves with the lake. At every tick a job is due
//! when its latest scheduled time (its *slot*) at or before now has no successful run: after
//! downtime that is the latest missed slot only, so a missed job runs once, not once per missed
//! slot. A run that started and never finished (the process died) is retried at the next tick;
//! a slot is given up after [`MAX_ATTEMPTS`] starts. Times are UTC.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;

use crate::lake::{Lake, LakeError};

/// The lake table of scheduler runs.
pub const RUNS: &str = "schedule_runs";
/// Starts of one slot before the scheduler gives it up.
pub const MAX_ATTEMPTS: usize = 3;

pub fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("slot", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("at", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, true),
    ]))
}

/// A five-field cron expression: minute hour day-of-month month day-of-week, with `*`, lists,
/// ranges and steps. As in cron, when both day fields are restricted a day matching either
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_any: bool,
    dow_any: bool,
    text: String,
}

fn field(s: &str, lo: u32, hi: u32, name: &str) -> Result<(u64, bool), String> {
    let mut mask = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{name}: bad step {st:?}"))?,
            ),
            None => (part, 1),
        };
        let num = |x: &str| {
            x.parse::<u32>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| format!("{name}: {x:?} is not in {lo}..{hi}"))
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let a = num(range)?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a > b {
            return Err(format!("{name}: empty range {range:?}"));
        }
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok((mask, s == "*"))
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{s:?}: expected five fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let (minute, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_any) = field(f[2], 1, 31, "day of month")?;
        let (month, _) = field(f[3], 1, 12, "month")?;
        let (mut dow, dow_any) = field(f[4], 0, 7, "day of week")?;
        if dow & (1 << 7) != 0 {
            dow |= 1;
        }
        Ok(Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
            text: s.to_string(),
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.month & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The latest time at or before `now` that the expression names (to the minute).
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.date_naive();
        let now_min = now.hour() * 60 + now.minute();
        for back in 0..(366 * 8) {
            let d = today - chrono::Duration::days(back);
            if !self.day_matches(d) {
                continue;
            }
            for h in (0..24u32).rev() {
                if self.hour & (1 << h) == 0 {
                    continue;
                }
                for m in (0..60u32).rev() {
                    if self.minute & (1 << m) == 0 || (back == 0 && h * 60 + m > now_min) {
                        continue;
                    }
                    return Utc
                        .with_ymd_and_hms(d.year(), d.month(), d.day(), h, m, 0)
                        .single();
                }
            }
        }
        None
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    Pipeline(String),
    Extract(String),
}

#[derive(Debug, Clone)]
pub struct Job {
    /// `pipeline:NAME` or `extract:NAME`.
    pub name: String,
    pub cron: Cron,
    pub kind: JobKind,
}

/// One line of the run log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub job: String,
    pub slot: String,
    pub event: String,
    pub at: String,
    pub message: Option<String>,
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The scheduler's memory, in the lake.
pub struct State<'a> {
    pub lake: &'a Lake,
}

impl State<'_> {
    pub async fn events(&self) -> Result<Vec<RunEvent>, LakeError> {
        let err = |e: &dyn std::fmt::Display| LakeError::Delta {
            table: RUNS.into(),
            message: e.to_string(),
        };
        let table = self.lake.table(RUNS, None).await?;
        let ctx = datafusion::prelude::SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| err(&e))?;
        ctx.register_table("runs", table.table_provider().await.map_err(|e| err(&e))?)
            .map_err(|e| err(&e))?;
        let batches = ctx
            .sql("SELECT job, slot, event, at, message FROM runs ORDER BY at, job, slot, event")
            .await
            .map_err(|e| err(&e))?
            .collect()
            .await
            .map_err(|e| err(&e))?;
        let mut out = Vec::new();
        for b in &batches {
            let cols: Vec<StringArray> = (0..5)
                .map(|i| {
                    datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8)
                        .map_err(|e| err(&e))
                        .and_then(|a| {
                            a.as_any()
                                .downcast_ref::<StringArray>()
                                .cloned()
                                .ok_or_else(|| err(&"not text"))
                        })
                })
                .collect::<Result<_, _>>()?;
            for i in 0..b.num_rows() {
                out.push(RunEvent {
                    job: cols[0].value(i).into(),
                    slot: cols[1].value(i).into(),
                    event: cols[2].value(i).into(),
                    at: cols[3].value(i).into(),
                    message: (!cols[4].is_null(i)).then(|| cols[4].value(i).to_string()),
                });
            }
        }
        Ok(out)
    }

    pub async fn record(&self, e: &RunEvent) -> Result<(), LakeError> {
        let batch = RecordBatch::try_new(
            runs_schema(),
            vec![
                Arc::new(StringArray::from(vec![e.job.as_str()])),
                Arc::new(StringArray::from(vec![e.slot.as_str()])),
                Arc::new(StringArray::from(vec![e.event.as_str()])),
                Arc::new(StringArray::from(vec![e.at.as_str()])),
                Arc::new(StringArray::from(vec![e.message.as_deref()])),
            ],
        )
        .map_err(|err| LakeError::Delta {
            table: RUNS.into(),
            message: err.to_string(),
        })?;
        self.lake.append(RUNS, vec![batch]).await.map(|_| ())
    }
}

/// The slot `job` should run for now, if any.
pub fn due(job: &Job, now: DateTime<Utc>, events: &[RunEvent]) -> Option<DateTime<Utc>> {
    let slot = job.cron.latest_at_or_before(now)?;
    let s = stamp(slot);
    let mine = events.iter().filter(|e| e.job == job.name && e.slot == s);
    let mut starts = 0;
    for e in mine {
        match e.event.as_str() {
            "succeeded" => return None,
            "started" => starts += 1,
            _ => {}
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
    let state = State { lake };
    let events = state.events().await?;
    let mut out = Vec::new();
    for job in jobs {
        let Some(slot) = due(job, now, &events) else {
            continue;
        };
        let start = RunEvent {
            job: job.name.clone(),
            slot: stamp(slot),
            event: "started".into(),
            at: stamp(now),
            message: None,
        };
        state.record(&start).await?;
        out.push(start.clone());
        let result = runner.run(job, slot).await;
        let (event, message) = match result {
            Ok(m) => ("succeeded", m),
            Err(m) => ("failed", m),
        };
        let end = RunEvent {
            event: event.into(),
            message: Some(message.replace('\n', " ")),
            at: stamp(Utc::now().max(now)),
            ..start
        };
        state.record(&end).await?;
        out.push(end);
    }
    Ok(out)
}

/// The month an extract due at `slot` reports: the month before the slot's.
pub fn month_for_slot(slot: DateTime<Utc>) -> String {
    let m = format!("{:04}-{:02}", slot.year(), slot.month());
    crate::extract::shift_month(&m, -1).unwrap_or(m)
}

/// The jobs of a deployment: pipelines with a schedule, and every extract.
pub fn jobs(
    pipelines: &[crate::config::PipelineConfig],
    extracts: &[crate::extract::ExtractDef],
) -> Result<Vec<Job>, String> {
    let mut out = Vec::new();
    for p in pipelines {
        if let Some(s) = &p.schedule {
            out.push(Job {
                name: format!("pipeline:{}", p.name),
                cron: Cron::parse(s).map_err(|e| format!("{}: schedule: {e}", p.file.display()))?,
                kind: JobKind::Pipeline(p.name.clone()),
            });
        }
    }
    for e in extracts {
        out.push(Job {
            name: format!("extract:{}", e.name),
            cron: Cron::parse(&e.schedule)
                .map_err(|m| format!("{}: schedule: {m}", e.file.display()))?,
            kind: JobKind::Extract(e.name.clone()),
        });
    }
    Ok(out)
}

/// The runner of a deployment: pipelines through `ingest`, extracts into `out/NAME/MONTH`.
pub struct ContextRunner<'a> {
    pub ctx: &'a crate::ingest::Context,
    pub extracts: BTreeMap<String, crate::extract::ExtractDef>,
    pub out: std::path::PathBuf,
}

impl Runner for ContextRunner<'_> {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        slot: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match &job.kind {
                JobKind::Pipeline(name) => {
                    let reports =
                        crate::ingest::run_pipelines(self.ctx, std::slice::from_ref(name))
                            .await
                            .map_err(|e| e.to_string())?;
                    let files: usize = reports.iter().map(|r| r.files.len()).sum();
                    Ok(format!("{files} file(s) processed"))
                }
                JobKind::Extract(name) => {
                    let def = self
                        .extracts
                        .get(name)
                        .ok_or_else(|| format!("no extract {name}"))?;
                    let month = month_for_slot(slot);
                    let dir = self.out.join(name).join(&month);
                    let m = crate::extract::run(
                        &self.ctx.lake,
                        &self.ctx.catalog,
                        &self.ctx.registry,
                        def,
                        &month,
                        &dir,
                        None,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    let log = crate::audit::AuditLog::new(
                        &self.ctx.config.resolve(&self.ctx.config.audit.log),
                    );
                    m.record(&log, "schedule", false)
                        .map_err(|e| format!("audit log: {e}"))?;
                    Ok(format!(
                        "{month}: {} files in {}",
                        m.files.len() + 1,
                        dir.display()
                    ))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_finds_the_latest_slot() {
        let c = Cron::parse("0 2 3 * *").unwrap();
        assert_eq!(
            c.latest_at_or_before(t("2025-04-03T02:00:00Z")),
            Some(t("2025-04-03T02:00:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-04-03T01:59:00Z")),
            Some(t("2025-03-03T02:00:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-01-01T00:00:00Z")),
            Some(t("2024-12-03T02:00:00Z"))
        );
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // Saturday 2025-04-05 → Friday 17:45.
        assert_eq!(
            c.latest_at_or_before(t("2025-04-05T12:00:00Z")),
            Some(t("2025-04-04T17:45:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-04-04T10:07:00Z")),
            Some(t("2025-04-04T10:00:00Z"))
        );
        let c = Cron::parse("30 1 * * 0,7").unwrap();
        assert_eq!(
            c.latest_at_or_before(t("2025-04-08T00:00:00Z")),
            Some(t("2025-04-06T01:30:00Z"))
        );
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "5-1 * * * *",
            "*/0 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn month_for_a_slot_is_the_previous_month() {
        assert_eq!(month_for_slot(t("2025-04-03T02:00:00Z")), "2025-03");
        assert_eq!(month_for_slot(t("2025-01-03T02:00:00Z")), "2024-12");
    }
}
