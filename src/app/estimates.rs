//! Multiple systems estimation ([`crate::estimate`]) for the command line: from a capture-history
//! file in the layout researchers publish, so a published analysis can be reproduced.

use std::path::Path;

use super::{App, AppError};
use crate::estimate::{self, Estimate, EstimateError, Histories, Options};

/// The assumptions an estimate rests on, in plain words, shown next to every result.
pub const ASSUMPTIONS: &[&str] = &[
    "The population is closed over the period: no one joins or leaves it between the lists.",
    "Each person is linked correctly across lists: one pseudonym per person, no two people under one.",
    "Given the model's two-list terms, the lists are independent: a three-list dependence, or people who are harder to reach for every list alike, biases the estimate (usually down).",
    "Everyone in the population had some chance of being on some list.",
];

/// Capture histories larger than this are refused (a history table of twelve lists is tiny).
const MAX_FILE: u64 = 16 * 1024 * 1024;

impl App {
    /// The estimate from a capture-history file (one 0/1 column per list and a count column).
    pub fn estimate_histories(&self, file: &Path, o: &Options) -> Result<Estimate, AppError> {
        let name = crate::source::display_name(file);
        let bad = |message: String| EstimateError::Input {
            file: name.clone(),
            message,
        };
        let size = std::fs::metadata(file)
            .map_err(|e| bad(format!("cannot read: {}", e.kind())))?
            .len();
        if size > MAX_FILE {
            return Err(bad("larger than 16 MiB: not a capture-history table".into()).into());
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| bad(format!("cannot read as UTF-8 text: {}", e.kind())))?;
        let h = Histories::from_csv(&name, &text)?;
        Ok(estimate::estimate(&h, o)?)
    }
}
