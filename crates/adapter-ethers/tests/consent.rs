//! Consent jobs against a real anvil node: the patient's EIP-712 signature
//! is what the contract checks, and anything else is rejected.

#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failure")]

use std::sync::Arc;

use ethers::abi::AbiDecode;
use ethers::contract::abigen;
use ethers::providers::Middleware;
use ethers::signers::LocalWallet;
use ethers::types::{H160, H256};
use meditrustal_adapter_ethers::testing::{deploy_test_ledger, AnvilNode};
use meditrustal_adapter_ethers::{
    DeploymentManifest, Eip712ConsentSigner, EthersLedger, RandomAccountGenerator,
};
use meditrustal_crypto::{sha256, Digest};
use meditrustal_identity::{AccountGenerator, CustodialAccount};
use meditrustal_ledger::{
    consent_key, Address, ChainAccess, ChainAnchor, ConsentSignature, ConsentSigner, GrantTerms,
    Ledger, LedgerError, LedgerJob, OnChainConsent, RevokeTerms, SignedGrant, SignedRevocation,
    Submission,
};
use uuid::Uuid;

abigen!(
    ConsentRegistryContract,
    "../../contracts/out/ConsentRegistry.json"
);

/// Address of the third contract anvil's first account creates (nonce 2),
/// which `deploy_contracts` deploys third of four.
const CONSENT_REGISTRY_ADDRESS: &str = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0";

struct Fixture {
    node: AnvilNode,
    ledger: EthersLedger,
    manifest: DeploymentManifest,
    signer: Eip712ConsentSigner,
    patient: CustodialAccount,
}

async fn fixture() -> Fixture {
    let node = AnvilNode::start().await.unwrap();
    let (ledger, manifest) = deploy_test_ledger(&node).await.unwrap();
    let signer = Eip712ConsentSigner::for_manifest(&manifest);
    let patient = RandomAccountGenerator.generate().unwrap();
    Fixture {
        node,
        ledger,
        manifest,
        signer,
        patient,
    }
}

impl Fixture {
    fn terms(&self, seed: u128) -> GrantTerms {
        GrantTerms {
            consent_id: Uuid::from_u128(seed),
            patient: self.patient.address,
            grantee: Address::from_bytes([0xd0; 20]),
            access: ChainAccess::Read,
            scope_hash: sha256(b"all records"),
            expires_at: 0,
        }
    }

    fn signed_grant(&self, terms: GrantTerms) -> LedgerJob {
        let signature = self
            .signer
            .sign_grant(&self.patient.secret_key, &terms)
            .unwrap();
        LedgerJob::GrantConsent(SignedGrant { terms, signature })
    }

    fn contract(
        &self,
    ) -> ConsentRegistryContract<ethers::providers::Provider<ethers::providers::Http>> {
        let address = H160(*self.manifest.contracts.consent_registry.address.as_bytes());
        ConsentRegistryContract::new(address, Arc::new(self.node.provider().unwrap()))
    }
}

/// Signs `digest` with a key that is not the patient's.
fn forge(digest: [u8; 32]) -> ConsentSignature {
    let intruder = LocalWallet::new(&mut ethers::core::rand::thread_rng());
    let signature = intruder.sign_hash(H256(digest)).unwrap();
    ConsentSignature::from_bytes(signature.into())
}

fn mined(result: Result<Submission, LedgerError>) -> ChainAnchor {
    match result {
        Ok(Submission::Mined(anchor)) => anchor,
        other => panic!("expected a mined transaction, got {other:?}"),
    }
}

#[tokio::test]
async fn grant_records_patient_signed_terms() {
    let fixture = fixture().await;
    let terms = fixture.terms(1);
    let job = fixture.signed_grant(terms.clone());
    let LedgerJob::GrantConsent(grant) = &job else {
        unreachable!()
    };

    let anchor = mined(fixture.ledger.submit(&job).await);

    assert_eq!(
        fixture
            .manifest
            .contracts
            .consent_registry
            .address
            .to_string(),
        CONSENT_REGISTRY_ADDRESS
    );
    assert_eq!(
        fixture.ledger.find_consent(terms.consent_id).await,
        Ok(Some(OnChainConsent {
            patient: terms.patient,
            grantee: terms.grantee,
            access: ChainAccess::Read,
            scope_hash: terms.scope_hash,
            expires_at: 0,
            granted_block: anchor.block_number,
            revoked_block: None,
        }))
    );

    // The transaction's calldata carries the patient's signature, and the
    // signature recovers to the patient's address over the contract's own
    // digest.
    let provider = fixture.node.provider().unwrap();
    let tx = provider
        .get_transaction(H256(*anchor.tx_hash.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    let call = GrantConsentCall::decode(&tx.input).unwrap();
    assert_eq!(call.signature.to_vec(), grant.signature.as_bytes().to_vec());
    let contract_digest = fixture
        .contract()
        .grant_digest(
            consent_key(terms.consent_id),
            H160(*terms.patient.as_bytes()),
            H160(*terms.grantee.as_bytes()),
            terms.access.code(),
            *terms.scope_hash.as_bytes(),
            terms.expires_at,
        )
        .call()
        .await
        .unwrap();
    assert_eq!(contract_digest, fixture.signer.grant_digest(&terms));
    let signature = ethers::types::Signature::try_from(&call.signature[..]).unwrap();
    let signer = signature.recover(H256(contract_digest)).unwrap();
    assert_eq!(signer.0, *fixture.patient.address.as_bytes());
    assert!(fixture
        .contract()
        .is_active(consent_key(terms.consent_id))
        .call()
        .await
        .unwrap());
}

#[tokio::test]
async fn forged_grant_signature_is_rejected() {
    let fixture = fixture().await;
    let terms = fixture.terms(2);
    let forged = forge(fixture.signer.grant_digest(&terms));
    let job = LedgerJob::GrantConsent(SignedGrant {
        terms: terms.clone(),
        signature: forged,
    });

    let result = fixture.ledger.submit(&job).await;

    assert_eq!(
        result,
        Err(LedgerError::Rejected("InvalidSignature()".into()))
    );
    assert_eq!(
        fixture.ledger.find_consent(terms.consent_id).await,
        Ok(None)
    );
}

#[tokio::test]
async fn signature_over_other_terms_is_rejected() {
    let fixture = fixture().await;
    let signed = fixture.terms(3);
    let signature = fixture
        .signer
        .sign_grant(&fixture.patient.secret_key, &signed)
        .unwrap();
    let mut widened = signed.clone();
    widened.access = ChainAccess::Write;
    let mut longer = signed.clone();
    longer.expires_at = 4_102_444_800;
    let mut other_doctor = signed.clone();
    other_doctor.grantee = Address::from_bytes([0xd1; 20]);

    for terms in [widened, longer, other_doctor] {
        let job = LedgerJob::GrantConsent(SignedGrant {
            terms: terms.clone(),
            signature,
        });
        assert_eq!(
            fixture.ledger.submit(&job).await,
            Err(LedgerError::Rejected("InvalidSignature()".into())),
            "{terms:?}"
        );
    }
    assert_eq!(
        fixture.ledger.find_consent(signed.consent_id).await,
        Ok(None)
    );
}

#[tokio::test]
async fn malformed_signatures_are_rejected() {
    let fixture = fixture().await;
    let terms = fixture.terms(4);
    let genuine = fixture
        .signer
        .sign_grant(&fixture.patient.secret_key, &terms)
        .unwrap();
    let mut wrong_v = *genuine.as_bytes();
    wrong_v[64] = 29;
    // The same signature with s replaced by n - s: valid for ecrecover, but
    // not the one low-s form the contract accepts.
    let mut high_s = *genuine.as_bytes();
    let order = ethers::types::U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let s = ethers::types::U256::from_big_endian(&high_s[32..64]);
    (order - s).to_big_endian(&mut high_s[32..64]);
    high_s[64] = if high_s[64] == 27 { 28 } else { 27 };

    for bytes in [wrong_v, high_s, [0u8; 65]] {
        let job = LedgerJob::GrantConsent(SignedGrant {
            terms: terms.clone(),
            signature: ConsentSignature::from_bytes(bytes),
        });
        assert_eq!(
            fixture.ledger.submit(&job).await,
            Err(LedgerError::Rejected("InvalidSignature()".into()))
        );
    }
}

#[tokio::test]
async fn revocation_needs_the_patients_signature() {
    let fixture = fixture().await;
    let terms = fixture.terms(5);
    let granted = mined(
        fixture
            .ledger
            .submit(&fixture.signed_grant(terms.clone()))
            .await,
    );
    let revoke = RevokeTerms {
        consent_id: terms.consent_id,
        patient: terms.patient,
    };
    let forged = LedgerJob::RevokeConsent(SignedRevocation {
        terms: revoke.clone(),
        signature: forge(fixture.signer.revoke_digest(&revoke)),
    });

    let rejected = fixture.ledger.submit(&forged).await;
    let genuine = LedgerJob::RevokeConsent(SignedRevocation {
        signature: fixture
            .signer
            .sign_revocation(&fixture.patient.secret_key, &revoke)
            .unwrap(),
        terms: revoke,
    });
    let revoked = mined(fixture.ledger.submit(&genuine).await);

    assert_eq!(
        rejected,
        Err(LedgerError::Rejected("InvalidSignature()".into()))
    );
    let entry = fixture
        .ledger
        .find_consent(terms.consent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.granted_block, granted.block_number);
    assert_eq!(entry.revoked_block, Some(revoked.block_number));
    assert!(!fixture
        .contract()
        .is_active(consent_key(terms.consent_id))
        .call()
        .await
        .unwrap());
}

#[tokio::test]
async fn grant_signature_cannot_revoke() {
    let fixture = fixture().await;
    let terms = fixture.terms(6);
    let job = fixture.signed_grant(terms.clone());
    let LedgerJob::GrantConsent(grant) = &job else {
        unreachable!()
    };
    mined(fixture.ledger.submit(&job).await);

    let replayed = LedgerJob::RevokeConsent(SignedRevocation {
        terms: RevokeTerms {
            consent_id: terms.consent_id,
            patient: terms.patient,
        },
        signature: grant.signature,
    });

    assert_eq!(
        fixture.ledger.submit(&replayed).await,
        Err(LedgerError::Rejected("InvalidSignature()".into()))
    );
}

#[tokio::test]
async fn resent_consent_jobs_return_the_original_transactions() {
    let fixture = fixture().await;
    let terms = fixture.terms(7);
    let grant = fixture.signed_grant(terms.clone());
    let revoke = RevokeTerms {
        consent_id: terms.consent_id,
        patient: terms.patient,
    };
    let revocation = LedgerJob::RevokeConsent(SignedRevocation {
        signature: fixture
            .signer
            .sign_revocation(&fixture.patient.secret_key, &revoke)
            .unwrap(),
        terms: revoke,
    });

    let first_grant = mined(fixture.ledger.submit(&grant).await);
    let second_grant = mined(fixture.ledger.submit(&grant).await);
    let first_revocation = mined(fixture.ledger.submit(&revocation).await);
    let second_revocation = mined(fixture.ledger.submit(&revocation).await);

    assert_eq!(second_grant, first_grant);
    assert_eq!(second_revocation, first_revocation);
}

#[tokio::test]
async fn revocation_before_its_grant_is_retried_later() {
    let fixture = fixture().await;
    let revoke = RevokeTerms {
        consent_id: Uuid::from_u128(8),
        patient: fixture.patient.address,
    };
    let revocation = LedgerJob::RevokeConsent(SignedRevocation {
        signature: fixture
            .signer
            .sign_revocation(&fixture.patient.secret_key, &revoke)
            .unwrap(),
        terms: revoke,
    });

    let result = fixture.ledger.submit(&revocation).await;

    let key = Digest::from_bytes(consent_key(Uuid::from_u128(8)));
    assert_eq!(
        result,
        Err(LedgerError::Unavailable(format!(
            "UnknownConsent({key}); the call may pass once earlier jobs are mined"
        )))
    );
}

#[tokio::test]
async fn expired_consent_is_not_active_on_chain() {
    let fixture = fixture().await;
    let mut terms = fixture.terms(9);
    terms.expires_at = 1;

    mined(
        fixture
            .ledger
            .submit(&fixture.signed_grant(terms.clone()))
            .await,
    );

    assert!(!fixture
        .contract()
        .is_active(consent_key(terms.consent_id))
        .call()
        .await
        .unwrap());
}
