//! Second-factor types: a stored TOTP credential, the enrollment shown to
//! the user, and the code a user types.

use meditrustal_crypto::SealedData;
use secrecy::SecretString;

use crate::types::UserId;

/// A user's TOTP credential as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTotp {
    /// The 20-byte secret, sealed under the master key with
    /// [`totp_secret_aad`] as associated data.
    pub sealed_secret: SealedData,
    /// Whether the user proved possession with a code. Only confirmed
    /// credentials are asked for at login.
    pub confirmed: bool,
    /// The latest time step whose code was accepted. Codes of this step
    /// or earlier are rejected, so each code works once.
    pub last_used_step: Option<u64>,
}

/// Associated data that binds a sealed TOTP secret to its user.
pub fn totp_secret_aad(id: UserId) -> Vec<u8> {
    format!("meditrustal.totp-secret.v1:{id}").into_bytes()
}

/// Secret and URI that enrollment shows the user, once.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// The secret in base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://` URI, for a QR code.
    pub otpauth_uri: SecretString,
}

/// A second-factor code typed by the user.
#[derive(Debug)]
pub enum MfaCode {
    /// A 6-digit TOTP code.
    Totp(String),
    /// A single-use recovery code.
    Recovery(SecretString),
}
