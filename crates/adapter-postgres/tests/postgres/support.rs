//! Fixtures and raw SQL helpers shared by the store tests.

use chrono::{DateTime, TimeZone, Utc};
use diesel::sql_types::{BigInt, Bytea, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{PgConnection, QueryableByName, RunQueryDsl};
use meditrustal_crypto::{sha256, KeyId, SealedData};
use meditrustal_identity::{Did, Email, NewUser, PasswordHash, Role, User, UserId, Username};
use meditrustal_ledger::{Address, AnchorState, LedgerJob, RecordAnchor};
use meditrustal_records::{MedicalRecord, RecordId, RecordType, StoredRecord};
use uuid::Uuid;

/// Returns a fixed past instant plus `seconds`, in whole microseconds like
/// the database.
pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_700_000_000_000_000 + seconds * 1_000_000)
        .unwrap()
}

/// Sealed data whose every byte derives from `seed`, so that a round trip
/// that swaps or truncates a field shows.
pub fn sealed(seed: u8) -> SealedData {
    SealedData {
        key_id: KeyId::new(format!("test-key-{seed}")),
        wrapped_key: (0..60).map(|i| seed.wrapping_add(i)).collect(),
        nonce: std::array::from_fn(|i| seed.wrapping_mul(3).wrapping_add(i as u8)),
        ciphertext: (0..80)
            .map(|i| seed.wrapping_mul(7).wrapping_add(i))
            .collect(),
    }
}

/// Builds a patient with a unique id and address.
pub fn new_user(username: &str, email: &str) -> NewUser {
    let id = UserId::random();
    let user = User {
        id,
        username: Username::parse(username).unwrap(),
        email: Email::parse(email).unwrap(),
        full_name: Some("Ada Example".into()),
        role: Role::Patient,
        did: Did::for_user(id),
        blockchain_address: Address::from_bytes(address_for(id.0)),
        is_active: true,
        created_at: at(0),
        updated_at: at(1),
    };
    NewUser {
        user,
        password_hash: PasswordHash("$2b$04$hash-for-tests".into()),
        sealed_key: sealed(1),
    }
}

/// Derives a unique address from the id's 16 bytes and 4 bytes of its hash.
fn address_for(id: Uuid) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(id.as_bytes());
    bytes[16..].copy_from_slice(&sha256(id.as_bytes()).as_bytes()[..4]);
    bytes
}

/// Builds a pending record of `patient`, with content and hashes derived
/// from its id.
pub fn stored_record(
    patient: UserId,
    record_type: RecordType,
    created_at: DateTime<Utc>,
) -> StoredRecord {
    let id = RecordId::random();
    let record = MedicalRecord {
        id,
        patient_id: patient,
        record_type,
        metadata_json: Some(format!("{{\"source\":\"{id}\"}}")),
        data_hash: sha256(format!("content of {id}").as_bytes()),
        anchor_hash: sha256(format!("anchor of {id}").as_bytes()),
        anchor: AnchorState::pending(),
        created_at,
        updated_at: created_at,
        salt: meditrustal_ledger::merkle::Salt::generate().unwrap(),
        batch: None,
    };
    StoredRecord {
        record,
        sealed: sealed(id.0.as_bytes()[0]),
    }
}

/// Builds the anchoring job the record service writes with `record`.
pub fn anchor_job(record: &MedicalRecord) -> LedgerJob {
    LedgerJob::AnchorRecord(RecordAnchor {
        record_id: record.id.0,
        anchor_hash: record.anchor_hash,
        patient_did: Did::for_user(record.patient_id).as_str().to_owned(),
        record_type: record.record_type.as_str().to_owned(),
        timestamp: u64::try_from(record.created_at.timestamp()).unwrap(),
    })
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Runs `SELECT count(*) ...` given as `sql`.
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .unwrap()
        .count
}

/// An `outbox_jobs` row as stored.
#[derive(QueryableByName, Debug)]
pub struct JobRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub record_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub user_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    pub next_attempt_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub locked_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub tx_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// Loads all outbox rows, by id.
pub fn jobs(conn: &mut PgConnection) -> Vec<JobRow> {
    diesel::sql_query(
        "SELECT id, kind, payload, record_id, user_id, status, attempts, next_attempt_at, \
         locked_until, tx_hash, last_error FROM outbox_jobs ORDER BY id",
    )
    .load(conn)
    .unwrap()
}

/// Chain state columns of a `users` or `medical_records` row.
#[derive(QueryableByName, Debug, PartialEq, Eq)]
pub struct ChainState {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Bytea>)]
    pub tx_hash: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub block_number: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub at: Option<DateTime<Utc>>,
}

pub fn record_chain_state(conn: &mut PgConnection, id: RecordId) -> ChainState {
    diesel::sql_query(
        "SELECT anchor_status AS status, anchor_tx_hash AS tx_hash, \
         anchor_block_number AS block_number, anchored_at AS at FROM medical_records WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id.0)
    .get_result(conn)
    .unwrap()
}

pub fn user_chain_state(conn: &mut PgConnection, id: UserId) -> ChainState {
    diesel::sql_query(
        "SELECT chain_status AS status, chain_tx_hash AS tx_hash, \
         chain_block_number AS block_number, chain_registered_at AS at FROM users WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id.0)
    .get_result(conn)
    .unwrap()
}

/// A `user_keys` row as stored.
#[derive(QueryableByName, Debug)]
pub struct UserKeyRow {
    #[diesel(sql_type = Text)]
    pub key_id: String,
    #[diesel(sql_type = Bytea)]
    pub wrapped_key: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    pub nonce: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    pub ciphertext: Vec<u8>,
}

pub fn user_key(conn: &mut PgConnection, id: UserId) -> UserKeyRow {
    diesel::sql_query(
        "SELECT key_id, wrapped_key, nonce, ciphertext FROM user_keys WHERE user_id = $1",
    )
    .bind::<SqlUuid, _>(id.0)
    .get_result(conn)
    .unwrap()
}
