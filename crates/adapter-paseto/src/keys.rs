use std::fmt;

use ed25519_compact::{KeyPair, PublicKey, Seed};
use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::version4::V4;
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::TokenSetupError;

/// Length of an Ed25519 seed and of an Ed25519 public key, in bytes.
const KEY_BYTES: usize = 32;

/// Maximum key id length, in characters.
const MAX_KEY_ID_CHARS: usize = 64;

/// Key id written to the token footer as `kid`, so that a verifier can pick
/// the public key among the current and previous ones: 1 to 64 ASCII
/// letters, digits, `_` or `-` (for example `2025-06` or `dev-1`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenKeyId(String);

impl TokenKeyId {
    /// Validates a key id.
    pub fn parse(text: &str) -> Result<Self, TokenSetupError> {
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if text.is_empty() || text.len() > MAX_KEY_ID_CHARS || !valid_chars {
            return Err(TokenSetupError::InvalidKeyId(text.to_owned()));
        }
        Ok(Self(text.to_owned()))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The 32-byte secret seed of an Ed25519 signing key, zeroized on drop and
/// never printed. All-zero seeds are rejected.
pub struct SigningSeed(Zeroizing<[u8; KEY_BYTES]>);

impl SigningSeed {
    /// Draws a fresh seed from the operating system's CSPRNG, for example
    /// for the development key the binary creates on first run.
    /// Errors: [`TokenSetupError::Random`].
    pub fn generate() -> Result<Self, TokenSetupError> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        getrandom::fill(bytes.as_mut_slice())
            .map_err(|error| TokenSetupError::Random(error.to_string()))?;
        Self::from_bytes(bytes)
    }

    /// Wraps 32 seed bytes. Errors: [`TokenSetupError::ZeroSeed`].
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_BYTES]>) -> Result<Self, TokenSetupError> {
        if bytes.iter().all(|&b| b == 0) {
            // ed25519-compact 2.6 panics on an all-zero seed, and pasetors
            // 0.8 calls it without a check.
            return Err(TokenSetupError::ZeroSeed);
        }
        Ok(Self(bytes))
    }

    /// Decodes a seed from 64 hex digits with an optional `0x` prefix.
    /// Surrounding whitespace, such as the newline at the end of a key file,
    /// is ignored. Errors: [`TokenSetupError::InvalidSeed`],
    /// [`TokenSetupError::ZeroSeed`].
    pub fn from_hex(text: &str) -> Result<Self, TokenSetupError> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        hex::decode_to_slice(hex_digits(text), bytes.as_mut_slice())
            .map_err(|_| TokenSetupError::InvalidSeed)?;
        Self::from_bytes(bytes)
    }

    /// Encodes the seed as 64 lowercase hex digits, the form
    /// [`Self::from_hex`] reads.
    #[expect(
        clippy::expect_used,
        reason = "the buffer is exactly twice the seed length, and hex digits are ASCII"
    )]
    pub fn to_hex(&self) -> SecretString {
        let mut digits = Zeroizing::new([0u8; 2 * KEY_BYTES]);
        hex::encode_to_slice(self.0.as_slice(), digits.as_mut_slice())
            .expect("buffer holds two hex digits per seed byte");
        let text = std::str::from_utf8(digits.as_slice()).expect("hex digits are ASCII");

        // `to_owned` allocates exactly the length, so the conversion into
        // the secret's boxed string does not reallocate and leave a copy.
        SecretString::from(text.to_owned())
    }

    fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }
}

impl fmt::Debug for SigningSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSeed(..)")
    }
}

/// An Ed25519 key that signs v4.public tokens, with its key id. The secret
/// bytes live in pasetors' `AsymmetricSecretKey`, which zeroizes them on
/// drop (pasetors 0.8). Debug prints only the key id.
pub struct SigningKey {
    kid: TokenKeyId,
    secret: AsymmetricSecretKey<V4>,
    public: VerifyingKey,
}

impl SigningKey {
    /// Derives the signing key and its public key from a seed.
    /// Errors: [`TokenSetupError::ZeroSeed`], [`TokenSetupError::Key`].
    pub fn from_seed(kid: TokenKeyId, seed: &SigningSeed) -> Result<Self, TokenSetupError> {
        let mut ed_seed = Seed::new(*seed.as_bytes());
        let key_pair = KeyPair::try_from_seed(ed_seed);
        ed_seed.wipe_mut();
        let key_pair = key_pair.map_err(|_| TokenSetupError::ZeroSeed)?;

        // pasetors stores an Ed25519 secret key as seed || public key, the
        // layout of ed25519-compact's `SecretKey`.
        let secret = AsymmetricSecretKey::<V4>::from(key_pair.sk.as_slice())
            .map_err(|error| TokenSetupError::Key(error.to_string()))?;
        let public = VerifyingKey::from_bytes(kid.clone(), *key_pair.pk)?;
        Ok(Self {
            kid,
            secret,
            public,
        })
    }

    /// Returns the key id written to the footer of every token this key
    /// signs.
    pub fn kid(&self) -> &TokenKeyId {
        &self.kid
    }

    /// Returns the public half, which verifies tokens but cannot sign them.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone()
    }

    pub(crate) fn secret(&self) -> &AsymmetricSecretKey<V4> {
        &self.secret
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key that verifies v4.public tokens, with its key id.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    kid: TokenKeyId,
    public: AsymmetricPublicKey<V4>,
}

impl VerifyingKey {
    /// Wraps a 32-byte public key after checking that it is a canonical
    /// point that is not of small order. Errors: [`TokenSetupError::Key`].
    pub fn from_bytes(kid: TokenKeyId, bytes: [u8; KEY_BYTES]) -> Result<Self, TokenSetupError> {
        PublicKey::new(bytes)
            .validate()
            .map_err(|error| TokenSetupError::Key(format!("public key {kid}: {error}")))?;
        let public = AsymmetricPublicKey::<V4>::from(&bytes)
            .map_err(|error| TokenSetupError::Key(format!("public key {kid}: {error}")))?;
        Ok(Self { kid, public })
    }

    /// Decodes a public key from 64 hex digits with an optional `0x`
    /// prefix. Surrounding whitespace is ignored.
    /// Errors: [`TokenSetupError::Key`].
    pub fn from_hex(kid: TokenKeyId, text: &str) -> Result<Self, TokenSetupError> {
        let mut bytes = [0u8; KEY_BYTES];
        hex::decode_to_slice(hex_digits(text), &mut bytes).map_err(|_| {
            TokenSetupError::Key(format!(
                "public key {kid}: expected 64 hex digits (32 bytes)"
            ))
        })?;
        Self::from_bytes(kid, bytes)
    }

    /// Encodes the public key as 64 lowercase hex digits, the form
    /// [`Self::from_hex`] reads.
    pub fn to_hex(&self) -> String {
        hex::encode(self.public.as_bytes())
    }

    /// Returns the key id that selects this key.
    pub fn kid(&self) -> &TokenKeyId {
        &self.kid
    }

    pub(crate) fn public(&self) -> &AsymmetricPublicKey<V4> {
        &self.public
    }
}

/// Strips surrounding whitespace and one `0x` prefix.
fn hex_digits(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("0x").unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    /// RFC 8032, section 7.1, TEST 1: secret key (seed) and public key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn kid(text: &str) -> TokenKeyId {
        TokenKeyId::parse(text).unwrap()
    }

    #[test]
    fn seed_derives_rfc8032_public_key() {
        let seed = SigningSeed::from_hex(RFC8032_SEED).unwrap();
        let key = SigningKey::from_seed(kid("k1"), &seed).unwrap();
        assert_eq!(key.verifying_key().to_hex(), RFC8032_PUBLIC);
        assert_eq!(key.verifying_key().kid(), &kid("k1"));
        assert_eq!(key.kid(), &kid("k1"));
    }

    #[test]
    fn seed_hex_round_trips() {
        let seed = SigningSeed::generate().unwrap();
        let hex = seed.to_hex();
        assert_eq!(hex.expose_secret().len(), 64);

        let decoded = SigningSeed::from_hex(hex.expose_secret()).unwrap();
        assert_eq!(decoded.as_bytes(), seed.as_bytes());
    }

    #[test]
    fn seed_from_hex_ignores_whitespace_and_0x_prefix() {
        for text in [format!("  {RFC8032_SEED}\n"), format!("0x{RFC8032_SEED}")] {
            let seed = SigningSeed::from_hex(&text).unwrap();
            assert_eq!(
                seed.to_hex().expose_secret(),
                RFC8032_SEED,
                "input {text:?}"
            );
        }
    }

    #[test]
    fn generated_seeds_differ() {
        let first = SigningSeed::generate().unwrap();
        let second = SigningSeed::generate().unwrap();
        assert_ne!(first.as_bytes(), second.as_bytes());
    }

    #[test]
    fn seed_from_hex_rejects_malformed_text() {
        let cases = [
            ("empty", String::new()),
            ("31 bytes", "ab".repeat(31)),
            ("33 bytes", "ab".repeat(33)),
            ("odd digit count", "a".repeat(63)),
            ("non-hex digit", format!("{}zz", "ab".repeat(31))),
            ("two 0x prefixes", format!("0x0x{}", "ab".repeat(32))),
        ];
        for (case, text) in cases {
            let result = SigningSeed::from_hex(&text);
            assert!(
                matches!(result, Err(TokenSetupError::InvalidSeed)),
                "{case}: expected InvalidSeed, got {result:?}"
            );
        }
    }

    #[test]
    fn seed_rejects_all_zero_bytes() {
        let from_hex = SigningSeed::from_hex(&"00".repeat(32));
        assert!(
            matches!(from_hex, Err(TokenSetupError::ZeroSeed)),
            "got {from_hex:?}"
        );

        let from_bytes = SigningSeed::from_bytes(Zeroizing::new([0u8; 32]));
        assert!(
            matches!(from_bytes, Err(TokenSetupError::ZeroSeed)),
            "got {from_bytes:?}"
        );
    }

    #[test]
    fn debug_output_hides_secret_bytes() {
        let seed = SigningSeed::from_hex(RFC8032_SEED).unwrap();
        let key = SigningKey::from_seed(kid("current"), &seed).unwrap();

        assert_eq!(format!("{seed:?}"), "SigningSeed(..)");
        assert_eq!(
            format!("{key:?}"),
            r#"SigningKey { kid: TokenKeyId("current"), .. }"#
        );
    }

    #[test]
    fn key_id_accepts_letters_digits_dash_underscore() {
        for text in ["a", "dev-1", "2025_06", &"k".repeat(64)] {
            assert_eq!(TokenKeyId::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn key_id_rejects_invalid_text() {
        let too_long = "k".repeat(65);
        let cases = [
            ("empty", ""),
            ("65 characters", too_long.as_str()),
            ("dot", "k4.pid.x"),
            ("space", "dev 1"),
            ("quote", "dev\"1"),
            ("non-ASCII", "kl\u{00e9}"),
        ];
        for (case, text) in cases {
            let result = TokenKeyId::parse(text);
            assert!(
                matches!(result, Err(TokenSetupError::InvalidKeyId(_))),
                "{case}: expected InvalidKeyId, got {result:?}"
            );
        }
    }

    #[test]
    fn verifying_key_hex_round_trips() {
        let key = VerifyingKey::from_hex(kid("old"), RFC8032_PUBLIC).unwrap();
        assert_eq!(key.to_hex(), RFC8032_PUBLIC);

        let prefixed = VerifyingKey::from_hex(kid("old"), &format!("0x{RFC8032_PUBLIC}")).unwrap();
        assert_eq!(prefixed.to_hex(), RFC8032_PUBLIC);
        assert_eq!(key.kid(), &kid("old"));
    }

    #[test]
    fn verifying_key_rejects_malformed_or_weak_keys() {
        // The identity point (1, 0) encodes as 01 00..00 and has small order.
        let identity_point = format!("01{}", "00".repeat(31));
        let cases = [
            ("31 bytes", "ab".repeat(31)),
            ("non-hex digit", format!("{}zz", "ab".repeat(31))),
            ("small-order point", identity_point),
        ];
        for (case, text) in cases {
            let result = VerifyingKey::from_hex(kid("old"), &text);
            assert!(
                matches!(result, Err(TokenSetupError::Key(_))),
                "{case}: expected Key error, got {result:?}"
            );
        }
    }
}
