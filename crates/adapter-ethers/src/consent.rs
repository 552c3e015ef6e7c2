//! The consent side of the chain adapter: EIP-712 signing with a patient's
//! custodial key ([`Eip712ConsentSigner`]), and the calls, lookups and
//! duplicate handling of consent jobs on `ConsentRegistry`.
//! `docs/consent.md` describes the signature scheme.

use ethers::abi::{encode, AbiEncode, Token};
use ethers::contract::EthEvent;
use ethers::signers::{LocalWallet, Signer};
use ethers::types::{H256, U256};
use ethers::utils::keccak256;
use meditrustal_ledger::{
    consent_key, Address, ChainAccess, ChainAnchor, ConsentSignature, ConsentSigner, GrantTerms,
    LedgerError, OnChainConsent, RevokeTerms, SignedGrant, SignedRevocation, SignerError,
};
use uuid::Uuid;

use crate::bindings::{
    ConsentGrantedFilter, ConsentRevokedFilter, GrantConsentCall, RevokeConsentCall,
};
use crate::convert::{to_digest, to_domain_address, to_h160, u256_to_u64};
use crate::ledger::{first_anchor, unavailable, EthersLedger, PreparedCall};
use crate::manifest::DeploymentManifest;
use crate::revert::DecodedRevert;

/// EIP-712 domain name of `ConsentRegistry`.
pub const DOMAIN_NAME: &str = "MediTrustAl ConsentRegistry";
/// EIP-712 domain version of `ConsentRegistry`.
pub const DOMAIN_VERSION: &str = "1";

const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
const GRANT_TYPE: &str = "Grant(bytes32 consentId,address patient,address grantee,uint8 access,bytes32 scopeHash,uint64 expiresAt)";
const REVOKE_TYPE: &str = "Revoke(bytes32 consentId,address patient)";

/// The [`ConsentSigner`] port for one deployed `ConsentRegistry`: hashes
/// messages as EIP-712 typed data over the contract's domain and signs the
/// digest with secp256k1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eip712ConsentSigner {
    domain_separator: [u8; 32],
}

impl Eip712ConsentSigner {
    /// Builds a signer for the contract at `contract` on chain `chain_id`.
    pub fn new(chain_id: u64, contract: Address) -> Self {
        let domain = encode(&[
            Token::FixedBytes(keccak256(DOMAIN_TYPE).to_vec()),
            Token::FixedBytes(keccak256(DOMAIN_NAME).to_vec()),
            Token::FixedBytes(keccak256(DOMAIN_VERSION).to_vec()),
            Token::Uint(U256::from(chain_id)),
            Token::Address(to_h160(&contract)),
        ]);
        Self {
            domain_separator: keccak256(domain),
        }
    }

    /// Builds a signer for the `ConsentRegistry` of `manifest`.
    pub fn for_manifest(manifest: &DeploymentManifest) -> Self {
        Self::new(
            manifest.chain_id,
            manifest.contracts.consent_registry.address,
        )
    }

    /// Returns the EIP-712 domain separator.
    pub fn domain_separator(&self) -> [u8; 32] {
        self.domain_separator
    }

    /// Returns the digest the patient signs to grant `terms`; the
    /// contract's `grantDigest` returns the same value.
    pub fn grant_digest(&self, terms: &GrantTerms) -> [u8; 32] {
        let message = encode(&[
            Token::FixedBytes(keccak256(GRANT_TYPE).to_vec()),
            Token::FixedBytes(consent_key(terms.consent_id).to_vec()),
            Token::Address(to_h160(&terms.patient)),
            Token::Address(to_h160(&terms.grantee)),
            Token::Uint(U256::from(terms.access.code())),
            Token::FixedBytes(terms.scope_hash.as_bytes().to_vec()),
            Token::Uint(U256::from(terms.expires_at)),
        ]);
        self.typed_digest(keccak256(message))
    }

    /// Returns the digest the patient signs to revoke a consent; the
    /// contract's `revokeDigest` returns the same value.
    pub fn revoke_digest(&self, terms: &RevokeTerms) -> [u8; 32] {
        let message = encode(&[
            Token::FixedBytes(keccak256(REVOKE_TYPE).to_vec()),
            Token::FixedBytes(consent_key(terms.consent_id).to_vec()),
            Token::Address(to_h160(&terms.patient)),
        ]);
        self.typed_digest(keccak256(message))
    }

    fn typed_digest(&self, struct_hash: [u8; 32]) -> [u8; 32] {
        let mut bytes = Vec::with_capacity(66);
        bytes.extend_from_slice(&[0x19, 0x01]);
        bytes.extend_from_slice(&self.domain_separator);
        bytes.extend_from_slice(&struct_hash);
        keccak256(bytes)
    }
}

impl ConsentSigner for Eip712ConsentSigner {
    fn sign_grant(
        &self,
        secret_key: &[u8],
        terms: &GrantTerms,
    ) -> Result<ConsentSignature, SignerError> {
        sign_digest(secret_key, self.grant_digest(terms), terms.patient)
    }

    fn sign_revocation(
        &self,
        secret_key: &[u8],
        terms: &RevokeTerms,
    ) -> Result<ConsentSignature, SignerError> {
        sign_digest(secret_key, self.revoke_digest(terms), terms.patient)
    }
}

/// Signs `digest` with the key and returns `r ‖ s ‖ v` with `v` 27 or 28
/// and a low `s`, the form the contract accepts. The wallet's `SigningKey`
/// wipes its scalar when dropped at the end of this function.
fn sign_digest(
    secret_key: &[u8],
    digest: [u8; 32],
    patient: Address,
) -> Result<ConsentSignature, SignerError> {
    if secret_key.len() != 32 {
        return Err(SignerError::InvalidKey(format!(
            "expected 32 bytes, got {}",
            secret_key.len()
        )));
    }
    let wallet = LocalWallet::from_bytes(secret_key)
        .map_err(|error| SignerError::InvalidKey(error.to_string()))?;
    if to_domain_address(wallet.address()) != patient {
        return Err(SignerError::WrongKey(patient));
    }

    let signature = wallet
        .sign_hash(H256(digest))
        .map_err(|error| SignerError::Signing(error.to_string()))?;
    let bytes: [u8; 65] = signature.into();
    Ok(ConsentSignature::from_bytes(bytes))
}

impl EthersLedger {
    pub(crate) fn prepare_grant(&self, grant: &SignedGrant) -> PreparedCall {
        let terms = &grant.terms;
        let key = consent_key(terms.consent_id);
        let call = GrantConsentCall {
            consent_id: key,
            patient: to_h160(&terms.patient),
            grantee: to_h160(&terms.grantee),
            access: terms.access.code(),
            scope_hash: *terms.scope_hash.as_bytes(),
            expires_at: terms.expires_at,
            signature: grant.signature.as_bytes().to_vec().into(),
        };
        PreparedCall {
            to: self.consent_registry.address(),
            data: call.encode().into(),
            event_signature: ConsentGrantedFilter::signature(),
            event_key: H256(key),
        }
    }

    pub(crate) fn prepare_revocation(&self, revocation: &SignedRevocation) -> PreparedCall {
        let key = consent_key(revocation.terms.consent_id);
        let call = RevokeConsentCall {
            consent_id: key,
            signature: revocation.signature.as_bytes().to_vec().into(),
        };
        PreparedCall {
            to: self.consent_registry.address(),
            data: call.encode().into(),
            event_signature: ConsentRevokedFilter::signature(),
            event_key: H256(key),
        }
    }

    /// Reads consent `consent_id` from the contract, without the
    /// deployment check.
    pub(crate) async fn read_consent(
        &self,
        consent_id: Uuid,
    ) -> Result<Option<OnChainConsent>, LedgerError> {
        let call = self.consent_registry.get_consent(consent_key(consent_id));
        let (exists, patient, grantee, access, scope_hash, expires_at, granted, revoked) = self
            .chain
            .rpc("eth_call", call.call())
            .await
            .map_err(unavailable)?;
        if !exists {
            return Ok(None);
        }

        let access = ChainAccess::from_code(access).ok_or_else(|| {
            LedgerError::Unavailable(format!(
                "ConsentRegistry returned unknown access code {access}"
            ))
        })?;
        let revoked_block = block_of(revoked)?;
        Ok(Some(OnChainConsent {
            patient: to_domain_address(patient),
            grantee: to_domain_address(grantee),
            access,
            scope_hash: to_digest(H256(scope_hash)),
            expires_at,
            granted_block: block_of(granted)?,
            revoked_block: (revoked_block != 0).then_some(revoked_block),
        }))
    }

    /// Finds the transaction that recorded `grant`, after the contract
    /// reported `ConsentAlreadyExists`. A stored consent with other terms
    /// is a rejection, because this job did not write it.
    pub(crate) async fn find_original_grant(
        &self,
        grant: &SignedGrant,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let terms = &grant.terms;
        let Some(entry) = self.read_consent(terms.consent_id).await? else {
            return Err(not_visible_yet(revert));
        };
        let same_terms = entry.patient == terms.patient
            && entry.grantee == terms.grantee
            && entry.access == terms.access
            && entry.scope_hash == terms.scope_hash
            && entry.expires_at == terms.expires_at;
        if !same_terms {
            return Err(LedgerError::Rejected(format!(
                "{}: the recorded consent has other terms than this job's",
                revert.description
            )));
        }

        let block = entry.granted_block;
        let key = H256(consent_key(terms.consent_id));
        let logs = self
            .consent_registry
            .consent_granted_filter()
            .topic1(key)
            .from_block(block)
            .to_block(block);
        let found = self
            .chain
            .rpc("eth_getLogs", logs.query_with_meta())
            .await
            .map_err(unavailable)?;
        first_anchor(found, "ConsentGranted", &format!("{key:#x}"), block)
    }

    /// Finds the transaction that recorded `revocation`, after the
    /// contract reported `ConsentAlreadyRevoked`.
    pub(crate) async fn find_original_revocation(
        &self,
        revocation: &SignedRevocation,
        revert: &DecodedRevert,
    ) -> Result<ChainAnchor, LedgerError> {
        let consent_id = revocation.terms.consent_id;
        let entry = self.read_consent(consent_id).await?;
        let Some(block) = entry.and_then(|entry| entry.revoked_block) else {
            return Err(not_visible_yet(revert));
        };

        let key = H256(consent_key(consent_id));
        let logs = self
            .consent_registry
            .consent_revoked_filter()
            .topic1(key)
            .from_block(block)
            .to_block(block);
        let found = self
            .chain
            .rpc("eth_getLogs", logs.query_with_meta())
            .await
            .map_err(unavailable)?;
        first_anchor(found, "ConsentRevoked", &format!("{key:#x}"), block)
    }
}

fn not_visible_yet(revert: &DecodedRevert) -> LedgerError {
    LedgerError::Unavailable(format!(
        "{} but the latest block has no entry yet; retry later",
        revert.description
    ))
}

fn block_of(value: U256) -> Result<u64, LedgerError> {
    u256_to_u64(value).ok_or_else(|| {
        LedgerError::Unavailable(format!(
            "contract returned block number {value} above u64::MAX"
        ))
    })
}

#[cfg(test)]
mod tests {
    use ethers::core::k256::ecdsa::SigningKey;
    use ethers::utils::secret_key_to_address;
    use meditrustal_crypto::Digest;

    use super::*;

    const KEY: [u8; 32] = [0x42; 32];

    fn patient_address() -> Address {
        let key = SigningKey::from_slice(&KEY).unwrap();
        to_domain_address(secret_key_to_address(&key))
    }

    fn terms() -> GrantTerms {
        GrantTerms {
            consent_id: Uuid::from_u128(7),
            patient: patient_address(),
            grantee: Address::from_bytes([0xdd; 20]),
            access: ChainAccess::Read,
            scope_hash: Digest::from_bytes([0x11; 32]),
            expires_at: 0,
        }
    }

    fn signer() -> Eip712ConsentSigner {
        Eip712ConsentSigner::new(31337, Address::from_bytes([0xcc; 20]))
    }

    #[test]
    fn grant_signature_recovers_to_the_patient() {
        let terms = terms();

        let signature = signer().sign_grant(&KEY, &terms).unwrap();

        let parsed = ethers::types::Signature::try_from(&signature.as_bytes()[..]).unwrap();
        let recovered = parsed.recover(H256(signer().grant_digest(&terms))).unwrap();
        assert_eq!(to_domain_address(recovered), terms.patient);
        assert!(matches!(signature.as_bytes()[64], 27 | 28));
    }

    #[test]
    fn digest_depends_on_every_term_and_the_domain() {
        let base = signer().grant_digest(&terms());
        let mut longer = terms();
        longer.expires_at = 1;
        let mut wider = terms();
        wider.access = ChainAccess::Write;
        let other_chain = Eip712ConsentSigner::new(1, Address::from_bytes([0xcc; 20]));

        assert_ne!(signer().grant_digest(&longer), base);
        assert_ne!(signer().grant_digest(&wider), base);
        assert_ne!(other_chain.grant_digest(&terms()), base);
        let revoke = RevokeTerms {
            consent_id: terms().consent_id,
            patient: terms().patient,
        };
        assert_ne!(signer().revoke_digest(&revoke), base);
    }

    #[test]
    fn signing_rejects_a_key_of_another_account() {
        let mut terms = terms();
        terms.patient = Address::from_bytes([0xee; 20]);

        let error = signer().sign_grant(&KEY, &terms).unwrap_err();

        assert_eq!(error, SignerError::WrongKey(terms.patient));
    }

    #[test]
    fn signing_rejects_malformed_keys() {
        let short = signer().sign_grant(&KEY[..31], &terms()).unwrap_err();
        let zero = signer().sign_grant(&[0; 32], &terms()).unwrap_err();

        assert_eq!(
            short,
            SignerError::InvalidKey("expected 32 bytes, got 31".into())
        );
        assert!(matches!(zero, SignerError::InvalidKey(_)), "{zero:?}");
    }
}
