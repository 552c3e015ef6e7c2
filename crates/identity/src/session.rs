//! Login sessions and the token pairs they hand out.
//!
//! A session is one login on one device. It owns a chain of refresh tokens
//! (its "family"): each refresh spends the current token and issues the
//! next. Access tokens name their session in the `sid` claim, and every
//! request checks that the session is still active, so revoking a session
//! ends its access tokens at once.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::IdentityError;
use crate::opaque::TokenHash;
use crate::throttle::ThrottlePolicy;
use crate::types::{IssuedToken, UserId};

/// Maximum stored length of a device description, in characters.
pub const MAX_DEVICE_CHARS: usize = 200;

/// A session's id: a random UUID, carried by access tokens as `sid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Client details of a request: peer address and user agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// Address of the TCP peer.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header as sent.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The device description stored with a session: the user agent with
    /// control characters removed, trimmed, at most [`MAX_DEVICE_CHARS`]
    /// characters, or `None` when nothing is left.
    pub fn device(&self) -> Option<String> {
        let agent = self.user_agent.as_deref()?;
        let cleaned: String = agent
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_DEVICE_CHARS)
            .collect();
        let trimmed = cleaned.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_owned())
    }
}

/// A login session as stored and as the session list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Id, the `sid` of its access tokens.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// Device description from the login's user agent.
    pub device: Option<String>,
    /// Client address of the login or of the latest refresh.
    pub ip: Option<IpAddr>,
    /// Login time.
    pub created_at: DateTime<Utc>,
    /// Latest login, refresh or request, to the minute (see
    /// [`crate::IdentityService::authenticate`]).
    pub last_used_at: DateTime<Utc>,
    /// End of the session unless a refresh extends it: the expiry of its
    /// current refresh token.
    pub expires_at: DateTime<Utc>,
}

/// A session to insert with its first refresh token.
#[derive(Debug)]
pub struct NewSession {
    /// The session.
    pub session: Session,
    /// Hash of its first refresh token.
    pub refresh_hash: TokenHash,
}

/// The spending of one refresh token for the next one.
#[derive(Clone, Copy, Debug)]
pub struct RefreshRotation {
    /// Hash of the token the client presented.
    pub presented: TokenHash,
    /// Hash of the token that replaces it.
    pub next: TokenHash,
    /// Time of the refresh.
    pub now: DateTime<Utc>,
    /// New session expiry.
    pub expires_at: DateTime<Utc>,
    /// Client address of the refresh.
    pub ip: Option<IpAddr>,
}

/// Result of [`crate::SessionStore::rotate_refresh`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The token was current: it is now spent and its successor stored.
    Rotated(Session),
    /// The token was already spent, so someone has a copy. The caller
    /// revokes the whole session.
    Reused {
        /// The session the token belongs to.
        session_id: SessionId,
        /// Its owner.
        user_id: UserId,
    },
    /// No such token, or its session is revoked or expired.
    Rejected,
}

/// The credentials a login or refresh returns.
#[derive(Debug)]
pub struct TokenPair {
    /// Short-lived access token.
    pub access: IssuedToken,
    /// Opaque single-use refresh token; a bearer credential, never logged.
    pub refresh: SecretString,
    /// The session both belong to.
    pub session_id: SessionId,
    /// The user the session belongs to.
    pub user_id: UserId,
}

/// The outcome of a refresh, with the user whose session a reused token
/// ended.
#[derive(Debug)]
pub struct RefreshAttempt {
    /// The session's user when the token was spent before and the session
    /// was ended for it, else `None`.
    pub reused_by: Option<UserId>,
    /// The next token pair, or why the refresh failed.
    pub result: Result<TokenPair, IdentityError>,
}

/// The first login step passed, and the account needs a second factor.
#[derive(Debug)]
pub struct MfaChallenge {
    /// Opaque token for `POST /auth/login/mfa`; never logged.
    pub token: SecretString,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Result of a password login.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: a new session and its tokens.
    Tokens(TokenPair),
    /// The password was right, and a TOTP or recovery code must follow.
    MfaRequired(MfaChallenge),
}

/// Lifetimes and limits of sessions, one-time tokens and login throttling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// How long a refresh token stays valid; each refresh extends the
    /// session by this much from the time of the refresh.
    pub refresh_token_lifetime: TimeDelta,
    /// How long a password reset token stays valid.
    pub password_reset_lifetime: TimeDelta,
    /// How long the second login step may take.
    pub mfa_challenge_lifetime: TimeDelta,
    /// Wrong codes accepted per MFA login challenge before it is spent.
    pub mfa_max_attempts: u32,
    /// Failed-login limits.
    pub throttle: ThrottlePolicy,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        Self {
            refresh_token_lifetime: TimeDelta::days(30),
            password_reset_lifetime: TimeDelta::minutes(15),
            mfa_challenge_lifetime: TimeDelta::minutes(5),
            mfa_max_attempts: 5,
            throttle: ThrottlePolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strips_control_characters_and_truncates() {
        let client = ClientInfo {
            ip: None,
            user_agent: Some(format!("  curl/8.5\n\u{0007}{}", "x".repeat(300))),
        };
        let device = client.device().unwrap();

        assert!(device.starts_with("curl/8.5x"), "{device}");
        assert_eq!(device.chars().count(), MAX_DEVICE_CHARS - 2);
    }

    #[test]
    fn device_is_none_without_printable_agent() {
        let blank = ClientInfo {
            ip: None,
            user_agent: Some(" \t\r\n".into()),
        };

        assert_eq!(blank.device(), None);
        assert_eq!(ClientInfo::default().device(), None);
    }
}
