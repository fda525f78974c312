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
    /// The MAC with the key, the domain and the normalisation version already absorbed.
    prepared: HmacSha256,
    /// `prefix_keyversion_`, the start of every pseudonym.
    head: String,
    key_version: String,
}

/// Absorbs one length-prefixed input.
fn absorb(mac: &mut HmacSha256, part: &str) {
    mac.update(&(part.len() as u32).to_be_bytes());
    mac.update(part.as_bytes());
}

impl Pseudonymiser {
    pub fn new(key: &Key, domain: &str, prefix: &str) -> Pseudonymiser {
        let mut prepared = key.mac();
        absorb(&mut prepared, domain);
        absorb(&mut prepared, &NORMALISATION_VERSION.to_string());
        Pseudonymiser {
            prepared,
            head: format!("{prefix}_{}_", key.version()),
            key_version: key.version(),
        }
    }

    /// The pseudonym of already-normalised parts. `scope` is the partner id for
    /// partner-scoped pseudonyms and empty for network-wide ones.
    pub fn pseudonym(&self, scope: &str, parts: &[&str]) -> String {
        let mut out = String::with_capacity(self.head.len() + 2 * MAC_BYTES);
        self.pseudonym_into(scope, parts, &mut out);
        out
    }

    /// [`pseudonym`](Self::pseudonym) into `out` (cleared first): no allocation per value.
    pub fn pseudonym_into(&self, scope: &str, parts: &[&str], out: &mut String) {
        let mut mac = self.prepared.clone();
        absorb(&mut mac, scope);
        for p in parts {
            absorb(&mut mac, p);
        }
        let tag = mac.finalize().into_bytes();
        let mut digits = [0u8; 2 * MAC_BYTES];
        out.clear();
        out.push_str(&self.head);
        if hex::encode_to_slice(&tag[..MAC_BYTES], &mut digits).is_ok() {
            out.extend(digits.iter().map(|&b| b as char));
        }
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

    /// The construction, pinned: computed independently with Python's hmac module as
    /// HMAC-SHA-256(key, len32be || part, for "case_id", "1", "LT-NGO-01", "123"). A change
    /// here would unlink every pseudonym already in a lake.
    #[test]
    fn pseudonyms_match_an_independent_implementation() {
        let p = Pseudonymiser::new(&key(), "case_id", "cas");
        assert_eq!(
            p.pseudonym("LT-NGO-01", &["123"]),
            "cas_ke1bb85c3_edded46ffceec4a379add0f18890bfdeb1c598b1"
        );
        let mut out = String::from("left over");
        p.pseudonym_into("LT-NGO-01", &["123"], &mut out);
        assert_eq!(out, p.pseudonym("LT-NGO-01", &["123"]));
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
