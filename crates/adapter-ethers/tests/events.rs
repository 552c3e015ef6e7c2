//! The chain watcher's port and transaction replacement against a real
//! anvil node.

#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failure")]

use std::time::Duration;

use ethers::providers::Middleware;
use meditrustal_adapter_ethers::testing::{deploy_test_ledger, test_config, AnvilNode};
use meditrustal_adapter_ethers::{EthersLedger, WatchedEvent};
use meditrustal_crypto::sha256;
use meditrustal_ledger::{
    Address, AuditHeadAnchor, ChainAnchor, ChainEvents, ChainRole, Ledger, LedgerJob, RecordAnchor,
    Replacement, Submission, TxStatus, UserRegistration,
};
use uuid::Uuid;

fn record(seed: u32) -> LedgerJob {
    LedgerJob::AnchorRecord(RecordAnchor {
        record_id: Uuid::from_u128(u128::from(seed)),
        anchor_hash: sha256(&seed.to_be_bytes()),
        patient_did: "did:meditrustal:patient".to_owned(),
        record_type: "LAB_RESULT".to_owned(),
        timestamp: 1_767_225_600 + u64::from(seed),
    })
}

fn mined(submission: Submission) -> ChainAnchor {
    match submission {
        Submission::Mined(anchor) => anchor,
        Submission::Sent(tx_hash) => panic!("expected a mined transaction, got Sent({tx_hash})"),
    }
}

#[tokio::test]
async fn events_name_each_entry_with_its_job_key_and_block() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();
    let user = LedgerJob::RegisterUser(UserRegistration {
        user_id: Uuid::from_bytes([3; 16]),
        did: "did:meditrustal:user3".into(),
        address: Address::from_bytes([3; 20]),
        role: ChainRole::Doctor,
    });
    let head = LedgerJob::AnchorAuditHead(AuditHeadAnchor {
        seq: 9,
        head_hash: sha256(b"head 9"),
    });
    let jobs = [user, record(1), head];
    let mut anchors = Vec::new();
    for job in &jobs {
        anchors.push(mined(ledger.submit(job).await.unwrap()));
    }

    let head_block = ledger.head_block().await.unwrap();
    let events = ledger
        .events(manifest.deploy_block, head_block)
        .await
        .unwrap();

    assert_eq!(head_block, anchors[2].block_number);
    assert_eq!(events.len(), 3);
    for ((event, job), anchor) in events.iter().zip(&jobs).zip(&anchors) {
        assert_eq!(event.entry, job.entry_key());
        assert_eq!(event.tx_hash, anchor.tx_hash);
        assert_eq!(event.block.number, anchor.block_number);
        assert_eq!(
            Some(event.block.hash),
            ledger.block_hash(anchor.block_number).await.unwrap()
        );
    }
    assert_eq!(ledger.block_hash(head_block + 1).await.unwrap(), None);
}

#[tokio::test]
async fn log_watched_twice_is_one_event_of_the_first_kind() {
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let mut ledger = EthersLedger::connect(&test_config(&node), manifest.clone()).unwrap();
    let anchor = mined(ledger.submit(&record(2)).await.unwrap());
    let record_registry = manifest.contracts.medical_record_registry.address;
    let default_count = ledger.watched_events().len();

    // The same event added again under another kind must not double the
    // events the watcher counts.
    ledger.watch_event(WatchedEvent::new(
        record_registry,
        "RecordAdded(bytes32,string,string,uint256)",
        "added_kind",
    ));
    let events = ledger
        .events(anchor.block_number, anchor.block_number)
        .await
        .unwrap();

    assert_eq!(default_count, 6);
    assert_eq!(ledger.watched_events().len(), 7);
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event.entry.kind.as_str())
        .collect();
    assert_eq!(kinds, vec!["anchor_record"]);
}

#[tokio::test]
async fn pending_transaction_is_replaced_with_raised_fees() {
    let node = AnvilNode::start().await.unwrap();
    let (_, manifest) = deploy_test_ledger(&node).await.unwrap();
    let mut config = test_config(&node);
    config.receipt_timeout = Duration::from_millis(100);
    let ledger = EthersLedger::connect(&config, manifest).unwrap();
    node.set_automine(false).await.unwrap();
    let Submission::Sent(original) = ledger.submit(&record(3)).await.unwrap() else {
        panic!("expected Sent while mining is off");
    };

    let Replacement::Sent(replacement) = ledger.replace_transaction(&original).await.unwrap()
    else {
        panic!("expected a replacement");
    };

    let provider = node.provider().unwrap();
    let sent = provider
        .get_transaction(ethers::types::H256(*replacement.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(replacement, original);
    assert_eq!(sent.nonce, 5.into());
    node.set_automine(true).await.unwrap();
    let status = ledger.transaction_status(&replacement).await.unwrap();
    let TxStatus::Mined(anchor) = status else {
        panic!("expected the replacement mined, got {status:?}");
    };
    assert_eq!(anchor.tx_hash, replacement);
    assert_eq!(
        ledger.transaction_status(&original).await.unwrap(),
        TxStatus::Unknown
    );
    assert_eq!(
        ledger.replace_transaction(&replacement).await.unwrap(),
        Replacement::Mined(anchor)
    );
}
