//! Adapter layer: PostgreSQL implementations of the domain store ports
//! ([`UserStore`](meditrustal_identity::UserStore),
//! [`UserAdminStore`](meditrustal_identity::UserAdminStore),
//! [`RecordStore`](meditrustal_records::RecordStore),
//! [`ConsentStore`](meditrustal_records::ConsentStore),
//! [`OutboxStore`](meditrustal_ledger::OutboxStore),
//! [`BatchStore`](meditrustal_ledger::BatchStore),
//! [`WatchStore`](meditrustal_ledger::WatchStore),
//! [`SignerLock`](meditrustal_ledger::SignerLock),
//! [`AuditStore`](meditrustal_audit::AuditStore), and the session,
//! throttle, one-time token and MFA stores of the identity crate) with
//! Diesel and a deadpool connection pool, plus the schema migrations and
//! [`PgMailOutbox`], the development notifier.
//!
//! Depends on the domain crates and database libraries only. Stores
//! translate database errors into each port's error type and do not log;
//! callers log. Every store writes a row and its outbox job in one
//! transaction, so a committed user, record, consent or revocation always
//! has its chain job.
//!
//! With the `testing` feature, [`TestDatabase`] gives each test its own
//! migrated database.

mod admin;
mod audit;
mod audit_group;
mod batches;
mod consents;
mod convert;
mod error;
mod key_rotation;
mod mail_outbox;
mod master_keys;
mod mfa;
mod migrations;
mod one_time_tokens;
mod outbox;
mod pool;
mod records;
mod schema;
mod sessions;
mod signer_lock;
mod stats;
#[cfg(feature = "testing")]
mod test_server;
#[cfg(feature = "testing")]
mod testing;
mod throttle;
mod users;
mod watch;

pub use admin::PgUserAdminStore;
pub use audit::{AppendOnlyGaps, PgAuditStore};
pub use batches::PgBatchStore;
pub use consents::PgConsentStore;
pub use error::DatabaseError;
pub use key_rotation::{
    retire_master_key, rewrap_batch, wrapped_key_counts, RetireError, RewrapBatch, RewrapError,
    SealedTable, WrappedKeyCount,
};
pub use mail_outbox::PgMailOutbox;
pub use master_keys::{check_master_key, check_previous_master_key, MasterKeyError};
pub use mfa::PgMfaStore;
pub use migrations::{run_migrations, MIGRATIONS};
pub use one_time_tokens::PgOneTimeTokenStore;
pub use outbox::PgOutboxStore;
pub use pool::{ping, public_table_count, Pool, PoolConfig, PoolUsage};
pub use records::PgRecordStore;
pub use sessions::PgSessionStore;
pub use signer_lock::{PgSignerLock, SIGNER_LOCK_KEY};
pub use stats::{anchoring_delays, outbox_backlog, DelayHistogram, OutboxBacklog};
pub use throttle::PgLoginThrottle;
pub use users::PgUserStore;
pub use watch::PgWatchStore;

#[cfg(feature = "testing")]
pub use test_server::PgServer;
#[cfg(feature = "testing")]
pub use testing::{TestDatabase, DATABASE_PREFIX, DEFAULT_SERVER_URL, SERVER_URL_ENV};
