//! Receiving an upload: the body is streamed to a server-named file in the partner's inbox
//! (the original name kept only as sanitised metadata), held to the size limits (and, for
//! gzip, to the decompressed limit), ingested by the same code as `tip load`, then deleted:
//! only its receipt stays. A refused upload writes nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Semaphore;

use super::{App, AppError, Ingestion};
use crate::access::TokenRecord;
use crate::config::Location;
use crate::ingest::{
    Channel, FileReport, FileStatus, LoadFormat, Mode, Period, Submission, sha256_file,
};
use crate::lake::LakeError;
use crate::lake::store::Store;
use crate::util::staging::Staging;
use url::Url;

/// Why an upload was refused before or during ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    BadRequest,
    TooLarge,
    UnsupportedFormat,
    Unprocessable,
    Unavailable,
    Internal,
}

impl RefusalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::BadRequest => "bad_request",
            RefusalKind::TooLarge => "too_large",
            RefusalKind::UnsupportedFormat => "unsupported_format",
            RefusalKind::Unprocessable => "unprocessable",
            RefusalKind::Unavailable => "unavailable",
            RefusalKind::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
}

impl Refusal {
    fn new(kind: RefusalKind, message: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            message: message.into(),
        }
    }

    fn inbox() -> Refusal {
        Refusal::new(RefusalKind::Internal, "the inbox cannot be written")
    }
}

/// What happened to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    Committed,
    Unchanged,
    Rejected,
}

impl ReceiptStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Committed => "committed",
            ReceiptStatus::Unchanged => "unchanged",
            ReceiptStatus::Rejected => "rejected",
        }
    }
}

/// What a partner gets back for an upload. Row numbers, field names and reason codes only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub upload_id: String,
    pub submission_id: Option<String>,
    pub status: ReceiptStatus,
    pub record_type: String,
    pub format: String,
    pub original_name: String,
    pub bytes: u64,
    pub sha256: String,
    pub received_at: String,
    pub mode: String,
    pub snapshot_period: Option<String>,
    pub rows_read: u64,
    pub rows_accepted: u64,
    pub rows_quarantined: u64,
    /// Records added, replaced by this version, and removed (withdrawn, or absent from a
    /// snapshot).
    pub rows_inserted: u64,
    pub rows_updated: u64,
    pub rows_removed: u64,
    /// A snapshot's records left as they were: the snapshot's row for them was set aside.
    #[serde(default)]
    pub rows_kept: u64,
    pub quarantined: Vec<QuarantinedRow>,
    pub reason: Option<String>,
    /// For an unchanged upload: the submission that already brought the same file.
    pub earlier_submission: Option<String>,
    /// Tables this upload's commits made due for compaction (`lake.compact_every`): the server
    /// compacts them once the receipt is out ([`Uploads::compact`]). Not part of the receipt.
    #[serde(skip)]
    pub compact: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub row: u64,
    pub field: String,
    pub reason: String,
}

/// Everything an upload needs besides its bytes.
pub struct UploadRequest {
    pub record_type: String,
    pub format: String,
    pub original_name: String,
    pub gzip: bool,
    /// Add and replace records (default), a complete snapshot of a period, or a withdrawal.
    pub mode: Mode,
}

/// The submission mode an upload declares: `mode=upsert` (default), `mode=snapshot` with
/// `period=all|YYYY-MM|YYYY-MM..YYYY-MM`, or `mode=withdraw`.
pub fn parse_mode(mode: Option<&str>, period: Option<&str>) -> Result<Mode, Refusal> {
    let bad = |m: String| Refusal::new(RefusalKind::BadRequest, m);
    match (mode.unwrap_or("upsert"), period) {
        ("upsert", None) => Ok(Mode::Upsert),
        ("withdraw", None) => Ok(Mode::Withdraw),
        ("snapshot", Some(p)) => Period::parse(p).map(Mode::Snapshot).map_err(bad),
        ("snapshot", None) => Err(bad(
            "a snapshot declares its period: period=all, YYYY-MM or YYYY-MM..YYYY-MM".into(),
        )),
        ("upsert" | "withdraw", Some(_)) => Err(bad("only a snapshot takes a period".into())),
        (other, _) => Err(bad(format!("mode {other:?}: upsert, snapshot or withdraw"))),
    }
}

/// A client's file name as metadata: the last path component, letters, digits, `.-_ `
/// only, at most 100 characters.
pub fn sanitise_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.').trim().to_string();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// Where uploads are held while they are ingested, and their receipts kept.
enum Inbox {
    /// A directory: ORG/ holds an upload while it is ingested, and its receipt.
    Local(PathBuf),
    /// An object storage prefix for the receipts (ORG/ID.json); an upload is held in a
    /// private local staging directory while it is ingested.
    Store(Url),
}

/// The receiving desk: the ingestion side, the inbox, and how many ingest at once.
pub struct Uploads {
    ingestion: Ingestion,
    ingestions: Semaphore,
    /// The permits of `ingestions`: a compaction takes them all.
    slots: u32,
    inbox: Inbox,
    max_upload: u64,
    max_decompressed: u64,
}

impl App {
    /// The receiving desk of a server that holds the key.
    pub fn uploads(&self, ingestion: Ingestion) -> Result<Uploads, AppError> {
        let s = &self.config.serve;
        let slots = s.max_concurrent_ingestions.clamp(1, 1024);
        let inbox = match self.config.location(&s.inbox)? {
            Location::Local(dir) => Inbox::Local(dir),
            Location::Url(url) => Inbox::Store(url),
        };
        Ok(Uploads {
            ingestion,
            ingestions: Semaphore::new(slots),
            slots: slots as u32,
            inbox,
            max_upload: s.max_upload_mib.saturating_mul(1024 * 1024),
            max_decompressed: s.max_decompressed_mib.saturating_mul(1024 * 1024),
        })
    }

    /// The audit record of an upload, accepted or refused.
    pub fn audit_upload(&self, caller: &TokenRecord, channel: &str, r: &Result<Receipt, Refusal>) {
        let (event, fields) = match r {
            Ok(rc) => (
                if rc.status == ReceiptStatus::Rejected {
                    "upload_rejected"
                } else {
                    "upload_accepted"
                },
                json!({
                    "channel": channel, "token_id": caller.id, "org": caller.org,
                    "upload_id": rc.upload_id, "submission_id": rc.submission_id,
                    "status": rc.status, "record_type": rc.record_type, "format": rc.format,
                    "bytes": rc.bytes, "sha256": rc.sha256, "mode": rc.mode,
                    "rows_accepted": rc.rows_accepted, "rows_quarantined": rc.rows_quarantined,
                    "rows_inserted": rc.rows_inserted, "rows_updated": rc.rows_updated,
                    "rows_removed": rc.rows_removed, "rows_kept": rc.rows_kept,
                }),
            ),
            Err(f) => (
                "upload_rejected",
                json!({
                    "channel": channel, "token_id": caller.id, "org": caller.org,
                    "refused": f.kind.as_str(), "reason": f.message,
                }),
            ),
        };
        if let Err(e) = self.record(event, fields) {
            eprintln!("tip: {e}");
        }
    }
}

impl Uploads {
    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    pub fn too_large(&self) -> Refusal {
        too_large(self.max_upload)
    }

    /// The declared record type and format, checked before the body is read.
    pub fn check(&self, record_type: &str, format: &str) -> Result<LoadFormat, Refusal> {
        let catalog = &self.ingestion.ingestor.catalog;
        if catalog.record(record_type).is_none() {
            return Err(Refusal::new(
                RefusalKind::BadRequest,
                format!(
                    "unknown record type {record_type:?} (known: {})",
                    catalog
                        .records
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        LoadFormat::parse(format).ok_or_else(|| {
            Refusal::new(
                RefusalKind::UnsupportedFormat,
                format!(
                    "format {format:?} is not accepted (allowed: {})",
                    LoadFormat::NAMES.join(", ")
                ),
            )
        })
    }

    /// Streams `body` into the partner's inbox under a server-made name, enforcing the size
    /// limits; ingests it; deletes it; keeps and returns the receipt.
    pub async fn receive<S, E>(
        &self,
        org: &str,
        req: &UploadRequest,
        body: S,
    ) -> Result<Receipt, Refusal>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let format = self.check(&req.record_type, &req.format)?;
        let (dir, _staging) = match &self.inbox {
            Inbox::Local(inbox) => (inbox.join(org), None),
            Inbox::Store(_) => {
                let s = Staging::new().map_err(|_| Refusal::inbox())?;
                (s.path().to_path_buf(), Some(s))
            }
        };
        std::fs::create_dir_all(&dir).map_err(|_| Refusal::inbox())?;
        let upload_id = uuid::Uuid::new_v4().to_string();
        let stored = dir.join(format!("{upload_id}.{}", format.extension()));
        let bytes = self
            .store(&dir, &upload_id, &stored, req.gzip, body)
            .await?;
        let sha = sha256_file(&stored).unwrap_or_default();
        // A bounded number of ingestions at a time; the others wait their turn.
        let permit =
            self.ingestions.acquire().await.map_err(|_| {
                Refusal::new(RefusalKind::Unavailable, "the server is shutting down")
            })?;
        let result = self.ingest(org, req, format, &stored).await;
        drop(permit);
        let _ = std::fs::remove_file(&stored);
        let report = result.map_err(|m| Refusal::new(RefusalKind::Unprocessable, m))?;
        let mut receipt = receipt(upload_id, req, bytes, sha, &report, &stored);
        receipt.compact = self.ingestion.ingestor.compaction_due(&report);
        self.keep(org, &receipt).await;
        Ok(receipt)
    }

    /// Keeps a receipt in the inbox. The submission is in the lake whatever happens here:
    /// a receipt that cannot be kept is reported on the server's error output.
    async fn keep(&self, org: &str, receipt: &Receipt) {
        let Ok(b) = serde_json::to_vec_pretty(receipt) else {
            return;
        };
        let name = format!("{}.json", receipt.upload_id);
        let kept = match &self.inbox {
            Inbox::Local(inbox) => {
                std::fs::write(inbox.join(org).join(&name), b).map_err(|e| e.kind().to_string())
            }
            Inbox::Store(url) => match self.org_store(url, org) {
                Ok(store) => store.put(&name, b).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        if let Err(e) = kept {
            eprintln!(
                "tip serve: the receipt of upload {} could not be kept ({e}); its submission is in the lake",
                receipt.upload_id
            );
        }
    }

    fn org_store(&self, inbox: &Url, org: &str) -> Result<Store, LakeError> {
        let url = inbox
            .join(&format!("{org}/"))
            .map_err(|e| LakeError::Location {
                location: inbox.to_string(),
                message: e.to_string(),
            })?;
        self.ingestion.ingestor.lake.store(&url)
    }

    /// Compacts `tables` (an upload's [`Receipt::compact`], once its receipt is out) alone: it
    /// waits until no other upload of this server is ingesting, and none starts until it is
    /// done, so no upload's commit here can lose to it. A failure loses nothing (the small files
    /// stay until the next compaction).
    pub async fn compact(&self, tables: &[String]) {
        if tables.is_empty() {
            return;
        }
        let ing = &self.ingestion.ingestor;
        let Ok(_all) = self.ingestions.acquire_many(self.slots).await else {
            return;
        };
        for (table, r) in ing.compact(tables).await {
            if let Err(e) = r {
                eprintln!("tip serve: compaction of {table} failed ({e}); nothing is lost");
            }
        }
    }

    /// Writes the body (decompressed when gzip) to `stored`; returns the bytes received.
    async fn store<S, E>(
        &self,
        dir: &Path,
        upload_id: &str,
        stored: &Path,
        gzip: bool,
        body: S,
    ) -> Result<u64, Refusal>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let incoming = dir.join(format!(".incoming-{upload_id}"));
        let written = write_limited(&incoming, body, self.max_upload).await;
        let bytes = match written {
            Ok(n) => n,
            Err(r) => {
                let _ = std::fs::remove_file(&incoming);
                return Err(r);
            }
        };
        let res = if gzip {
            let (src, dst, cap) = (
                incoming.clone(),
                stored.to_path_buf(),
                self.max_decompressed,
            );
            tokio::task::spawn_blocking(move || gunzip_limited(&src, &dst, cap))
                .await
                .unwrap_or_else(|_| {
                    Err(Refusal::new(RefusalKind::Internal, "decompression failed"))
                })
        } else {
            std::fs::rename(&incoming, stored).map_err(|_| Refusal::inbox())
        };
        let _ = std::fs::remove_file(&incoming);
        if res.is_err() {
            let _ = std::fs::remove_file(stored);
        }
        res.map(|_| bytes)
    }

    async fn ingest(
        &self,
        org: &str,
        req: &UploadRequest,
        format: LoadFormat,
        path: &Path,
    ) -> Result<FileReport, String> {
        let ing = &self.ingestion.ingestor;
        let hide = |e: &dyn std::fmt::Display| {
            e.to_string()
                .replace(&path.display().to_string(), &req.original_name)
        };
        let record = ing.record(&req.record_type).map_err(|e| hide(&e))?.clone();
        let mapping = ing
            .mapping_for_load(&record, format, path)
            .map_err(|e| hide(&e))?;
        let sub = Submission {
            partner: org,
            mapping: &mapping,
            channel: Channel::Upload,
            mode: req.mode.clone(),
            progress: None,
        };
        ing.ingest_file(&sub, path).await.map_err(|e| hide(&e))
    }

    /// The receipts of one organisation's uploads, newest first.
    pub async fn receipts(&self, org: &str) -> Vec<Receipt> {
        let raw: Vec<Vec<u8>> = match &self.inbox {
            Inbox::Local(inbox) => std::fs::read_dir(inbox.join(org))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect(),
            Inbox::Store(url) => self.stored_receipts(url, org).await,
        };
        let mut out: Vec<Receipt> = raw
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect();
        out.sort_by(|a: &Receipt, b: &Receipt| {
            b.received_at
                .cmp(&a.received_at)
                .then(b.upload_id.cmp(&a.upload_id))
        });
        out
    }
}

impl Uploads {
    async fn stored_receipts(&self, inbox: &Url, org: &str) -> Vec<Vec<u8>> {
        let Ok(store) = self.org_store(inbox, org) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for o in store.list().await.unwrap_or_default() {
            if o.name.ends_with(".json")
                && let Ok(Some(b)) = store.get(&o.name).await
            {
                out.push(b);
            }
        }
        out
    }
}

fn receipt(
    upload_id: String,
    req: &UploadRequest,
    bytes: u64,
    sha256: String,
    report: &FileReport,
    stored: &Path,
) -> Receipt {
    let (status, reason) = match &report.status {
        FileStatus::Committed => (ReceiptStatus::Committed, None),
        FileStatus::Unchanged => (ReceiptStatus::Unchanged, None),
        FileStatus::Rejected(r) => (
            ReceiptStatus::Rejected,
            Some(r.replace(&stored.display().to_string(), &req.original_name)),
        ),
    };
    Receipt {
        upload_id,
        submission_id: report.submission_id.clone(),
        status,
        record_type: req.record_type.clone(),
        format: req.format.clone(),
        original_name: req.original_name.clone(),
        bytes,
        sha256,
        received_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        mode: report.mode.as_str().into(),
        snapshot_period: report.mode.period().map(|p| p.to_string()),
        rows_read: report.rows_read,
        rows_accepted: report.rows_accepted,
        rows_quarantined: report.rows_quarantined(),
        rows_inserted: report.rows_inserted,
        rows_updated: report.rows_updated,
        rows_removed: report.rows_removed,
        rows_kept: report.rows_kept,
        earlier_submission: report.earlier.clone(),
        compact: Vec::new(),
        quarantined: report
            .issues
            .iter()
            .map(|i| QuarantinedRow {
                row: i.row,
                field: i.field.clone(),
                reason: i.reason.to_string(),
            })
            .collect(),
        reason,
    }
}

/// Writes a stream to `path`, failing with "too large" past `max` bytes.
async fn write_limited<S, E>(path: &Path, mut body: S, max: u64) -> Result<u64, Refusal>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut f = std::fs::File::create(path).map_err(|_| Refusal::inbox())?;
    let mut n: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::new(
                RefusalKind::BadRequest,
                format!("the upload was interrupted: {e}"),
            )
        })?;
        n += chunk.len() as u64;
        if n > max {
            return Err(too_large(max));
        }
        f.write_all(&chunk).map_err(|_| Refusal::inbox())?;
    }
    f.sync_all().ok();
    Ok(n)
}

pub fn too_large(max: u64) -> Refusal {
    Refusal::new(
        RefusalKind::TooLarge,
        format!("the upload is larger than {} MiB", max / (1024 * 1024)),
    )
}

fn gunzip_limited(src: &Path, dst: &Path, cap: u64) -> Result<(), Refusal> {
    let bad = |m: &str| Refusal::new(RefusalKind::BadRequest, m.to_string());
    let input = std::fs::File::open(src).map_err(|_| bad("the upload cannot be read"))?;
    let mut dec = flate2::read::GzDecoder::new(std::io::BufReader::new(input));
    let mut out = std::fs::File::create(dst).map_err(|_| Refusal::inbox())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n: u64 = 0;
    loop {
        let k = std::io::Read::read(&mut dec, &mut buf)
            .map_err(|_| bad("the upload is not valid gzip"))?;
        if k == 0 {
            return Ok(());
        }
        n += k as u64;
        if n > cap {
            return Err(Refusal::new(
                RefusalKind::TooLarge,
                format!(
                    "the upload decompresses to more than {} MiB",
                    cap / (1024 * 1024)
                ),
            ));
        }
        out.write_all(&buf[..k]).map_err(|_| Refusal::inbox())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_are_neutralised() {
        assert_eq!(sanitise_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitise_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitise_name(".."), "upload");
        assert_eq!(
            sanitise_name("cases\n2025;rm -rf.csv"),
            "cases2025rm -rf.csv"
        );
        assert_eq!(sanitise_name(".hidden"), "hidden");
        assert_eq!(sanitise_name(&"a".repeat(500)).len(), 100);
    }
}
