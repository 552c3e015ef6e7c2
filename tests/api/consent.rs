//! Consent over HTTP: granting, enforcing on every request, revoking,
//! expiry, scopes, and the patient-signed entries on the chain, against
//! real PostgreSQL and anvil.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use diesel::{QueryableByName, RunQueryDsl};
use ethers::types::H256;
use meditrustal_adapter_ethers::testing::test_config;
use meditrustal_adapter_ethers::{DeploymentManifest, Eip712ConsentSigner, EthersLedger};
use meditrustal_ledger::{Address, ChainAccess, GrantTerms, Ledger};
use meditrustal_tests::reqwest::{Response, StatusCode};
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::TestApp;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

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

async fn status_and_body(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn id_of(body: &Value) -> &str {
    body["id"].as_str().unwrap()
}

/// Creates a record for `patient_id` as a doctor and returns the response.
async fn create_as_doctor(app: &TestApp, token: &str, patient_id: &str) -> Response {
    app.post_json(
        "/medical-records",
        &json!({"record_type": "LAB_RESULT", "raw_data": GLUCOSE, "patient_id": patient_id}),
        Some(token),
    )
    .await
}

/// Polls `GET /consents` as `token` until the consent's `part` (`grant` or
/// `revocation`) is anchored, up to 30 s.
async fn wait_consent_anchored(app: &TestApp, token: &str, consent_id: &str, part: &str) -> Value {
    for _ in 0..300 {
        let listed: Value = app
            .get("/consents", Some(token))
            .await
            .json()
            .await
            .unwrap();
        let consent = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|consent| consent["id"] == consent_id)
            .cloned()
            .unwrap();
        if consent[part]["status"] == "anchored" {
            return consent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the {part} of consent {consent_id} was not anchored within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_applies_to_next_request_of_old_token() {
    let app = TestApp::spawn().await.unwrap();
    let (_, patient_token) = app.patient("amara").await;
    let (doctor, doctor_token) = app.doctor("drbose").await;
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = id_of(&record);
    let doctor_address = doctor["blockchain_address"].as_str().unwrap();
    let read_path = format!("/medical-records/{record_id}");
    let check_path = format!("/medical-records/{record_id}/check-access/{doctor_address}");

    let before = app.get(&read_path, Some(&doctor_token)).await;
    assert_eq!(before.status(), StatusCode::FORBIDDEN);

    let (status, granted) = status_and_body(
        app.post_json(
            &format!("/medical-records/{record_id}/grant-access"),
            &json!({"doctor_address": doctor_address}),
            Some(&patient_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["record_id"], record_id);
    assert_eq!(granted["doctor_address"], doctor_address);
    assert_eq!(granted["transaction_hash"], Value::Null);
    assert_eq!(
        granted["message"],
        "Access granted. The patient-signed grant is queued for the chain."
    );

    let (status, read) = status_and_body(app.get(&read_path, Some(&doctor_token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["raw_data"], GLUCOSE);
    let verify = app
        .get(&format!("{read_path}/verify"), Some(&doctor_token))
        .await;
    assert_eq!(verify.status(), StatusCode::OK);
    let (_, checked) = status_and_body(app.get(&check_path, Some(&patient_token)).await).await;
    assert_eq!(checked["has_access"], true);
    assert_eq!(checked["accessor_address"], doctor_address);
    assert_eq!(checked["record_id"], record_id);

    let (status, revoked) = status_and_body(
        app.post_json(
            &format!("/medical-records/{record_id}/revoke-access"),
            &json!({"doctor_address": doctor_address}),
            Some(&patient_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["record_id"], record_id);
    assert_eq!(revoked["doctor_address"], doctor_address);
    assert_eq!(revoked["transaction_hash"], Value::Null);

    // The doctor's token was issued before the revocation and is still
    // valid; the next request fails all the same.
    let (status, denied) = status_and_body(app.get(&read_path, Some(&doctor_token)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denied["code"], "consent_required");
    let verify = app
        .get(&format!("{read_path}/verify"), Some(&doctor_token))
        .await;
    assert_eq!(verify.status(), StatusCode::FORBIDDEN);
    let (_, checked) = status_and_body(app.get(&check_path, Some(&doctor_token)).await).await;
    assert_eq!(checked["has_access"], false);

    // Another patient cannot probe the record, not even with their own
    // address, and the doctor learns nothing about records that do not
    // exist.
    let (other, other_token) = app.patient("amir").await;
    let probe = app
        .get(
            &format!(
                "/medical-records/{record_id}/check-access/{}",
                other["blockchain_address"].as_str().unwrap()
            ),
            Some(&other_token),
        )
        .await;
    assert_eq!(probe.status(), StatusCode::NOT_FOUND);
    let (status, missing) = status_and_body(
        app.get(
            &format!(
                "/medical-records/{}/check-access/{doctor_address}",
                uuid::Uuid::new_v4()
            ),
            Some(&doctor_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(missing["has_access"], false);

    let again = app
        .post_json(
            &format!("/medical-records/{record_id}/revoke-access"),
            &json!({"doctor_address": doctor_address}),
            Some(&patient_token),
        )
        .await;
    let (status, body) = status_and_body(again).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "consent_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_ends_access_without_any_action() {
    let app = TestApp::spawn().await.unwrap();
    let (_, patient_token) = app.patient("bea").await;
    let (doctor, doctor_token) = app.doctor("drchu").await;
    let record = app
        .create_record(&patient_token, "DIAGNOSIS", GLUCOSE)
        .await;
    let read_path = format!("/medical-records/{}", id_of(&record));
    let expires_at = Utc::now().trunc_subsecs(0) + chrono::TimeDelta::seconds(3);

    let (status, consent) = status_and_body(
        app.post_json(
            "/consents",
            &json!({"doctor_id": doctor["id"], "access": "read", "expires_at": expires_at, "purpose": "second opinion"}),
            Some(&patient_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{consent}");
    assert_eq!(consent["status"], "active");
    assert_eq!(consent["scope"], "all");
    assert_eq!(consent["purpose"], "second opinion");
    assert_eq!(
        consent["expires_at"].as_str().unwrap(),
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let allowed = app.get(&read_path, Some(&doctor_token)).await;
    assert_eq!(allowed.status(), StatusCode::OK);

    let wait = (expires_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;

    let expired = app.get(&read_path, Some(&doctor_token)).await;
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    let listed: Value = app
        .get("/consents", Some(&doctor_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["id"], consent["id"]);
    assert_eq!(listed[0]["status"], "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_of_one_patient_opens_nothing_of_another() {
    let app = TestApp::spawn().await.unwrap();
    let (patient_a, token_a) = app.patient("carla").await;
    let (patient_b, token_b) = app.patient("dario").await;
    let (doctor, doctor_token) = app.doctor("drevans").await;
    let record_a = app.create_record(&token_a, "LAB_RESULT", GLUCOSE).await;
    let record_b = app.create_record(&token_b, "LAB_RESULT", GLUCOSE).await;
    let id_a = patient_a["id"].as_str().unwrap();
    let id_b = patient_b["id"].as_str().unwrap();

    let granted = app
        .post_json(
            "/consents",
            &json!({"doctor_id": doctor["id"], "access": "write"}),
            Some(&token_a),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::CREATED);

    // Patient A's records are open to the doctor.
    let read_a = app
        .get(
            &format!("/medical-records/{}", id_of(&record_a)),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(read_a.status(), StatusCode::OK);
    let (status, created_a) =
        status_and_body(create_as_doctor(&app, &doctor_token, id_a).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created_a}");
    assert_eq!(created_a["patient_id"], id_a);

    // Patient B's are not: read, list, verify and create are refused.
    let (status, read_b) = status_and_body(
        app.get(
            &format!("/medical-records/{}", id_of(&record_b)),
            Some(&doctor_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(read_b["code"], "consent_required");
    let verify_b = app
        .get(
            &format!("/medical-records/{}/verify", id_of(&record_b)),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(verify_b.status(), StatusCode::FORBIDDEN);
    let list_b = app
        .get(
            &format!("/medical-records/patient/{id_b}"),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(list_b.status(), StatusCode::FORBIDDEN);
    let (status, create_b) =
        status_and_body(create_as_doctor(&app, &doctor_token, id_b).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(create_b["code"], "consent_required");

    // No route moves a record to another patient.
    for method in [
        meditrustal_tests::reqwest::Method::PATCH,
        meditrustal_tests::reqwest::Method::PUT,
    ] {
        let moved = app
            .client
            .request(
                method,
                app.url(&format!("/medical-records/{}", id_of(&created_a))),
            )
            .bearer_auth(&doctor_token)
            .json(&json!({"patient_id": id_b}))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.headers()["allow"], "GET");
        let (status, body) = status_and_body(moved).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["code"], "method_not_allowed");
    }
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM medical_records WHERE patient_id = '{id_b}'")
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            &format!("SELECT count(*) AS n FROM medical_records WHERE patient_id = '{id_a}'")
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_cannot_grant_for_another_patient() {
    let app = TestApp::spawn().await.unwrap();
    let (_, owner_token) = app.patient("elif").await;
    let (_, other_token) = app.patient("farah").await;
    let (doctor, doctor_token) = app.doctor("drgray").await;
    let record = app.create_record(&owner_token, "IMAGING", GLUCOSE).await;
    let record_id = id_of(&record);

    let (status, body) = status_and_body(
        app.post_json(
            &format!("/medical-records/{record_id}/grant-access"),
            &json!({"doctor_id": doctor["id"]}),
            Some(&other_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "record_not_found");

    let (status, body) = status_and_body(
        app.post_json(
            "/consents",
            &json!({"doctor_id": doctor["id"], "access": "read", "record_ids": [record_id]}),
            Some(&other_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "record_ids");

    // A doctor cannot grant on a patient's behalf either.
    let (status, body) = status_and_body(
        app.post_json(
            &format!("/medical-records/{record_id}/grant-access"),
            &json!({"doctor_id": doctor["id"]}),
            Some(&doctor_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "forbidden");

    // Nor can another patient revoke the owner's consent.
    let granted: Value = app
        .post_json(
            "/consents",
            &json!({"doctor_id": doctor["id"], "access": "read"}),
            Some(&owner_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let revoke = app
        .delete(
            &format!("/consents/{}", id_of(&granted)),
            Some(&other_token),
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND);
    let other_list: Value = app
        .get("/consents", Some(&other_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other_list, json!([]));
    assert_eq!(count(&app, "SELECT count(*) AS n FROM consents"), 1);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM consents WHERE revoked_at IS NULL"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_listing_shows_only_consented_records_across_pages() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("gita").await;
    let (doctor, doctor_token) = app.doctor("drhale").await;
    let mut labs = Vec::new();
    let mut images = Vec::new();
    for _ in 0..4 {
        labs.push(
            app.create_record(&patient_token, "LAB_RESULT", GLUCOSE)
                .await,
        );
        images.push(app.create_record(&patient_token, "IMAGING", GLUCOSE).await);
    }
    for body in [
        json!({"doctor_id": doctor["id"], "access": "read", "record_types": ["imaging"]}),
        json!({"doctor_id": doctor["id"], "access": "read", "record_ids": [id_of(&labs[1])]}),
    ] {
        let response = app
            .post_json("/consents", &body, Some(&patient_token))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let mut path = format!(
        "/medical-records/patient/{}?limit=2",
        patient["id"].as_str().unwrap()
    );
    let mut seen = Vec::new();
    loop {
        let response = app.get(&path, Some(&doctor_token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let next = response
            .headers()
            .get("link")
            .map(|value| value.to_str().unwrap().to_owned());
        let page: Value = response.json().await.unwrap();
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|record| record["id"].as_str().unwrap().to_owned()),
        );
        let Some(link) = next else { break };
        let target = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .trim_start_matches("/api/v1")
            .to_owned();
        path = target;
    }

    // Newest first: the images and the one lab record, nothing else.
    let mut expected: Vec<String> = images
        .iter()
        .chain(std::iter::once(&labs[1]))
        .map(|record| id_of(record).to_owned())
        .collect();
    let order: Vec<String> = labs
        .iter()
        .zip(&images)
        .flat_map(|(lab, image)| [id_of(lab).to_owned(), id_of(image).to_owned()])
        .rev()
        .collect();
    expected.sort_by_key(|id| order.iter().position(|other| other == id));
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);

    let other_lab = app
        .get(
            &format!("/medical-records/{}", id_of(&labs[0])),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(other_lab.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grants_name_the_field() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("hiro").await;
    let (doctor, _) = app.doctor("drilves").await;
    let record = app.create_record(&patient_token, "IMAGING", GLUCOSE).await;
    let past = Utc::now() - chrono::TimeDelta::minutes(1);

    let cases = [
        (json!({"access": "read"}), "doctor_id"),
        (
            json!({"doctor_id": doctor["id"], "doctor_address": doctor["blockchain_address"], "access": "read"}),
            "doctor_id",
        ),
        (
            json!({"doctor_address": "0x1234", "access": "read"}),
            "doctor_address",
        ),
        (
            json!({"doctor_id": patient["id"], "access": "read"}),
            "doctor_id",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "admin"}),
            "access",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "record_types": ["XRAY"]}),
            "record_types",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "record_types": []}),
            "record_types",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "record_types": ["IMAGING"], "record_ids": [id_of(&record)]}),
            "record_ids",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "purpose": "x\u{7}"}),
            "purpose",
        ),
        (
            json!({"doctor_id": doctor["id"], "access": "read", "scope": "all"}),
            "scope",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = status_and_body(
            app.post_json("/consents", &body, Some(&patient_token))
                .await,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    assert_eq!(count(&app, "SELECT count(*) AS n FROM consents"), 0);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_jobs WHERE consent_id IS NOT NULL"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_and_revocation_reach_chain_with_patient_signature() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("ines").await;
    let (doctor, doctor_token) = app.doctor("drjonas").await;

    let (status, created) = status_and_body(
        app.post_json(
            "/consents",
            &json!({"doctor_address": doctor["blockchain_address"], "access": "write", "record_types": ["VACCINATION", "LAB_RESULT"]}),
            Some(&patient_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["record_types"],
        json!(["LAB_RESULT", "VACCINATION"])
    );
    assert_eq!(created["grant"]["status"], "pending");
    assert_eq!(created["revocation"], Value::Null);
    let consent_id = id_of(&created).to_owned();
    let anchored = wait_consent_anchored(&app, &patient_token, &consent_id, "grant").await;

    let manifest = DeploymentManifest::load(&app.data_dir.join("deployment.json")).unwrap();
    let ledger = EthersLedger::connect(&test_config(&app.anvil), manifest.clone()).unwrap();
    let uuid = uuid::Uuid::parse_str(&consent_id).unwrap();
    let entry = ledger.find_consent(uuid).await.unwrap().unwrap();
    let patient_address: Address = patient["blockchain_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let doctor_address: Address = doctor["blockchain_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(entry.patient, patient_address);
    assert_eq!(entry.grantee, doctor_address);
    assert_eq!(entry.access, ChainAccess::Write);
    assert_eq!(entry.scope_hash.to_string(), created["scope_hash"]);
    assert_eq!(entry.revoked_block, None);
    assert_eq!(
        Some(entry.granted_block),
        anchored["grant"]["block_number"].as_u64()
    );

    // The stored signature is the patient's: it recovers to the patient's
    // custodial address over the contract's EIP-712 digest.
    let digest = Eip712ConsentSigner::for_manifest(&manifest).grant_digest(&GrantTerms {
        consent_id: uuid,
        patient: patient_address,
        grantee: doctor_address,
        access: ChainAccess::Write,
        scope_hash: entry.scope_hash,
        expires_at: 0,
    });
    let signature_hex = created["signature"].as_str().unwrap();
    let signature_bytes = hex::decode(signature_hex.trim_start_matches("0x")).unwrap();
    let signature = ethers::types::Signature::try_from(signature_bytes.as_slice()).unwrap();
    let signer = signature.recover(H256(digest)).unwrap();
    assert_eq!(signer.0, *patient_address.as_bytes());

    let received: Value = app
        .get("/consents", Some(&doctor_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(received[0]["id"], consent_id.as_str());

    let (status, revoked) = status_and_body(
        app.delete(&format!("/consents/{consent_id}"), Some(&patient_token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revocation"]["status"], "pending");
    let again = app
        .delete(&format!("/consents/{consent_id}"), Some(&patient_token))
        .await;
    let (status, body) = status_and_body(again).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "consent_already_revoked");

    let anchored = wait_consent_anchored(&app, &patient_token, &consent_id, "revocation").await;
    let entry = ledger.find_consent(uuid).await.unwrap().unwrap();
    assert_eq!(
        entry.revoked_block,
        anchored["revocation"]["block_number"].as_u64()
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_jobs WHERE consent_id IS NOT NULL AND status = 'done'"
        ),
        2
    );
}
