//! Element tables of the common FHIR R4 data types.
//!
//! Each table lists the elements a type adds to `Element` (`id`, `extension`), following the
//! R4 (4.0.1) data type definitions. Types named in [`CHOICE_TYPE_NAMES`] without a table here
//! (Contributor, DataRequirement, ParameterDefinition, TriggerDefinition) are checked as
//! objects with the base elements only.

use super::schema::{
    choice, complex, many, one, Element, ATTACHMENT, BASE64, BOOLEAN, CANONICAL, CODE,
    CODEABLE_CONCEPT, CODING, DATE_TIME, DECIMAL, ID, IDENTIFIER, INSTANT, INTEGER, MARKDOWN,
    PERIOD, POSITIVE_INT, QUANTITY, RATIO, REFERENCE, STRING, TIME, UNSIGNED_INT, URI, URL, XHTML,
};

/// The R4 complex types that a choice element key can end with (`valueQuantity`).
pub(super) const CHOICE_TYPE_NAMES: &[&str] = &[
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "Coding",
    "ContactDetail",
    "ContactPoint",
    "Contributor",
    "Count",
    "DataRequirement",
    "Distance",
    "Dosage",
    "Duration",
    "Expression",
    "HumanName",
    "Identifier",
    "Meta",
    "Money",
    "ParameterDefinition",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "RelatedArtifact",
    "SampledData",
    "Signature",
    "Timing",
    "TriggerDefinition",
    "UsageContext",
];

/// Returns the elements of data type `name`, if it has a table.
pub(super) fn elements(name: &str) -> Option<&'static [Element]> {
    TABLES
        .iter()
        .find(|(table_name, _)| *table_name == name)
        .map(|(_, table)| *table)
}

#[cfg(test)]
pub(super) fn all_tables() -> Vec<&'static [Element]> {
    TABLES.iter().map(|(_, table)| *table).collect()
}

const TABLES: &[(&str, &[Element])] = &[
    ("Address", ADDRESS),
    ("Age", QUANTITY_ELEMENTS),
    ("Annotation", ANNOTATION_ELEMENTS),
    ("Attachment", ATTACHMENT_ELEMENTS),
    ("CodeableConcept", CODEABLE_CONCEPT_ELEMENTS),
    ("Coding", CODING_ELEMENTS),
    ("ContactDetail", CONTACT_DETAIL),
    ("ContactPoint", CONTACT_POINT),
    ("Count", QUANTITY_ELEMENTS),
    ("Distance", QUANTITY_ELEMENTS),
    ("Dosage", DOSAGE),
    ("Dosage.doseAndRate", DOSAGE_DOSE_AND_RATE),
    ("Duration", QUANTITY_ELEMENTS),
    ("Expression", EXPRESSION),
    ("Extension", EXTENSION),
    ("HumanName", HUMAN_NAME),
    ("Identifier", IDENTIFIER_ELEMENTS),
    ("Meta", META),
    ("Money", MONEY),
    ("MoneyQuantity", QUANTITY_ELEMENTS),
    ("Narrative", NARRATIVE),
    ("Period", PERIOD_ELEMENTS),
    ("Quantity", QUANTITY_ELEMENTS),
    ("Range", RANGE_ELEMENTS),
    ("Ratio", RATIO_ELEMENTS),
    ("Reference", REFERENCE_ELEMENTS),
    ("RelatedArtifact", RELATED_ARTIFACT),
    ("SampledData", SAMPLED_DATA),
    ("Signature", SIGNATURE),
    ("SimpleQuantity", QUANTITY_ELEMENTS),
    ("Timing", TIMING),
    ("Timing.repeat", TIMING_REPEAT),
    ("UsageContext", USAGE_CONTEXT),
];

const ADDRESS: &[Element] = &[
    one("use", CODE),
    one("type", CODE),
    one("text", STRING),
    many("line", STRING),
    one("city", STRING),
    one("district", STRING),
    one("state", STRING),
    one("postalCode", STRING),
    one("country", STRING),
    one("period", PERIOD),
];

const ANNOTATION_ELEMENTS: &[Element] = &[
    choice("author"),
    one("time", DATE_TIME),
    one("text", MARKDOWN),
];

const ATTACHMENT_ELEMENTS: &[Element] = &[
    one("contentType", CODE),
    one("language", CODE),
    one("data", BASE64),
    one("url", URL),
    one("size", UNSIGNED_INT),
    one("hash", BASE64),
    one("title", STRING),
    one("creation", DATE_TIME),
];

const CODEABLE_CONCEPT_ELEMENTS: &[Element] = &[many("coding", CODING), one("text", STRING)];

const CODING_ELEMENTS: &[Element] = &[
    one("system", URI),
    one("version", STRING),
    one("code", CODE),
    one("display", STRING),
    one("userSelected", BOOLEAN),
];

const CONTACT_DETAIL: &[Element] = &[
    one("name", STRING),
    many("telecom", complex("ContactPoint")),
];

const CONTACT_POINT: &[Element] = &[
    one("system", CODE),
    one("value", STRING),
    one("use", CODE),
    one("rank", POSITIVE_INT),
    one("period", PERIOD),
];

const DOSAGE: &[Element] = &[
    one("sequence", INTEGER),
    one("text", STRING),
    many("additionalInstruction", CODEABLE_CONCEPT),
    one("patientInstruction", STRING),
    one("timing", complex("Timing")),
    choice("asNeeded"),
    one("site", CODEABLE_CONCEPT),
    one("route", CODEABLE_CONCEPT),
    one("method", CODEABLE_CONCEPT),
    many("doseAndRate", complex("Dosage.doseAndRate")),
    one("maxDosePerPeriod", RATIO),
    one("maxDosePerAdministration", QUANTITY),
    one("maxDosePerLifetime", QUANTITY),
];

const DOSAGE_DOSE_AND_RATE: &[Element] = &[
    one("type", CODEABLE_CONCEPT),
    choice("dose"),
    choice("rate"),
];

const EXPRESSION: &[Element] = &[
    one("description", STRING),
    one("name", ID),
    one("language", CODE),
    one("expression", STRING),
    one("reference", URI),
];

/// `value[x]` of an extension is matched by the generic `value` choice.
const EXTENSION: &[Element] = &[one("url", URI)];

const HUMAN_NAME: &[Element] = &[
    one("use", CODE),
    one("text", STRING),
    one("family", STRING),
    many("given", STRING),
    many("prefix", STRING),
    many("suffix", STRING),
    one("period", PERIOD),
];

const IDENTIFIER_ELEMENTS: &[Element] = &[
    one("use", CODE),
    one("type", CODEABLE_CONCEPT),
    one("system", URI),
    one("value", STRING),
    one("period", PERIOD),
    one("assigner", REFERENCE),
];

const META: &[Element] = &[
    one("versionId", ID),
    one("lastUpdated", INSTANT),
    one("source", URI),
    many("profile", CANONICAL),
    many("security", CODING),
    many("tag", CODING),
];

const MONEY: &[Element] = &[one("value", DECIMAL), one("currency", CODE)];

const NARRATIVE: &[Element] = &[one("status", CODE), one("div", XHTML)];

const PERIOD_ELEMENTS: &[Element] = &[one("start", DATE_TIME), one("end", DATE_TIME)];

/// Quantity and its profiles Age, Count, Distance, Duration, SimpleQuantity, MoneyQuantity.
const QUANTITY_ELEMENTS: &[Element] = &[
    one("value", DECIMAL),
    one("comparator", CODE),
    one("unit", STRING),
    one("system", URI),
    one("code", CODE),
];

const RANGE_ELEMENTS: &[Element] = &[one("low", QUANTITY), one("high", QUANTITY)];

const RATIO_ELEMENTS: &[Element] = &[one("numerator", QUANTITY), one("denominator", QUANTITY)];

const REFERENCE_ELEMENTS: &[Element] = &[
    one("reference", STRING),
    one("type", URI),
    one("identifier", IDENTIFIER),
    one("display", STRING),
];

const RELATED_ARTIFACT: &[Element] = &[
    one("type", CODE),
    one("label", STRING),
    one("display", STRING),
    one("citation", MARKDOWN),
    one("url", URL),
    one("document", ATTACHMENT),
    one("resource", CANONICAL),
];

const SAMPLED_DATA: &[Element] = &[
    one("origin", QUANTITY),
    one("period", DECIMAL),
    one("factor", DECIMAL),
    one("lowerLimit", DECIMAL),
    one("upperLimit", DECIMAL),
    one("dimensions", POSITIVE_INT),
    one("data", STRING),
];

const SIGNATURE: &[Element] = &[
    many("type", CODING),
    one("when", INSTANT),
    one("who", REFERENCE),
    one("onBehalfOf", REFERENCE),
    one("targetFormat", CODE),
    one("sigFormat", CODE),
    one("data", BASE64),
];

const TIMING: &[Element] = &[
    many("event", DATE_TIME),
    one("repeat", complex("Timing.repeat")),
    one("code", CODEABLE_CONCEPT),
];

const TIMING_REPEAT: &[Element] = &[
    choice("bounds"),
    one("count", POSITIVE_INT),
    one("countMax", POSITIVE_INT),
    one("duration", DECIMAL),
    one("durationMax", DECIMAL),
    one("durationUnit", CODE),
    one("frequency", POSITIVE_INT),
    one("frequencyMax", POSITIVE_INT),
    one("period", DECIMAL),
    one("periodMax", DECIMAL),
    one("periodUnit", CODE),
    many("dayOfWeek", CODE),
    many("timeOfDay", TIME),
    many("when", CODE),
    one("offset", UNSIGNED_INT),
];

const USAGE_CONTEXT: &[Element] = &[one("code", CODING)];
