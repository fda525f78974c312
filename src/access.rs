//! Access: tokens, roles and the check every front end makes (HTTP, Flight SQL, Postgres wire).
//!
//! A token is 256 random bits, shown once when it is made; tip keeps only its SHA-256 (a token
//! is random, so a fast hash is enough: there is nothing to guess). The file is read at every
//! check, so a revocation takes effect at once, without a restart.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Uploads its organisation's reports and sees its own submissions.
    Partner,
    /// Queries the lake.
    Analyst,
    /// Manages tokens.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "partner" => Some(Role::Partner),
            "analyst" => Some(Role::Analyst),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Partner => "partner",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public handle, safe to log.
    pub id: String,
    pub role: Role,
    /// The organisation a partner token acts for.
    pub org: Option<String>,
    pub sha256: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The token's SCRAM-SHA-256 verifier for the Postgres wire protocol, in Postgres's own
    /// form (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`): it checks a login
    /// proof but cannot make one. Tokens made before tip spoke Postgres have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram_sha256: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}: {1}")]
    Io(String, String),
    #[error("{0}")]
    Usage(String),
}

pub struct TokenStore {
    path: PathBuf,
}

fn hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Equal without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenStore {
    pub fn new(path: &Path) -> TokenStore {
        TokenStore {
            path: path.to_path_buf(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> TokenError {
        TokenError::Io(self.path.display().to_string(), e.to_string())
    }

    pub fn load(&self) -> Result<Vec<TokenRecord>, TokenError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| self.err(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Runs `change` on the records and saves what it returns, holding the store's lock file
    /// (`<tokens>.lock`, an exclusive lock of the operating system) from the read to the
    /// rename: two `tip token` commands at once are serialised, so neither loses the other's
    /// change (a revocation reported done but undone by a token made at the same moment).
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Vec<TokenRecord>) -> Result<Option<T>, TokenError>,
    ) -> Result<Option<T>, TokenError> {
        let dir = self.dir()?;
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        crate::util::owner_only(&mut opts);
        let lock = opts.open(dir.join(name)).map_err(|e| self.err(e))?;
        lock.lock().map_err(|e| self.err(e))?;
        let mut all = self.load()?;
        let out = change(&mut all)?;
        if out.is_some() {
            self.save(&all)?;
        }
        Ok(out)
        // The lock is released when `lock` closes.
    }

    /// The store's directory, made if missing.
    fn dir(&self) -> Result<&Path, TokenError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        Ok(dir)
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let dir = self.dir()?;
        let tmp = dir.join(format!(".tokens-{}", uuid::Uuid::new_v4()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        crate::util::owner_only(&mut opts);
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| self.err(e))?;
        let res = opts
            .open(&tmp)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, &bytes)?;
                f.sync_all()
            })
            .and_then(|_| std::fs::rename(&tmp, &self.path));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res.map_err(|e| self.err(e))
    }

    /// Makes a token; returns it (to be shown once) and its record.
    pub fn create(
        &self,
        role: Role,
        org: Option<&str>,
    ) -> Result<(String, TokenRecord), TokenError> {
        if (role == Role::Partner) != org.is_some() {
            return Err(TokenError::Usage(
                "a partner token needs --org, and only a partner token takes one".into(),
            ));
        }
        let mut secret = [0u8; 32];
        crate::util::random::fill(&mut secret);
        let token = format!("tip_{}", hex::encode(secret));
        let mut idb = [0u8; 6];
        crate::util::random::fill(&mut idb);
        let made = self.change(|all| {
            let salt = hub_salt(all);
            let rec = TokenRecord {
                id: format!("t{}", hex::encode(idb)),
                role,
                org: org.map(str::to_string),
                sha256: hash(&token),
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                revoked_at: None,
                scram_sha256: Some(Scram::derive(&token, &salt, SCRAM_ITERATIONS).to_string()),
            };
            all.push(rec.clone());
            Ok(Some(rec))
        })?;
        let rec = made.ok_or_else(|| self.err("the token was not made"))?;
        Ok((token, rec))
    }

    /// Revokes a token by id; false when there is no such token.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let revoked = self.change(|all| {
            let mut found = false;
            for r in all
                .iter_mut()
                .filter(|r| r.id == id && r.revoked_at.is_none())
            {
                r.revoked_at =
                    Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                found = true;
            }
            Ok(found.then_some(()))
        })?;
        Ok(revoked.is_some())
    }

    /// The live record of a token, if it is one.
    pub fn verify(&self, token: &str) -> Result<Option<TokenRecord>, TokenError> {
        let h = hash(token);
        Ok(self
            .load()?
            .into_iter()
            .find(|r| same(r.sha256.as_bytes(), h.as_bytes()) && r.revoked_at.is_none()))
    }

    /// The live record with this hash (page sessions keep the hash, not the token).
    pub fn by_hash(&self, h: &str) -> Result<Option<TokenRecord>, TokenError> {
        Ok(self
            .load()?
            .into_iter()
            .find(|r| same(r.sha256.as_bytes(), h.as_bytes()) && r.revoked_at.is_none()))
    }

    pub fn hash(token: &str) -> String {
        hash(token)
    }

    /// The live tokens a Postgres login as `user` may be: the token with that id, or every
    /// token of the role of that name (`analyst`), with their SCRAM verifiers. Tokens without
    /// a verifier cannot log in over Postgres.
    pub fn scram_candidates(&self, user: &str) -> Result<Vec<(TokenRecord, Scram)>, TokenError> {
        let role = Role::parse(user);
        Ok(self
            .load()?
            .into_iter()
            .filter(|r| r.revoked_at.is_none() && (r.id == user || Some(r.role) == role))
            .filter_map(|r| {
                let s = Scram::parse(r.scram_sha256.as_deref()?)?;
                Some((r, s))
            })
            .collect())
    }

    /// The salt the store's SCRAM verifiers share (a fixed one of its own while it has none),
    /// for the challenge to a user with no token: it looks like any other.
    pub fn scram_salt(&self) -> Result<Vec<u8>, TokenError> {
        let records = self.load()?;
        if records.iter().any(|r| r.scram_sha256.is_some()) {
            return Ok(hub_salt(&records));
        }
        let h = sha2::Sha256::digest(self.path.display().to_string().as_bytes());
        Ok(h[..16].to_vec())
    }

    /// The live record with this id (a Postgres connection re-checks its token at each query,
    /// so a revocation ends what an open connection can do).
    pub fn live_by_id(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        Ok(self
            .load()?
            .into_iter()
            .find(|r| r.id == id && r.revoked_at.is_none()))
    }
}

/// Postgres's default iteration count for SCRAM-SHA-256.
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The salt every verifier of a token store shares, so that a login by role name (the server
/// must send the salt before it knows which token is coming) can be checked against each of
/// the role's tokens. Tokens are 256 random bits, so a shared salt gives nothing to a guesser.
fn hub_salt(records: &[TokenRecord]) -> Vec<u8> {
    records
        .iter()
        .filter_map(|r| Scram::parse(r.scram_sha256.as_deref()?))
        .map(|s| s.salt)
        .next()
        .unwrap_or_else(|| {
            let mut salt = vec![0u8; 16];
            crate::util::random::fill(&mut salt);
            salt
        })
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// A SCRAM-SHA-256 verifier (RFC 5802, RFC 7677): the salt, the iteration count, StoredKey and
/// ServerKey. It checks a client's proof and signs the server's answer; it cannot make a proof.
#[derive(Clone)]
pub struct Scram {
    pub salt: Vec<u8>,
    pub iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl Scram {
    /// The verifier of `password` (a token: ASCII, which SASLprep leaves as it is).
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Scram {
        // Hi(): PBKDF2-HMAC-SHA-256 with one block of output.
        let mut u = hmac_sha256(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
        let mut salted = u;
        for _ in 1..iterations {
            u = hmac_sha256(password.as_bytes(), &[&u]);
            salted.iter_mut().zip(u).for_each(|(s, x)| *s ^= x);
        }
        let client_key = hmac_sha256(&salted, &[b"Client Key"]);
        Scram {
            salt: salt.to_vec(),
            iterations,
            stored_key: sha2::Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, &[b"Server Key"]),
        }
    }

    /// Reads the stored form; None when it is not one.
    pub fn parse(s: &str) -> Option<Scram> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Scram {
            salt: b64.decode(salt).ok()?,
            iterations: iterations.parse().ok()?,
            stored_key: b64.decode(stored).ok()?.try_into().ok()?,
            server_key: b64.decode(server).ok()?.try_into().ok()?,
        })
    }

    /// Whether `proof` is the client proof of the password over `auth_message`:
    /// H(proof XOR HMAC(StoredKey, AuthMessage)) = StoredKey, compared without an early exit.
    pub fn accepts(&self, auth_message: &[u8], proof: &[u8]) -> bool {
        if proof.len() != 32 {
            return false;
        }
        let signature = hmac_sha256(&self.stored_key, &[auth_message]);
        let mut client_key = [0u8; 32];
        for (i, k) in client_key.iter_mut().enumerate() {
            *k = proof[i] ^ signature[i];
        }
        let h: [u8; 32] = sha2::Sha256::digest(client_key).into();
        same(&h, &self.stored_key)
    }

    /// The server's signature over `auth_message`, which proves to the client that the server
    /// holds the verifier.
    pub fn server_signature(&self, auth_message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.server_key, &[auth_message])
    }
}

impl std::fmt::Display for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            b64.encode(&self.salt),
            b64.encode(self.stored_key),
            b64.encode(self.server_key)
        )
    }
}

/// Why a caller was turned away.
#[derive(Debug)]
pub enum Denial {
    /// No token given.
    NoToken,
    /// Not a live token.
    UnknownToken,
    /// A live token of another role.
    WrongRole {
        token: Box<TokenRecord>,
        needs: Role,
    },
    /// The token store cannot be read.
    Store(TokenError),
}

impl TokenStore {
    /// The caller behind `token` if it is live and holds `role`.
    pub fn authorise(&self, token: Option<&str>, role: Role) -> Result<TokenRecord, Denial> {
        let t = token.ok_or(Denial::NoToken)?;
        match self.verify(t).map_err(Denial::Store)? {
            None => Err(Denial::UnknownToken),
            Some(rec) if rec.role == role => Ok(rec),
            Some(rec) => Err(Denial::WrongRole {
                token: Box::new(rec),
                needs: role,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_as_hashes_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&dir.path().join("tokens.json"));
        let (token, rec) = store.create(Role::Partner, Some("LT-NGO-01")).unwrap();
        assert!(token.len() >= 4 + 64, "256 bits in hex");
        let text = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(
            !text.contains(&token[4..]),
            "the token itself is never stored"
        );
        assert_eq!(store.verify(&token).unwrap().unwrap().id, rec.id);
        assert!(store.verify("tip_0000").unwrap().is_none());
        assert!(store.revoke(&rec.id).unwrap());
        assert!(store.verify(&token).unwrap().is_none());
        assert!(store.create(Role::Partner, None).is_err());
        assert!(store.create(Role::Analyst, Some("LT-NGO-01")).is_err());
    }

    /// RFC 7677's SCRAM-SHA-256 example (user "user", password "pencil"): the verifier made
    /// from the password accepts the client's proof and makes the server's signature.
    #[test]
    fn scram_verifiers_check_rfc_7677s_example() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = Scram::derive("pencil", &salt, 4096);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
                    r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
                    c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = b64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert!(v.accepts(auth.as_bytes(), &proof));
        let mut wrong = proof.clone();
        wrong[0] ^= 1;
        assert!(!v.accepts(auth.as_bytes(), &wrong));
        assert!(!Scram::derive("pencil!", &salt, 4096).accepts(auth.as_bytes(), &proof));
        assert_eq!(
            b64.encode(v.server_signature(auth.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let stored = Scram::parse(&v.to_string()).unwrap();
        assert!(stored.accepts(auth.as_bytes(), &proof));
    }

    #[test]
    fn tokens_share_the_stores_scram_salt_and_log_in_by_id_or_role() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&dir.path().join("tokens.json"));
        let (_, a) = store.create(Role::Analyst, None).unwrap();
        let (_, b) = store.create(Role::Analyst, None).unwrap();
        let (_, p) = store.create(Role::Partner, Some("LT-NGO-01")).unwrap();
        let salts: Vec<Vec<u8>> = [&a, &b, &p]
            .iter()
            .map(|r| {
                Scram::parse(r.scram_sha256.as_deref().unwrap())
                    .unwrap()
                    .salt
            })
            .collect();
        assert!(salts.iter().all(|s| *s == salts[0] && s.len() == 16));
        let ids = |user: &str| -> Vec<String> {
            store
                .scram_candidates(user)
                .unwrap()
                .into_iter()
                .map(|(r, _)| r.id)
                .collect()
        };
        assert_eq!(ids("analyst"), vec![a.id.clone(), b.id.clone()]);
        assert_eq!(ids(&p.id), vec![p.id.clone()]);
        assert!(ids("nobody").is_empty());
        store.revoke(&a.id).unwrap();
        assert_eq!(ids("analyst"), vec![b.id.clone()]);
        assert!(store.live_by_id(&a.id).unwrap().is_none());
    }
}
