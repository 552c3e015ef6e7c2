use crate::ports::UniqueField;

/// Errors of the identity service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// A field failed validation; `message` says what a valid value is.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Name of the request field, as the API spells it.
        field: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// Another user already has this username or email.
    #[error("{0} is already registered")]
    AlreadyExists(UniqueField),
    /// Unknown user or wrong password; deliberately does not say which.
    #[error("invalid username, email or password")]
    InvalidCredentials,
    /// The token is missing, malformed, forged or expired, or its user no
    /// longer exists or is deactivated.
    #[error("authentication required")]
    Unauthenticated,
    /// The user store is unreachable. Retry later.
    #[error("identity store unavailable: {0}")]
    Unavailable(String),
    /// A failure that is not the caller's fault (key generation, hashing).
    #[error("internal identity error: {0}")]
    Internal(String),
}
