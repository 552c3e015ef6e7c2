//! Registration, login and token checks over HTTP.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::time::{Duration, Instant};

use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};

fn is_lower_hex(text: &str, digits: usize) -> bool {
    text.strip_prefix("0x").is_some_and(|rest| {
        rest.len() == digits
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

async fn problem(response: meditrustal_tests::reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = response.json().await.expect("problem JSON body");
    (status, content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_returns_user_with_did_and_address() {
    let app = TestApp::spawn().await.unwrap();

    let response = app
        .post_json(
            "/auth/register",
            &json!({"username": "alice", "email": "Alice@Example.org", "password": PASSWORD, "full_name": "Alice Example", "role": "patient"}),
            None,
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let expected_did = meditrustal_identity::Did::for_user(meditrustal_identity::UserId(id));
    assert_eq!(user["did"], expected_did.as_str());
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "Alice@Example.org");
    assert_eq!(user["full_name"], "Alice Example");
    assert_eq!(user["role"], "PATIENT");
    assert_eq!(user["is_active"], true);
    assert!(
        is_lower_hex(user["blockchain_address"].as_str().unwrap(), 40),
        "{}",
        user["blockchain_address"]
    );
    assert!(user.get("password").is_none());
    assert!(user.get("password_hash").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_rejects_admin_and_unknown_roles() {
    let app = TestApp::spawn().await.unwrap();

    for role in ["ADMIN", "admin", "nurse"] {
        let response = app
            .post_json("/auth/register", &json!({"username": "mallory", "email": "m@example.org", "password": PASSWORD, "role": role}), None)
            .await;
        let (status, content_type, body) = problem(response).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "role {role}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["field"], "role");
        assert_eq!(body["errors"][0]["field"], "role");
        assert!(body["detail"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_is_unique_regardless_of_case_and_normalization() {
    let app = TestApp::spawn().await.unwrap();
    let first = app
        .register("tomas", "Tomas.Brandt@Example.ORG", "PATIENT")
        .await;

    let duplicate = app
        .post_json("/auth/register", &json!({"username": "tomas2", "email": "tomas.brandt@example.org", "password": PASSWORD, "role": "PATIENT"}), None)
        .await;
    let (status, _, body) = problem(duplicate).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "email_taken");

    let token = app.login("TOMAS.BRANDT@example.org").await;
    let me: Value = app
        .get("/users/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], first["id"]);

    let nfc = "j\u{00fc}rgen.vale@example.test";
    let nfd = "ju\u{0308}rgen.vale@example.test";
    let jurgen = app.register("jurgen", nfd, "DOCTOR").await;
    assert_eq!(jurgen["email"], nfc);
    let second = app
        .post_json(
            "/auth/register",
            &json!({"username": "jurgen2", "email": nfc, "password": PASSWORD, "role": "DOCTOR"}),
            None,
        )
        .await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    for spelling in [nfc, nfd] {
        let token = app.login(spelling).await;
        let me: Value = app
            .get("/users/me", Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["id"], jurgen["id"], "login as {spelling:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_is_unique_regardless_of_case() {
    let app = TestApp::spawn().await.unwrap();
    app.register("Carol", "carol@example.org", "PATIENT").await;

    let response = app
        .post_json("/auth/register", &json!({"username": "carol", "email": "other@example.org", "password": PASSWORD, "role": "PATIENT"}), None)
        .await;
    let (status, _, body) = problem(response).await;

    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "username_taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_registrations_of_one_email_create_one_user() {
    let app = TestApp::spawn().await.unwrap();

    let app = &app;
    let attempts = (0..10).map(|n| async move {
        let body = json!({"username": format!("racer{n}"), "email": "race@example.org", "password": PASSWORD, "role": "PATIENT"});
        app.post_json("/auth/register", &body, None).await
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status())
        .collect();

    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        9,
        "{statuses:?}"
    );
    let mut connection = app.db().connect().unwrap();
    assert_eq!(count(&mut connection, "SELECT count(*) AS n FROM users"), 1);
}

fn count(connection: &mut diesel::PgConnection, sql: &str) -> i64 {
    use diesel::{QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Count>(connection)
        .unwrap()
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_get_identical_401() {
    let app = TestApp::spawn().await.unwrap();
    app.register("dave", "dave@example.org", "PATIENT").await;

    let unknown = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "nobody", "password": PASSWORD}),
            None,
        )
        .await;
    let wrong = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "dave", "password": "wrong password!"}),
            None,
        )
        .await;
    let (unknown_status, unknown_type, unknown_body) = problem(unknown).await;
    let (wrong_status, wrong_type, wrong_body) = problem(wrong).await;

    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_type, wrong_type);
    assert_eq!(unknown_body, wrong_body);
    assert_eq!(unknown_body["code"], "invalid_credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_login_returns_bearer_token() {
    let app = TestApp::spawn().await.unwrap();
    app.register("erin", "erin@example.org", "DOCTOR").await;

    let response = app
        .client
        .post(app.url("/auth/login"))
        .form(&[("username", "erin"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"]
        .as_str()
        .unwrap()
        .starts_with("v4.public."));
    let me = app
        .get("/users/me", Some(body["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_route_rejects_missing_and_confused_tokens() {
    let app = TestApp::spawn().await.unwrap();
    app.register("frank", "frank@example.org", "PATIENT").await;
    let token = app.login("frank").await;
    let (body, footer) = token
        .rsplit_once('.')
        .map_or((token.clone(), String::new()), |(b, f)| {
            (b.to_owned(), f.to_owned())
        });

    let mut forged = vec![
        ("no token", None),
        ("garbage", Some("not-a-token".to_owned())),
        (
            "v3 prefix",
            Some(token.replacen("v4.public.", "v3.public.", 1)),
        ),
        (
            "local purpose",
            Some(token.replacen("v4.public.", "v4.local.", 1)),
        ),
        ("v2 token", Some(token.replacen("v4.", "v2.", 1))),
        (
            "edited footer",
            Some(format!(
                "{body}.{}",
                footer.chars().rev().collect::<String>()
            )),
        ),
        ("dropped footer", Some(body.clone())),
    ];
    let mut flipped = token.clone().into_bytes();
    let middle = "v4.public.".len() + 20;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    forged.push((
        "flipped payload byte",
        Some(String::from_utf8(flipped).unwrap()),
    ));

    for (case, candidate) in forged {
        let response = app.get("/users/me", candidate.as_deref()).await;
        let (status, content_type, problem_body) = problem(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(content_type, "application/problem+json", "{case}");
        assert_eq!(problem_body["code"], "invalid_token", "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_not_yet_valid_tokens_are_rejected() {
    use meditrustal_adapter_paseto::{
        PasetoTokens, SigningKey, SigningSeed, TokenConfig, TokenKeyId,
    };
    use meditrustal_identity::{Claims, Role, SessionId, TokenIssuer, UserId};
    use secrecy::ExposeSecret;

    let app = TestApp::spawn().await.unwrap();
    let user = app.register("gina", "gina@example.org", "PATIENT").await;
    let user_id = UserId(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap());
    // Tokens must name an active session, so borrow the one a login opens.
    let login_token = app.login("gina").await;
    let sessions: Value = app
        .get("/auth/sessions", Some(&login_token))
        .await
        .json()
        .await
        .unwrap();
    let session_id = SessionId(uuid::Uuid::parse_str(sessions[0]["id"].as_str().unwrap()).unwrap());
    // The same key the test server signs with.
    let seed = SigningSeed::from_hex(&"11".repeat(32)).unwrap();
    let issuer = PasetoTokens::new(
        SigningKey::from_seed(TokenKeyId::parse("test-k1").unwrap(), &seed).unwrap(),
        [],
        TokenConfig {
            audience: "meditrustal-api".into(),
            lifetime_secs: 900,
        },
    )
    .unwrap();
    let now = chrono::Utc::now();
    let fresh = Claims {
        user_id,
        role: Role::Patient,
        session_id,
        issued_at: now,
        expires_at: now + chrono::Duration::minutes(5),
    };
    let expired = Claims {
        issued_at: now - chrono::Duration::minutes(7),
        expires_at: now - chrono::Duration::minutes(2),
        ..fresh.clone()
    };
    let future = Claims {
        issued_at: now + chrono::Duration::minutes(10),
        expires_at: now + chrono::Duration::minutes(15),
        ..fresh.clone()
    };

    let ok = app
        .get(
            "/users/me",
            Some(issuer.issue(&fresh).unwrap().token.expose_secret()),
        )
        .await;
    assert_eq!(
        ok.status(),
        StatusCode::OK,
        "control: a fresh token from the same key works"
    );
    for (case, claims) in [
        ("expired 2 minutes ago", expired),
        ("nbf 10 minutes ahead", future),
    ] {
        let token = issuer.issue(&claims).unwrap();
        let response = app
            .get("/users/me", Some(token.token.expose_secret()))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_user_token_fails_at_once() {
    use diesel::RunQueryDsl;
    let app = TestApp::spawn().await.unwrap();
    app.register("hank", "hank@example.org", "PATIENT").await;
    let token = app.login("hank").await;
    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::OK
    );

    let mut connection = app.db().connect().unwrap();
    diesel::sql_query("UPDATE users SET is_active = false")
        .execute(&mut connection)
        .unwrap();

    assert_eq!(
        app.get("/users/me", Some(&token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "hank", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_over_72_bytes_is_rejected() {
    let app = TestApp::spawn().await.unwrap();
    let long = "\u{00e9}".repeat(37); // 74 bytes in UTF-8

    let response = app
        .post_json("/auth/register", &json!({"username": "ivan", "email": "ivan@example.org", "password": long, "role": "PATIENT"}), None)
        .await;
    let (status, _, body) = problem(response).await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "password");
}

/// Hashing runs off the async executor: health checks stay fast while many
/// logins hash at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_do_not_stall_health_checks() {
    let app = TestApp::spawn_with(|settings| settings.auth.bcrypt_cost = 10)
        .await
        .unwrap();
    app.register("julia", "julia@example.org", "PATIENT").await;

    let login_body = json!({"username_or_email": "julia", "password": PASSWORD});
    let logins = futures::future::join_all(
        (0..32).map(|_| app.post_json("/auth/login/json", &login_body, None)),
    );
    let health = async {
        let mut latencies = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let response = app
                .client
                .get(format!("{}/health/live", app.base_url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            latencies.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        latencies
    };
    let (responses, mut latencies) = tokio::join!(logins, health);

    assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
    latencies.sort();
    let p95 = latencies[latencies.len() * 95 / 100 - 1];
    assert!(p95 < Duration::from_millis(250), "health p95 was {p95:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_login_name_is_invalid_credentials() {
    let app = TestApp::spawn().await.unwrap();
    app.register("alice", "alice@example.org", "PATIENT").await;

    let json_login = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "ali\u{0}ce", "password": PASSWORD}),
            None,
        )
        .await;
    let form_login = app
        .client
        .post(app.url("/auth/login"))
        .form(&[("username", "al\u{0}ice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();

    for response in [json_login, form_login] {
        let (status, _, body) = problem(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "invalid_credentials");
    }
}

/// Unknown users and wrong passwords cost one hash each, so their response
/// times cannot tell an attacker which accounts exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_take_alike_time() {
    let app = TestApp::spawn_with(|settings| {
        settings.auth.bcrypt_cost = 10;
        // 22 failures from one address would otherwise be locked out.
        settings.auth.throttle.account_max_failures = 1000;
        settings.auth.throttle.ip_max_failures = 1000;
    })
    .await
    .unwrap();
    app.register("kate", "kate@example.org", "PATIENT").await;
    let unknown = json!({"username_or_email": "nobody@example.org", "password": PASSWORD});
    let wrong = json!({"username_or_email": "kate", "password": "wrong password!"});

    let mut unknown_times = Vec::new();
    let mut wrong_times = Vec::new();
    // Interleaved, so that load on the machine affects both alike.
    for _ in 0..11 {
        for (body, times) in [(&unknown, &mut unknown_times), (&wrong, &mut wrong_times)] {
            let started = Instant::now();
            let response = app.post_json("/auth/login/json", body, None).await;
            times.push(started.elapsed());
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
    unknown_times.sort();
    wrong_times.sort();

    let (unknown_median, wrong_median) = (unknown_times[5], wrong_times[5]);
    let gap = unknown_median.abs_diff(wrong_median);
    assert!(
        gap < Duration::from_millis(50),
        "medians {unknown_median:?} and {wrong_median:?}"
    );
}
