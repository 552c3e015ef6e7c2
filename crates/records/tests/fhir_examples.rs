//! Validates the published FHIR R4 example resources kept beside the repository.
//!
//! The examples live in `shared/cases/fhir`, three levels above this crate's manifest directory
//! (a sibling of the clone). CI checks that folder out at the same place.

use std::fs;
use std::path::{Path, PathBuf};

use meditrustal_records::fhir::validate_raw_data;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/cases/fhir")
}

fn example_files() -> Vec<PathBuf> {
    let dir = examples_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));

    let mut files: Vec<PathBuf> = entries
        .map(|entry| match entry {
            Ok(entry) => entry.path(),
            Err(error) => panic!("cannot list {}: {error}", dir.display()),
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn published_r4_examples_are_valid() {
    let files = example_files();
    assert!(
        files.len() >= 9,
        "expected at least 9 examples in {}, found {}",
        examples_dir().display(),
        files.len()
    );

    for path in files {
        let raw = fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        assert_eq!(validate_raw_data(&raw), Ok(()), "{}", path.display());
    }
}

#[test]
fn broken_example_date_is_rejected() {
    let path = examples_dir().join("patient-example-infant-twin-1.json");
    let raw = fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let birth_date = "\"birthDate\": \"2017-05-15\"";
    assert!(
        raw.contains(birth_date),
        "fixture changed: {}",
        path.display()
    );

    let broken = raw.replace(birth_date, "\"birthDate\": \"2017-05-15T17:11:00+01:00\"");
    let problem = validate_raw_data(&broken).expect_err("a timestamp is not a date");

    assert_eq!(problem.field, "raw_data.birthDate");
    assert_eq!(
        problem.message,
        "invalid date \"2017-05-15T17:11:00+01:00\": a date must not have a time (use YYYY, YYYY-MM or YYYY-MM-DD)"
    );
}
