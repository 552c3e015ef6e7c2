//! Keeps the configuration reference in README.md, `config/default.toml`
//! and the `Settings` struct in step. Every key of `Settings` has a row in
//! the README table with its default. `config/default.toml` sets every key,
//! or names a secret or optional path in a comment. Neither file names a
//! key that `Settings` does not have.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meditrustal::config::Settings;
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Flattens nested sections into dotted keys with their leaf values.
fn flatten(prefix: &str, value: &Value, keys: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(section) => {
            for (name, inner) in section {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                flatten(&key, inner, keys);
            }
        }
        leaf => {
            keys.insert(prefix.to_owned(), leaf.clone());
        }
    }
}

/// Returns every key of `Settings` with its default from
/// `config/default.toml` (null for a key that has none).
fn settings_keys() -> BTreeMap<String, Value> {
    let defaults = Settings::load_files(&workspace().join("config"), "none")
        .expect("config/default.toml loads into Settings");
    let mut keys = BTreeMap::new();
    flatten("", &serde_json::to_value(&defaults).unwrap(), &mut keys);

    // A secret serializes redacted; its default, if any, is the file's.
    let file = file_values("default.toml");
    for (key, value) in keys.iter_mut() {
        if value.as_str() == Some(meditrustal::config::REDACTED) {
            *value = file.get(key).cloned().unwrap_or(Value::Null);
        }
    }
    keys
}

/// Keys set in one configuration file, with their values.
fn file_values(name: &str) -> BTreeMap<String, Value> {
    let path = workspace().join("config").join(name);
    let value: Value = config::Config::builder()
        .add_source(config::File::from(path))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let mut keys = BTreeMap::new();
    flatten("", &value, &mut keys);
    keys
}

/// Keys set in one configuration file.
fn file_keys(name: &str) -> BTreeSet<String> {
    file_values(name).into_keys().collect()
}

/// Parses the README configuration table into each row's keys and its
/// default cell.
fn readme_rows() -> Vec<(Vec<String>, String)> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| key | default | meaning |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(
        !table.is_empty(),
        "README.md has no `| key | default | meaning |` table"
    );
    table
        .iter()
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let keys = cells[1]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect();
            (keys, cells[2].to_owned())
        })
        .collect()
}

/// Renders a default as the README writes it: each value in backticks, an
/// empty list as "none". Returns `None` for keys without a default.
fn expected_default(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => Some(vec!["none".to_owned()]),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| format!("`{}`", plain(item)))
                .collect(),
        ),
        other => Some(vec![format!("`{}`", plain(other))]),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[test]
fn readme_table_lists_every_setting_with_its_default() {
    let settings = settings_keys();
    let rows = readme_rows();
    let mut problems = Vec::new();

    for (key, default) in &settings {
        let Some((_, cell)) = rows.iter().find(|(keys, _)| keys.contains(key)) else {
            problems.push(format!(
                "`{key}` is a key of Settings (crates/meditrustal/src/config.rs) but README.md's \
                 configuration table has no row for it"
            ));
            continue;
        };
        for expected in expected_default(default).unwrap_or_default() {
            if !cell.contains(&expected) {
                problems.push(format!(
                    "README.md's configuration row for `{key}` gives the default {cell:?}, but \
                     config/default.toml sets {expected}"
                ));
            }
        }
    }
    for (keys, _) in &rows {
        for key in keys.iter().filter(|key| !settings.contains_key(*key)) {
            problems.push(format!(
                "README.md's configuration table lists `{key}`, which is not a key of Settings \
                 (crates/meditrustal/src/config.rs)"
            ));
        }
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn default_toml_names_every_setting_and_no_other() {
    let settings = settings_keys();
    let text = std::fs::read_to_string(workspace().join("config/default.toml")).unwrap();
    let set = file_keys("default.toml");
    let mut problems = Vec::new();

    for (key, default) in &settings {
        let leaf = key.rsplit('.').next().unwrap();
        let in_comment = text.lines().any(|line| {
            let comment = line.trim_start().trim_start_matches('#').trim_start();
            line.trim_start().starts_with('#')
                && (comment.starts_with(&format!("{leaf} "))
                    || comment.starts_with(&format!("{leaf}:")))
        });
        let documented = set.contains(key) || (default.is_null() && in_comment);
        if !documented {
            problems.push(format!(
                "`{key}` is a key of Settings (crates/meditrustal/src/config.rs) but \
                 config/default.toml neither sets it nor, for a secret, names it in a comment"
            ));
        }
    }
    for file in ["default.toml", "development.toml", "production.toml"] {
        if !workspace().join("config").join(file).exists() {
            continue;
        }
        for key in file_keys(file)
            .iter()
            .filter(|key| !settings.contains_key(*key))
        {
            problems.push(format!(
                "config/{file} sets `{key}`, which is not a key of Settings \
                 (crates/meditrustal/src/config.rs); the service would ignore it"
            ));
        }
    }

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn secrets_serialize_redacted() {
    let mut settings = Settings::load_files(&workspace().join("config"), "none").unwrap();
    settings.crypto.master_key = Some("ab".repeat(32).into());
    settings.crypto.previous_master_keys = vec![format!("mk0:{}", "cd".repeat(32)).into()];

    let text = serde_json::to_string(&settings).unwrap();

    assert!(!text.contains(&"ab".repeat(32)));
    assert!(!text.contains(&"cd".repeat(32)));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["crypto"]["master_key"], "<redacted>");
    assert_eq!(value["crypto"]["previous_master_keys"][0], "<redacted>");
    assert_eq!(value["database"]["url"], "<redacted>");
}
