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

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        let tmp = dir.join(format!(".tokens-{}", uuid::Uuid::new_v4()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let bytes = serde_json::to_vec_pretty(records).map_err(|e| self.err(e))?;
        let res = opts
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
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
        let rec = TokenRecord {
            id: format!("t{}", hex::encode(idb)),
            role,
            org: org.map(str::to_string),
            sha256: hash(&token),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            revoked_at: None,
        };
        let mut all = self.load()?;
        all.push(rec.clone());
        self.save(&all)?;
        Ok((token, rec))
    }

    /// Revokes a token by id; false when there is no such token.
    pub fn revoke(&self, id: &str) -> Result<bool, TokenError> {
        let mut all = self.load()?;
        let mut found = false;
        for r in all
            .iter_mut()
            .filter(|r| r.id == id && r.revoked_at.is_none())
        {
            r.revoked_at =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            found = true;
        }
        if found {
            self.save(&all)?;
        }
        Ok(found)
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
}
