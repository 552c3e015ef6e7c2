//! Unit tests of [`crate::RecordService`] with mocked ports.

use std::sync::{Arc, Mutex};

use meditrustal_crypto::{sha256, KeyId, MasterKey, MasterKeyring};
use meditrustal_identity::{Did, Principal, Role, UserId};
use meditrustal_ledger::{
    Address, AnchorState, AnchorStatus, ChainAnchor, ConsentSignature, LedgerError, LedgerJob,
    MockLedger, OnChainRecord, TxStatus,
};
use mockall::predicate::always;
use serde_json::json;
use uuid::Uuid;

use crate::ports::{MockConsentStore, MockJobSignal, MockRecordStore};
use crate::{
    Access, AccessDenial, AccessGrants, CheckOutcome, Consent, ConsentId, ConsentScope,
    NewRecordRequest, PatientSelector, RecordError, RecordFilter, RecordId, RecordService,
    RecordType, StoredRecord,
};

const GLUCOSE: &str = r#"{"resourceType":"Observation","status":"final","code":{"text":"Glucose"},"effectiveDateTime":"2013-04-02T09:30:10+01:00","valueQuantity":{"value":6.3,"unit":"mmol/l"}}"#;

fn keys() -> Arc<MasterKeyring> {
    Arc::new(MasterKeyring::new(
        MasterKey::new(KeyId::new("test"), [5; 32]),
        [],
    ))
}

fn patient(n: u128) -> Principal {
    Principal {
        user_id: UserId(Uuid::from_u128(n)),
        role: Role::Patient,
    }
}

fn doctor(n: u128) -> Principal {
    Principal {
        user_id: UserId(Uuid::from_u128(n)),
        role: Role::Doctor,
    }
}

fn request(metadata: Option<serde_json::Value>) -> NewRecordRequest {
    let metadata = metadata.map(|value| value.to_string());
    NewRecordRequest {
        record_type: "lab_result".into(),
        record_metadata: metadata,
        raw_data: GLUCOSE.into(),
        patient_id: None,
    }
}

fn service(store: MockRecordStore, ledger: MockLedger, signal: MockJobSignal) -> RecordService {
    service_with_consents(store, MockConsentStore::new(), ledger, signal)
}

fn service_with_consents(
    store: MockRecordStore,
    consents: MockConsentStore,
    ledger: MockLedger,
    signal: MockJobSignal,
) -> RecordService {
    RecordService::new(
        Arc::new(store),
        Arc::new(consents),
        Arc::new(ledger),
        keys(),
        Arc::new(signal),
    )
}

/// A consent store whose `access_grants` returns `grants` once.
fn consents_granting(grants: AccessGrants) -> MockConsentStore {
    let mut consents = MockConsentStore::new();
    consents
        .expect_access_grants()
        .times(1)
        .returning(move |_, _, _| Ok(grants.clone()));
    consents
}

fn consent_of(patient: &Principal, access: Access, scope: ConsentScope) -> Consent {
    Consent {
        id: ConsentId(Uuid::from_u128(77)),
        patient_id: patient.user_id,
        patient_address: Address::from_bytes([1; 20]),
        doctor_id: doctor(9).user_id,
        doctor_address: Address::from_bytes([9; 20]),
        access,
        scope,
        purpose: None,
        expires_at: None,
        created_at: chrono::Utc::now(),
        revoked_at: None,
        grant_signature: ConsentSignature::from_bytes([0; 65]),
        grant_anchor: AnchorState::pending(),
        revocation_anchor: None,
    }
}

/// Creates a record through a real service over a capturing store, and
/// returns what the store received.
async fn created_record(owner: &Principal) -> StoredRecord {
    let captured = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&captured);
    let mut store = MockRecordStore::new();
    store.expect_insert().times(1).returning(move |record, _| {
        *sink.lock().unwrap() = Some(record.clone());
        Ok(())
    });
    let mut signal = MockJobSignal::new();
    signal.expect_job_enqueued().times(1).return_const(());

    service(store, MockLedger::new(), signal)
        .create(owner, request(Some(json!({"source": "lab"}))))
        .await
        .unwrap();
    let record = captured.lock().unwrap().take().unwrap();
    record
}

fn store_returning(record: Option<StoredRecord>) -> MockRecordStore {
    let mut store = MockRecordStore::new();
    store
        .expect_find()
        .times(1)
        .returning(move |_| Ok(record.clone()));
    store
}

#[tokio::test]
async fn create_seals_content_and_queues_anchor_job() {
    let owner = patient(1);
    let mut store = MockRecordStore::new();
    store
        .expect_insert()
        .withf(move |stored, job| {
            let LedgerJob::AnchorRecord(anchor) = job else {
                return false;
            };
            anchor.record_id == stored.record.id.0
                && anchor.anchor_hash == stored.record.anchor_hash
                && anchor.patient_did == Did::for_user(UserId(Uuid::from_u128(1))).as_str()
                && anchor.record_type == "LAB_RESULT"
                && anchor.timestamp == stored.record.created_at.timestamp() as u64
                && stored.sealed.ciphertext.len() == GLUCOSE.len() + 16
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let mut signal = MockJobSignal::new();
    signal.expect_job_enqueued().times(1).return_const(());

    let record = service(store, MockLedger::new(), signal)
        .create(&owner, request(None))
        .await
        .unwrap();

    assert_eq!(record.patient_id, owner.user_id);
    assert_eq!(record.record_type, RecordType::LabResult);
    assert_eq!(record.data_hash, sha256(GLUCOSE.as_bytes()));
    assert_eq!(record.anchor.status, AnchorStatus::Pending);
    assert_eq!(record.metadata_json, None);
}

#[tokio::test]
async fn patient_cannot_create_for_another_patient() {
    let mut store = MockRecordStore::new();
    store.expect_insert().times(0);
    let mut other = request(None);
    other.patient_id = Some(Uuid::from_u128(2));

    let error = service(store, MockLedger::new(), MockJobSignal::new())
        .create(&patient(1), other)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        RecordError::Forbidden("patients may only create records for themselves".into())
    );
}

#[tokio::test]
async fn doctor_without_consent_cannot_create() {
    let mut store = MockRecordStore::new();
    store.expect_insert().times(0);
    let mut for_patient = request(None);
    for_patient.patient_id = Some(Uuid::from_u128(1));

    let consents = consents_granting(AccessGrants::default());

    let error = service_with_consents(store, consents, MockLedger::new(), MockJobSignal::new())
        .create(&doctor(9), for_patient)
        .await
        .unwrap_err();

    assert_eq!(
        error,
        RecordError::AccessDenied(AccessDenial {
            doctor_id: doctor(9).user_id,
            patient_id: Some(UserId(Uuid::from_u128(1))),
            record_id: None,
            action: "create",
        })
    );
}

#[tokio::test]
async fn doctor_with_read_consent_cannot_create() {
    let owner = patient(1);
    let mut store = MockRecordStore::new();
    store.expect_insert().times(0);
    let mut for_patient = request(None);
    for_patient.patient_id = Some(owner.user_id.0);
    let read_only = consent_of(&owner, Access::Read, ConsentScope::AllRecords);
    let consents = consents_granting(AccessGrants {
        consents: vec![read_only],
        break_glass: None,
    });

    let error = service_with_consents(store, consents, MockLedger::new(), MockJobSignal::new())
        .create(&doctor(9), for_patient)
        .await
        .unwrap_err();

    assert!(matches!(error, RecordError::AccessDenied(_)), "{error:?}");
}

#[tokio::test]
async fn doctor_with_write_consent_creates_for_patient() {
    let owner = patient(1);
    let mut store = MockRecordStore::new();
    store.expect_insert().times(1).returning(|_, _| Ok(()));
    let mut signal = MockJobSignal::new();
    signal.expect_job_enqueued().times(1).return_const(());
    let mut for_patient = request(None);
    for_patient.patient_id = Some(owner.user_id.0);
    let scope = ConsentScope::RecordTypes(vec![RecordType::LabResult]);
    let consents = consents_granting(AccessGrants {
        consents: vec![consent_of(&owner, Access::Write, scope)],
        break_glass: None,
    });

    let record = service_with_consents(store, consents, MockLedger::new(), signal)
        .create(&doctor(9), for_patient)
        .await
        .unwrap();

    assert_eq!(record.patient_id, owner.user_id);
    assert_eq!(record.record_type, RecordType::LabResult);
}

#[tokio::test]
async fn doctor_denial_same_for_missing_record() {
    let owner = patient(1);
    let stored = created_record(&owner).await;
    let id = stored.record.id;
    let consents = consents_granting(AccessGrants::default());

    let existing = service_with_consents(
        store_returning(Some(stored)),
        consents,
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&doctor(9), id)
    .await
    .unwrap_err();
    let missing = service(
        store_returning(None),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&doctor(9), id)
    .await
    .unwrap_err();

    assert!(
        matches!(existing, RecordError::AccessDenied(_)),
        "{existing:?}"
    );
    assert!(
        matches!(missing, RecordError::AccessDenied(_)),
        "{missing:?}"
    );
    assert_eq!(existing.to_string(), missing.to_string());
}

#[tokio::test]
async fn doctor_with_consent_reads_exact_content() {
    let owner = patient(1);
    let stored = created_record(&owner).await;
    let id = stored.record.id;
    let consents = consents_granting(AccessGrants {
        consents: vec![consent_of(
            &owner,
            Access::Read,
            ConsentScope::Records(vec![id]),
        )],
        break_glass: None,
    });

    let (record, raw) = service_with_consents(
        store_returning(Some(stored)),
        consents,
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&doctor(9), id)
    .await
    .unwrap();

    assert_eq!(record.id, id);
    assert_eq!(raw, GLUCOSE);
}

#[tokio::test]
async fn doctor_listing_is_limited_to_consented_types() {
    let owner = patient(1);
    let scope = ConsentScope::RecordTypes(vec![RecordType::Imaging]);
    let consents = consents_granting(AccessGrants {
        consents: vec![consent_of(&owner, Access::Read, scope)],
        break_glass: None,
    });
    let mut store = MockRecordStore::new();
    store
        .expect_list()
        .withf(|query| {
            query.within
                == Some(RecordFilter {
                    record_types: vec![RecordType::Imaging],
                    record_ids: Vec::new(),
                })
        })
        .times(1)
        .returning(|_| Ok(Vec::new()));

    let page = service_with_consents(store, consents, MockLedger::new(), MockJobSignal::new())
        .list(
            &doctor(9),
            PatientSelector::Patient(owner.user_id),
            None,
            None,
            None,
        )
        .await
        .unwrap();

    assert_eq!(page.records, Vec::new());
}

#[tokio::test]
async fn doctor_without_consent_cannot_list() {
    let owner = patient(1);
    let mut store = MockRecordStore::new();
    store.expect_list().times(0);
    let consents = consents_granting(AccessGrants::default());

    let error = service_with_consents(store, consents, MockLedger::new(), MockJobSignal::new())
        .list(
            &doctor(9),
            PatientSelector::Patient(owner.user_id),
            None,
            None,
            None,
        )
        .await
        .unwrap_err();

    assert_eq!(
        error,
        RecordError::AccessDenied(AccessDenial {
            doctor_id: doctor(9).user_id,
            patient_id: Some(owner.user_id),
            record_id: None,
            action: "list",
        })
    );
}

#[tokio::test]
async fn create_rejects_invalid_fields_without_writing() {
    let cases = [
        (
            NewRecordRequest {
                record_type: "XRAY".into(),
                ..request(None)
            },
            "record_type",
        ),
        (
            request(Some(json!({"note": "a\u{0}b"}))),
            "record_metadata.note",
        ),
        (
            request(Some(json!({"bad\u{0}key": 1}))),
            "record_metadata.bad\\u0000key",
        ),
        (
            request(Some(json!({"list": ["ok", "x\u{0}"]}))),
            "record_metadata.list[1]",
        ),
        (
            request(Some(json!(["not", "an", "object"]))),
            "record_metadata",
        ),
        (
            NewRecordRequest {
                raw_data: "  ".into(),
                ..request(None)
            },
            "raw_data",
        ),
        (
            NewRecordRequest {
                raw_data: r#"{"resourceType":"Observation","status":"final","status":"amended"}"#
                    .into(),
                ..request(None)
            },
            "raw_data.status",
        ),
    ];
    for (case, expected_field) in cases {
        let mut store = MockRecordStore::new();
        store.expect_insert().times(0);

        let error = service(store, MockLedger::new(), MockJobSignal::new())
            .create(&patient(1), case)
            .await
            .unwrap_err();

        match error {
            RecordError::Invalid { field, .. } => assert_eq!(field, expected_field),
            other => panic!("expected Invalid for {expected_field}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn read_returns_exact_content_to_owner() {
    let owner = patient(1);
    let stored = created_record(&owner).await;
    let id = stored.record.id;

    let (record, raw) = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&owner, id)
    .await
    .unwrap();

    assert_eq!(raw, GLUCOSE);
    assert_eq!(record.id, id);
    assert_eq!(record.metadata_json.as_deref(), Some(r#"{"source":"lab"}"#));
}

#[tokio::test]
async fn other_patient_and_missing_record_look_the_same() {
    let stored = created_record(&patient(1)).await;
    let id = stored.record.id;

    let foreign = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&patient(2), id)
    .await
    .unwrap_err();
    let missing = service(
        store_returning(None),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&patient(2), RecordId(Uuid::from_u128(99)))
    .await
    .unwrap_err();

    assert_eq!(foreign, RecordError::NotFound);
    assert_eq!(missing, RecordError::NotFound);
}

#[tokio::test]
async fn owner_of_names_owner_or_none() {
    let stored = created_record(&patient(1)).await;
    let id = stored.record.id;

    let existing = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .owner_of(id)
    .await;
    let missing = service(
        store_returning(None),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .owner_of(RecordId(Uuid::from_u128(99)))
    .await;

    assert_eq!(existing, Ok(Some(UserId(Uuid::from_u128(1)))));
    assert_eq!(missing, Ok(None));
}

#[tokio::test]
async fn read_of_tampered_ciphertext_returns_integrity_error() {
    let owner = patient(1);
    let mut stored = created_record(&owner).await;
    stored.sealed.ciphertext[3] ^= 0x01;
    let id = stored.record.id;

    let error = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&owner, id)
    .await
    .unwrap_err();

    assert_eq!(error, RecordError::Integrity);
}

#[tokio::test]
async fn moved_record_fails_integrity() {
    let mut stored = created_record(&patient(1)).await;
    stored.record.patient_id = UserId(Uuid::from_u128(2));
    let id = stored.record.id;

    let error = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .read(&patient(2), id)
    .await
    .unwrap_err();

    assert_eq!(error, RecordError::Integrity);
}

#[tokio::test]
async fn list_returns_next_cursor_only_when_more_exist() {
    let owner = patient(1);
    let records: Vec<_> = [
        created_record(&owner).await,
        created_record(&owner).await,
        created_record(&owner).await,
    ]
    .into_iter()
    .map(|stored| stored.record)
    .collect();
    let mut store = MockRecordStore::new();
    let page = records.clone();
    store
        .expect_list()
        .withf(|query| query.limit == 3 && query.record_type == Some(RecordType::LabResult))
        .times(1)
        .returning(move |_| Ok(page.clone()));

    let result = service(store, MockLedger::new(), MockJobSignal::new())
        .list(
            &owner,
            PatientSelector::Me,
            Some("LAB_RESULT"),
            Some(2),
            None,
        )
        .await
        .unwrap();

    assert_eq!(result.records.len(), 2);
    assert_eq!(result.records[1].id, records[1].id);
    let next = result.next.unwrap();
    assert_eq!(next.id, records[1].id);
    assert_eq!(next.created_at, records[1].created_at);
}

#[tokio::test]
async fn list_rejects_other_patients_and_bad_limits() {
    let svc = service(
        MockRecordStore::new(),
        MockLedger::new(),
        MockJobSignal::new(),
    );

    let foreign = svc
        .list(
            &patient(1),
            PatientSelector::Patient(UserId(Uuid::from_u128(2))),
            None,
            None,
            None,
        )
        .await;
    let zero = svc
        .list(&patient(1), PatientSelector::Me, None, Some(0), None)
        .await;
    let cursor = svc
        .list(
            &patient(1),
            PatientSelector::Me,
            None,
            None,
            Some("garbage"),
        )
        .await;

    assert_eq!(
        foreign.unwrap_err(),
        RecordError::Forbidden("you may only list your own records".into())
    );
    assert!(matches!(zero.unwrap_err(), RecordError::Invalid { field, .. } if field == "limit"));
    assert!(matches!(cursor.unwrap_err(), RecordError::Invalid { field, .. } if field == "cursor"));
}

fn anchored(mut stored: StoredRecord) -> StoredRecord {
    stored.record.anchor.status = AnchorStatus::Anchored;
    stored.record.anchor.tx_hash = Some(sha256(b"tx"));
    stored.record.anchor.block_number = Some(12);
    stored
}

fn matching_ledger(stored: &StoredRecord) -> MockLedger {
    let entry = OnChainRecord {
        patient_did: Did::for_user(stored.record.patient_id).as_str().to_owned(),
        record_type: stored.record.record_type.as_str().to_owned(),
        timestamp: stored.record.created_at.timestamp() as u64,
        block_number: 12,
        tx_hash: Some(sha256(b"tx")),
    };
    let mut ledger = MockLedger::new();
    ledger.expect_transaction_status().returning(|_| {
        Ok(TxStatus::Mined(ChainAnchor {
            tx_hash: sha256(b"tx"),
            block_number: 12,
        }))
    });
    ledger
        .expect_find_record()
        .with(always())
        .returning(move |_| Ok(Some(entry.clone())));
    ledger
}

fn outcome_of(report: &crate::Verification, name: &str) -> CheckOutcome {
    report
        .checks
        .iter()
        .find(|check| check.name == name)
        .map(|check| check.outcome)
        .unwrap()
}

#[tokio::test]
async fn verify_passes_every_check_for_intact_record() {
    let owner = patient(1);
    let stored = anchored(created_record(&owner).await);
    let ledger = matching_ledger(&stored);
    let id = stored.record.id;

    let report = service(store_returning(Some(stored)), ledger, MockJobSignal::new())
        .verify(&owner, id)
        .await
        .unwrap();

    let names: Vec<_> = report.checks.iter().map(|check| check.name).collect();
    assert_eq!(
        names,
        [
            "ciphertext",
            "data_hash",
            "anchor_hash",
            "anchor_status",
            "transaction",
            "chain_entry",
            "owner",
            "record_type",
            "timestamp"
        ]
    );
    assert!(
        report
            .checks
            .iter()
            .all(|check| check.outcome == CheckOutcome::Passed),
        "{:?}",
        report.checks
    );
    assert!(report.verified);
}

#[tokio::test]
async fn verify_detects_changed_metadata() {
    let owner = patient(1);
    let mut stored = anchored(created_record(&owner).await);
    let ledger = matching_ledger(&stored);
    stored.record.metadata_json = Some(r#"{"source":"forged"}"#.into());
    let id = stored.record.id;

    let report = service(store_returning(Some(stored)), ledger, MockJobSignal::new())
        .verify(&owner, id)
        .await
        .unwrap();

    assert!(!report.verified);
    assert_eq!(outcome_of(&report, "ciphertext"), CheckOutcome::Failed);
    assert_eq!(outcome_of(&report, "anchor_hash"), CheckOutcome::Failed);
}

#[tokio::test]
async fn verify_detects_changed_data_hash() {
    let owner = patient(1);
    let mut stored = anchored(created_record(&owner).await);
    let ledger = matching_ledger(&stored);
    stored.record.data_hash = sha256(b"other content");
    let id = stored.record.id;

    let report = service(store_returning(Some(stored)), ledger, MockJobSignal::new())
        .verify(&owner, id)
        .await
        .unwrap();

    assert!(!report.verified);
    assert_eq!(outcome_of(&report, "ciphertext"), CheckOutcome::Passed);
    assert_eq!(outcome_of(&report, "data_hash"), CheckOutcome::Failed);
    assert_eq!(outcome_of(&report, "anchor_hash"), CheckOutcome::Failed);
}

#[tokio::test]
async fn verify_reports_missing_contracts_as_failed_check() {
    let owner = patient(1);
    let stored = anchored(created_record(&owner).await);
    let mut ledger = MockLedger::new();
    ledger
        .expect_transaction_status()
        .returning(|_| Ok(TxStatus::Unknown));
    ledger
        .expect_find_record()
        .returning(|_| Err(LedgerError::ContractsMissing));
    let id = stored.record.id;

    let report = service(store_returning(Some(stored)), ledger, MockJobSignal::new())
        .verify(&owner, id)
        .await
        .unwrap();

    assert!(!report.verified);
    assert_eq!(outcome_of(&report, "transaction"), CheckOutcome::Failed);
    assert_eq!(outcome_of(&report, "chain_entry"), CheckOutcome::Failed);
}

#[tokio::test]
async fn verify_of_pending_record_is_not_verified() {
    let owner = patient(1);
    let stored = created_record(&owner).await;
    let id = stored.record.id;

    let report = service(
        store_returning(Some(stored)),
        MockLedger::new(),
        MockJobSignal::new(),
    )
    .verify(&owner, id)
    .await
    .unwrap();

    assert!(!report.verified);
    assert_eq!(outcome_of(&report, "ciphertext"), CheckOutcome::Passed);
    assert_eq!(outcome_of(&report, "anchor_status"), CheckOutcome::Failed);
}

#[tokio::test]
async fn verify_rejects_entry_written_by_another_transaction() {
    let owner = patient(1);
    let mut stored = anchored(created_record(&owner).await);
    let ledger = matching_ledger(&stored);
    // Another record's transaction in the same block: block checks pass.
    stored.record.anchor.tx_hash = Some(sha256(b"other tx"));
    let id = stored.record.id;

    let report = service(store_returning(Some(stored)), ledger, MockJobSignal::new())
        .verify(&owner, id)
        .await
        .unwrap();

    assert!(!report.verified);
    assert_eq!(outcome_of(&report, "chain_entry"), CheckOutcome::Failed);
}
