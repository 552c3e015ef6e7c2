use super::*;

fn rejection(raw: &str) -> FieldProblem {
    match validate_raw_data(raw) {
        Ok(()) => panic!("expected {raw} to be rejected"),
        Err(problem) => problem,
    }
}

fn assert_rejected(raw: &str, field: &str, message: &str) {
    let problem = rejection(raw);
    assert_eq!(problem.field, field, "field for {raw}");
    assert_eq!(problem.message, message, "message for {raw}");
}

fn assert_accepted(raw: &str) {
    assert_eq!(validate_raw_data(raw), Ok(()), "{raw}");
}

/// Builds an Observation with `members` (JSON object members, without braces) added.
fn observation(members: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"text":"glucose"}},{members}}}"#
    )
}

/// Builds a Patient with `members` (JSON object members, without braces) added.
fn patient(members: &str) -> String {
    format!(r#"{{"resourceType":"Patient","id":"p1",{members}}}"#)
}

#[test]
fn effective_date_time_rejects_nonexistent_day() {
    assert_rejected(
        &observation(r#""effectiveDateTime":"2015-02-30""#),
        "raw_data.effectiveDateTime",
        r#"invalid dateTime "2015-02-30": 2015-02 has no day 30"#,
    );
}

#[test]
fn effective_date_time_rejects_time_without_zone() {
    assert_rejected(
        &observation(r#""effectiveDateTime":"2023-09-04T21:28:00""#),
        "raw_data.effectiveDateTime",
        r#"invalid dateTime "2023-09-04T21:28:00": a time must have a zone (Z or an offset such as +01:00)"#,
    );
}

#[test]
fn effective_date_time_rejects_time_without_seconds() {
    assert_rejected(
        &observation(r#""effectiveDateTime":"2023-09-04T21:28""#),
        "raw_data.effectiveDateTime",
        r#"invalid dateTime "2023-09-04T21:28": a time must have seconds (hh:mm:ss)"#,
    );
}

#[test]
fn effective_date_time_accepts_offset() {
    assert_accepted(&observation(
        r#""effectiveDateTime":"2015-02-07T13:28:17-05:00""#,
    ));
}

#[test]
fn birth_date_rejects_month_fifteen() {
    assert_rejected(
        &patient(r#""birthDate":"2000-15-31""#),
        "raw_data.birthDate",
        r#"invalid date "2000-15-31": month 15 does not exist"#,
    );
}

#[test]
fn birth_date_rejects_timestamp() {
    assert_rejected(
        &patient(r#""birthDate":"2019-11-04T23:00:00.000Z""#),
        "raw_data.birthDate",
        r#"invalid date "2019-11-04T23:00:00.000Z": a date must not have a time (use YYYY, YYYY-MM or YYYY-MM-DD)"#,
    );
}

#[test]
fn birth_date_accepts_year_and_month() {
    assert_accepted(&patient(r#""birthDate":"1974-12""#));
}

#[test]
fn leap_day_exists_only_in_leap_years() {
    assert_accepted(&patient(r#""birthDate":"2024-02-29""#));
    assert_rejected(
        &patient(r#""birthDate":"2023-02-29""#),
        "raw_data.birthDate",
        r#"invalid date "2023-02-29": 2023-02 has no day 29"#,
    );
}

#[test]
fn onset_date_time_accepts_year() {
    assert_accepted(
        r#"{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"onsetDateTime":"2020"}"#,
    );
}

#[test]
fn period_start_accepts_year() {
    assert_accepted(&observation(r#""effectivePeriod":{"start":"2012"}"#));
    assert_accepted(
        r#"{"resourceType":"Encounter","status":"finished","period":{"start":"2012"}}"#,
    );
}

#[test]
fn period_end_is_checked() {
    assert_rejected(
        &observation(r#""effectivePeriod":{"start":"2012","end":"2012-13"}"#),
        "raw_data.effectivePeriod.end",
        r#"invalid dateTime "2012-13": month 13 does not exist"#,
    );
}

#[test]
fn value_quantity_rejects_number_out_of_range() {
    assert_rejected(
        &observation(r#""valueQuantity":{"value":1e400,"unit":"mmol/l"}"#),
        "raw_data.valueQuantity.value",
        "number 1e400 is out of range",
    );
}

#[test]
fn value_quantity_accepts_long_decimals() {
    assert_accepted(&observation(
        r#""valueQuantity":{"value":1.00065022141624642,"unit":"mmol/l"}"#,
    ));
    assert_accepted(&observation(
        r#""valueQuantity":{"value":9007199254740993,"unit":"mmol/l"}"#,
    ));
}

#[test]
fn value_quantity_rejects_string() {
    assert_rejected(
        &observation(r#""valueQuantity":"6.3 mmol/l""#),
        "raw_data.valueQuantity",
        "expected a Quantity object, found a string",
    );
}

#[test]
fn quantity_value_rejects_string() {
    assert_rejected(
        &observation(r#""valueQuantity":{"value":"6.3"}"#),
        "raw_data.valueQuantity.value",
        "expected a decimal number, found a string",
    );
}

#[test]
fn duplicate_key_is_rejected() {
    assert_rejected(
        r#"{"resourceType":"Observation","status":"final","status":"amended"}"#,
        "raw_data.status",
        r#"duplicate key "status""#,
    );
}

#[test]
fn duplicate_key_in_bundle_entry_names_path() {
    assert_rejected(
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"male","gender":"female"}}]}"#,
        "raw_data.entry[0].resource.gender",
        r#"duplicate key "gender""#,
    );
}

#[test]
fn resource_type_rejects_number() {
    assert_rejected(
        r#"{"resourceType":42,"status":"final"}"#,
        "raw_data.resourceType",
        "expected a string naming a FHIR R4 resource type, found a number",
    );
}

#[test]
fn resource_type_rejects_unknown_name() {
    assert_rejected(
        r#"{"resourceType":"Observaton","status":"final"}"#,
        "raw_data.resourceType",
        r#"unknown FHIR R4 resource type "Observaton""#,
    );
    assert_rejected(
        r#"{"resourceType":"observation"}"#,
        "raw_data.resourceType",
        r#"unknown FHIR R4 resource type "observation""#,
    );
}

#[test]
fn truncated_json_is_rejected() {
    assert_rejected(
        r#"{"resourceType":"Observation","status":"fin"#,
        "raw_data.status",
        "EOF while parsing a string at line 1 column 43",
    );
    assert_rejected(
        r#"{"resourceType":"Observation","#,
        "raw_data",
        "EOF while parsing a value at line 1 column 30",
    );
}

#[test]
fn syntax_error_reports_line_and_column() {
    assert_rejected(
        "{\n  \"resourceType\": \"Observation\"\n  \"status\": \"final\"\n}",
        "raw_data",
        "expected ',' or '}' at line 3 column 3",
    );
}

#[test]
fn byte_order_mark_before_json_is_rejected() {
    assert_rejected(
        "\u{feff}{\"resourceType\":\"Patient\"}",
        "raw_data",
        "expected value at line 1 column 1",
    );
}

#[test]
fn text_that_is_not_json_is_accepted() {
    assert_accepted("");
    assert_accepted("Blood pressure 120/80, taken seated.");
    assert_accepted("MSH|^~\\&|LAB|HOSPITAL|||20230904||ORU^R01|1|P|2.5");
}

#[test]
fn json_without_resource_type_is_only_parsed() {
    assert_accepted(r#"{"note":"free form","effectiveDateTime":"2015-02-30"}"#);
    assert_accepted(r#"[{"birthDate":"not a date"}]"#);
    assert_rejected(
        r#"  [{"a":1},{"a":1,"a":2}]"#,
        "raw_data[1].a",
        r#"duplicate key "a""#,
    );
}

#[test]
fn leading_whitespace_does_not_hide_json() {
    assert_rejected(
        "\n\t {\"resourceType\":\"Patient\",\"birthDate\":\"2000-15-31\"}",
        "raw_data.birthDate",
        r#"invalid date "2000-15-31": month 15 does not exist"#,
    );
}

#[test]
fn bundle_entry_resource_is_validated() {
    assert_rejected(
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:c757873d-ec9a-4326-a141-556f43239520","resource":{"resourceType":"Patient","birthDate":"2019-11-04T23:00:00.000Z"}}]}"#,
        "raw_data.entry[0].resource.birthDate",
        r#"invalid date "2019-11-04T23:00:00.000Z": a date must not have a time (use YYYY, YYYY-MM or YYYY-MM-DD)"#,
    );
}

#[test]
fn bundle_entry_resource_needs_resource_type() {
    assert_rejected(
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"id":"x"}}]}"#,
        "raw_data.entry[0].resource.resourceType",
        "missing resourceType",
    );
}

#[test]
fn contained_resources_are_validated() {
    assert_rejected(
        r#"{"resourceType":"MedicationRequest","status":"active","contained":[{"resourceType":"Medication","id":"med1","code":"oxycodone"}]}"#,
        "raw_data.contained[0].code",
        "expected a CodeableConcept object, found a string",
    );
    assert_rejected(
        r#"{"resourceType":"Patient","contained":[{"resourceType":"Foo"}]}"#,
        "raw_data.contained[0].resourceType",
        r#"unknown FHIR R4 resource type "Foo""#,
    );
}

#[test]
fn parameters_resources_are_validated() {
    assert_rejected(
        r#"{"resourceType":"Parameters","parameter":[{"name":"a","valueString":"x"},{"name":"b","part":[{"name":"c","resource":{"resourceType":"Observation","issued":"2013-04-03"}}]}]}"#,
        "raw_data.parameter[1].part[0].resource.issued",
        r#"invalid instant "2013-04-03": an instant needs a full date, time and zone (YYYY-MM-DDThh:mm:ssZ)"#,
    );
}

#[test]
fn repeating_elements_must_be_arrays() {
    assert_rejected(
        &observation(r#""component":{"code":{"text":"systolic"}}"#),
        "raw_data.component",
        "expected an array of Observation.component, found an object",
    );
    assert_rejected(
        &patient(r#""identifier":{"value":"123"}"#),
        "raw_data.identifier",
        "expected an array of Identifier, found an object",
    );
    assert_rejected(
        &observation(r#""category":[{"coding":{"code":"vital-signs"}}]"#),
        "raw_data.category[0].coding",
        "expected an array of Coding, found an object",
    );
}

#[test]
fn single_elements_must_not_be_arrays() {
    assert_rejected(
        &observation(r#""valueQuantity":[{"value":1}]"#),
        "raw_data.valueQuantity",
        "expected a Quantity object, found an array",
    );
    assert_rejected(
        &patient(r#""birthDate":["1974-12"]"#),
        "raw_data.birthDate",
        "expected a date string, found an array",
    );
}

#[test]
fn empty_values_are_rejected() {
    assert_rejected(
        &patient(r#""name":[]"#),
        "raw_data.name",
        "an array must not be empty",
    );
    assert_rejected(
        &patient(r#""maritalStatus":{}"#),
        "raw_data.maritalStatus",
        "an object must not be empty",
    );
    assert_rejected(
        &patient(r#""gender":"""#),
        "raw_data.gender",
        "a code must not be empty",
    );
    assert_rejected(
        &patient(r#""gender":null"#),
        "raw_data.gender",
        "expected a code string, found null",
    );
}

#[test]
fn component_values_are_validated() {
    assert_rejected(
        &observation(
            r#""component":[{"code":{"text":"systolic"},"valueQuantity":{"value":107}},{"code":{"text":"diastolic"},"valueDateTime":"2012-02-30"}]"#,
        ),
        "raw_data.component[1].valueDateTime",
        r#"invalid dateTime "2012-02-30": 2012-02 has no day 30"#,
    );
}

#[test]
fn instants_need_full_timestamps() {
    assert_rejected(
        &patient(r#""meta":{"lastUpdated":"2023-09-04"}"#),
        "raw_data.meta.lastUpdated",
        r#"invalid instant "2023-09-04": an instant needs a full date, time and zone (YYYY-MM-DDThh:mm:ssZ)"#,
    );
    assert_accepted(&observation(r#""issued":"2013-04-03T15:30:10+01:00""#));
}

#[test]
fn date_time_elements_of_tabled_resources_are_checked() {
    assert_rejected(
        r#"{"resourceType":"Condition","recordedDate":"2023-09-04T21:28:00"}"#,
        "raw_data.recordedDate",
        r#"invalid dateTime "2023-09-04T21:28:00": a time must have a zone (Z or an offset such as +01:00)"#,
    );
    assert_rejected(
        r#"{"resourceType":"MedicationRequest","authoredOn":"2015-01-32"}"#,
        "raw_data.authoredOn",
        r#"invalid dateTime "2015-01-32": 2015-01 has no day 32"#,
    );
}

#[test]
fn generic_choice_elements_apply_to_untabled_resources() {
    assert_rejected(
        r#"{"resourceType":"Procedure","status":"completed","performedDateTime":"2023-09-04T21:28"}"#,
        "raw_data.performedDateTime",
        r#"invalid dateTime "2023-09-04T21:28": a time must have seconds (hh:mm:ss)"#,
    );
    assert_accepted(
        r#"{"resourceType":"Procedure","status":"completed","performedPeriod":{"start":"2012"}}"#,
    );
}

#[test]
fn choice_types_follow_their_suffix() {
    assert_rejected(
        &patient(r#""deceasedBoolean":"false""#),
        "raw_data.deceasedBoolean",
        "expected a boolean, found a string",
    );
    assert_rejected(
        &patient(r#""multipleBirthInteger":3000000000"#),
        "raw_data.multipleBirthInteger",
        "integer 3000000000 is out of range (-2147483648 to 2147483647)",
    );
    assert_rejected(
        r#"{"resourceType":"Condition","abatementAge":{"value":"fifty"}}"#,
        "raw_data.abatementAge.value",
        "expected a decimal number, found a string",
    );
    assert_rejected(
        r#"{"resourceType":"Immunization","occurrenceString":""}"#,
        "raw_data.occurrenceString",
        "a string must not be empty",
    );
}

#[test]
fn unknown_elements_are_accepted() {
    assert_accepted(&observation(r#""fooBar":{"x":null},"valueFoo":[1]"#));
}

#[test]
fn resource_id_follows_id_pattern() {
    assert_rejected(
        r#"{"resourceType":"Patient","id":"patient 1"}"#,
        "raw_data.id",
        r#"invalid id "patient 1": an id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'"#,
    );
}

#[test]
fn primitive_extension_must_be_object() {
    assert_accepted(&patient(
        r#""birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]}"#,
    ));
    assert_rejected(
        &patient(r#""birthDate":"1974-12-25","_birthDate":"14:35""#),
        "raw_data._birthDate",
        "expected a primitive extension object, found a string",
    );
}

#[test]
fn primitive_extension_content_is_validated() {
    assert_rejected(
        &patient(
            r#""_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35"}]}"#,
        ),
        "raw_data._birthDate.extension[0].valueDateTime",
        r#"invalid dateTime "1974-12-25T14:35": a time must have seconds (hh:mm:ss)"#,
    );
}

#[test]
fn repeating_primitive_allows_null_with_extension() {
    let with_extension = patient(
        r#""name":[{"given":["Jim",null],"_given":[null,{"extension":[{"url":"http://example.org/x","valueString":"J"}]}]}]"#,
    );
    assert_accepted(&with_extension);

    assert_rejected(
        &patient(r#""name":[{"given":["Jim",null]}]"#),
        "raw_data.name[0].given[1]",
        "expected a string, found null",
    );
    assert_rejected(
        &patient(r#""name":[{"given":["Jim"],"_given":{"id":"x"}}]"#),
        "raw_data.name[0]._given",
        "expected an array of primitive extension objects, found an object",
    );
}

#[test]
fn strings_reject_control_characters() {
    assert_rejected(
        &patient(r#""name":[{"family":"Chalmers\u0000"}]"#),
        "raw_data.name[0].family",
        "a string must not contain the control character U+0000",
    );
}

#[test]
fn nested_sections_are_validated() {
    assert_rejected(
        r#"{"resourceType":"Composition","status":"final","section":[{"title":"a","section":[{"title":"b","entry":{"reference":"Observation/1"}}]}]}"#,
        "raw_data.section[0].section[0].entry",
        "expected an array of Reference, found an object",
    );
}

#[test]
fn encounter_class_is_a_single_coding() {
    assert_rejected(
        r#"{"resourceType":"Encounter","status":"finished","class":[{"code":"IMP"}]}"#,
        "raw_data.class",
        "expected a Coding object, found an array",
    );
}

#[test]
fn extension_objects_are_validated_everywhere() {
    assert_rejected(
        &observation(
            r#""valueQuantity":{"value":1,"extension":[{"url":"http://example.org/x","valueInteger":1.5}]}"#,
        ),
        "raw_data.valueQuantity.extension[0].valueInteger",
        "expected an integer, found 1.5",
    );
}

#[test]
fn field_problem_display_names_the_field() {
    let problem = FieldProblem {
        field: "raw_data.status".to_owned(),
        message: r#"duplicate key "status""#.to_owned(),
    };

    assert_eq!(
        problem.to_string(),
        r#"raw_data.status: duplicate key "status""#
    );
}
