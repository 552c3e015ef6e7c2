//! The [`ChainEvents`] port: reads the registries' events for the chain
//! watcher.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use ethers::contract::EthEvent;
use ethers::types::{Filter, Log, H160, H256};
use meditrustal_crypto::Digest;
use meditrustal_ledger::{
    Address, BlockRef, ChainEvent, ChainEvents, EntryKey, LedgerError, Replacement, TxHash,
};

use crate::bindings::{
    BatchAnchoredFilter, ConsentGrantedFilter, ConsentRevokedFilter, HeadAnchoredFilter,
    RecordAddedFilter, UserRegisteredFilter,
};
use crate::convert::{to_digest, to_h160, to_h256, u64_of};
use crate::ledger::{unavailable, EthersLedger};
use crate::manifest::DeploymentManifest;

/// An event the watcher reads: the contract that emits it, its signature
/// (topic 0), and the kind of outbox job whose entry it records. The
/// event's first indexed argument (topic 1) must be the job's
/// [`meditrustal_ledger::LedgerJob::entry_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    /// Address of the emitting contract.
    pub contract: Address,
    /// keccak-256 of the event signature, such as
    /// `RecordAdded(bytes32,string,string,uint256)`.
    pub signature: Digest,
    /// The job kind that writes the entry, as
    /// [`meditrustal_ledger::LedgerJob::kind`] spells it.
    pub job_kind: &'static str,
}

impl WatchedEvent {
    /// Describes the event with signature `signature` (the Solidity
    /// declaration without names, such as `HeadAnchored(uint64,bytes32)`).
    pub fn new(contract: Address, signature: &str, job_kind: &'static str) -> Self {
        Self {
            contract,
            signature: Digest::from_bytes(ethers::utils::keccak256(signature)),
            job_kind,
        }
    }
}

/// The events of every registry in `manifest`, one per job kind.
pub(crate) fn default_watched_events(manifest: &DeploymentManifest) -> Vec<WatchedEvent> {
    let contracts = &manifest.contracts;
    let event = |contract: Address, signature: H256, job_kind| WatchedEvent {
        contract,
        signature: to_digest(signature),
        job_kind,
    };
    let mut events = vec![
        event(
            contracts.user_registry.address,
            UserRegisteredFilter::signature(),
            "register_user",
        ),
        event(
            contracts.medical_record_registry.address,
            RecordAddedFilter::signature(),
            "anchor_record",
        ),
        event(
            contracts.consent_registry.address,
            ConsentGrantedFilter::signature(),
            "grant_consent",
        ),
        event(
            contracts.consent_registry.address,
            ConsentRevokedFilter::signature(),
            "revoke_consent",
        ),
    ];
    if let Some(audit) = contracts.audit_anchor_registry {
        events.push(event(
            audit.address,
            HeadAnchoredFilter::signature(),
            "anchor_audit_head",
        ));
    }
    if let Some(batches) = contracts.batch_anchor_registry {
        events.push(event(
            batches.address,
            BatchAnchoredFilter::signature(),
            "anchor_batch",
        ));
    }
    events
}

impl EthersLedger {
    /// Decodes a log of a watched event, or `None` for a log of another
    /// event, a removed log, or one without its block or transaction.
    fn decode_log(&self, log: &Log) -> Option<ChainEvent> {
        if log.removed == Some(true) {
            return None;
        }
        let signature = to_digest(*log.topics.first()?);
        let watched = self.watched_events().iter().find(|watched| {
            to_h160(&watched.contract) == log.address && watched.signature == signature
        })?;
        Some(ChainEvent {
            entry: EntryKey {
                kind: watched.job_kind.to_owned(),
                key: to_digest(*log.topics.get(1)?),
            },
            tx_hash: to_digest(log.transaction_hash?),
            block: BlockRef {
                number: u64_of(log.block_number)?,
                hash: to_digest(log.block_hash?),
            },
            log_index: log.log_index?.low_u64(),
        })
    }

    /// Replaces a pending transaction; see [`meditrustal_ledger::Ledger`].
    pub(crate) async fn replace_pending(
        &self,
        tx_hash: &TxHash,
    ) -> Result<Replacement, LedgerError> {
        let hash = to_h256(tx_hash);
        let Some(original) = self.chain.transaction(hash).await.map_err(unavailable)? else {
            return Ok(Replacement::Unknown);
        };
        if original.block_number.is_some() {
            return match self.transaction_status_of(tx_hash).await? {
                meditrustal_ledger::TxStatus::Mined(anchor) => Ok(Replacement::Mined(anchor)),
                _ => Ok(Replacement::Unknown),
            };
        }
        // Above the next usable nonce, the transaction waits behind a gap
        // left by dropped transactions (a rolled-back chain) and would never
        // be mined, so it counts as gone and the job is sent again.
        let next_nonce = self
            .chain
            .pending_transaction_count()
            .await
            .map_err(unavailable)?;
        if original.nonce > next_nonce {
            tracing::warn!(tx.hash = %tx_hash, tx.nonce = %original.nonce, %next_nonce, "pending transaction waits behind a nonce gap; sending the job again");
            self.chain.reset_nonce().await;
            return Ok(Replacement::Unknown);
        }
        match self.chain.replace(&original).await {
            Ok(replacement) => Ok(Replacement::Sent(to_digest(replacement))),
            Err(crate::rpc::ChainError::Node(message)) => {
                // "nonce too low": the original or an earlier replacement
                // was mined meanwhile; the next status check finds it.
                Err(LedgerError::Unavailable(format!(
                    "replacing {tx_hash} failed: {message}"
                )))
            }
            Err(error) => Err(unavailable(error)),
        }
    }
}

#[async_trait]
impl ChainEvents for EthersLedger {
    /// Also clears the cached nonce and deployment check when the head is
    /// lower than the highest head seen: the chain was rolled back, and the
    /// registrar's transactions in the removed blocks are gone.
    async fn head_block(&self) -> Result<u64, LedgerError> {
        let head = self.chain.block_number().await.map_err(unavailable)?;
        let highest = self.highest_head.fetch_max(head, Ordering::SeqCst);
        if head < highest {
            tracing::debug!(head, highest, "chain head moved back; re-reading the nonce");
            self.highest_head.store(head, Ordering::SeqCst);
            self.chain.reset_nonce().await;
            self.forget_deployment_check().await;
        }
        Ok(head)
    }

    async fn block_hash(&self, number: u64) -> Result<Option<Digest>, LedgerError> {
        let hash = self.chain.block_hash(number).await.map_err(unavailable)?;
        Ok(hash.map(to_digest))
    }

    /// Reads the logs of every watched event in one `eth_getLogs` call,
    /// filtered by contract address and signature.
    async fn events(&self, from: u64, to: u64) -> Result<Vec<ChainEvent>, LedgerError> {
        let watched = self.watched_events();
        let addresses: Vec<H160> = watched
            .iter()
            .map(|event| to_h160(&event.contract))
            .collect();
        let signatures: Vec<H256> = watched
            .iter()
            .map(|event| to_h256(&event.signature))
            .collect();
        let filter = Filter::new()
            .from_block(from)
            .to_block(to)
            .address(addresses)
            .topic0(signatures);

        let logs = self.chain.logs(&filter).await.map_err(unavailable)?;
        let mut events: Vec<ChainEvent> =
            logs.iter().filter_map(|log| self.decode_log(log)).collect();
        events.sort_by_key(|event| (event.block.number, event.log_index));
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use meditrustal_ledger::LedgerJob;

    use super::*;

    #[test]
    fn watched_event_hashes_its_signature() {
        let event = WatchedEvent::new(
            Address::from_bytes([1; 20]),
            "RecordAdded(bytes32,string,string,uint256)",
            "anchor_record",
        );
        assert_eq!(event.signature, to_digest(RecordAddedFilter::signature()));
    }

    #[test]
    fn record_entry_key_is_the_anchor_hash() {
        let anchor_hash = Digest::from_bytes([7; 32]);
        let job = LedgerJob::AnchorRecord(meditrustal_ledger::RecordAnchor {
            record_id: uuid::Uuid::nil(),
            anchor_hash,
            patient_did: "did:meditrustal:x".into(),
            record_type: "LAB_RESULT".into(),
            timestamp: 1,
        });
        assert_eq!(job.entry_key().key, anchor_hash);
    }
}
