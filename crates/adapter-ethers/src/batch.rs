//! Batch anchors beyond the [`Ledger`] port: the gas a batch costs, for
//! benchmarks, and the chain evidence behind a receipt, read with no
//! deployment manifest and no key.

use std::time::Duration;

use ethers::contract::EthEvent;
use ethers::providers::{Http, Middleware, Provider};
use ethers::types::U256;
use meditrustal_crypto::Digest;
use meditrustal_ledger::merkle::{leaf_hash, MerkleTree, Salt};
use meditrustal_ledger::{Address, BatchAnchor, Ledger, LedgerError, LedgerJob, Submission};

use crate::bindings::{BatchAnchorRegistry, BatchAnchoredFilter};
use crate::convert::{to_digest, to_h160, to_h256, u256_to_u64, u64_of};
use crate::ledger::{unavailable, EthersLedger};

/// What anchoring one batch cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchGas {
    /// Leaves under the anchored root.
    pub leaf_count: u32,
    /// `gasUsed` of the anchoring transaction's receipt.
    pub gas_used: u64,
    /// The anchoring transaction.
    pub tx_hash: Digest,
    /// Its block.
    pub block_number: u64,
}

impl BatchGas {
    /// Gas per record, rounded down.
    pub fn per_leaf(&self) -> u64 {
        self.gas_used / u64::from(self.leaf_count.max(1))
    }
}

impl EthersLedger {
    /// Anchors the root of `leaf_count` random leaves on
    /// `BatchAnchorRegistry`, as the outbox would send a real batch, and
    /// returns the gas its transaction used. It writes a real entry, so use
    /// it on a development or benchmark chain only. Errors: as for
    /// [`Ledger::submit`], and [`LedgerError::Unavailable`] when the
    /// receipt cannot be read within the receipt timeout.
    pub async fn measure_batch_anchor_gas(&self, leaf_count: u32) -> Result<BatchGas, LedgerError> {
        let leaves = (0..leaf_count)
            .map(|_| {
                let salt = Salt::generate()
                    .map_err(|error| LedgerError::Unavailable(error.to_string()))?;
                let commitment = Salt::generate()
                    .map_err(|error| LedgerError::Unavailable(error.to_string()))?;
                Ok(leaf_hash(
                    &salt,
                    &Digest::from_bytes(*commitment.as_bytes()),
                ))
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let tree = MerkleTree::new(leaves)
            .ok_or_else(|| LedgerError::Rejected("a batch needs at least one leaf".into()))?;

        let job = LedgerJob::AnchorBatch(BatchAnchor {
            batch_id: 0,
            root: tree.root(),
            leaf_count,
        });
        let tx_hash = match self.submit(&job).await? {
            Submission::Mined(anchor) => anchor.tx_hash,
            Submission::Sent(tx_hash) => tx_hash,
        };
        let receipt = self
            .chain
            .wait_for_receipt(to_h256(&tx_hash), Duration::from_secs(30))
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                LedgerError::Unavailable(format!("transaction {tx_hash} was not mined"))
            })?;

        Ok(BatchGas {
            leaf_count,
            gas_used: receipt
                .gas_used
                .map(|gas| gas.low_u64())
                .unwrap_or_default(),
            tx_hash,
            block_number: u64_of(receipt.block_number).unwrap_or_default(),
        })
    }
}

/// What the chain holds about a receipt's anchor, read by
/// [`read_batch_evidence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchEvidence {
    /// Chain id the node reports.
    pub chain_id: u64,
    /// The transaction's receipt, or `None` when the node does not know
    /// the transaction.
    pub transaction: Option<TransactionEvidence>,
    /// The contract's stored entry for the root, or `None` when it has
    /// none.
    pub stored: Option<StoredBatch>,
}

/// A mined transaction and the `BatchAnchored` events that the contract
/// emitted in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionEvidence {
    /// True when the receipt's status is 1.
    pub succeeded: bool,
    /// The block that contains it.
    pub block_number: u64,
    /// `(root, leafCount)` of each `BatchAnchored` event from the contract.
    pub anchored: Vec<(Digest, u64)>,
}

/// A root's entry in `BatchAnchorRegistry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// Leaf count stored with the root.
    pub leaf_count: u64,
    /// Block in which the root was anchored.
    pub block_number: u64,
}

/// Reads, from the node at `rpc_url`, the chain id, the receipt of
/// `tx_hash` with the `BatchAnchored` events of `contract` in it, and the
/// contract's entry for `root`. Each call is bounded by `timeout`. Needs no
/// key and no deployment manifest. Errors: a description of the failed
/// call, with URLs redacted.
pub async fn read_batch_evidence(
    rpc_url: &str,
    timeout: Duration,
    contract: &Address,
    tx_hash: &Digest,
    root: &Digest,
) -> Result<BatchEvidence, String> {
    let provider =
        Provider::<Http>::try_from(rpc_url).map_err(|error| format!("invalid RPC URL: {error}"))?;

    let chain_id = within(timeout, "eth_chainId", provider.get_chainid()).await?;
    let receipt = within(
        timeout,
        "eth_getTransactionReceipt",
        provider.get_transaction_receipt(to_h256(tx_hash)),
    )
    .await?;
    let transaction = receipt.map(|receipt| TransactionEvidence {
        succeeded: receipt.status.map(|status| status.as_u64()) == Some(1),
        block_number: u64_of(receipt.block_number).unwrap_or_default(),
        anchored: receipt
            .logs
            .iter()
            .filter(|log| log.address == to_h160(contract))
            .filter(|log| log.topics.first() == Some(&BatchAnchoredFilter::signature()))
            .filter_map(|log| {
                let root = to_digest(*log.topics.get(1)?);
                let count = u256_to_u64(U256::from_big_endian(log.data.get(..32)?))?;
                Some((root, count))
            })
            .collect(),
    });

    // An address without code stores nothing; calling it would fail to
    // decode instead.
    let code = within(
        timeout,
        "eth_getCode",
        provider.get_code(to_h160(contract), None),
    )
    .await?;
    let (exists, leaf_count, block_number) = if code.is_empty() {
        (false, U256::zero(), U256::zero())
    } else {
        let registry = BatchAnchorRegistry::new(to_h160(contract), provider.into());
        within(
            timeout,
            "eth_call getBatch",
            registry.get_batch(*root.as_bytes()).call(),
        )
        .await?
    };
    let stored = exists.then(|| StoredBatch {
        leaf_count: u256_to_u64(leaf_count).unwrap_or(u64::MAX),
        block_number: u256_to_u64(block_number).unwrap_or(u64::MAX),
    });

    Ok(BatchEvidence {
        chain_id: chain_id.low_u64(),
        transaction,
        stored,
    })
}

async fn within<T, E: std::fmt::Display>(
    timeout: Duration,
    method: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!(
            "{method} failed: {}",
            crate::rpc::redact_urls(&error.to_string())
        )),
        Err(_) => Err(format!(
            "{method} timed out after {} ms",
            timeout.as_millis()
        )),
    }
}
