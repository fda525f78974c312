//! `tip export`: a plain hive-partitioned Parquet snapshot of every table.

use super::{QueryError, Session};

impl Session {
    /// Writes every table as a plain hive-partitioned Parquet snapshot under `out`, with a
    /// `manifest.json` of the table versions. The directory appears complete or not at all.
    pub async fn export(
        &self,
        out: &std::path::Path,
        partitioned: &[String],
        progress: Option<&crate::util::Progress>,
    ) -> Result<Vec<(String, usize)>, QueryError> {
        let err = |e: &dyn std::fmt::Display| QueryError::Output(format!("{}: {e}", out.display()));
        if out.exists()
            && std::fs::read_dir(out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(QueryError::Output(format!(
                "{}: exists and is not empty",
                out.display()
            )));
        }
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
        let staging = parent.join(format!(".tip-export-{}", uuid::Uuid::new_v4()));
        let mut counts = Vec::new();
        let mut names: Vec<String> = self.versions.keys().cloned().collect();
        names.push("organisations".into());
        for name in &names {
            let df = self.ctx.table(name.as_str()).await.map_err(|e| err(&e))?;
            let rows = df.clone().count().await.map_err(|e| err(&e))?;
            let dir = staging.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| err(&e))?;
            if rows > 0 {
                let mut opts = datafusion::dataframe::DataFrameWriteOptions::new();
                if partitioned.contains(name) {
                    opts = opts.with_partition_by(
                        crate::schema::PARTITION_COLUMNS
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    );
                }
                df.write_parquet(&format!("{}/", dir.display()), opts, None)
                    .await
                    .map_err(|e| err(&e))?;
            }
            if let Some(p) = progress {
                p.rows(rows as u64);
            }
            counts.push((name.clone(), rows));
        }
        let manifest = serde_json::json!({
            "table_versions": self.versions,
            "rows": counts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "partitioned_by": crate::schema::PARTITION_COLUMNS,
        });
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| err(&e))?;
        std::fs::write(staging.join("manifest.json"), bytes).map_err(|e| err(&e))?;
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| err(&e))?;
        }
        std::fs::rename(&staging, out).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staging);
            err(&e)
        })?;
        Ok(counts)
    }
}
