//! The application core: every use case, once, for every front end (the CLI, `tip serve`, the
//! scheduler, and the front ends to come).
//!
//! [`App::open`] reads the configuration, the schemas and the organisation registry and names
//! the lake and the audit log — without the key and without writing anything. The analyst side
//! (sessions, exports, extracts, tokens) works from there on a machine where no key exists.
//! Only [`App::ingestion`] (and [`App::partner_side`] for `tip pseudonymise`) loads the key,
//! and only after checking it against the lake's key epoch.
//!
//! - [`ingestion`]: the key, the key epochs, loading files and running pipelines;
//! - [`upload`]: receiving an upload (limits, gzip, receipt);
//! - [`analysis`]: analyst sessions, queries with their audit record, exports, table listings;
//! - [`extracts`]: running an extract and recording it;
//! - [`tokens`]: access tokens and the check every front end makes;
//! - [`jobs`]: the scheduled jobs;
//! - [`maintain`]: retention and upkeep of the lake;
//! - [`check`]: `tip check`, every configuration file at once;
//! - [`erasure`]: `tip erase`, a person's or a case's rows and the history that held them.

pub mod analysis;
pub mod check;
pub mod erasure;
pub mod estimates;
pub mod extracts;
pub mod ingestion;
pub mod jobs;
pub mod maintain;
pub mod tokens;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::access::TokenError;
use crate::audit::AuditLog;
use crate::config::{ConfigError, Registry, TipConfig};
use crate::extract::ExtractError;
use crate::ingest::IngestError;
use crate::lake::{Lake, LakeError};
use crate::pseudonym::KeyError;
use crate::query::QueryError;
use crate::schema::{Catalog, SchemaError};

pub use ingestion::Ingestion;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Estimate(#[from] crate::estimate::EstimateError),
    #[error("audit log {0}: {1}")]
    Audit(String, String),
    #[error(
        "this lake's pseudonyms are made with key version {lake} (key epoch {epoch}); the key given is version {given}. Nothing was written. Use the lake's key (--key-file or TIP_KEY), or start a new key epoch deliberately with `tip key epoch --reason TEXT --confirm` (children reported before and after it will no longer link)"
    )]
    KeyMismatch {
        lake: String,
        given: String,
        epoch: i64,
    },
    #[error("{0}")]
    Usage(String),
}

/// Who asked, as the audit log records it.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// The command line, on the hub's machine.
    Cli,
    /// `tip schedule`.
    Schedule,
    /// A caller of `tip serve`, by its token, and the door it came in by.
    Token(&'a crate::access::TokenRecord, Door),
}

/// The door of `tip serve` a caller came in by, named in its audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The HTTP API and the upload page.
    Http,
    /// Arrow Flight SQL.
    Flight,
    /// The Postgres wire protocol.
    Postgres,
}

impl Door {
    pub fn as_str(&self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Flight => "flight",
            Door::Postgres => "postgres",
        }
    }
}

impl Actor<'_> {
    /// The `door` field of an audit record: `cli`, `schedule`, `http`, `flight` or `postgres`.
    pub fn door(&self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Schedule => "schedule",
            Actor::Token(_, d) => d.as_str(),
        }
    }

    /// The `by` field of an audit record: `cli`, `schedule` or a token id (never a token).
    pub fn by(&self) -> &str {
        match self {
            Actor::Cli => "cli",
            Actor::Schedule => "schedule",
            Actor::Token(t, _) => &t.id,
        }
    }
}

/// Configuration, schemas, registry, the lake's location and the audit log. No key.
pub struct App {
    pub config: Arc<TipConfig>,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub lake: Lake,
    pub audit: AuditLog,
}

impl App {
    /// Loads the configuration's schemas and registry and names the lake (`lake` overrides
    /// the configured location). Reads no key, writes nothing.
    pub fn open(config: TipConfig, lake: Option<&str>) -> Result<App, AppError> {
        let catalog = Catalog::load(&config.resolve(&config.paths.schemas))?;
        let registry_file = config.resolve(&config.paths.organisations);
        let registry = Registry::load(&registry_file)?;
        check::registry(&catalog, &registry, &registry_file)?;
        let location = lake.map(str::to_string).unwrap_or_else(|| {
            let l = &config.lake.location;
            if l.contains("://") {
                l.clone()
            } else {
                config.resolve(Path::new(l)).display().to_string()
            }
        });
        let lake = Lake::open_with(&location, config.storage.options())?;
        let audit = AuditLog::new(&config.resolve(&config.audit.log));
        Ok(App {
            config: Arc::new(config),
            catalog: Arc::new(catalog),
            registry: Arc::new(registry),
            lake,
            audit,
        })
    }

    /// A configured path, relative to where tip runs.
    pub fn path(&self, p: &Path) -> PathBuf {
        self.config.resolve(p)
    }

    /// Appends an audit record; failing to keep one is an error, never silent.
    pub fn record(&self, event: &str, fields: serde_json::Value) -> Result<(), AppError> {
        self.audit
            .record(event, fields)
            .map_err(|e| AppError::Audit(self.audit.path().display().to_string(), e.to_string()))
    }
}
