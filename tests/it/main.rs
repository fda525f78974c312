//! tip's integration tests: one test binary (each extra binary relinks DataFusion).
//! Everything is real: a Delta lake in a temporary directory, the `tip` binary, the sample data.

mod app;
mod cli;
mod common;
mod doors;
mod erasure;
mod estimate;
mod extract;
mod flight;
mod fuzz;
mod hostile;
mod htcds;
mod ingest;
mod layering;
mod linkage;
mod partner_side;
mod postgres;
mod privacy;
mod query;
mod s3;
mod schedule;
mod serve;
mod slt;
mod submissions;
mod views;
