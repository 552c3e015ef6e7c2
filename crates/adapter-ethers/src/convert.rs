//! Conversions between ethers' primitive types and the domain's, so that
//! every hash and address leaving this crate prints as `0x` lowercase hex.

use ethers::types::{H160, H256, U256, U64};
use meditrustal_crypto::Digest;
use meditrustal_ledger::Address;

pub(crate) fn to_domain_address(address: H160) -> Address {
    Address::from_bytes(address.0)
}

pub(crate) fn to_h160(address: &Address) -> H160 {
    H160(*address.as_bytes())
}

pub(crate) fn to_digest(hash: H256) -> Digest {
    Digest::from_bytes(hash.0)
}

pub(crate) fn to_h256(digest: &Digest) -> H256 {
    H256(*digest.as_bytes())
}

/// Converts a contract `uint256` to `u64`, or `None` when it does not fit.
pub(crate) fn u256_to_u64(value: U256) -> Option<u64> {
    (value <= U256::from(u64::MAX)).then(|| value.low_u64())
}

pub(crate) fn u64_of(value: Option<U64>) -> Option<u64> {
    value.map(|number| number.as_u64())
}

/// Returns the keccak-256 hash of contract code, as recorded in the
/// deployment manifest.
pub(crate) fn code_hash(code: &[u8]) -> Digest {
    Digest::from_bytes(ethers::utils::keccak256(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_to_u64_rejects_values_above_u64_max() {
        assert_eq!(u256_to_u64(U256::from(u64::MAX)), Some(u64::MAX));
        assert_eq!(u256_to_u64(U256::from(u64::MAX) + 1), None);
    }

    #[test]
    fn code_hash_of_empty_code() {
        assert_eq!(
            code_hash(&[]).to_string(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
