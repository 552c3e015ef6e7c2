use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use meditrustal_adapter_postgres::{
    PgAuditStore, PgOutboxStore, Pool, PoolConfig, TestDatabase, DEFAULT_SERVER_URL, SERVER_URL_ENV,
};
use meditrustal_audit::{
    Action, Actor, AuditEntry, AuditEvent, AuditStore, ChainVerifier, EventFilter, EventQuery,
    Outcome, ReasonCode, RequestId,
};
use meditrustal_crypto::sha256;
use meditrustal_identity::{Role, UserId};
use meditrustal_ledger::{AuditHeadAnchor, ChainAnchor, LedgerJob, OutboxStore};
use secrecy::SecretString;
use uuid::Uuid;

use crate::support::{count, jobs};

const LEASE: Duration = Duration::from_secs(60);

fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(n))
}

/// Builds an entry with every field set, derived from `n`.
fn entry(n: i64, patient: UserId) -> AuditEntry {
    let time = Utc.timestamp_micros(1_700_000_000_000_000 + n).unwrap();
    AuditEntry::new(Action::RecordRead, Outcome::Success, time)
        .by(Actor {
            user_id: user(100 + n as u128),
            role: Role::Doctor,
        })
        .patient(patient)
        .record(Uuid::from_u128(5000 + n as u128))
        .reason(ReasonCode::parse(&format!("consent:grant-{n}")).unwrap())
        .origin(
            RequestId::parse(&format!("req-{n}")),
            Some(format!("2001:db8::{n:x}").parse().unwrap()),
        )
}

/// Reads the whole stored chain in ascending order.
async fn stored_chain(store: &PgAuditStore) -> Vec<AuditEvent> {
    store.events_after(0, 100_000).await.unwrap()
}

fn verify(events: &[AuditEvent]) -> Result<u64, meditrustal_audit::ChainBreak> {
    let mut verifier = ChainVerifier::new(Vec::new());
    for event in events {
        verifier.check(event)?;
    }
    verifier.finish()
}

#[tokio::test]
async fn appended_events_round_trip_and_chain() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());
    let first: Vec<AuditEntry> = (1..=3).map(|n| entry(n, user(7))).collect();
    let anonymous = AuditEntry::new(
        Action::TokenRejected,
        Outcome::Denied,
        Utc.timestamp_micros(1_700_000_000_000_009).unwrap(),
    )
    .reason(ReasonCode::INVALID_TOKEN);

    let appended = store.append(&first).await.unwrap();
    let single = store
        .append(std::slice::from_ref(&anonymous))
        .await
        .unwrap();

    assert_eq!(
        appended.iter().map(|event| event.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].seq, 4);
    assert_eq!(single[0].prev_hash, appended[2].hash);
    let stored = stored_chain(&store).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[..3], appended[..]);
    assert_eq!(stored[3], single[0]);
    assert_eq!(stored[3].entry, anonymous);
    assert_eq!(stored[0].entry, first[0]);
    assert_eq!(verify(&stored), Ok(4));
    assert_eq!(store.head().await.unwrap(), Some(single[0].head()));
}

#[tokio::test]
async fn empty_store_has_no_head() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());

    assert_eq!(store.head().await.unwrap(), None);
    assert_eq!(store.latest_anchor_request().await.unwrap(), None);
    assert_eq!(stored_chain(&store).await, Vec::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_keep_one_linear_chain() {
    let db = TestDatabase::create().await.unwrap();
    let store = Arc::new(PgAuditStore::new(db.pool().clone()));

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            for n in 0..25 {
                store
                    .append(&[entry(task * 100 + n, user(task as u128))])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }

    let stored = stored_chain(&store).await;
    assert_eq!(stored.len(), 400);
    assert_eq!(
        stored.iter().map(|event| event.seq).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<u64>>()
    );
    let prev_hashes: HashSet<_> = stored.iter().map(|event| event.prev_hash).collect();
    assert_eq!(prev_hashes.len(), 400, "two events share a predecessor");
    assert_eq!(verify(&stored), Ok(400));
}

#[tokio::test]
async fn update_delete_and_truncate_are_rejected() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());
    store
        .append(&[entry(1, user(7)), entry(2, user(7))])
        .await
        .unwrap();
    let before = stored_chain(&store).await;
    let mut conn = db.connect().unwrap();

    for (statement, operation) in [
        (
            "UPDATE audit_events SET outcome = 'denied' WHERE seq = 1",
            "UPDATE",
        ),
        ("DELETE FROM audit_events WHERE seq = 2", "DELETE"),
        ("TRUNCATE audit_events", "TRUNCATE"),
    ] {
        let error = diesel::sql_query(statement).execute(&mut conn).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("audit_events is append-only: {operation} is not allowed"),
            "{statement}"
        );
    }
    assert_eq!(stored_chain(&store).await, before);
}

#[tokio::test]
async fn search_filters_and_pages_newest_first() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());
    let mut entries: Vec<AuditEntry> = (1..=6).map(|n| entry(n, user(7))).collect();
    entries[1].outcome = Outcome::Denied;
    entries[3].patient_id = Some(user(8));
    entries[4].action = Action::RecordVerify;
    store.append(&entries).await.unwrap();
    let query = |filter: EventFilter, before_seq: Option<u64>, limit: u32| EventQuery {
        filter,
        before_seq,
        limit,
    };
    let seqs = |events: Vec<AuditEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();

    let cases = [
        (
            query(EventFilter::default(), None, 10),
            vec![6, 5, 4, 3, 2, 1],
        ),
        (query(EventFilter::default(), Some(4), 2), vec![3, 2]),
        (
            query(
                EventFilter {
                    patient_id: Some(user(7)),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![6, 5, 3, 2, 1],
        ),
        (
            query(
                EventFilter {
                    actor_id: Some(user(103)),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![3],
        ),
        (
            query(
                EventFilter {
                    record_id: Some(Uuid::from_u128(5006)),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![6],
        ),
        (
            query(
                EventFilter {
                    action: Some(Action::RecordVerify),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![5],
        ),
        (
            query(
                EventFilter {
                    outcome: Some(Outcome::Denied),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![2],
        ),
        (
            query(
                EventFilter {
                    from: Some(entries[1].occurred_at),
                    to: Some(entries[4].occurred_at),
                    ..EventFilter::default()
                },
                None,
                10,
            ),
            vec![4, 3, 2],
        ),
    ];
    for (index, (query, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            seqs(store.search(&query).await.unwrap()),
            expected,
            "case {index}"
        );
    }
}

#[tokio::test]
async fn anchor_request_writes_row_and_job_once() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());
    let outbox = PgOutboxStore::new(db.pool().clone());
    let head = AuditHeadAnchor {
        seq: 3,
        head_hash: sha256(b"head 3"),
    };
    store
        .append(&[entry(1, user(7)), entry(2, user(7)), entry(3, user(7))])
        .await
        .unwrap();

    let first = store.request_anchor(&head).await.unwrap();
    let second = store.request_anchor(&head).await.unwrap();

    assert!(first);
    assert!(!second);
    assert_eq!(store.latest_anchor_request().await.unwrap(), Some(3));
    let mut conn = db.connect().unwrap();
    let rows = jobs(&mut conn);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, "anchor_audit_head");
    assert_eq!(rows[0].record_id, None);
    assert_eq!(rows[0].user_id, None);

    let claimed = outbox.claim_due(10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job, LedgerJob::AnchorAuditHead(head));
    let anchor = ChainAnchor {
        tx_hash: sha256(b"tx"),
        block_number: 42,
    };
    outbox.complete(claimed[0].id, anchor).await.unwrap();
    assert_eq!(
        count(
            &mut conn,
            &format!(
                "SELECT count(*) AS count FROM audit_anchors WHERE seq = 3 \
                 AND status = 'anchored' AND block_number = 42 AND anchored_at IS NOT NULL \
                 AND tx_hash = '\\x{}'::bytea",
                hex_digits(&anchor.tx_hash)
            )
        ),
        1
    );
}

#[tokio::test]
async fn failed_anchor_job_marks_its_row_failed() {
    let db = TestDatabase::create().await.unwrap();
    let store = PgAuditStore::new(db.pool().clone());
    let outbox = PgOutboxStore::new(db.pool().clone());
    let head = AuditHeadAnchor {
        seq: 1,
        head_hash: sha256(b"head 1"),
    };
    store.request_anchor(&head).await.unwrap();
    let claimed = outbox.claim_due(10, LEASE).await.unwrap();

    outbox
        .fail(
            claimed[0].id,
            "HeadAlreadyAnchored(1): the anchored head hash differs",
        )
        .await
        .unwrap();

    let mut conn = db.connect().unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS count FROM audit_anchors WHERE seq = 1 AND status = 'failed'"
        ),
        1
    );
}

fn hex_digits(digest: &meditrustal_crypto::Digest) -> String {
    digest.to_string().trim_start_matches("0x").to_owned()
}

/// A login role created for one test. It must be dropped after the test's
/// database, which stores its privileges, so declare it before the database.
struct AppRole {
    name: String,
}

impl AppRole {
    fn create() -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let name = format!("meditrustal_test_app_{}", &suffix[..12]);
        server_connection("postgres")
            .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
            .unwrap();
        Self { name }
    }

    /// Applies `scripts/grant-app-role.sql` for this role in `db`.
    fn grant(&self, db: &TestDatabase) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts/grant-app-role.sql");
        let grants = std::fs::read_to_string(script)
            .unwrap()
            .replace("meditrustal_app", &self.name);
        db.connect().unwrap().batch_execute(&grants).unwrap();
    }

    fn pool(&self, db: &TestDatabase) -> Pool {
        let url = format!("{}/{}", server_url_as(&self.name), db.name());
        Pool::new(&PoolConfig::new(SecretString::from(url))).unwrap()
    }
}

impl Drop for AppRole {
    fn drop(&mut self) {
        let mut admin = server_connection("postgres");
        let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
    }
}

fn server_url() -> String {
    std::env::var(SERVER_URL_ENV).unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// Returns the test server's URL with `role` as user and no password. The
/// server must trust local connections, as the test setup requires.
fn server_url_as(role: &str) -> String {
    let url = server_url();
    let rest = url.split_once('@').map_or(url.as_str(), |(_, host)| host);
    format!("postgres://{role}@{}", rest.trim_end_matches('/'))
}

fn server_connection(database: &str) -> PgConnection {
    PgConnection::establish(&format!(
        "{}/{database}",
        server_url().trim_end_matches('/')
    ))
    .unwrap()
}

#[tokio::test]
async fn app_role_appends_but_cannot_change_events() {
    let role = AppRole::create();
    let db = TestDatabase::create().await.unwrap();
    role.grant(&db);
    let pool = role.pool(&db);
    let store = PgAuditStore::new(pool.clone());

    store
        .append(&[entry(1, user(7)), entry(2, user(7))])
        .await
        .unwrap();
    let gaps = store.append_only_gaps().await.unwrap();
    let owner_gaps = PgAuditStore::new(db.pool().clone())
        .append_only_gaps()
        .await
        .unwrap();

    assert_eq!(gaps.role, role.name);
    assert_eq!(gaps.gaps, Vec::<String>::new());
    assert_eq!(owner_gaps.role, "postgres");
    assert_eq!(
        owner_gaps.gaps,
        vec![
            "it is a superuser and can disable the audit triggers",
            "it owns audit_events and can disable the audit triggers",
            "it holds UPDATE on audit_events",
            "it holds DELETE on audit_events",
            "it holds TRUNCATE on audit_events",
        ]
    );
    let mut conn =
        PgConnection::establish(&format!("{}/{}", server_url_as(&role.name), db.name())).unwrap();
    for statement in [
        "UPDATE audit_events SET outcome = 'denied'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
    ] {
        let error = diesel::sql_query(statement).execute(&mut conn).unwrap_err();
        assert!(
            error.to_string().starts_with("permission denied")
                || error.to_string().starts_with("must be owner"),
            "{statement}: {error}"
        );
    }
    assert_eq!(stored_chain(&store).await.len(), 2);
    pool.close();
}
