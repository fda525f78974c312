//! Multiple systems estimation ([`crate::estimate`]): from the lake (each linked person's lists
//! in a period, per stratum), and from a capture-history file in the layout researchers
//! publish, so a published analysis can be reproduced. Reads the lake only: no key.

use std::path::Path;

use serde_json::json;

use super::{Actor, App, AppError};
use crate::estimate::capture::Stratum;
use crate::estimate::{self, Estimate, EstimateError, Histories, Options};
use crate::query::capture::{self, LakeEstimate, Selection};
use crate::query::{QueryError, Session};

pub use crate::estimate::ASSUMPTIONS;

/// Capture histories larger than this are refused (a history table of twelve lists is tiny).
const MAX_FILE: u64 = 16 * 1024 * 1024;

impl App {
    /// The estimate from a capture-history file (one 0/1 column per list and a count column).
    pub fn estimate_histories(&self, file: &Path, o: &Options) -> Result<Estimate, AppError> {
        let name = crate::source::display_name(file);
        let bad = |message: String| EstimateError::Input {
            file: name.clone(),
            message,
        };
        let size = std::fs::metadata(file)
            .map_err(|e| bad(format!("cannot read: {}", e.kind())))?
            .len();
        if size > MAX_FILE {
            return Err(bad("larger than 16 MiB: not a capture-history table".into()).into());
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| bad(format!("cannot read as UTF-8 text: {}", e.kind())))?;
        let h = Histories::from_csv(&name, &text)?;
        Ok(estimate::estimate(&h, o)?)
    }
}

impl App {
    /// Estimates from the lake's cases in the selection, per stratum of `by` (`children`: only
    /// persons registered as minors). Leaves an audit record: who asked what (no counts).
    pub async fn estimate_lake(
        &self,
        sel: &Selection,
        children: bool,
        by: &[Stratum],
        o: &Options,
        actor: Actor<'_>,
    ) -> Result<LakeEstimate, AppError> {
        let result = self.estimate_lake_unrecorded(sel, children, by, o).await;
        // Refused requests are recorded too; the record never carries a count.
        let status = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("refused: {e}"),
        };
        let versions = result.as_ref().ok().map(|e| e.table_versions.clone());
        self.record(
            "estimate",
            json!({"by": actor.by(), "selection": sel, "children": children,
                   "strata": by, "rule": o.rule, "bootstrap": o.bootstrap, "seed": o.seed,
                   "table_versions": versions, "status": status}),
        )?;
        result
    }

    async fn estimate_lake_unrecorded(
        &self,
        sel: &Selection,
        children: bool,
        by: &[Stratum],
        o: &Options,
    ) -> Result<LakeEstimate, AppError> {
        let mut sel = sel.clone();
        if let Some(c) = &sel.country {
            let Some(code) = self.catalog.country(c) else {
                return Err(QueryError::Refused(format!(
                    "--country {c:?}: not a country tip knows"
                ))
                .into());
            };
            sel.country = Some(code.to_string());
        }
        let sel = &sel;
        let session = self.session(None).await?;
        let g = capture::gather(&session, &self.registry, &self.config.estimate, sel).await?;
        // The bootstrap is seconds of arithmetic: off the runtime's workers.
        let (s, b, opts) = (sel.clone(), by.to_vec(), o.clone());
        let mut e =
            tokio::task::spawn_blocking(move || capture::estimates(&s, &g, children, &b, &opts))
                .await
                .map_err(|e| EstimateError::Model(format!("the estimate stopped: {e}")))??;
        if let Some(w) = epochs_warning(&session).await? {
            e.warnings.push(w);
        }
        // The lake versions read: with the seed, what reproduces this estimate.
        e.table_versions = session.versions.clone();
        Ok(e)
    }
}

/// Pseudonyms of two key epochs never link: a person reported in both counts twice, on lists
/// that seem not to overlap.
pub async fn epochs_warning(session: &Session) -> Result<Option<String>, QueryError> {
    let b = session
        .run_trusted("SELECT CAST(count(DISTINCT epoch) AS BIGINT) FROM key_epochs")
        .await?;
    let n = b
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok((n > 1).then(|| {
        format!("the lake holds pseudonyms of {n} key epochs, which do not link: a person reported in two epochs counts as two, and the estimate is too high")
    }))
}
