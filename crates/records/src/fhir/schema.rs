//! Element tables: which FHIR R4 type each known element has and whether it repeats.
//!
//! The tables cover the common data types ([`super::datatypes`]) and a set of clinical
//! resources ([`super::resources`]). Every other R4 resource is known by name only, so only its
//! base elements (`id`, `meta`, `text`, `contained`, `extension`, ...) and the generic choice
//! elements are checked.

use super::datatypes;
use super::primitives::Primitive;
use super::resources;

/// The type of an element's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Primitive(Primitive),
    /// A data type or backbone element, named like `Quantity` or `Patient.contact`.
    Complex(&'static str),
    /// A whole resource with its own `resourceType` (`contained`, `Bundle.entry.resource`).
    Resource,
}

/// The shape of an element in a table.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// At most one value (a JSON value that is not an array).
    One(Ty),
    /// Any number of values (a JSON array).
    Many(Ty),
    /// A choice element `name[x]`: the key is `name` followed by a type name, such as
    /// `effectiveDateTime`, and contains one value of that type.
    Choice,
}

/// One row of an element table.
#[derive(Debug, Clone, Copy)]
pub(super) struct Element {
    name: &'static str,
    form: Form,
}

/// A table row resolved for one JSON key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Resolved {
    pub(super) ty: Ty,
    pub(super) repeats: bool,
}

/// Declares a single element of type `ty`.
pub(super) const fn one(name: &'static str, ty: Ty) -> Element {
    Element {
        name,
        form: Form::One(ty),
    }
}

/// Declares a repeating element of type `ty`.
pub(super) const fn many(name: &'static str, ty: Ty) -> Element {
    Element {
        name,
        form: Form::Many(ty),
    }
}

/// Declares a choice element `name[x]`.
pub(super) const fn choice(name: &'static str) -> Element {
    Element {
        name,
        form: Form::Choice,
    }
}

pub(super) const fn complex(name: &'static str) -> Ty {
    Ty::Complex(name)
}

pub(super) const BASE64: Ty = Ty::Primitive(Primitive::Base64Binary);
pub(super) const BOOLEAN: Ty = Ty::Primitive(Primitive::Boolean);
pub(super) const CANONICAL: Ty = Ty::Primitive(Primitive::Canonical);
pub(super) const CODE: Ty = Ty::Primitive(Primitive::Code);
pub(super) const DATE: Ty = Ty::Primitive(Primitive::Date);
pub(super) const DATE_TIME: Ty = Ty::Primitive(Primitive::DateTime);
pub(super) const DECIMAL: Ty = Ty::Primitive(Primitive::Decimal);
pub(super) const ID: Ty = Ty::Primitive(Primitive::Id);
pub(super) const INSTANT: Ty = Ty::Primitive(Primitive::Instant);
pub(super) const INTEGER: Ty = Ty::Primitive(Primitive::Integer);
pub(super) const MARKDOWN: Ty = Ty::Primitive(Primitive::Markdown);
pub(super) const POSITIVE_INT: Ty = Ty::Primitive(Primitive::PositiveInt);
pub(super) const STRING: Ty = Ty::Primitive(Primitive::String);
pub(super) const TIME: Ty = Ty::Primitive(Primitive::Time);
pub(super) const UNSIGNED_INT: Ty = Ty::Primitive(Primitive::UnsignedInt);
pub(super) const URI: Ty = Ty::Primitive(Primitive::Uri);
pub(super) const URL: Ty = Ty::Primitive(Primitive::Url);
pub(super) const XHTML: Ty = Ty::Primitive(Primitive::Xhtml);

pub(super) const ANNOTATION: Ty = complex("Annotation");
pub(super) const ATTACHMENT: Ty = complex("Attachment");
pub(super) const CODEABLE_CONCEPT: Ty = complex("CodeableConcept");
pub(super) const CODING: Ty = complex("Coding");
pub(super) const DURATION: Ty = complex("Duration");
pub(super) const IDENTIFIER: Ty = complex("Identifier");
pub(super) const PERIOD: Ty = complex("Period");
pub(super) const QUANTITY: Ty = complex("Quantity");
pub(super) const RANGE: Ty = complex("Range");
pub(super) const RATIO: Ty = complex("Ratio");
pub(super) const REFERENCE: Ty = complex("Reference");

/// Choice elements recognised in every object, including resources without a table. These
/// prefixes are not followed by a type name in any other R4 element, so `onsetString` or
/// `valueQuantity` can only be the choice.
const GENERIC_CHOICES: &[&str] = &[
    "value",
    "effective",
    "onset",
    "abatement",
    "occurrence",
    "deceased",
    "multipleBirth",
    "performed",
    "medication",
];

/// Elements of every data type and backbone element (`Element` and `BackboneElement` in R4).
pub(super) const ELEMENT_BASE: &[Element] = &[
    one("id", STRING),
    many("extension", complex("Extension")),
    many("modifierExtension", complex("Extension")),
];

/// Elements of every resource (`Resource` in R4).
pub(super) const RESOURCE_BASE: &[Element] = &[
    one("id", ID),
    one("meta", complex("Meta")),
    one("implicitRules", URI),
    one("language", CODE),
];

/// Elements of every resource except Bundle, Binary and Parameters (`DomainResource` in R4).
pub(super) const DOMAIN_RESOURCE_BASE: &[Element] = &[
    one("text", complex("Narrative")),
    many("contained", Ty::Resource),
    many("extension", complex("Extension")),
    many("modifierExtension", complex("Extension")),
];

/// Returns the element tables that apply to a resource of type `name`, most specific first.
pub(super) fn resource_tables(name: &str) -> Vec<&'static [Element]> {
    let mut tables = Vec::with_capacity(3);
    if let Some(specific) = resources::elements(name) {
        tables.push(specific);
    }
    tables.push(RESOURCE_BASE);
    if !matches!(name, "Bundle" | "Binary" | "Parameters") {
        tables.push(DOMAIN_RESOURCE_BASE);
    }
    tables
}

/// Returns the specific elements of a data type or backbone element, if it has a table.
pub(super) fn complex_elements(name: &str) -> Option<&'static [Element]> {
    datatypes::elements(name).or_else(|| resources::backbone_elements(name))
}

/// Finds the element that `key` names in `tables`: an exact name first, then a choice element
/// of the tables, then a generic choice element.
pub(super) fn resolve(tables: &[&'static [Element]], key: &str) -> Option<Resolved> {
    let rows = || tables.iter().flat_map(|table| table.iter());

    for element in rows() {
        match element.form {
            Form::One(ty) if element.name == key => return Some(Resolved { ty, repeats: false }),
            Form::Many(ty) if element.name == key => return Some(Resolved { ty, repeats: true }),
            _ => {}
        }
    }

    let table_choices = rows()
        .filter(|element| matches!(element.form, Form::Choice))
        .map(|element| element.name);
    table_choices
        .chain(GENERIC_CHOICES.iter().copied())
        .find_map(|prefix| choice_type(key.strip_prefix(prefix)?))
        .map(|ty| Resolved { ty, repeats: false })
}

/// Returns the type named by the suffix of a choice element key (`Quantity` in
/// `valueQuantity`).
fn choice_type(suffix: &str) -> Option<Ty> {
    if let Some(primitive) = Primitive::from_choice_suffix(suffix) {
        return Some(Ty::Primitive(primitive));
    }
    datatypes::CHOICE_TYPE_NAMES
        .iter()
        .find(|&&name| name == suffix)
        .map(|&name| Ty::Complex(name))
}

/// Returns whether `name` is a concrete FHIR R4 (4.0.1) resource type.
pub(super) fn is_resource_name(name: &str) -> bool {
    R4_RESOURCE_NAMES.binary_search(&name).is_ok()
}

/// The 146 concrete resource types of FHIR R4 (4.0.1), from the `resource-types` code system
/// without the abstract `Resource` and `DomainResource`. Sorted for binary search.
const R4_RESOURCE_NAMES: &[&str] = &[
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_sorted_and_complete() {
        let mut sorted = R4_RESOURCE_NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();

        assert_eq!(sorted, R4_RESOURCE_NAMES);
        assert_eq!(R4_RESOURCE_NAMES.len(), 146);
    }

    #[test]
    fn every_tabled_resource_is_a_known_name() {
        for name in resources::TABLED_RESOURCES {
            assert!(is_resource_name(name), "{name}");
            assert!(resources::elements(name).is_some(), "{name}");
        }
    }

    #[test]
    fn every_referenced_complex_type_is_known() {
        let tables = datatypes::all_tables()
            .into_iter()
            .chain(resources::all_tables());
        for table in tables {
            for element in table {
                let (Form::One(Ty::Complex(name)) | Form::Many(Ty::Complex(name))) = element.form
                else {
                    continue;
                };
                let known = complex_elements(name).is_some()
                    || datatypes::CHOICE_TYPE_NAMES.contains(&name);
                assert!(known, "{} refers to unknown type {name}", element.name);
            }
        }
    }

    #[test]
    fn resolves_exact_names_before_choices() {
        let observation = resource_tables("Observation");

        assert_eq!(
            resolve(&observation, "issued"),
            Some(Resolved {
                ty: INSTANT,
                repeats: false
            })
        );
        assert_eq!(
            resolve(&observation, "component"),
            Some(Resolved {
                ty: complex("Observation.component"),
                repeats: true
            })
        );
        assert_eq!(
            resolve(&[datatypes::elements("Quantity").unwrap()], "value"),
            Some(Resolved {
                ty: DECIMAL,
                repeats: false
            })
        );
    }

    #[test]
    fn resolves_choice_suffixes() {
        let observation = resource_tables("Observation");
        let family_history = resource_tables("FamilyMemberHistory");

        assert_eq!(
            resolve(&observation, "effectiveDateTime"),
            Some(Resolved {
                ty: DATE_TIME,
                repeats: false
            })
        );
        assert_eq!(
            resolve(&observation, "valueQuantity"),
            Some(Resolved {
                ty: QUANTITY,
                repeats: false
            })
        );
        assert_eq!(
            resolve(&family_history, "deceasedDate"),
            Some(Resolved {
                ty: DATE,
                repeats: false
            })
        );
        assert_eq!(resolve(&observation, "valueSet"), None);
        assert_eq!(resolve(&observation, "unknownElement"), None);
    }
}
