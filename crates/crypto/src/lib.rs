//! Domain layer: SHA-256 digests and AES-256-GCM envelope encryption.
//!
//! Depends only on `ring` for primitives. Keys reach this crate through the
//! [`KeyProvider`] port, so a KMS or Vault adapter can replace the keyring
//! that the binary builds from configuration.

mod digest;
mod envelope;
mod keys;

pub use digest::{sha256, Digest, DigestParseError};
pub use envelope::{open, random_bytes_32, rewrap, seal, seal_with_rng, CryptoError, SealedData};
pub use keys::{KeyId, KeyProvider, MasterKey, MasterKeyring};

#[cfg(feature = "mock")]
pub use keys::MockKeyProvider;
