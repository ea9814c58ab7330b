//! The simulator's dates as day numbers (days since 1970-01-01): thin conversions over the one
//! date type of herstel, [`crate::ingest::date::Date`] (Howard Hinnant's `days_from_civil` /
//! `civil_from_days`).
use crate::ingest::date::Date;

/// Day number of a valid civil date (`None` for an impossible one).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    Date::from_ymd(i32::try_from(y).ok()?, m, d).map(|d| i64::from(d.days()))
}

/// Civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let (y, m, d) = Date::from_days(z as i32).ymd();
    (i64::from(y), m, d)
}

/// Parses `YYYY-MM-DD` (a real calendar day, years 1000-9999, nothing after it) into a day
/// number.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() != 10 || !(b'1'..=b'9').contains(&s.as_bytes()[0]) {
        return None;
    }
    Date::parse(s).map(|d| i64::from(d.days()))
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format_date(day: i64) -> String {
    Date::from_days(day as i32).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(format_date(11_016), "2000-02-29");
        for day in -800_000..800_000 {
            if day % 997 == 0 {
                let (y, m, d) = civil_from_days(day);
                assert_eq!(days_from_civil(y, m, d), Some(day));
            }
        }
        assert_eq!(
            parse_date("2013-09-02").map(format_date).as_deref(),
            Some("2013-09-02")
        );
        assert_eq!(parse_date("2013-02-29"), None);
        assert_eq!(parse_date("2013-13-01"), None);
        assert_eq!(parse_date("x"), None);
    }
}
