use async_trait::async_trait;
use chrono::{DateTime, Utc};
use meditrustal_crypto::SealedData;
use meditrustal_identity::UserId;
use meditrustal_ledger::{ConsentSignature, LedgerJob};

use crate::consent::{
    AccessGrants, BreakGlass, BreakGlassFilter, Consent, ConsentId, ConsentParty, Party, PartyRef,
};
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

/// Errors a [`ConsentStore`] returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConsentStoreError {
    /// The consent was revoked already; nothing was written.
    #[error("consent already revoked")]
    AlreadyRevoked,
    /// The database could not be reached or the query failed.
    #[error("consent store unavailable: {0}")]
    Unavailable(String),
}

/// Persistence of consents and break-glass events, and the user and key
/// lookups the consent rules need.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Loads a user by id or custodial address. Errors:
    /// [`ConsentStoreError::Unavailable`].
    async fn find_party(&self, party: PartyRef) -> Result<Option<Party>, ConsentStoreError>;

    /// Loads the user's sealed custodial key (see
    /// `meditrustal_identity::custodial_key_aad`). Errors:
    /// [`ConsentStoreError::Unavailable`].
    async fn find_signing_key(&self, user: UserId)
        -> Result<Option<SealedData>, ConsentStoreError>;

    /// Returns those of `ids` that are records of `patient`. Errors:
    /// [`ConsentStoreError::Unavailable`].
    async fn owned_records(
        &self,
        patient: UserId,
        ids: &[RecordId],
    ) -> Result<Vec<RecordId>, ConsentStoreError>;

    /// Inserts the consent and its chain job in one transaction. Errors:
    /// [`ConsentStoreError::Unavailable`].
    async fn insert_consent(
        &self,
        consent: &Consent,
        job: &LedgerJob,
    ) -> Result<(), ConsentStoreError>;

    /// Loads a consent. Errors: [`ConsentStoreError::Unavailable`].
    async fn find_consent(&self, id: ConsentId) -> Result<Option<Consent>, ConsentStoreError>;

    /// Marks the consent revoked at `revoked_at` with the patient's
    /// signature, and inserts the revocation's chain job, in one
    /// transaction. Errors: [`ConsentStoreError::AlreadyRevoked`] when it
    /// was revoked before (also by a concurrent call),
    /// [`ConsentStoreError::Unavailable`].
    async fn revoke_consent(
        &self,
        id: ConsentId,
        revoked_at: DateTime<Utc>,
        signature: ConsentSignature,
        job: &LedgerJob,
    ) -> Result<(), ConsentStoreError>;

    /// Lists the consents a patient granted or a doctor received, newest
    /// first, revoked and expired ones included. Errors:
    /// [`ConsentStoreError::Unavailable`].
    ///
    /// NOTE: the list is not paged; it grows with every grant of the party.
    async fn list_consents(&self, party: ConsentParty) -> Result<Vec<Consent>, ConsentStoreError>;

    /// Loads what lets `doctor` access `patient`'s records at `at`: the
    /// consents neither revoked nor expired, and the latest break-glass
    /// access that has not ended. Errors: [`ConsentStoreError::Unavailable`].
    async fn access_grants(
        &self,
        patient: UserId,
        doctor: UserId,
        at: DateTime<Utc>,
    ) -> Result<AccessGrants, ConsentStoreError>;

    /// Inserts a break-glass event. Errors: [`ConsentStoreError::Unavailable`].
    async fn insert_break_glass(&self, event: &BreakGlass) -> Result<(), ConsentStoreError>;

    /// Lists break-glass events newest first, skipping `offset` and
    /// returning at most `limit`. Errors: [`ConsentStoreError::Unavailable`].
    async fn list_break_glass(
        &self,
        filter: BreakGlassFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<BreakGlass>, ConsentStoreError>;
}
