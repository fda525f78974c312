//! Private local staging directories: where an object from storage is read, or an extract or
//! upload is held, before it goes on. Readable by this user only, removed when dropped.

use std::path::{Path, PathBuf};

/// A new directory under the system's temporary directory, mode 0700, deleted with its
/// contents when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    pub fn new() -> std::io::Result<Staging> {
        let dir =
            std::env::temp_dir().join(format!("tip-staging-{}", uuid::Uuid::new_v4().as_simple()));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(&dir)?;
        Ok(Staging { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Removes staging directories older than `age` that a process killed before it could clean
/// up left behind (a crash mid-ingestion leaves its pseudonymised rows there); returns how
/// many. Directories of running processes are younger: a staging directory lives as long as
/// one file's ingestion, export or extract.
pub fn sweep_stale(age: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tip-staging-"))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d > age)
        })
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
