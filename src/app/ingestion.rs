//! The ingestion side: the only part of tip that loads the pseudonymisation key.
//!
//! One key per lake. The lake records, in `key_epochs`, which key its pseudonyms are made with;
//! an ingestion with another key is refused before anything is written, naming both versions.
//! A new key is an explicit, audited epoch ([`App::start_key_epoch`]): children reported
//! before and after it do not link, and every row's `key_version` says which epoch it is in.

use std::path::Path;

use chrono::Utc;
use serde_json::json;

use super::{Actor, App, AppError};
use crate::ingest::{Channel, FileReport, FileStatus, Ingestor};
use crate::lake::system::KeyEpoch;
use crate::pseudonym::{Key, KeyError};

/// The ingestion side, made by [`App::ingestion`]: an ingestor whose key matches the lake.
pub struct Ingestion {
    pub ingestor: Ingestor,
    /// A development key is in use (warn on every run).
    pub dev_key: bool,
}

/// Where the key came from, for messages.
pub struct LoadedKey {
    pub key: Key,
    pub dev_key: bool,
}

impl App {
    /// The key from `--key-file`, `TIP_KEY`, or the configured file — created as a development
    /// key when the configuration allows it and `create` is true.
    pub fn load_key(&self, key_file: Option<&Path>, create: bool) -> Result<LoadedKey, AppError> {
        let loaded = |key, dev_key| Ok(LoadedKey { key, dev_key });
        if let Some(p) = key_file {
            return loaded(Key::from_file(p)?, false);
        }
        if let Some(k) = Key::from_env()? {
            return loaded(k, false);
        }
        let cfg = &self.config.key;
        let path = self.path(&cfg.file);
        if path.exists() {
            return loaded(Key::from_file(&path)?, cfg.create_dev_key);
        }
        if cfg.create_dev_key && create {
            return loaded(Key::write_new(&path)?, true);
        }
        Err(KeyError::Missing {
            file: cfg.file.display().to_string(),
        }
        .into())
    }

    /// The ingestion side: loads the key, checks it against the lake's key epoch (refusing a
    /// different key before anything is written), then creates missing tables and, on a lake
    /// that has none yet, records the first key epoch.
    pub async fn ingestion(&self, key_file: Option<&Path>) -> Result<Ingestion, AppError> {
        let LoadedKey { key, dev_key } = self.load_key(key_file, true)?;
        let epochs = self.lake.key_epochs().await?;
        let (current, first) = match epochs.last() {
            Some(e) => (e.clone(), None),
            None => {
                let e = self.first_epoch(&key).await?;
                (e.clone(), Some(e))
            }
        };
        if current.key_version != key.version() {
            return Err(AppError::KeyMismatch {
                lake: current.key_version,
                given: key.version(),
                epoch: current.epoch,
            });
        }
        self.lake.create_missing_tables(&self.catalog).await?;
        if let Some(e) = first {
            self.lake.record_key_epoch(&e).await?;
        }
        let ingestor = self.ingestor(key);
        let repaired = ingestor.reconcile().await?;
        if repaired > 0 {
            self.record("ledger_repaired", json!({ "submissions": repaired }))?;
        }
        Ok(Ingestion { ingestor, dev_key })
    }

    /// The first epoch of a lake that records none: the key of its existing pseudonyms (the
    /// newest in the ledger, for a lake made before epochs were recorded), or this key.
    async fn first_epoch(&self, key: &Key) -> Result<KeyEpoch, AppError> {
        let seen = self.lake.ledger_key_versions().await?;
        let (key_version, reason) = match seen.first() {
            Some(v) => (
                v.clone(),
                "adopted from the ledger (pseudonyms made before key epochs were recorded)",
            ),
            None => (key.version(), "first ingestion"),
        };
        Ok(KeyEpoch {
            epoch: 1,
            key_version,
            previous_key_version: None,
            started_at: Utc::now(),
            reason: reason.into(),
        })
    }

    fn ingestor(&self, key: Key) -> Ingestor {
        Ingestor::new(
            self.config.clone(),
            self.catalog.clone(),
            self.registry.clone(),
            self.lake.clone(),
            key,
        )
    }

    /// `tip pseudonymise` on a partner's machine: the key, and no lake at all.
    pub fn partner_side(&self, key_file: Option<&Path>) -> Result<Ingestion, AppError> {
        let LoadedKey { key, dev_key } = self.load_key(key_file, true)?;
        Ok(Ingestion {
            ingestor: self.ingestor(key),
            dev_key,
        })
    }

    /// Starts a new key epoch with the key given: from now on the lake's pseudonyms are made
    /// with it. Recorded in the lake and in the audit log. Children reported before and after
    /// no longer link.
    pub async fn start_key_epoch(
        &self,
        key_file: Option<&Path>,
        reason: &str,
        actor: Actor<'_>,
    ) -> Result<KeyEpoch, AppError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.contains(['\n', '\r']) {
            return Err(AppError::Usage(
                "--reason: one line of at most 200 characters saying why the key changes".into(),
            ));
        }
        self.lake.require().await?;
        let LoadedKey { key, .. } = self.load_key(key_file, false)?;
        let epochs = self.lake.key_epochs().await?;
        let previous = match epochs.last() {
            Some(e) => Some(e.clone()),
            None => Some(self.first_epoch(&key).await?).filter(|e| e.key_version != key.version()),
        };
        if let Some(p) = previous.as_ref().filter(|p| p.key_version == key.version()) {
            return Err(AppError::Usage(format!(
                "key version {} is already the key of epoch {}: nothing to do",
                p.key_version, p.epoch
            )));
        }
        self.lake.create_missing_tables(&self.catalog).await?;
        if epochs.is_empty()
            && let Some(p) = &previous
        {
            // A lake without epochs gets its first one recorded before the new one.
            self.lake.record_key_epoch(p).await?;
        }
        let epoch = KeyEpoch {
            epoch: previous.as_ref().map_or(1, |p| p.epoch + 1),
            key_version: key.version(),
            previous_key_version: previous.map(|p| p.key_version),
            started_at: Utc::now(),
            reason: reason.to_string(),
        };
        self.lake.record_key_epoch(&epoch).await?;
        self.record(
            "key_epoch_started",
            json!({
                "by": actor.by(), "epoch": epoch.epoch, "key_version": epoch.key_version,
                "previous_key_version": epoch.previous_key_version, "reason": epoch.reason,
            }),
        )?;
        Ok(epoch)
    }
}

impl App {
    /// The audit record of a file ingested from the command line or a pipeline (uploads have
    /// their own): who, which partner and file (by SHA-256, never its name), what happened.
    pub fn record_file(
        &self,
        report: &FileReport,
        partner: &str,
        channel: Channel<'_>,
        actor: Actor<'_>,
    ) {
        let status = match &report.status {
            FileStatus::Committed => "committed",
            FileStatus::Unchanged => "unchanged",
            FileStatus::Rejected(_) => "rejected",
        };
        let fields = json!({
            "by": actor.by(), "channel": channel.to_string(), "partner": partner,
            "mode": report.mode.as_str(), "rows_inserted": report.rows_inserted,
            "rows_updated": report.rows_updated, "rows_removed": report.rows_removed,
            "rows_kept": report.rows_kept,
            "record_type": report.record_type, "submission_id": report.submission_id,
            "status": status, "rows_read": report.rows_read, "rows_accepted": report.rows_accepted,
            "rows_quarantined": report.rows_quarantined(),
        });
        if let Err(e) = self.record("ingest", fields) {
            eprintln!("tip: {e}");
        }
    }
}

/// What a new key epoch does, in words, for the operator who starts one.
pub const EPOCH_CONSEQUENCES: &str = "A new key epoch makes new pseudonyms: a child reported before it and again after it gets two different person_ids and is counted as two persons; cases, documents and referrals do not link across it either. Rows keep the key_version they were made with, and the key_epochs table records when each epoch began, so views and extracts can tell the epochs apart. To keep linkage, re-ingest the retained source files with the new key instead, then destroy the old key.";
