//! Operational statistics read at scrape time for the metrics endpoint:
//! the outbox backlog and the delay between creating and anchoring records.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double};

use crate::error::{DatabaseError, QueryError};
use crate::pool::Pool;

/// Unfinished outbox jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OutboxBacklog {
    /// Jobs with status `pending`.
    pub pending: u64,
    /// Jobs with status `sent`, waiting for their receipt.
    pub sent: u64,
    /// Seconds since the oldest job that is due now (its `next_attempt_at`
    /// has passed) was created; 0 when no job is due.
    pub oldest_due_age_secs: f64,
}

/// Delays from creating a record to its anchor being mined, over every
/// anchored record, in seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DelayHistogram {
    /// Each upper bound with the number of delays at or below it
    /// (cumulative); the last bound is `f64::INFINITY`.
    pub cumulative: Vec<(f64, u64)>,
    /// Sum of all delays.
    pub sum: f64,
}

const BACKLOG_SQL: &str = "\
    SELECT count(*) FILTER (WHERE status = 'pending') AS pending, \
           count(*) FILTER (WHERE status = 'sent') AS sent, \
           coalesce(extract(epoch FROM now() - min(created_at) \
               FILTER (WHERE next_attempt_at <= now()))::float8, 0) AS oldest_due_age_secs \
    FROM outbox_jobs WHERE status IN ('pending', 'sent')";

// NOTE: scans every anchored record on each scrape; with millions of
// records this needs a running total kept at anchoring time instead.
const DELAY_SQL: &str = "\
    WITH delays AS ( \
        SELECT extract(epoch FROM anchored_at - created_at)::float8 AS delay \
        FROM medical_records WHERE anchored_at IS NOT NULL) \
    SELECT bounds.bound AS bound, \
           (SELECT count(*) FROM delays WHERE delay <= bounds.bound) AS at_or_below, \
           (SELECT coalesce(sum(delay), 0) FROM delays) AS total \
    FROM unnest($1::float8[]) AS bounds(bound) ORDER BY bounds.bound";

#[derive(QueryableByName)]
struct BacklogRow {
    #[diesel(sql_type = BigInt)]
    pending: i64,
    #[diesel(sql_type = BigInt)]
    sent: i64,
    #[diesel(sql_type = Double)]
    oldest_due_age_secs: f64,
}

#[derive(QueryableByName)]
struct BucketRow {
    #[diesel(sql_type = Double)]
    bound: f64,
    #[diesel(sql_type = BigInt)]
    at_or_below: i64,
    #[diesel(sql_type = Double)]
    total: f64,
}

/// Counts the unfinished outbox jobs. Errors: [`DatabaseError::Unavailable`].
pub async fn outbox_backlog(pool: &Pool) -> Result<OutboxBacklog, DatabaseError> {
    let row = pool
        .run(|conn| {
            diesel::sql_query(BACKLOG_SQL)
                .get_result::<BacklogRow>(conn)
                .map_err(QueryError::from)
        })
        .await?;
    Ok(OutboxBacklog {
        pending: u64::try_from(row.pending).unwrap_or(0),
        sent: u64::try_from(row.sent).unwrap_or(0),
        oldest_due_age_secs: row.oldest_due_age_secs.max(0.0),
    })
}

/// Counts the anchored records whose anchoring delay is at or below each
/// of `bounds` (seconds, ascending); an `f64::INFINITY` bound is added at
/// the end. Errors: [`DatabaseError::Unavailable`].
pub async fn anchoring_delays(
    pool: &Pool,
    bounds: &[f64],
) -> Result<DelayHistogram, DatabaseError> {
    let mut bounds = bounds.to_vec();
    bounds.push(f64::INFINITY);
    let rows = pool
        .run(move |conn| {
            diesel::sql_query(DELAY_SQL)
                .bind::<Array<Double>, _>(bounds)
                .load::<BucketRow>(conn)
                .map_err(QueryError::from)
        })
        .await?;
    let sum = rows.first().map_or(0.0, |row| row.total);
    let cumulative = rows
        .into_iter()
        .map(|row| (row.bound, u64::try_from(row.at_or_below).unwrap_or(0)))
        .collect();
    Ok(DelayHistogram { cumulative, sum })
}
