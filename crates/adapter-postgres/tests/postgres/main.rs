//! Store tests against a real PostgreSQL server. Each test gets its own
//! database cloned from a migrated template (see `TestDatabase`); set
//! `MEDITRUSTAL_TEST_DATABASE_URL` to use a server other than
//! `postgres://postgres@127.0.0.1:5432`. The pool tests also start a
//! private server of their own with `initdb` and `pg_ctl`.

// clippy.toml allows these in #[test] functions only, not in the helpers
// that every test in this crate shares.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test fails"
)]

mod audit;
mod auth_stores;
mod consents;
mod outbox;
mod pool;
mod records;
mod support;
mod users;
mod watch;
