//! Unit tests of [`crate::ConsentService`] with mocked ports.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use meditrustal_identity::{custodial_key_aad, Principal, Role, UserId};
use meditrustal_ledger::{
    Address, AnchorState, ChainAccess, ConsentSignature, LedgerJob, MockConsentSigner,
};
use uuid::Uuid;

use crate::ports::{MockConsentStore, MockJobSignal, MockRecordStore};
use crate::{
    Access, BreakGlassFilter, Consent, ConsentError, ConsentId, ConsentScope, ConsentService,
    ConsentStoreError, GrantRequest, Party, PartyRef,
};

const PATIENT_KEY: [u8; 32] = [0x42; 32];

fn keys() -> Arc<MasterKeyring> {
    Arc::new(MasterKeyring::new(
        MasterKey::new(KeyId::new("test"), [5; 32]),
        [],
    ))
}

fn principal(n: u128, role: Role) -> Principal {
    Principal {
        user_id: UserId(Uuid::from_u128(n)),
        role,
    }
}

fn party(n: u128, role: Role) -> Party {
    Party {
        id: UserId(Uuid::from_u128(n)),
        role,
        address: Address::from_bytes([n as u8; 20]),
        is_active: true,
    }
}

fn service(
    consents: MockConsentStore,
    signer: MockConsentSigner,
    signal: MockJobSignal,
) -> ConsentService {
    ConsentService::new(
        Arc::new(consents),
        Arc::new(MockRecordStore::new()),
        keys(),
        Arc::new(signer),
        Arc::new(signal),
        TimeDelta::minutes(15),
    )
}

fn grant_request(doctor: PartyRef) -> GrantRequest {
    GrantRequest {
        doctor,
        access: "read".into(),
        record_types: None,
        record_ids: None,
        expires_at: None,
        purpose: None,
    }
}

/// A store that returns patient 1 and doctor 2, with the patient's key
/// sealed as registration seals it.
fn store_with_parties() -> MockConsentStore {
    let mut store = MockConsentStore::new();
    store.expect_find_party().returning(|party| {
        Ok(match party {
            PartyRef::Id(UserId(id)) if id == Uuid::from_u128(1) => Some(party_of(1)),
            PartyRef::Id(UserId(id)) if id == Uuid::from_u128(2) => Some(party_of(2)),
            PartyRef::Address(address) if address == party_of(2).address => Some(party_of(2)),
            _ => None,
        })
    });
    let patient = UserId(Uuid::from_u128(1));
    let sealed =
        meditrustal_crypto::seal(keys().as_ref(), &PATIENT_KEY, &custodial_key_aad(patient))
            .unwrap();
    store
        .expect_find_signing_key()
        .returning(move |_| Ok(Some(sealed.clone())));
    store
}

fn party_of(n: u128) -> Party {
    match n {
        1 => party(1, Role::Patient),
        _ => party(2, Role::Doctor),
    }
}

fn stored_consent(patient: u128, revoked: bool) -> Consent {
    Consent {
        id: ConsentId(Uuid::from_u128(50)),
        patient_id: UserId(Uuid::from_u128(patient)),
        patient_address: party(patient, Role::Patient).address,
        doctor_id: UserId(Uuid::from_u128(2)),
        doctor_address: party(2, Role::Doctor).address,
        access: Access::Read,
        scope: ConsentScope::AllRecords,
        purpose: None,
        expires_at: None,
        created_at: Utc::now(),
        revoked_at: revoked.then(Utc::now),
        grant_signature: ConsentSignature::from_bytes([1; 65]),
        grant_anchor: AnchorState::pending(),
        revocation_anchor: None,
    }
}

#[tokio::test]
async fn grant_signed_with_patient_key() {
    let mut store = store_with_parties();
    store
        .expect_insert_consent()
        .withf(|consent, job| match job {
            LedgerJob::GrantConsent(grant) => {
                grant.signature == consent.grant_signature
                    && grant.terms.consent_id == consent.id.0
                    && grant.terms.patient == party(1, Role::Patient).address
                    && grant.terms.grantee == party(2, Role::Doctor).address
                    && grant.terms.access == ChainAccess::Read
                    && grant.terms.scope_hash == consent.scope_hash()
                    && grant.terms.expires_at == 0
            }
            _ => false,
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let mut signer = MockConsentSigner::new();
    signer
        .expect_sign_grant()
        .withf(|key, _| key == PATIENT_KEY)
        .times(1)
        .returning(|_, _| Ok(ConsentSignature::from_bytes([9; 65])));
    let mut signal = MockJobSignal::new();
    signal.expect_job_enqueued().times(1).return_const(());
    let doctor = PartyRef::Address(party(2, Role::Doctor).address);

    let consent = service(store, signer, signal)
        .grant(&principal(1, Role::Patient), grant_request(doctor))
        .await
        .unwrap();

    assert_eq!(
        consent.grant_signature,
        ConsentSignature::from_bytes([9; 65])
    );
    assert_eq!(consent.doctor_id, UserId(Uuid::from_u128(2)));
    assert_eq!(consent.scope, ConsentScope::AllRecords);
}

#[tokio::test]
async fn only_patients_grant() {
    let mut store = MockConsentStore::new();
    store.expect_insert_consent().times(0);
    let service = service(store, MockConsentSigner::new(), MockJobSignal::new());

    for role in [Role::Doctor, Role::Admin] {
        let error = service
            .grant(
                &principal(2, role),
                grant_request(PartyRef::Id(UserId(Uuid::from_u128(2)))),
            )
            .await
            .unwrap_err();
        assert_eq!(
            error,
            ConsentError::Forbidden("only patients grant consent, for their own records".into())
        );
    }
}

#[tokio::test]
async fn grant_to_a_non_doctor_is_invalid() {
    let mut store = store_with_parties();
    store.expect_insert_consent().times(0);
    let mut signer = MockConsentSigner::new();
    signer.expect_sign_grant().times(0);

    let to_patient = service(store, signer, MockJobSignal::new())
        .grant(
            &principal(1, Role::Patient),
            grant_request(PartyRef::Id(UserId(Uuid::from_u128(1)))),
        )
        .await
        .unwrap_err();

    assert_eq!(
        to_patient,
        ConsentError::Invalid {
            field: "doctor_id",
            message: "no active doctor has this id".into()
        }
    );
}

#[tokio::test]
async fn grant_of_foreign_records_is_invalid() {
    let mut store = store_with_parties();
    store
        .expect_owned_records()
        .times(1)
        .returning(|_, _| Ok(Vec::new()));
    store.expect_insert_consent().times(0);
    let mut request = grant_request(PartyRef::Id(UserId(Uuid::from_u128(2))));
    request.record_ids = Some(vec![Uuid::from_u128(77)]);

    let error = service(store, MockConsentSigner::new(), MockJobSignal::new())
        .grant(&principal(1, Role::Patient), request)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ConsentError::Invalid {
            field: "record_ids",
            message: "no record with id 00000000-0000-0000-0000-00000000004d is among your records"
                .into()
        }
    );
}

#[tokio::test]
async fn grant_expiring_in_the_past_is_invalid() {
    let mut store = store_with_parties();
    store.expect_insert_consent().times(0);
    let mut request = grant_request(PartyRef::Id(UserId(Uuid::from_u128(2))));
    request.expires_at = Some(Utc::now() - TimeDelta::seconds(1));

    let error = service(store, MockConsentSigner::new(), MockJobSignal::new())
        .grant(&principal(1, Role::Patient), request)
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            ConsentError::Invalid {
                field: "expires_at",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn revoke_of_another_patients_consent_is_not_found() {
    let mut store = MockConsentStore::new();
    store
        .expect_find_consent()
        .times(1)
        .returning(|_| Ok(Some(stored_consent(3, false))));
    store.expect_revoke_consent().times(0);

    let error = service(store, MockConsentSigner::new(), MockJobSignal::new())
        .revoke(&principal(1, Role::Patient), ConsentId(Uuid::from_u128(50)))
        .await
        .unwrap_err();

    assert_eq!(error, ConsentError::ConsentNotFound);
}

#[tokio::test]
async fn revoke_twice_is_a_conflict() {
    let mut store = MockConsentStore::new();
    store
        .expect_find_consent()
        .times(1)
        .returning(|_| Ok(Some(stored_consent(1, true))));
    store.expect_revoke_consent().times(0);

    let error = service(store, MockConsentSigner::new(), MockJobSignal::new())
        .revoke(&principal(1, Role::Patient), ConsentId(Uuid::from_u128(50)))
        .await
        .unwrap_err();

    assert_eq!(error, ConsentError::AlreadyRevoked);
}

#[tokio::test]
async fn concurrent_revocation_maps_to_conflict() {
    let mut store = store_with_parties();
    store
        .expect_find_consent()
        .times(1)
        .returning(|_| Ok(Some(stored_consent(1, false))));
    store
        .expect_revoke_consent()
        .times(1)
        .returning(|_, _, _, _| Err(ConsentStoreError::AlreadyRevoked));
    let mut signer = MockConsentSigner::new();
    signer
        .expect_sign_revocation()
        .withf(|key, terms| key == PATIENT_KEY && terms.consent_id == Uuid::from_u128(50))
        .times(1)
        .returning(|_, _| Ok(ConsentSignature::from_bytes([4; 65])));
    let mut signal = MockJobSignal::new();
    signal.expect_job_enqueued().times(0);

    let error = service(store, signer, signal)
        .revoke(&principal(1, Role::Patient), ConsentId(Uuid::from_u128(50)))
        .await
        .unwrap_err();

    assert_eq!(error, ConsentError::AlreadyRevoked);
}

#[tokio::test]
async fn break_glass_rejects_bad_requests() {
    let mut store = store_with_parties();
    store.expect_insert_break_glass().times(0);
    let service = service(store, MockConsentSigner::new(), MockJobSignal::new());
    let patient = UserId(Uuid::from_u128(1));

    let by_patient = service
        .open_break_glass(&principal(1, Role::Patient), patient, Some("fall".into()))
        .await
        .unwrap_err();
    let no_reason = service
        .open_break_glass(&principal(2, Role::Doctor), patient, Some(" \n ".into()))
        .await
        .unwrap_err();
    let on_doctor = service
        .open_break_glass(
            &principal(2, Role::Doctor),
            UserId(Uuid::from_u128(2)),
            Some("fall".into()),
        )
        .await
        .unwrap_err();

    assert_eq!(
        by_patient,
        ConsentError::Forbidden("only doctors may open break-glass access".into())
    );
    assert_eq!(
        no_reason,
        ConsentError::Invalid {
            field: "reason",
            message: "state why emergency access is needed".into()
        }
    );
    assert_eq!(on_doctor, ConsentError::PatientNotFound);
}

#[tokio::test]
async fn break_glass_lasts_the_configured_time() {
    let mut store = store_with_parties();
    store
        .expect_insert_break_glass()
        .withf(|event| event.expires_at - event.created_at == TimeDelta::minutes(15))
        .times(1)
        .returning(|_| Ok(()));

    let event = service(store, MockConsentSigner::new(), MockJobSignal::new())
        .open_break_glass(
            &principal(2, Role::Doctor),
            UserId(Uuid::from_u128(1)),
            Some("  unresponsive  ".into()),
        )
        .await
        .unwrap();

    assert_eq!(event.reason, "unresponsive");
    assert_eq!(event.doctor_id, UserId(Uuid::from_u128(2)));
}

#[tokio::test]
async fn break_glass_listing_follows_the_callers_role() {
    let mut store = MockConsentStore::new();
    for (filter, times) in [
        (BreakGlassFilter::Patient(UserId(Uuid::from_u128(1))), 1),
        (BreakGlassFilter::Doctor(UserId(Uuid::from_u128(2))), 1),
        (BreakGlassFilter::All, 1),
    ] {
        store
            .expect_list_break_glass()
            .withf(move |given, limit, offset| *given == filter && *limit == 50 && *offset == 0)
            .times(times)
            .returning(|_, _, _| Ok(Vec::new()));
    }
    let service = service(store, MockConsentSigner::new(), MockJobSignal::new());

    for caller in [
        principal(1, Role::Patient),
        principal(2, Role::Doctor),
        principal(3, Role::Admin),
    ] {
        assert_eq!(
            service.list_break_glass(&caller, None, None).await,
            Ok(Vec::new())
        );
    }
}
