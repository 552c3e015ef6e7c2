use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use meditrustal_ledger::Address;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::mfa::StoredTotp;
use crate::opaque::{NewOneTimeToken, OneTimeToken, TokenHash, TokenPurpose};
use crate::session::{NewSession, RefreshRotation, RotationOutcome, Session, SessionId};
use crate::types::{
    Claims, Email, IssuedToken, NewUser, PasswordHash, Role, StoredCredentials, User, UserId,
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

    /// Loads a user with their password hash by id. Errors:
    /// [`UserStoreError::Unavailable`].
    async fn find_credentials(
        &self,
        id: UserId,
    ) -> Result<Option<StoredCredentials>, UserStoreError>;

    /// Replaces a user's password hash and sets `updated_at` to `now`.
    /// Returns whether the user exists. Errors: [`UserStoreError::Unavailable`].
    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, UserStoreError>;
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

/// Errors of the stores behind sessions, one-time tokens, second factors
/// and login throttling.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthStoreError {
    /// The database could not be reached or the query failed.
    #[error("authentication store unavailable: {0}")]
    Unavailable(String),
}

/// Persistence of login sessions and their refresh tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session and its first refresh token in one transaction.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn create(&self, session: &NewSession) -> Result<(), AuthStoreError>;

    /// Spends the presented refresh token and stores its successor, in one
    /// transaction that locks the token, so that of two concurrent uses
    /// exactly one rotates and the other gets [`RotationOutcome::Reused`].
    /// Sets the session's `last_used_at`, `ip` and `expires_at`. Returns
    /// [`RotationOutcome::Rejected`] for an unknown token or a revoked or
    /// expired session. Errors: [`AuthStoreError::Unavailable`].
    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
    ) -> Result<RotationOutcome, AuthStoreError>;

    /// Loads a session that is neither revoked nor expired at `now`.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn find_active(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, AuthStoreError>;

    /// Sets `last_used_at` of an active session. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn touch(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), AuthStoreError>;

    /// Lists a user's active sessions, most recently used first. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn list_active(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, AuthStoreError>;

    /// Revokes one of `user_id`'s active sessions. Returns false when the
    /// session does not exist, belongs to someone else or is no longer
    /// active. Errors: [`AuthStoreError::Unavailable`].
    async fn revoke(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError>;

    /// Revokes every active session of a user and returns how many.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn revoke_all(&self, user_id: UserId, now: DateTime<Utc>) -> Result<u64, AuthStoreError>;

    /// Finds the session that a refresh token (spent or not) belongs to,
    /// if that session is `user_id`'s. Errors: [`AuthStoreError::Unavailable`].
    async fn find_by_refresh(
        &self,
        user_id: UserId,
        hash: &TokenHash,
    ) -> Result<Option<SessionId>, AuthStoreError>;
}

/// Shared counters of failed credential checks (see [`crate::ThrottleKey`]).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Returns the latest lock end among `keys` that lies after `now`, or
    /// `None` when none is locked. Errors: [`AuthStoreError::Unavailable`].
    async fn locked_until(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AuthStoreError>;

    /// Counts one failure of `key` and returns its failures in a row. A
    /// key whose last failure is more than `forget_after` before `now`
    /// starts again at 1. Errors: [`AuthStoreError::Unavailable`].
    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        forget_after: chrono::TimeDelta,
    ) -> Result<u32, AuthStoreError>;

    /// Locks `key` until `until`, unless it is locked longer already.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn lock(&self, key: &str, until: DateTime<Utc>) -> Result<(), AuthStoreError>;

    /// Forgets the failures and lock of `key`. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn clear(&self, key: &str) -> Result<(), AuthStoreError>;
}

/// Persistence of single-use password reset and MFA login tokens.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OneTimeTokenStore: Send + Sync {
    /// Stores a token. Errors: [`AuthStoreError::Unavailable`].
    async fn insert(&self, token: &NewOneTimeToken) -> Result<(), AuthStoreError>;

    /// Loads an unspent token of `purpose` that has not expired at `now`.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn find_active(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<OneTimeToken>, AuthStoreError>;

    /// Spends an unspent, unexpired token atomically and returns its user;
    /// `None` when it was spent already, expired or never existed. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, AuthStoreError>;

    /// Counts a wrong code presented with the token and returns the new
    /// count. Errors: [`AuthStoreError::Unavailable`].
    async fn record_failed_attempt(&self, hash: &TokenHash) -> Result<u32, AuthStoreError>;

    /// Deletes a user's unspent tokens of `purpose`. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn delete_for_user(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> Result<(), AuthStoreError>;
}

/// Persistence of TOTP credentials and recovery codes.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// Loads a user's TOTP credential, confirmed or not. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn find_totp(&self, user_id: UserId) -> Result<Option<StoredTotp>, AuthStoreError>;

    /// Stores an unconfirmed credential, replacing an unconfirmed one.
    /// Returns false, changing nothing, when a confirmed one exists.
    /// Errors: [`AuthStoreError::Unavailable`].
    async fn save_pending_totp(
        &self,
        user_id: UserId,
        totp: &StoredTotp,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError>;

    /// Confirms the unconfirmed credential whose sealed secret equals
    /// `totp.sealed_secret`, records `step` as used and stores the recovery
    /// code hashes, in one transaction. Returns false, changing nothing,
    /// when the credential is gone, already confirmed or was replaced by a
    /// newer enrollment. Errors: [`AuthStoreError::Unavailable`].
    async fn confirm_totp(
        &self,
        user_id: UserId,
        totp: &StoredTotp,
        step: u64,
        recovery_code_hashes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError>;

    /// Records `step` as used if it is later than the last used step of a
    /// confirmed credential. Returns false when it is not (a replayed or
    /// older code). Errors: [`AuthStoreError::Unavailable`].
    async fn use_totp_step(&self, user_id: UserId, step: u64) -> Result<bool, AuthStoreError>;

    /// Spends an unused recovery code. Returns false when no unused code
    /// has this hash. Errors: [`AuthStoreError::Unavailable`].
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError>;

    /// Deletes the credential and every recovery code of a user. Errors:
    /// [`AuthStoreError::Unavailable`].
    async fn delete(&self, user_id: UserId) -> Result<(), AuthStoreError>;
}

/// A message to a user.
pub enum Notification {
    /// A password reset link or token.
    PasswordReset {
        /// The recipient.
        user_id: UserId,
        /// Their address.
        to: Email,
        /// The reset token; a credential that adapters must not log.
        token: secrecy::SecretString,
        /// When the token expires.
        expires_at: DateTime<Utc>,
    },
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PasswordReset {
                user_id,
                expires_at,
                ..
            } => f
                .debug_struct("PasswordReset")
                .field("user_id", user_id)
                .field("expires_at", expires_at)
                .finish_non_exhaustive(),
        }
    }
}

/// Error from sending a notification.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("notification failed: {0}")]
pub struct NotifyError(pub String);

/// Delivers messages to users (e-mail in production).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends or queues one message. Errors: [`NotifyError`].
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError>;
}
