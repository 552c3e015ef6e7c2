//! Strict JSON parsing for HTTP request bodies and for record content (`raw_data`).
//!
//! `serde_json` keeps the last value of a repeated object key, so
//! `{"status":"final","status":"amended"}` silently reads as `"amended"`. The parser here
//! builds the `serde_json::Value` through its own visitor, which rejects a repeated key at any
//! depth and tracks the path of the value being parsed, so every problem names where it is.
//!
//! NOTE: this relies on serde_json's `arbitrary_precision` feature being off (it is off in this
//! workspace). With it on, numbers reach the visitor as one-entry maps and `1e400` is no longer
//! rejected.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A reason why a text is not acceptable as strict JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonProblem {
    /// The kind of problem.
    pub kind: JsonProblemKind,
    /// Path of the value where the problem was found, spelled `a.b[2].c`, or empty for the root.
    /// A key that is not a plain name is written as `["a key"]`.
    pub path: String,
    /// A plain sentence for the client. Syntax problems end with the line and column (1-based,
    /// counted in bytes) where parsing stopped.
    pub message: String,
}

/// Kinds of [`JsonProblem`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonProblemKind {
    /// Malformed or truncated JSON.
    Syntax,
    /// An object has the same key twice.
    DuplicateKey,
    /// A number does not fit in an `f64` (for example `1e400`).
    NumberOutOfRange,
}

/// Errors of [`from_slice_strict`], split by the HTTP status they map to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not UTF-8 or not well-formed JSON (HTTP 400).
    Malformed(JsonProblem),
    /// The body is well-formed JSON but not acceptable (HTTP 422): a duplicate key, a number out
    /// of range, or a value that does not match the expected type.
    Invalid {
        /// Path of the offending member, such as `password` or `items[2].code`, or empty when
        /// the whole body is the wrong type.
        field: String,
        /// A plain sentence for the client.
        message: String,
    },
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for JsonProblem {}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Malformed(problem) => write!(f, "malformed JSON: {problem}"),
            BodyError::Invalid { field, message } if field.is_empty() => f.write_str(message),
            BodyError::Invalid { field, message } => write!(f, "{field}: {message}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Parses `text` as one JSON value, rejecting duplicate object keys and numbers outside the
/// `f64` range.
///
/// Numbers keep serde_json's usual representation: integers that fit in `i64`/`u64` stay exact,
/// anything else becomes the nearest `f64` (so `1.00065022141624642` loses digits). Callers that
/// must keep the digits store the original text next to the value.
pub fn parse_strict(text: &str) -> Result<Value, JsonProblem> {
    let walk = Walk::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);

    let parsed = ValueSeed {
        walk: &walk,
        segment: None,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));

    parsed.map_err(|error| walk.into_problem(text, &error))
}

/// Deserializes an HTTP request body into `T` with the rules of [`parse_strict`].
///
/// Invalid UTF-8 and malformed JSON give [`BodyError::Malformed`]. A duplicate key, a number out
/// of range, and a well-formed body that does not match `T` (missing field, wrong type, unknown
/// enum variant, unknown field where `T` denies them) give [`BodyError::Invalid`] naming the
/// member. A missing field is named by its own path (`password`, not the enclosing object).
///
/// NOTE: serde_json also accepts a JSON array for a struct, filling the fields in order, so
/// `["a@example.org","secret"]` can deserialize into a two-field struct. Nothing here rejects it.
pub fn from_slice_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|error| BodyError::Malformed(invalid_utf8_problem(bytes, error.valid_up_to())))?;

    parse_strict(text).map_err(|problem| match problem.kind {
        JsonProblemKind::Syntax => BodyError::Malformed(problem),
        JsonProblemKind::DuplicateKey | JsonProblemKind::NumberOutOfRange => BodyError::Invalid {
            field: problem.path,
            message: problem.message,
        },
    })?;

    // The text is now known to be well-formed JSON without duplicate keys, so every error left
    // is a mismatch between the body and `T`.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(mismatch_error)?;
    deserializer.end().map_err(|error| BodyError::Invalid {
        field: String::new(),
        message: message_without_position(&error),
    })?;
    Ok(value)
}

/// Appends an object key to a path spelled like [`JsonProblem::path`].
pub(crate) fn push_key(path: &mut String, key: &str) {
    let is_plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');

    if !is_plain {
        path.push('[');
        path.push_str(&quote(key));
        path.push(']');
        return;
    }
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// Appends an array index to a path spelled like [`JsonProblem::path`].
pub(crate) fn push_index(path: &mut String, index: usize) {
    path.push('[');
    path.push_str(&index.to_string());
    path.push(']');
}

/// Quotes `text` as a JSON string literal, for messages that name a key or a value.
pub(crate) fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// One step of a JSON path.
enum Segment {
    Key(String),
    Index(usize),
}

/// State shared by the seeds and visitors of one [`parse_strict`] call.
///
/// `path` contains the segments of the value being parsed. A seed pushes its segment before parsing
/// and pops it afterwards, but not when parsing fails, so after a failure `path` is where it
/// happened. `problem` is set by the visitor when it rejects a duplicate key, because serde's
/// error type can carry only a message.
#[derive(Default)]
struct Walk {
    path: RefCell<Vec<Segment>>,
    problem: RefCell<Option<JsonProblem>>,
}

impl Walk {
    fn current_path(&self) -> String {
        let mut rendered = String::new();
        for segment in self.path.borrow().iter() {
            match segment {
                Segment::Key(key) => push_key(&mut rendered, key),
                Segment::Index(index) => push_index(&mut rendered, *index),
            }
        }
        rendered
    }

    /// Turns a serde_json failure into the problem that caused it.
    fn into_problem(self, text: &str, error: &serde_json::Error) -> JsonProblem {
        if let Some(problem) = self.problem.borrow_mut().take() {
            return problem;
        }

        let path = self.current_path();
        if let Some(literal) = infinite_number_at(text, error.line(), error.column()) {
            return JsonProblem {
                kind: JsonProblemKind::NumberOutOfRange,
                path,
                message: format!("number {} is out of range", shorten(literal, 40)),
            };
        }
        JsonProblem {
            kind: JsonProblemKind::Syntax,
            path,
            // serde_json writes tokens in backticks (expected `,` or `}`), which reads oddly
            // outside Markdown.
            message: error.to_string().replace('`', "'"),
        }
    }
}

/// Seed for one JSON value at `segment` below the current path (`None` for the root).
struct ValueSeed<'w> {
    walk: &'w Walk,
    segment: Option<Segment>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        let pushed = self.segment.is_some();
        if let Some(segment) = self.segment {
            self.walk.path.borrow_mut().push(segment);
        }

        let value = deserializer.deserialize_any(ValueVisitor { walk: self.walk })?;

        if pushed {
            self.walk.path.borrow_mut().pop();
        }
        Ok(value)
    }
}

struct ValueVisitor<'w> {
    walk: &'w Walk,
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // serde_json reports an infinite literal as an error before calling the visitor, so a
        // non-finite value cannot arrive here from text. The check keeps the invariant local.
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("number {value} is out of range")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = ValueSeed {
                walk: self.walk,
                segment: Some(Segment::Index(items.len())),
            };
            match access.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if members.contains_key(&key) {
                let mut path = self.walk.current_path();
                push_key(&mut path, &key);
                let message = format!("duplicate key {}", quote(&key));
                *self.walk.problem.borrow_mut() = Some(JsonProblem {
                    kind: JsonProblemKind::DuplicateKey,
                    path,
                    message: message.clone(),
                });
                return Err(de::Error::custom(message));
            }

            let seed = ValueSeed {
                walk: self.walk,
                segment: Some(Segment::Key(key.clone())),
            };
            let value = access.next_value_seed(seed)?;
            members.insert(key, value);
        }
        Ok(Value::Object(members))
    }
}

/// Returns the number literal around the error position when it is too large for an `f64`.
///
/// serde_json reports such a literal as a syntax error ("number out of range") positioned at its
/// last byte. Checking the literal itself, instead of matching serde_json's message, keeps the
/// classification independent of the message wording.
fn infinite_number_at(text: &str, line: usize, column: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let end_of_error = byte_offset(text, line, column)?.min(bytes.len());
    let is_number_byte =
        |b: u8| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E');

    let mut start = end_of_error;
    while start > 0 && bytes.get(start - 1).copied().is_some_and(is_number_byte) {
        start -= 1;
    }
    let mut end = start;
    while bytes.get(end).copied().is_some_and(is_number_byte) {
        end += 1;
    }

    let literal = text.get(start..end)?;
    let parsed: f64 = literal.parse().ok()?;
    parsed.is_infinite().then_some(literal)
}

/// Converts serde_json's 1-based line and byte column into a byte offset in `text`.
fn byte_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n').nth(line - 2)?.0 + 1
    };
    Some(line_start + column)
}

fn invalid_utf8_problem(bytes: &[u8], valid_up_to: usize) -> JsonProblem {
    let before = bytes.get(..valid_up_to).unwrap_or_default();
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = valid_up_to - line_start + 1;

    JsonProblem {
        kind: JsonProblemKind::Syntax,
        path: String::new(),
        message: format!("invalid UTF-8 at line {line} column {column}"),
    }
}

/// Maps a failure to deserialize `T` from well-formed JSON to [`BodyError::Invalid`].
fn mismatch_error(error: serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let mut field = String::new();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => push_index(&mut field, *index),
            serde_path_to_error::Segment::Map { key } => push_key(&mut field, key),
            serde_path_to_error::Segment::Enum { variant } => push_key(&mut field, variant),
            serde_path_to_error::Segment::Unknown => push_key(&mut field, "?"),
        }
    }

    let message = message_without_position(error.inner());
    // serde reports a missing field at the path of the enclosing object, so append its name.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        push_key(&mut field, name);
    }
    BodyError::Invalid { field, message }
}

/// Returns serde_json's message without the " at line L column C" suffix, which is noise once
/// the member is named by its path.
fn message_without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => message,
    }
}

/// Cuts `text` to at most `max_chars` characters, marking a cut with "...".
pub(crate) fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn problem(text: &str) -> JsonProblem {
        match parse_strict(text) {
            Ok(value) => panic!("expected a problem for {text:?}, parsed {value}"),
            Err(problem) => problem,
        }
    }

    #[test]
    fn parses_nested_values() {
        let value = parse_strict(r#" {"a": [1, -2, 2.5, true, null, "x"], "b": {}} "#).unwrap();

        assert_eq!(
            value,
            serde_json::json!({"a": [1, -2, 2.5, true, null, "x"], "b": {}})
        );
    }

    #[test]
    fn rejects_duplicate_key_at_root() {
        let problem =
            problem(r#"{"resourceType":"Observation","status":"final","status":"amended"}"#);

        assert_eq!(problem.kind, JsonProblemKind::DuplicateKey);
        assert_eq!(problem.path, "status");
        assert_eq!(problem.message, r#"duplicate key "status""#);
    }

    #[test]
    fn duplicate_key_in_array_element_reports_path() {
        let problem = problem(r#"{"entry":[{"a":1},{"resource":{"id":"x","id":"y"}}]}"#);

        assert_eq!(problem.kind, JsonProblemKind::DuplicateKey);
        assert_eq!(problem.path, "entry[1].resource.id");
        assert_eq!(problem.message, r#"duplicate key "id""#);
    }

    #[test]
    fn duplicate_path_quotes_dotted_key() {
        let problem = problem(r#"{"a":{"x.y":1,"x.y":2}}"#);

        assert_eq!(problem.path, r#"a["x.y"]"#);
        assert_eq!(problem.message, r#"duplicate key "x.y""#);
    }

    #[test]
    fn same_key_in_sibling_objects_is_allowed() {
        let value = parse_strict(r#"[{"id":1},{"id":2}]"#).unwrap();

        assert_eq!(value, serde_json::json!([{"id": 1}, {"id": 2}]));
    }

    #[test]
    fn rejects_number_out_of_range() {
        let problem = problem(r#"{"valueQuantity":{"value":1e400}}"#);

        assert_eq!(problem.kind, JsonProblemKind::NumberOutOfRange);
        assert_eq!(problem.path, "valueQuantity.value");
        assert_eq!(problem.message, "number 1e400 is out of range");
    }

    #[test]
    fn rejects_out_of_range_number_forms() {
        let long_integer = "9".repeat(400);
        let cases = [
            ("-1e400", "", "number -1e400 is out of range"),
            ("[1, 1.5e999]", "[1]", "number 1.5e999 is out of range"),
            (
                "{\n  \"a\": [\n    2E+309 ]}",
                "a[0]",
                "number 2E+309 is out of range",
            ),
        ];
        for (text, path, message) in cases {
            let problem = problem(text);
            assert_eq!(problem.kind, JsonProblemKind::NumberOutOfRange, "{text}");
            assert_eq!(problem.path, path, "{text}");
            assert_eq!(problem.message, message, "{text}");
        }

        let problem = problem(&format!("[{long_integer}]"));
        assert_eq!(problem.kind, JsonProblemKind::NumberOutOfRange);
        assert_eq!(problem.path, "[0]");
        assert_eq!(
            problem.message,
            format!("number {}... is out of range", "9".repeat(40))
        );
    }

    #[test]
    fn keeps_large_and_precise_numbers() {
        let value = parse_strict(r#"[9007199254740993, 1.00065022141624642, 1e-400]"#).unwrap();

        assert_eq!(value[0].as_u64(), Some(9_007_199_254_740_993));
        assert_eq!(value[1].as_f64(), Some(1.000_650_221_416_246_4));
        assert_eq!(value[2].as_f64(), Some(0.0));
    }

    #[test]
    fn syntax_error_reports_position_and_path() {
        let problem = problem(r#"{"a":{"b":[1 2]}}"#);

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "a.b");
        assert_eq!(problem.message, "expected ',' or ']' at line 1 column 14");
    }

    #[test]
    fn missing_comma_in_object_reports_position() {
        let problem = problem(r#"{"status":"final" "code":1}"#);

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "");
        assert_eq!(problem.message, "expected ',' or '}' at line 1 column 19");
    }

    #[test]
    fn truncated_json_is_a_syntax_error() {
        let problem = problem(r#"{"resourceType":"Observation","code":{"text":"x"#);

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "code.text");
        assert_eq!(
            problem.message,
            "EOF while parsing a string at line 1 column 47"
        );
    }

    #[test]
    fn rejects_other_malformed_json() {
        let cases = [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("[1,]", "trailing comma at line 1 column 4"),
            ("{} {}", "trailing characters at line 1 column 4"),
            ("\u{feff}{}", "expected value at line 1 column 1"),
            ("{'a':1}", "key must be a string at line 1 column 2"),
            ("[NaN]", "expected value at line 1 column 2"),
        ];
        for (text, message) in cases {
            let problem = problem(text);
            assert_eq!(problem.kind, JsonProblemKind::Syntax, "{text:?}");
            assert_eq!(problem.message, message, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_a_syntax_error() {
        let problem = problem(&"[".repeat(100_000));

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "[0]".repeat(127));
        assert_eq!(
            problem.message,
            "recursion limit exceeded at line 1 column 128"
        );
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Login {
        email: String,
        password: String,
        role: Role,
        devices: Vec<Device>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        Patient,
        Doctor,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Device {
        id: u32,
    }

    fn invalid(body: &str) -> (String, String) {
        match from_slice_strict::<Login>(body.as_bytes()) {
            Err(BodyError::Invalid { field, message }) => (field, message),
            other => panic!("expected BodyError::Invalid for {body}, got {other:?}"),
        }
    }

    fn malformed(body: &[u8]) -> JsonProblem {
        match from_slice_strict::<Login>(body) {
            Err(BodyError::Malformed(problem)) => problem,
            other => panic!("expected BodyError::Malformed, got {other:?}"),
        }
    }

    #[test]
    fn body_deserializes_into_type() {
        let body =
            br#"{"email":"a@example.org","password":"pw","role":"doctor","devices":[{"id":7}]}"#;

        let login: Login = from_slice_strict(body).unwrap();

        assert_eq!(
            login,
            Login {
                email: "a@example.org".to_owned(),
                password: "pw".to_owned(),
                role: Role::Doctor,
                devices: vec![Device { id: 7 }],
            }
        );
    }

    #[test]
    fn body_missing_field_names_the_field() {
        let (field, message) =
            invalid(r#"{"email":"a@example.org","role":"patient","devices":[]}"#);

        assert_eq!(field, "password");
        assert_eq!(message, "missing field `password`");
    }

    #[test]
    fn body_nested_missing_field_names_its_path() {
        let (field, message) =
            invalid(r#"{"email":"a","password":"p","role":"patient","devices":[{"id":1},{}]}"#);

        assert_eq!(field, "devices[1].id");
        assert_eq!(message, "missing field `id`");
    }

    #[test]
    fn body_wrong_type_names_the_field() {
        let (field, message) =
            invalid(r#"{"email":"a","password":12,"role":"patient","devices":[]}"#);

        assert_eq!(field, "password");
        assert_eq!(message, "invalid type: integer `12`, expected a string");
    }

    #[test]
    fn body_unknown_enum_variant_names_the_field() {
        let (field, message) =
            invalid(r#"{"email":"a","password":"p","role":"admin","devices":[]}"#);

        assert_eq!(field, "role");
        assert_eq!(
            message,
            "unknown variant `admin`, expected `patient` or `doctor`"
        );
    }

    #[test]
    fn body_unknown_field_is_invalid_when_denied() {
        let (field, message) =
            invalid(r#"{"email":"a","password":"p","role":"patient","devices":[],"x":1}"#);

        assert_eq!(field, "x");
        assert_eq!(
            message,
            "unknown field `x`, expected one of `email`, `password`, `role`, `devices`"
        );
    }

    #[test]
    fn body_wrong_json_type_is_invalid() {
        let (field, message) = invalid(r#""just a string""#);

        assert_eq!(field, "");
        assert_eq!(
            message,
            r#"invalid type: string "just a string", expected struct Login"#
        );
    }

    #[test]
    fn body_array_fills_struct_fields_in_order() {
        // Pins the serde_json behaviour described in the NOTE on from_slice_strict.
        let login: Login = from_slice_strict(br#"["a@example.org","pw","patient",[]]"#).unwrap();

        assert_eq!(login.email, "a@example.org");
        assert_eq!(login.role, Role::Patient);
    }

    #[test]
    fn body_duplicate_key_is_invalid() {
        let (field, message) =
            invalid(r#"{"email":"a","password":"p","password":"q","role":"patient","devices":[]}"#);

        assert_eq!(field, "password");
        assert_eq!(message, r#"duplicate key "password""#);
    }

    #[test]
    fn body_duplicate_key_in_ignored_map_is_invalid() {
        let result = from_slice_strict::<Value>(br#"{"meta":{"k":1,"k":2}}"#);

        assert_eq!(
            result,
            Err(BodyError::Invalid {
                field: "meta.k".to_owned(),
                message: r#"duplicate key "k""#.to_owned(),
            })
        );
    }

    #[test]
    fn body_number_out_of_range_is_invalid() {
        let (field, message) =
            invalid(r#"{"email":"a","password":"p","role":"patient","devices":[{"id":1e400}]}"#);

        assert_eq!(field, "devices[0].id");
        assert_eq!(message, "number 1e400 is out of range");
    }

    #[test]
    fn body_truncated_is_malformed() {
        let problem = malformed(br#"{"email":"a","password":"#);

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "password");
        assert_eq!(
            problem.message,
            "EOF while parsing a value at line 1 column 24"
        );
    }

    #[test]
    fn body_empty_is_malformed() {
        let problem = malformed(b"");

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(
            problem.message,
            "EOF while parsing a value at line 1 column 0"
        );
    }

    #[test]
    fn body_invalid_utf8_is_malformed() {
        let problem = malformed(b"{\n\"email\":\"a\xff\"}");

        assert_eq!(problem.kind, JsonProblemKind::Syntax);
        assert_eq!(problem.path, "");
        assert_eq!(problem.message, "invalid UTF-8 at line 2 column 11");
    }

    #[test]
    fn body_error_display_names_the_field() {
        let error = BodyError::Invalid {
            field: "password".to_owned(),
            message: "missing field `password`".to_owned(),
        };

        assert_eq!(error.to_string(), "password: missing field `password`");
    }

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote("a\"b\\c\n\u{0}"), r#""a\"b\\c\n\u0000""#);
    }
}
