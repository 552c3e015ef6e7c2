//! Connection pool: deadpool over blocking Diesel connections, with every
//! wait bounded so that a stopped database fails requests fast.

use std::fmt;
use std::time::Duration;

use deadpool_diesel::postgres::{Hook, HookError, Manager, Pool as DeadPool, PoolError};
use deadpool_diesel::{Runtime, TimeoutType};
use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{DatabaseError, QueryError};

/// Settings of the connection pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// libpq connection URI (`postgres://user:password@host:port/db`) or
    /// keyword/value string. Secret because it may contain a password.
    pub url: SecretString,
    /// Maximum number of open connections.
    pub max_size: usize,
    /// Maximum wait for a free connection while all are in use.
    pub wait_timeout: Duration,
    /// Maximum time to open a connection and prepare its session. Also sets
    /// libpq's `connect_timeout`, rounded up to whole seconds, at least 2.
    pub create_timeout: Duration,
    /// Maximum time of the `SELECT 1` that checks an idle connection before
    /// reuse. A connection that fails the check is closed.
    pub recycle_timeout: Duration,
    /// Server-side `statement_timeout` of every pooled session, sent in
    /// whole milliseconds. Zero disables it, as in PostgreSQL.
    pub statement_timeout: Duration,
}

impl PoolConfig {
    /// Settings with default sizes and timeouts for `url`. With them, a
    /// request to a stopped server fails within about 4 s: up to 2 s
    /// waiting for a free connection and 2 s connecting.
    pub fn new(url: SecretString) -> Self {
        Self {
            url,
            max_size: 10,
            wait_timeout: Duration::from_secs(2),
            create_timeout: Duration::from_secs(2),
            recycle_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A pool of PostgreSQL connections. Clones are cheap and share the
/// connections.
#[derive(Clone)]
pub struct Pool {
    inner: DeadPool,
}

impl fmt::Debug for Pool {
    // deadpool's own Debug prints the connection URL, which may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.status();
        f.debug_struct("Pool")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

/// Connections of a pool at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Configured maximum of connections.
    pub max_size: usize,
    /// Open connections.
    pub size: usize,
    /// Open connections that are idle.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl Pool {
    /// Builds a pool. Connections are opened on first use, so this succeeds
    /// while the database is down. Errors: [`DatabaseError::Config`].
    pub fn new(config: &PoolConfig) -> Result<Self, DatabaseError> {
        if config.max_size == 0 {
            return Err(DatabaseError::Config("max_size must be at least 1".into()));
        }
        let url = with_connect_timeout(config.url.expose_secret(), config.create_timeout);
        let manager = Manager::new(url, Runtime::Tokio1);
        let session_setup = session_setup_sql(config.statement_timeout);
        let setup_timeout = config.create_timeout;

        let inner = DeadPool::builder(manager)
            .max_size(config.max_size)
            .wait_timeout(Some(config.wait_timeout))
            .create_timeout(Some(config.create_timeout))
            .recycle_timeout(Some(config.recycle_timeout))
            .runtime(Runtime::Tokio1)
            .post_create(Hook::async_fn(move |connection, _| {
                let sql = session_setup.clone();
                Box::pin(async move {
                    // deadpool applies no timeout to hooks, so bound it here.
                    let setup = connection.interact(move |conn| conn.batch_execute(&sql));
                    match tokio::time::timeout(setup_timeout, setup).await {
                        Ok(Ok(Ok(()))) => Ok(()),
                        Ok(Ok(Err(error))) => Err(HookError::message(error.to_string())),
                        Ok(Err(error)) => Err(HookError::message(error.to_string())),
                        Err(_) => Err(HookError::message("session setup timed out")),
                    }
                })
            }))
            .build()
            .map_err(|error| DatabaseError::Config(error.to_string()))?;
        Ok(Self { inner })
    }

    /// Runs `work` on a pooled connection, on a blocking thread.
    ///
    /// NOTE: when a server stops responding without closing its sockets (a
    /// frozen process, a network partition), a query already sent waits
    /// for the operating system's TCP timeout, and each idle connection
    /// costs up to `recycle_timeout` before it is dropped.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, QueryError>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, QueryError> + Send + 'static,
        T: Send + 'static,
    {
        let connection = self.inner.get().await.map_err(pool_error)?;
        connection
            .interact(work)
            .await
            .map_err(|error| QueryError::Connection(format!("database call aborted: {error}")))?
    }

    /// Returns the pool's current use.
    pub fn usage(&self) -> PoolUsage {
        let status = self.inner.status();
        PoolUsage {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// Closes the pool: idle connections are closed now, connections in use
    /// when they are returned, and later requests fail.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// Runs `SELECT 1` on a pooled connection, for readiness checks.
/// Errors: [`DatabaseError::Unavailable`].
pub async fn ping(pool: &Pool) -> Result<(), DatabaseError> {
    pool.run(|conn| conn.batch_execute("SELECT 1").map_err(QueryError::from))
        .await?;
    Ok(())
}

/// Counts the tables in the `public` schema, to tell an empty database
/// from one in use. Errors: [`DatabaseError::Unavailable`].
pub async fn public_table_count(pool: &Pool) -> Result<u64, DatabaseError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let row: Count = pool
        .run(|conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query(
                "SELECT count(*) AS count FROM information_schema.tables \
                 WHERE table_schema = 'public'",
            )
            .get_result(conn)
            .map_err(QueryError::from)
        })
        .await?;
    Ok(u64::try_from(row.count).unwrap_or(0))
}

fn pool_error(error: PoolError) -> QueryError {
    let message = match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            "timed out waiting for a free database connection".into()
        }
        PoolError::Timeout(TimeoutType::Create) => "timed out opening a database connection".into(),
        PoolError::Timeout(TimeoutType::Recycle) => {
            "timed out checking an idle database connection".into()
        }
        PoolError::Backend(error) => format!("could not connect to the database: {error}"),
        PoolError::Closed => "the database pool is closed".into(),
        PoolError::NoRuntimeSpecified => "the database pool has no async runtime".into(),
        PoolError::PostCreateHook(error) => {
            format!("could not prepare a database session: {error}")
        }
    };
    QueryError::Connection(message)
}

fn session_setup_sql(statement_timeout: Duration) -> String {
    format!("SET statement_timeout = {}", statement_timeout.as_millis())
}

/// Adds libpq's `connect_timeout` to `url` unless it sets one already, so
/// that opening a connection to an unreachable host gives up.
pub(crate) fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    // libpq takes whole seconds and treats 1 as 2.
    let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    let seconds = seconds.max(2);

    let is_uri = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_uri {
        return format!("{url} connect_timeout={seconds}");
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={seconds}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_appended_to_uri() {
        let url = with_connect_timeout("postgres://app@db:5432/main", Duration::from_secs(3));
        assert_eq!(url, "postgres://app@db:5432/main?connect_timeout=3");
    }

    #[test]
    fn connect_timeout_joins_existing_query() {
        let url = with_connect_timeout(
            "postgresql://db/main?sslmode=require",
            Duration::from_secs(5),
        );
        assert_eq!(
            url,
            "postgresql://db/main?sslmode=require&connect_timeout=5"
        );
    }

    #[test]
    fn connect_timeout_is_appended_to_keyword_string() {
        let url = with_connect_timeout("host=db dbname=main", Duration::from_secs(4));
        assert_eq!(url, "host=db dbname=main connect_timeout=4");
    }

    #[test]
    fn connect_timeout_rounds_up_to_libpq_minimum() {
        let short = with_connect_timeout("postgres://db/main", Duration::from_millis(500));
        let fractional = with_connect_timeout("postgres://db/main", Duration::from_millis(2500));
        assert_eq!(short, "postgres://db/main?connect_timeout=2");
        assert_eq!(fractional, "postgres://db/main?connect_timeout=3");
    }

    #[test]
    fn connect_timeout_set_by_caller_is_kept() {
        let url = with_connect_timeout(
            "postgres://db/main?connect_timeout=9",
            Duration::from_secs(2),
        );
        assert_eq!(url, "postgres://db/main?connect_timeout=9");
    }

    #[test]
    fn zero_max_size_is_rejected() {
        let mut config = PoolConfig::new(SecretString::from("postgres://db/main"));
        config.max_size = 0;
        assert_eq!(
            Pool::new(&config).err(),
            Some(DatabaseError::Config("max_size must be at least 1".into()))
        );
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn statement_timeout_cancels_long_queries() {
        use diesel::RunQueryDsl;

        let db = crate::TestDatabase::create().await.unwrap();
        let mut config = PoolConfig::new(db.url().clone());
        config.statement_timeout = Duration::from_millis(200);
        let pool = Pool::new(&config).unwrap();

        let result = pool
            .run(|conn| {
                diesel::sql_query("SELECT pg_sleep(5)")
                    .execute(conn)
                    .map_err(QueryError::from)
            })
            .await;

        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert_eq!(
            message,
            "query failed: canceling statement due to statement timeout"
        );
    }

    #[test]
    fn debug_output_omits_the_url() {
        let config = PoolConfig::new(SecretString::from("postgres://app:hunter2@db/main"));
        let pool = Pool::new(&config).unwrap();
        let text = format!("{pool:?} {config:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
