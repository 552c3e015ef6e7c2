//! Domain layer: anchoring record hashes and registering users on a chain.
//!
//! Chain writes never happen inside a request. A request commits a
//! [`LedgerJob`] to the outbox in the same database transaction as the data
//! it describes; the [`OutboxProcessor`] later sends it through the
//! [`Ledger`] port and records the outcome. Adapters implement [`Ledger`]
//! (ethers-rs today) and [`OutboxStore`] (PostgreSQL); this crate depends
//! on neither. Consent jobs carry the patient's signature, made through the
//! [`ConsentSigner`] port before the job is queued. The [`ChainWatcher`]
//! follows the contracts' events through the [`ChainEvents`] port and
//! reopens finished jobs whose entry the chain lost ([`WatchStore`]). Only
//! the holder of the [`SignerLock`] sends transactions.

mod consent;
mod outbox;
mod ports;
mod types;
mod watch;

pub use consent::{
    consent_key, ChainAccess, ConsentSignature, GrantTerms, OnChainConsent, RevokeTerms,
    SignedGrant, SignedRevocation,
};
pub use outbox::{BackoffPolicy, OutboxProcessor, ProcessReport};
pub use ports::{
    ChainEvents, ConsentSigner, Ledger, LedgerError, OutboxError, OutboxStore, SignerError,
    SignerLock, WatchStore,
};
pub use types::{
    Address, AddressParseError, AnchorState, AnchorStatus, AuditHeadAnchor, ChainAnchor, ChainRole,
    ChainStatus, EntryKey, LedgerJob, OnChainRecord, OutboxJob, RecordAnchor, Replacement,
    Submission, TxHash, TxStatus, UserRegistration,
};
pub use watch::{
    AnchoredJob, BlockRef, ChainEvent, ChainWatcher, UnmatchedEvent, WatchError, WatchPolicy,
    WatchReport,
};

#[cfg(feature = "mock")]
pub use ports::{
    MockChainEvents, MockConsentSigner, MockLedger, MockOutboxStore, MockSignerLock, MockWatchStore,
};
