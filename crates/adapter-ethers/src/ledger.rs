//! [`EthersLedger`]: the [`Ledger`] port over the user, record and consent
//! registries, and the [`AuditAnchorLedger`] port over `AuditAnchorRegistry`.

use std::time::Duration;

use async_trait::async_trait;
use ethers::abi::AbiEncode;
use ethers::contract::{EthEvent, LogMeta};
use ethers::types::{Bytes, TransactionReceipt, H160, H256, U256};
use meditrustal_audit::{AnchoredHead, AuditAnchorLedger};
use meditrustal_crypto::Digest;
use meditrustal_ledger::{
    Address, AuditHeadAnchor, BatchAnchor, ChainAnchor, ChainRole, ChainStatus, ContractLocation,
    Ledger, LedgerError, LedgerJob, OnChainBatch, OnChainConsent, OnChainRecord, RecordAnchor,
    Submission, TxHash, TxStatus, UserRegistration,
};
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;

use crate::bindings::{
    AddRecordCall, AnchorBatchCall, AnchorHeadCall, AuditAnchorRegistry, BatchAnchorRegistry,
    BatchAnchoredFilter, ConsentRegistry, HeadAnchoredFilter, MedicalRecordRegistry,
    RecordAddedFilter, RegisterUserCall, UserRegisteredFilter, UserRegistry,
};
use crate::config::{ConfigError, EthersConfig};
use crate::convert::{to_digest, to_domain_address, to_h160, to_h256, u256_to_u64, u64_of};
use crate::deploy::verify_live_deployment;
use crate::manifest::{DeploymentError, DeploymentManifest};
use crate::revert::{
    decode_audit_anchor_registry, decode_batch_anchor_registry, decode_consent_registry,
    decode_medical_record_registry, decode_user_registry, DecodedRevert,
};
use crate::rpc::{ChainClient, ChainError, HttpProvider};

/// A user entry read back from `UserRegistry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredUser {
    /// DID stored on-chain.
    pub did: String,
    /// Role stored on-chain.
    pub role: ChainRole,
    /// Block in which the user was registered.
    pub block_number: u64,
}

/// The [`Ledger`] port on an EVM chain through ethers-rs: registers users on
/// `UserRegistry`, anchors record hashes on `MedicalRecordRegistry` and
/// relays patient-signed consents to `ConsentRegistry` and anchors audit
/// chain heads on `AuditAnchorRegistry`, sending every transaction from the
/// registrar account.
pub struct EthersLedger {
    pub(crate) chain: ChainClient,
    manifest: DeploymentManifest,
    user_registry: UserRegistry<HttpProvider>,
    record_registry: MedicalRecordRegistry<HttpProvider>,
    pub(crate) consent_registry: ConsentRegistry<HttpProvider>,
    /// `None` when the manifest predates the contract; audit jobs and reads
    /// then fail with [`LedgerError::ContractsMissing`].
    audit_registry: Option<AuditAnchorRegistry<HttpProvider>>,
    /// `None` when the manifest predates the contract; batch jobs and reads
    /// then fail with [`LedgerError::ContractsMissing`].
    batch_registry: Option<BatchAnchorRegistry<HttpProvider>>,
    receipt_timeout: Duration,
    deployment_check_ttl: Duration,
    /// When [`verify_live_deployment`] last passed. Behind an async mutex so
    /// that concurrent calls share one check.
    deployment_checked_at: Mutex<Option<Instant>>,
}

/// A job encoded as one contract call, with the event log that proves the
/// call wrote its entry.
pub(crate) struct PreparedCall {
    pub(crate) to: H160,
    pub(crate) data: Bytes,
    pub(crate) event_signature: H256,
    /// First indexed event argument: the account, record hash, consent id or
    /// audit sequence number.
    pub(crate) event_key: H256,
}

impl EthersLedger {
    /// Builds a ledger for the contracts in `manifest`. Makes no call, so
    /// it succeeds while the node is down. Errors:
    /// [`ConfigError::InvalidRegistrarKey`], [`ConfigError::InvalidRpcUrl`].
    pub fn connect(
        config: &EthersConfig,
        manifest: DeploymentManifest,
    ) -> Result<Self, ConfigError> {
        let chain = ChainClient::connect(config, manifest.chain_id)?;
        let provider = chain.provider().clone();
        let user_registry = UserRegistry::new(
            to_h160(&manifest.contracts.user_registry.address),
            provider.clone(),
        );
        let record_registry = MedicalRecordRegistry::new(
            to_h160(&manifest.contracts.medical_record_registry.address),
            provider.clone(),
        );
        let consent_registry = ConsentRegistry::new(
            to_h160(&manifest.contracts.consent_registry.address),
            provider.clone(),
        );
        let audit_registry = manifest.contracts.audit_anchor_registry.map(|deployment| {
            AuditAnchorRegistry::new(to_h160(&deployment.address), provider.clone())
        });
        let batch_registry = manifest
            .contracts
            .batch_anchor_registry
            .map(|deployment| BatchAnchorRegistry::new(to_h160(&deployment.address), provider));

        Ok(Self {
            chain,
            manifest,
            user_registry,
            record_registry,
            consent_registry,
            audit_registry,
            batch_registry,
            receipt_timeout: config.receipt_timeout,
            deployment_check_ttl: config.deployment_check_ttl,
            deployment_checked_at: Mutex::new(None),
        })
    }

    /// Returns the deployment this ledger writes to.
    pub fn manifest(&self) -> &DeploymentManifest {
        &self.manifest
    }

    /// Returns the registrar account, which signs every transaction.
    pub fn registrar(&self) -> Address {
        to_domain_address(self.chain.address())
    }

    /// Reads the `UserRegistry` entry of `account`, or `None` when it is not
    /// registered. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`].
    pub async fn find_user(
        &self,
        account: &Address,
    ) -> Result<Option<RegisteredUser>, LedgerError> {
        self.ensure_deployed().await?;
        let (did, role_code, block) = self.read_user(to_h160(account)).await?;
        if role_code == 0 {
            return Ok(None);
        }

        let role = chain_role(role_code).ok_or_else(|| {
            LedgerError::Unavailable(format!(
                "UserRegistry returned unknown role code {role_code}"
            ))
        })?;
        Ok(Some(RegisteredUser {
            did,
            role,
            block_number: to_u64("block number", block)?,
        }))
    }

    /// Checks chain id and contract code unless a check passed within the
    /// configured time. A failed check also clears the cached nonce,
    /// because a node that lost the contracts has usually lost the
    /// registrar's transactions too.
    async fn ensure_deployed(&self) -> Result<(), LedgerError> {
        let mut checked_at = self.deployment_checked_at.lock().await;
        if checked_at.is_some_and(|at| at.elapsed() < self.deployment_check_ttl) {
            return Ok(());
        }

        match verify_live_deployment(&self.chain, &self.manifest).await {
            Ok(()) => {
                self.chain.reconcile_nonce().await.map_err(unavailable)?;
                *checked_at = Some(Instant::now());
                Ok(())
            }
            Err(DeploymentError::Unavailable(message)) => Err(LedgerError::Unavailable(message)),
            Err(error) => {
                *checked_at = None;
                self.chain.reset_nonce().await;
                tracing::debug!(%error, "deployment check failed");
                Err(LedgerError::ContractsMissing)
            }
        }
    }

    /// Forgets the last deployment check, so the next call checks again.
    async fn forget_deployment_check(&self) {
        *self.deployment_checked_at.lock().await = None;
    }

    fn audit_registry(&self) -> Result<&AuditAnchorRegistry<HttpProvider>, LedgerError> {
        self.audit_registry
            .as_ref()
            .ok_or(LedgerError::ContractsMissing)
    }

    pub(crate) fn batch_registry_contract(
        &self,
    ) -> Result<&BatchAnchorRegistry<HttpProvider>, LedgerError> {
        self.batch_registry
            .as_ref()
            .ok_or(LedgerError::ContractsMissing)
    }

    fn prepare(&self, job: &LedgerJob) -> Result<PreparedCall, LedgerError> {
        let call = match job {
            LedgerJob::RegisterUser(user) => {
                let account = to_h160(&user.address);
                let call = RegisterUserCall {
                    account,
                    did: user.did.clone(),
                    role: user.role.code(),
                };
                PreparedCall {
                    to: self.user_registry.address(),
                    data: call.encode().into(),
                    event_signature: UserRegisteredFilter::signature(),
                    event_key: H256::from(account),
                }
            }
            LedgerJob::AnchorRecord(record) => {
                let call = AddRecordCall {
                    record_hash: *record.anchor_hash.as_bytes(),
                    patient_did: record.patient_did.clone(),
                    record_type: record.record_type.clone(),
                    timestamp: U256::from(record.timestamp),
                };
                PreparedCall {
                    to: self.record_registry.address(),
                    data: call.encode().into(),
                    event_signature: RecordAddedFilter::signature(),
                    event_key: to_h256(&record.anchor_hash),
                }
            }
            LedgerJob::GrantConsent(grant) => self.prepare_grant(grant),
            LedgerJob::RevokeConsent(revocation) => self.prepare_revocation(revocation),
            LedgerJob::AnchorAuditHead(head) => {
                let call = AnchorHeadCall {
                    seq: head.seq,
                    head_hash: *head.head_hash.as_bytes(),
                };
                PreparedCall {
                    to: self.audit_registry()?.address(),
                    data: call.encode().into(),
                    event_signature: HeadAnchoredFilter::signature(),
                    event_key: H256::from_low_u64_be(head.seq),
                }
            }
            LedgerJob::AnchorBatch(batch) => {
                let call = AnchorBatchCall {
                    root: *batch.root.as_bytes(),
                    leaf_count: U256::from(batch.leaf_count),
                };
                PreparedCall {
                    to: self.batch_registry_contract()?.address(),
                    data: call.encode().into(),
                    event_signature: BatchAnchoredFilter::signature(),
                    event_key: to_h256(&batch.root),
                }
            }
        };
        Ok(call)
    }

    /// Turns a failed simulation or gas estimate into the job's outcome. A
    /// duplicate error means that the entry is already on-chain, so the
    /// original transaction is returned. Other reverts are rejections.
    async fn resolve_failure(
        &self,
        job: &LedgerJob,
        error: ChainError,
    ) -> Result<ChainAnchor, LedgerError> {
        let data = match error {
            ChainError::Reverted(data) => data,
            other => return Err(unavailable(other)),
        };

        let revert = decode_revert(job, &data);
        // NOTE: when the grant failed for good, its revocation keeps
        // retrying at the maximum backoff until an operator fails the job.
        if revert.retry_later {
            return Err(LedgerError::Unavailable(format!(
                "{}; the call may pass once earlier jobs are mined",
                revert.description
            )));
        }
        if !revert.already_exists {
            return Err(LedgerError::Rejected(revert.description));
        }
        tracing::debug!(
            job.kind = job.kind(),
            revert = %revert.description,
            "entry already on-chain; looking up the original transaction"
        );
        self.find_original(job, &revert).await
    }

    /// Finds the transaction that wrote the job's entry, after the contract
    /// reported a duplicate. An entry that differs from the job is a
    /// rejection, because the job did not write it.
    async fn find_original(
        &self,
        job: &LedgerJob,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        match job {
            LedgerJob::RegisterUser(user) => self.find_original_registration(user, revert).await,
            LedgerJob::AnchorRecord(record) => self.find_original_anchor(record, revert).await,
            LedgerJob::GrantConsent(grant) => self.find_original_grant(grant, revert).await,
            LedgerJob::RevokeConsent(revocation) => {
                self.find_original_revocation(revocation, revert).await
            }
            LedgerJob::AnchorAuditHead(head) => self.find_original_head(head, revert).await,
            LedgerJob::AnchorBatch(batch) => self.find_original_batch(batch, revert).await,
        }
    }

    async fn find_original_batch(
        &self,
        batch: &BatchAnchor,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let Some(entry) = self.read_batch(&batch.root).await? else {
            return Err(LedgerError::Unavailable(format!(
                "{} but the latest block has no entry yet; retry later",
                revert.description
            )));
        };
        if entry.leaf_count != u64::from(batch.leaf_count) {
            return Err(LedgerError::Rejected(format!(
                "{}: the anchored leaf count {} differs from this job's {}",
                revert.description, entry.leaf_count, batch.leaf_count
            )));
        }
        match entry.tx_hash {
            Some(tx_hash) => Ok(ChainAnchor {
                tx_hash,
                block_number: entry.block_number,
            }),
            None => Err(LedgerError::Unavailable(format!(
                "no BatchAnchored event for {} in block {}",
                batch.root, entry.block_number
            ))),
        }
    }

    /// Reads the batch stored under `root` and the transaction of its
    /// `BatchAnchored` event, searched in the block the entry records.
    async fn read_batch(&self, root: &Digest) -> Result<Option<OnChainBatch>, LedgerError> {
        let registry = self.batch_registry_contract()?;
        let (exists, leaf_count, block_number) = self
            .chain
            .rpc("eth_call", registry.get_batch(*root.as_bytes()).call())
            .await
            .map_err(unavailable)?;
        if !exists {
            return Ok(None);
        }
        let block_number = to_u64("block number", block_number)?;
        let events = registry
            .batch_anchored_filter()
            .topic1(to_h256(root))
            .from_block(block_number)
            .to_block(block_number);
        let logs = self
            .chain
            .rpc("eth_getLogs", events.query_with_meta())
            .await
            .map_err(unavailable)?;
        Ok(Some(OnChainBatch {
            leaf_count: to_u64("leaf count", leaf_count)?,
            block_number,
            tx_hash: logs
                .into_iter()
                .next()
                .map(|(_, meta)| to_digest(meta.transaction_hash)),
        }))
    }

    async fn find_original_registration(
        &self,
        user: &UserRegistration,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let account = to_h160(&user.address);
        let (did, role_code, block) = self.read_user(account).await?;
        if role_code == 0 {
            return Err(LedgerError::Unavailable(format!(
                "{} but the latest block has no entry yet; retry later",
                revert.description
            )));
        }
        if did != user.did || role_code != user.role.code() {
            return Err(LedgerError::Rejected(format!(
                "{}: the account is registered with another DID or role than this job's",
                revert.description
            )));
        }

        let block = to_u64("block number", block)?;
        let events = self
            .user_registry
            .user_registered_filter()
            .topic1(H256::from(account));
        let logs = events.from_block(block).to_block(block);
        let found = self
            .chain
            .rpc("eth_getLogs", logs.query_with_meta())
            .await
            .map_err(unavailable)?;
        first_anchor(found, "UserRegistered", &user.address.to_string(), block)
    }

    async fn find_original_anchor(
        &self,
        record: &RecordAnchor,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let Some(entry) = self.read_record(&record.anchor_hash).await? else {
            return Err(LedgerError::Unavailable(format!(
                "{} but the latest block has no entry yet; retry later",
                revert.description
            )));
        };
        let same_entry = entry.patient_did == record.patient_did
            && entry.record_type == record.record_type
            && entry.timestamp == record.timestamp;
        if !same_entry {
            return Err(LedgerError::Rejected(format!(
                "{}: the anchored entry differs from this job's",
                revert.description
            )));
        }

        let block = entry.block_number;
        let events = self
            .record_registry
            .record_added_filter()
            .topic1(to_h256(&record.anchor_hash));
        let logs = events.from_block(block).to_block(block);
        let found = self
            .chain
            .rpc("eth_getLogs", logs.query_with_meta())
            .await
            .map_err(unavailable)?;
        first_anchor(found, "RecordAdded", &record.anchor_hash.to_string(), block)
    }

    async fn find_original_head(
        &self,
        head: &AuditHeadAnchor,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let registry = self.audit_registry()?;
        let (exists, head_hash, block) = self
            .chain
            .rpc("eth_call", registry.get_anchor(head.seq).call())
            .await
            .map_err(unavailable)?;
        if !exists {
            return Err(LedgerError::Unavailable(format!(
                "{} but the latest block has no entry yet; retry later",
                revert.description
            )));
        }
        if head_hash != *head.head_hash.as_bytes() {
            return Err(LedgerError::Rejected(format!(
                "{}: the anchored head hash differs from this job's",
                revert.description
            )));
        }

        let block = to_u64("block number", block)?;
        let events = registry
            .head_anchored_filter()
            .topic1(H256::from_low_u64_be(head.seq));
        let logs = events.from_block(block).to_block(block);
        let found = self
            .chain
            .rpc("eth_getLogs", logs.query_with_meta())
            .await
            .map_err(unavailable)?;
        first_anchor(found, "HeadAnchored", &head.seq.to_string(), block)
    }

    /// Waits for the receipt of a sent job and maps it to the outcome. Once
    /// sent, the hash is always returned: an RPC error while waiting leaves
    /// the transaction for `transaction_status` to follow up.
    async fn await_outcome(
        &self,
        job: &LedgerJob,
        call: &PreparedCall,
        tx_hash: H256,
    ) -> Result<Submission, LedgerError> {
        match self
            .chain
            .wait_for_receipt(tx_hash, self.receipt_timeout)
            .await
        {
            Ok(Some(receipt)) => self.settle(job, call, &receipt).await,
            Ok(None) => Ok(Submission::Sent(to_digest(tx_hash))),
            Err(error) => {
                tracing::debug!(
                    tx.hash = ?tx_hash,
                    error = %error.describe(),
                    "receipt poll failed; reporting the transaction as sent"
                );
                Ok(Submission::Sent(to_digest(tx_hash)))
            }
        }
    }

    /// Maps the receipt of a sent job to its outcome.
    async fn settle(
        &self,
        job: &LedgerJob,
        call: &PreparedCall,
        receipt: &TransactionReceipt,
    ) -> Result<Submission, LedgerError> {
        let tx_hash = receipt.transaction_hash;
        let block_number = u64_of(receipt.block_number).ok_or_else(|| {
            LedgerError::Unavailable(format!("receipt of {tx_hash:#x} has no block number"))
        })?;

        if is_success(receipt) {
            if wrote_entry(receipt, call) {
                return Ok(Submission::Mined(ChainAnchor {
                    tx_hash: to_digest(tx_hash),
                    block_number,
                }));
            }
            // Code vanished between the deployment check and mining, so the
            // call ran against an empty account and wrote nothing.
            self.forget_deployment_check().await;
            return Err(LedgerError::ContractsMissing);
        }

        // The simulation passed but the transaction reverted, for example
        // because a concurrent send of the same job was mined first.
        match self.chain.simulate(call.to, &call.data).await {
            Err(error @ ChainError::Reverted(_)) => self
                .resolve_failure(job, error)
                .await
                .map(Submission::Mined),
            Err(other) => Err(unavailable(other)),
            Ok(()) => Err(LedgerError::Unavailable(format!(
                "transaction {tx_hash:#x} reverted in block {block_number} \
                 although its simulation passes"
            ))),
        }
    }

    async fn read_user(&self, account: H160) -> Result<(String, u8, U256), LedgerError> {
        let call = self.user_registry.get_user(account);
        self.chain
            .rpc("eth_call", call.call())
            .await
            .map_err(unavailable)
    }

    async fn read_record(
        &self,
        anchor_hash: &Digest,
    ) -> Result<Option<OnChainRecord>, LedgerError> {
        let call = self.record_registry.get_record(*anchor_hash.as_bytes());
        let (exists, patient_did, record_type, timestamp, block_number) = self
            .chain
            .rpc("eth_call", call.call())
            .await
            .map_err(unavailable)?;
        if !exists {
            return Ok(None);
        }
        let block_number = to_u64("block number", block_number)?;

        // The entry does not store its transaction; its RecordAdded event does.
        let events = self
            .record_registry
            .record_added_filter()
            .topic1(to_h256(anchor_hash))
            .from_block(block_number)
            .to_block(block_number);
        let logs = self
            .chain
            .rpc("eth_getLogs", events.query_with_meta())
            .await
            .map_err(unavailable)?;
        let tx_hash = logs
            .into_iter()
            .next()
            .map(|(_, meta)| to_digest(meta.transaction_hash));

        Ok(Some(OnChainRecord {
            patient_did,
            record_type,
            timestamp: to_u64("timestamp", timestamp)?,
            block_number,
            tx_hash,
        }))
    }

    /// Returns whether the receipt contains a log of any registry.
    fn touched_registries(&self, receipt: &TransactionReceipt) -> bool {
        let mut registries = vec![
            self.user_registry.address(),
            self.record_registry.address(),
            self.consent_registry.address(),
        ];
        registries.extend(
            self.audit_registry
                .as_ref()
                .map(|registry| registry.address()),
        );
        registries.extend(
            self.batch_registry
                .as_ref()
                .map(|registry| registry.address()),
        );
        receipt
            .logs
            .iter()
            .any(|log| registries.contains(&log.address))
    }
}

#[async_trait]
impl Ledger for EthersLedger {
    #[tracing::instrument(skip_all, fields(job.kind = job.kind()))]
    async fn submit(&self, job: &LedgerJob) -> Result<Submission, LedgerError> {
        self.ensure_deployed().await?;
        let call = self.prepare(job)?;

        if let Err(error) = self.chain.simulate(call.to, &call.data).await {
            return self
                .resolve_failure(job, error)
                .await
                .map(Submission::Mined);
        }
        let gas = match self.chain.estimate_gas(Some(call.to), &call.data).await {
            Ok(gas) => gas,
            Err(error) => {
                return self
                    .resolve_failure(job, error)
                    .await
                    .map(Submission::Mined)
            }
        };
        let tx_hash = self
            .chain
            .send(Some(call.to), call.data.clone(), gas)
            .await
            .map_err(unavailable)?;

        self.await_outcome(job, &call, tx_hash).await
    }

    /// Looks up a sent transaction. A mined transaction that left no log of
    /// any registry counts as [`TxStatus::Reverted`], because it wrote
    /// nothing (the contracts were gone), so the job has to be sent again.
    async fn transaction_status(&self, tx_hash: &TxHash) -> Result<TxStatus, LedgerError> {
        let hash = to_h256(tx_hash);
        let Some(receipt) = self.chain.receipt(hash).await.map_err(unavailable)? else {
            if self
                .chain
                .transaction_known(hash)
                .await
                .map_err(unavailable)?
            {
                return Ok(TxStatus::Pending);
            }
            self.chain.reset_nonce().await;
            return Ok(TxStatus::Unknown);
        };

        let Some(block_number) = u64_of(receipt.block_number) else {
            return Ok(TxStatus::Pending);
        };
        if !is_success(&receipt) || !self.touched_registries(&receipt) {
            return Ok(TxStatus::Reverted);
        }
        Ok(TxStatus::Mined(ChainAnchor {
            tx_hash: *tx_hash,
            block_number,
        }))
    }

    async fn find_record(
        &self,
        anchor_hash: &Digest,
    ) -> Result<Option<OnChainRecord>, LedgerError> {
        self.ensure_deployed().await?;
        self.read_record(anchor_hash).await
    }

    async fn find_batch(&self, root: &Digest) -> Result<Option<OnChainBatch>, LedgerError> {
        self.ensure_deployed().await?;
        self.read_batch(root).await
    }

    fn batch_registry(&self) -> Option<ContractLocation> {
        self.manifest
            .contracts
            .batch_anchor_registry
            .map(|deployment| ContractLocation {
                chain_id: self.manifest.chain_id,
                address: deployment.address,
            })
    }

    async fn find_consent(&self, consent_id: Uuid) -> Result<Option<OnChainConsent>, LedgerError> {
        self.ensure_deployed().await?;
        self.read_consent(consent_id).await
    }

    async fn status(&self) -> Result<ChainStatus, LedgerError> {
        self.ensure_deployed().await?;
        let block_number = self.chain.block_number().await.map_err(unavailable)?;
        Ok(ChainStatus {
            chain_id: self.manifest.chain_id,
            block_number,
        })
    }
}

/// Number of anchors read per `anchorsFrom` call.
const ANCHOR_PAGE_SIZE: u64 = 500;

#[async_trait]
impl AuditAnchorLedger for EthersLedger {
    /// Reads `anchorCount` and then the anchors in pages of 500, each page
    /// one `eth_call`.
    async fn anchored_heads(&self) -> Result<Vec<AnchoredHead>, LedgerError> {
        self.ensure_deployed().await?;
        let registry = self.audit_registry()?;
        let count = self
            .chain
            .rpc("eth_call", registry.anchor_count().call())
            .await
            .map_err(unavailable)?;
        let count = to_u64("anchor count", count)?;

        let mut heads = Vec::new();
        let mut start = 0;
        while start < count {
            let page = self
                .chain
                .rpc(
                    "eth_call",
                    registry
                        .anchors_from(U256::from(start), U256::from(ANCHOR_PAGE_SIZE))
                        .call(),
                )
                .await
                .map_err(unavailable)?;
            if page.is_empty() {
                break;
            }
            start += page.len() as u64;
            heads.extend(page.into_iter().map(|anchor| AnchoredHead {
                seq: anchor.seq,
                head_hash: Digest::from_bytes(anchor.head_hash),
                block_number: anchor.block_number,
            }));
        }
        Ok(heads)
    }
}

fn decode_revert(job: &LedgerJob, data: &[u8]) -> DecodedRevert {
    match job {
        LedgerJob::RegisterUser(_) => decode_user_registry(data),
        LedgerJob::AnchorRecord(_) => decode_medical_record_registry(data),
        LedgerJob::GrantConsent(_) | LedgerJob::RevokeConsent(_) => decode_consent_registry(data),
        LedgerJob::AnchorAuditHead(_) => decode_audit_anchor_registry(data),
        LedgerJob::AnchorBatch(_) => decode_batch_anchor_registry(data),
    }
}

fn is_success(receipt: &TransactionReceipt) -> bool {
    receipt.status.map(|status| status.as_u64()) == Some(1)
}

/// Returns whether the receipt contains the event that the call emits when
/// it writes its entry.
fn wrote_entry(receipt: &TransactionReceipt, call: &PreparedCall) -> bool {
    receipt.logs.iter().any(|log| {
        log.address == call.to
            && log.topics.first() == Some(&call.event_signature)
            && log.topics.get(1) == Some(&call.event_key)
    })
}

/// Returns the transaction of the first log found, or an error naming the
/// event that should have been there.
pub(crate) fn first_anchor<E>(
    found: Vec<(E, LogMeta)>,
    event: &str,
    key: &str,
    block: u64,
) -> Result<ChainAnchor, LedgerError> {
    let Some((_, meta)) = found.into_iter().next() else {
        return Err(LedgerError::Unavailable(format!(
            "no {event} event for {key} in block {block}"
        )));
    };
    Ok(ChainAnchor {
        tx_hash: to_digest(meta.transaction_hash),
        block_number: meta.block_number.as_u64(),
    })
}

fn chain_role(code: u8) -> Option<ChainRole> {
    [ChainRole::Patient, ChainRole::Doctor, ChainRole::Admin]
        .into_iter()
        .find(|role| role.code() == code)
}

fn to_u64(field: &str, value: U256) -> Result<u64, LedgerError> {
    u256_to_u64(value).ok_or_else(|| {
        LedgerError::Unavailable(format!("contract returned {field} {value} above u64::MAX"))
    })
}

pub(crate) fn unavailable(error: ChainError) -> LedgerError {
    LedgerError::Unavailable(error.describe())
}
