//! Domain layer: medical records, their validation, access rules and
//! integrity checks.
//!
//! A record's content is sealed with envelope encryption (`crypto`) before
//! it reaches the [`RecordStore`], and its anchor hash is queued for the
//! chain (`ledger`) in the same store transaction. Depends on the other
//! domain crates only.

mod error;
pub mod fhir;
pub mod json;
mod ports;
mod service;
mod types;
mod verify;

pub use error::RecordError;
pub use ports::{JobSignal, RecordStore, RecordStoreError};
pub use service::{NewRecordRequest, RecordPage, RecordService};
pub use types::{
    anchor_hash, record_aad, Cursor, ListQuery, MedicalRecord, PatientSelector, RecordId,
    RecordType, StoredRecord,
};
pub use verify::{Check, CheckOutcome, Verification};

#[cfg(feature = "mock")]
pub use ports::{MockJobSignal, MockRecordStore};

#[cfg(test)]
mod service_tests;
