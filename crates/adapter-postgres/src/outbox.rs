//! [`OutboxStore`] over the `outbox_jobs` table, and the job insert that
//! the user, record and audit stores run inside their own transactions.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double};
use meditrustal_ledger::{ChainAnchor, LedgerJob, OutboxError, OutboxJob, OutboxStore, TxHash};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::pool::Pool;
use crate::schema::{anchor_batches, audit_anchors, consents, medical_records, outbox_jobs, users};

/// Statuses of jobs that are not finished yet.
const OPEN_STATUSES: [&str; 2] = ["pending", "sent"];

/// The row a job writes its outcome to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum JobTarget {
    /// A `users` row: registration on `UserRegistry`.
    User(Uuid),
    /// A `medical_records` row: anchor on `MedicalRecordRegistry`.
    Record(Uuid),
    /// The `grant_*` columns of a `consents` row: a grant on
    /// `ConsentRegistry`.
    ConsentGrant(Uuid),
    /// The `revoke_*` columns of a `consents` row: a revocation on
    /// `ConsentRegistry`.
    ConsentRevocation(Uuid),
    /// An `audit_anchors` row, by sequence number: anchor on
    /// `AuditAnchorRegistry`.
    AuditAnchor(i64),
    /// An `anchor_batches` row and its member records: a root on
    /// `BatchAnchorRegistry`.
    Batch(i64),
}

impl JobTarget {
    fn from_columns(kind: &str, columns: TargetColumns) -> Option<Self> {
        let (record_id, user_id, consent_id, audit_anchor_seq, anchor_batch_id) = columns;
        if let ("anchor_batch", Some(id)) = (kind, anchor_batch_id) {
            return Some(Self::Batch(id));
        }
        match (kind, record_id, user_id, consent_id, audit_anchor_seq) {
            ("anchor_record", Some(id), _, _, _) => Some(Self::Record(id)),
            ("register_user", _, Some(id), _, _) => Some(Self::User(id)),
            ("grant_consent", _, _, Some(id), _) => Some(Self::ConsentGrant(id)),
            ("revoke_consent", _, _, Some(id), _) => Some(Self::ConsentRevocation(id)),
            ("anchor_audit_head", _, _, _, Some(seq)) => Some(Self::AuditAnchor(seq)),
            _ => None,
        }
    }
}

/// The target columns of a job: record, user, consent, audit anchor and
/// batch.
type TargetColumns = (
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<i64>,
    Option<i64>,
);

#[derive(Insertable)]
#[diesel(table_name = outbox_jobs)]
pub(crate) struct NewJobRow {
    kind: String,
    payload: serde_json::Value,
    record_id: Option<Uuid>,
    user_id: Option<Uuid>,
    consent_id: Option<Uuid>,
    audit_anchor_seq: Option<i64>,
    anchor_batch_id: Option<i64>,
}

impl NewJobRow {
    /// Serializes `job` for `target`. The table's check constraints reject
    /// a job whose kind does not match its target.
    pub(crate) fn new(job: &LedgerJob, target: JobTarget) -> Result<Self, QueryError> {
        let payload = serde_json::to_value(job).map_err(|error| {
            QueryError::Conversion(format!("could not serialize ledger job: {error}"))
        })?;
        let (record_id, user_id, consent_id, audit_anchor_seq, anchor_batch_id) = match target {
            JobTarget::Record(id) => (Some(id), None, None, None, None),
            JobTarget::User(id) => (None, Some(id), None, None, None),
            JobTarget::ConsentGrant(id) | JobTarget::ConsentRevocation(id) => {
                (None, None, Some(id), None, None)
            }
            JobTarget::AuditAnchor(seq) => (None, None, None, Some(seq), None),
            JobTarget::Batch(id) => (None, None, None, None, Some(id)),
        };
        Ok(Self {
            kind: job.kind().to_owned(),
            payload,
            record_id,
            user_id,
            consent_id,
            audit_anchor_seq,
            anchor_batch_id,
        })
    }

    /// Inserts the job, due now.
    pub(crate) fn insert(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::insert_into(outbox_jobs::table)
            .values(self)
            .execute(conn)?;
        Ok(())
    }
}

/// A row returned by the claim statement.
#[derive(QueryableByName)]
#[diesel(table_name = outbox_jobs)]
struct ClaimedRow {
    id: i64,
    payload: serde_json::Value,
    attempts: i32,
    tx_hash: Option<Vec<u8>>,
    next_attempt_at: DateTime<Utc>,
}

impl ClaimedRow {
    fn into_job(self) -> Result<OutboxJob, QueryError> {
        let job: LedgerJob = serde_json::from_value(self.payload).map_err(|error| {
            convert::invalid(
                "outbox_jobs",
                self.id,
                "payload",
                &format!("is not a ledger job: {error}"),
            )
        })?;
        let attempts = u32::try_from(self.attempts)
            .map_err(|_| convert::invalid("outbox_jobs", self.id, "attempts", "is negative"))?;
        let submitted_tx =
            convert::optional_digest(self.tx_hash.as_deref(), "outbox_jobs", self.id, "tx_hash")?;
        Ok(OutboxJob {
            id: self.id,
            job,
            attempts,
            submitted_tx,
        })
    }
}

/// Leases due jobs in one statement. `FOR UPDATE SKIP LOCKED` makes
/// concurrent claimers pass over each other's rows instead of waiting, and
/// `locked_until` keeps the rows from later claimers until the lease ends.
/// `MATERIALIZED` makes PostgreSQL run the locking subquery once, before
/// the update, instead of folding it into the update's plan.
const CLAIM_SQL: &str = "\
WITH due AS MATERIALIZED (
    SELECT id FROM outbox_jobs
    WHERE status IN ('pending', 'sent')
      AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until <= now())
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox_jobs AS job
SET locked_until = now() + make_interval(secs => $2), updated_at = now()
FROM due
WHERE job.id = due.id
RETURNING job.id, job.payload, job.attempts, job.tx_hash, job.next_attempt_at";

/// [`CLAIM_SQL`] without the record anchor jobs that wait for a batch:
/// in batch mode the batcher takes those. A record anchor job already sent
/// one by one (status `sent`) is still claimed, so switching modes strands
/// no job.
const CLAIM_SKIPPING_WAITING_RECORD_ANCHORS_SQL: &str = "\
WITH due AS MATERIALIZED (
    SELECT id FROM outbox_jobs
    WHERE status IN ('pending', 'sent')
      AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until <= now())
      AND NOT (kind = 'anchor_record' AND status = 'pending')
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox_jobs AS job
SET locked_until = now() + make_interval(secs => $2), updated_at = now()
FROM due
WHERE job.id = due.id
RETURNING job.id, job.payload, job.attempts, job.tx_hash, job.next_attempt_at";

/// PostgreSQL implementation of [`OutboxStore`].
#[derive(Clone, Debug)]
pub struct PgOutboxStore {
    pool: Pool,
    claim_sql: &'static str,
}

impl PgOutboxStore {
    /// Builds the store over `pool`. It claims every kind of job, so
    /// records are anchored one transaction each.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            claim_sql: CLAIM_SQL,
        }
    }

    /// Builds the store for batch mode: it leaves waiting record anchor
    /// jobs to the batcher ([`crate::PgBatchStore`]) and claims every other
    /// job, the `anchor_batch` jobs included.
    pub fn for_batch_mode(pool: Pool) -> Self {
        Self {
            pool,
            claim_sql: CLAIM_SKIPPING_WAITING_RECORD_ANCHORS_SQL,
        }
    }

    /// Counts unfinished jobs (pending or sent): the outbox depth, for
    /// health checks and metrics. Errors: [`OutboxError::Unavailable`].
    pub async fn pending_jobs(&self) -> Result<i64, OutboxError> {
        let count = self
            .pool
            .run(|conn| {
                outbox_jobs::table
                    .filter(outbox_jobs::status.eq_any(OPEN_STATUSES))
                    .count()
                    .get_result::<i64>(conn)
                    .map_err(QueryError::from)
            })
            .await?;
        Ok(count)
    }
}

#[async_trait]
impl OutboxStore for PgOutboxStore {
    /// Jobs come back in due order, oldest first. A job whose stored
    /// payload cannot be decoded is failed in the same transaction, with
    /// the reason in `last_error`, instead of blocking every later claim.
    async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<OutboxJob>, OutboxError> {
        let claim_sql = self.claim_sql;
        let jobs = self
            .pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let mut rows: Vec<ClaimedRow> = diesel::sql_query(claim_sql)
                        .bind::<BigInt, _>(i64::from(limit))
                        .bind::<Double, _>(lease.as_secs_f64())
                        .load(conn)?;
                    rows.sort_by_key(|row| (row.next_attempt_at, row.id));

                    let mut jobs = Vec::with_capacity(rows.len());
                    for row in rows {
                        let id = row.id;
                        match row.into_job() {
                            Ok(job) => jobs.push(job),
                            Err(error) => fail_job(conn, id, &error.to_string())?,
                        }
                    }
                    Ok(jobs)
                })
            })
            .await?;
        Ok(jobs)
    }

    /// Sets the job to `sent` and stores the hash on the job and on its
    /// target row, whose status stays `pending`. A job that is already
    /// finished (or missing) is left unchanged, so a worker whose lease ran
    /// out cannot reopen a job that another worker finished.
    async fn mark_sent(
        &self,
        job_id: i64,
        tx_hash: TxHash,
        check_at: DateTime<Utc>,
    ) -> Result<(), OutboxError> {
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let Some(target) = lock_open_job(conn, job_id)? else {
                        return Ok(());
                    };
                    let tx = tx_hash.as_bytes().to_vec();
                    diesel::update(outbox_jobs::table.find(job_id))
                        .set((
                            outbox_jobs::status.eq("sent"),
                            outbox_jobs::tx_hash.eq(Some(tx.clone())),
                            outbox_jobs::next_attempt_at.eq(check_at),
                            outbox_jobs::locked_until.eq(None::<DateTime<Utc>>),
                            outbox_jobs::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    set_target_tx(conn, target, Some(tx))
                })
            })
            .await?;
        Ok(())
    }

    /// Sets the job to `done` and the target row to anchored (records,
    /// consents and audit heads) or registered (users), with the
    /// transaction, block and time. A finished or missing job is left
    /// unchanged.
    async fn complete(&self, job_id: i64, anchor: ChainAnchor) -> Result<(), OutboxError> {
        let block_number = convert::block_to_column(anchor.block_number)?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let Some(target) = lock_open_job(conn, job_id)? else {
                        return Ok(());
                    };
                    let tx = anchor.tx_hash.as_bytes().to_vec();
                    diesel::update(outbox_jobs::table.find(job_id))
                        .set((
                            outbox_jobs::status.eq("done"),
                            outbox_jobs::tx_hash.eq(Some(tx.clone())),
                            outbox_jobs::locked_until.eq(None::<DateTime<Utc>>),
                            outbox_jobs::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    complete_target(conn, target, tx, block_number)
                })
            })
            .await?;
        Ok(())
    }

    /// With `forget_tx`, the job returns to `pending` and the transaction
    /// hash is cleared on the job and on a pending target row. A finished
    /// or missing job is left unchanged.
    async fn reschedule(
        &self,
        job_id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
        forget_tx: bool,
    ) -> Result<(), OutboxError> {
        let error = error.to_owned();
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let Some(target) = lock_open_job(conn, job_id)? else {
                        return Ok(());
                    };
                    diesel::update(outbox_jobs::table.find(job_id))
                        .set((
                            outbox_jobs::attempts.eq(outbox_jobs::attempts + 1),
                            outbox_jobs::last_error.eq(Some(error)),
                            outbox_jobs::next_attempt_at.eq(retry_at),
                            outbox_jobs::locked_until.eq(None::<DateTime<Utc>>),
                            outbox_jobs::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    if !forget_tx {
                        return Ok(());
                    }
                    diesel::update(outbox_jobs::table.find(job_id))
                        .set((
                            outbox_jobs::status.eq("pending"),
                            outbox_jobs::tx_hash.eq(None::<Vec<u8>>),
                        ))
                        .execute(conn)?;
                    set_target_tx(conn, target, None)
                })
            })
            .await?;
        Ok(())
    }

    /// Sets the job and its target row to `failed`. A target row that is
    /// already anchored or registered keeps its state. A finished or missing job is left
    /// unchanged.
    async fn fail(&self, job_id: i64, error: &str) -> Result<(), OutboxError> {
        let error = error.to_owned();
        self.pool
            .run(move |conn| conn.transaction(|conn| fail_job(conn, job_id, &error)))
            .await?;
        Ok(())
    }
}

/// Locks the job if it is still open (pending or sent) and returns its
/// target, or `None` when the job is finished or missing.
fn lock_open_job(conn: &mut PgConnection, job_id: i64) -> Result<Option<JobTarget>, QueryError> {
    let columns: Option<(String, TargetColumns)> = outbox_jobs::table
        .find(job_id)
        .filter(outbox_jobs::status.eq_any(OPEN_STATUSES))
        .select((
            outbox_jobs::kind,
            (
                outbox_jobs::record_id,
                outbox_jobs::user_id,
                outbox_jobs::consent_id,
                outbox_jobs::audit_anchor_seq,
                outbox_jobs::anchor_batch_id,
            ),
        ))
        .for_update()
        .first(conn)
        .optional()?;

    match columns {
        None => Ok(None),
        Some((kind, columns)) => JobTarget::from_columns(&kind, columns)
            .map(Some)
            .ok_or_else(|| {
                convert::invalid(
                    "outbox_jobs",
                    job_id,
                    "record_id, user_id, consent_id, audit_anchor_seq and anchor_batch_id",
                    "do not name the target of its kind",
                )
            }),
    }
}

fn fail_job(conn: &mut PgConnection, job_id: i64, error: &str) -> Result<(), QueryError> {
    let Some(target) = lock_open_job(conn, job_id)? else {
        return Ok(());
    };
    diesel::update(outbox_jobs::table.find(job_id))
        .set((
            outbox_jobs::status.eq("failed"),
            outbox_jobs::last_error.eq(Some(error)),
            outbox_jobs::locked_until.eq(None::<DateTime<Utc>>),
            outbox_jobs::updated_at.eq(now),
        ))
        .execute(conn)?;

    match target {
        JobTarget::Record(id) => {
            diesel::update(
                medical_records::table
                    .find(id)
                    .filter(medical_records::anchor_status.eq("pending")),
            )
            .set((
                medical_records::anchor_status.eq("failed"),
                medical_records::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        JobTarget::User(id) => {
            diesel::update(
                users::table
                    .find(id)
                    .filter(users::chain_status.eq("pending")),
            )
            .set((users::chain_status.eq("failed"), users::updated_at.eq(now)))
            .execute(conn)?;
        }
        JobTarget::ConsentGrant(id) => {
            diesel::update(
                consents::table
                    .find(id)
                    .filter(consents::grant_status.eq("pending")),
            )
            .set(consents::grant_status.eq("failed"))
            .execute(conn)?;
        }
        JobTarget::ConsentRevocation(id) => {
            diesel::update(
                consents::table
                    .find(id)
                    .filter(consents::revoke_status.eq("pending")),
            )
            .set(consents::revoke_status.eq("failed"))
            .execute(conn)?;
        }
        JobTarget::AuditAnchor(seq) => {
            diesel::update(
                audit_anchors::table
                    .find(seq)
                    .filter(audit_anchors::status.eq("pending")),
            )
            .set((
                audit_anchors::status.eq("failed"),
                audit_anchors::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        JobTarget::Batch(id) => {
            diesel::update(
                anchor_batches::table
                    .find(id)
                    .filter(anchor_batches::status.eq("pending")),
            )
            .set((
                anchor_batches::status.eq("failed"),
                anchor_batches::updated_at.eq(now),
            ))
            .execute(conn)?;
            diesel::update(
                medical_records::table
                    .filter(medical_records::anchor_batch_id.eq(id))
                    .filter(medical_records::anchor_status.eq("pending")),
            )
            .set((
                medical_records::anchor_status.eq("failed"),
                medical_records::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
    }
    Ok(())
}

/// Sets or clears the transaction hash of a target row that is still pending.
fn set_target_tx(
    conn: &mut PgConnection,
    target: JobTarget,
    tx: Option<Vec<u8>>,
) -> Result<(), QueryError> {
    match target {
        JobTarget::Record(id) => {
            diesel::update(
                medical_records::table
                    .find(id)
                    .filter(medical_records::anchor_status.eq("pending")),
            )
            .set((
                medical_records::anchor_tx_hash.eq(tx),
                medical_records::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        JobTarget::User(id) => {
            diesel::update(
                users::table
                    .find(id)
                    .filter(users::chain_status.eq("pending")),
            )
            .set((users::chain_tx_hash.eq(tx), users::updated_at.eq(now)))
            .execute(conn)?;
        }
        JobTarget::ConsentGrant(id) => {
            diesel::update(
                consents::table
                    .find(id)
                    .filter(consents::grant_status.eq("pending")),
            )
            .set(consents::grant_tx_hash.eq(tx))
            .execute(conn)?;
        }
        JobTarget::ConsentRevocation(id) => {
            diesel::update(
                consents::table
                    .find(id)
                    .filter(consents::revoke_status.eq("pending")),
            )
            .set(consents::revoke_tx_hash.eq(tx))
            .execute(conn)?;
        }
        JobTarget::AuditAnchor(seq) => {
            diesel::update(
                audit_anchors::table
                    .find(seq)
                    .filter(audit_anchors::status.eq("pending")),
            )
            .set((
                audit_anchors::tx_hash.eq(tx),
                audit_anchors::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        JobTarget::Batch(id) => {
            diesel::update(
                anchor_batches::table
                    .find(id)
                    .filter(anchor_batches::status.eq("pending")),
            )
            .set((
                anchor_batches::tx_hash.eq(tx.clone()),
                anchor_batches::updated_at.eq(now),
            ))
            .execute(conn)?;
            diesel::update(
                medical_records::table
                    .filter(medical_records::anchor_batch_id.eq(id))
                    .filter(medical_records::anchor_status.eq("pending")),
            )
            .set((
                medical_records::anchor_tx_hash.eq(tx),
                medical_records::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
    }
    Ok(())
}

fn complete_target(
    conn: &mut PgConnection,
    target: JobTarget,
    tx: Vec<u8>,
    block_number: i64,
) -> Result<(), QueryError> {
    match target {
        JobTarget::Record(id) => {
            diesel::update(medical_records::table.find(id))
                .set((
                    medical_records::anchor_status.eq("anchored"),
                    medical_records::anchor_tx_hash.eq(Some(tx)),
                    medical_records::anchor_block_number.eq(Some(block_number)),
                    medical_records::anchored_at.eq(now),
                    medical_records::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        JobTarget::User(id) => {
            diesel::update(users::table.find(id))
                .set((
                    users::chain_status.eq("registered"),
                    users::chain_tx_hash.eq(Some(tx)),
                    users::chain_block_number.eq(Some(block_number)),
                    users::chain_registered_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        JobTarget::ConsentGrant(id) => {
            diesel::update(consents::table.find(id))
                .set((
                    consents::grant_status.eq("anchored"),
                    consents::grant_tx_hash.eq(Some(tx)),
                    consents::grant_block_number.eq(Some(block_number)),
                    consents::grant_anchored_at.eq(now),
                ))
                .execute(conn)?;
        }
        JobTarget::ConsentRevocation(id) => {
            diesel::update(consents::table.find(id))
                .set((
                    consents::revoke_status.eq("anchored"),
                    consents::revoke_tx_hash.eq(Some(tx)),
                    consents::revoke_block_number.eq(Some(block_number)),
                    consents::revoke_anchored_at.eq(now),
                ))
                .execute(conn)?;
        }
        JobTarget::AuditAnchor(seq) => {
            diesel::update(audit_anchors::table.find(seq))
                .set((
                    audit_anchors::status.eq("anchored"),
                    audit_anchors::tx_hash.eq(Some(tx)),
                    audit_anchors::block_number.eq(Some(block_number)),
                    audit_anchors::anchored_at.eq(now),
                    audit_anchors::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        JobTarget::Batch(id) => {
            diesel::update(anchor_batches::table.find(id))
                .set((
                    anchor_batches::status.eq("anchored"),
                    anchor_batches::tx_hash.eq(Some(tx.clone())),
                    anchor_batches::block_number.eq(Some(block_number)),
                    anchor_batches::anchored_at.eq(now),
                    anchor_batches::updated_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(medical_records::table.filter(medical_records::anchor_batch_id.eq(id)))
                .set((
                    medical_records::anchor_status.eq("anchored"),
                    medical_records::anchor_tx_hash.eq(Some(tx)),
                    medical_records::anchor_block_number.eq(Some(block_number)),
                    medical_records::anchored_at.eq(now),
                    medical_records::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(())
}
