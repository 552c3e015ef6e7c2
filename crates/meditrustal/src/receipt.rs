//! `meditrustal verify-receipt`: checks a batch anchor receipt against a
//! chain, with no access to our database or configuration.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use meditrustal_adapter_ethers::{read_batch_evidence, BatchEvidence};
use meditrustal_records::{Receipt, ReceiptCheck};

/// Timeout of each JSON-RPC call the check makes.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the receipt at `path` and runs every check: the offline ones
/// (format, content when `content` is given, anchor hash, leaf hash, Merkle
/// path) and the chain ones against the node at `rpc_url` (chain id,
/// transaction, anchor event, contract state). Errors: the receipt file
/// cannot be read or is not receipt JSON, or the content file cannot be
/// read. A node that cannot be reached fails the chain checks.
pub async fn verify_receipt(
    path: &Path,
    rpc_url: &str,
    content: Option<&Path>,
) -> anyhow::Result<Vec<ReceiptCheck>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read receipt {}", path.display()))?;
    let receipt: Receipt = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a receipt JSON document", path.display()))?;
    let content = content
        .map(|file| {
            std::fs::read(file).with_context(|| format!("cannot read content {}", file.display()))
        })
        .transpose()?;

    let mut checks = receipt.check_offline(content.as_deref());
    let anchor = &receipt.anchor;
    match read_batch_evidence(
        rpc_url,
        RPC_TIMEOUT,
        &anchor.contract_address,
        &anchor.tx_hash,
        &receipt.root,
    )
    .await
    {
        Ok(evidence) => checks.extend(chain_checks(&receipt, &evidence)),
        Err(error) => {
            for name in ["chain_id", "transaction", "anchor_event", "contract_state"] {
                checks.push(ReceiptCheck::fail(
                    name,
                    format!("could not read the chain: {error}"),
                ));
            }
        }
    }
    Ok(checks)
}

/// Compares the receipt's anchor with what the chain holds.
pub fn chain_checks(receipt: &Receipt, evidence: &BatchEvidence) -> Vec<ReceiptCheck> {
    let anchor = &receipt.anchor;
    let mut checks = Vec::new();
    checks.push(if evidence.chain_id == anchor.chain_id {
        ReceiptCheck::pass(
            "chain_id",
            format!("the node serves chain {}", anchor.chain_id),
        )
    } else {
        ReceiptCheck::fail(
            "chain_id",
            format!(
                "the node serves chain {}, but the receipt names chain {}",
                evidence.chain_id, anchor.chain_id
            ),
        )
    });

    let tx = anchor.tx_hash;
    checks.push(match &evidence.transaction {
        None => ReceiptCheck::fail(
            "transaction",
            format!("the node does not know transaction {tx}"),
        ),
        Some(mined) if !mined.succeeded => {
            ReceiptCheck::fail("transaction", format!("transaction {tx} reverted"))
        }
        Some(mined) if mined.block_number != anchor.block_number => ReceiptCheck::fail(
            "transaction",
            format!(
                "transaction {tx} is in block {}, but the receipt names block {}",
                mined.block_number, anchor.block_number
            ),
        ),
        Some(_) => ReceiptCheck::pass(
            "transaction",
            format!(
                "transaction {tx} succeeded in block {}",
                anchor.block_number
            ),
        ),
    });

    let logged = evidence
        .transaction
        .as_ref()
        .map(|mined| mined.anchored.as_slice())
        .unwrap_or_default();
    checks.push(if logged.contains(&(receipt.root, receipt.leaf_count)) {
        ReceiptCheck::pass("anchor_event", format!("transaction {tx} emitted BatchAnchored({}, {}) from {}", receipt.root, receipt.leaf_count, anchor.contract_address))
    } else {
        ReceiptCheck::fail("anchor_event", format!("transaction {tx} emitted no BatchAnchored event for root {} with {} leaves from {}", receipt.root, receipt.leaf_count, anchor.contract_address))
    });

    checks.push(match evidence.stored {
        Some(stored) if stored.block_number == anchor.block_number && stored.leaf_count == receipt.leaf_count => ReceiptCheck::pass("contract_state", format!("the contract stores root {} with {} leaves from block {}", receipt.root, stored.leaf_count, stored.block_number)),
        Some(stored) => ReceiptCheck::fail("contract_state", format!("the contract stores root {} with {} leaves from block {}, but the receipt names {} leaves in block {}", receipt.root, stored.leaf_count, stored.block_number, receipt.leaf_count, anchor.block_number)),
        None => ReceiptCheck::fail("contract_state", format!("the contract at {} stores no root {}", anchor.contract_address, receipt.root)),
    });
    checks
}

/// Formats one check as the command prints it: `PASS name: detail`.
pub fn describe(check: &ReceiptCheck) -> String {
    let outcome = if check.passed { "PASS" } else { "FAIL" };
    format!("{outcome} {}: {}", check.name, check.detail)
}
