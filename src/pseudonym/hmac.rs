//! Keyed pseudonyms: HMAC-SHA-256 over length-prefixed, domain-tagged inputs.

use hmac::Mac;

use super::key::{HmacSha256, Key};
use crate::normalise::NORMALISATION_VERSION;

/// Bytes of the MAC kept in a pseudonym (160 bits).
const MAC_BYTES: usize = 20;

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
}
