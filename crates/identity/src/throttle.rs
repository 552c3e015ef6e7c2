//! Limits on failed credential checks, with exponential backoff.
//!
//! Failures are counted per key: the login name as typed (normalized), the
//! user (for logins under any of the account's names, second-factor codes
//! and password checks), and the client IP. Once a
//! key reaches its limit, each further failure locks it for twice as long
//! as the one before, up to a maximum. A key's failures are dropped after a
//! quiet period. Counts live in a [`crate::LoginThrottle`] store shared by
//! every server instance.

use std::net::IpAddr;

use chrono::TimeDelta;
use meditrustal_crypto::sha256;

use crate::types::UserId;

/// Limits and backoff of failed credential checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one login name or user before the first lockout.
    pub account_max_failures: u32,
    /// Failures from one client IP before the first lockout.
    pub ip_max_failures: u32,
    /// Quiet time after which a key's failures are forgotten.
    pub forget_after: TimeDelta,
    /// First lockout; each further failure doubles it.
    pub base_lockout: TimeDelta,
    /// Maximum lockout.
    pub max_lockout: TimeDelta,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_max_failures: 5,
            ip_max_failures: 50,
            forget_after: TimeDelta::minutes(15),
            base_lockout: TimeDelta::seconds(30),
            max_lockout: TimeDelta::minutes(15),
        }
    }
}

impl ThrottlePolicy {
    /// Returns how long `key` is locked after its `failures`-th failure in
    /// a row, or `None` while it is under its limit.
    pub fn lockout_after(&self, key: &ThrottleKey, failures: u32) -> Option<TimeDelta> {
        let limit = match key {
            ThrottleKey::Ip(_) => self.ip_max_failures,
            ThrottleKey::Login(_) | ThrottleKey::User(_) => self.account_max_failures,
            ThrottleKey::ResetMessages(_) => return None,
        };
        if failures < limit {
            return None;
        }

        // 2^30 times any base of a second or more exceeds 30 years, so
        // stopping there changes no result that the maximum lets through.
        let doublings = (failures - limit).min(30);
        let lockout = self
            .base_lockout
            .checked_mul(1_i32 << doublings)
            .unwrap_or(self.max_lockout);
        Some(lockout.min(self.max_lockout))
    }
}

/// Subject that failures are counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// A login name as typed, after [`crate::login_key`] normalization.
    /// Login failures count against the name, not the account, so that
    /// the lockout of an unknown name behaves like that of a real one.
    Login(String),
    /// A user: logins under any of its names, second-factor codes and
    /// current-password checks.
    User(UserId),
    /// A client IP address.
    Ip(IpAddr),
    /// Password reset messages sent to a user. Counted, never locked: past
    /// [`MAX_RESET_MESSAGES`] a request sends nothing.
    ResetMessages(UserId),
}

/// Reset messages sent to one account until requests stop for the
/// policy's `forget_after`, so that anyone who knows an address cannot
/// flood its inbox.
pub const MAX_RESET_MESSAGES: u32 = 3;

impl ThrottleKey {
    /// Text stored as the key: `login:<SHA-256 of the name>`, `user:<uuid>`,
    /// `ip:<address>` or `reset:<uuid>`. Names are hashed because they are typed by
    /// anyone, of any length, and often e-mail addresses.
    pub fn storage_key(&self) -> String {
        match self {
            Self::Login(name) => format!("login:{}", sha256(name.as_bytes())),
            Self::User(id) => format!("user:{id}"),
            Self::Ip(address) => format!("ip:{address}"),
            Self::ResetMessages(id) => format!("reset:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            account_max_failures: 3,
            ip_max_failures: 10,
            forget_after: TimeDelta::minutes(15),
            base_lockout: TimeDelta::seconds(30),
            max_lockout: TimeDelta::seconds(200),
        }
    }

    #[test]
    fn lockout_starts_at_limit_and_doubles_to_maximum() {
        let key = ThrottleKey::Login("alice".into());
        let expected = [
            (1, None),
            (2, None),
            (3, Some(30)),
            (4, Some(60)),
            (5, Some(120)),
            (6, Some(200)),
            (40, Some(200)),
            (u32::MAX, Some(200)),
        ];
        for (failures, seconds) in expected {
            assert_eq!(
                policy().lockout_after(&key, failures),
                seconds.map(TimeDelta::seconds),
                "after {failures} failures"
            );
        }
    }

    #[test]
    fn ip_keys_use_the_ip_limit() {
        let key = ThrottleKey::Ip("192.0.2.7".parse().unwrap());

        assert_eq!(policy().lockout_after(&key, 9), None);
        assert_eq!(
            policy().lockout_after(&key, 10),
            Some(TimeDelta::seconds(30))
        );
    }

    #[test]
    fn storage_keys_name_their_kind() {
        let user = UserId(uuid::Uuid::from_u128(7));

        assert_eq!(
            ThrottleKey::Login("alice".into()).storage_key(),
            // SHA-256 of "alice".
            "login:0x2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
        );
        assert_eq!(
            ThrottleKey::User(user).storage_key(),
            "user:00000000-0000-0000-0000-000000000007"
        );
        assert_eq!(
            ThrottleKey::Ip("2001:db8::1".parse().unwrap()).storage_key(),
            "ip:2001:db8::1"
        );
    }
}
