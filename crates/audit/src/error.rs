use meditrustal_ledger::LedgerError;

/// Errors of the audit service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// A query parameter failed validation.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Name of the parameter, as the API spells it.
        field: &'static str,
        /// The problem and the accepted values.
        message: String,
    },
    /// The caller may not run this query.
    #[error("{0}")]
    Forbidden(String),
    /// The audit store is unreachable. An action that must be audited
    /// does not proceed.
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
    /// The anchored heads could not be read from the chain.
    #[error("anchored audit heads unavailable: {0}")]
    AnchorsUnavailable(LedgerError),
}
