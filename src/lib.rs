//! tip: an anonymised trafficking-in-persons intelligence pipeline.
//!
//! Data flows one way, as Arrow record batches:
//! `source` (partner files) → `mapping` (partner layout → canonical) → `validate` (schema
//! rules, quarantine) → `pseudonym` (HMAC-SHA-256) → `lake` (Delta/Parquet) → `query` (SQL).
//! `ingest` drives the stages; `generate` makes synthetic partner reports.

pub mod audit;
pub mod config;
pub mod disclosure;
pub mod extract;
pub mod generate;
pub mod ingest;
pub mod lake;
pub mod mapping;
pub mod normalise;
pub mod pseudonym;
pub mod query;
pub mod report;
pub mod schedule;
pub mod schema;
pub mod serve;
pub mod source;
pub mod validate;
