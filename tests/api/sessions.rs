//! Sessions, refresh tokens, logout, password change and reset, TOTP
//! second factor, login throttling and previous signing keys, over HTTP.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::time::{Duration, Instant};

use diesel::{QueryableByName, RunQueryDsl};
use meditrustal_identity::totp;
use meditrustal_tests::reqwest::{Response, StatusCode};
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase";

async fn body(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let value = response.json().await.unwrap_or(Value::Null);
    (status, value)
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
}

/// Registers `name` and logs in; returns the token body.
async fn user_with_tokens(app: &TestApp, name: &str) -> Value {
    app.register(name, &format!("{name}@example.org"), "PATIENT")
        .await;
    let (status, tokens) = app.login_with(name, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "login of {name}: {tokens}");
    tokens
}

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    body(
        app.post_json(
            "/auth/refresh",
            &json!({"refresh_token": refresh_token}),
            None,
        )
        .await,
    )
    .await
}

async fn me_status(app: &TestApp, access_token: &str) -> StatusCode {
    app.get("/users/me", Some(access_token)).await.status()
}

async fn sessions(app: &TestApp, access_token: &str) -> Vec<Value> {
    let (status, list) = body(app.get("/auth/sessions", Some(access_token)).await).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_returns_access_and_refresh_tokens() {
    let app = TestApp::spawn().await.unwrap();
    app.register("amy", "amy@example.org", "PATIENT").await;

    let response = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": "amy", "password": PASSWORD}),
            None,
        )
        .await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, tokens) = body(response).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&String> = tokens.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert!(text(&tokens, "access_token").starts_with("v4.public."));
    assert!(text(&tokens, "refresh_token").starts_with("mtr_rt_"));
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_tokens_within_session() {
    let app = TestApp::spawn().await.unwrap();
    let first = user_with_tokens(&app, "ben").await;

    let (status, second) = refresh(&app, text(&first, "refresh_token")).await;

    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["token_type"], "bearer");
    assert_eq!(second["expires_in"], 900);
    assert_eq!(
        me_status(&app, text(&second, "access_token")).await,
        StatusCode::OK
    );
    assert_eq!(
        me_status(&app, text(&first, "access_token")).await,
        StatusCode::OK
    );
    let listed = sessions(&app, text(&second, "access_token")).await;
    assert_eq!(listed.len(), 1, "a refresh must not open a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_reuse_revokes_the_family() {
    let app = TestApp::spawn().await.unwrap();
    let first = user_with_tokens(&app, "cleo").await;
    let (status, second) = refresh(&app, text(&first, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);

    // A thief replays the token the owner already spent.
    let (replay_status, problem) = refresh(&app, text(&first, "refresh_token")).await;

    assert_eq!(replay_status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "invalid_refresh_token");
    let (next_status, next) = refresh(&app, text(&second, "refresh_token")).await;
    assert_eq!(next_status, StatusCode::UNAUTHORIZED, "{next}");
    assert_eq!(next["code"], "invalid_refresh_token");
    for token in [&first, &second] {
        assert_eq!(
            me_status(&app, text(token, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_is_rejected_as_bearer_token() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "dina").await;

    let (status, problem) = body(
        app.get("/users/me", Some(text(&tokens, "refresh_token")))
            .await,
    )
    .await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_token_is_rejected_by_refresh() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "egon").await;

    let (status, problem) = refresh(&app, text(&tokens, "access_token")).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "invalid_refresh_token");
    assert_eq!(
        me_status(&app, text(&tokens, "access_token")).await,
        StatusCode::OK,
        "a rejected refresh must not end the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_leave_one_winner_and_revoke() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "fern").await;
    let refresh_token = text(&tokens, "refresh_token");

    let (left, right) = tokio::join!(refresh(&app, refresh_token), refresh(&app, refresh_token));

    let mut statuses = [left.0, right.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let winner = if left.0 == StatusCode::OK {
        left.1
    } else {
        right.1
    };
    assert_eq!(
        me_status(&app, text(&winner, "access_token")).await,
        StatusCode::UNAUTHORIZED,
        "the reuse must revoke the session of the winner too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_user_cannot_refresh() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "gus").await;
    let mut connection = app.db().connect().unwrap();
    diesel::sql_query("UPDATE users SET is_active = false")
        .execute(&mut connection)
        .unwrap();

    let (status, problem) = refresh(&app, text(&tokens, "refresh_token")).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "invalid_refresh_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_device_ip_and_current() {
    let app = TestApp::spawn().await.unwrap();
    app.register("hugo", "hugo@example.org", "PATIENT").await;
    let mut logins = Vec::new();
    for agent in ["phone-app/2.1", "desktop-browser/118"] {
        let response = app
            .client
            .post(app.url("/auth/login/json"))
            .header("user-agent", agent)
            .json(&json!({"username_or_email": "hugo", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        logins.push(body(response).await.1);
    }

    let listed = sessions(&app, text(&logins[1], "access_token")).await;

    assert_eq!(listed.len(), 2);
    let devices: Vec<&str> = listed.iter().map(|s| text(s, "device")).collect();
    assert_eq!(devices, ["desktop-browser/118", "phone-app/2.1"]);
    let current: Vec<bool> = listed.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [true, false]);
    for session in &listed {
        assert_eq!(session["ip"], "127.0.0.1");
        assert!(uuid::Uuid::parse_str(text(session, "id")).is_ok());
        for time in ["created_at", "last_used_at", "expires_at"] {
            assert!(
                chrono::DateTime::parse_from_rfc3339(text(session, time)).is_ok(),
                "{time} in {session}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_session_ends_its_tokens_at_once() {
    let app = TestApp::spawn().await.unwrap();
    let keep = user_with_tokens(&app, "iris").await;
    let (_, end) = app.login_with("iris", PASSWORD).await;
    let end_id = sessions(&app, text(&end, "access_token"))
        .await
        .into_iter()
        .find(|session| session["current"] == true)
        .map(|session| text(&session, "id").to_owned())
        .unwrap();
    assert_eq!(
        me_status(&app, text(&end, "access_token")).await,
        StatusCode::OK
    );

    let response = app
        .delete(
            &format!("/auth/sessions/{end_id}"),
            Some(text(&keep, "access_token")),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me_status(&app, text(&end, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, text(&end, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me_status(&app, text(&keep, "access_token")).await,
        StatusCode::OK
    );

    let other = user_with_tokens(&app, "jack").await;
    let other_id = text(&sessions(&app, text(&other, "access_token")).await[0], "id").to_owned();
    for (case, id) in [
        ("already revoked", end_id.as_str()),
        ("another user's", other_id.as_str()),
        ("malformed", "not-a-uuid"),
    ] {
        let (status, problem) = body(
            app.delete(
                &format!("/auth/sessions/{id}"),
                Some(text(&keep, "access_token")),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{case}");
        assert_eq!(problem["code"], "session_not_found", "{case}");
    }
    assert_eq!(
        me_status(&app, text(&other, "access_token")).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_current_and_named_sessions() {
    let app = TestApp::spawn().await.unwrap();
    let first = user_with_tokens(&app, "kim").await;
    let (_, second) = app.login_with("kim", PASSWORD).await;
    let (_, third) = app.login_with("kim", PASSWORD).await;

    let plain = app
        .post_empty("/auth/logout", Some(text(&first, "access_token")))
        .await;
    assert_eq!(plain.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me_status(&app, text(&first, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, text(&first, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let with_refresh = app
        .post_json(
            "/auth/logout",
            &json!({"refresh_token": text(&third, "refresh_token")}),
            Some(text(&second, "access_token")),
        )
        .await;
    assert_eq!(with_refresh.status(), StatusCode::NO_CONTENT);
    for tokens in [&second, &third] {
        assert_eq!(
            me_status(&app, text(tokens, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let unauthenticated = app.post_empty("/auth/logout", None).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_all_ends_every_session() {
    let app = TestApp::spawn().await.unwrap();
    let first = user_with_tokens(&app, "lena").await;
    let (_, second) = app.login_with("lena", PASSWORD).await;
    let stranger = user_with_tokens(&app, "max").await;

    let response = app
        .post_empty("/auth/logout-all", Some(text(&second, "access_token")))
        .await;

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for tokens in [&first, &second] {
        assert_eq!(
            me_status(&app, text(tokens, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refresh(&app, text(tokens, "refresh_token")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        me_status(&app, text(&stranger, "access_token")).await,
        StatusCode::OK
    );
}

async fn change_password(
    app: &TestApp,
    access_token: &str,
    current: &str,
    new: &str,
) -> (StatusCode, Value) {
    body(
        app.post_json(
            "/auth/password",
            &json!({"current_password": current, "new_password": new}),
            Some(access_token),
        )
        .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_old_sessions() {
    let app = TestApp::spawn().await.unwrap();
    let first = user_with_tokens(&app, "nora").await;
    let (_, second) = app.login_with("nora", PASSWORD).await;

    let (status, fresh) =
        change_password(&app, text(&first, "access_token"), PASSWORD, NEW_PASSWORD).await;

    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert!(text(&fresh, "refresh_token").starts_with("mtr_rt_"));
    for tokens in [&first, &second] {
        assert_eq!(
            me_status(&app, text(tokens, "access_token")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refresh(&app, text(tokens, "refresh_token")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        me_status(&app, text(&fresh, "access_token")).await,
        StatusCode::OK
    );
    assert_eq!(sessions(&app, text(&fresh, "access_token")).await.len(), 1);
    assert_eq!(
        app.login_with("nora", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login_with("nora", NEW_PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_rejects_wrong_current_and_weak_new() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "otto").await;
    let access = text(&tokens, "access_token");
    let bytes_73 = "\u{00e9}t".repeat(24).replacen('t', "tt", 1);
    let cases = [
        (
            "wrong current",
            "not my password",
            NEW_PASSWORD,
            "current_password",
        ),
        ("73 bytes", PASSWORD, bytes_73.as_str(), "new_password"),
        ("with NUL", PASSWORD, "abc\0def-ghi-jkl", "new_password"),
        ("too short", PASSWORD, "short", "new_password"),
        ("common", PASSWORD, "password123", "new_password"),
        ("unchanged", PASSWORD, PASSWORD, "new_password"),
    ];

    for (case, current, new, field) in cases {
        let (status, problem) = change_password(&app, access, current, new).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {problem}"
        );
        assert_eq!(problem["code"], "validation_failed", "{case}");
        assert_eq!(problem["field"], field, "{case}");
    }
    assert_eq!(me_status(&app, access).await, StatusCode::OK);
    assert_eq!(app.login_with("otto", PASSWORD).await.0, StatusCode::OK);
}

#[derive(QueryableByName)]
struct Mail {
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    body: String,
}

fn mails(app: &TestApp) -> Vec<Mail> {
    let mut connection = app.db().connect().unwrap();
    diesel::sql_query("SELECT recipient, body FROM mail_outbox ORDER BY id")
        .load(&mut connection)
        .unwrap()
}

/// Finds the reset token in a message body.
fn reset_token(mail: &Mail) -> String {
    mail.body
        .split_whitespace()
        .find(|word| word.starts_with("mtr_reset_"))
        .expect("reset token in the message")
        .to_owned()
}

async fn request_reset(app: &TestApp, email: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let response = app
        .post_json("/auth/password-reset", &json!({"email": email}), None)
        .await;
    let elapsed = started.elapsed();
    let (status, value) = body(response).await;
    (status, value, elapsed)
}

async fn confirm_reset(app: &TestApp, token: &str, new_password: &str) -> (StatusCode, Value) {
    body(
        app.post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token, "new_password": new_password}),
            None,
        )
        .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_answers_alike_and_token_works_once() {
    let app = TestApp::spawn().await.unwrap();
    let old = user_with_tokens(&app, "pia").await;

    let (unknown_status, unknown_body, unknown_time) =
        request_reset(&app, "nobody@example.org").await;
    let (known_status, known_body, known_time) = request_reset(&app, "PIA@example.org").await;

    assert_eq!(unknown_status, StatusCode::ACCEPTED);
    assert_eq!(known_status, StatusCode::ACCEPTED);
    assert_eq!(unknown_body, known_body);
    for elapsed in [unknown_time, known_time] {
        assert!(
            elapsed >= Duration::from_millis(250),
            "answered in {elapsed:?}"
        );
    }
    let sent = mails(&app);
    assert_eq!(sent.len(), 1, "only the real account gets a message");
    assert_eq!(sent[0].recipient, "pia@example.org");
    let token = reset_token(&sent[0]);

    let (weak_status, weak) = confirm_reset(&app, &token, "short").await;
    assert_eq!(weak_status, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
    let (status, _) = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (again_status, again) = confirm_reset(&app, &token, "yet another passphrase").await;
    assert_eq!(again_status, StatusCode::BAD_REQUEST);
    assert_eq!(again["code"], "invalid_reset_token");

    assert_eq!(
        me_status(&app, text(&old, "access_token")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, text(&old, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_with("pia", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.login_with("pia", NEW_PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_messages_are_capped() {
    let app = TestApp::spawn().await.unwrap();
    app.register("rhea", "rhea@example.org", "PATIENT").await;

    for attempt in 1..=5 {
        let (status, _, _) = request_reset(&app, "rhea@example.org").await;
        assert_eq!(status, StatusCode::ACCEPTED, "request {attempt}");
    }

    let sent = mails(&app);
    assert_eq!(sent.len(), 3, "a flood of requests sends three messages");
    // Each message replaces the previous token, so only the last one works.
    let (status, problem) = confirm_reset(&app, &reset_token(&sent[0]), NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "invalid_reset_token");
    let (status, _) = confirm_reset(&app, &reset_token(&sent[2]), NEW_PASSWORD).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_reset_token_expires() {
    let app = TestApp::spawn_with(|settings| settings.auth.password_reset_lifetime_secs = 1)
        .await
        .unwrap();
    app.register("quin", "quin@example.org", "PATIENT").await;
    request_reset(&app, "quin@example.org").await;
    let token = reset_token(&mails(&app)[0]);

    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (status, problem) = confirm_reset(&app, &token, NEW_PASSWORD).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "invalid_reset_token");
    assert_eq!(app.login_with("quin", PASSWORD).await.0, StatusCode::OK);
}

/// TOTP code of `step` for a base32 secret.
fn code_at(secret: &str, step: u64) -> String {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    format!("{:06}", totp::hotp(&bytes, step, 6))
}

fn current_step() -> u64 {
    totp::time_step(u64::try_from(chrono::Utc::now().timestamp()).unwrap())
}

/// Enrolls and confirms TOTP with the code of the current step; returns
/// the secret, the step used, and the recovery codes.
async fn enable_totp(app: &TestApp, access_token: &str) -> (String, u64, Vec<String>) {
    let (status, enrollment) =
        body(app.post_empty("/auth/mfa/totp", Some(access_token)).await).await;
    assert_eq!(status, StatusCode::OK, "{enrollment}");
    let secret = text(&enrollment, "secret").to_owned();
    let step = current_step();

    let (status, confirmed) = body(
        app.post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": code_at(&secret, step)}),
            Some(access_token),
        )
        .await,
    )
    .await;

    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    (secret, step, codes)
}

async fn mfa_token(app: &TestApp, name: &str) -> String {
    let (status, challenge) = app.login_with(name, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["expires_in"], 300);
    assert!(challenge.get("access_token").is_none(), "{challenge}");
    text(&challenge, "mfa_token").to_owned()
}

async fn mfa_login(app: &TestApp, body_json: Value) -> (StatusCode, Value) {
    body(app.post_json("/auth/login/mfa", &body_json, None).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrollment_shows_secret_and_uri() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "sam").await;

    let response = app
        .post_empty("/auth/mfa/totp", Some(text(&tokens, "access_token")))
        .await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    let (status, enrollment) = body(response).await;
    assert_eq!(status, StatusCode::OK);
    let secret = text(&enrollment, "secret");
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert_eq!(
        text(&enrollment, "otpauth_uri"),
        format!(
            "otpauth://totp/MediTrustAl:sam?secret={secret}&issuer=MediTrustAl&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Until confirmed, the password alone still logs in.
    let (login_status, login) = app.login_with("sam", PASSWORD).await;
    assert_eq!(login_status, StatusCode::OK);
    assert!(login.get("access_token").is_some(), "{login}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_codes_work_once_and_within_window() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "tara").await;
    let (secret, step, recovery_codes) = enable_totp(&app, text(&tokens, "access_token")).await;
    assert_eq!(recovery_codes.len(), 10);

    let token = mfa_token(&app, "tara").await;
    let (used_status, used) = mfa_login(
        &app,
        json!({"mfa_token": token, "code": code_at(&secret, step)}),
    )
    .await;
    assert_eq!(
        used_status,
        StatusCode::UNAUTHORIZED,
        "confirmation used this code"
    );
    assert_eq!(used["code"], "invalid_mfa_code");
    let (far_status, _) = mfa_login(
        &app,
        json!({"mfa_token": token, "code": code_at(&secret, step + 3)}),
    )
    .await;
    assert_eq!(
        far_status,
        StatusCode::UNAUTHORIZED,
        "90 s ahead is outside the window"
    );

    let next = code_at(&secret, step + 1);
    let (status, logged_in) = mfa_login(&app, json!({"mfa_token": token, "code": next})).await;
    assert_eq!(status, StatusCode::OK, "{logged_in}");
    assert_eq!(
        me_status(&app, text(&logged_in, "access_token")).await,
        StatusCode::OK
    );
    let (spent_status, spent) = mfa_login(&app, json!({"mfa_token": token, "code": next})).await;
    assert_eq!(spent_status, StatusCode::UNAUTHORIZED);
    assert_eq!(spent["code"], "invalid_mfa_token");

    let replay_token = mfa_token(&app, "tara").await;
    let (replay_status, replay) =
        mfa_login(&app, json!({"mfa_token": replay_token, "code": next})).await;
    assert_eq!(replay_status, StatusCode::UNAUTHORIZED, "a code works once");
    assert_eq!(replay["code"], "invalid_mfa_code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_code_works_once() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "uma").await;
    let (_, _, recovery_codes) = enable_totp(&app, text(&tokens, "access_token")).await;
    let typed = recovery_codes[3].to_uppercase().replace('-', " ");

    let first = mfa_token(&app, "uma").await;
    let (status, logged_in) =
        mfa_login(&app, json!({"mfa_token": first, "recovery_code": typed})).await;
    assert_eq!(status, StatusCode::OK, "{logged_in}");

    let second = mfa_token(&app, "uma").await;
    let (again_status, again) = mfa_login(
        &app,
        json!({"mfa_token": second, "recovery_code": recovery_codes[3]}),
    )
    .await;
    assert_eq!(again_status, StatusCode::UNAUTHORIZED);
    assert_eq!(again["code"], "invalid_mfa_code");
    let (both_status, both) = mfa_login(
        &app,
        json!({"mfa_token": second, "code": "123456", "recovery_code": recovery_codes[4]}),
    )
    .await;
    assert_eq!(both_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(both["field"], "code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_disable_needs_password_and_code() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "vera").await;
    let access = text(&tokens, "access_token");
    let (secret, step, _) = enable_totp(&app, access).await;
    let next = code_at(&secret, step + 1);

    let (wrong_status, wrong) = body(
        app.post_json(
            "/auth/mfa/totp/disable",
            &json!({"password": "not my password", "code": next}),
            Some(access),
        )
        .await,
    )
    .await;
    assert_eq!(wrong_status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong["field"], "password");
    let (again_status, again) = body(app.post_empty("/auth/mfa/totp", Some(access)).await).await;
    assert_eq!(again_status, StatusCode::CONFLICT);
    assert_eq!(again["code"], "mfa_already_enabled");

    let disabled = app
        .post_json(
            "/auth/mfa/totp/disable",
            &json!({"password": PASSWORD, "code": next}),
            Some(access),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::NO_CONTENT);
    let (status, login) = app.login_with("vera", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert!(login.get("access_token").is_some(), "{login}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secret_is_stored_sealed() {
    let app = TestApp::spawn().await.unwrap();
    let tokens = user_with_tokens(&app, "walt").await;
    let (secret, _, _) = enable_totp(&app, text(&tokens, "access_token")).await;
    let raw = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();

    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key_id: String,
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        ciphertext: Vec<u8>,
    }
    let mut connection = app.db().connect().unwrap();
    let stored: Stored = diesel::sql_query("SELECT key_id, ciphertext FROM totp_credentials")
        .get_result(&mut connection)
        .unwrap();

    assert_eq!(stored.key_id, "test-mk");
    assert_eq!(stored.ciphertext.len(), 20 + 16);
    assert!(
        !stored
            .ciphertext
            .windows(8)
            .any(|window| raw.windows(8).any(|r| r == window)),
        "the ciphertext contains the secret"
    );
}

async fn assert_throttled(app: &TestApp, name: &str, password: &str) -> u64 {
    let response = app
        .post_json(
            "/auth/login/json",
            &json!({"username_or_email": name, "password": password}),
            None,
        )
        .await;
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap())
        .unwrap_or(0);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let (status, problem) = body(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name}: {problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["code"], "too_many_attempts");
    retry_after
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_account_then_lock_ends() {
    let app = TestApp::spawn_with(|settings| {
        let throttle = &mut settings.auth.throttle;
        throttle.account_max_failures = 3;
        throttle.base_lockout_secs = 1;
        throttle.max_lockout_secs = 2;
    })
    .await
    .unwrap();
    app.register("xena", "xena@example.org", "PATIENT").await;

    // The right password waits too, and an unknown name behaves alike.
    for name in ["ghost", "xena"] {
        for attempt in 1..=3 {
            let (status, problem) = app.login_with(name, "wrong password!").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} attempt {attempt}");
            assert_eq!(problem["code"], "invalid_credentials");
        }
        assert_eq!(assert_throttled(&app, name, PASSWORD).await, 1, "{name}");
    }
    assert_eq!(
        app.login_with("someone-else", "wrong password!").await.0,
        StatusCode::UNAUTHORIZED,
        "other names stay unlocked"
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.login_with("xena", PASSWORD).await.0, StatusCode::OK);
    for attempt in 1..=3 {
        let (status, _) = app.login_with("xena", "wrong password!").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "after success, attempt {attempt}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_email_share_one_lockout() {
    let app = TestApp::spawn_with(|settings| {
        let throttle = &mut settings.auth.throttle;
        throttle.account_max_failures = 3;
        throttle.base_lockout_secs = 60;
        throttle.max_lockout_secs = 60;
    })
    .await
    .unwrap();
    app.register("zola", "zola@example.org", "PATIENT").await;

    // Two names of one account: the guesses add up instead of each name
    // getting its own allowance.
    for (attempt, name) in ["zola", "zola@example.org", "ZOLA"].iter().enumerate() {
        let (status, problem) = app.login_with(name, "wrong password!").await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt} as {name}"
        );
        assert_eq!(problem["code"], "invalid_credentials");
    }
    assert_eq!(
        assert_throttled(&app, "Zola@Example.org", PASSWORD).await,
        60
    );
    assert_eq!(assert_throttled(&app, "zola", PASSWORD).await, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_doubles_with_each_further_failure() {
    let app = TestApp::spawn_with(|settings| {
        let throttle = &mut settings.auth.throttle;
        throttle.account_max_failures = 2;
        throttle.base_lockout_secs = 1;
        throttle.max_lockout_secs = 60;
    })
    .await
    .unwrap();
    app.register("yara", "yara@example.org", "PATIENT").await;
    for _ in 0..2 {
        app.login_with("yara", "wrong password!").await;
    }
    assert_eq!(assert_throttled(&app, "yara", PASSWORD).await, 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        app.login_with("yara", "wrong password!").await.0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(assert_throttled(&app, "yara", PASSWORD).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_ip_lock_every_name() {
    let app = TestApp::spawn_with(|settings| {
        let throttle = &mut settings.auth.throttle;
        throttle.ip_max_failures = 3;
        throttle.base_lockout_secs = 1;
        throttle.max_lockout_secs = 1;
    })
    .await
    .unwrap();
    app.register("zoe", "zoe@example.org", "PATIENT").await;
    for name in ["one", "two", "three"] {
        assert_eq!(
            app.login_with(name, "wrong password!").await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    assert_eq!(assert_throttled(&app, "zoe", PASSWORD).await, 1);

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.login_with("zoe", PASSWORD).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_logins_are_never_throttled() {
    let app = TestApp::spawn_with(|settings| {
        settings.auth.throttle.account_max_failures = 2;
        settings.auth.throttle.ip_max_failures = 2;
    })
    .await
    .unwrap();
    app.register("abby", "abby@example.org", "PATIENT").await;

    for attempt in 1..=10 {
        assert_eq!(
            app.login_with("abby", PASSWORD).await.0,
            StatusCode::OK,
            "login {attempt}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_totp_codes_are_throttled() {
    let app = TestApp::spawn_with(|settings| {
        settings.auth.throttle.account_max_failures = 2;
        settings.auth.throttle.base_lockout_secs = 60;
        settings.auth.throttle.max_lockout_secs = 60;
    })
    .await
    .unwrap();
    let tokens = user_with_tokens(&app, "bert").await;
    let (secret, step, _) = enable_totp(&app, text(&tokens, "access_token")).await;
    let token = mfa_token(&app, "bert").await;
    for wrong in ["000000", "999999"] {
        let (status, _) = mfa_login(&app, json!({"mfa_token": token, "code": wrong})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    let (status, problem) = mfa_login(
        &app,
        json!({"mfa_token": token, "code": code_at(&secret, step + 1)}),
    )
    .await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_eq!(problem["code"], "too_many_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_of_previous_signing_key_still_verifies() {
    use meditrustal_adapter_paseto::{
        PasetoTokens, SigningKey, SigningSeed, TokenConfig, TokenKeyId,
    };
    use meditrustal_identity::{Claims, Role, SessionId, TokenIssuer, UserId};
    use secrecy::ExposeSecret;

    let old_seed = SigningSeed::from_hex(&"22".repeat(32)).unwrap();
    let old_key = SigningKey::from_seed(TokenKeyId::parse("old-k0").unwrap(), &old_seed).unwrap();
    let old_public = format!("old-k0:{}", old_key.verifying_key().to_hex());
    let app = TestApp::spawn_with(|settings| settings.auth.previous_public_keys = vec![old_public])
        .await
        .unwrap();
    let user = app.register("cora", "cora@example.org", "DOCTOR").await;
    let (_, tokens) = app.login_with("cora", PASSWORD).await;
    let session = &sessions(&app, text(&tokens, "access_token")).await[0];

    let old_issuer = PasetoTokens::new(
        old_key,
        [],
        TokenConfig {
            audience: "meditrustal-api".into(),
            lifetime_secs: 900,
        },
    )
    .unwrap();
    let now = chrono::Utc::now();
    let claims = Claims {
        user_id: UserId(uuid::Uuid::parse_str(text(&user, "id")).unwrap()),
        role: Role::Doctor,
        session_id: SessionId(uuid::Uuid::parse_str(text(session, "id")).unwrap()),
        issued_at: now,
        expires_at: now + chrono::Duration::minutes(5),
    };
    let old_token = old_issuer.issue(&claims).unwrap();

    assert_eq!(
        me_status(&app, old_token.token.expose_secret()).await,
        StatusCode::OK
    );
    let stranger_seed = SigningSeed::from_hex(&"33".repeat(32)).unwrap();
    let stranger = PasetoTokens::new(
        SigningKey::from_seed(TokenKeyId::parse("old-k0").unwrap(), &stranger_seed).unwrap(),
        [],
        TokenConfig::default(),
    )
    .unwrap();
    let forged = stranger.issue(&claims).unwrap();
    assert_eq!(
        me_status(&app, forged.token.expose_secret()).await,
        StatusCode::UNAUTHORIZED
    );
}
