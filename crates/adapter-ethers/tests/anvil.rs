//! Tests of the ethers adapter against a real anvil node, one node per test.

// Clippy's test exemption covers `#[test]` functions only, not the shared
// helpers below, which also panic on setup failures.
#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failure")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ethers::providers::Middleware;
use ethers::types::{H160, H256, U256};
use ethers::utils::keccak256;
use meditrustal_adapter_ethers::testing::{
    deploy_test_ledger, test_config, AnvilNode, ANVIL_CHAIN_ID, OTHER_KEY, REGISTRAR_ADDRESS,
};
use meditrustal_adapter_ethers::{
    check_deployment, deploy_contracts, deploy_missing_contracts, fund_on_dev_node,
    DeploymentError, DeploymentManifest, EthersLedger, RandomAccountGenerator, RegisteredUser,
};
use meditrustal_audit::{AnchoredHead, AuditAnchorLedger};
use meditrustal_crypto::{sha256, Digest};
use meditrustal_identity::AccountGenerator;
use meditrustal_ledger::{
    Address, AuditHeadAnchor, ChainAnchor, ChainRole, ChainStatus, Ledger, LedgerError, LedgerJob,
    OnChainRecord, RecordAnchor, Submission, TxStatus, UserRegistration,
};
use secrecy::SecretString;
use uuid::Uuid;

/// Addresses of the first four contracts anvil's first account creates
/// (nonces 0 to 3), which `deploy_contracts` deploys in this order:
/// `UserRegistry`, `MedicalRecordRegistry`, `ConsentRegistry`,
/// `AuditAnchorRegistry`, then `BatchAnchorRegistry`. The deployments fill
/// blocks 1 to 5, so a test's first transaction is mined in block 6.
const USER_REGISTRY_ADDRESS: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const RECORD_REGISTRY_ADDRESS: &str = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512";
const CONSENT_REGISTRY_ADDRESS: &str = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0";
const AUDIT_REGISTRY_ADDRESS: &str = "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9";

fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

fn user_job(seed: u8, role: ChainRole) -> LedgerJob {
    LedgerJob::RegisterUser(UserRegistration {
        user_id: Uuid::from_bytes([seed; 16]),
        did: format!("did:meditrustal:user{seed}"),
        address: Address::from_bytes([seed; 20]),
        role,
    })
}

fn audit_head(seq: u64) -> AuditHeadAnchor {
    AuditHeadAnchor {
        seq,
        head_hash: sha256(&seq.to_be_bytes()),
    }
}

fn record(seed: u32) -> RecordAnchor {
    RecordAnchor {
        record_id: Uuid::from_u128(u128::from(seed)),
        anchor_hash: sha256(&seed.to_be_bytes()),
        patient_did: "did:meditrustal:patient".to_owned(),
        record_type: "LAB_RESULT".to_owned(),
        timestamp: 1_767_225_600 + u64::from(seed),
    }
}

fn mined(submission: Submission) -> ChainAnchor {
    match submission {
        Submission::Mined(anchor) => anchor,
        Submission::Sent(tx_hash) => panic!("expected a mined transaction, got Sent({tx_hash})"),
    }
}

/// Reads the artifact's runtime code and returns its keccak-256 hash.
fn artifact_code_hash(contract: &str) -> Digest {
    let path = contracts_dir().join(format!("out/{contract}.json"));
    let artifact: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let code = artifact["deployedBytecode"].as_str().unwrap();
    Digest::from_bytes(keccak256(
        hex::decode(code.trim_start_matches("0x")).unwrap(),
    ))
}

fn other_sender_ledger(node: &AnvilNode, manifest: &DeploymentManifest) -> EthersLedger {
    let mut config = test_config(node);
    config.registrar_key = SecretString::from(OTHER_KEY.to_owned());
    EthersLedger::connect(&config, manifest.clone()).unwrap()
}

#[tokio::test]
async fn deploy_writes_manifest_that_passes_check() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();

    assert_eq!(manifest.chain_id, ANVIL_CHAIN_ID);
    assert_eq!(manifest.deploy_block, 1);
    assert_eq!(
        manifest.contracts.user_registry.address.to_string(),
        USER_REGISTRY_ADDRESS
    );
    assert_eq!(
        manifest
            .contracts
            .medical_record_registry
            .address
            .to_string(),
        RECORD_REGISTRY_ADDRESS
    );
    assert_eq!(
        manifest.contracts.user_registry.code_hash,
        artifact_code_hash("UserRegistry")
    );
    assert_eq!(
        manifest.contracts.medical_record_registry.code_hash,
        artifact_code_hash("MedicalRecordRegistry")
    );
    assert_eq!(
        manifest.contracts.consent_registry.address.to_string(),
        CONSENT_REGISTRY_ADDRESS
    );
    assert_eq!(
        manifest.contracts.consent_registry.code_hash,
        artifact_code_hash("ConsentRegistry")
    );
    let audit_registry = manifest.contracts.audit_anchor_registry.unwrap();
    assert_eq!(audit_registry.address.to_string(), AUDIT_REGISTRY_ADDRESS);
    assert_eq!(
        audit_registry.code_hash,
        artifact_code_hash("AuditAnchorRegistry")
    );
    assert_eq!(ledger.registrar().to_string(), REGISTRAR_ADDRESS);
    check_deployment(&test_config(&node), &manifest)
        .await
        .unwrap();

    let path = std::env::temp_dir().join(format!("meditrustal-manifest-{}.json", node.port()));
    manifest.save(&path).unwrap();
    let loaded = DeploymentManifest::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded, manifest);
    assert_eq!(
        ledger.status().await,
        Ok(ChainStatus {
            chain_id: ANVIL_CHAIN_ID,
            block_number: 5
        })
    );
}

#[tokio::test]
async fn fund_on_dev_node_lets_new_registrar_deploy() {
    let node = AnvilNode::start().await.unwrap();
    let account = RandomAccountGenerator.generate().unwrap();
    let mut config = test_config(&node);
    config.registrar_key = SecretString::from(hex::encode(&*account.secret_key));
    let registrar = H160(*account.address.as_bytes());
    let provider = node.provider().unwrap();

    let unfunded = deploy_contracts(&config).await.unwrap_err();
    fund_on_dev_node(&config).await.unwrap();
    let balance = provider.get_balance(registrar, None).await.unwrap();
    let manifest = deploy_contracts(&config).await.unwrap();

    assert_eq!(
        unfunded.to_string(),
        "deploying UserRegistry failed: eth_sendRawTransaction failed: Insufficient funds for \
         gas * price + value"
    );
    assert_eq!(balance, U256::exp10(22));
    check_deployment(&config, &manifest).await.unwrap();
}

#[tokio::test]
async fn register_user_is_mined_and_readable() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let job = user_job(7, ChainRole::Doctor);

    let anchor = mined(ledger.submit(&job).await.unwrap());

    assert_eq!(anchor.block_number, 6);
    assert_eq!(
        ledger.transaction_status(&anchor.tx_hash).await,
        Ok(TxStatus::Mined(anchor))
    );
    assert_eq!(
        ledger.find_user(&Address::from_bytes([7; 20])).await,
        Ok(Some(RegisteredUser {
            did: "did:meditrustal:user7".to_owned(),
            role: ChainRole::Doctor,
            block_number: 6,
        }))
    );
    assert_eq!(
        ledger.find_user(&Address::from_bytes([8; 20])).await,
        Ok(None)
    );
}

#[tokio::test]
async fn duplicate_registration_returns_original_transaction() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let job = user_job(9, ChainRole::Patient);
    let first = ledger.submit(&job).await.unwrap();

    let second = ledger.submit(&job).await.unwrap();

    assert_eq!(second, first);
    assert_eq!(mined(second).block_number, 6);
    let head = node.provider().unwrap().get_block_number().await.unwrap();
    assert_eq!(head.as_u64(), 6, "the resend must not send a transaction");
}

#[tokio::test]
async fn taken_account_with_other_did_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&user_job(4, ChainRole::Patient))
        .await
        .unwrap();
    let LedgerJob::RegisterUser(mut other) = user_job(4, ChainRole::Patient) else {
        unreachable!()
    };
    other.did = "did:meditrustal:someone-else".to_owned();

    let result = ledger.submit(&LedgerJob::RegisterUser(other)).await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(format!(
            "UserAlreadyRegistered(0x{}): the account is registered with another DID or role than \
             this job's",
            "04".repeat(20)
        )))
    );
}

#[tokio::test]
async fn anchored_record_reads_back_exact_fields() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let anchor_job = record(1);

    let anchor = mined(
        ledger
            .submit(&LedgerJob::AnchorRecord(anchor_job.clone()))
            .await
            .unwrap(),
    );

    assert_eq!(anchor.block_number, 6);
    assert_eq!(
        ledger.find_record(&anchor_job.anchor_hash).await,
        Ok(Some(OnChainRecord {
            patient_did: "did:meditrustal:patient".to_owned(),
            record_type: "LAB_RESULT".to_owned(),
            timestamp: 1_767_225_601,
            block_number: 6,
            tx_hash: Some(anchor.tx_hash),
        }))
    );
    let duplicate = ledger.submit(&LedgerJob::AnchorRecord(anchor_job)).await;
    assert_eq!(duplicate, Ok(Submission::Mined(anchor)));
}

#[tokio::test]
async fn anchored_hash_with_other_fields_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&LedgerJob::AnchorRecord(record(2)))
        .await
        .unwrap();
    let mut altered = record(2);
    altered.record_type = "PRESCRIPTION".to_owned();

    let result = ledger.submit(&LedgerJob::AnchorRecord(altered)).await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(format!(
            "RecordAlreadyExists({}): the anchored entry differs from this job's",
            record(2).anchor_hash
        )))
    );
}

#[tokio::test]
async fn unknown_record_hash_reads_as_none() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let found = ledger.find_record(&sha256(b"never anchored")).await;

    assert_eq!(found, Ok(None));
}

#[tokio::test]
async fn unknown_transaction_reports_unknown() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let status = ledger
        .transaction_status(&sha256(b"no such transaction"))
        .await;

    assert_eq!(status, Ok(TxStatus::Unknown));
}

#[tokio::test]
async fn unauthorized_sender_is_rejected_with_decoded_error() {
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let intruder = other_sender_ledger(&node, &manifest);

    let registration = intruder.submit(&user_job(3, ChainRole::Admin)).await;
    let anchoring = intruder.submit(&LedgerJob::AnchorRecord(record(3))).await;
    let audit_anchoring = intruder
        .submit(&LedgerJob::AnchorAuditHead(audit_head(3)))
        .await;

    assert_eq!(
        registration,
        Err(LedgerError::Rejected("Unauthorized()".to_owned()))
    );
    assert_eq!(
        anchoring,
        Err(LedgerError::Rejected("Unauthorized()".to_owned()))
    );
    assert_eq!(
        audit_anchoring,
        Err(LedgerError::Rejected("Unauthorized()".to_owned()))
    );
    let head = node.provider().unwrap().get_block_number().await.unwrap();
    assert_eq!(
        head.as_u64(),
        5,
        "a rejected job must not send a transaction"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_get_consecutive_nonces() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let ledger = Arc::new(ledger);

    let mut tasks = tokio::task::JoinSet::new();
    for seed in 100..120 {
        let ledger = Arc::clone(&ledger);
        tasks.spawn(async move { ledger.submit(&LedgerJob::AnchorRecord(record(seed))).await });
    }
    let mut anchors = Vec::new();
    while let Some(result) = tasks.join_next().await {
        anchors.push(mined(result.unwrap().unwrap()));
    }

    let provider = node.provider().unwrap();
    let mut nonces = Vec::new();
    for anchor in &anchors {
        let hash = H256(*anchor.tx_hash.as_bytes());
        let transaction = provider.get_transaction(hash).await.unwrap().unwrap();
        nonces.push(transaction.nonce.as_u64());
    }
    nonces.sort_unstable();
    // Nonces 0 to 4 went to the five deployments.
    assert_eq!(nonces, (5..25).collect::<Vec<u64>>());
    for seed in 100..120 {
        let found = ledger.find_record(&record(seed).anchor_hash).await.unwrap();
        assert_eq!(
            found.map(|entry| entry.timestamp),
            Some(record(seed).timestamp),
            "record {seed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_resends_return_first_transaction() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let job = LedgerJob::AnchorRecord(record(50));
    node.set_automine(false).await.unwrap();

    // Both simulations pass while nothing is mined, so both transactions
    // are sent; they are mined together and the second one reverts.
    let mine_later = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        node.set_automine(true).await.unwrap();
    };
    let (first, second, ()) = tokio::join!(ledger.submit(&job), ledger.submit(&job), mine_later);

    let first = mined(first.unwrap());
    assert_eq!(mined(second.unwrap()), first);
    assert_eq!(first.block_number, 6);
    let block = node
        .provider()
        .unwrap()
        .get_block(6u64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        block.transactions.len(),
        2,
        "both resends must have been sent"
    );
    assert_eq!(
        ledger.transaction_status(&first.tx_hash).await,
        Ok(TxStatus::Mined(first))
    );
}

#[tokio::test]
async fn nonce_recovers_after_foreign_send() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&LedgerJob::AnchorRecord(record(30)))
        .await
        .unwrap();

    // A second deployment takes nonces 6 to 10 behind the ledger's back.
    deploy_contracts(&test_config(&node)).await.unwrap();
    let anchor = mined(
        ledger
            .submit(&LedgerJob::AnchorRecord(record(31)))
            .await
            .unwrap(),
    );

    let hash = H256(*anchor.tx_hash.as_bytes());
    let transaction = node
        .provider()
        .unwrap()
        .get_transaction(hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(transaction.nonce.as_u64(), 11);
    assert_eq!(anchor.block_number, 12);
}

#[tokio::test]
async fn nonce_recovers_after_chain_reset() {
    let mut node = AnvilNode::start().await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&LedgerJob::AnchorRecord(record(40)))
        .await
        .unwrap();
    ledger
        .submit(&LedgerJob::AnchorRecord(record(41)))
        .await
        .unwrap();

    // The fresh chain gets the same contract addresses, but the ledger's
    // cached nonce (6) is ahead of the registrar's real one (4).
    node.restart().await.unwrap();
    let redeployed = deploy_contracts(&test_config(&node)).await.unwrap();
    assert_eq!(redeployed.contracts, manifest.contracts);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let anchor = mined(
        ledger
            .submit(&LedgerJob::AnchorRecord(record(42)))
            .await
            .unwrap(),
    );

    let hash = H256(*anchor.tx_hash.as_bytes());
    let transaction = node
        .provider()
        .unwrap()
        .get_transaction(hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(transaction.nonce.as_u64(), 5);
    assert_eq!(anchor.block_number, 6);
}

#[tokio::test]
async fn stopped_node_reports_unavailable_quickly() {
    let mut node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let anchor = mined(
        ledger
            .submit(&LedgerJob::AnchorRecord(record(5)))
            .await
            .unwrap(),
    );
    node.stop().await.unwrap();
    // Let the deployment check expire, so that the first call is eth_chainId.
    tokio::time::sleep(Duration::from_millis(250)).await;

    let started = Instant::now();
    let submitted = ledger.submit(&LedgerJob::AnchorRecord(record(6))).await;
    let status = ledger.transaction_status(&anchor.tx_hash).await;
    let found = ledger.find_record(&record(5).anchor_hash).await;
    let elapsed = started.elapsed();

    for (call, result) in [
        ("submit", submitted.map(|_| ())),
        ("status", status.map(|_| ())),
        ("find", found.map(|_| ())),
    ] {
        match result {
            Err(LedgerError::Unavailable(message)) => {
                assert!(message.starts_with("eth_"), "{call}: {message}");
                // The node URL may carry an API key, so errors never name it.
                assert!(
                    !message.contains(&format!("127.0.0.1:{}", node.port())),
                    "{call}: {message}"
                );
                assert!(message.contains("<rpc url>"), "{call}: {message}");
            }
            other => panic!("{call}: expected Unavailable, got {other:?}"),
        }
    }
    assert!(
        elapsed < Duration::from_secs(1),
        "three calls took {elapsed:?}"
    );
}

#[tokio::test]
async fn unresponsive_node_times_out_as_unavailable() {
    // Accepts connections into the backlog but never responds to a request.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let mut config = test_config(&node);
    config.rpc_url = format!("http://{}", silent.local_addr().unwrap());
    config.rpc_timeout = Duration::from_millis(300);
    let ledger = EthersLedger::connect(&config, manifest).unwrap();

    let started = Instant::now();
    let status = ledger.status().await;
    let elapsed = started.elapsed();

    assert_eq!(
        status,
        Err(LedgerError::Unavailable(
            "eth_chainId timed out after 300 ms".to_owned()
        ))
    );
    assert!(elapsed < Duration::from_secs(1), "status took {elapsed:?}");
}

#[tokio::test]
async fn restart_without_state_reports_contracts_missing() {
    let mut node = AnvilNode::start().await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&LedgerJob::AnchorRecord(record(7)))
        .await
        .unwrap();

    node.restart().await.unwrap();
    // Let the deployment check expire; within it a send could still reach
    // the empty address, which `submit` reports once the receipt shows no
    // event.
    tokio::time::sleep(Duration::from_millis(250)).await;

    assert_eq!(
        ledger.submit(&LedgerJob::AnchorRecord(record(8))).await,
        Err(LedgerError::ContractsMissing)
    );
    assert_eq!(
        ledger.find_record(&record(7).anchor_hash).await,
        Err(LedgerError::ContractsMissing)
    );
    assert_eq!(ledger.status().await, Err(LedgerError::ContractsMissing));
    let provider = node.provider().unwrap();
    assert_eq!(
        provider.get_block_number().await.unwrap().as_u64(),
        0,
        "nothing may be sent"
    );

    let error = check_deployment(&test_config(&node), &manifest)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeploymentError::CodeMissing { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "no contract code at {USER_REGISTRY_ADDRESS} on chain 31337 (expected UserRegistry); \
             run `meditrustal deploy-contracts`"
        )
    );
}

#[tokio::test]
async fn restart_with_state_keeps_contracts_and_entries() {
    let state_file =
        std::env::temp_dir().join(format!("meditrustal-anvil-state-{}.json", Uuid::new_v4()));
    let mut node = AnvilNode::start_with_state(&state_file).await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();
    let job = LedgerJob::AnchorRecord(record(11));
    let anchor = mined(ledger.submit(&job).await.unwrap());

    node.restart().await.unwrap();

    check_deployment(&test_config(&node), &manifest)
        .await
        .unwrap();
    assert_eq!(ledger.submit(&job).await, Ok(Submission::Mined(anchor)));
    let next = mined(
        ledger
            .submit(&LedgerJob::AnchorRecord(record(12)))
            .await
            .unwrap(),
    );
    assert_eq!(next.block_number, anchor.block_number + 1);
    drop(node);
    std::fs::remove_file(&state_file).unwrap();
}

#[tokio::test]
async fn automine_off_returns_sent_then_mined() {
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let mut config = test_config(&node);
    config.receipt_timeout = Duration::from_millis(200);
    let ledger = EthersLedger::connect(&config, manifest).unwrap();
    node.set_automine(false).await.unwrap();

    let started = Instant::now();
    let submission = ledger
        .submit(&LedgerJob::AnchorRecord(record(20)))
        .await
        .unwrap();
    let elapsed = started.elapsed();

    let Submission::Sent(tx_hash) = submission else {
        panic!("expected Sent while mining is off, got {submission:?}");
    };
    assert!(elapsed < Duration::from_secs(1), "submit took {elapsed:?}");
    assert_eq!(
        ledger.transaction_status(&tx_hash).await,
        Ok(TxStatus::Pending)
    );

    node.set_automine(true).await.unwrap();

    assert_eq!(
        ledger.transaction_status(&tx_hash).await,
        Ok(TxStatus::Mined(ChainAnchor {
            tx_hash,
            block_number: 6
        }))
    );
}

#[tokio::test]
async fn audit_heads_are_anchored_and_listed_in_order() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    assert_eq!(ledger.anchored_heads().await, Ok(Vec::new()));

    let mut expected = Vec::new();
    for seq in [5, 3, 40] {
        let job = audit_head(seq);
        let anchor = mined(
            ledger
                .submit(&LedgerJob::AnchorAuditHead(job))
                .await
                .unwrap(),
        );
        expected.push(AnchoredHead {
            seq,
            head_hash: job.head_hash,
            block_number: anchor.block_number,
        });
    }

    assert_eq!(ledger.anchored_heads().await, Ok(expected.clone()));
    assert_eq!(
        expected
            .iter()
            .map(|head| head.block_number)
            .collect::<Vec<_>>(),
        vec![6, 7, 8]
    );
}

#[tokio::test]
async fn resent_audit_head_returns_original_transaction() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    let job = LedgerJob::AnchorAuditHead(audit_head(9));
    let first = ledger.submit(&job).await.unwrap();

    let second = ledger.submit(&job).await.unwrap();

    assert_eq!(second, first);
    let head = node.provider().unwrap().get_block_number().await.unwrap();
    assert_eq!(head.as_u64(), 6, "the resend must not send a transaction");
}

#[tokio::test]
async fn anchored_seq_with_other_hash_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    ledger
        .submit(&LedgerJob::AnchorAuditHead(audit_head(9)))
        .await
        .unwrap();
    let replacement = AuditHeadAnchor {
        seq: 9,
        head_hash: sha256(b"rewritten chain"),
    };

    let result = ledger
        .submit(&LedgerJob::AnchorAuditHead(replacement))
        .await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(
            "HeadAlreadyAnchored(9): the anchored head hash differs from this job's".to_owned()
        ))
    );
    assert_eq!(ledger.anchored_heads().await.unwrap().len(), 1);
}

#[tokio::test]
async fn zero_sequence_number_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let result = ledger
        .submit(&LedgerJob::AnchorAuditHead(audit_head(0)))
        .await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(format!(
            "InvalidHead(0, {})",
            audit_head(0).head_hash
        )))
    );
}

#[tokio::test]
async fn manifest_without_audit_registry_gets_it_added() {
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let mut old = manifest.clone();
    old.contracts.audit_anchor_registry = None;
    let config = test_config(&node);

    let missing = check_deployment(&config, &old).await.unwrap_err();
    let old_ledger = EthersLedger::connect(&config, old.clone()).unwrap();
    let audit_job = old_ledger
        .submit(&LedgerJob::AnchorAuditHead(audit_head(1)))
        .await;
    let updated = deploy_missing_contracts(&config, &old).await.unwrap();

    assert_eq!(
        missing.to_string(),
        "the deployment manifest has no AuditAnchorRegistry; run `meditrustal deploy-contracts \
         --if-needed` to deploy it beside the existing contracts"
    );
    assert_eq!(audit_job, Err(LedgerError::ContractsMissing));
    assert_eq!(
        updated.contracts.user_registry,
        manifest.contracts.user_registry
    );
    assert_eq!(
        updated.contracts.medical_record_registry,
        manifest.contracts.medical_record_registry
    );
    assert_ne!(
        updated.contracts.audit_anchor_registry,
        manifest.contracts.audit_anchor_registry
    );
    check_deployment(&config, &updated).await.unwrap();
}

#[test]
fn committed_artifacts_match_contract_sources() {
    let output = Command::new("node")
        .arg(contracts_dir().join("compile.js"))
        .arg("--check")
        .output()
        .expect("node is installed");

    assert!(
        output.status.success(),
        "compile.js --check failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn compile_check_names_a_stale_artifact() {
    // Work on a copy, because other tests read the committed artifacts.
    let copy = std::env::temp_dir().join(format!("meditrustal-contracts-{}", Uuid::new_v4()));
    std::fs::create_dir_all(copy.join("out")).unwrap();
    for file in [
        "compile.js",
        "UserRegistry.sol",
        "MedicalRecordRegistry.sol",
        "ConsentRegistry.sol",
        "AuditAnchorRegistry.sol",
        "out/UserRegistry.json",
        "out/MedicalRecordRegistry.json",
        "out/ConsentRegistry.json",
        "out/AuditAnchorRegistry.json",
        "BatchAnchorRegistry.sol",
        "out/BatchAnchorRegistry.json",
        "EventOnlyBatchAnchor.sol",
        "out/EventOnlyBatchAnchor.json",
    ] {
        std::fs::copy(contracts_dir().join(file), copy.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(
        contracts_dir().join("node_modules").canonicalize().unwrap(),
        copy.join("node_modules"),
    )
    .unwrap();
    let artifact = copy.join("out/MedicalRecordRegistry.json");
    let text = std::fs::read_to_string(&artifact).unwrap();
    std::fs::write(
        &artifact,
        text.replacen("\"bytecode\": \"0x", "\"bytecode\": \"0x00", 1),
    )
    .unwrap();

    let output = Command::new("node")
        .args(["compile.js", "--check"])
        .current_dir(&copy)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&copy).unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "stale contract artifact: out/MedicalRecordRegistry.json does not match the compiled \
         sources\nrun `npm run build --prefix contracts` and commit contracts/out/\n"
    );
}
