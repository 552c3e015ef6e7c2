//! Behaviour while PostgreSQL is down, on a server the test starts itself
//! (the shared server is never stopped).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::time::{Duration, Instant};

use meditrustal_adapter_postgres::{run_migrations, PgServer};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::Value;
use meditrustal_tests::TestApp;
use secrecy::SecretString;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");
/// Longest a request may take while the database is down.
const FAIL_FAST: Duration = Duration::from_secs(5);
/// How long the database stays down under read load.
const OUTAGE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_returns_503_fast_and_recovers() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = SecretString::from(server.url());
    run_migrations(&url).await.unwrap();
    let app = TestApp::spawn_on_database(url, |settings| settings.database.max_connections = 4)
        .await
        .unwrap();
    let (_, token) = app.patient("xena").await;
    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let path = format!("/medical-records/{}", created["id"].as_str().unwrap());

    // A pool of 4 answers 50 concurrent reads.
    let burst = futures::future::join_all((0..50).map(|_| app.get(&path, Some(&token)))).await;
    assert!(burst
        .iter()
        .all(|response| response.status() == StatusCode::OK));

    let server = tokio::task::spawn_blocking(move || {
        server.stop("fast");
        server
    })
    .await
    .unwrap();
    let outage_started = Instant::now();
    let mut answered = 0;
    while outage_started.elapsed() < OUTAGE {
        let started = Instant::now();
        let responses =
            futures::future::join_all((0..4).map(|_| app.get(&path, Some(&token)))).await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < FAIL_FAST,
            "reads took {elapsed:?} while the database was down"
        );
        for response in responses {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()["retry-after"], "5");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "dependency_unavailable");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answered >= 8,
        "only {answered} reads were answered during the outage"
    );

    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .unwrap();
    let after = app.get(&path, Some(&token)).await;
    assert_eq!(after.status(), StatusCode::OK);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["raw_data"], GLUCOSE);
    drop(server);
}
