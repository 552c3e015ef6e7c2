//! Opaque bearer secrets (refresh, password reset and MFA login tokens):
//! 256 random bits behind a prefix that names the purpose. Only the
//! SHA-256 of the full text is stored, so a database leak exposes no usable
//! token. SHA-256 without salt or stretching is enough here because the
//! input has 256 bits of entropy; passwords need bcrypt, these do not.

use std::fmt;

use chrono::{DateTime, Utc};
use data_encoding::BASE64URL_NOPAD;
use meditrustal_crypto::{sha256, Digest};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::IdentityError;
use crate::types::UserId;

/// Number of random bytes in every opaque token.
const RANDOM_BYTES: usize = 32;

/// Purpose of an opaque token. The prefix keeps tokens of different kinds
/// apart and lets secret scanners recognise a leaked one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Obtains a new access token for one session, once.
    Refresh,
    /// Sets a new password without the old one, once.
    PasswordReset,
    /// Completes a login with a second factor, once.
    MfaLogin,
}

impl TokenPurpose {
    /// Text every token of this purpose starts with.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Refresh => "mtr_rt_",
            Self::PasswordReset => "mtr_reset_",
            Self::MfaLogin => "mtr_mfa_",
        }
    }

    /// Name stored in the `purpose` column of one-time tokens.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refresh => "refresh",
            Self::PasswordReset => "password_reset",
            Self::MfaLogin => "mfa_login",
        }
    }
}

/// SHA-256 of an opaque token's full text, the only form that is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub Digest);

impl TokenHash {
    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A freshly drawn opaque token: the text for the client and its hash for
/// the store.
pub struct OpaqueToken {
    /// The token text; a bearer credential, never logged.
    pub secret: SecretString,
    /// SHA-256 of the text.
    pub hash: TokenHash,
}

impl OpaqueToken {
    /// Draws a token from the system CSPRNG. Errors:
    /// [`IdentityError::Internal`] when the random source fails.
    pub fn generate(purpose: TokenPurpose) -> Result<Self, IdentityError> {
        let mut bytes = Zeroizing::new([0u8; RANDOM_BYTES]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| IdentityError::Internal("system random number generator failed".into()))?;
        let text = format!(
            "{}{}",
            purpose.prefix(),
            BASE64URL_NOPAD.encode(bytes.as_ref())
        );
        let hash = hash_text(&text);
        Ok(Self {
            secret: SecretString::from(text),
            hash,
        })
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// A one-time token to store: a password reset or MFA login token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOneTimeToken {
    /// Hash of the token text.
    pub hash: TokenHash,
    /// Purpose, never [`TokenPurpose::Refresh`]: sessions store those.
    pub purpose: TokenPurpose,
    /// The user it acts for.
    pub user_id: UserId,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// An unspent, unexpired one-time token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeToken {
    /// The user it acts for.
    pub user_id: UserId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Wrong codes presented with it so far (MFA login tokens).
    pub failed_attempts: u32,
}

/// Hashes a token a client presented, or returns `None` when it cannot be
/// a token of `purpose` (wrong prefix or length), so that an access token
/// or a token of another purpose never reaches the store.
pub fn hash_presented(token: &SecretString, purpose: TokenPurpose) -> Option<TokenHash> {
    let text = token.expose_secret();
    let body = text.strip_prefix(purpose.prefix())?;
    let decoded = BASE64URL_NOPAD.decode(body.as_bytes()).ok()?;
    (decoded.len() == RANDOM_BYTES).then(|| hash_text(text))
}

fn hash_text(text: &str) -> TokenHash {
    TokenHash(sha256(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_token_has_prefix_and_hashes_back() {
        let token = OpaqueToken::generate(TokenPurpose::Refresh).unwrap();
        let text = token.secret.expose_secret();

        assert!(text.starts_with("mtr_rt_"), "{text}");
        assert_eq!(text.len(), "mtr_rt_".len() + 43);
        assert_eq!(
            hash_presented(&token.secret, TokenPurpose::Refresh),
            Some(token.hash)
        );
    }

    #[test]
    fn token_of_another_purpose_is_not_hashed() {
        let reset = OpaqueToken::generate(TokenPurpose::PasswordReset).unwrap();

        assert_eq!(hash_presented(&reset.secret, TokenPurpose::Refresh), None);
        assert_eq!(hash_presented(&reset.secret, TokenPurpose::MfaLogin), None);
    }

    #[test]
    fn access_token_and_malformed_text_are_not_hashed() {
        let cases = [
            "v4.public.eyJzdWIiOiJ4In0",
            "",
            "mtr_rt_",
            "mtr_rt_short",
            "mtr_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "mtr_rt_!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ];
        for text in cases {
            let secret = SecretString::from(text);
            assert_eq!(
                hash_presented(&secret, TokenPurpose::Refresh),
                None,
                "{text:?} was hashed"
            );
        }
    }

    #[test]
    fn two_tokens_differ() {
        let first = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();
        let second = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();

        assert_ne!(first.hash, second.hash);
        assert_ne!(first.secret.expose_secret(), second.secret.expose_secret());
    }

    #[test]
    fn debug_omits_the_secret() {
        let token = OpaqueToken::generate(TokenPurpose::Refresh).unwrap();
        let printed = format!("{token:?}");

        assert!(!printed.contains(token.secret.expose_secret()), "{printed}");
    }
}
