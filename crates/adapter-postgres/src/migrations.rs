//! Schema migrations from `migrations/`, embedded at compile time.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::{ExposeSecret, SecretString};

use crate::error::DatabaseError;
use crate::pool::with_connect_timeout;

/// The migrations in the workspace's `migrations/` directory.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Hash of the migration files' names and contents, computed by `build.rs`.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) const MIGRATIONS_HASH: &str = env!("MEDITRUSTAL_MIGRATIONS_HASH");

/// Advisory lock key held while migrating, so that processes started
/// together apply each migration once. The value is arbitrary but fixed.
const MIGRATION_LOCK_KEY: i64 = 0x4d54_414c_6d69_6772;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies the pending migrations, each in its own transaction, and
/// returns the versions applied now, oldest first. Runs on a blocking
/// thread. Errors: [`DatabaseError::Unavailable`] when the database cannot
/// be reached, [`DatabaseError::Migration`] when a migration fails.
pub async fn run_migrations(database_url: &SecretString) -> Result<Vec<String>, DatabaseError> {
    let url = with_connect_timeout(database_url.expose_secret(), CONNECT_TIMEOUT);
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url)
            .map_err(|error| DatabaseError::Unavailable(error.to_string()))?;
        apply_migrations(&mut conn)
    })
    .await
    .map_err(|error| DatabaseError::Migration(format!("migration thread failed: {error}")))?
}

/// Applies the pending migrations on `conn` under the migration lock.
pub(crate) fn apply_migrations(conn: &mut PgConnection) -> Result<Vec<String>, DatabaseError> {
    let unavailable = |error: diesel::result::Error| DatabaseError::Unavailable(error.to_string());

    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .map_err(unavailable)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|error| DatabaseError::Migration(error.to_string()));
    // The lock also ends with the session, so a failed unlock loses nothing.
    let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));

    let applied = applied?;
    unlocked.map_err(unavailable)?;
    Ok(applied)
}
