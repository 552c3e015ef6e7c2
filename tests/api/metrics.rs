//! `/metrics`: counters after known requests, label hygiene, and the
//! separate metrics listener.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use meditrustal_tests::reqwest::{Method, StatusCode};
use meditrustal_tests::serde_json::json;
use meditrustal_tests::TestApp;

async fn scrape(app: &TestApp) -> String {
    let url = app
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{}/metrics", app.base_url));
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the series `series` (name and labels exactly as
/// exposed), or `None` when it is absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

#[tokio::test]
async fn request_counters_match_known_requests() {
    let app = TestApp::spawn().await.unwrap();

    app.get("/users/me", None).await;
    app.get("/users/me", None).await;
    app.register("alice", "alice@example.org", "PATIENT").await;
    let token = app.login("alice").await;
    app.get("/users/me", Some(&token)).await;
    let text = scrape(&app).await;

    let me_401 = r#"{method="GET",route="/api/v1/users/me",status="401"}"#;
    let me_200 = r#"{method="GET",route="/api/v1/users/me",status="200"}"#;
    let register = r#"{method="POST",route="/api/v1/auth/register",status="201"}"#;
    assert_eq!(
        value(&text, &format!("meditrustal_http_requests_total{me_401}")),
        Some(2.0)
    );
    assert_eq!(
        value(&text, &format!("meditrustal_http_requests_total{me_200}")),
        Some(1.0)
    );
    assert_eq!(
        value(&text, &format!("meditrustal_http_requests_total{register}")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            &format!("meditrustal_http_request_duration_seconds_count{me_401}")
        ),
        Some(2.0)
    );
    let inf_bucket = r#"meditrustal_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/v1/users/me",status="401"}"#;
    assert_eq!(value(&text, inf_bucket), Some(2.0));
    // The scrape itself is counted after its response is built.
    assert_eq!(
        value(
            &text,
            r#"meditrustal_http_requests_total{method="GET",route="/metrics",status="200"}"#
        ),
        None
    );
    assert_eq!(
        value(
            &scrape(&app).await,
            r#"meditrustal_http_requests_total{method="GET",route="/metrics",status="200"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn login_failures_are_counted_by_reason() {
    let app = TestApp::spawn_with(|settings| {
        settings.auth.throttle.account_max_failures = 2;
    })
    .await
    .unwrap();
    app.register("bob", "bob@example.org", "PATIENT").await;

    let first = app.login_with("bob", "wrong password one").await;
    let second = app.login_with("bob", "wrong password two").await;
    let locked = app.login_with("bob", "wrong password three").await;
    let text = scrape(&app).await;

    assert_eq!(first.0, StatusCode::UNAUTHORIZED);
    assert_eq!(second.0, StatusCode::UNAUTHORIZED);
    assert_eq!(locked.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        value(
            &text,
            r#"meditrustal_login_failures_total{reason="invalid_credentials"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"meditrustal_login_failures_total{reason="too_many_attempts"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn labels_carry_patterns_not_ids_or_names() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("carol").await;
    let record = app
        .create_record(&token, "LAB_RESULT", "{\"glucose\": 5.4}")
        .await;
    let record_id = record["id"].as_str().unwrap();

    app.get(&format!("/medical-records/{record_id}"), Some(&token))
        .await;
    app.get("/no-such-route/carol", None).await;
    app.client
        .request(Method::from_bytes(b"BREW").unwrap(), app.url("/users/me"))
        .send()
        .await
        .unwrap();
    let text = scrape(&app).await;

    let read = r#"{method="GET",route="/api/v1/medical-records/{record_id}",status="200"}"#;
    assert_eq!(
        value(&text, &format!("meditrustal_http_requests_total{read}")),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"meditrustal_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"meditrustal_http_requests_total{method="OTHER",route="/api/v1/users/me",status="405"}"#
        ),
        Some(1.0)
    );
    assert!(!text.contains(record_id), "a record id leaked into a label");
    assert!(!text.contains("carol"), "a username leaked into a label");
    assert!(
        !text.contains("127.0.0.1"),
        "an address leaked into a label"
    );
}

#[tokio::test]
async fn pool_outbox_and_anchoring_delay_are_sampled() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("dave").await;
    let record = app
        .create_record(&token, "LAB_RESULT", "{\"pulse\": 61}")
        .await;
    app.wait_anchored(&token, record["id"].as_str().unwrap())
        .await;
    // The user's registration job may still be finishing; wait for an empty outbox.
    let mut text = scrape(&app).await;
    for _ in 0..100 {
        if value(&text, r#"meditrustal_outbox_jobs{status="pending"}"#) == Some(0.0)
            && value(&text, r#"meditrustal_outbox_jobs{status="sent"}"#) == Some(0.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = scrape(&app).await;
    }

    assert_eq!(
        value(&text, r#"meditrustal_db_pool_connections{state="max"}"#),
        Some(8.0)
    );
    let waiting = value(&text, r#"meditrustal_db_pool_connections{state="waiting"}"#);
    assert_eq!(waiting, Some(0.0));
    assert_eq!(
        value(&text, r#"meditrustal_outbox_jobs{status="pending"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"meditrustal_outbox_jobs{status="sent"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "meditrustal_outbox_oldest_due_job_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "meditrustal_record_anchoring_delay_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"meditrustal_record_anchoring_delay_seconds_bucket{le="+Inf"}"#
        ),
        Some(1.0)
    );
    let sum = value(&text, "meditrustal_record_anchoring_delay_seconds_sum").unwrap();
    assert!(sum > 0.0 && sum < 30.0, "anchoring delay sum {sum}");
}

/// verify reads the transaction and the registry entry: with the chain
/// down, each read is one `unavailable` error.
#[tokio::test]
async fn chain_errors_are_counted_by_kind() {
    let mut app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("erin").await;
    let record = app
        .create_record(&token, "LAB_RESULT", "{\"pulse\": 62}")
        .await;
    let record_id = record["id"].as_str().unwrap().to_owned();
    app.wait_anchored(&token, &record_id).await;
    let before = scrape(&app).await;

    app.anvil.stop().await.unwrap();
    let first = app
        .get(
            &format!("/medical-records/{record_id}/verify"),
            Some(&token),
        )
        .await;
    let second = app
        .get(
            &format!("/medical-records/{record_id}/verify"),
            Some(&token),
        )
        .await;
    let after = scrape(&app).await;

    let unavailable = r#"meditrustal_chain_errors_total{kind="unavailable"}"#;
    assert_eq!(value(&before, unavailable), Some(0.0));
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(value(&after, unavailable), Some(4.0));
    assert_eq!(
        value(&after, r#"meditrustal_chain_errors_total{kind="rejected"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(
            &after,
            r#"meditrustal_chain_errors_total{kind="contracts_missing"}"#
        ),
        Some(0.0)
    );
}

/// A record created while the chain is down waits in the outbox.
#[tokio::test]
async fn outbox_backlog_counts_waiting_jobs() {
    let mut app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("frank").await;
    let first = app
        .create_record(&token, "LAB_RESULT", "{\"pulse\": 63}")
        .await;
    app.wait_anchored(&token, first["id"].as_str().unwrap())
        .await;

    app.anvil.stop().await.unwrap();
    let second = app
        .post_json(
            "/medical-records",
            &json!({"record_type": "LAB_RESULT", "raw_data": "{\"pulse\": 64}"}),
            Some(&token),
        )
        .await;
    let text = scrape(&app).await;

    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(
        value(&text, r#"meditrustal_outbox_jobs{status="pending"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"meditrustal_outbox_jobs{status="sent"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "meditrustal_record_anchoring_delay_seconds_count"),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_bind_moves_metrics_off_the_api_listener() {
    let app = TestApp::spawn_with(|settings| {
        settings.server.metrics_bind = Some("127.0.0.1:0".into());
    })
    .await
    .unwrap();
    app.get("/health/live", None).await;

    let on_api = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    let text = scrape(&app).await;

    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    assert!(app.metrics_url.is_some());
    assert_eq!(
        value(
            &text,
            r#"meditrustal_http_requests_total{method="GET",route="/api/v1/health/live",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"meditrustal_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        Some(1.0)
    );
}
