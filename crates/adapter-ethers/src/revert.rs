//! Decoding of revert data into the contracts' custom errors, spelled as
//! Solidity declares them: `RecordAlreadyExists(0x…)`, `Unauthorized()`.

use ethers::abi::AbiDecode;
use ethers::contract::ContractRevert;
use ethers::types::U256;

use crate::bindings::{
    AuditAnchorRegistryErrors, BatchAnchorRegistryErrors, ConsentRegistryErrors,
    MedicalRecordRegistryErrors, UserRegistryErrors,
};
use crate::convert::{to_digest, to_domain_address};

/// A revert, decoded against the ABI of the contract that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodedRevert {
    /// The error with its arguments, such as `InvalidRole(7)`.
    pub(crate) description: String,
    /// Whether the error means the entry is already on-chain
    /// (`UserAlreadyRegistered`, `RecordAlreadyExists`,
    /// `ConsentAlreadyExists`, `ConsentAlreadyRevoked` or
    /// `HeadAlreadyAnchored`).
    pub(crate) already_exists: bool,
    /// Whether the same call may pass later without any change: a
    /// revocation whose grant is not on chain yet (`UnknownConsent`).
    pub(crate) retry_later: bool,
}

impl DecodedRevert {
    fn rejected(description: String) -> Self {
        Self {
            description,
            already_exists: false,
            retry_later: false,
        }
    }

    fn duplicate(description: String) -> Self {
        Self {
            description,
            already_exists: true,
            retry_later: false,
        }
    }

    fn not_yet(description: String) -> Self {
        Self {
            description,
            already_exists: false,
            retry_later: true,
        }
    }
}

/// Selector of Solidity's built-in `Panic(uint256)`.
const PANIC_SELECTOR: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];

pub(crate) fn decode_user_registry(data: &[u8]) -> DecodedRevert {
    match UserRegistryErrors::decode_with_selector(data) {
        Some(UserRegistryErrors::UserAlreadyRegistered(error)) => {
            DecodedRevert::duplicate(format!(
                "UserAlreadyRegistered({})",
                to_domain_address(error.account)
            ))
        }
        Some(UserRegistryErrors::InvalidRole(error)) => {
            DecodedRevert::rejected(format!("InvalidRole({})", error.role))
        }
        Some(UserRegistryErrors::Unauthorized(_)) => {
            DecodedRevert::rejected("Unauthorized()".to_owned())
        }
        Some(UserRegistryErrors::RevertString(reason)) => {
            DecodedRevert::rejected(format!("Error({reason:?})"))
        }
        None => DecodedRevert::rejected(describe_unknown(data)),
    }
}

pub(crate) fn decode_medical_record_registry(data: &[u8]) -> DecodedRevert {
    match MedicalRecordRegistryErrors::decode_with_selector(data) {
        Some(MedicalRecordRegistryErrors::RecordAlreadyExists(error)) => {
            DecodedRevert::duplicate(format!(
                "RecordAlreadyExists({})",
                to_digest(error.record_hash.into())
            ))
        }
        Some(MedicalRecordRegistryErrors::Unauthorized(_)) => {
            DecodedRevert::rejected("Unauthorized()".to_owned())
        }
        Some(MedicalRecordRegistryErrors::RevertString(reason)) => {
            DecodedRevert::rejected(format!("Error({reason:?})"))
        }
        None => DecodedRevert::rejected(describe_unknown(data)),
    }
}

pub(crate) fn decode_consent_registry(data: &[u8]) -> DecodedRevert {
    let key = |bytes: [u8; 32]| to_digest(bytes.into());
    match ConsentRegistryErrors::decode_with_selector(data) {
        Some(ConsentRegistryErrors::ConsentAlreadyExists(error)) => {
            DecodedRevert::duplicate(format!("ConsentAlreadyExists({})", key(error.consent_id)))
        }
        Some(ConsentRegistryErrors::ConsentAlreadyRevoked(error)) => {
            DecodedRevert::duplicate(format!("ConsentAlreadyRevoked({})", key(error.consent_id)))
        }
        Some(ConsentRegistryErrors::UnknownConsent(error)) => {
            DecodedRevert::not_yet(format!("UnknownConsent({})", key(error.consent_id)))
        }
        Some(ConsentRegistryErrors::InvalidSignature(_)) => {
            DecodedRevert::rejected("InvalidSignature()".to_owned())
        }
        Some(ConsentRegistryErrors::InvalidAccess(error)) => {
            DecodedRevert::rejected(format!("InvalidAccess({})", error.access))
        }
        Some(ConsentRegistryErrors::Unauthorized(_)) => {
            DecodedRevert::rejected("Unauthorized()".to_owned())
        }
        Some(ConsentRegistryErrors::RevertString(reason)) => {
            DecodedRevert::rejected(format!("Error({reason:?})"))
        }
        None => DecodedRevert::rejected(describe_unknown(data)),
    }
}

pub(crate) fn decode_audit_anchor_registry(data: &[u8]) -> DecodedRevert {
    match AuditAnchorRegistryErrors::decode_with_selector(data) {
        Some(AuditAnchorRegistryErrors::HeadAlreadyAnchored(error)) => {
            DecodedRevert::duplicate(format!("HeadAlreadyAnchored({})", error.seq))
        }
        Some(AuditAnchorRegistryErrors::InvalidHead(error)) => DecodedRevert::rejected(format!(
            "InvalidHead({}, {})",
            error.seq,
            to_digest(error.head_hash.into())
        )),
        Some(AuditAnchorRegistryErrors::Unauthorized(_)) => {
            DecodedRevert::rejected("Unauthorized()".to_owned())
        }
        Some(AuditAnchorRegistryErrors::RevertString(reason)) => {
            DecodedRevert::rejected(format!("Error({reason:?})"))
        }
        None => DecodedRevert::rejected(describe_unknown(data)),
    }
}

pub(crate) fn decode_batch_anchor_registry(data: &[u8]) -> DecodedRevert {
    match BatchAnchorRegistryErrors::decode_with_selector(data) {
        Some(BatchAnchorRegistryErrors::BatchAlreadyAnchored(error)) => DecodedRevert::duplicate(
            format!("BatchAlreadyAnchored({})", to_digest(error.root.into())),
        ),
        Some(BatchAnchorRegistryErrors::InvalidBatch(error)) => DecodedRevert::rejected(format!(
            "InvalidBatch({}, {})",
            to_digest(error.root.into()),
            error.leaf_count
        )),
        Some(BatchAnchorRegistryErrors::Unauthorized(_)) => {
            DecodedRevert::rejected("Unauthorized()".to_owned())
        }
        Some(BatchAnchorRegistryErrors::RevertString(reason)) => {
            DecodedRevert::rejected(format!("Error({reason:?})"))
        }
        None => DecodedRevert::rejected(describe_unknown(data)),
    }
}

/// Describes revert data that is not one of the contract's errors: a
/// `Panic(uint256)`, an empty revert, or raw bytes.
fn describe_unknown(data: &[u8]) -> String {
    if data.is_empty() {
        return "reverted without a reason".to_owned();
    }
    if let Some(payload) = data.strip_prefix(&PANIC_SELECTOR) {
        if let Ok(code) = U256::decode(payload) {
            return format!("Panic({code:#x})");
        }
    }
    format!("unrecognized revert data 0x{}", hex::encode(data))
}

#[cfg(test)]
mod tests {
    use ethers::abi::AbiEncode;
    use ethers::types::H160;

    use super::*;
    use crate::bindings::{audit_anchor_registry, medical_record_registry, user_registry};

    #[test]
    fn user_registry_errors_decode_with_arguments() {
        let account = H160([0xab; 20]);
        let duplicate =
            UserRegistryErrors::UserAlreadyRegistered(user_registry::UserAlreadyRegistered {
                account,
            });
        let invalid_role = UserRegistryErrors::InvalidRole(user_registry::InvalidRole { role: 7 });
        let unauthorized = UserRegistryErrors::Unauthorized(user_registry::Unauthorized);

        assert_eq!(
            decode_user_registry(&duplicate.encode()),
            DecodedRevert::duplicate(format!("UserAlreadyRegistered(0x{})", "ab".repeat(20)))
        );
        assert_eq!(
            decode_user_registry(&invalid_role.encode()),
            DecodedRevert::rejected("InvalidRole(7)".to_owned())
        );
        assert_eq!(
            decode_user_registry(&unauthorized.encode()),
            DecodedRevert::rejected("Unauthorized()".to_owned())
        );
    }

    #[test]
    fn record_registry_duplicate_decodes_as_already_exists() {
        let error = MedicalRecordRegistryErrors::RecordAlreadyExists(
            medical_record_registry::RecordAlreadyExists {
                record_hash: [0x11; 32],
            },
        );

        assert_eq!(
            decode_medical_record_registry(&error.encode()),
            DecodedRevert::duplicate(format!("RecordAlreadyExists(0x{})", "11".repeat(32)))
        );
    }

    #[test]
    fn audit_registry_errors_decode_with_arguments() {
        let duplicate = AuditAnchorRegistryErrors::HeadAlreadyAnchored(
            audit_anchor_registry::HeadAlreadyAnchored { seq: 12 },
        );
        let invalid = AuditAnchorRegistryErrors::InvalidHead(audit_anchor_registry::InvalidHead {
            seq: 0,
            head_hash: [0; 32],
        });

        assert_eq!(
            decode_audit_anchor_registry(&duplicate.encode()),
            DecodedRevert::duplicate("HeadAlreadyAnchored(12)".to_owned())
        );
        assert_eq!(
            decode_audit_anchor_registry(&invalid.encode()),
            DecodedRevert::rejected(format!("InvalidHead(0, 0x{})", "00".repeat(32)))
        );
    }

    #[test]
    fn consent_registry_errors_decode_by_outcome() {
        use crate::bindings::consent_registry;

        let duplicate =
            ConsentRegistryErrors::ConsentAlreadyRevoked(consent_registry::ConsentAlreadyRevoked {
                consent_id: [0x22; 32],
            });
        let unknown = ConsentRegistryErrors::UnknownConsent(consent_registry::UnknownConsent {
            consent_id: [0x33; 32],
        });
        let forged = ConsentRegistryErrors::InvalidSignature(consent_registry::InvalidSignature);

        assert_eq!(
            decode_consent_registry(&duplicate.encode()),
            DecodedRevert::duplicate(format!("ConsentAlreadyRevoked(0x{})", "22".repeat(32)))
        );
        assert_eq!(
            decode_consent_registry(&unknown.encode()),
            DecodedRevert::not_yet(format!("UnknownConsent(0x{})", "33".repeat(32)))
        );
        assert_eq!(
            decode_consent_registry(&forged.encode()),
            DecodedRevert::rejected("InvalidSignature()".to_owned())
        );
    }

    #[test]
    fn unknown_revert_data_is_described_not_dropped() {
        let mut panic = PANIC_SELECTOR.to_vec();
        panic.extend_from_slice(&U256::from(0x11).encode());

        assert_eq!(
            decode_medical_record_registry(&panic).description,
            "Panic(0x11)"
        );
        assert_eq!(
            decode_medical_record_registry(&[]).description,
            "reverted without a reason"
        );
        assert_eq!(
            decode_medical_record_registry(&[0xde, 0xad, 0xbe, 0xef]).description,
            "unrecognized revert data 0xdeadbeef"
        );
    }
}
