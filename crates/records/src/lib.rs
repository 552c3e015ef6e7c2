//! Domain layer: medical records, their validation, access rules and
//! integrity checks.
//!
//! A record's content is sealed with envelope encryption (`crypto`) before
//! it reaches the [`RecordStore`], and its anchor hash is queued for the
//! chain (`ledger`) in the same store transaction. Doctors reach a
//! patient's records only through the patient's consents, checked on every
//! request, or a time-limited break-glass access ([`ConsentService`]).
//! Depends on the other domain crates only.

mod consent;
mod consent_service;
mod error;
pub mod fhir;
pub mod json;
mod ports;
mod receipt;
mod service;
mod types;
mod verify;

pub use consent::{
    scope_hash, Access, AccessBasis, AccessGrants, BreakGlass, BreakGlassFilter, Consent,
    ConsentId, ConsentParty, ConsentScope, ConsentStatus, Party, PartyRef,
};
pub use consent_service::{ConsentService, GrantRequest};
pub use error::{AccessDenial, ConsentError, RecordError};
pub use ports::{ConsentStore, ConsentStoreError, JobSignal, RecordStore, RecordStoreError};
pub use receipt::{
    LeafInputs, Receipt, ReceiptAnchor, ReceiptCheck, RECEIPT_FORMAT, RECEIPT_VERSION,
};
pub use service::{NewRecordRequest, RecordPage, RecordService};
pub use types::{
    anchor_hash, anchor_hash_of, record_aad, AnchorFields, BatchPlacement, Cursor, ListQuery,
    MedicalRecord, PatientSelector, RecordFilter, RecordId, RecordType, StoredRecord,
};
pub use verify::{verify_record, Check, CheckOutcome, Verification};

#[cfg(feature = "mock")]
pub use ports::{MockConsentStore, MockJobSignal, MockRecordStore};

#[cfg(test)]
mod consent_service_tests;
#[cfg(test)]
mod service_tests;
