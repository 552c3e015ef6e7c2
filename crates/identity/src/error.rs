use crate::ports::UniqueField;

/// Errors of the identity service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// A field failed validation; `message` states what a valid value is.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Name of the request field, as the API spells it.
        field: &'static str,
        /// Description of the problem and of the accepted values.
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
    /// The refresh token is unknown, spent, of a revoked or expired
    /// session, or not a refresh token at all.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The password reset token is unknown, spent or expired.
    #[error("invalid password reset token")]
    InvalidResetToken,
    /// The MFA login token is unknown, spent or expired.
    #[error("invalid MFA login token")]
    InvalidMfaToken,
    /// The TOTP or recovery code is wrong, outside the time window, or
    /// already used.
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    /// The account already has a confirmed TOTP credential.
    #[error("two-factor authentication is already enabled")]
    MfaAlreadyEnabled,
    /// The account has no TOTP credential in the state the request needs.
    #[error("two-factor authentication is not enabled")]
    MfaNotEnabled,
    /// No active session with this id belongs to the caller.
    #[error("session not found")]
    SessionNotFound,
    /// Too many failed attempts for this login name, user or client
    /// address; nothing was checked.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    TooManyAttempts {
        /// Whole seconds until the lock ends, at least 1.
        retry_after_secs: u64,
    },
    /// The user store is unreachable. Retry later.
    #[error("identity store unavailable: {0}")]
    Unavailable(String),
    /// A failure that is not the caller's fault (key generation, hashing).
    #[error("internal identity error: {0}")]
    Internal(String),
}
