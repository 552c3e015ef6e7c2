/// Error from building token keys or token configuration at startup.
/// Messages name the value at fault but never print secret bytes.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenSetupError {
    /// The signing seed is not 64 hex digits.
    #[error("invalid token signing seed: expected 64 hex digits (32 bytes)")]
    InvalidSeed,
    /// The signing seed is all zero bytes, which Ed25519 libraries reject.
    #[error("invalid token signing seed: all bytes are zero; generate a fresh seed")]
    ZeroSeed,
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A public or secret key was rejected by the Ed25519 library.
    #[error("invalid token key: {0}")]
    Key(String),
    /// A key id breaks the key id rules.
    #[error("invalid token key id {0:?}: use 1 to 64 ASCII letters, digits, '_' or '-'")]
    InvalidKeyId(String),
    /// Two verification keys share a key id.
    #[error("duplicate token key id {0:?}: give each verification key its own key id")]
    DuplicateKeyId(String),
    /// A verifier was built without any public key.
    #[error("no token verification key configured: pass at least one public key")]
    NoVerifyingKeys,
    /// The audience is empty or longer than 256 bytes.
    #[error("invalid token audience: use 1 to 256 bytes")]
    InvalidAudience,
    /// The lifetime is zero or above the maximum.
    #[error("invalid token lifetime {lifetime_secs} s: use 1 to {max_secs} seconds")]
    InvalidLifetime {
        /// The configured lifetime, in seconds.
        lifetime_secs: u64,
        /// The maximum lifetime, in seconds.
        max_secs: u64,
    },
}
