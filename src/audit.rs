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
}

impl AuditLog {
    pub fn new(path: &Path) -> AuditLog {
        AuditLog {
            path: path.to_path_buf(),
            lock: Mutex::new(()),
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
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
