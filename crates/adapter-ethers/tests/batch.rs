//! Batch anchoring on `BatchAnchorRegistry` against a real anvil node.

#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failure")]

use ethers::providers::Middleware;
use ethers::types::{Filter, H256};
use ethers::utils::keccak256;
use meditrustal_adapter_ethers::testing::{
    deploy_test_ledger, measure_event_only_anchor_gas, AnvilNode,
};
use meditrustal_crypto::Digest;
use meditrustal_ledger::{BatchAnchor, Ledger, LedgerError, LedgerJob, OnChainBatch, Submission};

fn batch(root_byte: u8, leaf_count: u32) -> LedgerJob {
    LedgerJob::AnchorBatch(BatchAnchor {
        batch_id: 1,
        root: Digest::from_bytes([root_byte; 32]),
        leaf_count,
    })
}

async fn batch_events(node: &AnvilNode) -> usize {
    let topic = H256::from(keccak256("BatchAnchored(bytes32,uint256)"));
    let filter = Filter::new().from_block(0).topic0(topic);
    node.provider()
        .unwrap()
        .get_logs(&filter)
        .await
        .unwrap()
        .len()
}

/// Gas per record of both designs, for docs/anchoring.md. The registry
/// stores one slot per root; the baseline only emits the event.
#[tokio::test]
async fn batch_of_1024_costs_under_50_gas_per_record() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let mut rows = Vec::new();
    for leaf_count in [1u32, 16, 256, 1024] {
        let stored = ledger.measure_batch_anchor_gas(leaf_count).await.unwrap();
        let event_only = measure_event_only_anchor_gas(&node, leaf_count)
            .await
            .unwrap();
        rows.push((leaf_count, stored.gas_used, event_only));
    }
    for (leaf_count, stored, event_only) in &rows {
        println!(
            "leaves {leaf_count}: storage {stored} gas ({} per record), event only \
             {event_only} gas ({} per record)",
            stored / u64::from(*leaf_count),
            event_only / u64::from(*leaf_count)
        );
    }

    let stored_1024 = ledger.measure_batch_anchor_gas(1024).await.unwrap();
    assert_eq!(stored_1024.leaf_count, 1024);
    assert!(
        stored_1024.gas_used / 1024 < 50,
        "{} gas for 1024 records",
        stored_1024.gas_used
    );
    assert_eq!(stored_1024.per_leaf(), stored_1024.gas_used / 1024);
}

#[tokio::test]
async fn resent_batch_returns_the_original_transaction() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let first = ledger.submit(&batch(0xab, 3)).await.unwrap();
    let second = ledger.submit(&batch(0xab, 3)).await.unwrap();

    let Submission::Mined(anchor) = first else {
        panic!("first send not mined: {first:?}")
    };
    assert_eq!(second, Submission::Mined(anchor));
    assert_eq!(batch_events(&node).await, 1);
    assert_eq!(
        ledger
            .find_batch(&Digest::from_bytes([0xab; 32]))
            .await
            .unwrap(),
        Some(OnChainBatch {
            leaf_count: 3,
            block_number: anchor.block_number,
            tx_hash: Some(anchor.tx_hash),
        })
    );
    assert_eq!(
        ledger
            .find_batch(&Digest::from_bytes([0xcd; 32]))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn same_root_with_other_leaf_count_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();
    ledger.submit(&batch(0x11, 3)).await.unwrap();

    let result = ledger.submit(&batch(0x11, 4)).await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(format!(
            "BatchAlreadyAnchored(0x{}): the anchored leaf count 3 differs from this job's 4",
            "11".repeat(32)
        )))
    );
    assert_eq!(batch_events(&node).await, 1);
}

#[tokio::test]
async fn empty_batch_is_rejected() {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, _) = deploy_test_ledger(&node).await.unwrap();

    let result = ledger.submit(&batch(0x22, 0)).await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected(format!(
            "InvalidBatch(0x{}, 0)",
            "22".repeat(32)
        )))
    );
}
