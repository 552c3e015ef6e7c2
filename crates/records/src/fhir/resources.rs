//! Element tables of the FHIR R4 resources that medical records most often hold.
//!
//! Each table lists the elements a resource adds to `DomainResource` (or to `Resource` for
//! Bundle and Parameters), following the R4 (4.0.1) resource definitions. Backbone elements
//! are named `Resource.path`, such as `Patient.contact`.

use super::schema::{
    choice, complex, many, one, Element, Ty, ANNOTATION, ATTACHMENT, BOOLEAN, CANONICAL, CODE,
    CODEABLE_CONCEPT, CODING, DATE, DATE_TIME, DECIMAL, DURATION, IDENTIFIER, INSTANT, PERIOD,
    POSITIVE_INT, QUANTITY, RANGE, RATIO, REFERENCE, STRING, UNSIGNED_INT, URI,
};

/// Resources with an element table. Every other R4 resource gets the base checks only.
#[cfg(test)]
pub(super) const TABLED_RESOURCES: &[&str] = &[
    "AllergyIntolerance",
    "Bundle",
    "Composition",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "Immunization",
    "Medication",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Parameters",
    "Patient",
    "Practitioner",
    "Provenance",
    "ServiceRequest",
];

/// Returns the elements of resource `name`, if it has a table.
pub(super) fn elements(name: &str) -> Option<&'static [Element]> {
    let table = match name {
        "AllergyIntolerance" => ALLERGY_INTOLERANCE,
        "Bundle" => BUNDLE,
        "Composition" => COMPOSITION,
        "Condition" => CONDITION,
        "DiagnosticReport" => DIAGNOSTIC_REPORT,
        "Encounter" => ENCOUNTER,
        "Immunization" => IMMUNIZATION,
        "Medication" => MEDICATION,
        "MedicationRequest" => MEDICATION_REQUEST,
        "MedicationStatement" => MEDICATION_STATEMENT,
        "Observation" => OBSERVATION,
        "Parameters" => PARAMETERS,
        "Patient" => PATIENT,
        "Practitioner" => PRACTITIONER,
        "Provenance" => PROVENANCE,
        "ServiceRequest" => SERVICE_REQUEST,
        _ => return None,
    };
    Some(table)
}

/// Returns the elements of backbone element `name` (such as `Patient.contact`).
pub(super) fn backbone_elements(name: &str) -> Option<&'static [Element]> {
    BACKBONES
        .iter()
        .find(|(backbone_name, _)| *backbone_name == name)
        .map(|(_, table)| *table)
}

#[cfg(test)]
pub(super) fn all_tables() -> Vec<&'static [Element]> {
    let resources = TABLED_RESOURCES.iter().filter_map(|name| elements(name));
    let backbones = BACKBONES.iter().map(|(_, table)| *table);
    resources.chain(backbones).collect()
}

const BACKBONES: &[(&str, &[Element])] = &[
    ("AllergyIntolerance.reaction", ALLERGY_INTOLERANCE_REACTION),
    ("Bundle.entry", BUNDLE_ENTRY),
    ("Bundle.entry.request", BUNDLE_ENTRY_REQUEST),
    ("Bundle.entry.response", BUNDLE_ENTRY_RESPONSE),
    ("Bundle.entry.search", BUNDLE_ENTRY_SEARCH),
    ("Bundle.link", BUNDLE_LINK),
    ("Composition.attester", COMPOSITION_ATTESTER),
    ("Composition.event", COMPOSITION_EVENT),
    ("Composition.relatesTo", COMPOSITION_RELATES_TO),
    ("Composition.section", COMPOSITION_SECTION),
    ("Condition.evidence", CONDITION_EVIDENCE),
    ("Condition.stage", CONDITION_STAGE),
    ("DiagnosticReport.media", DIAGNOSTIC_REPORT_MEDIA),
    ("Encounter.classHistory", ENCOUNTER_CLASS_HISTORY),
    ("Encounter.diagnosis", ENCOUNTER_DIAGNOSIS),
    ("Encounter.hospitalization", ENCOUNTER_HOSPITALIZATION),
    ("Encounter.location", ENCOUNTER_LOCATION),
    ("Encounter.participant", ENCOUNTER_PARTICIPANT),
    ("Encounter.statusHistory", ENCOUNTER_STATUS_HISTORY),
    ("Immunization.education", IMMUNIZATION_EDUCATION),
    ("Immunization.performer", IMMUNIZATION_PERFORMER),
    (
        "Immunization.protocolApplied",
        IMMUNIZATION_PROTOCOL_APPLIED,
    ),
    ("Immunization.reaction", IMMUNIZATION_REACTION),
    ("Medication.batch", MEDICATION_BATCH),
    ("Medication.ingredient", MEDICATION_INGREDIENT),
    (
        "MedicationRequest.dispenseRequest",
        MEDICATION_REQUEST_DISPENSE_REQUEST,
    ),
    (
        "MedicationRequest.dispenseRequest.initialFill",
        MEDICATION_REQUEST_INITIAL_FILL,
    ),
    (
        "MedicationRequest.substitution",
        MEDICATION_REQUEST_SUBSTITUTION,
    ),
    ("Observation.component", OBSERVATION_COMPONENT),
    ("Observation.referenceRange", OBSERVATION_REFERENCE_RANGE),
    ("Parameters.parameter", PARAMETERS_PARAMETER),
    ("Patient.communication", PATIENT_COMMUNICATION),
    ("Patient.contact", PATIENT_CONTACT),
    ("Patient.link", PATIENT_LINK),
    ("Practitioner.qualification", PRACTITIONER_QUALIFICATION),
    ("Provenance.agent", PROVENANCE_AGENT),
    ("Provenance.entity", PROVENANCE_ENTITY),
];

const ALLERGY_INTOLERANCE: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("clinicalStatus", CODEABLE_CONCEPT),
    one("verificationStatus", CODEABLE_CONCEPT),
    one("type", CODE),
    many("category", CODE),
    one("criticality", CODE),
    one("code", CODEABLE_CONCEPT),
    one("patient", REFERENCE),
    one("encounter", REFERENCE),
    one("recordedDate", DATE_TIME),
    one("recorder", REFERENCE),
    one("asserter", REFERENCE),
    one("lastOccurrence", DATE_TIME),
    many("note", ANNOTATION),
    many("reaction", complex("AllergyIntolerance.reaction")),
];

const ALLERGY_INTOLERANCE_REACTION: &[Element] = &[
    one("substance", CODEABLE_CONCEPT),
    many("manifestation", CODEABLE_CONCEPT),
    one("description", STRING),
    one("onset", DATE_TIME),
    one("severity", CODE),
    one("exposureRoute", CODEABLE_CONCEPT),
    many("note", ANNOTATION),
];

const BUNDLE: &[Element] = &[
    one("identifier", IDENTIFIER),
    one("type", CODE),
    one("timestamp", INSTANT),
    one("total", UNSIGNED_INT),
    many("link", complex("Bundle.link")),
    many("entry", complex("Bundle.entry")),
    one("signature", complex("Signature")),
];

const BUNDLE_LINK: &[Element] = &[one("relation", STRING), one("url", URI)];

const BUNDLE_ENTRY: &[Element] = &[
    many("link", complex("Bundle.link")),
    one("fullUrl", URI),
    one("resource", Ty::Resource),
    one("search", complex("Bundle.entry.search")),
    one("request", complex("Bundle.entry.request")),
    one("response", complex("Bundle.entry.response")),
];

const BUNDLE_ENTRY_SEARCH: &[Element] = &[one("mode", CODE), one("score", DECIMAL)];

const BUNDLE_ENTRY_REQUEST: &[Element] = &[
    one("method", CODE),
    one("url", URI),
    one("ifNoneMatch", STRING),
    one("ifModifiedSince", INSTANT),
    one("ifMatch", STRING),
    one("ifNoneExist", STRING),
];

const BUNDLE_ENTRY_RESPONSE: &[Element] = &[
    one("status", STRING),
    one("location", URI),
    one("etag", STRING),
    one("lastModified", INSTANT),
    one("outcome", Ty::Resource),
];

const COMPOSITION: &[Element] = &[
    one("identifier", IDENTIFIER),
    one("status", CODE),
    one("type", CODEABLE_CONCEPT),
    many("category", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    one("encounter", REFERENCE),
    one("date", DATE_TIME),
    many("author", REFERENCE),
    one("title", STRING),
    one("confidentiality", CODE),
    many("attester", complex("Composition.attester")),
    one("custodian", REFERENCE),
    many("relatesTo", complex("Composition.relatesTo")),
    many("event", complex("Composition.event")),
    many("section", complex("Composition.section")),
];

const COMPOSITION_ATTESTER: &[Element] = &[
    one("mode", CODE),
    one("time", DATE_TIME),
    one("party", REFERENCE),
];

const COMPOSITION_RELATES_TO: &[Element] = &[one("code", CODE), choice("target")];

const COMPOSITION_EVENT: &[Element] = &[
    many("code", CODEABLE_CONCEPT),
    one("period", PERIOD),
    many("detail", REFERENCE),
];

const COMPOSITION_SECTION: &[Element] = &[
    one("title", STRING),
    one("code", CODEABLE_CONCEPT),
    many("author", REFERENCE),
    one("focus", REFERENCE),
    one("text", complex("Narrative")),
    one("mode", CODE),
    one("orderedBy", CODEABLE_CONCEPT),
    many("entry", REFERENCE),
    one("emptyReason", CODEABLE_CONCEPT),
    many("section", complex("Composition.section")),
];

const CONDITION: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("clinicalStatus", CODEABLE_CONCEPT),
    one("verificationStatus", CODEABLE_CONCEPT),
    many("category", CODEABLE_CONCEPT),
    one("severity", CODEABLE_CONCEPT),
    one("code", CODEABLE_CONCEPT),
    many("bodySite", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    one("encounter", REFERENCE),
    one("recordedDate", DATE_TIME),
    one("recorder", REFERENCE),
    one("asserter", REFERENCE),
    many("stage", complex("Condition.stage")),
    many("evidence", complex("Condition.evidence")),
    many("note", ANNOTATION),
];

const CONDITION_STAGE: &[Element] = &[
    one("summary", CODEABLE_CONCEPT),
    many("assessment", REFERENCE),
    one("type", CODEABLE_CONCEPT),
];

const CONDITION_EVIDENCE: &[Element] = &[many("code", CODEABLE_CONCEPT), many("detail", REFERENCE)];

const DIAGNOSTIC_REPORT: &[Element] = &[
    many("identifier", IDENTIFIER),
    many("basedOn", REFERENCE),
    one("status", CODE),
    many("category", CODEABLE_CONCEPT),
    one("code", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    one("encounter", REFERENCE),
    one("issued", INSTANT),
    many("performer", REFERENCE),
    many("resultsInterpreter", REFERENCE),
    many("specimen", REFERENCE),
    many("result", REFERENCE),
    many("imagingStudy", REFERENCE),
    many("media", complex("DiagnosticReport.media")),
    one("conclusion", STRING),
    many("conclusionCode", CODEABLE_CONCEPT),
    many("presentedForm", ATTACHMENT),
];

const DIAGNOSTIC_REPORT_MEDIA: &[Element] = &[one("comment", STRING), one("link", REFERENCE)];

const ENCOUNTER: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("status", CODE),
    many("statusHistory", complex("Encounter.statusHistory")),
    one("class", CODING),
    many("classHistory", complex("Encounter.classHistory")),
    many("type", CODEABLE_CONCEPT),
    one("serviceType", CODEABLE_CONCEPT),
    one("priority", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    many("episodeOfCare", REFERENCE),
    many("basedOn", REFERENCE),
    many("participant", complex("Encounter.participant")),
    many("appointment", REFERENCE),
    one("period", PERIOD),
    one("length", DURATION),
    many("reasonCode", CODEABLE_CONCEPT),
    many("reasonReference", REFERENCE),
    many("diagnosis", complex("Encounter.diagnosis")),
    many("account", REFERENCE),
    one("hospitalization", complex("Encounter.hospitalization")),
    many("location", complex("Encounter.location")),
    one("serviceProvider", REFERENCE),
    one("partOf", REFERENCE),
];

const ENCOUNTER_STATUS_HISTORY: &[Element] = &[one("status", CODE), one("period", PERIOD)];

const ENCOUNTER_CLASS_HISTORY: &[Element] = &[one("class", CODING), one("period", PERIOD)];

const ENCOUNTER_PARTICIPANT: &[Element] = &[
    many("type", CODEABLE_CONCEPT),
    one("period", PERIOD),
    one("individual", REFERENCE),
];

const ENCOUNTER_DIAGNOSIS: &[Element] = &[
    one("condition", REFERENCE),
    one("use", CODEABLE_CONCEPT),
    one("rank", POSITIVE_INT),
];

const ENCOUNTER_HOSPITALIZATION: &[Element] = &[
    one("preAdmissionIdentifier", IDENTIFIER),
    one("origin", REFERENCE),
    one("admitSource", CODEABLE_CONCEPT),
    one("reAdmission", CODEABLE_CONCEPT),
    many("dietPreference", CODEABLE_CONCEPT),
    many("specialCourtesy", CODEABLE_CONCEPT),
    many("specialArrangement", CODEABLE_CONCEPT),
    one("destination", REFERENCE),
    one("dischargeDisposition", CODEABLE_CONCEPT),
];

const ENCOUNTER_LOCATION: &[Element] = &[
    one("location", REFERENCE),
    one("status", CODE),
    one("physicalType", CODEABLE_CONCEPT),
    one("period", PERIOD),
];

const IMMUNIZATION: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("status", CODE),
    one("statusReason", CODEABLE_CONCEPT),
    one("vaccineCode", CODEABLE_CONCEPT),
    one("patient", REFERENCE),
    one("encounter", REFERENCE),
    one("recorded", DATE_TIME),
    one("primarySource", BOOLEAN),
    one("reportOrigin", CODEABLE_CONCEPT),
    one("location", REFERENCE),
    one("manufacturer", REFERENCE),
    one("lotNumber", STRING),
    one("expirationDate", DATE),
    one("site", CODEABLE_CONCEPT),
    one("route", CODEABLE_CONCEPT),
    one("doseQuantity", QUANTITY),
    many("performer", complex("Immunization.performer")),
    many("note", ANNOTATION),
    many("reasonCode", CODEABLE_CONCEPT),
    many("reasonReference", REFERENCE),
    one("isSubpotent", BOOLEAN),
    many("subpotentReason", CODEABLE_CONCEPT),
    many("education", complex("Immunization.education")),
    many("programEligibility", CODEABLE_CONCEPT),
    one("fundingSource", CODEABLE_CONCEPT),
    many("reaction", complex("Immunization.reaction")),
    many("protocolApplied", complex("Immunization.protocolApplied")),
];

const IMMUNIZATION_PERFORMER: &[Element] =
    &[one("function", CODEABLE_CONCEPT), one("actor", REFERENCE)];

const IMMUNIZATION_EDUCATION: &[Element] = &[
    one("documentType", STRING),
    one("reference", URI),
    one("publicationDate", DATE_TIME),
    one("presentationDate", DATE_TIME),
];

const IMMUNIZATION_REACTION: &[Element] = &[
    one("date", DATE_TIME),
    one("detail", REFERENCE),
    one("reported", BOOLEAN),
];

const IMMUNIZATION_PROTOCOL_APPLIED: &[Element] = &[
    one("series", STRING),
    one("authority", REFERENCE),
    many("targetDisease", CODEABLE_CONCEPT),
    choice("doseNumber"),
    choice("seriesDoses"),
];

const MEDICATION: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("code", CODEABLE_CONCEPT),
    one("status", CODE),
    one("manufacturer", REFERENCE),
    one("form", CODEABLE_CONCEPT),
    one("amount", RATIO),
    many("ingredient", complex("Medication.ingredient")),
    one("batch", complex("Medication.batch")),
];

const MEDICATION_INGREDIENT: &[Element] = &[
    choice("item"),
    one("isActive", BOOLEAN),
    one("strength", RATIO),
];

const MEDICATION_BATCH: &[Element] = &[one("lotNumber", STRING), one("expirationDate", DATE_TIME)];

const MEDICATION_REQUEST: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("status", CODE),
    one("statusReason", CODEABLE_CONCEPT),
    one("intent", CODE),
    many("category", CODEABLE_CONCEPT),
    one("priority", CODE),
    one("doNotPerform", BOOLEAN),
    choice("reported"),
    one("subject", REFERENCE),
    one("encounter", REFERENCE),
    many("supportingInformation", REFERENCE),
    one("authoredOn", DATE_TIME),
    one("requester", REFERENCE),
    one("performer", REFERENCE),
    one("performerType", CODEABLE_CONCEPT),
    one("recorder", REFERENCE),
    many("reasonCode", CODEABLE_CONCEPT),
    many("reasonReference", REFERENCE),
    many("instantiatesCanonical", CANONICAL),
    many("instantiatesUri", URI),
    many("basedOn", REFERENCE),
    one("groupIdentifier", IDENTIFIER),
    one("courseOfTherapyType", CODEABLE_CONCEPT),
    many("insurance", REFERENCE),
    many("note", ANNOTATION),
    many("dosageInstruction", complex("Dosage")),
    one(
        "dispenseRequest",
        complex("MedicationRequest.dispenseRequest"),
    ),
    one("substitution", complex("MedicationRequest.substitution")),
    one("priorPrescription", REFERENCE),
    many("detectedIssue", REFERENCE),
    many("eventHistory", REFERENCE),
];

const MEDICATION_REQUEST_DISPENSE_REQUEST: &[Element] = &[
    one(
        "initialFill",
        complex("MedicationRequest.dispenseRequest.initialFill"),
    ),
    one("dispenseInterval", DURATION),
    one("validityPeriod", PERIOD),
    one("numberOfRepeatsAllowed", UNSIGNED_INT),
    one("quantity", QUANTITY),
    one("expectedSupplyDuration", DURATION),
    one("performer", REFERENCE),
];

const MEDICATION_REQUEST_INITIAL_FILL: &[Element] =
    &[one("quantity", QUANTITY), one("duration", DURATION)];

const MEDICATION_REQUEST_SUBSTITUTION: &[Element] =
    &[choice("allowed"), one("reason", CODEABLE_CONCEPT)];

const MEDICATION_STATEMENT: &[Element] = &[
    many("identifier", IDENTIFIER),
    many("basedOn", REFERENCE),
    many("partOf", REFERENCE),
    one("status", CODE),
    many("statusReason", CODEABLE_CONCEPT),
    one("category", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    one("context", REFERENCE),
    one("dateAsserted", DATE_TIME),
    one("informationSource", REFERENCE),
    many("derivedFrom", REFERENCE),
    many("reasonCode", CODEABLE_CONCEPT),
    many("reasonReference", REFERENCE),
    many("note", ANNOTATION),
    many("dosage", complex("Dosage")),
];

const OBSERVATION: &[Element] = &[
    many("identifier", IDENTIFIER),
    many("basedOn", REFERENCE),
    many("partOf", REFERENCE),
    one("status", CODE),
    many("category", CODEABLE_CONCEPT),
    one("code", CODEABLE_CONCEPT),
    one("subject", REFERENCE),
    many("focus", REFERENCE),
    one("encounter", REFERENCE),
    one("issued", INSTANT),
    many("performer", REFERENCE),
    one("dataAbsentReason", CODEABLE_CONCEPT),
    many("interpretation", CODEABLE_CONCEPT),
    many("note", ANNOTATION),
    one("bodySite", CODEABLE_CONCEPT),
    one("method", CODEABLE_CONCEPT),
    one("specimen", REFERENCE),
    one("device", REFERENCE),
    many("referenceRange", complex("Observation.referenceRange")),
    many("hasMember", REFERENCE),
    many("derivedFrom", REFERENCE),
    many("component", complex("Observation.component")),
];

const OBSERVATION_REFERENCE_RANGE: &[Element] = &[
    one("low", QUANTITY),
    one("high", QUANTITY),
    one("type", CODEABLE_CONCEPT),
    many("appliesTo", CODEABLE_CONCEPT),
    one("age", RANGE),
    one("text", STRING),
];

const OBSERVATION_COMPONENT: &[Element] = &[
    one("code", CODEABLE_CONCEPT),
    one("dataAbsentReason", CODEABLE_CONCEPT),
    many("interpretation", CODEABLE_CONCEPT),
    many("referenceRange", complex("Observation.referenceRange")),
];

const PARAMETERS: &[Element] = &[many("parameter", complex("Parameters.parameter"))];

const PARAMETERS_PARAMETER: &[Element] = &[
    one("name", STRING),
    one("resource", Ty::Resource),
    many("part", complex("Parameters.parameter")),
];

const PATIENT: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("active", BOOLEAN),
    many("name", complex("HumanName")),
    many("telecom", complex("ContactPoint")),
    one("gender", CODE),
    one("birthDate", DATE),
    many("address", complex("Address")),
    one("maritalStatus", CODEABLE_CONCEPT),
    many("photo", ATTACHMENT),
    many("contact", complex("Patient.contact")),
    many("communication", complex("Patient.communication")),
    many("generalPractitioner", REFERENCE),
    one("managingOrganization", REFERENCE),
    many("link", complex("Patient.link")),
];

const PATIENT_CONTACT: &[Element] = &[
    many("relationship", CODEABLE_CONCEPT),
    one("name", complex("HumanName")),
    many("telecom", complex("ContactPoint")),
    one("address", complex("Address")),
    one("gender", CODE),
    one("organization", REFERENCE),
    one("period", PERIOD),
];

const PATIENT_COMMUNICATION: &[Element] =
    &[one("language", CODEABLE_CONCEPT), one("preferred", BOOLEAN)];

const PATIENT_LINK: &[Element] = &[one("other", REFERENCE), one("type", CODE)];

const PRACTITIONER: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("active", BOOLEAN),
    many("name", complex("HumanName")),
    many("telecom", complex("ContactPoint")),
    many("address", complex("Address")),
    one("gender", CODE),
    one("birthDate", DATE),
    many("photo", ATTACHMENT),
    many("qualification", complex("Practitioner.qualification")),
    many("communication", CODEABLE_CONCEPT),
];

const PRACTITIONER_QUALIFICATION: &[Element] = &[
    many("identifier", IDENTIFIER),
    one("code", CODEABLE_CONCEPT),
    one("period", PERIOD),
    one("issuer", REFERENCE),
];

const PROVENANCE: &[Element] = &[
    many("target", REFERENCE),
    choice("occurred"),
    one("recorded", INSTANT),
    many("policy", URI),
    one("location", REFERENCE),
    many("reason", CODEABLE_CONCEPT),
    one("activity", CODEABLE_CONCEPT),
    many("agent", complex("Provenance.agent")),
    many("entity", complex("Provenance.entity")),
    many("signature", complex("Signature")),
];

const PROVENANCE_AGENT: &[Element] = &[
    one("type", CODEABLE_CONCEPT),
    many("role", CODEABLE_CONCEPT),
    one("who", REFERENCE),
    one("onBehalfOf", REFERENCE),
];

const PROVENANCE_ENTITY: &[Element] = &[
    one("role", CODE),
    one("what", REFERENCE),
    many("agent", complex("Provenance.agent")),
];

const SERVICE_REQUEST: &[Element] = &[
    many("identifier", IDENTIFIER),
    many("instantiatesCanonical", CANONICAL),
    many("instantiatesUri", URI),
    many("basedOn", REFERENCE),
    many("replaces", REFERENCE),
    one("requisition", IDENTIFIER),
    one("status", CODE),
    one("intent", CODE),
    many("category", CODEABLE_CONCEPT),
    one("priority", CODE),
    one("doNotPerform", BOOLEAN),
    one("code", CODEABLE_CONCEPT),
    many("orderDetail", CODEABLE_CONCEPT),
    choice("quantity"),
    one("subject", REFERENCE),
    one("encounter", REFERENCE),
    choice("asNeeded"),
    one("authoredOn", DATE_TIME),
    one("requester", REFERENCE),
    one("performerType", CODEABLE_CONCEPT),
    many("performer", REFERENCE),
    many("locationCode", CODEABLE_CONCEPT),
    many("locationReference", REFERENCE),
    many("reasonCode", CODEABLE_CONCEPT),
    many("reasonReference", REFERENCE),
    many("insurance", REFERENCE),
    many("supportingInfo", REFERENCE),
    many("specimen", REFERENCE),
    many("bodySite", CODEABLE_CONCEPT),
    many("note", ANNOTATION),
    one("patientInstruction", STRING),
    many("relevantHistory", REFERENCE),
];
