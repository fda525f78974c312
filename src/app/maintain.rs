//! `tip maintain`: retention of records, then upkeep of every table (compaction, checkpoint,
//! purge of what only versions older than the time-travel window use).

use chrono::{Datelike, Utc};
use serde_json::json;

use super::{Actor, App, AppError};
use crate::lake::{Lake, Upkeep};

/// What `tip maintain` did, per table.
pub struct Maintained {
    pub tables: Vec<(String, Upkeep)>,
    /// Record type → rows past their retention, deleted.
    pub expired: Vec<(String, u64)>,
}

impl App {
    /// Deletes records past their configured retention, then compacts, checkpoints and purges
    /// every table beyond `lake.history_days`. Needs no key.
    pub async fn maintain(&self, actor: Actor<'_>) -> Result<Maintained, AppError> {
        self.lake.require().await?;
        self.lake.create_missing_tables(&self.catalog).await?;
        let mut expired = Vec::new();
        for (record_type, years) in &self.config.maintain.retention_years {
            let r = self.catalog.record(record_type).ok_or_else(|| {
                AppError::Usage(format!(
                    "maintain.retention_years: no record type {record_type}"
                ))
            })?;
            let now = Utc::now();
            let first_kept = format!("{:04}-{:02}", now.year() - *years as i32, now.month());
            expired.push((
                record_type.clone(),
                self.lake.delete_before(&r.table, &first_kept).await?,
            ));
        }
        let history = chrono::Duration::days(self.config.lake.history_days as i64);
        let mut tables = Vec::new();
        for spec in Lake::specs(&self.catalog) {
            let u = self.lake.maintain_table(&spec.name, history).await?;
            tables.push((spec.name, u));
        }
        self.record(
            "maintain",
            json!({
                "by": actor.by(), "history_days": self.config.lake.history_days,
                "expired": expired.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "files_vacuumed": tables.iter().map(|(_, u)| u.files_vacuumed).sum::<usize>(),
            }),
        )?;
        Ok(Maintained { tables, expired })
    }
}
