//! The one timestamp type of the records and the one RFC 3339 formatter and parser (strict:
//! impossible dates and offsets are refused, never rolled over). Where "now" comes from is not
//! decided here: the sensor's `clock` module asks its `Clock`, the collector the system clock.
//!
//! It must never read the system clock itself, and never accept a date the calendar lacks.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of [`Timestamp::format_rfc3339`]'s output.
pub const RFC3339_LEN: usize = 27;

/// Microseconds since the Unix epoch (UTC). Packet timestamps and clock readings share it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    pub fn from_parts(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// A wall-clock reading (before the epoch: the epoch; past year 294,247: saturated).
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_micros().min(i64::MAX as u128) as i64)
    }

    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Whole milliseconds from `earlier` to `self`, never negative (capture clocks can step back).
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        (self.0.saturating_sub(earlier.0)).max(0) as u64 / 1000
    }

    pub fn saturating_add_secs(self, secs: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add((secs as i64).saturating_mul(1_000_000)),
        )
    }

    /// RFC 3339 with microseconds, UTC, e.g. `2026-11-29T14:03:07.123456Z`.
    pub fn to_rfc3339(self) -> String {
        let mut buf = [0u8; RFC3339_LEN];
        self.format_rfc3339(&mut buf).to_string()
    }

    /// [`Self::to_rfc3339`] into a caller's buffer: every CallRecord carries timestamps, and
    /// `format!` cost more than the rest of the record's serialization (callgrind).
    /// Years outside 0000..=9999 are clamped to those bounds (never reached by packet times).
    pub fn format_rfc3339(self, buf: &mut [u8; RFC3339_LEN]) -> &str {
        const MIN: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        let t = Timestamp(self.0.clamp(MIN, MAX));
        let secs = t.as_secs();
        let micros = t.0.rem_euclid(1_000_000) as u32;
        let tod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        *buf = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u32| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u32);
        put(5, 2, m);
        put(8, 2, d);
        put(11, 2, tod / 3600);
        put(14, 2, tod % 3600 / 60);
        put(17, 2, tod % 60);
        put(20, 6, micros);
        // Only ASCII digits and separators were written.
        std::str::from_utf8(buf).unwrap_or_default()
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        // Validated, never normalized: 11-31 or 02-30 would otherwise roll into the next month.
        // A leap second (:60) exists only at the end of a UTC day's last minute.
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || sec > 60
            || (sec == 60 && (h, mi) != (23, 59))
        {
            return None;
        }
        let mut i = 19;
        let mut micros = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 6 {
                    micros = micros * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..6 {
                micros *= 10;
            }
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'+' {
                    off
                } else {
                    -off
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
        Some(Timestamp::from_parts(secs, micros))
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms: exact for the proleptic Gregorian calendar.
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

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_like_the_calendar_everywhere() {
        // Every day from 1900 to 2100 at varied times of day round-trips through the parser.
        let mut t = Timestamp::parse_rfc3339("1900-01-01T00:00:00Z").unwrap();
        let end = Timestamp::parse_rfc3339("2100-01-01T00:00:00Z").unwrap();
        let mut step = 0i64;
        while t < end {
            let s = t.to_rfc3339();
            assert_eq!(s.len(), RFC3339_LEN);
            assert_eq!(Timestamp::parse_rfc3339(&s), Some(t), "{s}");
            step += 1;
            t = Timestamp(t.0 + 86_400_000_000 + (step * 7_777_777_777) % 86_400_000_000);
        }
        assert_eq!(
            Timestamp(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            Timestamp(i64::MIN).to_rfc3339(),
            "0000-01-01T00:00:00.000000Z"
        );
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn impossible_dates_and_offsets_are_refused_not_rolled_over() {
        for bad in [
            "2026-11-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-02-30T12:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-29T14:03:07+24:00",
            "2026-11-29T14:03:07-00:60",
            "2026-11-29T14:03:60Z",
            "2026-11-29T24:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
        for good in [
            "2028-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-12-31T23:59:60Z",
            "2026-11-29T14:03:07+23:59",
        ] {
            assert!(Timestamp::parse_rfc3339(good).is_some(), "{good}");
        }
        assert_eq!(Timestamp::parse_rfc3339("1900-02-29T00:00:00Z"), None);
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-11-29T14:03:07.123456Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-29T14:03:07.123456Z");
        assert_eq!(
            Timestamp::from_secs(0).to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
        let leap = Timestamp::parse_rfc3339("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(leap.to_rfc3339(), "2024-02-29T23:59:59.000000Z");
    }

    #[test]
    fn rfc3339_offsets_and_rejects() {
        let a = Timestamp::parse_rfc3339("2026-11-29T15:03:07+01:00").unwrap();
        let b = Timestamp::parse_rfc3339("2026-11-29T14:03:07Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b.as_secs(), 1_795_960_987);
        for bad in [
            "",
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T14:03:07",
            "2026-11-29T14:03:07.Z",
            "x026-11-29T14:03:07Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_none(), "{bad}");
        }
    }
}
