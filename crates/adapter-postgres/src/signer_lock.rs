//! [`SignerLock`] as a PostgreSQL session-level advisory lock held on a
//! dedicated connection, outside the pool.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool};
use diesel::{Connection, PgConnection};
use meditrustal_ledger::{OutboxError, SignerLock};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::sync::Mutex;

use crate::pool::with_connect_timeout;

/// Advisory lock key of the chain signer. The value is arbitrary but
/// fixed; every instance on one database must use the same.
pub const SIGNER_LOCK_KEY: i64 = 0x4d54_414c_7369_676e;

/// Timeout of opening the lock's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// The signer lock: `pg_try_advisory_lock` on a connection of its own.
/// PostgreSQL releases the lock when that session ends, so a process that
/// dies or loses its connection frees it for another instance. The
/// connection is closed when the lock is found lost, and a later
/// [`SignerLock::try_acquire`] opens a new one.
pub struct PgSignerLock {
    url: SecretString,
    key: i64,
    /// The connection holding the lock, `None` while not held.
    held: Arc<Mutex<Option<PgConnection>>>,
}

impl std::fmt::Debug for PgSignerLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSignerLock")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PgSignerLock {
    /// Builds the lock for the database at `url` under [`SIGNER_LOCK_KEY`].
    /// Makes no connection until [`SignerLock::try_acquire`].
    pub fn new(url: SecretString) -> Self {
        Self::with_key(url, SIGNER_LOCK_KEY)
    }

    /// Like [`PgSignerLock::new`] with another key, for tests that run
    /// independent lock holders on one database.
    pub fn with_key(url: SecretString, key: i64) -> Self {
        Self {
            url,
            key,
            held: Arc::new(Mutex::new(None)),
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> OutboxError {
    OutboxError::Unavailable(format!("signer lock: {error}"))
}

#[async_trait]
impl SignerLock for PgSignerLock {
    async fn try_acquire(&self) -> Result<bool, OutboxError> {
        if self.is_held().await? {
            return Ok(true);
        }
        let url = with_connect_timeout(self.url.expose_secret(), CONNECT_TIMEOUT);
        let key = self.key;
        let acquired = tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&url).map_err(unavailable)?;
            let row: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<BigInt, _>(key)
                .get_result(&mut conn)
                .map_err(unavailable)?;
            Ok::<_, OutboxError>(row.locked.then_some(conn))
        })
        .await
        .map_err(unavailable)??;

        let Some(conn) = acquired else {
            return Ok(false);
        };
        *self.held.lock().await = Some(conn);
        Ok(true)
    }

    /// Runs a query on the lock's connection and checks in `pg_locks` that
    /// this session still holds the lock.
    async fn is_held(&self) -> Result<bool, OutboxError> {
        let mut guard = self.held.clone().lock_owned().await;
        let Some(mut conn) = guard.take() else {
            return Ok(false);
        };
        let key = self.key;
        let (conn, held) = tokio::task::spawn_blocking(move || {
            let row: QueryResult<Locked> = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1) AS locked",
            )
            .bind::<BigInt, _>(key)
            .get_result(&mut conn);
            (conn, row)
        })
        .await
        .map_err(unavailable)?;

        match held {
            Ok(row) if row.locked => {
                *guard = Some(conn);
                Ok(true)
            }
            // Dropping the connection ends the session and any lock on it.
            Ok(_) => Ok(false),
            Err(error) => {
                tracing::debug!(%error, "signer lock connection failed; the lock is lost");
                Ok(false)
            }
        }
    }
}
