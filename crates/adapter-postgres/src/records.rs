//! [`RecordStore`] over the `medical_records` table.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_crypto::Digest;
use meditrustal_crypto::{KeyId, SealedData};
use meditrustal_identity::UserId;
use meditrustal_ledger::merkle::{MerkleProof, Salt};
use meditrustal_ledger::{AnchorState, AnchorStatus, LedgerJob};
use meditrustal_records::{
    BatchPlacement, ListQuery, MedicalRecord, RecordId, RecordStore, RecordStoreError, RecordType,
    StoredRecord,
};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::outbox::{JobTarget, NewJobRow};
use crate::pool::Pool;
use crate::schema::{anchor_batches, medical_records};

/// PostgreSQL implementation of [`RecordStore`].
#[derive(Clone, Debug)]
pub struct PgRecordStore {
    pool: Pool,
}

impl PgRecordStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = medical_records)]
struct NewRecordRow {
    id: Uuid,
    patient_id: Uuid,
    record_type: &'static str,
    metadata_json: Option<String>,
    data_hash: Vec<u8>,
    anchor_hash: Vec<u8>,
    anchor_status: &'static str,
    anchor_tx_hash: Option<Vec<u8>>,
    anchor_block_number: Option<i64>,
    anchored_at: Option<DateTime<Utc>>,
    key_id: String,
    wrapped_key: Vec<u8>,
    data_nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    anchor_salt: Vec<u8>,
}

impl NewRecordRow {
    fn new(stored: &StoredRecord) -> Result<Self, QueryError> {
        let record = &stored.record;
        let anchor_block_number = record
            .anchor
            .block_number
            .map(convert::block_to_column)
            .transpose()?;
        Ok(Self {
            id: record.id.0,
            patient_id: record.patient_id.0,
            record_type: record.record_type.as_str(),
            metadata_json: record.metadata_json.clone(),
            data_hash: record.data_hash.as_bytes().to_vec(),
            anchor_hash: record.anchor_hash.as_bytes().to_vec(),
            anchor_status: record.anchor.status.as_str(),
            anchor_tx_hash: record.anchor.tx_hash.map(|hash| hash.as_bytes().to_vec()),
            anchor_block_number,
            anchored_at: record.anchor.anchored_at,
            key_id: stored.sealed.key_id.as_str().to_owned(),
            wrapped_key: stored.sealed.wrapped_key.clone(),
            data_nonce: stored.sealed.nonce.to_vec(),
            ciphertext: stored.sealed.ciphertext.clone(),
            created_at: record.created_at,
            updated_at: record.updated_at,
            anchor_salt: record.salt.as_bytes().to_vec(),
        })
    }
}

/// Metadata and anchoring columns: everything but the sealed content.
#[derive(Queryable, Selectable)]
#[diesel(table_name = medical_records, check_for_backend(diesel::pg::Pg))]
pub(crate) struct RecordRow {
    id: Uuid,
    patient_id: Uuid,
    record_type: String,
    metadata_json: Option<String>,
    data_hash: Vec<u8>,
    anchor_hash: Vec<u8>,
    anchor_status: String,
    anchor_tx_hash: Option<Vec<u8>>,
    anchor_block_number: Option<i64>,
    anchored_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    anchor_salt: Vec<u8>,
    anchor_batch_id: Option<i64>,
    anchor_leaf_index: Option<i32>,
    anchor_proof: Option<Vec<u8>>,
}

/// Root and leaf count of a record's batch, from a left join.
/// Root and leaf count of the record's batch, from a left join with
/// `anchor_batches`.
pub(crate) type BatchColumns = Option<(Vec<u8>, i32)>;

impl RecordRow {
    fn into_record(self, batch: BatchColumns) -> Result<MedicalRecord, QueryError> {
        let id = RecordId(self.id);
        let invalid =
            |column: &str, problem: &str| convert::invalid("medical_records", id, column, problem);

        let record_type = RecordType::parse(&self.record_type)
            .ok_or_else(|| invalid("record_type", "has an unknown value"))?;
        let status = AnchorStatus::parse(&self.anchor_status)
            .ok_or_else(|| invalid("anchor_status", "has an unknown value"))?;
        let block_number = self
            .anchor_block_number
            .map(|number| {
                u64::try_from(number).map_err(|_| invalid("anchor_block_number", "is negative"))
            })
            .transpose()?;
        let anchor = AnchorState {
            status,
            tx_hash: convert::optional_digest(
                self.anchor_tx_hash.as_deref(),
                "medical_records",
                id,
                "anchor_tx_hash",
            )?,
            block_number,
            anchored_at: self.anchored_at,
        };

        let salt: [u8; 32] = self
            .anchor_salt
            .as_slice()
            .try_into()
            .map_err(|_| invalid("anchor_salt", "is not 32 bytes"))?;
        let batch = match (
            self.anchor_batch_id,
            self.anchor_leaf_index,
            self.anchor_proof,
            batch,
        ) {
            (Some(batch_id), Some(index), Some(proof), Some((root, count))) => {
                Some(placement(id, batch_id, index, &proof, &root, count)?)
            }
            (None, None, None, _) => None,
            _ => {
                return Err(invalid(
                    "anchor_batch_id",
                    "names no complete batch placement",
                ))
            }
        };

        Ok(MedicalRecord {
            id,
            patient_id: UserId(self.patient_id),
            record_type,
            metadata_json: self.metadata_json,
            data_hash: convert::digest(&self.data_hash, "medical_records", id, "data_hash")?,
            anchor_hash: convert::digest(&self.anchor_hash, "medical_records", id, "anchor_hash")?,
            anchor,
            created_at: self.created_at,
            updated_at: self.updated_at,
            salt: Salt::from_bytes(salt),
            batch,
        })
    }
}

fn placement(
    id: RecordId,
    batch_id: i64,
    index: i32,
    proof: &[u8],
    root: &[u8],
    count: i32,
) -> Result<BatchPlacement, QueryError> {
    let invalid =
        |column: &str, problem: &str| convert::invalid("medical_records", id, column, problem);
    let siblings = proof
        .chunks(32)
        .map(Digest::from_slice)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("anchor_proof", "is not a list of 32-byte hashes"))?;
    Ok(BatchPlacement {
        batch_id,
        root: convert::digest(root, "anchor_batches", batch_id, "root")?,
        proof: MerkleProof {
            leaf_index: u64::try_from(index)
                .map_err(|_| invalid("anchor_leaf_index", "is negative"))?,
            leaf_count: u64::try_from(count).map_err(|_| {
                convert::invalid("anchor_batches", batch_id, "leaf_count", "is negative")
            })?,
            siblings,
        },
    })
}

/// A full row: metadata, anchoring state and sealed content.
#[derive(Queryable, Selectable)]
#[diesel(table_name = medical_records, check_for_backend(diesel::pg::Pg))]
pub(crate) struct StoredRecordRow {
    #[diesel(embed)]
    record: RecordRow,
    key_id: String,
    wrapped_key: Vec<u8>,
    data_nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl StoredRecordRow {
    pub(crate) fn id(&self) -> Uuid {
        self.record.id
    }

    pub(crate) fn into_stored(self, batch: BatchColumns) -> Result<StoredRecord, QueryError> {
        let id = RecordId(self.record.id);
        let nonce = self.data_nonce.as_slice().try_into().map_err(|_| {
            convert::invalid("medical_records", id, "data_nonce", "is not 12 bytes")
        })?;
        let sealed = SealedData {
            key_id: KeyId::new(self.key_id),
            wrapped_key: self.wrapped_key,
            nonce,
            ciphertext: self.ciphertext,
        };
        Ok(StoredRecord {
            record: self.record.into_record(batch)?,
            sealed,
        })
    }
}

/// Loads the batch columns of the records `ids`, for callers that lock
/// `medical_records` rows and so cannot outer-join `anchor_batches` in
/// the same `FOR UPDATE` query.
pub(crate) fn batch_columns_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> QueryResult<HashMap<Uuid, BatchColumns>> {
    let rows: Vec<(Uuid, BatchColumns)> = medical_records::table
        .left_join(anchor_batches::table)
        .filter(medical_records::id.eq_any(ids))
        .select((
            medical_records::id,
            (anchor_batches::root, anchor_batches::leaf_count).nullable(),
        ))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

impl PgRecordStore {
    /// Loads up to `limit` records with their sealed content in id order,
    /// starting after `after`, for operator checks over every record.
    /// Errors: [`RecordStoreError::Unavailable`].
    pub async fn stored_page(
        &self,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Vec<StoredRecord>, RecordStoreError> {
        let after = after.map_or(Uuid::nil(), |id| id.0);
        let stored = self
            .pool
            .run(move |conn| {
                let rows: Vec<(StoredRecordRow, BatchColumns)> = medical_records::table
                    .left_join(anchor_batches::table)
                    .filter(medical_records::id.gt(after))
                    .order(medical_records::id)
                    .limit(i64::from(limit))
                    .select((
                        StoredRecordRow::as_select(),
                        (anchor_batches::root, anchor_batches::leaf_count).nullable(),
                    ))
                    .load(conn)?;
                rows.into_iter()
                    .map(|(row, batch)| row.into_stored(batch))
                    .collect()
            })
            .await?;
        Ok(stored)
    }
}

#[async_trait]
impl RecordStore for PgRecordStore {
    async fn insert(&self, record: &StoredRecord, job: &LedgerJob) -> Result<(), RecordStoreError> {
        let record_row = NewRecordRow::new(record)?;
        let job_row = NewJobRow::new(job, JobTarget::Record(record.record.id.0))?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::insert_into(medical_records::table)
                        .values(&record_row)
                        .execute(conn)?;
                    job_row.insert(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn find(&self, id: RecordId) -> Result<Option<StoredRecord>, RecordStoreError> {
        let stored = self
            .pool
            .run(move |conn| {
                let row: Option<(StoredRecordRow, BatchColumns)> = medical_records::table
                    .left_join(anchor_batches::table)
                    .filter(medical_records::id.eq(id.0))
                    .select((
                        StoredRecordRow::as_select(),
                        (anchor_batches::root, anchor_batches::leaf_count).nullable(),
                    ))
                    .first(conn)
                    .optional()?;
                row.map(|(row, batch)| row.into_stored(batch)).transpose()
            })
            .await?;
        Ok(stored)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<MedicalRecord>, RecordStoreError> {
        let query = query.clone();
        let records = self
            .pool
            .run(move |conn| {
                let mut select = medical_records::table
                    .left_join(anchor_batches::table)
                    .filter(medical_records::patient_id.eq(query.patient_id.0))
                    .select((
                        RecordRow::as_select(),
                        (anchor_batches::root, anchor_batches::leaf_count).nullable(),
                    ))
                    .order((
                        medical_records::created_at.desc(),
                        medical_records::id.desc(),
                    ))
                    .limit(i64::from(query.limit))
                    .into_boxed();
                if let Some(record_type) = query.record_type {
                    select = select.filter(medical_records::record_type.eq(record_type.as_str()));
                }
                if let Some(within) = &query.within {
                    // `= ANY('{}')` is false, so an empty list matches nothing.
                    let types: Vec<&'static str> = within
                        .record_types
                        .iter()
                        .map(|kind| kind.as_str())
                        .collect();
                    let ids: Vec<Uuid> = within.record_ids.iter().map(|id| id.0).collect();
                    select = select.filter(
                        medical_records::record_type
                            .eq_any(types)
                            .or(medical_records::id.eq_any(ids)),
                    );
                }
                if let Some(cursor) = query.after {
                    // (created_at, id) < cursor, in descending order. The
                    // redundant `created_at <= ...` bounds the index scan.
                    select = select.filter(
                        medical_records::created_at.le(cursor.created_at).and(
                            medical_records::created_at
                                .lt(cursor.created_at)
                                .or(medical_records::id.lt(cursor.id.0)),
                        ),
                    );
                }
                let rows: Vec<(RecordRow, BatchColumns)> = select.load(conn)?;
                rows.into_iter()
                    .map(|(row, batch)| row.into_record(batch))
                    .collect()
            })
            .await?;
        Ok(records)
    }
}
