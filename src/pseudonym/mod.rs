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

mod hmac;
mod key;
mod stage;

pub use hmac::{Pseudonymiser, parse_pseudonym};
pub use key::{Key, KeyError};
pub use stage::{Provenance, Stage};
