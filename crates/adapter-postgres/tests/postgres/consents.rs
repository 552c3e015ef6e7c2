use std::time::Duration;

use chrono::TimeDelta;
use meditrustal_adapter_postgres::{
    PgConsentStore, PgOutboxStore, PgRecordStore, PgUserStore, TestDatabase,
};
use meditrustal_crypto::sha256;
use meditrustal_identity::{Role, UserId, UserStore};
use meditrustal_ledger::{
    AnchorStatus, ChainAccess, ChainAnchor, ConsentSignature, GrantTerms, LedgerJob, OutboxStore,
    RevokeTerms, SignedGrant, SignedRevocation,
};
use meditrustal_records::{
    Access, BreakGlass, BreakGlassFilter, Consent, ConsentId, ConsentParty, ConsentScope,
    ConsentStore, ConsentStoreError, PartyRef, RecordFilter, RecordId, RecordStore, RecordType,
};
use uuid::Uuid;

use crate::support::{anchor_job, at, count, new_user, sealed, stored_record};

struct Fixture {
    db: TestDatabase,
    consents: PgConsentStore,
    records: PgRecordStore,
    patient: UserId,
    doctor: UserId,
}

async fn setup() -> Fixture {
    let db = TestDatabase::create().await.unwrap();
    let users = PgUserStore::new(db.pool().clone());
    let patient = new_user("patient", "patient@example.org");
    let mut doctor = new_user("doctor", "doctor@example.org");
    doctor.user.role = Role::Doctor;
    users.insert(&patient).await.unwrap();
    users.insert(&doctor).await.unwrap();
    Fixture {
        consents: PgConsentStore::new(db.pool().clone()),
        records: PgRecordStore::new(db.pool().clone()),
        db,
        patient: patient.user.id,
        doctor: doctor.user.id,
    }
}

impl Fixture {
    async fn consent(&self, scope: ConsentScope, expires_in: Option<i64>) -> Consent {
        let patient = self
            .consents
            .find_party(PartyRef::Id(self.patient))
            .await
            .unwrap()
            .unwrap();
        let doctor = self
            .consents
            .find_party(PartyRef::Id(self.doctor))
            .await
            .unwrap()
            .unwrap();
        Consent {
            id: ConsentId::random(),
            patient_id: self.patient,
            patient_address: patient.address,
            doctor_id: self.doctor,
            doctor_address: doctor.address,
            access: Access::Read,
            scope,
            purpose: Some("follow-up".into()),
            expires_at: expires_in.map(at),
            created_at: at(0),
            revoked_at: None,
            grant_signature: ConsentSignature::from_bytes([7; 65]),
            grant_anchor: meditrustal_ledger::AnchorState::pending(),
            revocation_anchor: None,
        }
    }

    async fn insert(&self, consent: &Consent) {
        let job = LedgerJob::GrantConsent(SignedGrant {
            terms: GrantTerms {
                consent_id: consent.id.0,
                patient: consent.patient_address,
                grantee: consent.doctor_address,
                access: ChainAccess::Read,
                scope_hash: consent.scope_hash(),
                expires_at: 0,
            },
            signature: consent.grant_signature,
        });
        self.consents.insert_consent(consent, &job).await.unwrap();
    }

    async fn revoke(&self, consent: &Consent) -> Result<(), ConsentStoreError> {
        let signature = ConsentSignature::from_bytes([8; 65]);
        let job = LedgerJob::RevokeConsent(SignedRevocation {
            terms: RevokeTerms {
                consent_id: consent.id.0,
                patient: consent.patient_address,
            },
            signature,
        });
        self.consents
            .revoke_consent(consent.id, at(5), signature, &job)
            .await
    }
}

#[tokio::test]
async fn consent_round_trips_every_field() {
    let fixture = setup().await;
    let ids = vec![RecordId(Uuid::from_u128(1)), RecordId(Uuid::from_u128(2))];
    let consent = fixture.consent(ConsentScope::Records(ids), Some(60)).await;

    fixture.insert(&consent).await;
    let found = fixture.consents.find_consent(consent.id).await.unwrap();
    let given = fixture
        .consents
        .list_consents(ConsentParty::Patient(fixture.patient))
        .await
        .unwrap();
    let received = fixture
        .consents
        .list_consents(ConsentParty::Doctor(fixture.doctor))
        .await
        .unwrap();

    assert_eq!(found, Some(consent.clone()));
    assert_eq!(given, vec![consent.clone()]);
    assert_eq!(received, vec![consent]);
}

#[tokio::test]
async fn access_grants_skip_revoked_and_expired_consents() {
    let fixture = setup().await;
    let lasting = fixture.consent(ConsentScope::AllRecords, None).await;
    let expiring = fixture
        .consent(
            ConsentScope::RecordTypes(vec![RecordType::Imaging]),
            Some(60),
        )
        .await;
    let revoked = fixture.consent(ConsentScope::AllRecords, None).await;
    for consent in [&lasting, &expiring, &revoked] {
        fixture.insert(consent).await;
    }
    fixture.revoke(&revoked).await.unwrap();

    let before_expiry = fixture
        .consents
        .access_grants(fixture.patient, fixture.doctor, at(59))
        .await
        .unwrap();
    let at_expiry = fixture
        .consents
        .access_grants(fixture.patient, fixture.doctor, at(60))
        .await
        .unwrap();
    let other_doctor = fixture
        .consents
        .access_grants(fixture.patient, fixture.patient, at(0))
        .await
        .unwrap();

    let ids = |grants: &meditrustal_records::AccessGrants| {
        let mut ids: Vec<ConsentId> = grants.consents.iter().map(|consent| consent.id).collect();
        ids.sort();
        ids
    };
    let mut expected = vec![lasting.id, expiring.id];
    expected.sort();
    assert_eq!(ids(&before_expiry), expected);
    assert_eq!(ids(&at_expiry), vec![lasting.id]);
    assert!(other_doctor.consents.is_empty());
}

#[tokio::test]
async fn second_revocation_writes_nothing() {
    let fixture = setup().await;
    let consent = fixture.consent(ConsentScope::AllRecords, None).await;
    fixture.insert(&consent).await;

    let first = fixture.revoke(&consent).await;
    let second = fixture.revoke(&consent).await;

    assert_eq!(first, Ok(()));
    assert_eq!(second, Err(ConsentStoreError::AlreadyRevoked));
    let mut conn = fixture.db.connect().unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS count FROM outbox_jobs WHERE kind = 'revoke_consent'"
        ),
        1
    );
    let stored = fixture
        .consents
        .find_consent(consent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_at, Some(at(5)));
    assert_eq!(
        stored.revocation_anchor.map(|anchor| anchor.status),
        Some(AnchorStatus::Pending)
    );
}

#[tokio::test]
async fn completed_jobs_anchor_grant_and_revocation_separately() {
    let fixture = setup().await;
    let consent = fixture.consent(ConsentScope::AllRecords, None).await;
    fixture.insert(&consent).await;
    fixture.revoke(&consent).await.unwrap();
    let outbox = PgOutboxStore::new(fixture.db.pool().clone());

    let claimed = outbox.claim_due(10, Duration::from_secs(60)).await.unwrap();
    let kinds: Vec<&str> = claimed.iter().map(|job| job.job.kind()).collect();
    assert!(
        kinds.contains(&"grant_consent") && kinds.contains(&"revoke_consent"),
        "{kinds:?}"
    );
    for (job, block) in claimed
        .iter()
        .filter(|job| job.job.kind() != "register_user")
        .zip([11, 12])
    {
        let anchor = ChainAnchor {
            tx_hash: sha256(job.job.kind().as_bytes()),
            block_number: block,
        };
        outbox.complete(job.id, anchor).await.unwrap();
    }

    let stored = fixture
        .consents
        .find_consent(consent.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.grant_anchor.status, AnchorStatus::Anchored);
    assert_eq!(stored.grant_anchor.tx_hash, Some(sha256(b"grant_consent")));
    assert_eq!(stored.grant_anchor.block_number, Some(11));
    let revocation = stored.revocation_anchor.unwrap();
    assert_eq!(revocation.status, AnchorStatus::Anchored);
    assert_eq!(revocation.tx_hash, Some(sha256(b"revoke_consent")));
    assert_eq!(revocation.block_number, Some(12));
}

#[tokio::test]
async fn owned_records_and_key_lookup() {
    let fixture = setup().await;
    let mine = stored_record(fixture.patient, RecordType::LabResult, at(0));
    fixture
        .records
        .insert(&mine, &anchor_job(&mine.record))
        .await
        .unwrap();
    let foreign = RecordId(Uuid::from_u128(99));

    let owned = fixture
        .consents
        .owned_records(fixture.patient, &[mine.record.id, foreign])
        .await
        .unwrap();
    let of_doctor = fixture
        .consents
        .owned_records(fixture.doctor, &[mine.record.id])
        .await
        .unwrap();
    let key = fixture
        .consents
        .find_signing_key(fixture.patient)
        .await
        .unwrap();
    let by_address = fixture
        .consents
        .find_party(PartyRef::Address(
            fixture
                .consents
                .find_party(PartyRef::Id(fixture.doctor))
                .await
                .unwrap()
                .unwrap()
                .address,
        ))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(owned, vec![mine.record.id]);
    assert!(of_doctor.is_empty());
    assert_eq!(key, Some(sealed(1)));
    assert_eq!(by_address.id, fixture.doctor);
    assert_eq!(by_address.role, Role::Doctor);
}

#[tokio::test]
async fn record_filter_matches_types_or_ids() {
    let fixture = setup().await;
    let mut inserted = Vec::new();
    for (i, kind) in [
        RecordType::LabResult,
        RecordType::Imaging,
        RecordType::LabResult,
    ]
    .into_iter()
    .enumerate()
    {
        let stored = stored_record(fixture.patient, kind, at(i as i64));
        fixture
            .records
            .insert(&stored, &anchor_job(&stored.record))
            .await
            .unwrap();
        inserted.push(stored.record.id);
    }
    let query = |within| meditrustal_records::ListQuery {
        patient_id: fixture.patient,
        record_type: None,
        within: Some(within),
        limit: 10,
        after: None,
    };

    let by_type_or_id = fixture
        .records
        .list(&query(RecordFilter {
            record_types: vec![RecordType::Imaging],
            record_ids: vec![inserted[0]],
        }))
        .await
        .unwrap();
    let nothing = fixture
        .records
        .list(&query(RecordFilter::default()))
        .await
        .unwrap();

    let ids: Vec<RecordId> = by_type_or_id.iter().map(|record| record.id).collect();
    assert_eq!(ids, vec![inserted[1], inserted[0]]);
    assert!(nothing.is_empty());
}

#[tokio::test]
async fn break_glass_is_active_only_until_it_ends() {
    let fixture = setup().await;
    let event = BreakGlass {
        id: Uuid::new_v4(),
        doctor_id: fixture.doctor,
        patient_id: fixture.patient,
        reason: "anaphylaxis".into(),
        created_at: at(0),
        expires_at: at(0) + TimeDelta::seconds(900),
    };

    fixture.consents.insert_break_glass(&event).await.unwrap();
    let during = fixture
        .consents
        .access_grants(fixture.patient, fixture.doctor, at(899))
        .await
        .unwrap();
    let after = fixture
        .consents
        .access_grants(fixture.patient, fixture.doctor, at(900))
        .await
        .unwrap();
    let listed = fixture
        .consents
        .list_break_glass(BreakGlassFilter::Patient(fixture.patient), 10, 0)
        .await
        .unwrap();
    let of_other = fixture
        .consents
        .list_break_glass(BreakGlassFilter::Doctor(fixture.patient), 10, 0)
        .await
        .unwrap();

    assert_eq!(during.break_glass, Some(event.clone()));
    assert_eq!(after.break_glass, None);
    assert_eq!(listed, vec![event]);
    assert!(of_other.is_empty());
}
