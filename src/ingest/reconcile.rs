//! Repairs what a crash can leave: a data commit whose ledger row was never written. Every data
//! commit carries its submission's ledger row in its commit metadata; a writer that starts
//! finds recent data commits whose submission the ledger does not have and writes their ledger
//! rows, so the same file re-run afterwards is recognised, and nothing is committed twice.
//! (A crash before the data commit leaves at most quarantine rows of a submission that never
//! happened; analysts see the quarantine of ledgered submissions only.)

use super::file::{LEDGER_METADATA, lake_versions};
use super::{IngestError, Ingestor};
use crate::lake::system::SubmissionRow;

/// How far back each record table's log is searched: a crash leaves at most the latest few
/// commits without a ledger row, since every writer repairs them when it starts.
const RECENT_COMMITS: usize = 100;

/// Writes the missing ledger rows; returns how many.
pub(super) async fn reconcile(ing: &Ingestor) -> Result<usize, IngestError> {
    let known = ing.lake.submission_ids().await?;
    let mut repaired = 0;
    for record in ing.catalog.records.values() {
        for (version, info) in ing
            .lake
            .recent_commits(&record.table, RECENT_COMMITS)
            .await?
        {
            let Some(row) = info.get(LEDGER_METADATA) else {
                continue;
            };
            let Ok(mut row) = serde_json::from_value::<SubmissionRow>(row.clone()) else {
                continue;
            };
            if known.contains(&row.submission_id) {
                continue;
            }
            row.table_version = Some(version);
            row.lake_versions = lake_versions(ing).await?;
            ing.lake.record_submission(&row).await?;
            repaired += 1;
        }
    }
    Ok(repaired)
}
