//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) with the
//! parameters every authenticator app supports: HMAC-SHA-1, 30-second time
//! steps, 6 digits. Recovery codes for a lost authenticator live here too.

use data_encoding::BASE32_NOPAD;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::IdentityError;

/// Length of a TOTP secret in bytes: 160 bits, the HMAC-SHA-1 output size
/// that RFC 4226 section 4 recommends.
pub const SECRET_BYTES: usize = 20;

/// Length of a time step, in seconds (RFC 6238 default).
pub const STEP_SECS: u64 = 30;

/// Digits in a code.
pub const DIGITS: u32 = 6;

/// Time steps accepted on either side of the current one, for clock drift
/// and typing time: one step each way, as RFC 6238 section 5.2 suggests.
pub const DRIFT_STEPS: u64 = 1;

/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "MediTrustAl";

/// Number of recovery codes issued when TOTP is confirmed.
pub const RECOVERY_CODE_COUNT: usize = 10;

/// Random bytes per recovery code: 80 bits, 16 base32 characters. That is
/// far beyond offline guessing, so the codes are stored as plain SHA-256.
const RECOVERY_CODE_BYTES: usize = 10;

/// A TOTP shared secret, zeroized on drop and never printed.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// Draws a fresh 160-bit secret. Errors: [`IdentityError::Internal`].
    pub fn generate() -> Result<Self, IdentityError> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        SystemRandom::new()
            .fill(bytes.as_mut_slice())
            .map_err(|_| IdentityError::Internal("system random number generator failed".into()))?;
        Ok(Self(bytes))
    }

    /// Wraps stored secret bytes.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in unpadded RFC 4648 base32, the form users type into
    /// an authenticator app.
    pub fn to_base32(&self) -> SecretString {
        SecretString::from(BASE32_NOPAD.encode(&self.0))
    }

    /// The `otpauth://` URI that authenticator apps read from a QR code.
    /// Usernames contain only URI-unreserved characters, so the label
    /// needs no percent-encoding.
    pub fn otpauth_uri(&self, account_name: &str) -> SecretString {
        SecretString::from(format!(
            "otpauth://totp/{ISSUER}:{account_name}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.to_base32().expose_secret()
        ))
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// Computes the HOTP value of `counter` (RFC 4226 section 5.3) with
/// `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let mac = tag.as_ref();

    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let mut word = [0u8; 4];
    if let Some(window) = mac.get(offset..offset + 4) {
        word.copy_from_slice(window);
    }
    let value = u32::from_be_bytes(word) & 0x7fff_ffff;
    value % 10u32.pow(digits)
}

/// Returns the time step that contains `unix_secs`.
pub fn time_step(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Checks a 6-digit code against the steps from `DRIFT_STEPS` before to
/// `DRIFT_STEPS` after the one containing `unix_secs`, and returns the
/// step it matched. The caller must then reject any step at or before the
/// last one used, so that each code works once.
pub fn verify(secret: &TotpSecret, code: &str, unix_secs: u64) -> Option<u64> {
    let typed = parse_code(code)?;
    let current = time_step(unix_secs);
    let first = current.saturating_sub(DRIFT_STEPS);

    // Every candidate is computed and compared, so timing does not show
    // which step matched.
    let mut matched = None;
    for step in first..=current + DRIFT_STEPS {
        let expected = hotp(secret.as_bytes(), step, DIGITS);
        let equal = constant_time_eq(&expected.to_be_bytes(), &typed.to_be_bytes());
        if equal && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Constant-time for equal lengths: XOR-fold instead of an early exit.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts exactly six ASCII digits, allowing one space or hyphen in the
/// middle as some apps display it.
fn parse_code(code: &str) -> Option<u32> {
    let digits: String = code
        .trim()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Draws [`RECOVERY_CODE_COUNT`] recovery codes, each 16 lowercase base32
/// characters in four hyphenated groups of four. Errors:
/// [`IdentityError::Internal`].
pub fn generate_recovery_codes() -> Result<Vec<SecretString>, IdentityError> {
    let random = SystemRandom::new();
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        let mut bytes = Zeroizing::new([0u8; RECOVERY_CODE_BYTES]);
        random
            .fill(bytes.as_mut())
            .map_err(|_| IdentityError::Internal("system random number generator failed".into()))?;
        let text = Zeroizing::new(BASE32_NOPAD.encode(bytes.as_ref()).to_ascii_lowercase());
        let groups: Vec<&str> = text
            .as_bytes()
            .chunks(4)
            .filter_map(|chunk| std::str::from_utf8(chunk).ok())
            .collect();
        codes.push(SecretString::from(groups.join("-")));
    }
    Ok(codes)
}

/// Normalizes a typed recovery code for hashing: hyphens and spaces
/// removed, lowercase.
pub fn normalize_recovery_code(code: &SecretString) -> Zeroizing<String> {
    Zeroizing::new(
        code.expose_secret()
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-1 seed of RFC 6238 appendix B and RFC 4226 appendix D.
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc4226_appendix_d() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, value) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                value,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn totp_matches_rfc6238_appendix_b_sha1() {
        // (Unix time, 8-digit TOTP) rows of the SHA-1 column.
        let vectors = [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ];
        for (time, value) in vectors {
            assert_eq!(hotp(RFC_SECRET, time_step(time), 8), value, "time {time}");
            assert_eq!(
                hotp(RFC_SECRET, time_step(time), 6),
                value % 1_000_000,
                "6 digits at time {time}"
            );
        }
    }

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(Zeroizing::new(RFC_SECRET.to_vec()))
    }

    #[test]
    fn verify_accepts_code_within_one_step() {
        let secret = rfc_secret();
        // Step 37_037_036 contains 1_111_111_109; its code is 081804.
        let step = time_step(1_111_111_109);

        assert_eq!(verify(&secret, "081804", 1_111_111_109), Some(step));
        assert_eq!(verify(&secret, "081804", 1_111_111_109 + 30), Some(step));
        assert_eq!(verify(&secret, "081804", 1_111_111_109 - 30), Some(step));
        assert_eq!(verify(&secret, "081 804", 1_111_111_109), Some(step));
    }

    #[test]
    fn verify_rejects_code_outside_window() {
        let secret = rfc_secret();

        assert_eq!(verify(&secret, "081804", 1_111_111_109 + 60), None);
        assert_eq!(verify(&secret, "081804", 1_111_111_109 - 60), None);
    }

    #[test]
    fn verify_rejects_malformed_codes() {
        let secret = rfc_secret();
        for code in [
            "",
            "81804",
            "0818040",
            "08180a",
            "+81804",
            "08 18 04x",
            "٠٨١٨٠٤",
        ] {
            assert_eq!(verify(&secret, code, 1_111_111_109), None, "{code:?}");
        }
    }

    #[test]
    fn base32_and_uri_encode_the_secret() {
        let secret = rfc_secret();

        assert_eq!(
            secret.to_base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert_eq!(
            secret.otpauth_uri("alice").expose_secret(),
            "otpauth://totp/MediTrustAl:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=MediTrustAl&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn generated_secret_has_160_bits() {
        let first = TotpSecret::generate().unwrap();
        let second = TotpSecret::generate().unwrap();

        assert_eq!(first.as_bytes().len(), 20);
        assert_ne!(first.as_bytes(), second.as_bytes());
        assert_eq!(format!("{first:?}"), "TotpSecret(..)");
    }

    #[test]
    fn recovery_codes_are_distinct_groups_of_base32() {
        let codes = generate_recovery_codes().unwrap();

        assert_eq!(codes.len(), 10);
        for code in &codes {
            let text = code.expose_secret();
            assert_eq!(text.len(), 19, "{text}");
            assert_eq!(text.matches('-').count(), 3, "{text}");
            assert!(text
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
        }
        let mut unique: Vec<&str> = codes.iter().map(ExposeSecret::expose_secret).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn recovery_code_normalization_ignores_case_and_separators() {
        let typed = SecretString::from(" ABCD-efgh ijkl-MNOP ");

        assert_eq!(normalize_recovery_code(&typed).as_str(), "abcdefghijklmnop");
    }
}
