//! Batch anchoring end to end: receipts over HTTP, `verify-receipt`
//! against the chain, and crash safety of the batcher and the outbox.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use ethers::providers::Middleware;
use ethers::types::{Filter, H256};
use ethers::utils::keccak256;
use meditrustal::receipt::verify_receipt;
use meditrustal_adapter_ethers::testing::test_config;
use meditrustal_adapter_ethers::{DeploymentManifest, EthersLedger};
use meditrustal_adapter_postgres::{PgBatchStore, PgOutboxStore};
use meditrustal_crypto::Digest;
use meditrustal_ledger::{
    AnchorMode, BackoffPolicy, BatchAnchorer, BatchPolicy, BatchRound, ChainStatus,
    ContractLocation, Ledger, LedgerError, LedgerJob, OnChainBatch, OnChainConsent, OnChainRecord,
    OutboxProcessor, Replacement, Submission, TxHash, TxStatus,
};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::TestApp;

const GLUCOSE: &str = include_str!("../../docs/examples/observation-glucose.json");

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn count(app: &TestApp, sql: &str) -> i64 {
    let mut connection = app.db().connect().unwrap();
    diesel::sql_query(sql)
        .get_result::<Count>(&mut connection)
        .unwrap()
        .n
}

async fn batch_events(app: &TestApp) -> usize {
    let topic = H256::from(keccak256("BatchAnchored(bytes32,uint256)"));
    let filter = Filter::new().from_block(0).topic0(topic);
    app.anvil
        .provider()
        .unwrap()
        .get_logs(&filter)
        .await
        .unwrap()
        .len()
}

fn temporary_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "meditrustal-{name}-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `verify-receipt` on `receipt` and returns the names of the
/// failed checks.
async fn failed_checks(app: &TestApp, receipt: &Value, content: Option<&str>) -> Vec<String> {
    let path = temporary_file("receipt", &receipt.to_string());
    let content_path = content.map(|text| temporary_file("content", text));
    let checks = verify_receipt(&path, &app.anvil.rpc_url(), content_path.as_deref())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    if let Some(content_path) = content_path {
        std::fs::remove_file(content_path).unwrap();
    }
    assert_eq!(checks.len(), 8 + usize::from(content.is_some()));
    checks
        .into_iter()
        .filter(|check| !check.passed)
        .map(|check| check.name.to_owned())
        .collect()
}

/// Flips the last hex digit of the string at `pointer`.
fn flip(receipt: &Value, pointer: &str) -> Value {
    let mut changed = receipt.clone();
    let text = changed
        .pointer(pointer)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let last = if text.ends_with('0') { '1' } else { '0' };
    *changed.pointer_mut(pointer).unwrap() = json!(format!("{}{last}", &text[..text.len() - 1]));
    changed
}

async fn spawn_batch_app(max_wait_ms: u64) -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.anchoring.mode = AnchorMode::Batch;
        settings.anchoring.batch_max_wait_ms = max_wait_ms;
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_a_batch_verifies_with_its_receipt() {
    let app = spawn_batch_app(1500).await;
    let (user, token) = app.patient("batchy").await;
    let mut ids = Vec::new();
    for kind in ["LAB_RESULT", "DIAGNOSIS", "VACCINATION"] {
        ids.push(
            app.create_record(&token, kind, GLUCOSE).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    let mut receipts = Vec::new();
    for id in &ids {
        let read = app.wait_anchored(&token, id).await;
        let response = app
            .get(&format!("/medical-records/{id}/proof"), Some(&token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let receipt: Value = response.json().await.unwrap();
        assert_eq!(receipt["anchor"]["tx_hash"], read["anchor"]["tx_hash"]);
        assert_eq!(receipt["leaf"]["record_id"], json!(id));
        assert_eq!(receipt["leaf"]["patient_did"], user["did"]);
        receipts.push(receipt);
    }
    assert_eq!(
        receipts[0]["anchor"]["tx_hash"],
        receipts[2]["anchor"]["tx_hash"]
    );
    assert_eq!(receipts[0]["root"], receipts[1]["root"]);
    assert_eq!(receipts[0]["leaf_count"], 3);
    assert_eq!(batch_events(&app).await, 1);

    for (id, receipt) in ids.iter().zip(&receipts) {
        assert_eq!(
            failed_checks(&app, receipt, Some(GLUCOSE)).await,
            Vec::<String>::new()
        );
        let report: Value = app
            .get(&format!("/medical-records/{id}/verify"), Some(&token))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["verified"], true, "{report}");
    }

    // The transaction carries the root and the leaf count only.
    let tx_hash: H256 = receipts[0]["anchor"]["tx_hash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let tx = app
        .anvil
        .provider()
        .unwrap()
        .get_transaction(tx_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.input.len(), 4 + 32 + 32);
    let input = hex::encode(&tx.input);
    assert!(!input.contains(&hex::encode(user["did"].as_str().unwrap())));
    assert!(!input.contains(&hex::encode("LAB_RESULT")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_with_one_changed_byte_fails_the_named_check() {
    let app = spawn_batch_app(100).await;
    let (_, token) = app.patient("tampa").await;
    let id = app.create_record(&token, "LAB_RESULT", GLUCOSE).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    app.wait_anchored(&token, &id).await;
    let receipt: Value = app
        .get(&format!("/medical-records/{id}/proof"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        failed_checks(&app, &receipt, None).await,
        Vec::<String>::new()
    );

    let cases: [(&str, &[&str]); 5] = [
        ("/leaf/salt", &["leaf_hash", "merkle_path"]),
        (
            "/leaf/data_hash",
            &["anchor_hash", "leaf_hash", "merkle_path"],
        ),
        ("/root", &["merkle_path", "anchor_event", "contract_state"]),
        ("/anchor/tx_hash", &["transaction", "anchor_event"]),
        (
            "/anchor/contract_address",
            &["anchor_event", "contract_state"],
        ),
    ];
    for (pointer, expected) in cases {
        let changed = flip(&receipt, pointer);
        assert_eq!(
            failed_checks(&app, &changed, None).await,
            expected,
            "{pointer}"
        );
    }
    if receipt["path"].as_array().unwrap().is_empty() {
        panic!("a record of a two-record batch has a sibling: {receipt}");
    }
    let changed = flip(&receipt, "/path/0/hash");
    assert_eq!(failed_checks(&app, &changed, None).await, ["merkle_path"]);
    let wrong_content = failed_checks(&app, &receipt, Some("{}")).await;
    assert_eq!(wrong_content, ["content"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_before_anchoring_is_a_conflict() {
    let app = spawn_batch_app(3_600_000).await;
    let (_, token) = app.patient("early").await;
    let (_, other_token) = app.patient("nosy").await;
    let id = app.create_record(&token, "LAB_RESULT", GLUCOSE).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .get(&format!("/medical-records/{id}/proof"), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "record_not_anchored");

    let response = app
        .get(&format!("/medical-records/{id}/proof"), Some(&other_token))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM audit_events WHERE action = 'record.proof'"
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_mode_has_no_batch_receipt() {
    let app = TestApp::spawn_with(|settings| settings.anchoring.mode = AnchorMode::PerRecord)
        .await
        .unwrap();
    let (_, token) = app.patient("single").await;
    let id = app.create_record(&token, "LAB_RESULT", GLUCOSE).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_anchored(&token, &id).await;

    let response = app
        .get(&format!("/medical-records/{id}/proof"), Some(&token))
        .await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "receipt_not_available");
    assert_eq!(batch_events(&app).await, 0);
}

/// A ledger that sends through the real one and then never returns, like
/// a worker killed after the transaction left but before it recorded it.
struct SendThenHang(Arc<EthersLedger>);

#[async_trait]
impl Ledger for SendThenHang {
    async fn submit(&self, job: &LedgerJob) -> Result<Submission, LedgerError> {
        self.0.submit(job).await?;
        std::future::pending().await
    }
    async fn transaction_status(&self, tx_hash: &TxHash) -> Result<TxStatus, LedgerError> {
        self.0.transaction_status(tx_hash).await
    }
    async fn replace_transaction(&self, tx_hash: &TxHash) -> Result<Replacement, LedgerError> {
        self.0.replace_transaction(tx_hash).await
    }
    async fn find_record(&self, hash: &Digest) -> Result<Option<OnChainRecord>, LedgerError> {
        self.0.find_record(hash).await
    }
    async fn find_batch(&self, root: &Digest) -> Result<Option<OnChainBatch>, LedgerError> {
        self.0.find_batch(root).await
    }
    fn batch_registry(&self) -> Option<ContractLocation> {
        self.0.batch_registry()
    }
    async fn find_consent(&self, id: uuid::Uuid) -> Result<Option<OnChainConsent>, LedgerError> {
        self.0.find_consent(id).await
    }
    async fn status(&self) -> Result<ChainStatus, LedgerError> {
        self.0.status().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_record_and_anchor_none_twice() {
    // The server's own batcher and outbox worker stay idle: batches never
    // fill or time out, and the worker polls and watches once an hour.
    let app = TestApp::spawn_with(|settings| {
        settings.anchoring.mode = AnchorMode::Batch;
        settings.anchoring.batch_max_wait_ms = 3_600_000;
        settings.anchoring.poll_interval_ms = 3_600_000;
        settings.chain.watch_interval_ms = 3_600_000;
        settings.anchoring.lease_secs = 1;
        settings.audit.anchor_interval_ms = 3_600_000;
    })
    .await
    .unwrap();
    let (_, token) = app.patient("crashy").await;
    for _ in 0..5 {
        app.create_record(&token, "LAB_RESULT", GLUCOSE).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = meditrustal::app::pool(&app.settings).unwrap();
    let manifest = DeploymentManifest::load(&app.data_dir.join("deployment.json")).unwrap();
    let ledger = Arc::new(EthersLedger::connect(&test_config(&app.anvil), manifest).unwrap());
    let policy = BatchPolicy {
        max_records: 1024,
        max_wait: Duration::from_millis(100),
        lease: Duration::from_secs(1),
    };
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(2);
    let outbox = || {
        let backoff = BackoffPolicy {
            lease: Duration::from_secs(1),
            ..BackoffPolicy::default()
        };
        OutboxProcessor::new(
            Arc::new(PgOutboxStore::for_batch_mode(pool.clone())),
            ledger.clone(),
            backoff,
        )
    };

    // 1. A batcher forms a batch and dies before anything is sent.
    let first = BatchAnchorer::new(Arc::new(PgBatchStore::new(pool.clone())), policy);
    let round = first.run_once(later).await.unwrap();
    assert!(
        matches!(round, BatchRound::Formed { leaf_count: 5, .. }),
        "{round:?}"
    );
    drop(first);
    assert_eq!(batch_events(&app).await, 0);
    // A restarted outbox worker sends it.
    let report = outbox().run_once(chrono::Utc::now()).await.unwrap();
    assert_eq!(report.mined, 1);
    assert_eq!(batch_events(&app).await, 1);

    // 2. The next batch's worker dies after its transaction left.
    for _ in 0..4 {
        app.create_record(&token, "DIAGNOSIS", GLUCOSE).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = BatchAnchorer::new(Arc::new(PgBatchStore::new(pool.clone())), policy);
    assert!(matches!(
        second.run_once(later).await.unwrap(),
        BatchRound::Formed { leaf_count: 4, .. }
    ));
    let hanging = OutboxProcessor::new(
        Arc::new(PgOutboxStore::for_batch_mode(pool.clone())),
        Arc::new(SendThenHang(ledger.clone())),
        BackoffPolicy {
            lease: Duration::from_secs(1),
            ..BackoffPolicy::default()
        },
    );
    let task = tokio::spawn(async move { hanging.run_once(chrono::Utc::now()).await });
    for _ in 0..100 {
        if batch_events(&app).await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(batch_events(&app).await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM anchor_batches WHERE status = 'pending'"
        ),
        1
    );

    // The restarted worker finds the root anchored and records the original
    // transaction instead of sending again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = outbox().run_once(chrono::Utc::now()).await.unwrap();
    assert_eq!(report.mined, 1);
    assert_eq!(batch_events(&app).await, 2);

    assert_eq!(count(&app, "SELECT count(*) AS n FROM medical_records"), 9);
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM medical_records WHERE anchor_status = 'anchored' AND anchor_batch_id IS NOT NULL"),
        9
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM anchor_batches WHERE status = 'anchored'"
        ),
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_jobs WHERE kind = 'anchor_record' AND status = 'done'"),
        9
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) AS n FROM outbox_jobs WHERE kind = 'anchor_batch' AND status = 'done'"
        ),
        2
    );
    assert_eq!(
        count(&app, "SELECT count(*) AS n FROM outbox_jobs WHERE status IN ('pending', 'sent') AND kind IN ('anchor_record', 'anchor_batch')"),
        0
    );
    // Every record of a batch stores the transaction that emitted its root.
    assert_eq!(
        count(&app, "SELECT count(DISTINCT (r.anchor_tx_hash, b.tx_hash)) AS n FROM medical_records r JOIN anchor_batches b ON b.id = r.anchor_batch_id WHERE r.anchor_tx_hash = b.tx_hash"),
        2
    );
    pool.close();
}
