//! Domain layer: users, roles, decentralized identifiers and credentials.
//!
//! Holds the registration, login, session, password and second-factor
//! rules and the ports they need ([`UserStore`], [`PasswordHasher`],
//! [`TokenIssuer`], [`AccountGenerator`], [`SessionStore`],
//! [`LoginThrottle`], [`OneTimeTokenStore`], [`MfaStore`], [`Notifier`]),
//! and user administration ([`AdminService`] over [`UserAdminStore`]).
//! Depends on the `crypto` and `ledger` domain crates only; no database,
//! web framework or token library.

mod admin;
mod error;
mod mfa;
mod opaque;
pub mod password_policy;
mod ports;
mod service;
mod session;
mod throttle;
pub mod totp;
mod types;

pub use admin::{AdminAction, AdminError, AdminService};
pub use error::IdentityError;
pub use mfa::{totp_secret_aad, MfaCode, StoredTotp, TotpEnrollment};
pub use opaque::{
    hash_presented, NewOneTimeToken, OneTimeToken, OpaqueToken, TokenHash, TokenPurpose,
};
pub use ports::{
    AccountError, AccountGenerator, AuthStoreError, CustodialAccount, HashError, LoginThrottle,
    MfaStore, Notification, Notifier, NotifyError, OneTimeTokenStore, PasswordHasher, SessionStore,
    TokenError, TokenIssuer, UniqueField, UserAdminStore, UserStore, UserStoreError,
};
pub use service::{IdentityService, LoginAttempt, Registration, SecurityPorts};
pub use session::{
    ClientInfo, LoginOutcome, MfaChallenge, NewSession, RefreshAttempt, RefreshRotation,
    RotationOutcome, SecurityPolicy, Session, SessionId, TokenPair,
};
pub use throttle::{ThrottleKey, ThrottlePolicy, MAX_RESET_MESSAGES};
pub use types::{
    custodial_key_aad, login_key, Claims, Did, Email, IssuedToken, NewUser, Password, PasswordHash,
    Principal, Role, StoredCredentials, User, UserId, Username,
};

#[cfg(feature = "mock")]
pub use ports::{
    MockAccountGenerator, MockLoginThrottle, MockMfaStore, MockNotifier, MockOneTimeTokenStore,
    MockPasswordHasher, MockSessionStore, MockTokenIssuer, MockUserAdminStore, MockUserStore,
};
