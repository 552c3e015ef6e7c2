//! Medical records over HTTP: create, list, read, verify, validation and
//! access rules, against real PostgreSQL and anvil.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::path::PathBuf;

use diesel::{QueryableByName, RunQueryDsl};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::TestApp;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

fn fhir_examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/cases/fhir")
}

fn observation_with(field: &str, value: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"text":"Glucose"}},"{field}":{value}}}"#
    )
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(app: &TestApp, sql: &str) -> i64 {
    let mut connection = app.db().connect().unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connection)
        .unwrap()
        .n
}

fn execute(app: &TestApp, sql: &str) {
    let mut connection = app.db().connect().unwrap();
    diesel::sql_query(sql).execute(&mut connection).unwrap();
}

async fn status_and_body(response: meditrustal_tests::reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_read_verify_round_trip() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, token) = app.patient("alice").await;

    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    assert_eq!(created["patient_id"], patient["id"]);
    assert_eq!(created["record_type"], "LAB_RESULT");
    assert_eq!(created["anchor"]["status"], "pending");
    let expected_hash = meditrustal_crypto::sha256(GLUCOSE.as_bytes()).to_string();
    assert_eq!(created["data_hash"], expected_hash);
    assert!(created.get("raw_data").is_none());

    let listed: Value = app
        .get("/medical-records/patient/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["data_hash"], created["data_hash"]);
    assert_eq!(listed[0]["anchor_hash"], created["anchor_hash"]);
    assert!(listed[0].get("raw_data").is_none());

    let id = created["id"].as_str().unwrap();
    let read = app.wait_anchored(&token, id).await;
    assert_eq!(read["raw_data"], GLUCOSE);
    let tx_hash = read["anchor"]["tx_hash"].as_str().unwrap();
    assert_eq!(read["blockchain_record_id"], tx_hash);
    assert!(tx_hash.starts_with("0x") && tx_hash.len() == 66 && tx_hash == tx_hash.to_lowercase());
    assert!(read["anchor"]["block_number"].as_u64().unwrap() > 0);

    let listed_after: Value = app
        .get("/medical-records/patient/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed_after[0]["blockchain_record_id"], tx_hash);

    let (status, report) = status_and_body(
        app.get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["verified"], true, "{report}");
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["passed"], true, "{check}");
    }
    assert_eq!(report["anchor"]["tx_hash"], tx_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hl7_example_reads_back_byte_identical() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("bob").await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(fhir_examples_dir())
        .expect("shared FHIR examples beside the checkout")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 9);

    for path in files {
        let raw = std::fs::read_to_string(&path).unwrap();
        let created = app.create_record(&token, "MEDICAL_HISTORY", &raw).await;
        let id = created["id"].as_str().unwrap();

        let (status, read) = status_and_body(
            app.get(&format!("/medical-records/{id}"), Some(&token))
                .await,
        )
        .await;

        assert_eq!(status, StatusCode::OK, "{}", path.display());
        assert_eq!(
            read["raw_data"].as_str().unwrap().as_bytes(),
            raw.as_bytes(),
            "{}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_metadata_is_rejected_without_writes() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("carol").await;

    for (metadata, field) in [
        (json!({"note": "before\u{0}after"}), "record_metadata.note"),
        (
            json!({"bad\u{0}key": "value"}),
            "record_metadata.bad\\u0000key",
        ),
    ] {
        let response = app
            .post_json("/medical-records", &json!({"record_type": "LAB_RESULT", "raw_data": GLUCOSE, "record_metadata": metadata}), Some(&token))
            .await;
        let (status, body) = status_and_body(response).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["field"], field);
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_jobs WHERE kind = 'anchor_record'"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_are_rejected() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("dora").await;

    let raw = r#"{"resourceType":"Observation","status":"final","status":"amended"}"#;
    let (status, body) = status_and_body(
        app.post_json(
            "/medical-records",
            &json!({"record_type": "LAB_RESULT", "raw_data": raw}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "raw_data.status");

    let duplicate_metadata = format!(
        r#"{{"record_type":"LAB_RESULT","raw_data":{},"record_metadata":{{"a":1,"a":2}}}}"#,
        serde_json::to_string(GLUCOSE).unwrap()
    );
    let response = app
        .client
        .post(app.url("/medical-records"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(duplicate_metadata)
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_body(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "record_metadata.a");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_keep_their_digits_and_overflow_is_rejected() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("eve").await;

    let overflow = observation_with("valueQuantity", r#"{"value":1e400,"unit":"mmol/l"}"#);
    let (status, body) = status_and_body(
        app.post_json(
            "/medical-records",
            &json!({"record_type": "LAB_RESULT", "raw_data": overflow}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "raw_data.valueQuantity.value");

    for digits in ["1.00065022141624642", "9007199254740993"] {
        let raw = observation_with(
            "valueQuantity",
            &format!(r#"{{"value":{digits},"unit":"mmol/l"}}"#),
        );
        let created = app.create_record(&token, "LAB_RESULT", &raw).await;
        let id = created["id"].as_str().unwrap();
        let read = app.wait_anchored(&token, id).await;
        assert_eq!(read["raw_data"], raw.as_str());
        assert!(read["raw_data"].as_str().unwrap().contains(digits));
        let report: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["verified"], true, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fhir_dates_name_the_field() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("fred").await;
    let patient = |birth: &str| format!(r#"{{"resourceType":"Patient","birthDate":"{birth}"}}"#);

    let cases = [
        (
            observation_with("effectiveDateTime", r#""2015-02-30""#),
            "raw_data.effectiveDateTime",
        ),
        (
            observation_with("effectiveDateTime", r#""2023-09-04T21:28:00""#),
            "raw_data.effectiveDateTime",
        ),
        (
            observation_with("effectiveDateTime", r#""2023-09-04T21:28""#),
            "raw_data.effectiveDateTime",
        ),
        (patient("2000-15-31"), "raw_data.birthDate"),
        (patient("2019-11-04T23:00:00.000Z"), "raw_data.birthDate"),
    ];
    for (raw, field) in cases {
        let (status, body) = status_and_body(
            app.post_json(
                "/medical-records",
                &json!({"record_type": "MEDICAL_HISTORY", "raw_data": raw}),
                Some(&token),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw}");
        assert_eq!(body["field"], field, "{raw}");
        assert_eq!(body["errors"][0]["field"], field, "{raw}");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_and_partial_dates_are_returned_as_sent() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("gail").await;

    let cases = [
        observation_with("effectiveDateTime", r#""2015-02-07T13:28:17-05:00""#),
        r#"{"resourceType":"Patient","birthDate":"1974-12"}"#.to_owned(),
        r#"{"resourceType":"Condition","subject":{"reference":"Patient/1"},"onsetDateTime":"2020"}"#.to_owned(),
        observation_with("effectivePeriod", r#"{"start":"2012"}"#),
    ];
    for raw in cases {
        let created = app.create_record(&token, "MEDICAL_HISTORY", &raw).await;
        let read: Value = app
            .get(
                &format!("/medical-records/{}", created["id"].as_str().unwrap()),
                Some(&token),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(read["raw_data"], raw.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_missing_records_look_identical() {
    let app = TestApp::spawn().await.unwrap();
    let (_, owner_token) = app.patient("hana").await;
    let (_, other_token) = app.patient("ivan").await;
    let created = app.create_record(&owner_token, "DIAGNOSIS", GLUCOSE).await;
    let id = created["id"].as_str().unwrap();
    let random = uuid::Uuid::new_v4().to_string();

    for suffix in ["", "/verify"] {
        let foreign = app
            .get(
                &format!("/medical-records/{id}{suffix}"),
                Some(&other_token),
            )
            .await;
        let missing = app
            .get(
                &format!("/medical-records/{random}{suffix}"),
                Some(&other_token),
            )
            .await;
        let malformed = app
            .get(
                &format!("/medical-records/not-a-uuid{suffix}"),
                Some(&other_token),
            )
            .await;
        let (foreign_status, foreign_body) = status_and_body(foreign).await;
        let (missing_status, missing_body) = status_and_body(missing).await;
        let (malformed_status, malformed_body) = status_and_body(malformed).await;

        assert_eq!(foreign_status, StatusCode::NOT_FOUND);
        assert_eq!(missing_status, StatusCode::NOT_FOUND);
        assert_eq!(malformed_status, StatusCode::NOT_FOUND);
        assert_eq!(foreign_body, missing_body);
        assert_eq!(foreign_body, malformed_body);
    }

    let list = app
        .get(
            &format!(
                "/medical-records/patient/{}",
                created["patient_id"].as_str().unwrap()
            ),
            Some(&other_token),
        )
        .await;
    assert_eq!(list.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_consent_cannot_create_or_read() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("judy").await;
    app.register("drkim", "kim@example.org", "DOCTOR").await;
    let doctor_token = app.login("drkim").await;
    let record = app
        .create_record(&patient_token, "DIAGNOSIS", GLUCOSE)
        .await;

    let create = app
        .post_json(
            "/medical-records",
            &json!({"record_type": "DIAGNOSIS", "raw_data": GLUCOSE, "patient_id": patient["id"]}),
            Some(&doctor_token),
        )
        .await;
    let (status, body) = status_and_body(create).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "consent_required");

    let (read_status, read_body) = status_and_body(
        app.get(
            &format!("/medical-records/{}", record["id"].as_str().unwrap()),
            Some(&doctor_token),
        )
        .await,
    )
    .await;
    let (missing_status, missing_body) = status_and_body(
        app.get(
            &format!("/medical-records/{}", uuid::Uuid::new_v4()),
            Some(&doctor_token),
        )
        .await,
    )
    .await;
    assert_eq!(read_status, StatusCode::FORBIDDEN);
    assert_eq!(missing_status, StatusCode::FORBIDDEN);
    assert_eq!(read_body, missing_body);
    assert_eq!(read_body["code"], "consent_required");
    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_cannot_create_for_another_patient() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("karl").await;
    let (other, _) = app.patient("lena").await;

    let response = app
        .post_json(
            "/medical-records",
            &json!({"record_type": "DIAGNOSIS", "raw_data": GLUCOSE, "patient_id": other["id"]}),
            Some(&token),
        )
        .await;

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 0);
}

#[derive(QueryableByName)]
struct SealedRow {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    data_nonce: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Binary)]
    ciphertext: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_content_gets_distinct_nonces_and_anchors() {
    let app = TestApp::spawn().await.unwrap();
    let (_, first_token) = app.patient("mona").await;
    let (_, second_token) = app.patient("nils").await;

    let a = app.create_record(&first_token, "LAB_RESULT", GLUCOSE).await;
    let b = app.create_record(&first_token, "LAB_RESULT", GLUCOSE).await;
    let c = app
        .create_record(&second_token, "LAB_RESULT", GLUCOSE)
        .await;

    let mut connection = app.db().connect().unwrap();
    let rows: Vec<SealedRow> =
        diesel::sql_query("SELECT data_nonce, ciphertext FROM medical_records")
            .load(&mut connection)
            .unwrap();
    assert_eq!(rows.len(), 3);
    assert_ne!(rows[0].data_nonce, rows[1].data_nonce);
    assert_ne!(rows[0].ciphertext, rows[1].ciphertext);
    assert_ne!(rows[1].data_nonce, rows[2].data_nonce);
    assert_eq!(a["data_hash"], b["data_hash"]);
    assert_ne!(a["anchor_hash"], b["anchor_hash"]);
    assert_ne!(a["anchor_hash"], c["anchor_hash"]);

    for (record, token) in [(&a, &first_token), (&b, &first_token), (&c, &second_token)] {
        let id = record["id"].as_str().unwrap();
        app.wait_anchored(token, id).await;
        let report: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["verified"], true, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_ciphertext_byte_withholds_content() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("olga").await;
    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let id = created["id"].as_str().unwrap();
    app.wait_anchored(&token, id).await;

    execute(&app, "UPDATE medical_records SET ciphertext = overlay(ciphertext placing decode(lpad(to_hex(get_byte(ciphertext, 5) # 1), 2, '0'), 'hex') from 6 for 1)");

    let response = app
        .get(&format!("/medical-records/{id}"), Some(&token))
        .await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("integrity_check_failed"), "{text}");
    assert!(!text.contains("Glucose"), "plaintext leaked: {text}");

    let report: Value = app
        .get(&format!("/medical-records/{id}/verify"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(check(&report, "ciphertext")["passed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_each_tampered_field() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("pia").await;
    let (other, _) = app.patient("quinn").await;

    let cases = [
        (
            "UPDATE medical_records SET metadata_json = '{\"source\":\"forged\"}'",
            vec!["ciphertext", "anchor_hash", "chain_entry"],
        ),
        (
            "UPDATE medical_records SET record_type = 'IMAGING'",
            vec!["ciphertext", "anchor_hash", "record_type"],
        ),
        (
            "UPDATE medical_records SET data_hash = sha256('other'::bytea)",
            vec!["data_hash", "anchor_hash", "chain_entry"],
        ),
    ];
    for (sql, failed) in cases {
        execute(&app, "DELETE FROM outbox_jobs");
        execute(&app, "DELETE FROM medical_records");
        let created = app
            .post_json(
                "/medical-records",
                &json!({"record_type": "LAB_RESULT", "raw_data": GLUCOSE, "record_metadata": {"source": "lab"}}),
                Some(&token),
            )
            .await;
        let created: Value = created.json().await.unwrap();
        let id = created["id"].as_str().unwrap();
        app.wait_anchored(&token, id).await;

        execute(&app, sql);

        let report: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["verified"], false, "{sql}");
        for name in &failed {
            assert_eq!(
                check(&report, name)["passed"],
                false,
                "{sql}: {name} in {report}"
            );
        }
    }

    // Moving the record to another patient hides it from its owner and fails
    // decryption for the new one.
    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let id = created["id"].as_str().unwrap();
    app.wait_anchored(&token, id).await;
    execute(
        &app,
        &format!(
            "UPDATE medical_records SET patient_id = '{}' WHERE id = '{id}'",
            other["id"].as_str().unwrap()
        ),
    );
    let other_token = app.login("quinn").await;
    let report: Value = app
        .get(&format!("/medical-records/{id}/verify"), Some(&other_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(check(&report, "ciphertext")["passed"], false);
    assert_eq!(check(&report, "owner")["passed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_link_header_newest_first() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("rosa").await;
    let mut created = Vec::new();
    for kind in [
        "LAB_RESULT",
        "DIAGNOSIS",
        "LAB_RESULT",
        "LAB_RESULT",
        "VACCINATION",
    ] {
        created.push(
            app.create_record(&token, kind, GLUCOSE).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut next = Some(app.url("/medical-records/patient/me?limit=2"));
    while let Some(url) = next.take() {
        let response = app
            .client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            format!("{}{}", app.base_url, &link[1..link.find('>').unwrap()])
        });
        let page: Vec<Value> = response.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, created);

    let labs: Vec<Value> = app
        .get(
            "/medical-records/patient/me?record_type=lab_result",
            Some(&token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(labs.len(), 3);
    assert!(labs.iter().all(|r| r["record_type"] == "LAB_RESULT"));

    let bad = app
        .get("/medical-records/patient/me?limit=abc", Some(&token))
        .await;
    let (status, body) = status_and_body(bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rejects_other_master_key_under_same_id() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("zoe").await;
    app.create_record(&token, "LAB_RESULT", GLUCOSE).await;

    let error = app
        .restart_server_with_master_key([8; 32])
        .await
        .err()
        .expect("start must fail with another key");
    let same = app.restart_server_with_master_key([7; 32]).await;

    let message = format!("{error:#}");
    assert!(
        message.contains("master key test-mk is not the key that sealed the data"),
        "{message}"
    );
    assert!(
        same.is_ok(),
        "the original key must still start: {:?}",
        same.err()
    );
}
