//! FHIR R4 validation of record content (`raw_data`).
//!
//! No maintained FHIR crate fits the CI build budget of 90 minutes on 2 cores, because
//! `fhir-sdk` generates a Rust type for every R4 resource and data type. This module checks
//! the JSON form of R4 against hand-written element tables instead.
//!
//! What is validated:
//! - strict JSON (see [`crate::json::parse_strict`]): no duplicate keys, no number outside the
//!   `f64` range;
//! - `resourceType` is a string naming one of the 146 R4 resource types, at the root, in
//!   `contained[]`, in `Bundle.entry[].resource` and `Bundle.entry[].response.outcome`, and in
//!   `Parameters.parameter[].resource` (also inside `part[]`), recursively;
//! - every known element has the right JSON shape: an array for repeating elements, a single
//!   value otherwise, an object for complex types, and never `null`, `[]` or `{}`;
//! - every primitive value follows its R4 type: date, dateTime, instant, time (real calendar
//!   days, and a zone on any dateTime or instant with a time), boolean, integer, positiveInt,
//!   unsignedInt, decimal, string (non-empty, at most 1 MiB, no control characters except
//!   tab, CR and LF), code, id, uri, url, canonical, oid, uuid, markdown, base64Binary and the
//!   outer `<div>` of xhtml;
//! - known elements: the base elements of every resource, the common data types (see
//!   `datatypes.rs`), the resources Patient, Observation, Condition, AllergyIntolerance,
//!   Immunization, MedicationRequest, MedicationStatement, DiagnosticReport, ServiceRequest,
//!   Bundle, Composition, Encounter, Practitioner, Provenance, Medication and Parameters, and
//!   choice elements (`value[x]`, `effective[x]`, `onset[x]`, `abatement[x]`,
//!   `occurrence[x]`, `deceased[x]`, `multipleBirth[x]`, ...) whose key suffix names the type;
//! - primitive extensions (`_birthDate`) are objects, or arrays of objects and nulls for
//!   repeating primitives, and a `null` in a repeating primitive array needs an extension at
//!   the same index.
//!
//! What is not validated: unknown elements (extensions and profiles add them, so they are
//! accepted as they are), cardinality minimums (required elements), value sets and code
//! systems, which types a choice element allows, reference targets, invariants such as
//! `Period.start <= Period.end`, profiles named in `meta.profile`, and the content of
//! narrative XHTML.

mod datatypes;
mod primitives;
mod resources;
mod schema;
mod temporal;

use std::fmt;

use serde_json::{Map, Value};

use crate::json::{self, push_index, push_key, quote, shorten};
use primitives::json_kind;
use schema::{Element, Resolved, Ty};

/// The field name under which record content arrives, used as the root of every
/// [`FieldProblem::field`].
const ROOT_FIELD: &str = "raw_data";

/// A reason why record content is invalid, for an HTTP 422 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// `raw_data` or the path of the offending element below it, such as
    /// `raw_data.effectiveDateTime` or `raw_data.entry[0].resource.birthDate`.
    pub field: String,
    /// A plain sentence for the client. It can quote the offending value, so treat it as
    /// record content and do not log it.
    pub message: String,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldProblem {}

/// Validates record content before it is stored.
///
/// Content whose first non-whitespace character is `{` or `[` must be strict JSON. A JSON object
/// with a `resourceType` member must also be a valid FHIR R4 resource (see the module
/// documentation for what that covers). Any other text, including the empty string, is accepted
/// as opaque content. A byte order mark counts as whitespace here, so BOM-prefixed JSON is
/// rejected instead of slipping through as opaque text.
pub fn validate_raw_data(raw: &str) -> Result<(), FieldProblem> {
    let content = raw.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if !(content.starts_with('{') || content.starts_with('[')) {
        return Ok(());
    }

    let value = json::parse_strict(raw).map_err(|problem| FieldProblem {
        field: field_name(&problem.path),
        message: problem.message,
    })?;

    match &value {
        Value::Object(members) if members.contains_key("resourceType") => {
            validate_resource(members, &mut String::new())
        }
        _ => Ok(()),
    }
}

/// Spells a JSON path below `raw_data` as a field name.
fn field_name(path: &str) -> String {
    if path.is_empty() {
        ROOT_FIELD.to_owned()
    } else if path.starts_with('[') {
        format!("{ROOT_FIELD}{path}")
    } else {
        format!("{ROOT_FIELD}.{path}")
    }
}

fn problem_at(path: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: field_name(path),
        message: message.into(),
    }
}

/// Runs `check` with `path` extended by `key`, then restores `path`.
fn at_key<T>(path: &mut String, key: &str, check: impl FnOnce(&mut String) -> T) -> T {
    let length = path.len();
    push_key(path, key);
    let result = check(path);
    path.truncate(length);
    result
}

/// Runs `check` with `path` extended by `[index]`, then restores `path`.
fn at_index<T>(path: &mut String, index: usize, check: impl FnOnce(&mut String) -> T) -> T {
    let length = path.len();
    push_index(path, index);
    let result = check(path);
    path.truncate(length);
    result
}

/// Validates a resource object found at `path`.
fn validate_resource(members: &Map<String, Value>, path: &mut String) -> Result<(), FieldProblem> {
    let resource_type = at_key(path, "resourceType", |path| {
        match members.get("resourceType") {
            None => Err(problem_at(path, "missing resourceType")),
            Some(Value::String(name)) if schema::is_resource_name(name) => Ok(name.as_str()),
            Some(Value::String(name)) => Err(problem_at(
                path,
                format!(
                    "unknown FHIR R4 resource type {}",
                    quote(&shorten(name, 64))
                ),
            )),
            Some(other) => Err(problem_at(
                path,
                format!(
                    "expected a string naming a FHIR R4 resource type, found {}",
                    json_kind(other)
                ),
            )),
        }
    })?;

    validate_members(members, &schema::resource_tables(resource_type), path)
}

/// Validates the members of an object whose elements are listed in `tables`.
fn validate_members(
    members: &Map<String, Value>,
    tables: &[&'static [Element]],
    path: &mut String,
) -> Result<(), FieldProblem> {
    for (key, value) in members {
        if let Some(name) = key.strip_prefix('_') {
            let element = schema::resolve(tables, name);
            at_key(path, key, |path| {
                validate_primitive_extension(value, element, path)
            })?;
            continue;
        }

        // Unknown elements are accepted, because extensions and profiles add them.
        let Some(element) = schema::resolve(tables, key) else {
            continue;
        };
        at_key(path, key, |path| {
            validate_element(members, key, value, element, path)
        })?;
    }
    Ok(())
}

/// Validates the value of element `key` of the object `members`.
fn validate_element(
    members: &Map<String, Value>,
    key: &str,
    value: &Value,
    element: Resolved,
    path: &mut String,
) -> Result<(), FieldProblem> {
    if !element.repeats {
        if value.is_array() {
            return Err(problem_at(
                path,
                format!("expected {}, found an array", expected(element.ty)),
            ));
        }
        return validate_value(value, element.ty, path);
    }

    let Value::Array(items) = value else {
        return Err(problem_at(
            path,
            format!(
                "expected an array of {}, found {}",
                type_name(element.ty),
                json_kind(value)
            ),
        ));
    };
    if items.is_empty() {
        return Err(problem_at(path, "an array must not be empty"));
    }

    for (index, item) in items.iter().enumerate() {
        // A repeating primitive may hold null where only its extension (`_given[i]`) is given.
        let is_extension_only = item.is_null()
            && matches!(element.ty, Ty::Primitive(_))
            && has_extension_at(members, key, index);
        if is_extension_only {
            continue;
        }
        at_index(path, index, |path| validate_value(item, element.ty, path))?;
    }
    Ok(())
}

/// Validates one value (not an array of values) of type `ty`.
fn validate_value(value: &Value, ty: Ty, path: &mut String) -> Result<(), FieldProblem> {
    let members = match (ty, value) {
        (Ty::Primitive(primitive), _) => {
            return primitives::check(primitive, value)
                .map_err(|message| problem_at(path, message));
        }
        (_, Value::Object(members)) => members,
        (_, other) => {
            return Err(problem_at(
                path,
                format!("expected {}, found {}", expected(ty), json_kind(other)),
            ));
        }
    };

    match ty {
        Ty::Complex(name) => {
            if members.is_empty() {
                return Err(problem_at(path, "an object must not be empty"));
            }
            let tables: Vec<&'static [Element]> = schema::complex_elements(name)
                .into_iter()
                .chain([schema::ELEMENT_BASE])
                .collect();
            validate_members(members, &tables, path)
        }
        _ => validate_resource(members, path),
    }
}

/// Validates `_name`, the id and extensions of primitive element `name`.
fn validate_primitive_extension(
    value: &Value,
    element: Option<Resolved>,
    path: &mut String,
) -> Result<(), FieldProblem> {
    let repeats = element.map(|element| element.repeats);
    match (value, repeats) {
        (Value::Object(_), Some(false) | None) => validate_value(value, ELEMENT, path),
        (Value::Array(items), Some(true) | None) => {
            for (index, item) in items.iter().enumerate() {
                if !item.is_null() {
                    at_index(path, index, |path| validate_value(item, ELEMENT, path))?;
                }
            }
            Ok(())
        }
        (other, Some(true)) => Err(problem_at(
            path,
            format!(
                "expected an array of primitive extension objects, found {}",
                json_kind(other)
            ),
        )),
        (other, _) => Err(problem_at(
            path,
            format!(
                "expected a primitive extension object, found {}",
                json_kind(other)
            ),
        )),
    }
}

/// The type of a primitive extension object: `id` and `extension` only.
const ELEMENT: Ty = Ty::Complex("Element");

fn has_extension_at(members: &Map<String, Value>, key: &str, index: usize) -> bool {
    members
        .get(&format!("_{key}"))
        .and_then(Value::as_array)
        .and_then(|extensions| extensions.get(index))
        .is_some_and(Value::is_object)
}

/// Describes a single value of `ty`, for "expected ..., found ..." messages.
fn expected(ty: Ty) -> String {
    match ty {
        Ty::Primitive(primitive) => primitive.expected(),
        Ty::Complex(name) if name.starts_with(['A', 'E', 'I', 'O', 'U']) => {
            format!("an {name} object")
        }
        Ty::Complex(name) => format!("a {name} object"),
        Ty::Resource => "a resource object".to_owned(),
    }
}

fn type_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Primitive(primitive) => primitive.name(),
        Ty::Complex(name) => name,
        Ty::Resource => "Resource",
    }
}

#[cfg(test)]
mod tests;
