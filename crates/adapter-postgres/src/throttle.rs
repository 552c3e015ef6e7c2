//! [`LoginThrottle`] over the `login_throttle` table. Every server
//! instance reads and writes the same rows, so limits hold across them.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamptz};
use meditrustal_identity::{AuthStoreError, LoginThrottle};

use crate::pool::Pool;
use crate::schema::login_throttle;

/// PostgreSQL implementation of [`LoginThrottle`].
///
/// TODO: rows of keys that never succeed again stay forever; a periodic
/// `DELETE ... WHERE last_failure_at < now() - <quiet period>` would prune
/// them.
#[derive(Clone, Debug)]
pub struct PgLoginThrottle {
    pool: Pool,
}

impl PgLoginThrottle {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

/// Counts a failure in one statement, so that concurrent failures of one
/// key on several instances each count. A failure after the quiet period
/// starts a new run and drops the old lock.
const RECORD_FAILURE_SQL: &str = "\
INSERT INTO login_throttle (key, failures, last_failure_at) VALUES ($1, 1, $2)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN login_throttle.last_failure_at < $3 THEN 1
                    ELSE LEAST(login_throttle.failures + 1, 1000000) END,
    locked_until = CASE WHEN login_throttle.last_failure_at < $3 THEN NULL
                        ELSE login_throttle.locked_until END,
    last_failure_at = $2
RETURNING failures";

/// Extends a lock; `GREATEST` ignores NULL, so an unlocked key takes `$2`.
const LOCK_SQL: &str =
    "UPDATE login_throttle SET locked_until = GREATEST(locked_until, $2) WHERE key = $1";

#[derive(QueryableByName)]
struct Failures {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

#[async_trait]
impl LoginThrottle for PgLoginThrottle {
    async fn locked_until(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AuthStoreError> {
        let keys = keys.to_vec();
        let until = self
            .pool
            .run(move |conn| {
                let until: Option<DateTime<Utc>> = login_throttle::table
                    .filter(login_throttle::key.eq_any(&keys))
                    .filter(login_throttle::locked_until.gt(now))
                    .select(diesel::dsl::max(login_throttle::locked_until))
                    .first(conn)?;
                Ok(until)
            })
            .await?;
        Ok(until)
    }

    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        forget_after: TimeDelta,
    ) -> Result<u32, AuthStoreError> {
        let key = key.to_owned();
        let quiet_since = now - forget_after;
        let failures = self
            .pool
            .run(move |conn| {
                let row: Failures = diesel::sql_query(RECORD_FAILURE_SQL)
                    .bind::<Text, _>(&key)
                    .bind::<Timestamptz, _>(now)
                    .bind::<Timestamptz, _>(quiet_since)
                    .get_result(conn)?;
                Ok(row.failures)
            })
            .await?;
        Ok(u32::try_from(failures).unwrap_or(1))
    }

    async fn lock(&self, key: &str, until: DateTime<Utc>) -> Result<(), AuthStoreError> {
        let key = key.to_owned();
        self.pool
            .run(move |conn| {
                diesel::sql_query(LOCK_SQL)
                    .bind::<Text, _>(&key)
                    .bind::<Timestamptz, _>(until)
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), AuthStoreError> {
        let key = key.to_owned();
        self.pool
            .run(move |conn| {
                diesel::delete(login_throttle::table.find(&key)).execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
