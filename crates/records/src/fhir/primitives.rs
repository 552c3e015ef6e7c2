//! Checks for FHIR R4 primitive types in their JSON form.
//!
//! The rules follow the regular expressions that FHIR R4 (4.0.1) defines for each primitive
//! type. A check returns the message for the client, and the caller adds the field.

use serde_json::Value;

use super::temporal;
use crate::json::{quote, shorten};

/// Maximum length of a FHIR string in bytes, because R4 limits strings to 1 MB.
/// base64Binary and xhtml are exempt because they carry documents and images, which the
/// overall request body limit bounds instead.
const MAX_STRING_BYTES: usize = 1024 * 1024;

/// Maximum number of characters of an invalid value that a message quotes.
const MAX_QUOTED_CHARS: usize = 64;

/// FHIR R4 primitive types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Primitive {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

impl Primitive {
    /// Returns the FHIR spelling of the type name, as used in messages.
    pub(super) fn name(self) -> &'static str {
        match self {
            Primitive::Base64Binary => "base64Binary",
            Primitive::Boolean => "boolean",
            Primitive::Canonical => "canonical",
            Primitive::Code => "code",
            Primitive::Date => "date",
            Primitive::DateTime => "dateTime",
            Primitive::Decimal => "decimal",
            Primitive::Id => "id",
            Primitive::Instant => "instant",
            Primitive::Integer => "integer",
            Primitive::Markdown => "markdown",
            Primitive::Oid => "oid",
            Primitive::PositiveInt => "positiveInt",
            Primitive::String => "string",
            Primitive::Time => "time",
            Primitive::UnsignedInt => "unsignedInt",
            Primitive::Uri => "uri",
            Primitive::Url => "url",
            Primitive::Uuid => "uuid",
            Primitive::Xhtml => "xhtml",
        }
    }

    /// Returns the primitive named by the suffix of a choice element (`DateTime` in
    /// `effectiveDateTime`). xhtml is never a choice type.
    pub(super) fn from_choice_suffix(suffix: &str) -> Option<Primitive> {
        let primitive = match suffix {
            "Base64Binary" => Primitive::Base64Binary,
            "Boolean" => Primitive::Boolean,
            "Canonical" => Primitive::Canonical,
            "Code" => Primitive::Code,
            "Date" => Primitive::Date,
            "DateTime" => Primitive::DateTime,
            "Decimal" => Primitive::Decimal,
            "Id" => Primitive::Id,
            "Instant" => Primitive::Instant,
            "Integer" => Primitive::Integer,
            "Markdown" => Primitive::Markdown,
            "Oid" => Primitive::Oid,
            "PositiveInt" => Primitive::PositiveInt,
            "String" => Primitive::String,
            "Time" => Primitive::Time,
            "UnsignedInt" => Primitive::UnsignedInt,
            "Uri" => Primitive::Uri,
            "Url" => Primitive::Url,
            "Uuid" => Primitive::Uuid,
            _ => return None,
        };
        Some(primitive)
    }

    /// Describes the expected JSON value, for "expected ..., found ..." messages.
    pub(super) fn expected(self) -> String {
        match self {
            Primitive::Boolean => "a boolean".to_owned(),
            Primitive::String => "a string".to_owned(),
            Primitive::Decimal => "a decimal number".to_owned(),
            Primitive::Integer => "an integer".to_owned(),
            Primitive::PositiveInt | Primitive::UnsignedInt => format!("a {} number", self.name()),
            Primitive::Id | Primitive::Instant | Primitive::Oid | Primitive::Uri => {
                format!("an {} string", self.name())
            }
            _ => format!("a {} string", self.name()),
        }
    }
}

/// Checks that `value` is a valid JSON representation of `primitive`, returning the message
/// for the client when it is not.
///
/// Messages quote the offending value (up to 64 characters) for the types whose values are
/// short tokens such as dates, codes and ids, but never for free text (string, markdown,
/// xhtml, base64Binary). Even so they can contain record content, so do not log them.
pub(super) fn check(primitive: Primitive, value: &Value) -> Result<(), String> {
    match primitive {
        Primitive::Boolean => match value {
            Value::Bool(_) => Ok(()),
            other => Err(mismatch(primitive, other)),
        },
        Primitive::Decimal => match value {
            // parse_strict already rejected numbers outside the f64 range.
            Value::Number(_) => Ok(()),
            other => Err(mismatch(primitive, other)),
        },
        Primitive::Integer | Primitive::PositiveInt | Primitive::UnsignedInt => {
            check_integer(primitive, value)
        }
        _ => match value {
            Value::String(text) => check_text(primitive, text),
            other => Err(mismatch(primitive, other)),
        },
    }
}

/// Names the JSON type of `value` with its article, for messages.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn mismatch(primitive: Primitive, value: &Value) -> String {
    format!(
        "expected {}, found {}",
        primitive.expected(),
        json_kind(value)
    )
}

fn check_integer(primitive: Primitive, value: &Value) -> Result<(), String> {
    let Value::Number(number) = value else {
        return Err(mismatch(primitive, value));
    };
    if number.is_f64() {
        // FHIR integers have no fraction or exponent: `1.0` and `1e2` are invalid.
        return Err(format!("expected {}, found {number}", primitive.expected()));
    }

    let minimum = match primitive {
        Primitive::PositiveInt => 1,
        Primitive::UnsignedInt => 0,
        _ => i64::from(i32::MIN),
    };
    let maximum = i64::from(i32::MAX);
    let in_range = number
        .as_i64()
        .is_some_and(|integer| (minimum..=maximum).contains(&integer));
    if in_range {
        Ok(())
    } else {
        Err(format!(
            "{} {number} is out of range ({minimum} to {maximum})",
            primitive.name()
        ))
    }
}

fn check_text(primitive: Primitive, text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err(format!("a {} must not be empty", primitive.name()));
    }
    if matches!(primitive, Primitive::Base64Binary) {
        return check_base64(text);
    }
    if matches!(primitive, Primitive::Xhtml) {
        return check_xhtml(text);
    }

    if text.len() > MAX_STRING_BYTES {
        return Err(format!(
            "a {} must not be longer than {MAX_STRING_BYTES} bytes",
            primitive.name()
        ));
    }
    // R4: strings SHOULD NOT contain characters below U+0020 other than tab, CR and LF. They
    // are rejected here because NUL and similar characters break storage and display later.
    if let Some(control) = text
        .chars()
        .find(|&c| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(format!(
            "a {} must not contain the control character U+{:04X}",
            primitive.name(),
            u32::from(control)
        ));
    }

    let reason = match primitive {
        Primitive::Date | Primitive::DateTime | Primitive::Instant | Primitive::Time => {
            temporal::check(primitive, text).err()
        }
        Primitive::Code => check_code(text).err().map(str::to_owned),
        Primitive::Id => check_id(text).err().map(str::to_owned),
        Primitive::Uri | Primitive::Url | Primitive::Canonical => {
            check_uri(text).err().map(str::to_owned)
        }
        Primitive::Oid => check_oid(text).err().map(str::to_owned),
        Primitive::Uuid => check_uuid(text).err().map(str::to_owned),
        _ => None,
    };
    match reason {
        Some(reason) => Err(format!(
            "invalid {} {}: {reason}",
            primitive.name(),
            quote(&shorten(text, MAX_QUOTED_CHARS))
        )),
        None => Ok(()),
    }
}

/// R4 code: `[^\s]+(\s[^\s]+)*`.
fn check_code(text: &str) -> Result<(), &'static str> {
    let starts_or_ends_with_space =
        text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace);
    let has_repeated_space = text
        .chars()
        .zip(text.chars().skip(1))
        .any(|(a, b)| a.is_whitespace() && b.is_whitespace());
    if starts_or_ends_with_space || has_repeated_space {
        return Err("a code must not have leading, trailing or repeated whitespace");
    }
    Ok(())
}

/// R4 id: `[A-Za-z0-9\-\.]{1,64}`.
fn check_id(text: &str) -> Result<(), &'static str> {
    let valid_characters = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_characters || text.len() > 64 {
        return Err("an id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'");
    }
    Ok(())
}

/// R4 uri, url and canonical: `\S*` (no whitespace).
fn check_uri(text: &str) -> Result<(), &'static str> {
    if text.contains(char::is_whitespace) {
        return Err("a URI must not contain whitespace");
    }
    Ok(())
}

/// R4 oid: `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`.
fn check_oid(text: &str) -> Result<(), &'static str> {
    const REASON: &str = "expected urn:oid: followed by dotted numbers starting with 0, 1 or 2";

    let arcs = text.strip_prefix("urn:oid:").ok_or(REASON)?;
    let mut parts = arcs.split('.');
    let first_is_valid = parts
        .next()
        .is_some_and(|first| matches!(first, "0" | "1" | "2"));
    let mut rest = parts.peekable();
    if !first_is_valid || rest.peek().is_none() {
        return Err(REASON);
    }
    let rest_is_valid = rest.all(|arc| {
        !arc.is_empty()
            && arc.bytes().all(|b| b.is_ascii_digit())
            && (arc == "0" || !arc.starts_with('0'))
    });
    if !rest_is_valid {
        return Err(REASON);
    }
    Ok(())
}

/// R4 uuid: `urn:uuid:` and a lowercase RFC 4122 UUID.
fn check_uuid(text: &str) -> Result<(), &'static str> {
    const REASON: &str = "expected urn:uuid: followed by a lowercase UUID";

    let uuid = text.strip_prefix("urn:uuid:").ok_or(REASON)?;
    let group_lengths: Vec<usize> = uuid.split('-').map(str::len).collect();
    let is_lower_hex = uuid
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if group_lengths != [8, 4, 4, 4, 12] || !is_lower_hex {
        return Err(REASON);
    }
    Ok(())
}

/// Checks base64Binary: base64 characters with optional whitespace, in groups of 4.
///
/// The R4 regex `(\s*([0-9a-zA-Z\+\=]){4}\s*)+` leaves out `/`, which standard base64
/// (RFC 4648) uses, so `/` is accepted here.
fn check_base64(text: &str) -> Result<(), String> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let padding = symbols.iter().rev().take_while(|&&b| b == b'=').count();
    let body = symbols.get(..symbols.len() - padding).unwrap_or_default();
    let body_is_base64 = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');

    let is_whole_groups = symbols.chunks_exact(4).remainder().is_empty();

    if !body_is_base64 || padding > 2 || !is_whole_groups {
        return Err("invalid base64Binary: expected base64 characters in groups of 4".to_owned());
    }
    Ok(())
}

/// Narrative.div must be an XHTML `<div>` element.
///
/// NOTE: only the outer element is checked. The R4 rules for the content (no scripts, no
/// forms, no event attributes) are not enforced, so render it only through a sanitiser.
fn check_xhtml(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    let is_div =
        trimmed.starts_with("<div") && (trimmed.ends_with("</div>") || trimmed.ends_with("/>"));
    if !is_div {
        return Err("expected an XHTML <div> element".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(primitive: Primitive, value: Value) -> String {
        match check(primitive, &value) {
            Ok(()) => panic!("expected {value} to be an invalid {}", primitive.name()),
            Err(message) => message,
        }
    }

    fn accepts(primitive: Primitive, values: &[Value]) {
        for value in values {
            assert_eq!(
                check(primitive, value),
                Ok(()),
                "{} {value}",
                primitive.name()
            );
        }
    }

    #[test]
    fn integers_are_checked_against_their_range() {
        accepts(
            Primitive::Integer,
            &[json!(-2_147_483_648_i64), json!(2_147_483_647)],
        );
        accepts(Primitive::UnsignedInt, &[json!(0)]);
        accepts(Primitive::PositiveInt, &[json!(1)]);

        assert_eq!(
            message(Primitive::Integer, json!(9_007_199_254_740_993_u64)),
            "integer 9007199254740993 is out of range (-2147483648 to 2147483647)"
        );
        assert_eq!(
            message(Primitive::PositiveInt, json!(0)),
            "positiveInt 0 is out of range (1 to 2147483647)"
        );
        assert_eq!(
            message(Primitive::UnsignedInt, json!(-1)),
            "unsignedInt -1 is out of range (0 to 2147483647)"
        );
        assert_eq!(
            message(Primitive::Integer, json!(2.0)),
            "expected an integer, found 2.0"
        );
        assert_eq!(
            message(Primitive::Integer, json!("2")),
            "expected an integer, found a string"
        );
    }

    #[test]
    fn decimal_and_boolean_need_their_json_types() {
        accepts(
            Primitive::Decimal,
            &[json!(6.3), json!(9_007_199_254_740_993_u64)],
        );
        accepts(Primitive::Boolean, &[json!(false)]);

        assert_eq!(
            message(Primitive::Decimal, json!("6.3")),
            "expected a decimal number, found a string"
        );
        assert_eq!(
            message(Primitive::Boolean, json!("true")),
            "expected a boolean, found a string"
        );
    }

    #[test]
    fn strings_reject_empty_and_control_characters() {
        accepts(Primitive::String, &[json!("line one\nline two\t")]);

        assert_eq!(
            message(Primitive::String, json!("")),
            "a string must not be empty"
        );
        assert_eq!(
            message(Primitive::String, json!("a\u{0}b")),
            "a string must not contain the control character U+0000"
        );
        assert_eq!(
            message(Primitive::String, json!(null)),
            "expected a string, found null"
        );
    }

    #[test]
    fn string_longer_than_one_megabyte_is_rejected() {
        accepts(Primitive::String, &[json!("x".repeat(MAX_STRING_BYTES))]);

        assert_eq!(
            message(Primitive::String, json!("x".repeat(MAX_STRING_BYTES + 1))),
            "a string must not be longer than 1048576 bytes"
        );
    }

    #[test]
    fn token_types_follow_r4_patterns() {
        accepts(Primitive::Code, &[json!("final"), json!("a b")]);
        accepts(Primitive::Id, &[json!("med0310"), json!("a-b.c")]);
        accepts(Primitive::Uri, &[json!("urn:oid:1.2.3"), json!("#med0310")]);
        accepts(Primitive::Oid, &[json!("urn:oid:2.16.840.1.113883.6.96")]);
        accepts(
            Primitive::Uuid,
            &[json!("urn:uuid:c757873d-ec9a-4326-a141-556f43239520")],
        );

        assert_eq!(
            message(Primitive::Code, json!(" final")),
            r#"invalid code " final": a code must not have leading, trailing or repeated whitespace"#
        );
        assert_eq!(
            message(Primitive::Id, json!("a_b")),
            r#"invalid id "a_b": an id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'"#
        );
        assert_eq!(
            message(Primitive::Id, json!("x".repeat(65))),
            format!(
                "invalid id \"{}...\": an id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'",
                "x".repeat(64)
            )
        );
        assert_eq!(
            message(Primitive::Uri, json!("http://a b")),
            r#"invalid uri "http://a b": a URI must not contain whitespace"#
        );
        assert_eq!(
            message(Primitive::Oid, json!("urn:oid:3.1")),
            r#"invalid oid "urn:oid:3.1": expected urn:oid: followed by dotted numbers starting with 0, 1 or 2"#
        );
        assert_eq!(
            message(
                Primitive::Uuid,
                json!("urn:uuid:C757873D-EC9A-4326-A141-556F43239520")
            ),
            r#"invalid uuid "urn:uuid:C757873D-EC9A-4326-A141-556F43239520": expected urn:uuid: followed by a lowercase UUID"#
        );
    }

    #[test]
    fn base64_binary_needs_groups_of_four() {
        accepts(
            Primitive::Base64Binary,
            &[json!("dGhpcyBibG9iIGlzIHNuaXBwZWQ="), json!("YW+/\nYQ==")],
        );

        for value in ["abc", "ab=c", "a===", "ab*d"] {
            assert_eq!(
                message(Primitive::Base64Binary, json!(value)),
                "invalid base64Binary: expected base64 characters in groups of 4",
                "{value}"
            );
        }
    }

    #[test]
    fn xhtml_must_be_a_div() {
        accepts(
            Primitive::Xhtml,
            &[json!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p></div>"
            )],
        );

        assert_eq!(
            message(Primitive::Xhtml, json!("<p>x</p>")),
            "expected an XHTML <div> element"
        );
    }
}
