use async_trait::async_trait;
use meditrustal_ledger::{AuditHeadAnchor, LedgerError};

use crate::types::{AnchoredHead, AuditEntry, AuditEvent, ChainHead, EventQuery};

/// Errors an [`AuditStore`] returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuditStoreError {
    /// The database could not be reached, the query failed, or a stored
    /// value could not be read back. Nothing was appended.
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
}

/// Persistence of the audit chain. Events are only ever appended.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `entries`, in order, as the next events of the chain, and
    /// returns them. Implementations hold one lock from reading the head
    /// until the commit and place each entry with
    /// [`crate::chain_after`], so concurrent appends never fork the chain
    /// or leave a gap. All entries or none are appended. Errors:
    /// [`AuditStoreError::Unavailable`].
    async fn append(&self, entries: &[AuditEntry]) -> Result<Vec<AuditEvent>, AuditStoreError>;

    /// Returns the last event's sequence number and hash, or `None` for an
    /// empty chain. Errors: [`AuditStoreError::Unavailable`].
    async fn head(&self) -> Result<Option<ChainHead>, AuditStoreError>;

    /// Returns up to `limit` events with a sequence number above
    /// `after_seq`, in ascending order, as stored (gaps included). Errors:
    /// [`AuditStoreError::Unavailable`].
    async fn events_after(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditStoreError>;

    /// Returns up to `query.limit` events that match `query.filter` and lie
    /// below `query.before_seq`, newest (highest sequence number) first.
    /// Errors: [`AuditStoreError::Unavailable`].
    async fn search(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, AuditStoreError>;

    /// Returns the highest sequence number ever queued for anchoring, or
    /// `None`. Errors: [`AuditStoreError::Unavailable`].
    async fn latest_anchor_request(&self) -> Result<Option<u64>, AuditStoreError>;

    /// Queues `head` for anchoring: records the request and its outbox job
    /// in one transaction. Returns `false` when that sequence number was
    /// queued before. Errors: [`AuditStoreError::Unavailable`].
    async fn request_anchor(&self, head: &AuditHeadAnchor) -> Result<bool, AuditStoreError>;
}

/// Read access to the audit heads anchored on a chain.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait AuditAnchorLedger: Send + Sync {
    /// Returns every anchored head, in anchoring order. Errors:
    /// [`LedgerError::Unavailable`], [`LedgerError::ContractsMissing`].
    async fn anchored_heads(&self) -> Result<Vec<AnchoredHead>, LedgerError>;
}
