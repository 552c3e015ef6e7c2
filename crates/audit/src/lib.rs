//! Domain layer: the audit log, an append-only chain of events that
//! records who did what to which patient's data, and how it ended.
//!
//! Each event commits to the previous event's hash and to its own fields
//! ([`event_hash`]), so a changed, deleted or reordered event breaks the
//! chain, and [`ChainVerifier`] names the first such event. The head is
//! anchored on a chain through the ledger outbox, so even a consistent
//! rewrite of the stored chain disagrees with an anchor. Adapters
//! implement [`AuditStore`] (PostgreSQL) and [`AuditAnchorLedger`]
//! (ethers-rs). Depends on the `crypto`, `identity` and `ledger` domain
//! crates only; no database, web framework or chain library.

mod chain;
mod error;
mod ports;
mod service;
mod types;

pub use chain::{chain_after, event_hash, ChainBreak, ChainVerifier, GENESIS_HASH};
pub use error::AuditError;
pub use ports::{AuditAnchorLedger, AuditStore, AuditStoreError};
pub use service::{AuditService, ChainReport};
pub use types::{
    Action, Actor, AnchoredHead, AuditEntry, AuditEvent, ChainHead, EventFilter, EventPage,
    EventQuery, Outcome, ReasonCode, RequestId,
};

#[cfg(feature = "mock")]
pub use ports::{MockAuditAnchorLedger, MockAuditStore};
