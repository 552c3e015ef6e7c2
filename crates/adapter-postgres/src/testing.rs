//! Test support: a fresh database per test, cloned from a migrated template.
//!
//! The template is named after a hash of the migration files, so a changed
//! migration gets a new template while test processes built from other
//! revisions keep theirs. Test processes run in parallel, so the template
//! is built under a PostgreSQL advisory lock and renamed into place only
//! when fully migrated.

use std::sync::Mutex;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::error::DatabaseError;
use crate::migrations::{apply_migrations, MIGRATIONS_HASH};
use crate::pool::{with_connect_timeout, Pool, PoolConfig};

/// Environment variable with the server URL for test databases, without a
/// database name: `postgres://user[:password]@host:port`.
pub const SERVER_URL_ENV: &str = "MEDITRUSTAL_TEST_DATABASE_URL";

/// Server URL used when [`SERVER_URL_ENV`] is not set.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// Prefix of every database this module creates.
pub const DATABASE_PREFIX: &str = "meditrustal_test_";

/// Advisory lock key held while a template is checked or built. The value
/// is arbitrary but fixed.
const TEMPLATE_LOCK_KEY: i64 = 0x4d54_414c_7465_6d70;

/// Whether this process has seen the current template exist.
static TEMPLATE_READY: Mutex<bool> = Mutex::new(false);

/// A database of its own for one test, dropped with the value.
pub struct TestDatabase {
    name: String,
    server_url: SecretString,
    url: SecretString,
    pool: Pool,
}

impl TestDatabase {
    /// Creates a migrated database named `meditrustal_test_<uuid>` on the
    /// server in [`SERVER_URL_ENV`] (default [`DEFAULT_SERVER_URL`]), with
    /// a pool of default size. Errors: [`DatabaseError::Unavailable`] when
    /// the server cannot be reached, [`DatabaseError::Migration`].
    pub async fn create() -> Result<Self, DatabaseError> {
        let server_url =
            std::env::var(SERVER_URL_ENV).unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());

        let (server, database) = (server_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let template = ensure_template(&server)?;
            create_from_template(&server, &database, &template)
        })
        .await
        .map_err(|error| {
            DatabaseError::Unavailable(format!("test database thread failed: {error}"))
        })??;

        let url = SecretString::from(database_url(&server_url, &name));
        let pool = Pool::new(&PoolConfig::new(url.clone()))?;
        Ok(Self {
            name,
            server_url: SecretString::from(server_url),
            url,
            pool,
        })
    }

    /// Creates an empty database, without migrations, named like
    /// [`TestDatabase::create`]'s; for restore tests. Errors:
    /// [`DatabaseError::Unavailable`].
    pub async fn create_empty() -> Result<Self, DatabaseError> {
        let server_url =
            std::env::var(SERVER_URL_ENV).unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let name = format!("{DATABASE_PREFIX}{}", Uuid::new_v4().simple());

        let (server, database) = (server_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let mut admin = connect(&database_url(&server, "postgres"))?;
            admin
                .batch_execute(&format!("CREATE DATABASE \"{database}\""))
                .map_err(|error| DatabaseError::Unavailable(error.to_string()))
        })
        .await
        .map_err(|error| {
            DatabaseError::Unavailable(format!("test database thread failed: {error}"))
        })??;

        let url = SecretString::from(database_url(&server_url, &name));
        let pool = Pool::new(&PoolConfig::new(url.clone()))?;
        Ok(Self {
            name,
            server_url: SecretString::from(server_url),
            url,
            pool,
        })
    }

    /// Returns the database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the database's URL.
    pub fn url(&self) -> &SecretString {
        &self.url
    }

    /// Returns the pool over the database.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Opens a blocking connection outside the pool, for test setup and
    /// assertions. Errors: [`DatabaseError::Unavailable`].
    pub fn connect(&self) -> Result<PgConnection, DatabaseError> {
        connect(self.url.expose_secret())
    }
}

impl Drop for TestDatabase {
    /// Drops the database, terminating its connections. Failures are
    /// ignored: a leftover database only takes disk space, and its name
    /// starts with [`DATABASE_PREFIX`] for manual cleanup.
    fn drop(&mut self) {
        self.pool.close();
        let server = self.server_url.expose_secret();
        if let Ok(mut admin) = connect(&database_url(server, "postgres")) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Makes sure the template for the current migrations exists and returns
/// its name.
fn ensure_template(server_url: &str) -> Result<String, DatabaseError> {
    let template = format!("{DATABASE_PREFIX}template_{MIGRATIONS_HASH}");
    let mut ready = TEMPLATE_READY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *ready {
        return Ok(template);
    }

    let mut admin = connect(&database_url(server_url, "postgres"))?;
    execute(
        &mut admin,
        &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"),
    )?;
    let built = build_template_unless_present(&mut admin, server_url, &template);
    // The lock also ends with the session, so a failed unlock loses nothing.
    let _ = admin.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"));
    built?;

    *ready = true;
    Ok(template)
}

fn build_template_unless_present(
    admin: &mut PgConnection,
    server_url: &str,
    template: &str,
) -> Result<(), DatabaseError> {
    let existing: Count =
        diesel::sql_query("SELECT count(*) AS count FROM pg_database WHERE datname = $1")
            .bind::<Text, _>(template)
            .get_result(admin)
            .map_err(unavailable)?;
    if existing.count > 0 {
        return Ok(());
    }

    // Built under another name and renamed when complete, so a process
    // that dies mid-build never leaves a half-migrated template behind.
    let partial = format!("{template}_partial");
    execute(
        admin,
        &format!("DROP DATABASE IF EXISTS \"{partial}\" WITH (FORCE)"),
    )?;
    execute(admin, &format!("CREATE DATABASE \"{partial}\""))?;
    {
        let mut conn = connect(&database_url(server_url, &partial))?;
        apply_migrations(&mut conn)?;
    }
    execute(
        admin,
        &format!("ALTER DATABASE \"{partial}\" RENAME TO \"{template}\""),
    )?;
    // Copying a template fails while anyone is connected to it.
    execute(
        admin,
        &format!("ALTER DATABASE \"{template}\" ALLOW_CONNECTIONS false"),
    )
}

fn create_from_template(
    server_url: &str,
    database: &str,
    template: &str,
) -> Result<(), DatabaseError> {
    let mut admin = connect(&database_url(server_url, "postgres"))?;
    execute(
        &mut admin,
        &format!("CREATE DATABASE \"{database}\" TEMPLATE \"{template}\""),
    )
}

/// Puts `database` into a server URL, before any query string.
fn database_url(server_url: &str, database: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let base = base.trim_end_matches('/');
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

fn connect(url: &str) -> Result<PgConnection, DatabaseError> {
    PgConnection::establish(&with_connect_timeout(url, Duration::from_secs(5)))
        .map_err(|error| DatabaseError::Unavailable(error.to_string()))
}

fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), DatabaseError> {
    conn.batch_execute(sql).map_err(unavailable)
}

fn unavailable(error: diesel::result::Error) -> DatabaseError {
    DatabaseError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_appends_name() {
        assert_eq!(
            database_url("postgres://u@h:5432", "db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(
            database_url("postgres://u@h:5432/", "db"),
            "postgres://u@h:5432/db"
        );
    }

    #[test]
    fn database_url_keeps_query() {
        assert_eq!(
            database_url("postgres://u@h:5432?sslmode=disable", "db"),
            "postgres://u@h:5432/db?sslmode=disable"
        );
    }
}
