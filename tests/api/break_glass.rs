//! Break-glass access over HTTP: a doctor opens a patient's records
//! without consent for a configured time, and the patient and admins see
//! the event.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use meditrustal::operator::{self, NewAdmin};
use meditrustal_tests::reqwest::{Response, StatusCode};
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};
use secrecy::SecretString;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

async fn status_and_body(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

async fn admin_token(app: &TestApp) -> String {
    let admin = NewAdmin {
        username: "root-admin".into(),
        email: "root-admin@example.org".into(),
        full_name: None,
        password: SecretString::from(PASSWORD),
    };
    operator::create_admin(&app.settings, app.keys(), admin)
        .await
        .unwrap();
    app.login("root-admin").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_opens_records_then_expires() {
    let app = TestApp::spawn_with(|settings| settings.consent.break_glass_secs = 3)
        .await
        .unwrap();
    let (patient, patient_token) = app.patient("kofi").await;
    let (doctor, doctor_token) = app.doctor("drlund").await;
    let record = app
        .create_record(&patient_token, "VITAL_SIGNS", GLUCOSE)
        .await;
    let patient_id = patient["id"].as_str().unwrap();
    let read_path = format!("/medical-records/{}", record["id"].as_str().unwrap());
    let open_path = format!("/medical-records/patient/{patient_id}/break-glass");

    let before = app.get(&read_path, Some(&doctor_token)).await;
    assert_eq!(before.status(), StatusCode::FORBIDDEN);
    let (status, problem) = status_and_body(
        app.post_json(&open_path, &json!({"reason": "  "}), Some(&doctor_token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "reason");

    let reason = "unconscious in the emergency department, allergies unknown";
    let (status, event) = status_and_body(
        app.post_json(&open_path, &json!({"reason": reason}), Some(&doctor_token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{event}");
    assert_eq!(event["doctor_id"], doctor["id"]);
    assert_eq!(event["patient_id"], patient_id);
    assert_eq!(event["reason"], reason);
    assert_eq!(event["active"], true);
    assert_eq!(
        time(&event["expires_at"]) - time(&event["created_at"]),
        chrono::TimeDelta::seconds(3)
    );

    let (status, read) = status_and_body(app.get(&read_path, Some(&doctor_token)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["raw_data"], GLUCOSE);
    let listed: Value = app
        .get(
            &format!("/medical-records/patient/{patient_id}"),
            Some(&doctor_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Break-glass is for reading; it never lets the doctor write.
    let create = app
        .post_json(
            "/medical-records",
            &json!({"record_type": "VITAL_SIGNS", "raw_data": GLUCOSE, "patient_id": patient_id}),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(create.status(), StatusCode::FORBIDDEN);

    let on_me: Value = app
        .get("/break-glass", Some(&patient_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(on_me.as_array().unwrap().len(), 1);
    assert_eq!(on_me[0]["id"], event["id"]);
    assert_eq!(on_me[0]["reason"], reason);
    assert_eq!(on_me[0]["doctor_id"], doctor["id"]);

    let wait = (time(&event["expires_at"]) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;

    let after = app.get(&read_path, Some(&doctor_token)).await;
    assert_eq!(after.status(), StatusCode::FORBIDDEN);
    let on_me: Value = app
        .get("/break-glass", Some(&patient_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(on_me[0]["active"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_review_every_break_glass_event() {
    let app = TestApp::spawn().await.unwrap();
    let (patient_a, token_a) = app.patient("lior").await;
    let (patient_b, _) = app.patient("mina").await;
    let (_, doctor_token) = app.doctor("drnoor").await;
    let (_, other_doctor_token) = app.doctor("drowen").await;
    let admin = admin_token(&app).await;
    for (patient, token) in [
        (&patient_a, &doctor_token),
        (&patient_b, &other_doctor_token),
    ] {
        let response = app
            .post_json(
                &format!(
                    "/medical-records/patient/{}/break-glass",
                    patient["id"].as_str().unwrap()
                ),
                &json!({"reason": "cardiac arrest on arrival"}),
                Some(token),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let (status, all) = status_and_body(app.get("/admin/break-glass", Some(&admin)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["patient_id"], patient_b["id"]);
    assert_eq!(all[1]["patient_id"], patient_a["id"]);
    let (_, first_page) =
        status_and_body(app.get("/admin/break-glass?limit=1", Some(&admin)).await).await;
    let (_, second_page) = status_and_body(
        app.get("/admin/break-glass?limit=1&offset=1", Some(&admin))
            .await,
    )
    .await;
    assert_eq!(first_page, json!([all[0]]));
    assert_eq!(second_page, json!([all[1]]));

    let on_a: Value = app
        .get("/break-glass", Some(&token_a))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(on_a.as_array().unwrap().len(), 1);
    assert_eq!(on_a[0]["patient_id"], patient_a["id"]);
    let mine: Value = app
        .get("/break-glass", Some(&doctor_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);

    for token in [&token_a, &doctor_token] {
        let (status, problem) =
            status_and_body(app.get("/admin/break-glass", Some(token)).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(problem["code"], "forbidden");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_doctors_open_break_glass_for_existing_patients() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("nia").await;
    let (doctor, doctor_token) = app.doctor("drpatel").await;
    let reason = json!({"reason": "stroke alert"});

    let by_patient = app
        .post_json(
            &format!(
                "/medical-records/patient/{}/break-glass",
                patient["id"].as_str().unwrap()
            ),
            &reason,
            Some(&patient_token),
        )
        .await;
    assert_eq!(by_patient.status(), StatusCode::FORBIDDEN);

    for target in [
        doctor["id"].as_str().unwrap().to_owned(),
        uuid::Uuid::new_v4().to_string(),
    ] {
        let (status, problem) = status_and_body(
            app.post_json(
                &format!("/medical-records/patient/{target}/break-glass"),
                &reason,
                Some(&doctor_token),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["code"], "patient_not_found");
    }
    let listed: Value = app
        .get("/break-glass", Some(&patient_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_events_cannot_be_changed() {
    use diesel::RunQueryDsl;
    let app = TestApp::spawn().await.unwrap();
    let (patient, _) = app.patient("nora").await;
    let (_, doctor_token) = app.doctor("drokafor").await;
    let open_path = format!(
        "/medical-records/patient/{}/break-glass",
        patient["id"].as_str().unwrap()
    );
    let opened = app
        .post_json(
            &open_path,
            &json!({"reason": "cardiac arrest"}),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(opened.status(), StatusCode::CREATED);
    let mut connection = app.db().connect().unwrap();

    for (statement, operation) in [
        (
            "UPDATE break_glass_events SET expires_at = expires_at + interval '1 day'",
            "UPDATE",
        ),
        ("DELETE FROM break_glass_events", "DELETE"),
        ("TRUNCATE break_glass_events", "TRUNCATE"),
    ] {
        let error = diesel::sql_query(statement)
            .execute(&mut connection)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("break_glass_events is append-only: {operation} is not allowed"),
            "{statement}"
        );
    }
}
