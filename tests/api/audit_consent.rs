//! The audit events of consent, break-glass, admin and session actions,
//! and of doctor access that consent allows or denies, against real
//! PostgreSQL and anvil.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use diesel::connection::SimpleConnection;
use meditrustal_adapter_postgres::PgAuditStore;
use meditrustal_audit::{Action, Actor, AuditEntry, AuditStore, Outcome, ReasonCode};
use meditrustal_identity::{Role, UserId};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::TestApp;
use uuid::Uuid;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

/// Loads the stored events of `action`, in sequence order, without the
/// time and origin, which differ on every run.
async fn entries_of(app: &TestApp, action: Action) -> Vec<AuditEntry> {
    PgAuditStore::new(app.db().pool().clone())
        .events_after(0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.entry)
        .filter(|entry| entry.action == action)
        .collect()
}

/// The fields of an event that the tests compare.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    actor: Option<Actor>,
    outcome: Outcome,
    reason: Option<String>,
    patient_id: Option<UserId>,
    record_id: Option<Uuid>,
}

fn seen(entry: &AuditEntry) -> Seen {
    Seen {
        actor: entry.actor,
        outcome: entry.outcome,
        reason: entry
            .reason
            .as_ref()
            .map(|reason| reason.as_str().to_owned()),
        patient_id: entry.patient_id,
        record_id: entry.record_id,
    }
}

fn user_id(user: &Value) -> UserId {
    UserId(Uuid::parse_str(user["id"].as_str().unwrap()).unwrap())
}

fn uuid_of(body: &Value, field: &str) -> Uuid {
    Uuid::parse_str(body[field].as_str().unwrap()).unwrap()
}

fn actor(id: UserId, role: Role) -> Option<Actor> {
    Some(Actor { user_id: id, role })
}

fn reason_with_id(prefix: &str, id: Uuid) -> Option<String> {
    Some(ReasonCode::with_id(prefix, id).unwrap().as_str().to_owned())
}

/// Registers `name` as a patient, makes them an admin in the database (the
/// API never creates admins), and returns their id and token.
async fn admin(app: &TestApp, name: &str) -> (UserId, String) {
    let (user, _) = app.patient(name).await;
    let id = user_id(&user);
    app.db()
        .connect()
        .unwrap()
        .batch_execute(&format!(
            "UPDATE users SET role = 'ADMIN' WHERE id = '{}'",
            id.0
        ))
        .unwrap();
    (id, app.login(name).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_grant_and_revoke_are_recorded() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("amara").await;
    let (doctor, _) = app.doctor("drbose").await;
    let patient_id = user_id(&patient);
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = uuid_of(&record, "id");

    let granted = app
        .post_json(
            &format!("/medical-records/{record_id}/grant-access"),
            &json!({"doctor_address": doctor["blockchain_address"]}),
            Some(&patient_token),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::OK);
    let record_consent = uuid_of(&granted.json().await.unwrap(), "consent_id");
    let created = app
        .post_json(
            "/consents",
            &json!({"doctor_id": doctor["id"], "access": "read", "record_types": ["LAB_RESULT"]}),
            Some(&patient_token),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let type_consent = uuid_of(&created.json().await.unwrap(), "id");
    let revoked = app
        .delete(&format!("/consents/{type_consent}"), Some(&patient_token))
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);

    let grants: Vec<Seen> = entries_of(&app, Action::ConsentGrant)
        .await
        .iter()
        .map(seen)
        .collect();
    let revocations: Vec<Seen> = entries_of(&app, Action::ConsentRevoke)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        grants,
        vec![
            Seen {
                actor: actor(patient_id, Role::Patient),
                outcome: Outcome::Success,
                reason: reason_with_id("consent", record_consent),
                patient_id: Some(patient_id),
                record_id: Some(record_id),
            },
            Seen {
                actor: actor(patient_id, Role::Patient),
                outcome: Outcome::Success,
                reason: reason_with_id("consent", type_consent),
                patient_id: Some(patient_id),
                record_id: None,
            },
        ]
    );
    assert_eq!(
        revocations,
        vec![Seen {
            actor: actor(patient_id, Role::Patient),
            outcome: Outcome::Success,
            reason: reason_with_id("consent", type_consent),
            patient_id: Some(patient_id),
            record_id: None,
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_read_with_consent_names_it() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("amara").await;
    let (doctor, doctor_token) = app.doctor("drbose").await;
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = uuid_of(&record, "id");
    let granted = app
        .post_json(
            &format!("/medical-records/{record_id}/grant-access"),
            &json!({"doctor_address": doctor["blockchain_address"]}),
            Some(&patient_token),
        )
        .await;
    let consent_id = uuid_of(&granted.json().await.unwrap(), "consent_id");

    let read = app
        .get(
            &format!("/medical-records/{record_id}"),
            Some(&doctor_token),
        )
        .await;
    let verify = app
        .get(
            &format!("/medical-records/{record_id}/verify"),
            Some(&doctor_token),
        )
        .await;
    let list = app
        .get(
            &format!(
                "/medical-records/patient/{}",
                patient["id"].as_str().unwrap()
            ),
            Some(&doctor_token),
        )
        .await;

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(verify.status(), StatusCode::OK);
    assert_eq!(list.status(), StatusCode::OK);
    let expected = Seen {
        actor: actor(user_id(&doctor), Role::Doctor),
        outcome: Outcome::Success,
        reason: reason_with_id("consent", consent_id),
        patient_id: Some(user_id(&patient)),
        record_id: Some(record_id),
    };
    let reads: Vec<Seen> = entries_of(&app, Action::RecordRead)
        .await
        .iter()
        .map(seen)
        .collect();
    let verifies: Vec<Seen> = entries_of(&app, Action::RecordVerify)
        .await
        .iter()
        .map(seen)
        .collect();
    let doctor_lists: Vec<Seen> = entries_of(&app, Action::RecordList)
        .await
        .iter()
        .filter(|entry| entry.actor.map(|actor| actor.role) == Some(Role::Doctor))
        .map(seen)
        .collect();
    assert_eq!(reads, vec![expected]);
    assert_eq!(
        verifies,
        vec![Seen {
            actor: actor(user_id(&doctor), Role::Doctor),
            outcome: Outcome::Success,
            reason: reason_with_id("consent", consent_id),
            patient_id: Some(user_id(&patient)),
            record_id: Some(record_id),
        }]
    );
    assert_eq!(
        doctor_lists,
        vec![Seen {
            actor: actor(user_id(&doctor), Role::Doctor),
            outcome: Outcome::Success,
            reason: reason_with_id("consent", consent_id),
            patient_id: Some(user_id(&patient)),
            record_id: None,
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_doctor_read_shows_in_patient_history() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("amara").await;
    let (doctor, doctor_token) = app.doctor("drbose").await;
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = record["id"].as_str().unwrap();
    let missing = Uuid::new_v4();

    let denied = app
        .get(
            &format!("/medical-records/{record_id}"),
            Some(&doctor_token),
        )
        .await;
    let missing_read = app
        .get(&format!("/medical-records/{missing}"), Some(&doctor_token))
        .await;

    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert_eq!(missing_read.status(), StatusCode::FORBIDDEN);
    let history: Vec<Value> = app
        .get("/audit/my-record-access-history", Some(&patient_token))
        .await
        .json()
        .await
        .unwrap();
    let newest = &history[0];
    assert_eq!(newest["action"], "record.read");
    assert_eq!(newest["outcome"], "denied");
    assert_eq!(newest["reason"], "consent_required");
    assert_eq!(newest["record_id"], record_id);
    assert_eq!(
        newest["actor"],
        json!({"id": doctor["id"], "role": "DOCTOR"})
    );
    let reads: Vec<Seen> = entries_of(&app, Action::RecordRead)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        reads,
        vec![
            Seen {
                actor: actor(user_id(&doctor), Role::Doctor),
                outcome: Outcome::Denied,
                reason: Some("consent_required".to_owned()),
                patient_id: Some(user_id(&patient)),
                record_id: Some(Uuid::parse_str(record_id).unwrap()),
            },
            Seen {
                actor: actor(user_id(&doctor), Role::Doctor),
                outcome: Outcome::NotFound,
                reason: None,
                patient_id: None,
                record_id: Some(missing),
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_access_is_flagged() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("amara").await;
    let (doctor, doctor_token) = app.doctor("drbose").await;
    let patient_id = user_id(&patient);
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = uuid_of(&record, "id");

    let opened = app
        .post_json(
            &format!("/medical-records/patient/{}/break-glass", patient_id.0),
            &json!({"reason": "unconscious in the emergency room"}),
            Some(&doctor_token),
        )
        .await;
    assert_eq!(opened.status(), StatusCode::CREATED);
    let access_id = uuid_of(&opened.json().await.unwrap(), "id");
    let read = app
        .get(
            &format!("/medical-records/{record_id}"),
            Some(&doctor_token),
        )
        .await;

    assert_eq!(read.status(), StatusCode::OK);
    let doctor_actor = actor(user_id(&doctor), Role::Doctor);
    let openings: Vec<Seen> = entries_of(&app, Action::BreakGlass)
        .await
        .iter()
        .map(seen)
        .collect();
    let reads: Vec<Seen> = entries_of(&app, Action::RecordRead)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        openings,
        vec![Seen {
            actor: doctor_actor,
            outcome: Outcome::Success,
            reason: reason_with_id("break_glass", access_id),
            patient_id: Some(patient_id),
            record_id: None,
        }]
    );
    assert_eq!(
        reads,
        vec![Seen {
            actor: doctor_actor,
            outcome: Outcome::Success,
            reason: reason_with_id("break_glass", access_id),
            patient_id: Some(patient_id),
            record_id: Some(record_id),
        }]
    );
    let history: Vec<Value> = app
        .get("/audit/my-record-access-history", Some(&patient_token))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = history
        .iter()
        .map(|event| event["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        &actions[..2],
        ["record.read", "break_glass.access"],
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deactivation_is_recorded() {
    let app = TestApp::spawn().await.unwrap();
    let (admin_id, admin_token) = admin(&app, "root").await;
    let (doctor, doctor_token) = app.doctor("drbose").await;
    let doctor_id = user_id(&doctor);

    let refused = app
        .post_empty(
            &format!("/admin/users/{}/deactivate", doctor_id.0),
            Some(&doctor_token),
        )
        .await;
    let deactivated = app
        .post_empty(
            &format!("/admin/users/{}/deactivate", doctor_id.0),
            Some(&admin_token),
        )
        .await;
    let listed = app.get("/admin/users", Some(&admin_token)).await;

    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(deactivated.status(), StatusCode::OK);
    assert_eq!(listed.status(), StatusCode::OK);
    let commands: Vec<Seen> = entries_of(&app, Action::AdminCommand)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        commands,
        vec![
            Seen {
                actor: actor(doctor_id, Role::Doctor),
                outcome: Outcome::Denied,
                reason: Some("deactivate_user".to_owned()),
                patient_id: Some(doctor_id),
                record_id: None,
            },
            Seen {
                actor: actor(admin_id, Role::Admin),
                outcome: Outcome::Success,
                reason: Some("deactivate_user".to_owned()),
                patient_id: Some(doctor_id),
                record_id: None,
            },
            Seen {
                actor: actor(admin_id, Role::Admin),
                outcome: Outcome::Success,
                reason: Some("list_users".to_owned()),
                patient_id: None,
                record_id: None,
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_actions_are_recorded() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, first_token) = app.patient("amara").await;
    let patient_id = user_id(&patient);

    let logout = app.post_empty("/auth/logout", Some(&first_token)).await;
    let token = app.login("amara").await;
    let wrong_current = app
        .post_json(
            "/auth/password",
            &json!({"current_password": "not my password", "new_password": "a brand new passphrase"}),
            Some(&token),
        )
        .await;
    let changed = app
        .post_json(
            "/auth/password",
            &json!({"current_password": meditrustal_tests::PASSWORD, "new_password": "a brand new passphrase"}),
            Some(&token),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let new_token = changed.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout_all = app.post_empty("/auth/logout-all", Some(&new_token)).await;

    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(wrong_current.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(logout_all.status(), StatusCode::NO_CONTENT);
    let patient_actor = actor(patient_id, Role::Patient);
    let logouts: Vec<Seen> = entries_of(&app, Action::Logout)
        .await
        .iter()
        .map(seen)
        .collect();
    let changes: Vec<Seen> = entries_of(&app, Action::PasswordChange)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        logouts,
        vec![
            Seen {
                actor: patient_actor,
                outcome: Outcome::Success,
                reason: Some("current_session".to_owned()),
                patient_id: None,
                record_id: None,
            },
            Seen {
                actor: patient_actor,
                outcome: Outcome::Success,
                reason: Some("all_sessions".to_owned()),
                patient_id: None,
                record_id: None,
            },
        ]
    );
    assert_eq!(
        changes,
        vec![
            Seen {
                actor: patient_actor,
                outcome: Outcome::Denied,
                reason: Some("invalid_credentials".to_owned()),
                patient_id: None,
                record_id: None,
            },
            Seen {
                actor: patient_actor,
                outcome: Outcome::Success,
                reason: None,
                patient_id: None,
                record_id: None,
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_reuse_is_recorded() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, _) = app.patient("amara").await;
    let (status, pair) = app.login_with("amara", meditrustal_tests::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let refresh = json!({"refresh_token": pair["refresh_token"]});

    let first = app.post_json("/auth/refresh", &refresh, None).await;
    let reused = app.post_json("/auth/refresh", &refresh, None).await;
    let unknown = app
        .post_json(
            "/auth/refresh",
            &json!({"refresh_token": "mtr_rt_unknown"}),
            None,
        )
        .await;

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let rejections: Vec<Seen> = entries_of(&app, Action::TokenRejected)
        .await
        .iter()
        .map(seen)
        .collect();
    assert_eq!(
        rejections,
        vec![Seen {
            actor: actor(user_id(&patient), Role::Patient),
            outcome: Outcome::Denied,
            reason: Some("refresh_token_reused".to_owned()),
            patient_id: None,
            record_id: None,
        }]
    );
}
