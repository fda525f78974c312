//! Erasure (GDPR Art. 17): every row of a person, or of one partner's case, removed from every
//! table, and the lake's history purged so that no file under the lake still holds them.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{Actor, App, AppError};
use crate::lake::system::{ERASURES, ErasureRow, LEDGER};
use crate::normalise;
use crate::pseudonym::Pseudonymiser;

/// Whose rows to erase.
pub enum ErasureTarget<'a> {
    /// A person, by pseudonym: every partner's rows.
    Person(&'a str),
    /// One partner's case, by its case number (made into the partner's `case_id` with the key).
    Case {
        partner: &'a str,
        case_number: &'a str,
    },
}

/// What an erasure did.
pub struct Erased {
    pub rows_removed: u64,
    pub tables: Vec<(String, u64)>,
    pub files_purged: usize,
}

impl App {
    /// Removes the rows and purges the history of every record table. Needs the key only to
    /// find a case by its number. Writes an `erasures` row (no pseudonym) and an audit record
    /// that names the pseudonym, never the person.
    pub async fn erase(
        &self,
        target: ErasureTarget<'_>,
        key_file: Option<&Path>,
        actor: Actor<'_>,
    ) -> Result<Erased, AppError> {
        self.lake.require().await?;
        let (kind, column, value) = match target {
            ErasureTarget::Person(p) => ("person", "person_id", p.to_string()),
            ErasureTarget::Case {
                partner,
                case_number,
            } => (
                "case",
                "case_id",
                self.case_id(key_file, partner, case_number).await?,
            ),
        };
        self.lake.create_missing_tables(&self.catalog).await?;
        let metadata = vec![("tip.erasure".to_string(), json!(kind))];
        let mut out = Erased {
            rows_removed: 0,
            tables: Vec::new(),
            files_purged: 0,
        };
        for r in self.catalog.records.values() {
            if !r.pseudonyms().iter().any(|p| p == column) {
                continue;
            }
            let n = self
                .lake
                .delete_matching(&r.table, column, &value, metadata.clone())
                .await?;
            out.rows_removed += n;
            out.tables.push((r.table.clone(), n));
        }
        for r in self.catalog.records.values() {
            out.files_purged += self.lake.purge_history(&r.table).await?;
        }
        self.record_erasure(kind, &out).await?;
        self.record(
            "erasure",
            json!({
                "by": actor.by(), "kind": kind, "pseudonym": value,
                "rows_removed": out.rows_removed, "files_purged": out.files_purged,
                "tables": out.tables.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            }),
        )?;
        Ok(out)
    }

    async fn record_erasure(&self, kind: &str, out: &Erased) -> Result<(), AppError> {
        let names: Vec<String> = crate::lake::Lake::specs(&self.catalog)
            .into_iter()
            .map(|s| s.name)
            .filter(|n| n != ERASURES)
            .collect();
        let versions = self.lake.versions(&names).await?;
        let row = ErasureRow {
            erased_at: Utc::now(),
            kind: kind.to_string(),
            rows_removed: out.rows_removed as i64,
            lake_version: versions.get(LEDGER).copied().unwrap_or(-1),
            table_versions: serde_json::to_string(
                &versions
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .map_err(|e| AppError::Usage(e.to_string()))?,
        };
        self.lake.record_erasure(&row).await?;
        Ok(())
    }

    /// A partner's case number as its `case_id`: needs the lake's key.
    async fn case_id(
        &self,
        key_file: Option<&Path>,
        partner: &str,
        case_number: &str,
    ) -> Result<String, AppError> {
        if self.registry.get(partner).is_none() {
            return Err(AppError::Usage(format!(
                "partner {partner:?} is not in the organisation registry"
            )));
        }
        let ing = self.ingestion(key_file).await?;
        let def = self
            .catalog
            .pseudonyms
            .get("case_id")
            .ok_or_else(|| AppError::Usage("the schemas define no case_id".into()))?;
        let number = normalise::code(case_number)
            .ok_or_else(|| AppError::Usage("--case-number is empty".into()))?;
        let p = Pseudonymiser::new(ing.ingestor.key(), "case_id", &def.prefix);
        Ok(p.pseudonym(partner, &[&number]))
    }
}
