use std::time::Duration;

use meditrustal_adapter_postgres::{
    PgOutboxStore, PgRecordStore, PgSignerLock, PgUserStore, PgWatchStore, TestDatabase,
    SIGNER_LOCK_KEY,
};
use meditrustal_crypto::sha256;
use meditrustal_identity::UserStore;
use meditrustal_ledger::{
    AnchoredJob, BlockRef, ChainAnchor, ChainEvent, EntryKey, OutboxStore, SignerLock, WatchStore,
};
use meditrustal_records::{RecordId, RecordStore, RecordType};

use crate::support::{anchor_job, at, count, jobs, new_user, record_chain_state, stored_record};

struct Fixture {
    db: TestDatabase,
    outbox: PgOutboxStore,
    watch: PgWatchStore,
    record: RecordId,
    job: AnchoredJob,
}

/// Creates a database with one patient and one record whose anchor job is
/// done in block 7.
async fn anchored_record() -> Fixture {
    let db = TestDatabase::create().await.unwrap();
    let patient = new_user("patient", "patient@example.org");
    PgUserStore::new(db.pool().clone())
        .insert(&patient)
        .await
        .unwrap();
    let stored = stored_record(patient.user.id, RecordType::Diagnosis, at(0));
    let job = anchor_job(&stored.record);
    PgRecordStore::new(db.pool().clone())
        .insert(&stored, &job)
        .await
        .unwrap();
    let job_id = jobs(&mut db.connect().unwrap()).last().unwrap().id;
    let outbox = PgOutboxStore::new(db.pool().clone());
    let tx_hash = sha256(b"tx");
    outbox
        .complete(
            job_id,
            ChainAnchor {
                tx_hash,
                block_number: 7,
            },
        )
        .await
        .unwrap();
    Fixture {
        watch: PgWatchStore::new(db.pool().clone(), "31337:test"),
        outbox,
        db,
        record: stored.record.id,
        job: AnchoredJob {
            job_id,
            entry: job.entry_key(),
            tx_hash,
            block_number: 7,
        },
    }
}

fn event(name: &[u8], block: u64, log_index: u64) -> ChainEvent {
    ChainEvent {
        entry: EntryKey {
            kind: "anchor_record".into(),
            key: sha256(name),
        },
        tx_hash: sha256(b"stranger tx"),
        block: BlockRef {
            number: block,
            hash: sha256(format!("block {block}").as_bytes()),
        },
        log_index,
    }
}

#[tokio::test]
async fn anchored_jobs_are_read_by_block_with_their_entry() {
    let fixture = anchored_record().await;

    let in_range = fixture.watch.anchored_jobs(7, 7).await.unwrap();
    let before = fixture.watch.anchored_jobs(1, 6).await.unwrap();
    let above_six = fixture.watch.anchored_above(6).await.unwrap();
    let above_seven = fixture.watch.anchored_above(7).await.unwrap();

    assert_eq!(in_range, vec![fixture.job.clone()]);
    assert_eq!(before, vec![]);
    assert_eq!(above_six, vec![fixture.job.clone()]);
    assert_eq!(above_seven, vec![]);
}

#[tokio::test]
async fn reanchor_reopens_job_and_record_once() {
    let fixture = anchored_record().await;

    let reopened = fixture
        .watch
        .reanchor(fixture.job.clone(), "gone".into())
        .await
        .unwrap();
    let again = fixture
        .watch
        .reanchor(fixture.job.clone(), "gone".into())
        .await
        .unwrap();

    assert!(reopened);
    assert!(!again);
    let mut conn = fixture.db.connect().unwrap();
    let state = record_chain_state(&mut conn, fixture.record);
    assert_eq!(state.status, "pending");
    assert_eq!(state.tx_hash, None);
    assert_eq!(state.block_number, None);
    assert_eq!(state.at, None);
    let job = jobs(&mut conn)
        .into_iter()
        .find(|row| row.id == fixture.job.job_id)
        .unwrap();
    assert_eq!(job.status, "pending");
    assert_eq!(job.tx_hash, None);
    assert_eq!(job.last_error.as_deref(), Some("re-anchoring: gone"));
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM outbox_jobs WHERE reanchor_count = 1 AND block_number IS NULL"
        ),
        1
    );
    let claimed = fixture
        .outbox
        .claim_due(10, Duration::from_secs(60))
        .await
        .unwrap();
    let reclaimed = claimed
        .iter()
        .find(|job| job.id == fixture.job.job_id)
        .unwrap();
    assert_eq!(reclaimed.submitted_tx, None);
    assert_eq!(reclaimed.job.entry_key(), fixture.job.entry);
}

#[tokio::test]
async fn reanchor_leaves_a_job_that_changed_since_it_was_read() {
    let fixture = anchored_record().await;
    let mut stale = fixture.job.clone();
    stale.tx_hash = sha256(b"an older transaction");

    let reopened = fixture.watch.reanchor(stale, "gone".into()).await.unwrap();

    assert!(!reopened);
    let state = record_chain_state(&mut fixture.db.connect().unwrap(), fixture.record);
    assert_eq!(state.status, "anchored");
}

#[tokio::test]
async fn move_anchor_follows_the_chain() {
    let fixture = anchored_record().await;
    let found = ChainAnchor {
        tx_hash: sha256(b"the resend"),
        block_number: 9,
    };

    fixture
        .watch
        .move_anchor(fixture.job.clone(), found)
        .await
        .unwrap();

    let state = record_chain_state(&mut fixture.db.connect().unwrap(), fixture.record);
    assert_eq!(state.status, "anchored");
    assert_eq!(state.tx_hash, Some(found.tx_hash.as_bytes().to_vec()));
    assert_eq!(state.block_number, Some(9));
    let moved = fixture.watch.anchored_jobs(9, 9).await.unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].tx_hash, found.tx_hash);
}

#[tokio::test]
async fn known_entries_match_kind_and_key() {
    let fixture = anchored_record().await;
    let mut other_kind = fixture.job.entry.clone();
    other_kind.kind = "anchor_audit_head".into();
    let unknown = event(b"unknown", 3, 0).entry;

    let known = fixture
        .watch
        .known_entries(vec![fixture.job.entry.clone(), other_kind, unknown])
        .await
        .unwrap();

    assert_eq!(known, vec![fixture.job.entry.clone()]);
}

#[tokio::test]
async fn progress_is_stored_and_rewind_forgets_later_events() {
    let fixture = anchored_record().await;
    let block = BlockRef {
        number: 12,
        hash: sha256(b"block 12"),
    };
    assert_eq!(fixture.watch.progress().await.unwrap(), None);

    fixture.watch.save_progress(block).await.unwrap();
    let early = event(b"early", 3, 0);
    let late = event(b"late", 11, 1);
    fixture
        .watch
        .report_unmatched(vec![early.clone(), late.clone()])
        .await
        .unwrap();
    fixture
        .watch
        .report_unmatched(vec![late.clone()])
        .await
        .unwrap();

    assert_eq!(fixture.watch.progress().await.unwrap(), Some(block));
    let other = PgWatchStore::new(fixture.db.pool().clone(), "another deployment");
    assert_eq!(other.progress().await.unwrap(), None);
    let recorded: Vec<ChainEvent> = fixture
        .watch
        .unmatched_events()
        .await
        .unwrap()
        .into_iter()
        .map(|unmatched| unmatched.event)
        .collect();
    assert_eq!(recorded, vec![early.clone(), late]);

    fixture.watch.rewind(5).await.unwrap();

    assert_eq!(fixture.watch.progress().await.unwrap(), None);
    let kept: Vec<ChainEvent> = fixture
        .watch
        .unmatched_events()
        .await
        .unwrap()
        .into_iter()
        .map(|unmatched| unmatched.event)
        .collect();
    assert_eq!(kept, vec![early]);
}

#[tokio::test]
async fn signer_lock_has_one_holder_until_its_session_ends() {
    let db = TestDatabase::create().await.unwrap();
    let first = PgSignerLock::new(db.url().clone());
    let second = PgSignerLock::new(db.url().clone());

    assert!(first.try_acquire().await.unwrap());
    assert!(first.try_acquire().await.unwrap());
    assert!(!second.try_acquire().await.unwrap());
    assert!(first.is_held().await.unwrap());
    assert!(!second.is_held().await.unwrap());

    // The holder's session dies, as when its process is killed. Only the
    // signer lock in this test's database is matched.
    let mut conn = db.connect().unwrap();
    let terminated = count(
        &mut conn,
        &format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) AS ended FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((classid::bigint << 32) | objid::bigint) = {SIGNER_LOCK_KEY}) AS ended \
             WHERE ended.ended"
        ),
    );
    assert_eq!(terminated, 1);

    assert!(!first.is_held().await.unwrap());
    let mut taken = false;
    for _ in 0..50 {
        if second.try_acquire().await.unwrap() {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        taken,
        "the second lock was not taken after the holder's session ended"
    );
    assert!(!first.try_acquire().await.unwrap());
}
