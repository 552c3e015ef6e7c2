//! [`WatchStore`] over `outbox_jobs`, `chain_watch_progress` and
//! `chain_unmatched_events`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::now;
use diesel::prelude::*;
use diesel::upsert::excluded;
use meditrustal_ledger::{
    AnchoredJob, BlockRef, ChainAnchor, ChainEvent, EntryKey, OutboxError, UnmatchedEvent,
    WatchStore,
};

use crate::convert;
use crate::error::QueryError;
use crate::outbox::{complete_target, lock_job, reopen_target};
use crate::pool::Pool;
use crate::schema::{chain_unmatched_events, chain_watch_progress, outbox_jobs};

/// PostgreSQL implementation of [`WatchStore`]. Progress is stored under a
/// watcher name, so several watchers (one per deployment, say) can share a
/// database.
#[derive(Clone, Debug)]
pub struct PgWatchStore {
    pool: Pool,
    watcher: String,
}

impl PgWatchStore {
    /// Builds the store over `pool`, keeping progress under `watcher`.
    pub fn new(pool: Pool, watcher: impl Into<String>) -> Self {
        Self {
            pool,
            watcher: watcher.into(),
        }
    }
}

type AnchoredRow = (i64, String, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

fn anchored_job(row: AnchoredRow) -> Result<AnchoredJob, QueryError> {
    let (id, kind, entry_key, tx_hash, block_number) = row;
    let missing = |column| convert::invalid("outbox_jobs", id, column, "is null on a done job");
    let entry_key = entry_key.ok_or_else(|| missing("entry_key"))?;
    let tx_hash = tx_hash.ok_or_else(|| missing("tx_hash"))?;
    let block_number = block_number.ok_or_else(|| missing("block_number"))?;
    Ok(AnchoredJob {
        job_id: id,
        entry: EntryKey {
            kind,
            key: convert::digest(&entry_key, "outbox_jobs", id, "entry_key")?,
        },
        tx_hash: convert::digest(&tx_hash, "outbox_jobs", id, "tx_hash")?,
        block_number: u64::try_from(block_number)
            .map_err(|_| convert::invalid("outbox_jobs", id, "block_number", "is negative"))?,
    })
}

type UnmatchedRow = (String, Vec<u8>, Vec<u8>, i64, Vec<u8>, i64, DateTime<Utc>);

fn unmatched_event(row: UnmatchedRow) -> Result<UnmatchedEvent, QueryError> {
    let (kind, entry_key, tx_hash, block_number, block_hash, log_index, seen_at) = row;
    let table = "chain_unmatched_events";
    let tx = convert::digest(&tx_hash, table, log_index, "tx_hash")?;
    let negative = |column| convert::invalid(table, tx, column, "is negative");
    Ok(UnmatchedEvent {
        event: ChainEvent {
            entry: EntryKey {
                kind,
                key: convert::digest(&entry_key, table, tx, "entry_key")?,
            },
            tx_hash: tx,
            block: BlockRef {
                number: u64::try_from(block_number).map_err(|_| negative("block_number"))?,
                hash: convert::digest(&block_hash, table, tx, "block_hash")?,
            },
            log_index: u64::try_from(log_index).map_err(|_| negative("log_index"))?,
        },
        seen_at,
    })
}

/// Finished jobs that a `block_number` filter selects.
fn load_anchored<F>(conn: &mut PgConnection, filter: F) -> Result<Vec<AnchoredJob>, QueryError>
where
    F: FnOnce(
        outbox_jobs::BoxedQuery<'static, diesel::pg::Pg>,
    ) -> outbox_jobs::BoxedQuery<'static, diesel::pg::Pg>,
{
    let query = outbox_jobs::table
        .filter(outbox_jobs::status.eq("done"))
        .filter(outbox_jobs::entry_key.is_not_null())
        .into_boxed();
    let rows: Vec<AnchoredRow> = filter(query)
        .order((outbox_jobs::block_number, outbox_jobs::id))
        .select((
            outbox_jobs::id,
            outbox_jobs::kind,
            outbox_jobs::entry_key,
            outbox_jobs::tx_hash,
            outbox_jobs::block_number,
        ))
        .load(conn)?;
    rows.into_iter().map(anchored_job).collect()
}

/// Locks the finished job if it still records the transaction and block
/// it was read with, and returns its target.
fn lock_unchanged(
    conn: &mut PgConnection,
    seen: &AnchoredJob,
) -> Result<Option<crate::outbox::JobTarget>, QueryError> {
    let Some(target) = lock_job(conn, seen.job_id, &["done"])? else {
        return Ok(None);
    };
    let (tx, block): (Option<Vec<u8>>, Option<i64>) = outbox_jobs::table
        .find(seen.job_id)
        .select((outbox_jobs::tx_hash, outbox_jobs::block_number))
        .first(conn)?;
    let unchanged = tx.as_deref() == Some(seen.tx_hash.as_bytes().as_slice())
        && block == Some(convert::block_to_column(seen.block_number)?);
    Ok(unchanged.then_some(target))
}

#[async_trait]
impl WatchStore for PgWatchStore {
    async fn progress(&self) -> Result<Option<BlockRef>, OutboxError> {
        let watcher = self.watcher.clone();
        let progress = self
            .pool
            .run(move |conn| {
                let row: Option<(i64, Vec<u8>)> = chain_watch_progress::table
                    .find(&watcher)
                    .select((
                        chain_watch_progress::block_number,
                        chain_watch_progress::block_hash,
                    ))
                    .first(conn)
                    .optional()?;
                let Some((number, hash)) = row else {
                    return Ok(None);
                };
                let table = "chain_watch_progress";
                Ok(Some(BlockRef {
                    number: u64::try_from(number).map_err(|_| {
                        convert::invalid(table, &watcher, "block_number", "is negative")
                    })?,
                    hash: convert::digest(&hash, table, &watcher, "block_hash")?,
                }))
            })
            .await?;
        Ok(progress)
    }

    async fn save_progress(&self, block: BlockRef) -> Result<(), OutboxError> {
        let watcher = self.watcher.clone();
        let number = convert::block_to_column(block.number)?;
        self.pool
            .run(move |conn| {
                diesel::insert_into(chain_watch_progress::table)
                    .values((
                        chain_watch_progress::watcher.eq(watcher),
                        chain_watch_progress::block_number.eq(number),
                        chain_watch_progress::block_hash.eq(block.hash.as_bytes().to_vec()),
                    ))
                    .on_conflict(chain_watch_progress::watcher)
                    .do_update()
                    .set((
                        chain_watch_progress::block_number
                            .eq(excluded(chain_watch_progress::block_number)),
                        chain_watch_progress::block_hash
                            .eq(excluded(chain_watch_progress::block_hash)),
                        chain_watch_progress::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn rewind(&self, from: u64) -> Result<(), OutboxError> {
        let watcher = self.watcher.clone();
        let from = convert::block_to_column(from)?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::delete(chain_watch_progress::table.find(watcher)).execute(conn)?;
                    diesel::delete(
                        chain_unmatched_events::table
                            .filter(chain_unmatched_events::block_number.ge(from)),
                    )
                    .execute(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn anchored_jobs(&self, from: u64, to: u64) -> Result<Vec<AnchoredJob>, OutboxError> {
        let from = convert::block_to_column(from)?;
        let to = convert::block_to_column(to)?;
        let jobs = self
            .pool
            .run(move |conn| {
                load_anchored(conn, |query| {
                    query.filter(outbox_jobs::block_number.between(from, to))
                })
            })
            .await?;
        Ok(jobs)
    }

    async fn anchored_above(&self, block: u64) -> Result<Vec<AnchoredJob>, OutboxError> {
        let block = convert::block_to_column(block)?;
        let jobs = self
            .pool
            .run(move |conn| {
                load_anchored(conn, |query| {
                    query.filter(outbox_jobs::block_number.gt(block))
                })
            })
            .await?;
        Ok(jobs)
    }

    async fn known_entries(&self, entries: Vec<EntryKey>) -> Result<Vec<EntryKey>, OutboxError> {
        let keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|entry| entry.key.as_bytes().to_vec())
            .collect();
        let found: Vec<(String, Option<Vec<u8>>)> = self
            .pool
            .run(move |conn| {
                outbox_jobs::table
                    .filter(outbox_jobs::entry_key.eq_any(keys))
                    .select((outbox_jobs::kind, outbox_jobs::entry_key))
                    .distinct()
                    .load(conn)
                    .map_err(QueryError::from)
            })
            .await?;
        Ok(entries
            .into_iter()
            .filter(|entry| {
                found.iter().any(|(kind, key)| {
                    *kind == entry.kind && key.as_deref() == Some(entry.key.as_bytes().as_slice())
                })
            })
            .collect())
    }

    /// Sets the job to `pending` with no transaction, block or failed
    /// attempts, due now, stores `reason` as its last error and counts the
    /// reopening in `reanchor_count`; the target row goes back to
    /// `pending` in the same transaction.
    async fn reanchor(&self, seen: AnchoredJob, reason: String) -> Result<bool, OutboxError> {
        let reopened = self
            .pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let Some(target) = lock_unchanged(conn, &seen)? else {
                        return Ok(false);
                    };
                    diesel::update(outbox_jobs::table.find(seen.job_id))
                        .set((
                            outbox_jobs::status.eq("pending"),
                            outbox_jobs::tx_hash.eq(None::<Vec<u8>>),
                            outbox_jobs::block_number.eq(None::<i64>),
                            outbox_jobs::sent_at.eq(None::<DateTime<Utc>>),
                            outbox_jobs::attempts.eq(0),
                            outbox_jobs::next_attempt_at.eq(now),
                            outbox_jobs::locked_until.eq(None::<DateTime<Utc>>),
                            outbox_jobs::last_error.eq(Some(format!("re-anchoring: {reason}"))),
                            outbox_jobs::reanchor_count.eq(outbox_jobs::reanchor_count + 1),
                            outbox_jobs::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    reopen_target(conn, target)?;
                    Ok(true)
                })
            })
            .await?;
        Ok(reopened)
    }

    async fn move_anchor(&self, seen: AnchoredJob, found: ChainAnchor) -> Result<(), OutboxError> {
        let block_number = convert::block_to_column(found.block_number)?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let Some(target) = lock_unchanged(conn, &seen)? else {
                        return Ok(());
                    };
                    let tx = found.tx_hash.as_bytes().to_vec();
                    diesel::update(outbox_jobs::table.find(seen.job_id))
                        .set((
                            outbox_jobs::tx_hash.eq(Some(tx.clone())),
                            outbox_jobs::block_number.eq(Some(block_number)),
                            outbox_jobs::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    complete_target(conn, target, tx, block_number)
                })
            })
            .await?;
        Ok(())
    }

    async fn report_unmatched(&self, events: Vec<ChainEvent>) -> Result<(), OutboxError> {
        let mut rows = Vec::with_capacity(events.len());
        for event in &events {
            rows.push((
                chain_unmatched_events::kind.eq(event.entry.kind.clone()),
                chain_unmatched_events::entry_key.eq(event.entry.key.as_bytes().to_vec()),
                chain_unmatched_events::tx_hash.eq(event.tx_hash.as_bytes().to_vec()),
                chain_unmatched_events::block_number
                    .eq(convert::block_to_column(event.block.number)?),
                chain_unmatched_events::block_hash.eq(event.block.hash.as_bytes().to_vec()),
                chain_unmatched_events::log_index.eq(convert::block_to_column(event.log_index)?),
            ));
        }
        self.pool
            .run(move |conn| {
                diesel::insert_into(chain_unmatched_events::table)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn unmatched_events(&self) -> Result<Vec<UnmatchedEvent>, OutboxError> {
        let events = self
            .pool
            .run(|conn| {
                let rows: Vec<UnmatchedRow> = chain_unmatched_events::table
                    .order((
                        chain_unmatched_events::block_number,
                        chain_unmatched_events::log_index,
                    ))
                    .select((
                        chain_unmatched_events::kind,
                        chain_unmatched_events::entry_key,
                        chain_unmatched_events::tx_hash,
                        chain_unmatched_events::block_number,
                        chain_unmatched_events::block_hash,
                        chain_unmatched_events::log_index,
                        chain_unmatched_events::seen_at,
                    ))
                    .load(conn)?;
                rows.into_iter().map(unmatched_event).collect()
            })
            .await?;
        Ok(events)
    }
}
