//! The chain watcher and stuck transactions, against a real anvil node.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::BTreeMap;

use ethers::providers::Middleware;
use ethers::types::{H256, U256};
use meditrustal_adapter_ethers::testing::test_config;
use meditrustal_adapter_ethers::EthersLedger;
use meditrustal_crypto::sha256;
use meditrustal_ledger::{AnchorMode, Ledger, LedgerJob, RecordAnchor, Submission};
use meditrustal_tests::probe::{manifest, record_added_events, text_rows, wait_until};
use meditrustal_tests::serde_json::Value;
use meditrustal_tests::TestApp;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

/// `anchor_hash` of every record, by record id.
fn anchor_hashes(app: &TestApp) -> BTreeMap<String, String> {
    text_rows(
        app,
        "SELECT id::text || ' 0x' || encode(anchor_hash, 'hex') AS value FROM medical_records",
    )
    .into_iter()
    .map(|row| {
        let (id, hash) = row.split_once(' ').unwrap();
        (id.to_owned(), hash.to_owned())
    })
    .collect()
}

/// `reanchor_count` of each record's outbox job, by record id.
fn reanchor_counts(app: &TestApp) -> BTreeMap<String, String> {
    text_rows(
        app,
        "SELECT record_id::text || ' ' || reanchor_count AS value FROM outbox_jobs \
         WHERE kind = 'anchor_record'",
    )
    .into_iter()
    .map(|row| {
        let (id, count) = row.split_once(' ').unwrap();
        (id.to_owned(), count.to_owned())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reanchors_rolled_back_records_and_reports_strangers() {
    // Per-record mode: each record has its own job and event.
    let app = TestApp::spawn_with(|settings| settings.anchoring.mode = AnchorMode::PerRecord)
        .await
        .unwrap();
    let (_, token) = app.patient("rita").await;
    let kept = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    app.wait_anchored(&token, &kept_id).await;

    let provider = app.anvil.provider().unwrap();
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();
    let mut lost_ids = Vec::new();
    let mut lost_txs = BTreeMap::new();
    for _ in 0..3 {
        let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let anchored = app.wait_anchored(&token, &id).await;
        lost_txs.insert(id.clone(), anchored["anchor"]["tx_hash"].clone());
        lost_ids.push(id);
    }
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);

    // An entry that no row of ours wrote, anchored with the registrar key.
    let manifest = manifest(&app);
    let stranger_hash = sha256(b"anchored by someone else");
    let direct = EthersLedger::connect(&test_config(&app.anvil), manifest.clone()).unwrap();
    let stranger = LedgerJob::AnchorRecord(RecordAnchor {
        record_id: uuid::Uuid::new_v4(),
        anchor_hash: stranger_hash,
        patient_did: "did:meditrustal:stranger".into(),
        record_type: "LAB_RESULT".into(),
        timestamp: 1_700_000_000,
    });
    let Submission::Mined(_) = direct.submit(&stranger).await.unwrap() else {
        panic!("the stranger's anchor was not mined");
    };

    wait_until(30, "re-anchoring of the rolled-back records", || async {
        let counts = reanchor_counts(&app);
        let anchored = text_rows(
            &app,
            "SELECT id::text AS value FROM medical_records WHERE anchor_status = 'anchored'",
        );
        lost_ids.iter().all(|id| counts[id] == "1") && anchored.len() == 4
    })
    .await;
    wait_until(10, "the stranger's event to be reported", || async {
        !text_rows(&app, "SELECT kind AS value FROM chain_unmatched_events").is_empty()
    })
    .await;

    let counts = reanchor_counts(&app);
    assert_eq!(counts[&kept_id], "0");
    for id in &lost_ids {
        assert_eq!(counts[id], "1", "record {id}");
        let record = app.wait_anchored(&token, id).await;
        assert_ne!(record["anchor"]["tx_hash"], lost_txs[id], "record {id}");
    }
    let registrations = text_rows(
        &app,
        "SELECT reanchor_count::text AS value FROM outbox_jobs WHERE kind = 'register_user'",
    );
    assert_eq!(registrations, vec!["0"]);

    let hashes = anchor_hashes(&app);
    let events = record_added_events(&app.anvil, &manifest).await;
    let mut on_chain: Vec<&str> = events.iter().map(|(key, _)| key.as_str()).collect();
    on_chain.sort_unstable();
    let mut expected: Vec<String> = hashes.values().cloned().collect();
    expected.push(stranger_hash.to_string());
    expected.sort_unstable();
    assert_eq!(on_chain, expected);
    for id in hashes.keys() {
        let record: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(record["verified"], true, "{record}");
    }

    let unmatched = text_rows(
        &app,
        "SELECT kind || ' 0x' || encode(entry_key, 'hex') AS value FROM chain_unmatched_events",
    );
    assert_eq!(unmatched, vec![format!("anchor_record {stranger_hash}")]);
    let report = meditrustal::chain::reconcile(&app.settings).await.unwrap();
    assert_eq!(report.unmatched.len(), 1);
    assert_eq!(report.unmatched[0].event.entry.key, stranger_hash);
    assert!(report.reanchored.is_empty(), "{:?}", report.reanchored);
    let printed = meditrustal::chain::describe(&report);
    assert!(
        printed.contains(&format!("unmatched anchor_record {stranger_hash}")),
        "{printed}"
    );
}

/// Polls `sql` (one text column `value`) for up to 10 s until it returns a
/// value other than `old`, and returns it.
async fn wait_for_other_value(app: &TestApp, sql: &str, old: &str) -> String {
    for _ in 0..100 {
        if let Some(value) = text_rows(app, sql).pop() {
            if value != old {
                return value;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{sql} still returned {old:?} after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_transaction_is_replaced_with_higher_fees() {
    let app = TestApp::spawn_with(|settings| {
        settings.anchoring.mode = AnchorMode::PerRecord;
        settings.anchoring.replace_after_ms = 1000;
        settings.chain.receipt_timeout_ms = 300;
    })
    .await
    .unwrap();
    let (_, token) = app.patient("stan").await;
    let first = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    app.wait_anchored(&token, first["id"].as_str().unwrap())
        .await;

    app.anvil.set_automine(false).await.unwrap();
    let created = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let job_tx = format!(
        "SELECT '0x' || encode(tx_hash, 'hex') AS value FROM outbox_jobs \
         WHERE record_id = '{id}' AND tx_hash IS NOT NULL"
    );
    let original = wait_for_other_value(&app, &job_tx, "").await;
    let provider = app.anvil.provider().unwrap();
    let first_tx: H256 = original.parse().unwrap();
    let first_sent = provider.get_transaction(first_tx).await.unwrap().unwrap();
    assert_eq!(first_sent.block_number, None);
    let replacement = wait_for_other_value(&app, &job_tx, &original).await;

    let sent: H256 = replacement.parse().unwrap();
    let pending = provider.get_transaction(sent).await.unwrap().unwrap();
    assert_eq!(pending.block_number, None);
    assert_eq!(pending.nonce, first_sent.nonce);
    let raised = |new: Option<U256>, old: Option<U256>| new.unwrap() * 10 >= old.unwrap() * 11;
    assert!(
        raised(
            pending.max_priority_fee_per_gas,
            first_sent.max_priority_fee_per_gas
        ),
        "priority fee {:?} after {:?}",
        pending.max_priority_fee_per_gas,
        first_sent.max_priority_fee_per_gas
    );
    assert!(
        raised(pending.max_fee_per_gas, first_sent.max_fee_per_gas),
        "max fee {:?} after {:?}",
        pending.max_fee_per_gas,
        first_sent.max_fee_per_gas
    );
    let record_row = text_rows(
        &app,
        &format!(
            "SELECT '0x' || encode(anchor_tx_hash, 'hex') AS value FROM medical_records \
             WHERE id = '{id}'"
        ),
    );
    assert_eq!(record_row, vec![replacement.clone()]);

    app.anvil.set_automine(true).await.unwrap();
    let anchored = app.wait_anchored(&token, &id).await;
    let mined = anchored["anchor"]["tx_hash"].as_str().unwrap().to_owned();
    let mined_hash: H256 = mined.parse().unwrap();
    let receipt = provider
        .get_transaction_receipt(mined_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.status.unwrap().as_u64(), 1);
    assert_ne!(mined, original);
    assert!(provider
        .get_transaction_receipt(first_tx)
        .await
        .unwrap()
        .is_none());
    let mined_tx = provider.get_transaction(mined_hash).await.unwrap().unwrap();
    assert_eq!(mined_tx.nonce, pending.nonce);

    let jobs = text_rows(
        &app,
        &format!(
            "SELECT status || ' ' || attempts || ' 0x' || encode(tx_hash, 'hex') AS value \
             FROM outbox_jobs WHERE record_id = '{id}'"
        ),
    );
    assert_eq!(jobs, vec![format!("done 0 {mined}")]);
    let anchor_hash = anchor_hashes(&app)[&id].clone();
    let events = record_added_events(&app.anvil, &manifest(&app)).await;
    let for_record: Vec<_> = events
        .iter()
        .filter(|(key, _)| *key == anchor_hash)
        .collect();
    assert_eq!(for_record, vec![&(anchor_hash.clone(), mined.clone())]);
}

/// Anchor transaction hash of each record in `ids`, by record id, or null
/// while the record is not anchored.
async fn record_txs(app: &TestApp, token: &str, ids: &[String]) -> BTreeMap<String, Value> {
    let mut txs = BTreeMap::new();
    for id in ids {
        let record: Value = app
            .get(&format!("/medical-records/{id}"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        let anchored = record["anchor"]["status"] == "anchored";
        let tx = if anchored {
            record["anchor"]["tx_hash"].clone()
        } else {
            Value::Null
        };
        txs.insert(id.clone(), tx);
    }
    txs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_reanchors_rolled_back_batch() {
    // The resent root waits behind the nonce gap the rollback left until
    // the stuck-send timeout sends it again with a fresh nonce.
    let app = TestApp::spawn_with(|settings| {
        settings.anchoring.mode = AnchorMode::Batch;
        settings.anchoring.replace_after_ms = 1_000;
    })
    .await
    .unwrap();
    let (_, token) = app.patient("bea").await;
    let kept = app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    app.wait_anchored(&token, &kept_id).await;

    let provider = app.anvil.provider().unwrap();
    let snapshot: U256 = provider.request("evm_snapshot", ()).await.unwrap();
    let mut lost_ids = Vec::new();
    for _ in 0..3 {
        let created = app.create_record(&token, "VITAL_SIGNS", GLUCOSE).await;
        lost_ids.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &lost_ids {
        app.wait_anchored(&token, id).await;
    }
    let lost_txs = record_txs(&app, &token, &lost_ids).await;
    let reverted: bool = provider.request("evm_revert", [snapshot]).await.unwrap();
    assert!(reverted);

    // The resent transaction may get the same hash as the lost one: same
    // nonce, call and fees, signed deterministically.
    wait_until(30, "re-anchoring of the rolled-back batch", || async {
        // Three creates may form one or two batches; each lost batch is
        // reopened once and sent again.
        let unfinished = text_rows(
            &app,
            "SELECT count(*)::text AS value FROM outbox_jobs \
             WHERE kind = 'anchor_batch' AND status <> 'done'",
        );
        let reopened = text_rows(
            &app,
            "SELECT count(*)::text AS value FROM outbox_jobs \
             WHERE kind = 'anchor_batch' AND reanchor_count = 1",
        );
        let now = record_txs(&app, &token, &lost_ids).await;
        unfinished == vec!["0"]
            && reopened != vec!["0"]
            && lost_ids.iter().all(|id| now[id].is_string())
    })
    .await;
    let now = record_txs(&app, &token, &lost_ids).await;
    for id in &lost_ids {
        assert!(lost_txs[id].is_string(), "record {id} was anchored before");
        assert!(now[id].is_string(), "record {id} is anchored again");
    }

    // The batch jobs were reopened, never the record jobs folded into them.
    let record_reopens = text_rows(
        &app,
        "SELECT count(*)::text AS value FROM outbox_jobs \
         WHERE kind = 'anchor_record' AND reanchor_count > 0",
    );
    assert_eq!(record_reopens, vec!["0"]);
    let kept_batch_reopens = text_rows(
        &app,
        &format!(
            "SELECT job.reanchor_count::text AS value FROM outbox_jobs AS job \
             JOIN medical_records AS record ON record.anchor_batch_id = job.anchor_batch_id \
             WHERE job.kind = 'anchor_batch' AND record.id = '{kept_id}'"
        ),
    );
    assert_eq!(kept_batch_reopens, vec!["0"]);
    let unmatched = text_rows(&app, "SELECT kind AS value FROM chain_unmatched_events");
    assert_eq!(unmatched, Vec::<String>::new());
    for id in lost_ids.iter().chain([&kept_id]) {
        let report: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["verified"], true, "{report}");
    }
}
