//! Check values of the master keys that sealed data in this database.

use diesel::prelude::*;
use meditrustal_crypto::MasterKey;

use crate::error::{DatabaseError, QueryError};
use crate::pool::Pool;
use crate::schema::master_keys;

/// Error from [`check_master_key`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MasterKeyError {
    /// The database recorded another key under this id: data sealed before
    /// would not open. Nothing was changed.
    #[error(
        "master key {key_id} is not the key that sealed the data in this database; \
         configure the original key, or give a new key a new id"
    )]
    Mismatch {
        /// The configured key id.
        key_id: String,
    },
    /// The key was retired with `meditrustal keys retire`: no data is
    /// wrapped under it any more, and no new data may be.
    #[error(
        "master key {key_id} is retired; configure the key that replaced it as \
         crypto.master_key_id and crypto.master_key"
    )]
    Retired {
        /// The configured key id.
        key_id: String,
    },
    /// The database could not be reached.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// Records the check value of `key` on first use of its id, and otherwise
/// compares it with the recorded one; for the key that seals new data.
/// Errors: [`MasterKeyError::Mismatch`], [`MasterKeyError::Retired`],
/// [`MasterKeyError::Database`].
pub async fn check_master_key(pool: &Pool, key: &MasterKey) -> Result<(), MasterKeyError> {
    let retired = record_or_compare(pool, key).await?;
    if retired {
        return Err(MasterKeyError::Retired {
            key_id: key.id().as_str().to_owned(),
        });
    }
    Ok(())
}

/// Like [`check_master_key`] for a previous key, which only opens data and
/// may be retired. Errors: [`MasterKeyError::Mismatch`],
/// [`MasterKeyError::Database`].
pub async fn check_previous_master_key(pool: &Pool, key: &MasterKey) -> Result<(), MasterKeyError> {
    record_or_compare(pool, key).await.map(|_retired| ())
}

/// Returns whether the key is retired.
async fn record_or_compare(pool: &Pool, key: &MasterKey) -> Result<bool, MasterKeyError> {
    let key_id = key.id().as_str().to_owned();
    let check_value = key.check_value().as_bytes().to_vec();

    let (id, expected) = (key_id.clone(), check_value);
    let (stored, retired): (Vec<u8>, Option<chrono::DateTime<chrono::Utc>>) = pool
        .run(move |conn| {
            diesel::insert_into(master_keys::table)
                .values((
                    master_keys::key_id.eq(&id),
                    master_keys::check_value.eq(&expected),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            master_keys::table
                .find(&id)
                .select((master_keys::check_value, master_keys::retired_at))
                .first(conn)
                .map_err(QueryError::from)
        })
        .await
        .map_err(DatabaseError::from)?;

    if stored == key.check_value().as_bytes() {
        Ok(retired.is_some())
    } else {
        Err(MasterKeyError::Mismatch { key_id })
    }
}
