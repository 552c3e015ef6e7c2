use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use diesel::RunQueryDsl;
use meditrustal_adapter_postgres::{PgOutboxStore, PgRecordStore, PgUserStore, TestDatabase};
use meditrustal_crypto::sha256;
use meditrustal_identity::{UserId, UserStore};
use meditrustal_ledger::{AnchorStatus, ChainAnchor, OutboxStore};
use meditrustal_records::{RecordId, RecordStore, RecordType};

use crate::support::{
    anchor_job, at, jobs, new_user, record_chain_state, stored_record, user_chain_state,
};

const LEASE: Duration = Duration::from_secs(60);

struct Fixture {
    db: TestDatabase,
    outbox: PgOutboxStore,
    records: PgRecordStore,
    patient: UserId,
    /// Outbox id of the patient's registration job.
    user_job: i64,
}

/// Creates a database with one patient and its registration job.
async fn setup() -> Fixture {
    let db = TestDatabase::create().await.unwrap();
    let patient = new_user("patient", "patient@example.org");
    PgUserStore::new(db.pool().clone())
        .insert(&patient)
        .await
        .unwrap();
    let user_job = jobs(&mut db.connect().unwrap())[0].id;
    Fixture {
        outbox: PgOutboxStore::new(db.pool().clone()),
        records: PgRecordStore::new(db.pool().clone()),
        db,
        patient: patient.user.id,
        user_job,
    }
}

/// Inserts `n` records and returns their ids and job ids, in insert order.
async fn insert_records(fixture: &Fixture, n: i64) -> Vec<(RecordId, i64)> {
    let mut inserted = Vec::new();
    for i in 0..n {
        let stored = stored_record(fixture.patient, RecordType::Diagnosis, at(i));
        fixture
            .records
            .insert(&stored, &anchor_job(&stored.record))
            .await
            .unwrap();
        let mut conn = fixture.db.connect().unwrap();
        let job_id = jobs(&mut conn).last().unwrap().id;
        inserted.push((stored.record.id, job_id));
    }
    inserted
}

fn job_ids(jobs: &[meditrustal_ledger::OutboxJob]) -> Vec<i64> {
    jobs.iter().map(|job| job.id).collect()
}

#[tokio::test]
async fn claim_leases_due_jobs_oldest_first() {
    let fixture = setup().await;
    let records = insert_records(&fixture, 2).await;
    let before = Utc::now();

    let claimed = fixture.outbox.claim_due(10, LEASE).await.unwrap();

    assert_eq!(
        job_ids(&claimed),
        vec![fixture.user_job, records[0].1, records[1].1]
    );
    assert_eq!(
        claimed[1].job,
        anchor_job(
            &fixture
                .records
                .find(records[0].0)
                .await
                .unwrap()
                .unwrap()
                .record
        )
    );
    assert_eq!(claimed[1].attempts, 0);
    assert_eq!(claimed[1].submitted_tx, None);
    let rows = jobs(&mut fixture.db.connect().unwrap());
    for row in &rows {
        let locked_until = row.locked_until.unwrap();
        assert!(
            locked_until >= before + LEASE - Duration::from_secs(5),
            "{row:?}"
        );
        assert!(locked_until <= Utc::now() + LEASE, "{row:?}");
    }
    assert_eq!(fixture.outbox.claim_due(10, LEASE).await.unwrap(), vec![]);
}

#[tokio::test]
async fn claim_takes_at_most_limit_jobs() {
    let fixture = setup().await;
    let records = insert_records(&fixture, 3).await;

    let first = fixture.outbox.claim_due(2, LEASE).await.unwrap();
    let second = fixture.outbox.claim_due(2, LEASE).await.unwrap();

    assert_eq!(job_ids(&first), vec![fixture.user_job, records[0].1]);
    assert_eq!(job_ids(&second), vec![records[1].1, records[2].1]);
}

#[tokio::test]
async fn job_is_claimed_again_after_its_lease_ends() {
    let fixture = setup().await;

    let first = fixture
        .outbox
        .claim_due(10, Duration::from_millis(200))
        .await
        .unwrap();
    let during_lease = fixture.outbox.claim_due(10, LEASE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_lease = fixture.outbox.claim_due(10, LEASE).await.unwrap();

    assert_eq!(job_ids(&first), vec![fixture.user_job]);
    assert_eq!(job_ids(&during_lease), Vec::<i64>::new());
    assert_eq!(job_ids(&after_lease), vec![fixture.user_job]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_never_take_the_same_job() {
    let fixture = setup().await;
    let records = insert_records(&fixture, 39).await;
    let mut all: Vec<i64> = records.iter().map(|(_, job)| *job).collect();
    all.push(fixture.user_job);
    all.sort_unstable();

    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let outbox = fixture.outbox.clone();
        workers.spawn(async move {
            let mut taken = Vec::new();
            // 40 jobs in batches of 3 need 14 rounds. The bound stops a
            // claimer that keeps getting the same jobs.
            for _ in 0..100 {
                let batch = outbox.claim_due(3, LEASE).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                taken.extend(job_ids(&batch));
            }
            taken
        });
    }
    let per_worker = workers.join_all().await;

    let mut taken: Vec<i64> = per_worker.iter().flatten().copied().collect();
    let distinct: HashSet<i64> = taken.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        taken.len(),
        "a job was claimed twice: {per_worker:?}"
    );
    taken.sort_unstable();
    assert_eq!(taken, all);
}

#[tokio::test]
async fn mark_sent_stores_tx_on_job_and_record() {
    let fixture = setup().await;
    let records = insert_records(&fixture, 1).await;
    let (record_id, job_id) = records[0];
    fixture.outbox.claim_due(10, LEASE).await.unwrap();
    let tx = sha256(b"tx");
    let check_at = at(-100);

    fixture
        .outbox
        .mark_sent(job_id, tx, check_at)
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.status, "sent");
    assert_eq!(row.tx_hash, Some(tx.as_bytes().to_vec()));
    assert_eq!(row.next_attempt_at, check_at);
    assert_eq!(row.locked_until, None);
    let state = record_chain_state(&mut conn, record_id);
    assert_eq!(state.status, "pending");
    assert_eq!(state.tx_hash, Some(tx.as_bytes().to_vec()));
    assert_eq!(state.block_number, None);

    let again = fixture.outbox.claim_due(10, LEASE).await.unwrap();
    assert_eq!(job_ids(&again), vec![job_id]);
    assert_eq!(again[0].submitted_tx, Some(tx));
}

#[tokio::test]
async fn complete_anchors_the_record() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];
    let anchor = ChainAnchor {
        tx_hash: sha256(b"tx"),
        block_number: 42,
    };
    let before = Utc::now();

    fixture.outbox.complete(job_id, anchor).await.unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.tx_hash, Some(anchor.tx_hash.as_bytes().to_vec()));
    let record = fixture
        .records
        .find(record_id)
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(record.anchor.status, AnchorStatus::Anchored);
    assert_eq!(record.anchor.tx_hash, Some(anchor.tx_hash));
    assert_eq!(record.anchor.block_number, Some(42));
    let anchored_at = record.anchor.anchored_at.unwrap();
    assert!(
        anchored_at >= before - Duration::from_secs(5),
        "{anchored_at}"
    );
    assert_eq!(record.updated_at, anchored_at);
    assert_eq!(fixture.outbox.pending_jobs().await.unwrap(), 1);
}

#[tokio::test]
async fn complete_registers_the_user() {
    let fixture = setup().await;
    let anchor = ChainAnchor {
        tx_hash: sha256(b"tx"),
        block_number: 7,
    };

    fixture
        .outbox
        .complete(fixture.user_job, anchor)
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let state = user_chain_state(&mut conn, fixture.patient);
    assert_eq!(state.status, "registered");
    assert_eq!(state.tx_hash, Some(anchor.tx_hash.as_bytes().to_vec()));
    assert_eq!(state.block_number, Some(7));
    assert!(state.at.is_some());
    assert_eq!(jobs(&mut conn)[0].status, "done");
}

#[tokio::test]
async fn reschedule_counts_attempt_and_keeps_sent_tx() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];
    let tx = sha256(b"tx");
    fixture.outbox.mark_sent(job_id, tx, at(0)).await.unwrap();

    fixture
        .outbox
        .reschedule(job_id, "chain unavailable: timeout", at(30), false)
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.attempts, 1);
    assert_eq!(
        row.last_error.as_deref(),
        Some("chain unavailable: timeout")
    );
    assert_eq!(row.next_attempt_at, at(30));
    assert_eq!(row.status, "sent");
    assert_eq!(row.tx_hash, Some(tx.as_bytes().to_vec()));
    assert_eq!(
        record_chain_state(&mut conn, record_id).tx_hash,
        Some(tx.as_bytes().to_vec())
    );
}

#[tokio::test]
async fn reschedule_with_forget_tx_clears_it_everywhere() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];
    fixture
        .outbox
        .mark_sent(job_id, sha256(b"tx"), at(0))
        .await
        .unwrap();
    fixture
        .outbox
        .reschedule(job_id, "first", at(10), false)
        .await
        .unwrap();

    fixture
        .outbox
        .reschedule(job_id, "second", at(20), true)
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error.as_deref(), Some("second"));
    assert_eq!(row.next_attempt_at, at(20));
    assert_eq!(row.status, "pending");
    assert_eq!(row.tx_hash, None);
    let state = record_chain_state(&mut conn, record_id);
    assert_eq!(state.status, "pending");
    assert_eq!(state.tx_hash, None);
}

#[tokio::test]
async fn rescheduled_job_is_not_due_before_retry_time() {
    let fixture = setup().await;
    let retry_at = Utc::now() + Duration::from_secs(3600);

    fixture
        .outbox
        .reschedule(fixture.user_job, "later", retry_at, true)
        .await
        .unwrap();

    assert_eq!(fixture.outbox.claim_due(10, LEASE).await.unwrap(), vec![]);
    assert_eq!(fixture.outbox.pending_jobs().await.unwrap(), 1);
}

#[tokio::test]
async fn fail_marks_job_and_record_failed() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];

    fixture.outbox.fail(job_id, "Unauthorized()").await.unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.status, "failed");
    assert_eq!(row.last_error.as_deref(), Some("Unauthorized()"));
    assert_eq!(row.locked_until, None);
    assert_eq!(record_chain_state(&mut conn, record_id).status, "failed");
    let record = fixture
        .records
        .find(record_id)
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(record.anchor.status, AnchorStatus::Failed);
}

#[tokio::test]
async fn fail_marks_user_registration_failed() {
    let fixture = setup().await;

    fixture
        .outbox
        .fail(fixture.user_job, "Unauthorized()")
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    assert_eq!(
        user_chain_state(&mut conn, fixture.patient).status,
        "failed"
    );
    assert_eq!(jobs(&mut conn)[0].status, "failed");
}

#[tokio::test]
async fn finished_job_ignores_late_updates() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];
    let anchor = ChainAnchor {
        tx_hash: sha256(b"tx"),
        block_number: 9,
    };
    fixture.outbox.complete(job_id, anchor).await.unwrap();

    fixture.outbox.fail(job_id, "late").await.unwrap();
    fixture
        .outbox
        .mark_sent(job_id, sha256(b"other"), at(0))
        .await
        .unwrap();
    fixture
        .outbox
        .reschedule(job_id, "late", at(0), true)
        .await
        .unwrap();

    let mut conn = fixture.db.connect().unwrap();
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.attempts, 0);
    assert_eq!(row.last_error, None);
    assert_eq!(row.tx_hash, Some(anchor.tx_hash.as_bytes().to_vec()));
    let state = record_chain_state(&mut conn, record_id);
    assert_eq!(state.status, "anchored");
    assert_eq!(state.tx_hash, Some(anchor.tx_hash.as_bytes().to_vec()));
    assert_eq!(state.block_number, Some(9));
}

#[tokio::test]
async fn undecodable_job_is_failed_instead_of_claimed() {
    let fixture = setup().await;
    let (record_id, job_id) = insert_records(&fixture, 1).await[0];
    let mut conn = fixture.db.connect().unwrap();
    diesel::sql_query(format!(
        "UPDATE outbox_jobs SET payload = '{{\"kind\": \"anchor_record\", \"record_id\": 5}}' WHERE id = {job_id}"
    ))
    .execute(&mut conn)
    .unwrap();

    let claimed = fixture.outbox.claim_due(10, LEASE).await.unwrap();

    assert_eq!(job_ids(&claimed), vec![fixture.user_job]);
    let row = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == job_id)
        .unwrap();
    assert_eq!(row.status, "failed");
    let error = row.last_error.unwrap();
    assert!(
        error.starts_with(&format!(
            "outbox_jobs row {job_id}: column payload is not a ledger job"
        )),
        "{error}"
    );
    assert_eq!(record_chain_state(&mut conn, record_id).status, "failed");
}

#[tokio::test]
async fn pending_jobs_counts_unfinished_jobs() {
    let fixture = setup().await;
    let records = insert_records(&fixture, 3).await;
    fixture
        .outbox
        .mark_sent(records[0].1, sha256(b"tx"), at(0))
        .await
        .unwrap();
    fixture
        .outbox
        .complete(
            records[1].1,
            ChainAnchor {
                tx_hash: sha256(b"tx"),
                block_number: 1,
            },
        )
        .await
        .unwrap();
    fixture.outbox.fail(records[2].1, "rejected").await.unwrap();

    let pending = fixture.outbox.pending_jobs().await.unwrap();

    // The user's registration job (pending) and records[0] (sent).
    assert_eq!(pending, 2);
}
