//! Anchoring against a chain that stops, stops mining, or loses its state.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::time::{Duration, Instant};

use meditrustal_adapter_ethers::testing::deploy_test_ledger;
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::Value;
use meditrustal_tests::TestApp;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_created_while_chain_is_down_are_anchored_later() {
    let mut app = TestApp::spawn_with_chain_state().await.unwrap();
    let (_, token) = app.patient("uma").await;

    app.anvil.stop().await.unwrap();
    let started = Instant::now();
    let created = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "create took {:?}",
        started.elapsed()
    );
    assert_eq!(created["anchor"]["status"], "pending");

    let ready = app
        .client
        .get(format!("{}/health/ready", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let detail = ready.text().await.unwrap();
    assert!(
        !detail.contains("127.0.0.1"),
        "readiness leaks the node address: {detail}"
    );

    app.anvil.restart().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let anchored = app.wait_anchored(&token, id).await;
    assert_eq!(anchored["raw_data"], GLUCOSE);
    let report: Value = app
        .get(&format!("/medical-records/{id}/verify"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["verified"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_pending_while_mining_is_off() {
    let app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("vera").await;

    app.anvil.set_automine(false).await.unwrap();
    let started = Instant::now();
    let created = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "create took {:?}",
        started.elapsed()
    );
    let id = created["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pending: Value = app
        .get(&format!("/medical-records/{id}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["anchor"]["status"], "pending");

    app.anvil.set_automine(true).await.unwrap();
    let anchored = app.wait_anchored(&token, id).await;
    assert!(anchored["anchor"]["block_number"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_reset_reports_missing_anchor_and_recovers_after_redeploy() {
    let mut app = TestApp::spawn().await.unwrap();
    let (_, token) = app.patient("walt").await;
    let old = app.create_record(&token, "DIAGNOSIS", GLUCOSE).await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    app.wait_anchored(&token, &old_id).await;

    // Restart without state: the chain loses contracts and transactions.
    app.anvil.stop().await.unwrap();
    app.anvil.restart().await.unwrap();

    let response = app
        .get(&format!("/medical-records/{old_id}/verify"), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["verified"], false);
    assert_eq!(check(&report, "chain_entry")["passed"], false);
    assert_eq!(check(&report, "transaction")["passed"], false);

    // The registrar's first two transactions recreate the contracts at the
    // same addresses; the server's nonces must follow the reset chain.
    deploy_test_ledger(&app.anvil).await.unwrap();
    let new = app.create_record(&token, "DIAGNOSIS", GLUCOSE).await;
    let new_id = new["id"].as_str().unwrap();
    app.wait_anchored(&token, new_id).await;
    let report: Value = app
        .get(&format!("/medical-records/{new_id}/verify"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["verified"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refuses_to_start_without_contracts() {
    let mut app = TestApp::spawn().await.unwrap();
    app.anvil.stop().await.unwrap();
    app.anvil.restart().await.unwrap();

    let error = app
        .restart_server()
        .await
        .err()
        .expect("start must fail on an empty chain");

    let message = format!("{error:#}");
    assert!(message.contains("do not match the chain"), "{message}");
    assert!(message.contains("deploy-contracts"), "{message}");
}

/// How long anvil stays stopped in
/// [`records_created_during_an_outage_are_anchored_once`]. A real outage
/// of a minute behaves the same: the worker retries with backoff up to
/// `anchoring.max_backoff_ms` (1 s in tests), so after a few seconds every
/// job is already at the maximum backoff. 12 s keeps the test short.
const OUTAGE: Duration = Duration::from_secs(12);

/// Records created while anvil is stopped, under a steady stream of
/// creates, stay pending and are each anchored exactly once after anvil
/// restarts with its state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_created_during_an_outage_are_anchored_once() {
    use meditrustal_tests::probe::{manifest, record_added_events, text_rows};

    // Per-record mode, so that every record has its own event to count;
    // the batch tests cover lost and resent batches.
    let mut app = TestApp::spawn_with_chain_state_and(|settings| {
        settings.anchoring.mode = meditrustal_ledger::AnchorMode::PerRecord;
    })
    .await
    .unwrap();
    let (_, token) = app.patient("otto").await;
    let before = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
    app.wait_anchored(&token, before["id"].as_str().unwrap())
        .await;

    app.anvil.stop().await.unwrap();
    let stopped_at = Instant::now();
    let mut ids = vec![before["id"].as_str().unwrap().to_owned()];
    while stopped_at.elapsed() < OUTAGE {
        let started = Instant::now();
        let created = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "create took {:?}",
            started.elapsed()
        );
        assert_eq!(created["anchor"]["status"], "pending");
        ids.push(created["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pending = text_rows(
        &app,
        "SELECT id::text AS value FROM medical_records WHERE anchor_status = 'pending'",
    );
    assert_eq!(pending.len(), ids.len() - 1);

    app.anvil.restart().await.unwrap();
    for id in &ids {
        app.wait_anchored(&token, id).await;
    }

    let mut hashes = text_rows(
        &app,
        "SELECT '0x' || encode(anchor_hash, 'hex') AS value FROM medical_records",
    );
    hashes.sort_unstable();
    let events = record_added_events(&app.anvil, &manifest(&app)).await;
    let mut on_chain: Vec<String> = events.iter().map(|(key, _)| key.clone()).collect();
    on_chain.sort_unstable();
    assert_eq!(on_chain, hashes);
    let jobs = text_rows(
        &app,
        "SELECT status || ' ' || reanchor_count AS value FROM outbox_jobs \
         WHERE kind = 'anchor_record'",
    );
    assert_eq!(jobs, vec!["done 0".to_owned(); ids.len()]);
}

/// The same outage in batch mode: the batches formed while anvil is down
/// are sent after it restarts, each root once, and every record is anchored
/// in its batch's transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_formed_during_an_outage_are_anchored_once() {
    use meditrustal_tests::probe::{batch_anchored_events, manifest, text_rows};

    let mut app = TestApp::spawn_with_chain_state_and(|settings| {
        settings.anchoring.mode = meditrustal_ledger::AnchorMode::Batch;
    })
    .await
    .unwrap();
    let (_, token) = app.patient("ines").await;
    let before = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
    app.wait_anchored(&token, before["id"].as_str().unwrap())
        .await;

    app.anvil.stop().await.unwrap();
    let stopped_at = Instant::now();
    let mut ids = vec![before["id"].as_str().unwrap().to_owned()];
    while stopped_at.elapsed() < OUTAGE {
        let created = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
        assert_eq!(created["anchor"]["status"], "pending");
        ids.push(created["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.anvil.restart().await.unwrap();
    for id in &ids {
        app.wait_anchored(&token, id).await;
    }

    let mut rows = text_rows(
        &app,
        "SELECT '0x' || encode(root, 'hex') || ' 0x' || encode(tx_hash, 'hex') AS value \
         FROM anchor_batches",
    );
    rows.sort_unstable();
    let mut events: Vec<String> = batch_anchored_events(&app.anvil, &manifest(&app))
        .await
        .into_iter()
        .map(|(root, tx)| format!("{root} {tx}"))
        .collect();
    events.sort_unstable();
    assert_eq!(events, rows);
    let leaves = text_rows(
        &app,
        "SELECT sum(leaf_count)::text AS value FROM anchor_batches",
    );
    assert_eq!(leaves, vec![ids.len().to_string()]);
    let in_batch_tx = text_rows(
        &app,
        "SELECT count(*)::text AS value FROM medical_records AS record \
         JOIN anchor_batches AS batch ON batch.id = record.anchor_batch_id \
         WHERE record.anchor_tx_hash = batch.tx_hash",
    );
    assert_eq!(in_batch_tx, vec![ids.len().to_string()]);
}
