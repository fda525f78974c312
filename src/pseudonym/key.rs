//! The secret key: read from a key file or `TIP_KEY`, never printable, zeroed on drop.

use std::path::Path;

use hmac::{KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub(crate) type HmacSha256 = hmac::Hmac<sha2::Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key file {file}: cannot read: {kind}")]
    Read {
        file: String,
        kind: std::io::ErrorKind,
    },
    #[error("key file {file}: must hold exactly 64 hexadecimal characters (256 bits)")]
    Format { file: String },
    #[error(
        "key file {file}: readable by other users (mode {mode:o}); run `chmod 600 {file}` and keep it with its owner only"
    )]
    Permissions { file: String, mode: u32 },
    #[error("key file {file}: already exists; refusing to overwrite a key")]
    Exists { file: String },
    #[error("key file {file}: cannot write: {kind}")]
    Write {
        file: String,
        kind: std::io::ErrorKind,
    },
    #[error(
        "no pseudonymisation key: {file} does not exist and TIP_KEY is not set (create one with `tip key new {file}`)"
    )]
    Missing { file: String },
}

/// The secret key. No Display, no Debug with content, no Serialize; zeroed on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Key {
    bytes: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut bytes = [0u8; 32];
        crate::util::random::fill(&mut bytes);
        Key { bytes }
    }

    pub(crate) fn from_hex(text: &str) -> Option<Key> {
        let t = text.trim_end_matches(['\n', '\r']);
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(t, &mut bytes).ok()?;
        Some(Key { bytes })
    }

    /// Reads a key file, refusing one that other users can read.
    pub fn from_file(path: &Path) -> Result<Key, KeyError> {
        let file = path.display().to_string();
        check_permissions(path, &file)?;
        let mut text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            file: file.clone(),
            kind: e.kind(),
        })?;
        let key = Key::from_hex(&text);
        text.zeroize();
        key.ok_or(KeyError::Format { file })
    }

    /// Reads `TIP_KEY` from the environment, if set.
    pub fn from_env() -> Result<Option<Key>, KeyError> {
        match std::env::var("TIP_KEY") {
            Ok(mut v) => {
                let k = Key::from_hex(&v);
                v.zeroize();
                k.map(Some).ok_or(KeyError::Format {
                    file: "TIP_KEY".into(),
                })
            }
            Err(_) => Ok(None),
        }
    }

    /// Writes a new key file with mode 0600. Never overwrites.
    pub fn write_new(path: &Path) -> Result<Key, KeyError> {
        let file = path.display().to_string();
        let key = Key::generate();
        let mut text = hex::encode(key.bytes);
        text.push('\n');
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| KeyError::Write {
                file: file.clone(),
                kind: e.kind(),
            })?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let res = opts.open(path).and_then(|mut f| {
            use std::io::Write;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
        text.zeroize();
        match res {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(KeyError::Exists { file })
            }
            Err(e) => Err(KeyError::Write {
                file,
                kind: e.kind(),
            }),
        }
    }

    /// The key version: `k` and 8 hex characters of HMAC(key, "tip key version").
    pub fn version(&self) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.bytes).expect("any key length");
        mac.update(b"tip key version");
        let tag = mac.finalize().into_bytes();
        format!("k{}", hex::encode(&tag[..4]))
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.bytes).expect("any key length")
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, file: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| KeyError::Read {
        file: file.into(),
        kind: e.kind(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            file: file.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _file: &str) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_hex(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn key_is_not_printable() {
        let k = key();
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
    }

    #[test]
    fn world_readable_key_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        Key::write_new(&p).unwrap();
        assert!(Key::from_file(&p).is_ok());
        assert!(matches!(Key::write_new(&p), Err(KeyError::Exists { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Key::from_file(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
        }
    }
}
