//! Leaves: small helpers with no knowledge of partners, schemas or the lake.

pub mod html;
pub mod months;
pub mod random;
pub mod staging;

/// How far a long job has come, in rows (read and validated by an ingestion, written by an
/// export). Shared with whoever draws the progress (another thread), so it is atomic.
#[derive(Debug, Default)]
pub struct Progress {
    rows: std::sync::atomic::AtomicU64,
}

impl Progress {
    pub fn rows(&self, n: u64) {
        self.rows.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn rows_done(&self) -> u64 {
        self.rows.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Files only their owner may read or write (tokens, keys, the audit log and its secret).
pub fn owner_only(opts: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}
