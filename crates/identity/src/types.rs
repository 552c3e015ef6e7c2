use std::fmt;

use chrono::{DateTime, Utc};
use meditrustal_crypto::SealedData;
use meditrustal_ledger::{Address, ChainRole};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::error::IdentityError;
use crate::password_policy;
use crate::session::SessionId;

/// A user's id: a random UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

impl UserId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lowercase hyphenated, the form the DID is derived from.
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// A user's role. Input is accepted in any letter case; output is uppercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// Owns medical records.
    Patient,
    /// Reads and adds records with a patient's consent.
    Doctor,
    /// Operates the service; made by an operator command, never by sign-up.
    Admin,
}

impl Role {
    /// Uppercase name, as stored and serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "PATIENT",
            Self::Doctor => "DOCTOR",
            Self::Admin => "ADMIN",
        }
    }

    /// Parses a role name in any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "PATIENT" => Some(Self::Patient),
            "DOCTOR" => Some(Self::Doctor),
            "ADMIN" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The role as the `UserRegistry` contract stores it.
    pub const fn chain_role(self) -> ChainRole {
        match self {
            Self::Patient => ChainRole::Patient,
            Self::Doctor => ChainRole::Doctor,
            Self::Admin => ChainRole::Admin,
        }
    }
}

/// A decentralized identifier: `did:meditrustal:` followed by the base58btc
/// encoding of SHA-256 over the user id as lowercase hyphenated UUID text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Did(String);

impl Did {
    /// The DID method prefix.
    pub const PREFIX: &'static str = "did:meditrustal:";

    /// Derives the DID of a user.
    pub fn for_user(id: UserId) -> Self {
        let digest = meditrustal_crypto::sha256(id.to_string().as_bytes());
        Self(format!(
            "{}{}",
            Self::PREFIX,
            bs58::encode(digest.as_bytes()).into_string()
        ))
    }

    /// The DID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A username: 3 to 32 characters of ASCII letters, digits, `.`, `_` and
/// `-`, starting with a letter or digit. Unique without regard to case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Validates a username as sent.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        let starts_well = text
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
        if !(3..=32).contains(&text.len()) || !valid_chars || !starts_well {
            return Err(IdentityError::Invalid {
                field: "username",
                message: "use 3 to 32 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit".into(),
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// Wraps a stored username without validation.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The username as registered.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Uniqueness and login key: lowercase.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

/// An email address, NFC-normalized. Unique without regard to case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates an address and normalizes it to NFC. The check is
    /// structural (one `@`, a non-empty local part, a dotted domain); only
    /// a delivered message proves an address.
    pub fn parse(text: &str) -> Result<Self, IdentityError> {
        let normalized: String = text.trim().nfc().collect();
        let invalid = || IdentityError::Invalid {
            field: "email",
            message: "enter an email address such as name@example.org".into(),
        };

        let (local, domain) = normalized.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        let has_bad_chars = normalized
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c));
        if local.is_empty()
            || domain.contains('@')
            || !domain_ok
            || has_bad_chars
            || normalized.len() > 254
        {
            return Err(invalid());
        }
        Ok(Self(normalized))
    }

    /// Wraps a stored address without validation.
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    /// The address as registered, in NFC.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Uniqueness and login key: NFC of the lowercase NFC form.
    pub fn key(&self) -> String {
        login_key(&self.0)
    }
}

/// Whether `c` is an invisible Unicode format character (general category
/// Cf: zero-width spaces and joiners, bidirectional overrides, the byte
/// order mark, tag characters). They let two different strings display
/// alike, so identifiers and names must not contain them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// Normalizes a username or email typed at login to the key it is stored
/// under: NFC, lowercase, NFC again (lowercasing can denormalize).
pub fn login_key(text: &str) -> String {
    text.trim()
        .nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

/// A new password that passed [`crate::password_policy::check_rules`]:
/// 8 or more characters in at most 72 bytes of UTF-8, no control
/// characters, not one repeated character and not a common password.
/// bcrypt reads only the first 72 bytes, so longer passwords are rejected
/// rather than silently truncated.
pub struct Password(SecretString);

impl Password {
    /// Minimum length in characters.
    pub const MIN_CHARS: usize = password_policy::MIN_CHARS;
    /// Maximum length in bytes (bcrypt's input limit).
    pub const MAX_BYTES: usize = password_policy::MAX_BYTES;

    /// Validates a new password sent in the field `password`.
    pub fn parse(secret: SecretString) -> Result<Self, IdentityError> {
        Self::parse_field(secret, "password")
    }

    /// Validates a new password sent in `field`.
    pub fn parse_field(secret: SecretString, field: &'static str) -> Result<Self, IdentityError> {
        password_policy::check_rules(&secret, field)?;
        Ok(Self(secret))
    }

    /// The secret.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A password hash in the hasher's own format (bcrypt's `$2b$...`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// A registered user as the API shows it. Holds no secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Username as registered.
    pub username: Username,
    /// Email, NFC-normalized.
    pub email: Email,
    /// Display name, if given.
    pub full_name: Option<String>,
    /// Role.
    pub role: Role,
    /// Decentralized identifier derived from the id.
    pub did: Did,
    /// Address of the user's custodial Ethereum account.
    pub blockchain_address: Address,
    /// Whether the user may sign in.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Everything the store saves for a new user, in one transaction: the
/// user, their password hash and sealed custodial key, and a chain
/// registration job.
#[derive(Debug)]
pub struct NewUser {
    /// The user.
    pub user: User,
    /// bcrypt hash of the password.
    pub password_hash: PasswordHash,
    /// The custodial secp256k1 secret key, sealed under the master key with
    /// [`custodial_key_aad`] as associated data.
    pub sealed_key: SealedData,
}

/// Associated data that binds a sealed custodial key to its user.
pub fn custodial_key_aad(id: UserId) -> Vec<u8> {
    format!("meditrustal.custodial-key.v1:{id}").into_bytes()
}

/// A user with the hash to check a login against.
#[derive(Clone, Debug)]
pub struct StoredCredentials {
    /// The user.
    pub user: User,
    /// Their password hash.
    pub password_hash: PasswordHash,
}

/// Claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Subject.
    pub user_id: UserId,
    /// Role at issue time. Authorization re-reads the user on every request.
    pub role: Role,
    /// The login session the token belongs to (`sid`). Authentication
    /// checks on every request that it is still active.
    pub session_id: SessionId,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A freshly issued access token.
pub struct IssuedToken {
    /// The token text; a bearer credential, never logged.
    pub token: SecretString,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: UserId,
    /// The user's current role, read from the store on this request.
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_matches_published_vector() {
        let id = UserId(Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap());
        assert_eq!(
            Did::for_user(id).as_str(),
            "did:meditrustal:BFzXwUfGW7V628kmyg8XPZL2kVRi98w5Vn69DiMfvbGe"
        );
    }

    #[test]
    fn role_parses_any_case() {
        assert_eq!(Role::parse("patient"), Some(Role::Patient));
        assert_eq!(Role::parse("DoCtOr"), Some(Role::Doctor));
        assert_eq!(Role::parse("ADMIN"), Some(Role::Admin));
        assert_eq!(Role::parse("nurse"), None);
    }

    #[test]
    fn email_key_ignores_case() {
        let first = Email::parse("Tomas.Brandt@Example.ORG").unwrap();
        let second = Email::parse("tomas.brandt@example.org").unwrap();
        assert_eq!(first.key(), second.key());
        assert_eq!(first.as_str(), "Tomas.Brandt@Example.ORG");
    }

    #[test]
    fn email_key_joins_nfc_and_nfd_spellings() {
        let nfc = Email::parse("j\u{00fc}rgen.vale@example.test").unwrap();
        let nfd = Email::parse("ju\u{0308}rgen.vale@example.test").unwrap();
        assert_eq!(nfc.key(), nfd.key());
        assert_eq!(nfd.as_str(), "j\u{00fc}rgen.vale@example.test");
        assert_eq!(login_key("JU\u{0308}RGEN.VALE@example.test"), nfc.key());
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for text in [
            "",
            "plain",
            "@example.org",
            "a@b",
            "a@@b.org",
            "a b@example.org",
            "a@.example.org",
            "a@example..org",
        ] {
            assert!(Email::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn email_rejects_invisible_format_characters() {
        for text in [
            "alice\u{200B}@example.org",
            "ali\u{202E}ce@example.org",
            "\u{FEFF}alice@example.org",
        ] {
            assert!(Email::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn username_rules() {
        assert_eq!(Username::parse("Alice_01").unwrap().key(), "alice_01");
        for text in [
            "ab",
            "-alice",
            "alice smith",
            "al\u{00ef}ce",
            &"a".repeat(33),
        ] {
            assert!(Username::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn password_length_counts_utf8_bytes() {
        let ok = "\u{00e9}t".repeat(24); // 72 bytes
        let too_long = "\u{00e9}".repeat(37); // 74 bytes, 37 characters
        assert!(Password::parse(SecretString::from(ok)).is_ok());
        assert_eq!(
            Password::parse(SecretString::from(too_long)).unwrap_err(),
            IdentityError::Invalid {
                field: "password",
                message: "use at most 72 bytes of UTF-8".into()
            }
        );
        assert_eq!(
            Password::parse(SecretString::from("short")).unwrap_err(),
            IdentityError::Invalid {
                field: "password",
                message: "use at least 8 characters".into()
            }
        );
    }
}
