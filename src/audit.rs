//! The audit log: append-only JSON lines, one per upload (accepted or rejected),
//! authentication failure, authorisation denial, SQL query and extract produced.
//!
//! Callers pass only what is safe to keep: roles, token ids (never tokens), organisation ids,
//! submission ids, counts, reason codes and hashes. No person identifier, no file content, no
//! SQL text (its SHA-256 instead). JSON escapes line breaks, so one event is one line whatever
//! a value holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

pub struct AuditLog {
    path: PathBuf,
    lock: Mutex<()>,
    /// The key of statement hashes, read (or made) at the first one.
    key: std::sync::OnceLock<[u8; 32]>,
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
            key: std::sync::OnceLock::new(),
        }
    }

    /// The file of the log's own secret (`<log>.hmac`, 32 random bytes in hex, readable by
    /// its owner only), made at the first statement hash. It is not the pseudonymisation key:
    /// an analysts' server holds it, and it reveals nothing about people.
    pub fn key_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".hmac");
        self.path.with_file_name(name)
    }

    /// HMAC-SHA-256 of a statement under the log's key, in hex.
    pub fn statement_mac(&self, sql: &str) -> std::io::Result<String> {
        let key = match self.key.get() {
            Some(k) => *k,
            None => {
                let k = self.read_or_make_key()?;
                *self.key.get_or_init(|| k)
            }
        };
        Ok(hex::encode(crate::access::hmac_sha256(
            &key,
            &[sql.as_bytes()],
        )))
    }

    fn read_or_make_key(&self) -> std::io::Result<[u8; 32]> {
        let path = self.key_path();
        let parse = |text: &str| -> std::io::Result<[u8; 32]> {
            let bytes = hex::decode(text.trim()).map_err(std::io::Error::other)?;
            bytes
                .try_into()
                .map_err(|_| std::io::Error::other("the audit key is not 32 bytes"))
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            return parse(&text);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut key = [0u8; 32];
        crate::util::random::fill(&mut key);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        crate::util::owner_only(&mut opts);
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(hex::encode(key).as_bytes())?;
                f.sync_all()?;
                Ok(key)
            }
            // Another process made it first: its key is the key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                parse(&std::fs::read_to_string(&path)?)
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event. `fields` must be a JSON object.
    pub fn record(&self, event: &str, fields: Value) -> std::io::Result<()> {
        let mut obj = Map::new();
        obj.insert(
            "ts".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        obj.insert("event".into(), Value::String(event.into()));
        if let Value::Object(m) = fields {
            obj.extend(m);
        }
        let mut line = serde_json::to_string(&Value::Object(obj))?;
        line.push('\n');
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        crate::util::owner_only(&mut opts);
        let mut f = opts.open(&self.path)?;
        // One write per line: concurrent appenders (O_APPEND) never interleave within a line.
        f.write_all(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_line_with_line_breaks_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(&dir.path().join("a/audit.log"));
        log.record(
            "sql",
            serde_json::json!({"reason": "two\nlines\r\n{\"forged\": 1}"}),
        )
        .unwrap();
        log.record("auth_failure", serde_json::json!({})).unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["event"], "sql");
        assert_eq!(first["reason"], "two\nlines\r\n{\"forged\": 1}");
    }
}
