//! Checks for the FHIR R4 date and time primitives: date, dateTime, instant and time.

use super::primitives::Primitive;

/// How much of a date is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatePrecision {
    Year,
    Month,
    Day,
}

/// Checks date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`), dateTime (a date, or a full date with
/// `Thh:mm:ss`, optional fraction and a required zone), instant (a full dateTime) and time
/// (`hh:mm:ss` with optional fraction and no zone). Dates must exist in the Gregorian calendar.
pub(super) fn check(primitive: Primitive, text: &str) -> Result<(), String> {
    let mut cursor = Cursor::new(text);

    if primitive == Primitive::Time {
        parse_time(&mut cursor)?;
        if !cursor.is_empty() {
            return Err("a time has no date or zone (use hh:mm:ss)".to_owned());
        }
        return Ok(());
    }

    let precision = parse_date(&mut cursor)?;
    if cursor.is_empty() {
        return match primitive {
            Primitive::Instant => Err(INSTANT_FORMAT.to_owned()),
            _ => Ok(()),
        };
    }
    if primitive == Primitive::Date {
        return Err(if cursor.peek() == Some(b'T') {
            "a date must not have a time (use YYYY, YYYY-MM or YYYY-MM-DD)".to_owned()
        } else {
            "expected YYYY, YYYY-MM or YYYY-MM-DD".to_owned()
        });
    }
    if !cursor.eat(b'T') {
        return Err("expected 'T' and a time after the date".to_owned());
    }
    if precision != DatePrecision::Day {
        return Err("a time needs a full date (YYYY-MM-DDThh:mm:ss)".to_owned());
    }

    parse_time(&mut cursor)?;
    parse_zone(&mut cursor)?;
    if !cursor.is_empty() {
        return Err("unexpected text after the zone".to_owned());
    }
    Ok(())
}

const INSTANT_FORMAT: &str = "an instant needs a full date, time and zone (YYYY-MM-DDThh:mm:ssZ)";

fn parse_date(cursor: &mut Cursor<'_>) -> Result<DatePrecision, String> {
    let year = cursor.digits(4).ok_or("the year must be 4 digits (YYYY)")?;
    if year == 0 {
        return Err("year 0000 does not exist".to_owned());
    }
    if !cursor.eat(b'-') {
        return Ok(DatePrecision::Year);
    }

    let month = cursor
        .digits(2)
        .ok_or("the month must be 2 digits (YYYY-MM)")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} does not exist"));
    }
    if !cursor.eat(b'-') {
        return Ok(DatePrecision::Month);
    }

    let day = cursor
        .digits(2)
        .ok_or("the day must be 2 digits (YYYY-MM-DD)")?;
    let exists = i32::try_from(year)
        .ok()
        .and_then(|year| chrono::NaiveDate::from_ymd_opt(year, month, day))
        .is_some();
    if !exists {
        return Err(format!("{year:04}-{month:02} has no day {day:02}"));
    }
    Ok(DatePrecision::Day)
}

/// Parses `hh:mm:ss` with an optional fraction. R4 allows second 60 for leap seconds.
fn parse_time(cursor: &mut Cursor<'_>) -> Result<(), String> {
    const FORMAT: &str = "the time must be hh:mm:ss";

    let hour = cursor.digits(2).ok_or(FORMAT)?;
    if !cursor.eat(b':') {
        return Err(FORMAT.to_owned());
    }
    let minute = cursor.digits(2).ok_or(FORMAT)?;
    if !cursor.eat(b':') {
        return Err("a time must have seconds (hh:mm:ss)".to_owned());
    }
    let second = cursor.digits(2).ok_or(FORMAT)?;

    if hour > 23 {
        return Err(format!("hour {hour:02} does not exist"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} does not exist"));
    }
    if second > 60 {
        return Err(format!("second {second:02} does not exist"));
    }
    if cursor.eat(b'.') && cursor.skip_digits() == 0 {
        return Err("a decimal point in the seconds must be followed by digits".to_owned());
    }
    Ok(())
}

/// Parses the zone of a dateTime or instant: `Z` or `+hh:mm`/`-hh:mm` up to 14:00.
fn parse_zone(cursor: &mut Cursor<'_>) -> Result<(), String> {
    const FORMAT: &str = "the zone must be Z or an offset such as +01:00";

    if cursor.eat(b'Z') {
        return Ok(());
    }
    if !(cursor.eat(b'+') || cursor.eat(b'-')) {
        return Err(if cursor.is_empty() {
            "a time must have a zone (Z or an offset such as +01:00)".to_owned()
        } else {
            FORMAT.to_owned()
        });
    }

    let hours = cursor.digits(2).ok_or(FORMAT)?;
    if !cursor.eat(b':') {
        return Err(FORMAT.to_owned());
    }
    let minutes = cursor.digits(2).ok_or(FORMAT)?;
    if minutes > 59 || hours > 14 || (hours == 14 && minutes > 0) {
        return Err(format!(
            "zone offset {hours:02}:{minutes:02} is out of range (up to 14:00)"
        ));
    }
    Ok(())
}

/// A position in an ASCII date or time string.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Cursor {
            rest: text.as_bytes(),
        }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Consumes `expected` if it is the next byte.
    fn eat(&mut self, expected: u8) -> bool {
        match self.rest.split_first() {
            Some((&byte, rest)) if byte == expected => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// Consumes exactly `count` ASCII digits and returns their value, or consumes nothing.
    fn digits(&mut self, count: usize) -> Option<u32> {
        let (digits, rest) = self.rest.split_at_checked(count)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.rest = rest;
        Some(
            digits
                .iter()
                .fold(0, |value, digit| value * 10 + u32::from(digit - b'0')),
        )
    }

    /// Consumes all leading ASCII digits and returns how many there were.
    fn skip_digits(&mut self) -> usize {
        let count = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        self.rest = self.rest.get(count..).unwrap_or_default();
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::primitives::check as check_primitive;
    use serde_json::{json, Value};

    fn message(primitive: Primitive, value: Value) -> String {
        match check_primitive(primitive, &value) {
            Ok(()) => panic!("expected {value} to be an invalid {}", primitive.name()),
            Err(message) => message,
        }
    }

    fn accepts(primitive: Primitive, values: &[Value]) {
        for value in values {
            assert_eq!(
                check_primitive(primitive, value),
                Ok(()),
                "{} {value}",
                primitive.name()
            );
        }
    }

    #[test]
    fn date_accepts_partial_and_leap_dates() {
        accepts(
            Primitive::Date,
            &[
                json!("1974"),
                json!("1974-12"),
                json!("2024-02-29"),
                json!("2000-02-29"),
            ],
        );
    }

    #[test]
    fn date_rejects_days_outside_calendar() {
        let cases = [
            (
                "2023-02-29",
                r#"invalid date "2023-02-29": 2023-02 has no day 29"#,
            ),
            (
                "1900-02-29",
                r#"invalid date "1900-02-29": 1900-02 has no day 29"#,
            ),
            (
                "2015-04-31",
                r#"invalid date "2015-04-31": 2015-04 has no day 31"#,
            ),
            (
                "2015-04-00",
                r#"invalid date "2015-04-00": 2015-04 has no day 00"#,
            ),
            (
                "2000-15-31",
                r#"invalid date "2000-15-31": month 15 does not exist"#,
            ),
            (
                "2000-00",
                r#"invalid date "2000-00": month 00 does not exist"#,
            ),
            ("0000", r#"invalid date "0000": year 0000 does not exist"#),
        ];
        for (value, expected) in cases {
            assert_eq!(message(Primitive::Date, json!(value)), expected);
        }
    }

    #[test]
    fn date_rejects_malformed_text() {
        let cases = [
            (
                "74",
                r#"invalid date "74": the year must be 4 digits (YYYY)"#,
            ),
            (
                "2000-1",
                r#"invalid date "2000-1": the month must be 2 digits (YYYY-MM)"#,
            ),
            (
                "2000-01-1",
                r#"invalid date "2000-01-1": the day must be 2 digits (YYYY-MM-DD)"#,
            ),
            (
                "2000/01/01",
                r#"invalid date "2000/01/01": expected YYYY, YYYY-MM or YYYY-MM-DD"#,
            ),
            (
                "2019-11-04T23:00:00.000Z",
                r#"invalid date "2019-11-04T23:00:00.000Z": a date must not have a time (use YYYY, YYYY-MM or YYYY-MM-DD)"#,
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(message(Primitive::Date, json!(value)), expected);
        }
    }

    #[test]
    fn date_time_accepts_r4_forms() {
        accepts(
            Primitive::DateTime,
            &[
                json!("2020"),
                json!("2012-09"),
                json!("2012-09-17"),
                json!("2015-02-07T13:28:17-05:00"),
                json!("2013-04-02T09:30:10+01:00"),
                json!("2017-01-01T00:00:00Z"),
                json!("2017-01-01T00:00:00.123456789Z"),
                json!("2016-12-31T23:59:60Z"),
                json!("2017-01-01T00:00:00+14:00"),
                json!("2017-01-01T00:00:00-13:59"),
            ],
        );
    }

    #[test]
    fn date_time_rejects_invalid_values() {
        let cases = [
            ("2015-02-30", "2015-02 has no day 30"),
            (
                "2023-09-04T21:28:00",
                "a time must have a zone (Z or an offset such as +01:00)",
            ),
            ("2023-09-04T21:28", "a time must have seconds (hh:mm:ss)"),
            ("2023-09-04T21:28Z", "a time must have seconds (hh:mm:ss)"),
            ("2023-09-04T24:00:00Z", "hour 24 does not exist"),
            ("2023-09-04T12:60:00Z", "minute 60 does not exist"),
            ("2023-09-04T12:00:61Z", "second 61 does not exist"),
            (
                "2023-09-04T12:00:00.Z",
                "a decimal point in the seconds must be followed by digits",
            ),
            (
                "2023-09-04T12:00:00+15:00",
                "zone offset 15:00 is out of range (up to 14:00)",
            ),
            (
                "2023-09-04T12:00:00+14:30",
                "zone offset 14:30 is out of range (up to 14:00)",
            ),
            (
                "2023-09-04T12:00:00+0100",
                "the zone must be Z or an offset such as +01:00",
            ),
            (
                "2023-09-04T12:00:00z",
                "the zone must be Z or an offset such as +01:00",
            ),
            ("2023-09-04T12:00:00ZZ", "unexpected text after the zone"),
            (
                "2023-09T12:00:00Z",
                "a time needs a full date (YYYY-MM-DDThh:mm:ss)",
            ),
            (
                "2023-09-04 12:00:00Z",
                "expected 'T' and a time after the date",
            ),
        ];
        for (value, reason) in cases {
            assert_eq!(
                message(Primitive::DateTime, json!(value)),
                format!("invalid dateTime \"{value}\": {reason}")
            );
        }
    }

    #[test]
    fn instant_requires_time_and_zone() {
        accepts(Primitive::Instant, &[json!("2013-04-03T15:30:10+01:00")]);

        assert_eq!(
            message(Primitive::Instant, json!("2013-04-03")),
            format!("invalid instant \"2013-04-03\": {INSTANT_FORMAT}")
        );
        assert_eq!(
            message(Primitive::Instant, json!("2013-04-03T15:30:10")),
            "invalid instant \"2013-04-03T15:30:10\": a time must have a zone (Z or an offset such as +01:00)"
        );
    }

    #[test]
    fn time_has_no_zone() {
        accepts(Primitive::Time, &[json!("08:00:00"), json!("23:59:59.5")]);

        assert_eq!(
            message(Primitive::Time, json!("08:00:00Z")),
            r#"invalid time "08:00:00Z": a time has no date or zone (use hh:mm:ss)"#
        );
        assert_eq!(
            message(Primitive::Time, json!("08:00")),
            r#"invalid time "08:00": a time must have seconds (hh:mm:ss)"#
        );
    }
}
