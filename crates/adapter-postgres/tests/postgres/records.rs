use std::cmp::Reverse;

use meditrustal_adapter_postgres::{PgRecordStore, PgUserStore, TestDatabase};
use meditrustal_crypto::sha256;
use meditrustal_identity::{UserId, UserStore};
use meditrustal_ledger::{AnchorState, AnchorStatus, LedgerJob, UserRegistration};
use meditrustal_records::{
    Cursor, ListQuery, RecordId, RecordStore, RecordStoreError, RecordType, StoredRecord,
};

use crate::support::{anchor_job, at, count, jobs, new_user, stored_record};

struct Fixture {
    db: TestDatabase,
    records: PgRecordStore,
    patient: UserId,
}

/// Creates a database with one patient.
async fn setup() -> Fixture {
    let db = TestDatabase::create().await.unwrap();
    let patient = new_user("patient", "patient@example.org");
    PgUserStore::new(db.pool().clone())
        .insert(&patient)
        .await
        .unwrap();
    let records = PgRecordStore::new(db.pool().clone());
    Fixture {
        db,
        records,
        patient: patient.user.id,
    }
}

async fn insert(fixture: &Fixture, stored: &StoredRecord) {
    fixture
        .records
        .insert(stored, &anchor_job(&stored.record))
        .await
        .unwrap();
}

#[tokio::test]
async fn pending_record_round_trips_every_field() {
    let fixture = setup().await;
    let stored = stored_record(fixture.patient, RecordType::LabResult, at(10));

    insert(&fixture, &stored).await;
    let found = fixture.records.find(stored.record.id).await.unwrap();

    assert_eq!(found, Some(stored));
}

#[tokio::test]
async fn anchored_record_round_trips_every_field() {
    let fixture = setup().await;
    let mut stored = stored_record(fixture.patient, RecordType::Imaging, at(10));
    stored.record.metadata_json = None;
    stored.record.anchor = AnchorState {
        status: AnchorStatus::Anchored,
        tx_hash: Some(sha256(b"tx")),
        block_number: Some(i64::MAX as u64),
        anchored_at: Some(at(20)),
    };
    stored.sealed.ciphertext = (0..=255).collect();

    insert(&fixture, &stored).await;
    let found = fixture.records.find(stored.record.id).await.unwrap();

    assert_eq!(found, Some(stored));
}

#[tokio::test]
async fn unknown_record_is_not_found() {
    let fixture = setup().await;

    let found = fixture.records.find(RecordId::random()).await.unwrap();

    assert_eq!(found, None);
}

#[tokio::test]
async fn insert_writes_anchor_job_for_the_record() {
    let fixture = setup().await;
    let stored = stored_record(fixture.patient, RecordType::Diagnosis, at(10));

    insert(&fixture, &stored).await;

    let mut conn = fixture.db.connect().unwrap();
    let rows = jobs(&mut conn);
    let record_jobs: Vec<_> = rows
        .iter()
        .filter(|row| row.kind == "anchor_record")
        .collect();
    assert_eq!(record_jobs.len(), 1);
    assert_eq!(record_jobs[0].record_id, Some(stored.record.id.0));
    assert_eq!(record_jobs[0].user_id, None);
    assert_eq!(record_jobs[0].status, "pending");
    assert_eq!(
        serde_json::from_value::<LedgerJob>(record_jobs[0].payload.clone()).unwrap(),
        anchor_job(&stored.record)
    );
}

#[tokio::test]
async fn record_of_unknown_patient_is_rejected() {
    let fixture = setup().await;
    let stored = stored_record(UserId::random(), RecordType::Diagnosis, at(10));

    let result = fixture
        .records
        .insert(&stored, &anchor_job(&stored.record))
        .await;

    assert_eq!(result, Err(RecordStoreError::UnknownPatient));
    let mut conn = fixture.db.connect().unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM medical_records"), 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM outbox_jobs WHERE kind = 'anchor_record'"
        ),
        0
    );
}

#[tokio::test]
async fn failing_job_insert_leaves_no_record() {
    let fixture = setup().await;
    let stored = stored_record(fixture.patient, RecordType::Diagnosis, at(10));
    // A registration job may not point at a record: the outbox check
    // constraint rejects it after the record row was written.
    let wrong_job = LedgerJob::RegisterUser(UserRegistration {
        user_id: fixture.patient.0,
        did: "did:meditrustal:x".into(),
        address: meditrustal_ledger::Address::from_bytes([1; 20]),
        role: meditrustal_ledger::ChainRole::Patient,
    });

    let result = fixture.records.insert(&stored, &wrong_job).await;

    assert!(
        matches!(result, Err(RecordStoreError::Unavailable(_))),
        "{result:?}"
    );
    let mut conn = fixture.db.connect().unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM medical_records"), 0);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM outbox_jobs WHERE kind = 'anchor_record'"
        ),
        0
    );
}

#[tokio::test]
async fn record_id_inserted_twice_is_rejected() {
    let fixture = setup().await;
    let stored = stored_record(fixture.patient, RecordType::Diagnosis, at(10));
    insert(&fixture, &stored).await;
    let mut again = stored.clone();
    again.record.anchor_hash = sha256(b"another anchor");

    let result = fixture
        .records
        .insert(&again, &anchor_job(&again.record))
        .await;

    assert_eq!(result, Err(RecordStoreError::AlreadyExists));
    let mut conn = fixture.db.connect().unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM outbox_jobs WHERE kind = 'anchor_record'"
        ),
        1
    );
}

/// Inserts 25 records: every third shares its `created_at` with the one
/// before, to exercise the id tie-break. Returns them newest first.
async fn insert_25(fixture: &Fixture) -> Vec<StoredRecord> {
    let mut all = Vec::new();
    for i in 0..25 {
        let record_type = if i % 2 == 0 {
            RecordType::LabResult
        } else {
            RecordType::Prescription
        };
        let second = i - i64::from(i % 3 == 2);
        let stored = stored_record(fixture.patient, record_type, at(second));
        insert(fixture, &stored).await;
        all.push(stored);
    }
    all.sort_by_key(|stored| Reverse((stored.record.created_at, stored.record.id)));
    all
}

fn ids(records: impl IntoIterator<Item = RecordId>) -> Vec<RecordId> {
    records.into_iter().collect()
}

#[tokio::test]
async fn list_pages_newest_first_with_cursor() {
    let fixture = setup().await;
    let expected = ids(insert_25(&fixture)
        .await
        .iter()
        .map(|stored| stored.record.id));

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let query = ListQuery {
            patient_id: fixture.patient,
            record_type: None,
            within: None,
            limit: 10,
            after,
        };
        let page = fixture.records.list(&query).await.unwrap();
        after = page.last().map(|last| Cursor {
            created_at: last.created_at,
            id: last.id,
        });
        let done = page.len() < 10;
        pages.push(ids(page.iter().map(|record| record.id)));
        if done {
            break;
        }
    }

    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0], expected[0..10]);
    assert_eq!(pages[1], expected[10..20]);
    assert_eq!(pages[2], expected[20..25]);
}

#[tokio::test]
async fn list_returns_records_without_their_content() {
    let fixture = setup().await;
    let stored = stored_record(fixture.patient, RecordType::VitalSigns, at(5));
    insert(&fixture, &stored).await;

    let query = ListQuery {
        patient_id: fixture.patient,
        record_type: None,
        within: None,
        limit: 10,
        after: None,
    };
    let page = fixture.records.list(&query).await.unwrap();

    assert_eq!(page, vec![stored.record]);
}

#[tokio::test]
async fn list_filters_by_type_across_pages() {
    let fixture = setup().await;
    let expected = ids(insert_25(&fixture)
        .await
        .iter()
        .filter(|stored| stored.record.record_type == RecordType::Prescription)
        .map(|stored| stored.record.id));
    assert_eq!(expected.len(), 12);

    let first = ListQuery {
        patient_id: fixture.patient,
        record_type: Some(RecordType::Prescription),
        within: None,
        limit: 10,
        after: None,
    };
    let page_one = fixture.records.list(&first).await.unwrap();
    let last = page_one.last().unwrap();
    let second = ListQuery {
        after: Some(Cursor {
            created_at: last.created_at,
            id: last.id,
        }),
        ..first
    };
    let page_two = fixture.records.list(&second).await.unwrap();

    assert_eq!(
        ids(page_one.iter().map(|record| record.id)),
        expected[0..10]
    );
    assert_eq!(
        ids(page_two.iter().map(|record| record.id)),
        expected[10..12]
    );
}

#[tokio::test]
async fn list_excludes_other_patients_records() {
    let fixture = setup().await;
    let other = new_user("other", "other@example.org");
    PgUserStore::new(fixture.db.pool().clone())
        .insert(&other)
        .await
        .unwrap();
    let own = stored_record(fixture.patient, RecordType::Diagnosis, at(1));
    let foreign = stored_record(other.user.id, RecordType::Diagnosis, at(2));
    insert(&fixture, &own).await;
    insert(&fixture, &foreign).await;

    let query = ListQuery {
        patient_id: fixture.patient,
        record_type: None,
        within: None,
        limit: 10,
        after: None,
    };
    let page = fixture.records.list(&query).await.unwrap();

    assert_eq!(
        ids(page.iter().map(|record| record.id)),
        vec![own.record.id]
    );
}
