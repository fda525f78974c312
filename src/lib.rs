//! tip: an anonymised trafficking-in-persons intelligence pipeline.
//!
//! Data flows one way, as Arrow record batches: `source` (partner files) → `mapping` (partner
//! layout → canonical) → `validate` (schema rules, quarantine) → `pseudonym` (HMAC-SHA-256) →
//! `lake` (Delta/Parquet) → `query` (SQL). Modules form layers, and a module uses only the
//! layers below it (a test checks the imports):
//!
//! 1. leaves: `util`, `normalise`, `disclosure`, `cron`;
//! 2. configuration and data definitions: `config`, `schema`, `access`, `audit`;
//! 3. the stages: `source`, `mapping`, `validate`, `pseudonym`, and `generate` (sample data);
//! 4. `lake`, which owns every Delta table, system tables included;
//! 5. `query` (analyst sessions, the gate, encoders) and `schedule` (when jobs run);
//! 6. the jobs: `ingest`, `extract`;
//! 7. `app`, the use cases: opened without the key; only its ingestion side holds it;
//! 8. the front ends: `serve` (HTTP) here, and the `tip` command line (`src/cli/`).

pub mod access;
pub mod app;
pub mod audit;
pub mod config;
pub mod cron;
pub mod disclosure;
pub mod estimate;
pub mod extract;
pub mod generate;
pub mod ingest;
pub mod lake;
pub mod mapping;
pub mod normalise;
pub mod pseudonym;
pub mod query;
pub mod schedule;
pub mod schema;
pub mod serve;
pub mod source;
pub mod util;
pub mod validate;
