//! A value bound to a statement parameter. Generators produce them, sessions bind them
//! (prepared protocol) or render them as SQL literals (text protocol).

use crate::target::Driver;
use std::fmt::Write;

/// A bound statement argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(i64),
    Real(f64),
    Text(String),
    /// Microseconds since the Unix epoch, UTC; bound as a timestamp without time zone.
    Timestamp(i64),
}

impl Arg {
    /// The value as an SQL literal of `driver`'s dialect, for the text protocol.
    ///
    /// Strings are quoted with `'` doubled; on MySQL/MariaDB backslashes are doubled too
    /// (the default `sql_mode` treats them as escapes). Floats are written with every
    /// digit Rust needs to read them back, so nothing is rounded on the way.
    pub fn write_literal(&self, driver: Driver, out: &mut String) {
        match self {
            Arg::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Arg::Real(v) if v.is_finite() => {
                let _ = write!(out, "{v:?}");
            }
            Arg::Real(_) => out.push_str("NULL"),
            Arg::Text(s) => quote(driver, s, out),
            Arg::Timestamp(micros) => quote(driver, &timestamp_text(*micros), out),
        }
    }
}

fn quote(driver: Driver, s: &str, out: &mut String) {
    out.push('\'');
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' if driver == Driver::MySql => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) of a Unix time in microseconds.
pub fn timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day number.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_for_each_dialect() {
        let mut s = String::new();
        Arg::Text(r"it's a \ test".into()).write_literal(Driver::MySql, &mut s);
        assert_eq!(s, r"'it''s a \\ test'");
        s.clear();
        Arg::Text(r"it's a \ test".into()).write_literal(Driver::Postgres, &mut s);
        assert_eq!(s, r"'it''s a \ test'");
        s.clear();
        Arg::Real(0.1).write_literal(Driver::Sqlite, &mut s);
        assert_eq!(s, "0.1");
        s.clear();
        Arg::Int(-7).write_literal(Driver::Sqlite, &mut s);
        assert_eq!(s, "-7");
    }

    #[test]
    fn timestamps_render_as_utc_text() {
        assert_eq!(timestamp_text(0), "1970-01-01 00:00:00.000000");
        // 2026-11-27 04:05:06.000007 UTC
        assert_eq!(
            timestamp_text(1_795_752_306_000_007),
            "2026-11-27 04:05:06.000007"
        );
        assert_eq!(
            timestamp_text(951_782_400_000_000),
            "2000-02-29 00:00:00.000000"
        );
    }
}
