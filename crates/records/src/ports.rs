use async_trait::async_trait;
use meditrustal_ledger::LedgerJob;

use crate::types::{ListQuery, MedicalRecord, RecordId, StoredRecord};

/// Errors a [`RecordStore`] returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordStoreError {
    /// A record with this id exists already; nothing was written.
    #[error("record already exists")]
    AlreadyExists,
    /// The patient the record names does not exist; nothing was written.
    #[error("patient does not exist")]
    UnknownPatient,
    /// The database could not be reached or the query failed.
    #[error("record store unavailable: {0}")]
    Unavailable(String),
}

/// Persistence of sealed records.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Inserts the record and its anchoring job in one transaction: both or
    /// neither are written. Errors: [`RecordStoreError::AlreadyExists`],
    /// [`RecordStoreError::UnknownPatient`], [`RecordStoreError::Unavailable`].
    async fn insert(&self, record: &StoredRecord, job: &LedgerJob) -> Result<(), RecordStoreError>;

    /// Loads a record with its sealed content. Errors:
    /// [`RecordStoreError::Unavailable`].
    async fn find(&self, id: RecordId) -> Result<Option<StoredRecord>, RecordStoreError>;

    /// Lists a patient's records newest first (by `created_at`, then id),
    /// starting after `query.after`, at most `query.limit` of them. Errors:
    /// [`RecordStoreError::Unavailable`].
    async fn list(&self, query: &ListQuery) -> Result<Vec<MedicalRecord>, RecordStoreError>;
}

/// Wakes the outbox worker after a job was committed, so anchoring starts
/// without waiting for the next poll.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait JobSignal: Send + Sync {
    /// Signals that at least one job is due.
    fn job_enqueued(&self);
}
