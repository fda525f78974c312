//! Months (`YYYY-MM`) and days as Arrow stores them (days since 1970-01-01).

use chrono::NaiveDate;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
pub const EPOCH_DAYS_CE: i32 = 719_163;

/// `YYYY-MM` → the month `delta` months later (or earlier).
pub fn shift_month(month: &str, delta: i32) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i32, i32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) {
        return None;
    }
    let idx = y * 12 + (m - 1) + delta;
    Some(format!(
        "{:04}-{:02}",
        idx.div_euclid(12),
        idx.rem_euclid(12) + 1
    ))
}

/// The month before the current one (UTC), as `YYYY-MM`.
pub fn last_month() -> String {
    let now = chrono::Utc::now().format("%Y-%m").to_string();
    shift_month(&now, -1).unwrap_or(now)
}

/// An Arrow `Date32` value as a date.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(EPOCH_DAYS_CE)?)
}

/// An Arrow `Date32` value as its month, `YYYY-MM`.
pub fn month_of_days(days: i32) -> Option<String> {
    let mut out = String::with_capacity(7);
    write_month(days, &mut out).then_some(out)
}

/// Appends the month of an Arrow `Date32` value (`YYYY-MM`, as chrono's `%Y-%m`) to `out`;
/// false (nothing written) for a day outside chrono's range.
pub fn write_month(days: i32, out: &mut impl std::fmt::Write) -> bool {
    use chrono::Datelike;
    let Some(d) = date_from_days(days) else {
        return false;
    };
    match d.year() {
        0..=9999 => write!(out, "{:04}-{:02}", d.year(), d.month()).is_ok(),
        _ => write!(out, "{}", d.format("%Y-%m")).is_ok(),
    }
}

/// Appends an Arrow `Date32` value as `YYYY-MM-DD` (chrono's `%Y-%m-%d`); false for a day
/// outside chrono's range.
pub fn write_date(days: i32, out: &mut impl std::fmt::Write) -> bool {
    use chrono::Datelike;
    let Some(d) = date_from_days(days) else {
        return false;
    };
    match d.year() {
        0..=9999 => write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()).is_ok(),
        _ => write!(out, "{}", d.format("%Y-%m-%d")).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_shift_across_years() {
        assert_eq!(shift_month("2025-03", -11).as_deref(), Some("2024-04"));
        assert_eq!(shift_month("2025-01", -1).as_deref(), Some("2024-12"));
        assert_eq!(shift_month("2025-12", 1).as_deref(), Some("2026-01"));
        assert_eq!(shift_month("2025-13", 0), None);
        assert_eq!(shift_month("25-01", 0), None);
    }

    #[test]
    fn days_become_months() {
        assert_eq!(month_of_days(0).as_deref(), Some("1970-01"));
        assert_eq!(month_of_days(20_089).as_deref(), Some("2025-01"));
    }

    /// The direct formatting agrees with chrono's across its whole range, negative years and
    /// years past 9999 included.
    #[test]
    fn dates_and_months_are_written_as_chrono_writes_them() {
        for days in (-1_000_000..3_000_000)
            .step_by(997)
            .chain([i32::MIN, i32::MAX, -719_528])
        {
            let chrono = date_from_days(days);
            let (mut m, mut d) = (String::new(), String::new());
            assert_eq!(write_month(days, &mut m), chrono.is_some());
            assert_eq!(write_date(days, &mut d), chrono.is_some());
            if let Some(c) = chrono {
                assert_eq!(m, c.format("%Y-%m").to_string(), "{days}");
                assert_eq!(d, c.format("%Y-%m-%d").to_string(), "{days}");
            }
        }
    }
}
