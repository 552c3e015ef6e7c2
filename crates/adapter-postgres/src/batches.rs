//! [`BatchStore`] over `outbox_jobs`, `medical_records` and
//! `anchor_batches`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bytea, Double, Integer, Nullable, Timestamptz, Uuid as SqlUuid,
};
use meditrustal_ledger::merkle::Salt;
use meditrustal_ledger::{
    BatchAnchor, BatchStore, BatchStoreError, LedgerJob, NewBatch, PendingAnchor, PendingSummary,
};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::outbox::{JobTarget, NewJobRow};
use crate::pool::Pool;

/// Record anchor jobs that wait for a batch: not finished, not leased, due.
const WAITING: &str = "kind = 'anchor_record' AND status = 'pending' \
     AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until <= now())";

/// PostgreSQL implementation of [`BatchStore`].
#[derive(Clone, Debug)]
pub struct PgBatchStore {
    pool: Pool,
}

impl PgBatchStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct SummaryRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ClaimedAnchorRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = SqlUuid)]
    record_id: Uuid,
    #[diesel(sql_type = Bytea)]
    anchor_hash: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    anchor_salt: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl ClaimedAnchorRow {
    fn into_anchor(self) -> Result<PendingAnchor, QueryError> {
        let salt: [u8; 32] = self.anchor_salt.as_slice().try_into().map_err(|_| {
            convert::invalid(
                "medical_records",
                self.record_id,
                "anchor_salt",
                "is not 32 bytes",
            )
        })?;
        Ok(PendingAnchor {
            job_id: self.id,
            record_id: self.record_id,
            anchor_hash: convert::digest(
                &self.anchor_hash,
                "medical_records",
                self.record_id,
                "anchor_hash",
            )?,
            salt: Salt::from_bytes(salt),
        })
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[async_trait]
impl BatchStore for PgBatchStore {
    async fn pending_anchors(&self) -> Result<PendingSummary, BatchStoreError> {
        let row = self
            .pool
            .run(|conn| {
                diesel::sql_query(format!(
                    "SELECT count(*) AS count, min(created_at) AS oldest FROM outbox_jobs \
                     WHERE {WAITING}"
                ))
                .get_result::<SummaryRow>(conn)
                .map_err(QueryError::from)
            })
            .await
            .map_err(unavailable)?;
        Ok(PendingSummary {
            count: u64::try_from(row.count).unwrap_or_default(),
            oldest: row.oldest,
        })
    }

    /// Leases the jobs like the outbox claim does (`FOR UPDATE SKIP
    /// LOCKED`, then `locked_until`), oldest first, and reads each record's
    /// anchor hash and salt.
    async fn claim_anchors(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<PendingAnchor>, BatchStoreError> {
        let sql = format!(
            "WITH due AS MATERIALIZED (
                SELECT id FROM outbox_jobs WHERE {WAITING}
                ORDER BY created_at, id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            UPDATE outbox_jobs AS job
            SET locked_until = now() + make_interval(secs => $2), updated_at = now()
            FROM due, medical_records AS record
            WHERE job.id = due.id AND record.id = job.record_id
            RETURNING job.id, job.record_id, record.anchor_hash, record.anchor_salt,
                job.created_at"
        );
        let anchors = self
            .pool
            .run(move |conn| {
                let mut rows: Vec<ClaimedAnchorRow> = diesel::sql_query(sql)
                    .bind::<BigInt, _>(i64::from(limit))
                    .bind::<Double, _>(lease.as_secs_f64())
                    .load(conn)?;
                rows.sort_by_key(|row| (row.created_at, row.id));
                rows.into_iter()
                    .map(ClaimedAnchorRow::into_anchor)
                    .collect()
            })
            .await
            .map_err(unavailable)?;
        Ok(anchors)
    }

    /// Locks the member jobs and records first and writes nothing unless
    /// every job still waits and no record belongs to a batch, so two
    /// workers whose leases overlapped cannot both batch a record.
    async fn form_batch(&self, batch: &NewBatch) -> Result<i64, BatchStoreError> {
        let batch = batch.clone();
        let formed = self
            .pool
            .run(move |conn| conn.transaction(|conn| insert_batch(conn, &batch)))
            .await
            .map_err(unavailable)?;
        formed.map_err(BatchStoreError::Conflict)
    }
}

/// Writes the batch in the caller's transaction. The inner `Err` names the
/// conflict; nothing is written then.
fn insert_batch(
    conn: &mut PgConnection,
    batch: &NewBatch,
) -> Result<Result<i64, String>, QueryError> {
    let job_ids: Vec<i64> = batch.members.iter().map(|member| member.job_id).collect();
    let record_ids: Vec<Uuid> = batch
        .members
        .iter()
        .map(|member| member.record_id)
        .collect();
    let leaf_count = i32::try_from(batch.leaf_count())
        .map_err(|_| QueryError::Conversion("batch has more than 2^31 leaves".into()))?;

    let waiting: Vec<IdRow> = diesel::sql_query(
        "SELECT id FROM outbox_jobs WHERE id = ANY($1) \
         AND kind = 'anchor_record' AND status = 'pending' FOR UPDATE",
    )
    .bind::<Array<BigInt>, _>(&job_ids)
    .load(conn)?;
    if waiting.len() != job_ids.len() {
        return Ok(Err(format!(
            "{} of {} claimed jobs no longer wait",
            job_ids.len() - waiting.len(),
            job_ids.len()
        )));
    }
    let unbatched: Vec<IdRow> = diesel::sql_query(
        "SELECT 0::bigint AS id FROM medical_records WHERE id = ANY($1) \
         AND anchor_batch_id IS NULL FOR UPDATE",
    )
    .bind::<Array<SqlUuid>, _>(&record_ids)
    .load(conn)?;
    if unbatched.len() != record_ids.len() {
        return Ok(Err(format!(
            "{} of {} records belong to a batch already",
            record_ids.len() - unbatched.len(),
            record_ids.len()
        )));
    }

    let batch_id = diesel::sql_query(
        "INSERT INTO anchor_batches (root, leaf_count) VALUES ($1, $2) RETURNING id",
    )
    .bind::<Bytea, _>(batch.root.as_bytes().to_vec())
    .bind::<Integer, _>(leaf_count)
    .get_result::<IdRow>(conn)?
    .id;

    let indexes: Vec<i32> = batch
        .members
        .iter()
        .map(|member| i32::try_from(member.leaf_index).unwrap_or(i32::MAX))
        .collect();
    let proofs: Vec<Vec<u8>> = batch
        .members
        .iter()
        .map(|member| {
            member
                .siblings
                .iter()
                .flat_map(|hash| *hash.as_bytes())
                .collect()
        })
        .collect();
    diesel::sql_query(
        "UPDATE medical_records AS record
         SET anchor_batch_id = $1, anchor_leaf_index = member.leaf_index,
             anchor_proof = member.proof, updated_at = now()
         FROM unnest($2::uuid[], $3::integer[], $4::bytea[])
             AS member (record_id, leaf_index, proof)
         WHERE record.id = member.record_id",
    )
    .bind::<BigInt, _>(batch_id)
    .bind::<Array<SqlUuid>, _>(&record_ids)
    .bind::<Array<Integer>, _>(&indexes)
    .bind::<Array<Bytea>, _>(&proofs)
    .execute(conn)?;

    diesel::sql_query(
        "UPDATE outbox_jobs SET status = 'done', locked_until = NULL, updated_at = now() \
         WHERE id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(&job_ids)
    .execute(conn)?;

    let job = LedgerJob::AnchorBatch(BatchAnchor {
        batch_id,
        root: batch.root,
        leaf_count: leaf_count.unsigned_abs(),
    });
    NewJobRow::new(&job, JobTarget::Batch(batch_id))?.insert(conn)?;
    Ok(Ok(batch_id))
}

fn unavailable(error: QueryError) -> BatchStoreError {
    BatchStoreError::Unavailable(error.to_string())
}
