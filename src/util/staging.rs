//! Private local staging directories: where an object from storage is read, or an extract or
//! upload is held, before it goes on. Readable by this user only, removed when dropped.

use std::path::{Path, PathBuf};

/// A new directory under the system's temporary directory, mode 0700, deleted with its
/// contents when dropped.
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

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
