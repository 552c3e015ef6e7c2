use std::fmt;

use async_trait::async_trait;
use meditrustal_ledger::Address;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::types::{
    Claims, IssuedToken, NewUser, PasswordHash, Role, StoredCredentials, User, UserId,
};

/// The unique user field a registration collided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UniqueField {
    /// Username, compared without case.
    Username,
    /// Email, compared without case after NFC normalization.
    Email,
}

impl UniqueField {
    /// The field name as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
        }
    }
}

impl fmt::Display for UniqueField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors a [`UserStore`] returns.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UserStoreError {
    /// A unique key is taken; nothing was written.
    #[error("{0} already exists")]
    AlreadyExists(UniqueField),
    /// The database could not be reached or the query failed.
    #[error("user store unavailable: {0}")]
    Unavailable(String),
}

/// Persistence of users.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts the user, their sealed custodial key and a chain
    /// registration job in one transaction. Errors:
    /// [`UserStoreError::AlreadyExists`] when the username or email key is
    /// taken (also under a concurrent insert), [`UserStoreError::Unavailable`].
    async fn insert(&self, new_user: &NewUser) -> Result<(), UserStoreError>;

    /// Loads a user by id. Errors: [`UserStoreError::Unavailable`].
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, UserStoreError>;

    /// Loads the user whose username key or email key equals `login_key`
    /// (see [`crate::login_key`]). Errors: [`UserStoreError::Unavailable`].
    async fn find_for_login(
        &self,
        login_key: &str,
    ) -> Result<Option<StoredCredentials>, UserStoreError>;
}

/// Account administration: listing users, changing their status and role.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait UserAdminStore: Send + Sync {
    /// Lists users oldest first (by `created_at`, then id), skipping
    /// `offset`, at most `limit`. Errors: [`UserStoreError::Unavailable`].
    async fn list_users(&self, limit: u32, offset: u64) -> Result<Vec<User>, UserStoreError>;

    /// Sets whether the user may sign in and returns the updated user, or
    /// `None` when no user has this id. Errors:
    /// [`UserStoreError::Unavailable`].
    async fn set_active(&self, id: UserId, active: bool) -> Result<Option<User>, UserStoreError>;

    /// Sets the role of the user whose lowercase username is
    /// `username_key` and returns the updated user, or `None` when there is
    /// none. Errors: [`UserStoreError::Unavailable`].
    async fn set_role(
        &self,
        username_key: &str,
        role: Role,
    ) -> Result<Option<User>, UserStoreError>;
}

/// Error from hashing or verifying a password.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// Slow password hashing. Implementations must not block the async
/// executor (run the work on a blocking thread pool).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password with a fresh salt. Errors: [`HashError`].
    async fn hash(&self, password: &SecretString) -> Result<PasswordHash, HashError>;

    /// Checks a password against a hash. A malformed hash is an error, a
    /// wrong password is `Ok(false)`. Errors: [`HashError`].
    async fn verify(&self, password: &SecretString, hash: &PasswordHash)
        -> Result<bool, HashError>;
}

/// Error from issuing or verifying a token. Verification failures are one
/// opaque variant so that callers cannot learn which check failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, forged, of another version or purpose, expired, or not
    /// yet valid.
    #[error("invalid token")]
    Invalid,
    /// Signing failed.
    #[error("token issue failed: {0}")]
    Issue(String),
}

/// Issues and verifies access tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// Issues a token for `claims`. Errors: [`TokenError::Issue`].
    fn issue(&self, claims: &Claims) -> Result<IssuedToken, TokenError>;

    /// Verifies a token and returns its claims. Errors: [`TokenError::Invalid`].
    fn verify(&self, token: &str) -> Result<Claims, TokenError>;

    /// Lifetime of issued tokens, in seconds.
    fn lifetime_secs(&self) -> u64;
}

/// A new custodial account: its address and secret key.
pub struct CustodialAccount {
    /// Account address.
    pub address: Address,
    /// The 32-byte secp256k1 secret key, zeroized on drop.
    pub secret_key: Zeroizing<Vec<u8>>,
}

/// Error from generating an account.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("account generation failed: {0}")]
pub struct AccountError(pub String);

/// Generates custodial chain accounts for new users.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait AccountGenerator: Send + Sync {
    /// Generates a fresh account from a CSPRNG. Errors: [`AccountError`].
    fn generate(&self) -> Result<CustodialAccount, AccountError>;
}
