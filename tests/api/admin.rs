//! Administration over HTTP and the operator's commands: admins are made
//! only by `meditrustal admin create|promote`, list users, and deactivate
//! them with effect on the next request.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

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

async fn create_admin(app: &TestApp, username: &str) -> (Value, String) {
    let admin = NewAdmin {
        username: username.into(),
        email: format!("{username}@example.org"),
        full_name: Some("Operator Made".into()),
        password: SecretString::from(PASSWORD),
    };
    let user = operator::create_admin(&app.settings, app.keys(), admin)
        .await
        .unwrap();
    let token = app.login(username).await;
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], user.id.to_string());
    (me, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_command_makes_an_admin() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, _) = app.patient("olga").await;
    let (doctor, _) = app.doctor("drquinn").await;

    let (admin, token) = create_admin(&app, "ops").await;

    assert_eq!(admin["role"], "ADMIN");
    assert_eq!(admin["full_name"], "Operator Made");
    let (status, users) = status_and_body(app.get("/admin/users", Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Value> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|user| &user["id"])
        .collect();
    assert_eq!(ids, vec![&patient["id"], &doctor["id"], &admin["id"]]);
    let (_, first) = status_and_body(app.get("/admin/users?limit=2", Some(&token)).await).await;
    let (_, rest) =
        status_and_body(app.get("/admin/users?limit=2&offset=2", Some(&token)).await).await;
    // Compare ids: updated_at moves when the chain registration completes.
    let page_ids = |page: &Value| -> Vec<Value> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|user| user["id"].clone())
            .collect()
    };
    assert_eq!(
        page_ids(&first),
        vec![users[0]["id"].clone(), users[1]["id"].clone()]
    );
    assert_eq!(page_ids(&rest), vec![users[2]["id"].clone()]);
    let (status, problem) =
        status_and_body(app.get("/admin/users?limit=0", Some(&token)).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "limit");

    let duplicate = operator::create_admin(
        &app.settings,
        app.keys(),
        NewAdmin {
            username: "OPS".into(),
            email: "other@example.org".into(),
            full_name: None,
            password: SecretString::from(PASSWORD),
        },
    )
    .await;
    assert!(duplicate.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_blocks_the_next_request() {
    let app = TestApp::spawn().await.unwrap();
    let (doctor, doctor_token) = app.doctor("drrossi").await;
    let (_, admin) = create_admin(&app, "ops").await;
    let doctor_id = doctor["id"].as_str().unwrap();

    let before = app.get("/users/me", Some(&doctor_token)).await;
    assert_eq!(before.status(), StatusCode::OK);

    let (status, action) = status_and_body(
        app.post_json(
            &format!("/admin/users/{doctor_id}/deactivate"),
            &json!({}),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{action}");
    assert_eq!(action["action"], "deactivate");
    assert_eq!(action["user"]["id"], doctor_id);
    assert_eq!(action["user"]["is_active"], false);

    let (status, problem) = status_and_body(app.get("/users/me", Some(&doctor_token)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "invalid_token");
    let login = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "drrossi", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);

    let (status, action) = status_and_body(
        app.post_json(
            &format!("/admin/users/{doctor_id}/reactivate"),
            &json!({}),
            Some(&admin),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(action["user"]["is_active"], true);
    // Deactivation ended every session: reactivating must not hand a
    // stolen token back to its holder.
    let after = app.get("/users/me", Some(&doctor_token)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.login("drrossi").await;
    let me = app.get("/users/me", Some(&fresh)).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_cannot_administer() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("pia").await;
    let (_, doctor_token) = app.doctor("drsato").await;
    let (admin, admin_token) = create_admin(&app, "ops").await;
    let patient_id = patient["id"].as_str().unwrap();

    for token in [&patient_token, &doctor_token] {
        let list = app.get("/admin/users", Some(token)).await;
        assert_eq!(list.status(), StatusCode::FORBIDDEN);
        let deactivate = app
            .post_json(
                &format!("/admin/users/{patient_id}/deactivate"),
                &json!({}),
                Some(token),
            )
            .await;
        assert_eq!(deactivate.status(), StatusCode::FORBIDDEN);
    }
    let me = app.get("/users/me", Some(&patient_token)).await;
    assert_eq!(me.status(), StatusCode::OK);

    let (status, problem) = status_and_body(
        app.post_json(
            &format!("/admin/users/{}/deactivate", admin["id"].as_str().unwrap()),
            &json!({}),
            Some(&admin_token),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "cannot_deactivate_self");
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let (status, problem) = status_and_body(
            app.post_json(
                &format!("/admin/users/{id}/deactivate"),
                &json!({}),
                Some(&admin_token),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(problem["code"], "user_not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_do_not_read_record_content() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("quin").await;
    let (_, admin) = create_admin(&app, "ops").await;
    let record = app
        .create_record(&patient_token, "DIAGNOSIS", GLUCOSE)
        .await;

    let read = app
        .get(
            &format!("/medical-records/{}", record["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    let list = app
        .get(
            &format!(
                "/medical-records/patient/{}",
                patient["id"].as_str().unwrap()
            ),
            Some(&admin),
        )
        .await;
    let consents = app.get("/consents", Some(&admin)).await;

    assert_eq!(read.status(), StatusCode::NOT_FOUND);
    assert_eq!(list.status(), StatusCode::FORBIDDEN);
    assert_eq!(consents.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_command_takes_effect_on_next_request() {
    let app = TestApp::spawn().await.unwrap();
    let (user, token) = app.doctor("drtan").await;

    let before = app.get("/admin/users", Some(&token)).await;
    assert_eq!(before.status(), StatusCode::FORBIDDEN);
    let promoted = operator::promote(&app.settings, "DrTan").await.unwrap();
    let missing = operator::promote(&app.settings, "nobody").await;

    assert_eq!(promoted.id.to_string(), user["id"].as_str().unwrap());
    let after = app.get("/admin/users", Some(&token)).await;
    assert_eq!(after.status(), StatusCode::OK);
    assert!(missing.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_cannot_make_an_admin() {
    let app = TestApp::spawn().await.unwrap();

    let (status, problem) = status_and_body(
        app.post_json(
            "/auth/register",
            &json!({"username": "sneaky", "email": "sneaky@example.org", "password": PASSWORD, "role": "ADMIN"}),
            None,
        )
        .await,
    )
    .await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "role");
}
