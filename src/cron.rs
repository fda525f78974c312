//! Five-field cron expressions (UTC), as `tip schedule` reads them from pipeline and extract
//! definitions.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

/// A five-field cron expression: minute hour day-of-month month day-of-week, with `*`, lists,
/// ranges and steps. As in cron, when both day fields are restricted a day matching either
/// runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_any: bool,
    dow_any: bool,
    text: String,
}

fn field(s: &str, lo: u32, hi: u32, name: &str) -> Result<(u64, bool), String> {
    let mut mask = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (
                r,
                st.parse::<u32>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{name}: bad step {st:?}"))?,
            ),
            None => (part, 1),
        };
        let num = |x: &str| {
            x.parse::<u32>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| format!("{name}: {x:?} is not in {lo}..{hi}"))
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a)?, num(b)?)
        } else {
            let a = num(range)?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a > b {
            return Err(format!("{name}: empty range {range:?}"));
        }
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok((mask, s == "*"))
}

impl Cron {
    pub fn parse(s: &str) -> Result<Cron, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{s:?}: expected five fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let (minute, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_any) = field(f[2], 1, 31, "day of month")?;
        let (month, _) = field(f[3], 1, 12, "month")?;
        let (mut dow, dow_any) = field(f[4], 0, 7, "day of week")?;
        if dow & (1 << 7) != 0 {
            dow |= 1;
        }
        Ok(Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
            text: s.to_string(),
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.month & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The latest time at or before `now` that the expression names (to the minute).
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = now.date_naive();
        let now_min = now.hour() * 60 + now.minute();
        for back in 0..(366 * 8) {
            let d = today - chrono::Duration::days(back);
            if !self.day_matches(d) {
                continue;
            }
            for h in (0..24u32).rev() {
                if self.hour & (1 << h) == 0 {
                    continue;
                }
                for m in (0..60u32).rev() {
                    if self.minute & (1 << m) == 0 || (back == 0 && h * 60 + m > now_min) {
                        continue;
                    }
                    return Utc
                        .with_ymd_and_hms(d.year(), d.month(), d.day(), h, m, 0)
                        .single();
                }
            }
        }
        None
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_finds_the_latest_slot() {
        let c = Cron::parse("0 2 3 * *").unwrap();
        assert_eq!(
            c.latest_at_or_before(t("2025-04-03T02:00:00Z")),
            Some(t("2025-04-03T02:00:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-04-03T01:59:00Z")),
            Some(t("2025-03-03T02:00:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-01-01T00:00:00Z")),
            Some(t("2024-12-03T02:00:00Z"))
        );
        let c = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // Saturday 2025-04-05 → Friday 17:45.
        assert_eq!(
            c.latest_at_or_before(t("2025-04-05T12:00:00Z")),
            Some(t("2025-04-04T17:45:00Z"))
        );
        assert_eq!(
            c.latest_at_or_before(t("2025-04-04T10:07:00Z")),
            Some(t("2025-04-04T10:00:00Z"))
        );
        let c = Cron::parse("30 1 * * 0,7").unwrap();
        assert_eq!(
            c.latest_at_or_before(t("2025-04-08T00:00:00Z")),
            Some(t("2025-04-06T01:30:00Z"))
        );
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "5-1 * * * *",
            "*/0 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?}");
        }
    }
}
