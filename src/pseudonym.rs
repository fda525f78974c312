//! The pseudonymisation key and keyed pseudonyms (HMAC-SHA-256).
//!
//! The key is 256 random bits read from a key file (64 hex characters) or from `TIP_KEY`. It
//! lives in [`Key`], which cannot be printed, Debug-formatted or serialised and is zeroed when
//! dropped. Its *version* is a short fingerprint (an HMAC of a fixed label under the key), stored
//! with every row so a rotation is visible; the fingerprint does not reveal the key.
//!
//! Every HMAC input is length-prefixed parts: a domain tag (the pseudonym's name), the
//! normalisation version, the scope (the partner id for partner-scoped pseudonyms, empty for
//! network-wide ones), then each normalised input. Equal strings in different fields or scopes
//! never collide. Pseudonyms print as `{prefix}_{key version}_{160 bits of the MAC in hex}`.

use std::path::Path;

use hmac::{KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::normalise::NORMALISATION_VERSION;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Bytes of the MAC kept in a pseudonym (160 bits).
const MAC_BYTES: usize = 20;

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
        getrandom_fill(&mut bytes);
        Key { bytes }
    }

    fn from_hex(text: &str) -> Option<Key> {
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

pub(crate) fn getrandom_fill(buf: &mut [u8]) {
    use rand::TryRng;
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .expect("the operating system's random generator is available");
}

/// Makes pseudonyms of one kind (`person_id`, `case_id`, ...) with a MAC prepared once from
/// the key and cloned per value: the key schedule is not recomputed per row.
#[derive(Clone)]
pub struct Pseudonymiser {
    prepared: HmacSha256,
    prefix: String,
    key_version: String,
    domain: String,
}

impl Pseudonymiser {
    pub fn new(key: &Key, domain: &str, prefix: &str) -> Pseudonymiser {
        Pseudonymiser {
            prepared: key.mac(),
            prefix: prefix.to_string(),
            key_version: key.version(),
            domain: domain.to_string(),
        }
    }

    /// The pseudonym of already-normalised parts. `scope` is the partner id for
    /// partner-scoped pseudonyms and empty for network-wide ones.
    pub fn pseudonym(&self, scope: &str, parts: &[&str]) -> String {
        let mut mac = self.prepared.clone();
        let version = NORMALISATION_VERSION.to_string();
        for p in [self.domain.as_str(), version.as_str(), scope]
            .into_iter()
            .chain(parts.iter().copied())
        {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p.as_bytes());
        }
        let tag = mac.finalize().into_bytes();
        format!(
            "{}_{}_{}",
            self.prefix,
            self.key_version,
            hex::encode(&tag[..MAC_BYTES])
        )
    }

    pub fn key_version(&self) -> &str {
        &self.key_version
    }
}

/// Recognises a value that is already a pseudonym of this kind, and returns its key version.
pub fn parse_pseudonym<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = value.strip_prefix(prefix)?.strip_prefix('_')?;
    let (kv, mac) = rest.split_once('_')?;
    let ok = kv.len() == 9
        && kv.starts_with('k')
        && kv[1..].bytes().all(|b| b.is_ascii_hexdigit())
        && mac.len() == MAC_BYTES * 2
        && mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(kv)
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
    fn domain_and_scope_separate() {
        let k = key();
        let a = Pseudonymiser::new(&k, "case_id", "cas");
        let b = Pseudonymiser::new(&k, "referral_id", "ref");
        let x = a.pseudonym("LT-NGO-01", &["123"]);
        assert_ne!(x[4..], b.pseudonym("LT-NGO-01", &["123"])[4..]);
        assert_ne!(x, a.pseudonym("LV-POL-01", &["123"]));
        assert_eq!(x, a.pseudonym("LT-NGO-01", &["123"]));
        // Length prefixes: moving a boundary changes the MAC.
        let p = Pseudonymiser::new(&k, "person_id", "per");
        assert_ne!(p.pseudonym("", &["ab", "c"]), p.pseudonym("", &["a", "bc"]));
        assert_eq!(parse_pseudonym(&x, "cas"), Some(k.version().as_str()));
        assert_eq!(x.len(), 3 + 1 + 9 + 1 + 40);
    }

    #[test]
    fn a_different_key_gives_different_pseudonyms() {
        let k1 = key();
        let k2 = Key::generate();
        let a = Pseudonymiser::new(&k1, "person_id", "per").pseudonym("", &["x"]);
        let b = Pseudonymiser::new(&k2, "person_id", "per").pseudonym("", &["x"]);
        assert_ne!(a, b);
        assert_ne!(k1.version(), k2.version());
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

// ---------------------------------------------------------------------------------------------
// The pseudonymisation stage: validated rows (identifiers normalised) → stored rows
// (identifiers replaced by pseudonyms and dropped, provenance added).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Date32Array, Int32Array, Int64Array, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use datafusion::arrow::record_batch::RecordBatch;

use crate::schema::{FieldClass, PseudonymScope, RecordSchema};

/// Provenance of one submission, stamped on every row.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub partner: String,
    pub reporting_country: String,
    pub submission_id: String,
    pub source_sha256: String,
    pub ingested_at_micros: i64,
}

pub struct Stage {
    record: RecordSchema,
    /// (pseudonym column, maker, input fields, partner-scoped)
    makers: Vec<(String, Pseudonymiser, Vec<String>, bool)>,
    key_version: String,
}

impl Stage {
    pub fn new(record: &RecordSchema, catalog: &crate::schema::Catalog, key: &Key) -> Stage {
        let makers = record
            .pseudonyms()
            .into_iter()
            .filter_map(|p| {
                let def = catalog.pseudonyms.get(&p)?;
                Some((
                    p.clone(),
                    Pseudonymiser::new(key, &p, &def.prefix),
                    def.inputs.iter().map(|i| i.field.clone()).collect(),
                    def.scope == PseudonymScope::Partner,
                ))
            })
            .collect();
        Stage {
            record: record.clone(),
            makers,
            key_version: key.version(),
        }
    }

    pub fn key_version(&self) -> &str {
        &self.key_version
    }

    /// A pseudonym is made only when every one of its inputs is present; otherwise it is null
    /// (an unlinkable row).
    pub fn apply(&self, validated: &RecordBatch, prov: &Provenance) -> Result<RecordBatch, String> {
        let n = validated.num_rows();
        let stored = self.record.stored_schema();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(stored.fields().len());
        for (name, maker, inputs, partner_scoped) in &self.makers {
            let arrays: Vec<Arc<dyn Array>> = inputs
                .iter()
                .map(|f| {
                    validated
                        .column_by_name(f)
                        .cloned()
                        .ok_or_else(|| format!("missing {f}"))
                })
                .collect::<Result<_, _>>()?;
            let scope = if *partner_scoped {
                prov.partner.as_str()
            } else {
                ""
            };
            let given = validated
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
            let mut b = StringBuilder::with_capacity(n, n * 56);
            let mut parts: Vec<String> = Vec::with_capacity(arrays.len());
            for r in 0..n {
                // Made at the partner with the same key (checked in validation).
                if let Some(g) = given.as_ref().filter(|g| g.is_valid(r)) {
                    b.append_value(g.value(r));
                    continue;
                }
                parts.clear();
                for a in &arrays {
                    if a.is_null(r) {
                        break;
                    }
                    if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
                        parts.push(s.value(r).to_string());
                    } else if let Some(d) = a.as_any().downcast_ref::<Date32Array>() {
                        match crate::validate::date_from_days(d.value(r)) {
                            Some(date) => parts.push(date.format("%Y-%m-%d").to_string()),
                            None => break,
                        }
                    }
                }
                if parts.len() == arrays.len() {
                    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                    b.append_value(maker.pseudonym(scope, &refs));
                } else {
                    b.append_null();
                }
                for p in parts.iter_mut() {
                    zeroize::Zeroize::zeroize(p);
                }
            }
            cols.push(Arc::new(b.finish()));
        }
        for f in &self.record.fields {
            if f.class != FieldClass::Identifier {
                cols.push(
                    validated
                        .column_by_name(&f.name)
                        .cloned()
                        .ok_or_else(|| format!("missing {}", f.name))?,
                );
            }
        }
        let period_days = self
            .record
            .period_field
            .as_ref()
            .and_then(|p| validated.column_by_name(p))
            .and_then(|c| c.as_any().downcast_ref::<Date32Array>().cloned());
        let mut period = StringBuilder::with_capacity(n, n * 7);
        for r in 0..n {
            match period_days
                .as_ref()
                .filter(|a| a.is_valid(r))
                .and_then(|a| crate::validate::date_from_days(a.value(r)))
            {
                Some(d) => period.append_value(d.format("%Y-%m").to_string()),
                None => period.append_value("unknown"),
            }
        }
        let rep = |s: &str| Arc::new(StringArray::from(vec![s; n])) as ArrayRef;
        let source_row = validated
            .column_by_name("source_row")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>().cloned())
            .ok_or("missing source_row")?;
        cols.push(rep(&prov.partner));
        cols.push(rep(&prov.reporting_country));
        cols.push(Arc::new(period.finish()));
        cols.push(rep(&prov.submission_id));
        cols.push(rep(&prov.source_sha256));
        cols.push(Arc::new(source_row));
        cols.push(rep(&self.key_version));
        cols.push(Arc::new(Int32Array::from(vec![self.record.version; n])));
        cols.push(Arc::new(
            TimestampMicrosecondArray::from(vec![prov.ingested_at_micros; n]).with_timezone("UTC"),
        ));
        cols.push(
            validated
                .column_by_name("imputed_fields")
                .cloned()
                .ok_or("missing imputed_fields")?,
        );
        RecordBatch::try_new(stored, cols).map_err(|e| e.to_string())
    }
}
