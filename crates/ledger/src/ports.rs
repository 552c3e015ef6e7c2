use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;

use crate::batch::{NewBatch, PendingAnchor, PendingSummary};
use crate::consent::{ConsentSignature, GrantTerms, OnChainConsent, RevokeTerms};
use crate::types::{
    ChainAnchor, ChainStatus, ContractLocation, LedgerJob, OnChainBatch, OnChainRecord, OutboxJob,
    Submission, TxHash, TxStatus,
};

/// Errors a [`Ledger`] implementation returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LedgerError {
    /// The node could not be reached or timed out. Retry later.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// No contract code at the configured addresses, for example after the
    /// node was restarted without its state. Retry after redeploying.
    #[error("contracts are not deployed at the configured addresses")]
    ContractsMissing,
    /// The contract rejected the call; retrying the same call cannot help.
    #[error("transaction rejected: {0}")]
    Rejected(String),
}

/// Errors an [`OutboxStore`] implementation returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OutboxError {
    /// The database could not be reached or the query failed.
    #[error("outbox store unavailable: {0}")]
    Unavailable(String),
}

/// A chain that stores user registrations and record anchors.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Sends the job's transaction. If the chain already contains the entry (a
    /// resend after a crash), returns [`Submission::Mined`] with the
    /// original transaction. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`], and [`LedgerError::Rejected`] with
    /// the decoded revert reason.
    async fn submit(&self, job: &LedgerJob) -> Result<Submission, LedgerError>;

    /// Looks up a transaction sent earlier. Errors:
    /// [`LedgerError::Unavailable`].
    async fn transaction_status(&self, tx_hash: &TxHash) -> Result<TxStatus, LedgerError>;

    /// Reads the anchored entry for `anchor_hash`, or `None` when the chain
    /// has none. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`].
    async fn find_record(&self, anchor_hash: &Digest)
        -> Result<Option<OnChainRecord>, LedgerError>;

    /// Reads the batch anchored under `root`, or `None` when the chain has
    /// none. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`], also when the deployment has no
    /// `BatchAnchorRegistry`.
    async fn find_batch(&self, root: &Digest) -> Result<Option<OnChainBatch>, LedgerError>;

    /// Returns the chain and address of the `BatchAnchorRegistry` contract,
    /// or `None` when the deployment has none.
    fn batch_registry(&self) -> Option<ContractLocation>;

    /// Reads the consent entry of `consent_id`, or `None` when the chain
    /// has none. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`].
    async fn find_consent(
        &self,
        consent_id: uuid::Uuid,
    ) -> Result<Option<OnChainConsent>, LedgerError>;

    /// Reports chain id and head block, proving the node responds and the
    /// contracts exist. Errors: [`LedgerError::Unavailable`],
    /// [`LedgerError::ContractsMissing`].
    async fn status(&self) -> Result<ChainStatus, LedgerError>;
}

/// Durable queue of [`LedgerJob`]s. Jobs are written by the stores of the
/// data they describe, in the same transaction; this port only moves them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` jobs that are due, leasing them for `lease` so
    /// that no other worker takes them meanwhile. Errors:
    /// [`OutboxError::Unavailable`].
    async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<OutboxJob>, OutboxError>;

    /// Records that `tx_hash` was sent for the job (and on its target row)
    /// and releases the job until `check_at`. Errors:
    /// [`OutboxError::Unavailable`].
    async fn mark_sent(
        &self,
        job_id: i64,
        tx_hash: TxHash,
        check_at: DateTime<Utc>,
    ) -> Result<(), OutboxError>;

    /// Marks the job done and its target row anchored, in one transaction.
    /// Errors: [`OutboxError::Unavailable`].
    async fn complete(&self, job_id: i64, anchor: ChainAnchor) -> Result<(), OutboxError>;

    /// Counts a failed attempt, stores `error`, clears any sent transaction
    /// when `forget_tx` is set, and releases the job until `retry_at`.
    /// Errors: [`OutboxError::Unavailable`].
    async fn reschedule(
        &self,
        job_id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
        forget_tx: bool,
    ) -> Result<(), OutboxError>;

    /// Marks the job and its target row failed for good. Errors:
    /// [`OutboxError::Unavailable`].
    async fn fail(&self, job_id: i64, error: &str) -> Result<(), OutboxError>;
}

/// Errors a [`BatchStore`] returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BatchStoreError {
    /// A claimed job was finished or changed by another worker after its
    /// lease ran out, so the batch was not formed; nothing was written.
    #[error("claimed anchor jobs changed before the batch was formed: {0}")]
    Conflict(String),
    /// The database could not be reached or the query failed.
    #[error("batch store unavailable: {0}")]
    Unavailable(String),
}

/// The record anchor jobs waiting for a batch, and the batches formed from
/// them. Forming a batch moves the records' work to one `anchor_batch`
/// outbox job, which the [`OutboxStore`] then carries like any other.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Counts the record anchor jobs waiting for a batch and returns when
    /// the oldest was queued. Errors: [`BatchStoreError::Unavailable`].
    async fn pending_anchors(&self) -> Result<PendingSummary, BatchStoreError>;

    /// Claims up to `limit` waiting record anchor jobs, oldest first,
    /// leasing them for `lease`. Errors: [`BatchStoreError::Unavailable`].
    async fn claim_anchors(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<PendingAnchor>, BatchStoreError>;

    /// In one transaction: inserts the batch, stores each member record's
    /// batch, leaf index and proof, marks their record anchor jobs done and
    /// queues one `anchor_batch` job. Returns the batch id. Errors:
    /// [`BatchStoreError::Conflict`] when a member's job is no longer
    /// waiting, [`BatchStoreError::Unavailable`].
    async fn form_batch(&self, batch: &NewBatch) -> Result<i64, BatchStoreError>;
}

/// Error from signing a consent message.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignerError {
    /// The secret key is not a valid secp256k1 scalar (wrong length, zero,
    /// or not below the curve order).
    #[error("invalid custodial key: {0}")]
    InvalidKey(String),
    /// The key does not belong to the patient named in the message, so the
    /// contract would reject the signature.
    #[error("the custodial key does not control patient address {0}")]
    WrongKey(crate::types::Address),
    /// Signing itself failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs consent messages with a patient's custodial key, as the
/// `ConsentRegistry` contract verifies them (EIP-712 over the deployed
/// contract's domain). Implementations must not keep or log the key, and
/// must wipe every copy they make of it before returning.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait ConsentSigner: Send + Sync {
    /// Signs the `Grant` message of `terms` with the 32-byte `secret_key`.
    /// Errors: [`SignerError::InvalidKey`], [`SignerError::WrongKey`] when
    /// the key's address is not `terms.patient`, [`SignerError::Signing`].
    fn sign_grant(
        &self,
        secret_key: &[u8],
        terms: &GrantTerms,
    ) -> Result<ConsentSignature, SignerError>;

    /// Signs the `Revoke` message of `terms` with the 32-byte `secret_key`.
    /// Errors: as for [`ConsentSigner::sign_grant`].
    fn sign_revocation(
        &self,
        secret_key: &[u8],
        terms: &RevokeTerms,
    ) -> Result<ConsentSignature, SignerError>;
}
