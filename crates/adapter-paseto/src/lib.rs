//! Adapter layer: access tokens and password hashing for the `identity`
//! domain crate.
//!
//! [`PasetoTokens`] implements [`meditrustal_identity::TokenIssuer`] with
//! PASETO v4.public (Ed25519) tokens through `pasetors`, and
//! [`BcryptHasher`] implements [`meditrustal_identity::PasswordHasher`] with
//! `bcrypt` on Tokio's blocking thread pool. Depends on `identity` for the
//! ports and on those libraries; no web framework or database. See
//! `docs/tokens.md` for the token format, key rotation and lifetime.

mod bcrypt_hasher;
mod error;
mod keys;
mod tokens;

pub use bcrypt_hasher::{
    BcryptHasher, InvalidBcryptCost, MAX_COST, MAX_PASSWORD_BYTES, MIN_COST, PRODUCTION_COST,
};
pub use error::TokenSetupError;
pub use keys::{SigningKey, SigningSeed, TokenKeyId, VerifyingKey};
pub use tokens::{
    PasetoTokens, PasetoVerifier, TokenConfig, DEFAULT_AUDIENCE, DEFAULT_LIFETIME_SECS, ISSUER,
    MAX_LIFETIME_SECS,
};
