//! Consent entries on the `ConsentRegistry` contract: the terms a patient
//! signs, and the signed jobs the outbox relays.

use std::fmt;

use meditrustal_crypto::Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::types::Address;

/// Access level as the `ConsentRegistry` contract stores it (a `uint8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainAccess {
    /// Read the records in scope. Stored as 1.
    Read,
    /// Read them and add new ones. Stored as 2.
    Write,
}

impl ChainAccess {
    /// Returns the contract's numeric code for this access level.
    pub const fn code(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
        }
    }

    /// Parses the contract's numeric code.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Read),
            2 => Some(Self::Write),
            _ => None,
        }
    }
}

/// The terms of a grant, exactly as the patient signs them (the EIP-712
/// `Grant` message of `ConsentRegistry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantTerms {
    /// The consent's id in our database; on chain, its 16 bytes
    /// left-aligned in a `bytes32` (see [`consent_key`]).
    pub consent_id: Uuid,
    /// The patient's custodial address, which must sign.
    pub patient: Address,
    /// The doctor's custodial address.
    pub grantee: Address,
    /// Access level.
    pub access: ChainAccess,
    /// Hash committing to the off-chain scope and purpose.
    pub scope_hash: Digest,
    /// Expiry in Unix seconds; 0 for none.
    pub expires_at: u64,
}

/// The terms of a revocation (the EIP-712 `Revoke` message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeTerms {
    /// The consent to revoke.
    pub consent_id: Uuid,
    /// The patient who granted it, who must sign.
    pub patient: Address,
}

/// A 65-byte secp256k1 signature `r ‖ s ‖ v` with `v` 27 or 28, spelled
/// `0x`-prefixed lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConsentSignature([u8; 65]);

impl ConsentSignature {
    /// Wraps 65 raw bytes.
    pub const fn from_bytes(bytes: [u8; 65]) -> Self {
        Self(bytes)
    }

    /// Copies a 65-byte slice, or returns `None` for another length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// Returns the raw 65 bytes.
    pub const fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }
}

impl fmt::Display for ConsentSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ConsentSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsentSignature({self})")
    }
}

impl Serialize for ConsentSignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConsentSignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let invalid = || serde::de::Error::custom("expected 0x followed by 130 hex digits");
        let digits = text.strip_prefix("0x").ok_or_else(invalid)?;
        let mut out = [0u8; 65];
        hex::decode_to_slice(digits, &mut out).map_err(|_| invalid())?;
        Ok(Self(out))
    }
}

/// A grant with the patient's signature: the payload of a
/// [`crate::LedgerJob::GrantConsent`] job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedGrant {
    /// Terms the patient signed.
    pub terms: GrantTerms,
    /// The patient's signature of the EIP-712 `Grant` message.
    pub signature: ConsentSignature,
}

/// A revocation with the patient's signature: the payload of a
/// [`crate::LedgerJob::RevokeConsent`] job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRevocation {
    /// Terms the patient signed.
    pub terms: RevokeTerms,
    /// The patient's signature of the EIP-712 `Revoke` message.
    pub signature: ConsentSignature,
}

/// A consent entry read back from `ConsentRegistry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainConsent {
    /// Patient address stored on chain.
    pub patient: Address,
    /// Grantee address stored on chain.
    pub grantee: Address,
    /// Access level stored on chain.
    pub access: ChainAccess,
    /// Scope hash stored on chain.
    pub scope_hash: Digest,
    /// Expiry in Unix seconds; 0 for none.
    pub expires_at: u64,
    /// Block of the grant.
    pub granted_block: u64,
    /// Block of the revocation, if revoked.
    pub revoked_block: Option<u64>,
}

/// Returns the `bytes32` key of a consent on chain: the UUID's 16 bytes
/// followed by 16 zero bytes.
pub fn consent_key(consent_id: Uuid) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(consent_id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_through_json() {
        let mut bytes = [0u8; 65];
        bytes[0] = 0xab;
        bytes[64] = 27;
        let signature = ConsentSignature::from_bytes(bytes);

        let json = serde_json::to_string(&signature).unwrap();

        assert_eq!(json, format!("\"0xab{}1b\"", "00".repeat(63)));
        assert_eq!(
            serde_json::from_str::<ConsentSignature>(&json).unwrap(),
            signature
        );
    }

    #[test]
    fn signature_rejects_wrong_length() {
        let short = format!("\"0x{}\"", "00".repeat(64));
        assert!(serde_json::from_str::<ConsentSignature>(&short).is_err());
        assert_eq!(ConsentSignature::from_slice(&[0; 64]), None);
    }

    #[test]
    fn consent_key_left_aligns_the_uuid() {
        let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let key = consent_key(id);
        assert_eq!(&key[..16], id.as_bytes());
        assert_eq!(&key[16..], &[0u8; 16]);
    }

    #[test]
    fn access_codes_match_the_contract() {
        assert_eq!(ChainAccess::Read.code(), 1);
        assert_eq!(ChainAccess::Write.code(), 2);
        assert_eq!(ChainAccess::from_code(2), Some(ChainAccess::Write));
        assert_eq!(ChainAccess::from_code(0), None);
        assert_eq!(ChainAccess::from_code(3), None);
    }
}
