//! Two `meditrustal serve` processes on one database and one anvil node:
//! only the holder of the signer lock sends transactions, every record is
//! anchored exactly once, and the other process takes over when the
//! holder dies.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "tests: a failed step must fail the test"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use ethers::providers::Middleware;
use ethers::types::{Filter, H160, H256};
use meditrustal_adapter_ethers::testing::{deploy_test_ledger, AnvilNode, REGISTRAR_KEY};
use meditrustal_adapter_ethers::DeploymentManifest;
use meditrustal_adapter_postgres::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery";

/// A `meditrustal serve` process with its log in a file.
struct Server {
    process: Child,
    base_url: String,
    log: PathBuf,
}

impl Server {
    /// Starts a server anchoring in `mode` (`batch` or `per_record`).
    fn start(db_url: &str, anvil: &AnvilNode, data_dir: &Path, name: &str, mode: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = data_dir.join(format!("{name}.log"));
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let process = Command::new(env!("CARGO_BIN_EXE_meditrustal"))
            .arg("serve")
            .env("MEDITRUSTAL_CONFIG_DIR", config_dir)
            // No such file: default.toml and these variables only.
            .env("MEDITRUSTAL_ENV", "instances-test")
            .env("MEDITRUSTAL__DATA_DIR", data_dir)
            .env("MEDITRUSTAL__SERVER__PORT", port.to_string())
            .env("MEDITRUSTAL__SERVER__WORKERS", "2")
            .env("MEDITRUSTAL__DATABASE__URL", db_url)
            .env("MEDITRUSTAL__CHAIN__RPC_URL", anvil.rpc_url())
            .env("MEDITRUSTAL__CHAIN__REGISTRAR_KEY", REGISTRAR_KEY)
            .env("MEDITRUSTAL__CHAIN__POLL_INTERVAL_MS", "10")
            .env("MEDITRUSTAL__CHAIN__CONFIRMATIONS", "0")
            .env("MEDITRUSTAL__CHAIN__WATCH_INTERVAL_MS", "500")
            .env("MEDITRUSTAL__ANCHORING__MODE", mode)
            .env("MEDITRUSTAL__ANCHORING__BATCH_MAX_WAIT_MS", "200")
            .env("MEDITRUSTAL__ANCHORING__POLL_INTERVAL_MS", "100")
            .env("MEDITRUSTAL__ANCHORING__INITIAL_BACKOFF_MS", "100")
            .env("MEDITRUSTAL__ANCHORING__MAX_BACKOFF_MS", "1000")
            .env("MEDITRUSTAL__ANCHORING__CHECK_INTERVAL_MS", "200")
            .env("MEDITRUSTAL__ANCHORING__LEASE_SECS", "3")
            .env("MEDITRUSTAL__ANCHORING__SIGNER_RETRY_MS", "200")
            .env("MEDITRUSTAL__AUTH__BCRYPT_COST", "4")
            // Keys with letters: the config loader reads an all-digit value
            // as a number.
            .env("MEDITRUSTAL__AUTH__SIGNING_KEY", "1a".repeat(32))
            .env("MEDITRUSTAL__CRYPTO__MASTER_KEY", "a7".repeat(32))
            .env("MEDITRUSTAL__LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("starting meditrustal serve");
        Self {
            process,
            base_url: format!("http://127.0.0.1:{port}/api/v1"),
            log,
        }
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        for _ in 0..300 {
            if let Ok(response) = client
                .get(format!("{}/health/live", self.base_url))
                .send()
                .await
            {
                if response.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.process.try_wait().unwrap() {
                panic!("server exited with {status}: {}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server did not start: {}", self.log_text());
    }

    /// Standard output (the log lines) followed by standard error.
    fn log_text(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
        out + &err
    }

    fn holds_signer_lock(&self) -> bool {
        self.log_text().contains("signer lock taken")
    }

    fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn register_and_login(client: &reqwest::Client, server: &Server, name: &str) -> String {
    let response = client
        .post(format!("{}/auth/register", server.base_url))
        .json(
            &json!({"username": name, "email": format!("{name}@example.org"),
                      "password": PASSWORD, "role": "PATIENT"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "registering {name}");
    let response = client
        .post(format!("{}/auth/login/json", server.base_url))
        .json(&json!({"username_or_email": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn create_records(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    count: usize,
) -> Vec<String> {
    let requests = (0..count).map(|index| async move {
        let response = client
            .post(format!("{}/medical-records", server.base_url))
            .bearer_auth(token)
            .json(&json!({"record_type": "LAB_RESULT", "raw_data": format!("{{\"n\": {index}}}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    });
    futures::future::join_all(requests).await
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    value: String,
}

fn text_rows(url: &str, sql: &str) -> Vec<String> {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql)
        .load::<Row>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|row| row.value)
        .collect()
}

async fn wait_all_anchored(url: &str, expected: usize) {
    for _ in 0..600 {
        let anchored = text_rows(
            url,
            "SELECT count(*)::text AS value FROM medical_records WHERE anchor_status = 'anchored'",
        );
        if anchored == vec![expected.to_string()] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not every record was anchored within 60 s");
}

/// `(record hash, tx hash)` of every `RecordAdded` event.
async fn record_events(anvil: &AnvilNode, manifest: &DeploymentManifest) -> Vec<(String, String)> {
    let registry = H160(
        *manifest
            .contracts
            .medical_record_registry
            .address
            .as_bytes(),
    );
    let signature = H256(ethers::utils::keccak256(
        "RecordAdded(bytes32,string,string,uint256)",
    ));
    let filter = Filter::new()
        .from_block(0u64)
        .address(registry)
        .topic0(signature);
    anvil
        .provider()
        .unwrap()
        .get_logs(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|log| {
            (
                format!("{:#x}", log.topics[1]),
                format!("{:#x}", log.transaction_hash.unwrap()),
            )
        })
        .collect()
}

/// Checks that the chain holds each record exactly once, in the
/// transaction the database records.
async fn assert_anchored_once(url: &str, anvil: &AnvilNode, manifest: &DeploymentManifest) {
    let mut rows = text_rows(
        url,
        "SELECT '0x' || encode(anchor_hash, 'hex') || ' 0x' || encode(anchor_tx_hash, 'hex') \
         AS value FROM medical_records",
    );
    rows.sort_unstable();
    let mut events: Vec<String> = record_events(anvil, manifest)
        .await
        .into_iter()
        .map(|(key, tx)| format!("{key} {tx}"))
        .collect();
    events.sort_unstable();
    assert_eq!(events, rows);
    let keys: BTreeSet<&str> = events.iter().map(|event| &event[..66]).collect();
    assert_eq!(keys.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_anchor_each_record_once_and_take_over() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url().expose_secret().to_owned();
    let anvil = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&anvil).await.unwrap();
    let data_dir = std::env::temp_dir().join(format!(
        "meditrustal-instances-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&data_dir).unwrap();
    manifest.save(&data_dir.join("deployment.json")).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The first start records the master key's check value; the second
    // then finds it.
    // Per-record mode, so that each record has its own event to count.
    let mut first = Server::start(&url, &anvil, &data_dir, "first", "per_record");
    first.wait_ready(&client).await;
    let mut second = Server::start(&url, &anvil, &data_dir, "second", "per_record");
    second.wait_ready(&client).await;

    let first_token = register_and_login(&client, &first, "ann").await;
    let second_token = register_and_login(&client, &second, "bea").await;
    let (created, more) = tokio::join!(
        create_records(&client, &first, &first_token, 15),
        create_records(&client, &second, &second_token, 15),
    );
    assert_eq!(created.len() + more.len(), 30);
    wait_all_anchored(&url, 30).await;
    assert_anchored_once(&url, &anvil, &manifest).await;

    let first_holds = first.holds_signer_lock();
    let second_holds = second.holds_signer_lock();
    assert_ne!(
        first_holds, second_holds,
        "exactly one server takes the signer lock"
    );
    let (mut holder, other, holder_token, other_token) = if first_holds {
        (first, second, &first_token, &second_token)
    } else {
        (second, first, &second_token, &first_token)
    };
    let jobs = text_rows(
        &url,
        "SELECT status || ' ' || attempts || ' ' || coalesce(last_error, '-') AS value \
         FROM outbox_jobs WHERE kind = 'anchor_record'",
    );
    assert_eq!(jobs, vec!["done 0 -".to_owned(); 30]);

    // Queue work on both, then kill the holder: the other takes the lock
    // when the holder's database session ends and finishes the queue.
    let queued = create_records(&client, &holder, holder_token, 5).await;
    holder.kill();
    let after = create_records(&client, &other, other_token, 10).await;
    assert_eq!(queued.len() + after.len(), 15);
    wait_all_anchored(&url, 45).await;
    assert_anchored_once(&url, &anvil, &manifest).await;
    assert!(other.holds_signer_lock(), "{}", other.log_text());
    let nonce_errors = text_rows(
        &url,
        "SELECT coalesce(last_error, '-') AS value FROM outbox_jobs \
         WHERE last_error ILIKE '%nonce%'",
    );
    assert_eq!(nonce_errors, Vec::<String>::new());

    let _removed = std::fs::remove_dir_all(&data_dir);
}

/// `(root, tx hash)` of every `BatchAnchored` event.
async fn batch_events(anvil: &AnvilNode, manifest: &DeploymentManifest) -> Vec<String> {
    let registry = manifest
        .contracts
        .batch_anchor_registry
        .expect("the deployment has a batch registry");
    let signature = H256(ethers::utils::keccak256("BatchAnchored(bytes32,uint256)"));
    let filter = Filter::new()
        .from_block(0u64)
        .address(H160(*registry.address.as_bytes()))
        .topic0(signature);
    anvil
        .provider()
        .unwrap()
        .get_logs(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|log| format!("{:#x} {:#x}", log.topics[1], log.transaction_hash.unwrap()))
        .collect()
}

/// Checks that the chain contains each batch root exactly once, in the
/// transaction the database records, and that every record is anchored
/// in its batch's transaction.
async fn assert_batches_anchored_once(
    url: &str,
    anvil: &AnvilNode,
    manifest: &DeploymentManifest,
    records: usize,
) {
    let mut rows = text_rows(
        url,
        "SELECT '0x' || encode(root, 'hex') || ' 0x' || encode(tx_hash, 'hex') AS value \
         FROM anchor_batches",
    );
    rows.sort_unstable();
    let mut events = batch_events(anvil, manifest).await;
    events.sort_unstable();
    assert_eq!(events, rows);
    let roots: BTreeSet<&str> = events.iter().map(|event| &event[..66]).collect();
    assert_eq!(roots.len(), events.len());

    let in_batch_tx = text_rows(
        url,
        "SELECT count(*)::text AS value FROM medical_records AS record \
         JOIN anchor_batches AS batch ON batch.id = record.anchor_batch_id \
         WHERE record.anchor_tx_hash = batch.tx_hash",
    );
    assert_eq!(in_batch_tx, vec![records.to_string()]);
    let leaves = text_rows(
        url,
        "SELECT coalesce(sum(leaf_count), 0)::text AS value FROM anchor_batches",
    );
    assert_eq!(leaves, vec![records.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_batching_servers_anchor_each_record_once() {
    let db = TestDatabase::create().await.unwrap();
    let url = db.url().expose_secret().to_owned();
    let anvil = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&anvil).await.unwrap();
    let data_dir = std::env::temp_dir().join(format!(
        "meditrustal-instances-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&data_dir).unwrap();
    manifest.save(&data_dir.join("deployment.json")).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let mut first = Server::start(&url, &anvil, &data_dir, "first", "batch");
    first.wait_ready(&client).await;
    let mut second = Server::start(&url, &anvil, &data_dir, "second", "batch");
    second.wait_ready(&client).await;

    let first_token = register_and_login(&client, &first, "cyd").await;
    let second_token = register_and_login(&client, &second, "dov").await;
    let (created, more) = tokio::join!(
        create_records(&client, &first, &first_token, 15),
        create_records(&client, &second, &second_token, 15),
    );
    assert_eq!(created.len() + more.len(), 30);
    wait_all_anchored(&url, 30).await;
    assert_batches_anchored_once(&url, &anvil, &manifest, 30).await;

    // Both servers form batches; killing the lock holder with work queued
    // loses nothing.
    let (mut holder, other, holder_token, other_token) = if first.holds_signer_lock() {
        (first, second, &first_token, &second_token)
    } else {
        (second, first, &second_token, &first_token)
    };
    let queued = create_records(&client, &holder, holder_token, 5).await;
    holder.kill();
    let after = create_records(&client, &other, other_token, 10).await;
    assert_eq!(queued.len() + after.len(), 15);
    wait_all_anchored(&url, 45).await;
    assert_batches_anchored_once(&url, &anvil, &manifest, 45).await;
    let nonce_errors = text_rows(
        &url,
        "SELECT coalesce(last_error, '-') AS value FROM outbox_jobs \
         WHERE last_error ILIKE '%nonce%'",
    );
    assert_eq!(nonce_errors, Vec::<String>::new());

    let _removed = std::fs::remove_dir_all(&data_dir);
}
