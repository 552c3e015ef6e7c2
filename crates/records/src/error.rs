use meditrustal_identity::UserId;

use crate::types::RecordId;

/// Errors of the record service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A request field failed validation.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Path of the field, as the API spells it (`raw_data.birthDate`).
        field: String,
        /// Description of the problem and of the accepted values.
        message: String,
    },
    /// The record does not exist, or the caller may not see it. The two
    /// cases are deliberately indistinguishable.
    #[error("record not found")]
    NotFound,
    /// The caller may not perform this action for this patient.
    #[error("{0}")]
    Forbidden(String),
    /// A doctor asked for records that no consent or break-glass access
    /// covers, or that do not exist; the two cases look the same.
    #[error("access denied: no consent covers this {}", .0.action)]
    AccessDenied(AccessDenial),
    /// The stored ciphertext failed its integrity check; no plaintext is
    /// returned.
    #[error("record failed its integrity check")]
    Integrity,
    /// The record has no anchor receipt yet: it waits for its batch or for
    /// the batch's transaction. Retry after the anchor shows `anchored`.
    #[error("record is not anchored yet")]
    NotAnchored,
    /// The record was anchored in its own `MedicalRecordRegistry`
    /// transaction, which has no batch receipt; verify checks it instead.
    #[error("record was anchored one by one and has no batch receipt")]
    AnchoredPerRecord,
    /// A dependency (database, chain) is unreachable. Retry later.
    #[error("record store unavailable: {0}")]
    Unavailable(String),
    /// A failure that is not the caller's fault.
    #[error("internal record error: {0}")]
    Internal(String),
}

/// A doctor's request that no consent or break-glass access allows. The
/// HTTP body is the same in every case; the fields are for logs and audit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessDenial {
    /// The doctor who asked.
    pub doctor_id: UserId,
    /// The patient concerned, when the record or patient exists.
    pub patient_id: Option<UserId>,
    /// The record concerned, for reads and verifications.
    pub record_id: Option<RecordId>,
    /// The requested action: `read`, `verify`, `list` or `create`.
    pub action: &'static str,
}

/// Errors of the consent service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsentError {
    /// A request field failed validation.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Name of the field, as the API spells it.
        field: &'static str,
        /// Description of the problem and of the accepted values.
        message: String,
    },
    /// The caller's role may not perform this action.
    #[error("{0}")]
    Forbidden(String),
    /// No consent with this id exists that the caller may change or see.
    #[error("consent not found")]
    ConsentNotFound,
    /// The record does not exist or the caller may not see it. The
    /// response is the same as for [`RecordError::NotFound`].
    #[error("record not found")]
    RecordNotFound,
    /// No active patient with this id exists.
    #[error("patient not found")]
    PatientNotFound,
    /// The consent was revoked before.
    #[error("consent already revoked")]
    AlreadyRevoked,
    /// The database is unreachable. Retry later.
    #[error("consent store unavailable: {0}")]
    Unavailable(String),
    /// A failure that is not the caller's fault (key unsealing, signing).
    #[error("internal consent error: {0}")]
    Internal(String),
}
