/// Errors of the record service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// A request field failed validation.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Path of the field, as the API spells it (`raw_data.birthDate`).
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The record does not exist, or the caller may not see it. The two
    /// cases are deliberately indistinguishable.
    #[error("record not found")]
    NotFound,
    /// The caller may not perform this action for this patient.
    #[error("{0}")]
    Forbidden(String),
    /// The stored ciphertext failed its integrity check; no plaintext is
    /// returned.
    #[error("record failed its integrity check")]
    Integrity,
    /// A dependency (database, chain) is unreachable. Retry later.
    #[error("record store unavailable: {0}")]
    Unavailable(String),
    /// A failure that is not the caller's fault.
    #[error("internal record error: {0}")]
    Internal(String),
}
