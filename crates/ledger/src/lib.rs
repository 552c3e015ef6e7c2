//! Domain layer: anchoring record hashes and registering users on a chain.
//!
//! Chain writes never happen inside a request. A request commits a
//! [`LedgerJob`] to the outbox in the same database transaction as the data
//! it describes; the [`OutboxProcessor`] later sends it through the
//! [`Ledger`] port and records the outcome. Adapters implement [`Ledger`]
//! (ethers-rs today) and [`OutboxStore`] (PostgreSQL); this crate depends
//! on neither. Consent jobs carry the patient's signature, made through the
//! [`ConsentSigner`] port before the job is queued.
//!
//! In batch mode the [`BatchAnchorer`] first gathers waiting record anchor
//! jobs into one Merkle root ([`merkle`]) through the [`BatchStore`] port,
//! and the outbox then sends that root as one job.

mod batch;
mod consent;
pub mod merkle;
mod outbox;
mod ports;
mod types;

pub use batch::{
    build_batch, BatchAnchorer, BatchMember, BatchPolicy, BatchRound, NewBatch, PendingAnchor,
    PendingSummary,
};
pub use consent::{
    consent_key, ChainAccess, ConsentSignature, GrantTerms, OnChainConsent, RevokeTerms,
    SignedGrant, SignedRevocation,
};
pub use outbox::{BackoffPolicy, OutboxProcessor, ProcessReport};
pub use ports::{
    BatchStore, BatchStoreError, ConsentSigner, Ledger, LedgerError, OutboxError, OutboxStore,
    SignerError,
};
pub use types::{
    Address, AddressParseError, AnchorMode, AnchorState, AnchorStatus, AuditHeadAnchor,
    BatchAnchor, ChainAnchor, ChainRole, ChainStatus, ContractLocation, LedgerJob, OnChainBatch,
    OnChainRecord, OutboxJob, RecordAnchor, Submission, TxHash, TxStatus, UserRegistration,
};

#[cfg(feature = "mock")]
pub use ports::{MockBatchStore, MockConsentSigner, MockLedger, MockOutboxStore};
