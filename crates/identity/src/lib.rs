//! Domain layer: users, roles, decentralized identifiers and credentials.
//!
//! Holds the registration and login rules and the ports they need
//! ([`UserStore`], [`PasswordHasher`], [`TokenIssuer`],
//! [`AccountGenerator`]), and user administration ([`AdminService`] over
//! [`UserAdminStore`]). Depends on the `crypto` and `ledger` domain
//! crates only; no database, web framework or token library.

mod admin;
mod error;
mod ports;
mod service;
mod types;

pub use admin::{AdminAction, AdminError, AdminService};
pub use error::IdentityError;
pub use ports::{
    AccountError, AccountGenerator, CustodialAccount, HashError, PasswordHasher, TokenError,
    TokenIssuer, UniqueField, UserAdminStore, UserStore, UserStoreError,
};
pub use service::{IdentityService, Registration};
pub use types::{
    custodial_key_aad, login_key, Claims, Did, Email, IssuedToken, NewUser, Password, PasswordHash,
    Principal, Role, StoredCredentials, User, UserId, Username,
};

#[cfg(feature = "mock")]
pub use ports::{
    MockAccountGenerator, MockPasswordHasher, MockTokenIssuer, MockUserAdminStore, MockUserStore,
};
