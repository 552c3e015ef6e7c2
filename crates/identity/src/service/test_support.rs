//! Mocked ports and fixtures shared by the service's unit tests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use meditrustal_ledger::Address;

use super::{IdentityService, SecurityPorts};
use crate::ports::{
    MockAccountGenerator, MockLoginThrottle, MockMfaStore, MockNotifier, MockOneTimeTokenStore,
    MockPasswordHasher, MockSessionStore, MockTokenIssuer, MockUserStore,
};
use crate::session::{ClientInfo, SecurityPolicy, Session, SessionId};
use crate::types::{
    Did, Email, IssuedToken, PasswordHash, Role, StoredCredentials, User, UserId, Username,
};

/// Id of the user every fixture describes.
pub(crate) const USER: UserId = UserId(uuid::Uuid::from_u128(7));

/// Id of the fixture session.
pub(crate) const SESSION: SessionId = SessionId(uuid::Uuid::from_u128(42));

/// One mock per port. Tests set expectations, then build the service.
pub(crate) struct Mocks {
    pub users: MockUserStore,
    pub hasher: MockPasswordHasher,
    pub tokens: MockTokenIssuer,
    pub accounts: MockAccountGenerator,
    pub sessions: MockSessionStore,
    pub throttle: MockLoginThrottle,
    pub one_time: MockOneTimeTokenStore,
    pub mfa: MockMfaStore,
    pub notifier: MockNotifier,
    pub policy: SecurityPolicy,
}

impl Mocks {
    /// Mocks that expect only the decoy hash made by `IdentityService::new`.
    pub fn new() -> Self {
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash("decoy".into())));
        Self {
            users: MockUserStore::new(),
            hasher,
            tokens: MockTokenIssuer::new(),
            accounts: MockAccountGenerator::new(),
            sessions: MockSessionStore::new(),
            throttle: MockLoginThrottle::new(),
            one_time: MockOneTimeTokenStore::new(),
            mfa: MockMfaStore::new(),
            notifier: MockNotifier::new(),
            policy: SecurityPolicy::default(),
        }
    }

    /// Lets the throttle report no lock, count every failure as the first,
    /// and clear keys, any number of times.
    pub fn allow_throttle(&mut self) {
        self.throttle
            .expect_locked_until()
            .returning(|_, _| Ok(None));
        self.throttle
            .expect_record_failure()
            .returning(|_, _, _| Ok(1));
        self.throttle.expect_clear().returning(|_| Ok(()));
    }

    /// Lets the token issuer sign any claims as `v4.public.<session id>`.
    pub fn allow_issue(&mut self) {
        self.tokens.expect_lifetime_secs().return_const(900u64);
        self.tokens.expect_issue().returning(|claims| {
            Ok(IssuedToken {
                token: secrecy::SecretString::from(format!("v4.public.{}", claims.session_id)),
                expires_in: 900,
            })
        });
    }

    pub async fn service(self) -> IdentityService {
        let keys = MasterKeyring::new(MasterKey::new(KeyId::new("test"), [1; 32]), []);
        let security = SecurityPorts {
            sessions: Arc::new(self.sessions),
            throttle: Arc::new(self.throttle),
            one_time_tokens: Arc::new(self.one_time),
            mfa: Arc::new(self.mfa),
            notifier: Arc::new(self.notifier),
        };
        IdentityService::new(
            Arc::new(self.users),
            Arc::new(self.hasher),
            Arc::new(self.tokens),
            Arc::new(self.accounts),
            Arc::new(keys),
            security,
            self.policy,
        )
        .await
        .unwrap()
    }
}

/// The master keyring the service under test seals with.
pub(crate) fn keyring() -> MasterKeyring {
    MasterKeyring::new(MasterKey::new(KeyId::new("test"), [1; 32]), [])
}

pub(crate) fn stored_user(active: bool) -> User {
    User {
        id: USER,
        username: Username::from_stored("alice".into()),
        email: Email::from_stored("alice@example.org".into()),
        full_name: None,
        role: Role::Patient,
        did: Did::for_user(USER),
        blockchain_address: Address::from_bytes([1; 20]),
        is_active: active,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub(crate) fn credentials(active: bool) -> StoredCredentials {
    StoredCredentials {
        user: stored_user(active),
        password_hash: PasswordHash("real".into()),
    }
}

pub(crate) fn client() -> ClientInfo {
    ClientInfo {
        ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        user_agent: Some("test-agent/1.0".into()),
    }
}

/// An active session of [`USER`], last used `idle_secs` ago.
pub(crate) fn session(idle_secs: i64) -> Session {
    let now = Utc::now();
    Session {
        id: SESSION,
        user_id: USER,
        device: Some("test-agent/1.0".into()),
        ip: client().ip,
        created_at: now - TimeDelta::hours(1),
        last_used_at: now - TimeDelta::seconds(idle_secs),
        expires_at: now + TimeDelta::days(1),
    }
}
