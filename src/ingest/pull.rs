//! A pipeline's drop zone: a local directory or an object storage prefix. Lists its files,
//! brings an object to a private local staging directory to be read (the readers need a
//! file: spreadsheets are zip archives read by random access), and once a file's submissions
//! are in the lake keeps, moves (under `processed/`) or deletes it.

use std::path::PathBuf;

use super::IngestError;
use crate::config::{AfterIngest, Location, PipelineConfig};
use crate::lake::Lake;
use crate::lake::store::{Store, StoredObject};
use crate::util::staging::Staging;

/// Where processed files are moved, inside the drop zone.
pub const PROCESSED: &str = "processed";

/// One file of a drop zone.
pub struct Entry {
    pub name: String,
    /// A local file, or where an object was staged once it is needed.
    local: Option<PathBuf>,
    object: Option<StoredObject>,
}

pub struct DropZone {
    pub entries: Vec<Entry>,
    store: Option<Store>,
    dir: PathBuf,
    /// A private directory for objects being read; removed with the drop zone.
    staging: Option<Staging>,
    label: String,
}

impl DropZone {
    /// Lists the drop zone: regular files only (no symbolic links, which could point out of
    /// the folder, no devices or pipes), no names with control characters, sorted by name. In
    /// object storage only complete objects are listed, never an upload in progress.
    pub async fn open(lake: &Lake, p: &PipelineConfig, at: &Location) -> Result<Self, IngestError> {
        let label = p.source.path.clone();
        let cannot = |detail: String| IngestError::File {
            file: label.clone(),
            message: format!("cannot list the source: {detail}"),
        };
        let plain = |name: &str| !name.chars().any(char::is_control);
        match at {
            Location::Local(dir) => {
                let rd = std::fs::read_dir(dir).map_err(|e| cannot(e.kind().to_string()))?;
                let mut entries: Vec<Entry> = rd
                    .filter_map(Result::ok)
                    // DirEntry::file_type does not follow symbolic links.
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
                    .filter(|(n, _)| plain(n))
                    .map(|(name, path)| Entry {
                        name,
                        local: Some(path),
                        object: None,
                    })
                    .collect();
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(DropZone {
                    entries,
                    store: None,
                    dir: dir.clone(),
                    staging: None,
                    label,
                })
            }
            Location::Url(url) => {
                let store = lake.store(url)?;
                let entries = store
                    .list()
                    .await
                    .map_err(|e| cannot(e.to_string()))?
                    .into_iter()
                    .filter(|o| plain(&o.name) && !o.name.starts_with('.'))
                    .map(|o| Entry {
                        name: o.name.clone(),
                        local: None,
                        object: Some(o),
                    })
                    .collect();
                Ok(DropZone {
                    entries,
                    store: Some(store),
                    dir: PathBuf::new(),
                    staging: None,
                    label,
                })
            }
        }
    }

    /// The local file to read for entry `i`: an object is downloaded (exactly the version
    /// listed) the first time it is needed.
    pub async fn local(&mut self, i: usize) -> Result<PathBuf, IngestError> {
        if let Some(p) = &self.entries[i].local {
            return Ok(p.clone());
        }
        let (Some(store), Some(obj)) = (&self.store, &self.entries[i].object) else {
            return Err(IngestError::Usage(format!("{}: no such file", self.label)));
        };
        if self.staging.is_none() {
            let s = Staging::new().map_err(|e| IngestError::File {
                file: self.label.clone(),
                message: format!("cannot make a local staging directory: {}", e.kind()),
            })?;
            self.staging = Some(s);
        }
        let dest = self
            .staging
            .as_ref()
            .map(|s| s.path().join(&obj.name))
            .unwrap_or_default();
        store.download(obj, &dest).await?;
        self.entries[i].local = Some(dest.clone());
        Ok(dest)
    }

    /// Keeps, moves or deletes each file whose submissions all succeeded (`done[i]`); a
    /// rejected file stays where it is.
    pub async fn finish(&mut self, done: &[bool], after: AfterIngest) -> Result<(), IngestError> {
        if after != AfterIngest::Keep {
            for (entry, _) in self.entries.iter().zip(done).filter(|(_, d)| **d) {
                self.settle(entry, after).await?;
            }
        }
        self.staging = None;
        Ok(())
    }

    async fn settle(&self, entry: &Entry, after: AfterIngest) -> Result<(), IngestError> {
        let failed = |what: &str, detail: String| IngestError::File {
            file: format!("{}/{}", self.label.trim_end_matches('/'), entry.name),
            message: format!(
                "ingested, but could not be {what}: {detail} (it is skipped next time: the ledger knows its content)"
            ),
        };
        let moved = format!("{PROCESSED}/{}", entry.name);
        match (&self.store, after) {
            (_, AfterIngest::Keep) => Ok(()),
            (Some(store), AfterIngest::Move) => store
                .rename(&entry.name, &moved)
                .await
                .map_err(|e| failed("moved", e.to_string())),
            (Some(store), AfterIngest::Delete) => store
                .delete(&entry.name)
                .await
                .map_err(|e| failed("deleted", e.to_string())),
            (None, AfterIngest::Move) => {
                let to = self.dir.join(PROCESSED);
                std::fs::create_dir_all(&to)
                    .and_then(|()| {
                        std::fs::rename(self.dir.join(&entry.name), to.join(&entry.name))
                    })
                    .map_err(|e| failed("moved", e.kind().to_string()))
            }
            (None, AfterIngest::Delete) => std::fs::remove_file(self.dir.join(&entry.name))
                .map_err(|e| failed("deleted", e.kind().to_string())),
        }
    }
}
