//! Timestamps of text log lines: RFC 3339 with milliseconds, in UTC
//! (`2026-01-02T03:04:05.678Z`) or local time (`2026-01-02T04:04:05.678+01:00`).
//!
//! Formatting a whole date, and finding the local zone's offset (chrono looks up
//! the zone, and checks once a second whether it changed), is done at most once
//! per second: [`Stamps`] keeps the text up to the second and its zone suffix, and
//! only the milliseconds are written for each event.

use crate::config::TimeZone;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as RFC 3339 with milliseconds in `zone`, and a space.
pub(crate) fn stamp(t: SystemTime, zone: TimeZone) -> String {
    match zone {
        TimeZone::Utc => format!("{} ", humantime::format_rfc3339_millis(t)),
        TimeZone::Local => format!(
            "{} ",
            chrono::DateTime::<chrono::Local>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
        ),
    }
}

/// Formats timestamps in one zone, the part up to the second once per second.
#[derive(Debug, Clone)]
pub(crate) struct Stamps {
    zone: TimeZone,
    /// The whole second (since the epoch) `head` and `tail` are for.
    second: Option<u64>,
    /// `2026-01-02T03:04:05.`
    head: String,
    /// `Z ` or `+01:00 `.
    tail: String,
}

impl Stamps {
    /// Timestamps in `zone`.
    pub(crate) fn new(zone: TimeZone) -> Self {
        Stamps {
            zone,
            second: None,
            head: String::new(),
            tail: String::new(),
        }
    }

    /// Appends `t` as [`stamp`] writes it.
    pub(crate) fn push(&mut self, buf: &mut Vec<u8>, t: SystemTime) {
        // Times before 1970 (a clock gone wrong) are formatted in full.
        let Ok(since) = t.duration_since(UNIX_EPOCH) else {
            buf.extend_from_slice(stamp(t, self.zone).as_bytes());
            return;
        };
        let second = since.as_secs();
        if self.second != Some(second) && !self.split(UNIX_EPOCH + Duration::from_secs(second)) {
            buf.extend_from_slice(stamp(t, self.zone).as_bytes());
            return;
        }
        self.second = Some(second);
        buf.extend_from_slice(self.head.as_bytes());
        let ms = since.subsec_millis();
        buf.extend_from_slice(&[
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ]);
        buf.extend_from_slice(self.tail.as_bytes());
    }

    /// Formats the whole second `t` and keeps the text around its milliseconds
    /// (false if it does not have the expected shape: then nothing is cached).
    fn split(&mut self, t: SystemTime) -> bool {
        let full = stamp(t, self.zone);
        let Some(dot) = full.find('.') else {
            return false;
        };
        let (Some(head), Some(tail)) = (full.get(..=dot), full.get(dot + 4..)) else {
            return false;
        };
        if full.get(dot + 1..dot + 4) != Some("000") {
            return false;
        }
        self.head = head.to_string();
        self.tail = tail.to_string();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(stamps: &mut Stamps, t: SystemTime) -> String {
        let mut buf = Vec::new();
        stamps.push(&mut buf, t);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn cached_stamps_are_the_full_format_across_seconds_and_zones() {
        let start = UNIX_EPOCH + Duration::from_millis(1_780_000_000_000);
        for zone in [TimeZone::Utc, TimeZone::Local] {
            let mut stamps = Stamps::new(zone);
            // Steps of 7 ms over 3 seconds, then a jump back and a jump ahead.
            let mut times: Vec<SystemTime> = (0..450)
                .map(|i| start + Duration::from_millis(7 * i))
                .collect();
            times.push(start - Duration::from_secs(86_400 * 200));
            times.push(start + Duration::from_nanos(999_999_999));
            times.push(start + Duration::from_secs(86_400 * 180));
            for t in times {
                assert_eq!(cached(&mut stamps, t), stamp(t, zone), "{zone:?} {t:?}");
            }
        }
    }

    #[test]
    fn utc_stamps_read_as_rfc3339_with_milliseconds() {
        let mut stamps = Stamps::new(TimeZone::Utc);
        let t = UNIX_EPOCH + Duration::from_millis(1_780_000_000_042);
        assert_eq!(cached(&mut stamps, t), "2026-05-28T20:26:40.042Z ");
    }
}
