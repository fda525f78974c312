//! Leaves: small helpers with no knowledge of partners, schemas or the lake.

pub mod html;
pub mod months;
pub mod random;
pub mod staging;
