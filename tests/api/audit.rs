//! The audit log over HTTP and `audit verify`: which events each action
//! writes, the access history and admin search, the append-only rules, and
//! tamper detection, against real PostgreSQL and anvil.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use meditrustal::audit::verify_chain;
use meditrustal_adapter_postgres::{
    PgAuditStore, TestDatabase, DEFAULT_SERVER_URL, SERVER_URL_ENV,
};
use meditrustal_audit::{
    chain_after, Action, Actor, AuditEntry, AuditEvent, AuditStore, ChainBreak, Outcome, ReasonCode,
};
use meditrustal_identity::{Role, UserId};
use meditrustal_tests::reqwest::{Response, StatusCode};
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};
use secrecy::SecretString;
use uuid::Uuid;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

/// Loads every stored event, in sequence order.
async fn stored_events(app: &TestApp) -> Vec<AuditEvent> {
    PgAuditStore::new(app.db().pool().clone())
        .events_after(0, 1_000_000)
        .await
        .unwrap()
}

/// Runs `sql` as the superuser with the audit triggers disabled, as an
/// attacker with database superuser rights could.
fn tamper(app: &TestApp, sql: &str) {
    app.db()
        .connect()
        .unwrap()
        .batch_execute(&format!(
            "ALTER TABLE audit_events DISABLE TRIGGER USER; {sql}; \
             ALTER TABLE audit_events ENABLE TRIGGER USER;"
        ))
        .unwrap();
}

fn user_id(user: &Value) -> UserId {
    UserId(Uuid::parse_str(user["id"].as_str().unwrap()).unwrap())
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

async fn get_with_request_id(app: &TestApp, path: &str, token: &str, request_id: &str) -> Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap()
}

/// Follows `Link: rel="next"` from `path` and returns every page.
async fn all_pages(app: &TestApp, path: &str, token: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut next = Some(app.url(path));
    while let Some(url) = next.take() {
        let response = app
            .client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        next = response.headers().get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            format!("{}{}", app.base_url, &link[1..link.find('>').unwrap()])
        });
        pages.push(response.json::<Vec<Value>>().await.unwrap());
    }
    pages
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_recorded_with_account_and_origin() {
    let app = TestApp::spawn().await.unwrap();
    let alice = app.register("alice", "alice@example.org", "PATIENT").await;
    let attempts = [
        ("login-ok", "alice", PASSWORD, StatusCode::OK),
        (
            "login-wrong",
            "alice",
            "wrong password",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "login-unknown",
            "nobody",
            PASSWORD,
            StatusCode::UNAUTHORIZED,
        ),
    ];

    for (request_id, name, password, status) in attempts {
        let response = app
            .client
            .post(app.url("/auth/login/json"))
            .header("x-request-id", request_id)
            .json(&json!({"username_or_email": name, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{request_id}");
    }

    let events = stored_events(&app).await;
    assert_eq!(events.len(), 4);
    let alice = Actor {
        user_id: user_id(&alice),
        role: Role::Patient,
    };
    let register = &events[0].entry;
    assert_eq!(register.action, Action::Register);
    assert_eq!(register.outcome, Outcome::Success);
    assert_eq!(register.actor, Some(alice));
    let expected = [
        (Some(alice), Outcome::Success, None, "login-ok"),
        (
            Some(alice),
            Outcome::Denied,
            Some(ReasonCode::INVALID_CREDENTIALS),
            "login-wrong",
        ),
        (
            None,
            Outcome::Denied,
            Some(ReasonCode::INVALID_CREDENTIALS),
            "login-unknown",
        ),
    ];
    for (event, (actor, outcome, reason, request_id)) in events[1..].iter().zip(expected) {
        let entry = &event.entry;
        assert_eq!(entry.action, Action::Login, "{request_id}");
        assert_eq!(entry.actor, actor, "{request_id}");
        assert_eq!(entry.outcome, outcome, "{request_id}");
        assert_eq!(entry.reason, reason, "{request_id}");
        assert_eq!(entry.patient_id, None, "{request_id}");
        assert_eq!(entry.record_id, None, "{request_id}");
        assert_eq!(
            entry.request_id.as_ref().map(|id| id.as_str()),
            Some(request_id)
        );
        assert_eq!(entry.client_ip, Some("127.0.0.1".parse().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_is_recorded_without_actor() {
    let app = TestApp::spawn().await.unwrap();
    let before = stored_events(&app).await.len();

    let forged = app.get("/users/me", Some("v4.public.forged")).await;
    let missing = app.get("/users/me", None).await;

    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let request_id = forged.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let events = stored_events(&app).await;
    assert_eq!(
        events.len(),
        before + 1,
        "a request without a token is not audited"
    );
    let entry = &events[before].entry;
    assert_eq!(entry.action, Action::TokenRejected);
    assert_eq!(entry.outcome, Outcome::Denied);
    assert_eq!(entry.reason, Some(ReasonCode::INVALID_TOKEN));
    assert_eq!(entry.actor, None);
    assert_eq!(entry.request_id.as_ref().unwrap().as_str(), request_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_create_list_read_verify_are_recorded() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, token) = app.patient("carol").await;
    let patient = user_id(&patient);
    let before = stored_events(&app).await.len();

    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let id = created["id"].as_str().unwrap();
    let record_id = Uuid::parse_str(id).unwrap();
    let list = app.get("/medical-records/patient/me", Some(&token)).await;
    let read = get_with_request_id(&app, &format!("/medical-records/{id}"), &token, "read-1").await;
    let verify = app
        .get(&format!("/medical-records/{id}/verify"), Some(&token))
        .await;

    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(verify.status(), StatusCode::OK);
    let events = stored_events(&app).await;
    let recorded: Vec<&AuditEntry> = events[before..].iter().map(|event| &event.entry).collect();
    let actions: Vec<Action> = recorded.iter().map(|entry| entry.action).collect();
    assert_eq!(
        actions,
        vec![
            Action::RecordCreate,
            Action::RecordList,
            Action::RecordRead,
            Action::RecordVerify
        ]
    );
    for entry in &recorded {
        assert_eq!(entry.outcome, Outcome::Success, "{:?}", entry.action);
        assert_eq!(entry.patient_id, Some(patient), "{:?}", entry.action);
        assert_eq!(entry.reason, Some(ReasonCode::OWNER), "{:?}", entry.action);
        assert_eq!(
            entry.actor,
            Some(Actor {
                user_id: patient,
                role: Role::Patient
            })
        );
    }
    assert_eq!(recorded[0].record_id, Some(record_id));
    assert_eq!(recorded[1].record_id, None);
    assert_eq!(recorded[2].record_id, Some(record_id));
    assert_eq!(recorded[2].request_id.as_ref().unwrap().as_str(), "read-1");
    assert_eq!(recorded[3].record_id, Some(record_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_reads_show_in_owner_history() {
    let app = TestApp::spawn().await.unwrap();
    let (owner, owner_token) = app.patient("dana").await;
    let (intruder, intruder_token) = app.patient("eric").await;
    let record = app.create_record(&owner_token, "DIAGNOSIS", GLUCOSE).await;
    let id = record["id"].as_str().unwrap();
    let missing = Uuid::new_v4();

    let foreign_read = app
        .get(&format!("/medical-records/{id}"), Some(&intruder_token))
        .await;
    let foreign_verify = app
        .get(
            &format!("/medical-records/{id}/verify"),
            Some(&intruder_token),
        )
        .await;
    let missing_read = app
        .get(
            &format!("/medical-records/{missing}"),
            Some(&intruder_token),
        )
        .await;
    let foreign_list = app
        .get(
            &format!("/medical-records/patient/{}", owner["id"].as_str().unwrap()),
            Some(&intruder_token),
        )
        .await;

    assert_eq!(foreign_read.status(), StatusCode::NOT_FOUND);
    assert_eq!(foreign_verify.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing_read.status(), StatusCode::NOT_FOUND);
    assert_eq!(foreign_list.status(), StatusCode::FORBIDDEN);
    let history: Vec<Value> = app
        .get("/audit/my-record-access-history", Some(&owner_token))
        .await
        .json()
        .await
        .unwrap();
    let intruder_actor = json!({"id": intruder["id"], "role": "PATIENT"});
    let owner_actor = json!({"id": owner["id"], "role": "PATIENT"});
    let summary: Vec<(Value, Value, Value, Value)> = history
        .iter()
        .map(|event| {
            (
                event["action"].clone(),
                event["outcome"].clone(),
                event["reason"].clone(),
                event["actor"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                json!("record.list"),
                json!("denied"),
                json!("not_owner"),
                intruder_actor.clone()
            ),
            (
                json!("record.verify"),
                json!("denied"),
                json!("not_owner"),
                intruder_actor.clone()
            ),
            (
                json!("record.read"),
                json!("denied"),
                json!("not_owner"),
                intruder_actor
            ),
            (
                json!("record.create"),
                json!("success"),
                json!("owner"),
                owner_actor
            ),
        ]
    );
    assert_eq!(history[2]["record_id"], record["id"]);
    let fields: HashSet<&str> = history[2]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        HashSet::from([
            "seq",
            "occurred_at",
            "actor",
            "action",
            "outcome",
            "reason",
            "record_id"
        ])
    );
    let intruder_history: Vec<Value> = app
        .get("/audit/my-record-access-history", Some(&intruder_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(intruder_history, Vec::<Value>::new());
    let not_found = stored_events(&app)
        .await
        .into_iter()
        .find(|event| event.entry.record_id == Some(missing))
        .unwrap();
    assert_eq!(not_found.entry.outcome, Outcome::NotFound);
    assert_eq!(not_found.entry.patient_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_ten_thousand_events() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, token) = app.patient("fiona").await;
    let patient = user_id(&patient);
    let other = UserId(Uuid::new_v4());
    let reader = Actor {
        user_id: UserId(Uuid::new_v4()),
        role: Role::Doctor,
    };
    let start = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    let entries: Vec<AuditEntry> = (0..10_500)
        .map(|i| {
            let target = if i % 21 == 20 { other } else { patient };
            AuditEntry::new(
                Action::RecordRead,
                Outcome::Success,
                start + chrono::Duration::milliseconds(i),
            )
            .by(reader)
            .patient(target)
            .record(Uuid::from_u128(i as u128))
        })
        .collect();
    let appended = PgAuditStore::new(app.db().pool().clone())
        .append(&entries)
        .await
        .unwrap();
    let mut expected: Vec<u64> = appended
        .iter()
        .filter(|event| event.entry.patient_id == Some(patient))
        .map(|event| event.seq)
        .collect();
    expected.reverse();

    let pages = all_pages(&app, "/audit/my-record-access-history?limit=200", &token).await;

    assert_eq!(expected.len(), 10_000);
    assert_eq!(pages.len(), 50);
    assert!(pages.iter().all(|page| page.len() == 200));
    let seen: Vec<u64> = pages.iter().flat_map(|page| seqs(page)).collect();
    assert_eq!(seen.len(), 10_000);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        10_000,
        "duplicates"
    );
    assert_eq!(seen, expected);
    // Entry 10 499 belongs to the other patient, so 10 498 is the newest.
    assert_eq!(
        pages[0][0]["record_id"],
        Uuid::from_u128(10_498).to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_search_filters_pages_and_is_audited() {
    let app = TestApp::spawn().await.unwrap();
    let (patient, patient_token) = app.patient("gina").await;
    let patient_id = user_id(&patient);
    let record = app
        .create_record(&patient_token, "LAB_RESULT", GLUCOSE)
        .await;
    let record_id = record["id"].as_str().unwrap();
    app.get(
        &format!("/medical-records/{record_id}"),
        Some(&patient_token),
    )
    .await;
    let (admin_id, admin_token) = admin(&app, "hank").await;
    let events = stored_events(&app).await;
    let from = events[1].entry.occurred_at;
    let search = |query: &str| format!("/admin/audit-events?{query}");
    let get_seqs = |query: String| {
        let app = &app;
        let token = admin_token.clone();
        async move {
            let response = app.get(&query, Some(&token)).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            seqs(&response.json::<Vec<Value>>().await.unwrap())
        }
    };
    let matching = |keep: &dyn Fn(&AuditEntry) -> bool| -> Vec<u64> {
        events
            .iter()
            .rev()
            .filter(|event| keep(&event.entry))
            .map(|event| event.seq)
            .collect()
    };

    let by_patient = get_seqs(search(&format!("patient={}", patient_id.0))).await;
    let by_record = get_seqs(search(&format!("record={record_id}"))).await;
    let by_actor_action = get_seqs(search(&format!(
        "actor={}&action=record.read",
        patient_id.0
    )))
    .await;
    let by_outcome = get_seqs(search("outcome=success&action=auth.login")).await;
    let by_time = get_seqs(search(&format!(
        "from={}&to={}",
        from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        events[3]
            .entry
            .occurred_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )))
    .await;

    assert_eq!(
        by_patient,
        matching(&|entry| entry.patient_id == Some(patient_id))
    );
    assert_eq!(by_patient.len(), 2);
    assert_eq!(
        by_record,
        matching(&|entry| entry.record_id.map(|id| id.to_string()) == Some(record_id.to_owned()))
    );
    assert_eq!(
        by_actor_action,
        matching(&|entry| {
            entry.action == Action::RecordRead
                && entry.actor.map(|actor| actor.user_id) == Some(patient_id)
        })
    );
    assert_eq!(by_actor_action.len(), 1);
    assert_eq!(
        by_outcome,
        matching(&|entry| entry.action == Action::Login && entry.outcome == Outcome::Success)
    );
    assert_eq!(by_time, vec![3, 2]);

    let pages = all_pages(
        &app,
        "/admin/audit-events?limit=2&action=auth.login",
        &admin_token,
    )
    .await;
    let paged: Vec<u64> = pages.iter().flat_map(|page| seqs(page)).collect();
    assert_eq!(paged, matching(&|entry| entry.action == Action::Login));
    assert_eq!(pages.len(), 2);

    let denied = app.get("/admin/audit-events", Some(&patient_token)).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let recorded = stored_events(&app).await;
    let searches: Vec<&AuditEntry> = recorded
        .iter()
        .map(|event| &event.entry)
        .filter(|entry| entry.action == Action::AuditSearch)
        .collect();
    assert_eq!(searches.len(), 8);
    assert_eq!(searches[0].actor.unwrap().user_id, admin_id);
    assert_eq!(searches[0].actor.unwrap().role, Role::Admin);
    assert_eq!(searches[0].patient_id, Some(patient_id));
    assert_eq!(searches[7].outcome, Outcome::Denied);
    assert_eq!(searches[7].reason, Some(ReasonCode::NOT_ADMIN));
    assert_eq!(searches[7].actor.unwrap().user_id, patient_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_search_rejects_invalid_filters() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = admin(&app, "ivy").await;

    let cases = [
        ("action=record.delete", "action"),
        ("outcome=ok", "outcome"),
        ("actor=not-a-uuid", "actor"),
        ("from=yesterday", "from"),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
    ];
    for (query, field) in cases {
        let response = app
            .get(&format!("/admin/audit-events?{query}"), Some(&token))
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["field"], field, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_audit_write_withholds_record_content() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("jack").await;
    let record = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let path = format!("/medical-records/{}", record["id"].as_str().unwrap());
    let mut conn = app.db().connect().unwrap();
    conn.batch_execute(
        "CREATE FUNCTION fail_audit_insert() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'audit store is failing'; END; $$; \
         CREATE TRIGGER fail_audit_insert BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION fail_audit_insert();",
    )
    .unwrap();
    let before = stored_events(&app).await.len();

    let read = app.get(&path, Some(&token)).await;
    let login = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "jack", "password": PASSWORD}),
            None,
        )
        .await;

    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(read.headers()["retry-after"], "5");
    let text = read.text().await.unwrap();
    assert!(text.contains("\"code\":\"audit_unavailable\""), "{text}");
    assert!(!text.contains("Glucose"), "content leaked: {text}");
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    let login_text = login.text().await.unwrap();
    assert!(!login_text.contains("access_token"), "{login_text}");
    assert_eq!(stored_events(&app).await.len(), before);

    conn.batch_execute("DROP TRIGGER fail_audit_insert ON audit_events")
        .unwrap();
    let recovered = app.get(&path, Some(&token)).await;
    assert_eq!(recovered.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_from_trusted_proxy() {
    let direct = TestApp::spawn().await.unwrap();
    let proxied = TestApp::spawn_with(|settings| {
        settings.server.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
    .unwrap();

    for app in [&direct, &proxied] {
        app.register("kim", "kim@example.org", "PATIENT").await;
        let response = app
            .client
            .post(app.url("/auth/login/json"))
            .header("x-forwarded-for", "192.0.2.1, 203.0.113.9")
            .json(&json!({"username_or_email": "kim", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let direct_login = stored_events(&direct).await.pop().unwrap();
    let proxied_login = stored_events(&proxied).await.pop().unwrap();
    assert_eq!(
        direct_login.entry.client_ip,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        proxied_login.entry.client_ip,
        Some("203.0.113.9".parse().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_keep_one_chain() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("lara").await;
    let record = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let path = format!("/medical-records/{}", record["id"].as_str().unwrap());
    let before = stored_events(&app).await.len();

    let responses = futures::future::join_all((0..40).map(|_| app.get(&path, Some(&token)))).await;

    assert!(responses
        .iter()
        .all(|response| response.status() == StatusCode::OK));
    let events = stored_events(&app).await;
    assert_eq!(events.len(), before + 40);
    assert_eq!(
        events.iter().map(|event| event.seq).collect::<Vec<_>>(),
        (1..=events.len() as u64).collect::<Vec<_>>()
    );
    let report = verify_chain(&app.settings).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.events_checked, events.len() as u64);
}

/// Starts an app that anchors the audit head every 100 ms, writes a few
/// events, and waits until a head is anchored. Returns the app and the
/// lowest anchored sequence number.
async fn app_with_anchored_head() -> (TestApp, u64) {
    let app = TestApp::spawn_with(|settings| settings.audit.anchor_interval_ms = 100)
        .await
        .unwrap();
    let (_, token) = app.patient("mila").await;
    let record = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    app.get(
        &format!("/medical-records/{}", record["id"].as_str().unwrap()),
        Some(&token),
    )
    .await;

    #[derive(QueryableByName)]
    struct Lowest {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        seq: Option<i64>,
    }
    for _ in 0..300 {
        let lowest: Lowest = diesel::sql_query(
            "SELECT min(seq) AS seq FROM audit_anchors WHERE status = 'anchored'",
        )
        .get_result(&mut app.db().connect().unwrap())
        .unwrap();
        if let Some(seq) = lowest.seq {
            return (app, u64::try_from(seq).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no audit head was anchored within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_intact_chain_with_anchor() {
    let (app, anchored) = app_with_anchored_head().await;

    let report = verify_chain(&app.settings).await.unwrap();

    assert_eq!(report.first_break, None);
    assert_eq!(
        report.events_checked,
        stored_events(&app).await.len() as u64
    );
    assert!(report.anchors >= 1);
    assert!(report.latest_anchor.unwrap().seq >= anchored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_deleted_edited_and_reordered_events() {
    let app = TestApp::spawn().await.unwrap();
    for name in ["nora", "omar"] {
        app.patient(name).await;
    }
    assert_eq!(stored_events(&app).await.len(), 4);

    let cases = [
        (
            "UPDATE audit_events SET outcome = 'denied' WHERE seq = 2",
            "UPDATE audit_events SET outcome = 'success' WHERE seq = 2",
            ChainBreak::FieldsChanged { seq: 2 },
        ),
        (
            "UPDATE audit_events SET seq = 1000 WHERE seq = 2; \
             UPDATE audit_events SET seq = 2 WHERE seq = 3; \
             UPDATE audit_events SET seq = 3 WHERE seq = 1000",
            "UPDATE audit_events SET seq = 1000 WHERE seq = 2; \
             UPDATE audit_events SET seq = 2 WHERE seq = 3; \
             UPDATE audit_events SET seq = 3 WHERE seq = 1000",
            ChainBreak::Reordered {
                seq: 2,
                written_as: 3,
            },
        ),
        (
            "CREATE TABLE saved AS SELECT * FROM audit_events WHERE seq = 3; \
             DELETE FROM audit_events WHERE seq = 3",
            "INSERT INTO audit_events SELECT * FROM saved; DROP TABLE saved",
            ChainBreak::Missing { first: 3, last: 3 },
        ),
    ];
    for (change, undo, expected) in cases {
        tamper(&app, change);
        let report = verify_chain(&app.settings).await.unwrap();
        tamper(&app, undo);

        assert_eq!(report.first_break, Some(expected.clone()), "{change}");
        assert_eq!(report.events_checked, expected.seq() - 1, "{change}");
        let intact = verify_chain(&app.settings).await.unwrap();
        assert_eq!(intact.first_break, None, "after undoing {change}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_rewritten_chain_at_its_anchor() {
    let (app, anchored) = app_with_anchored_head().await;
    let events = stored_events(&app).await;
    // Rewrite the chain from event 2 with valid hashes and links, as an
    // attacker with superuser rights and this source code could.
    let mut rewritten: Vec<AuditEvent> = vec![events[0].clone()];
    for event in &events[1..] {
        let mut entry = event.entry.clone();
        if event.seq == 2 {
            entry.outcome = Outcome::Denied;
        }
        let head = rewritten.last().map(AuditEvent::head);
        rewritten.push(chain_after(head.as_ref(), entry));
    }
    let statements: Vec<String> = rewritten[1..]
        .iter()
        .map(|event| {
            format!(
                "UPDATE audit_events SET outcome = '{}', prev_hash = '\\x{}', hash = '\\x{}' \
                 WHERE seq = {}",
                event.entry.outcome.as_str(),
                &event.prev_hash.to_string()[2..],
                &event.hash.to_string()[2..],
                event.seq
            )
        })
        .collect();

    tamper(&app, &statements.join("; "));
    let report = verify_chain(&app.settings).await.unwrap();

    let Some(ChainBreak::AnchorMismatch {
        seq,
        anchored: anchored_hash,
        stored,
        ..
    }) = report.first_break
    else {
        panic!("expected an anchor mismatch, got {:?}", report.first_break);
    };
    assert_eq!(seq, anchored);
    let index = usize::try_from(anchored - 1).unwrap();
    assert_eq!(anchored_hash, events[index].hash);
    assert_eq!(stored, rewritten[index].hash);
    assert_eq!(report.events_checked, anchored - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_events_deleted_after_anchor() {
    let (app, anchored) = app_with_anchored_head().await;

    tamper(
        &app,
        &format!("DELETE FROM audit_events WHERE seq >= {anchored}"),
    );
    let report = verify_chain(&app.settings).await.unwrap();

    let Some(ChainBreak::AnchorBeyondChain { seq, last_seq, .. }) = report.first_break else {
        panic!(
            "expected an anchor beyond the chain, got {:?}",
            report.first_break
        );
    };
    assert_eq!(seq, anchored);
    assert_eq!(last_seq, anchored.checked_sub(1).filter(|seq| *seq > 0));
}

/// A login role created for one test. It must be dropped after the test's
/// database, which stores its privileges, so declare it before the
/// database.
struct AppRole {
    name: String,
}

impl AppRole {
    fn create() -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let name = format!("meditrustal_test_app_{}", &suffix[..12]);
        server_connection()
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .unwrap();
        Self { name }
    }

    /// Applies `scripts/grant-app-role.sql` for this role in `db`.
    fn grant(&self, db: &TestDatabase) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/grant-app-role.sql");
        let grants = std::fs::read_to_string(script)
            .unwrap()
            .replace("meditrustal_app", &self.name);
        db.connect().unwrap().batch_execute(&grants).unwrap();
    }
}

impl Drop for AppRole {
    fn drop(&mut self) {
        let _ = server_connection().batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

fn server_url() -> String {
    std::env::var(SERVER_URL_ENV).unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

fn server_connection() -> PgConnection {
    PgConnection::establish(&format!("{}/postgres", server_url().trim_end_matches('/'))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_runs_as_role_without_update_grant() {
    let role = AppRole::create();
    let db = TestDatabase::create().await.unwrap();
    role.grant(&db);
    let url = server_url();
    let host = url.split_once('@').map_or(url.as_str(), |(_, host)| host);
    let role_url = format!(
        "postgres://{}@{}/{}",
        role.name,
        host.trim_end_matches('/'),
        db.name()
    );
    let app = TestApp::spawn_on_database(SecretString::from(role_url.clone()), |_| {})
        .await
        .unwrap();

    let (_, token) = app.patient("pete").await;
    let record = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let read = app
        .get(
            &format!("/medical-records/{}", record["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    let history = app
        .get("/audit/my-record-access-history", Some(&token))
        .await;

    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(history.status(), StatusCode::OK);
    assert_eq!(history.json::<Vec<Value>>().await.unwrap().len(), 2);
    let mut conn = PgConnection::establish(&role_url).unwrap();
    let error = diesel::sql_query("UPDATE audit_events SET outcome = 'denied'")
        .execute(&mut conn)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "permission denied for table audit_events"
    );
    drop(app);
}
