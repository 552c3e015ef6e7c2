//! Master key rotation: re-wraps the data keys stored in `medical_records`,
//! `user_keys` and `totp_credentials` under the current master key, and
//! retires master keys that no data key needs any more.
//!
//! Only `key_id` and `wrapped_key` change; nonces and ciphertexts are never
//! rewritten. Each batch is one transaction that locks its rows, so a
//! server writing the same rows (anchoring, TOTP use) waits for it.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use meditrustal_crypto::{CryptoError, KeyId, KeyProvider, SealedData};
use meditrustal_identity::{custodial_key_aad, totp_secret_aad, UserId};
use meditrustal_records::record_aad;
use uuid::Uuid;

use crate::error::{DatabaseError, QueryError};
use crate::pool::Pool;
use crate::records::{batch_columns_of, StoredRecordRow};
use crate::schema::{master_keys, medical_records, totp_credentials, user_keys};

/// A table whose rows hold a data key wrapped by a master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SealedTable {
    /// Record content.
    MedicalRecords,
    /// Custodial secp256k1 keys.
    UserKeys,
    /// TOTP secrets.
    TotpCredentials,
}

impl SealedTable {
    /// Every table with wrapped data keys, in the order rotation visits them.
    pub const ALL: [Self; 3] = [Self::MedicalRecords, Self::UserKeys, Self::TotpCredentials];

    /// The table name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MedicalRecords => "medical_records",
            Self::UserKeys => "user_keys",
            Self::TotpCredentials => "totp_credentials",
        }
    }
}

/// How many data keys of one table a master key wraps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKeyCount {
    /// The table.
    pub table: SealedTable,
    /// The master key id.
    pub key_id: String,
    /// Number of rows.
    pub count: u64,
}

/// Outcome of one [`rewrap_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewrapBatch {
    /// Rows whose data key was re-wrapped in this batch.
    pub rewrapped: usize,
    /// Primary key of the last row visited; the next batch starts after it.
    /// `None` when no row was left after `after`.
    pub last_id: Option<Uuid>,
}

/// Errors of [`rewrap_batch`]. The batch's transaction is rolled back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RewrapError {
    /// A row's data key could not be unwrapped: its master key is not
    /// configured, or the row was altered.
    #[error("cannot re-wrap the data key of {table} row {id}: {reason}")]
    Crypto {
        /// The table.
        table: &'static str,
        /// The row's primary key.
        id: Uuid,
        /// Why the data key did not unwrap.
        reason: CryptoError,
    },
    /// The database could not be reached or the query failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// Errors of [`retire_master_key`]. Nothing was changed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RetireError {
    /// No data was ever sealed under this key id in this database.
    #[error("master key {key_id} is not recorded in this database; check the key id")]
    Unknown {
        /// The key id.
        key_id: String,
    },
    /// Data keys are still wrapped under the key.
    #[error(
        "master key {key_id} still wraps {total} data keys ({details}); run \
         `meditrustal keys rotate` with another current master key first"
    )]
    StillInUse {
        /// The key id.
        key_id: String,
        /// Rows still wrapped under it.
        total: u64,
        /// Rows per table, as `table count`, comma-separated.
        details: String,
    },
    /// The database could not be reached or the query failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// Counts the data keys per table and master key id. Errors:
/// [`DatabaseError::Unavailable`].
pub async fn wrapped_key_counts(pool: &Pool) -> Result<Vec<WrappedKeyCount>, DatabaseError> {
    let rows = pool
        .run(|conn| {
            diesel::sql_query(
                "SELECT 'medical_records' AS table_name, key_id, count(*) AS count \
                 FROM medical_records GROUP BY key_id \
                 UNION ALL SELECT 'user_keys', key_id, count(*) FROM user_keys GROUP BY key_id \
                 UNION ALL SELECT 'totp_credentials', key_id, count(*) FROM totp_credentials \
                 GROUP BY key_id",
            )
            .load::<CountRow>(conn)
            .map_err(QueryError::from)
        })
        .await?;

    let mut counts: Vec<WrappedKeyCount> = rows
        .into_iter()
        .filter_map(|row| {
            let table = SealedTable::ALL
                .into_iter()
                .find(|table| table.name() == row.table_name)?;
            Some(WrappedKeyCount {
                table,
                key_id: row.key_id,
                count: u64::try_from(row.count).unwrap_or(0),
            })
        })
        .collect();
    counts.sort_by(|a, b| (a.table, &a.key_id).cmp(&(b.table, &b.key_id)));
    Ok(counts)
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Re-wraps, in one transaction, up to `limit` data keys of `table` that
/// the current key of `keys` does not wrap, visiting rows in primary key
/// order after `after`. Errors: [`RewrapError::Crypto`] naming the first
/// row that fails, [`RewrapError::Database`].
pub async fn rewrap_batch(
    pool: &Pool,
    table: SealedTable,
    keys: Arc<dyn KeyProvider>,
    after: Option<Uuid>,
    limit: u32,
) -> Result<RewrapBatch, RewrapError> {
    let limit = i64::from(limit.max(1));
    let after = after.unwrap_or(Uuid::nil());
    let outcome = pool
        .run(move |conn| {
            Ok(conn.transaction(|conn| match table {
                SealedTable::MedicalRecords => rewrap_records(conn, keys.as_ref(), after, limit),
                SealedTable::UserKeys => rewrap_user_keys(conn, keys.as_ref(), after, limit),
                SealedTable::TotpCredentials => rewrap_totp(conn, keys.as_ref(), after, limit),
            }))
        })
        .await
        .map_err(DatabaseError::from)?;
    match outcome {
        Ok(batch) => Ok(batch),
        Err(BatchError::Query(error)) => Err(DatabaseError::from(error).into()),
        Err(BatchError::Crypto { id, reason }) => Err(RewrapError::Crypto {
            table: table.name(),
            id,
            reason,
        }),
    }
}

enum BatchError {
    Query(QueryError),
    Crypto { id: Uuid, reason: CryptoError },
}

impl From<diesel::result::Error> for BatchError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Query(QueryError::from(error))
    }
}

fn rewrap_records(
    conn: &mut PgConnection,
    keys: &dyn KeyProvider,
    after: Uuid,
    limit: i64,
) -> Result<RewrapBatch, BatchError> {
    let target = keys.current();
    let rows: Vec<StoredRecordRow> = medical_records::table
        .filter(medical_records::id.gt(after))
        .filter(medical_records::key_id.ne(target.id().as_str()))
        .order(medical_records::id)
        .limit(limit)
        .select(StoredRecordRow::as_select())
        .for_update()
        .load(conn)?;

    let ids: Vec<Uuid> = rows.iter().map(StoredRecordRow::id).collect();
    let mut placements = batch_columns_of(conn, &ids)?;

    let mut batch = RewrapBatch {
        rewrapped: 0,
        last_id: None,
    };
    for row in rows {
        let placement = placements.remove(&row.id()).flatten();
        let stored = row.into_stored(placement).map_err(BatchError::Query)?;
        let id = stored.record.id.0;
        let sealed =
            meditrustal_crypto::rewrap(keys, &stored.sealed, &record_aad(&stored.record), target)
                .map_err(|reason| BatchError::Crypto { id, reason })?;
        diesel::update(medical_records::table.find(id))
            .set((
                medical_records::key_id.eq(sealed.key_id.as_str()),
                medical_records::wrapped_key.eq(&sealed.wrapped_key),
            ))
            .execute(conn)?;
        batch.rewrapped += 1;
        batch.last_id = Some(id);
    }
    Ok(batch)
}

type SealedColumns = (Uuid, String, Vec<u8>, Vec<u8>, Vec<u8>);

fn sealed_from_columns(
    (id, key_id, wrapped_key, nonce, ciphertext): SealedColumns,
    table: &str,
) -> Result<(Uuid, SealedData), BatchError> {
    let nonce = nonce.as_slice().try_into().map_err(|_| {
        BatchError::Query(crate::convert::invalid(
            table,
            id,
            "nonce",
            "is not 12 bytes",
        ))
    })?;
    let sealed = SealedData {
        key_id: KeyId::new(key_id),
        wrapped_key,
        nonce,
        ciphertext,
    };
    Ok((id, sealed))
}

fn rewrap_user_keys(
    conn: &mut PgConnection,
    keys: &dyn KeyProvider,
    after: Uuid,
    limit: i64,
) -> Result<RewrapBatch, BatchError> {
    let target = keys.current();
    let rows: Vec<SealedColumns> = user_keys::table
        .filter(user_keys::user_id.gt(after))
        .filter(user_keys::key_id.ne(target.id().as_str()))
        .order(user_keys::user_id)
        .limit(limit)
        .select((
            user_keys::user_id,
            user_keys::key_id,
            user_keys::wrapped_key,
            user_keys::nonce,
            user_keys::ciphertext,
        ))
        .for_update()
        .load(conn)?;

    let mut batch = RewrapBatch {
        rewrapped: 0,
        last_id: None,
    };
    for row in rows {
        let (id, sealed) = sealed_from_columns(row, "user_keys")?;
        let aad = custodial_key_aad(UserId(id));
        let sealed = meditrustal_crypto::rewrap(keys, &sealed, &aad, target)
            .map_err(|reason| BatchError::Crypto { id, reason })?;
        diesel::update(user_keys::table.find(id))
            .set((
                user_keys::key_id.eq(sealed.key_id.as_str()),
                user_keys::wrapped_key.eq(&sealed.wrapped_key),
            ))
            .execute(conn)?;
        batch.rewrapped += 1;
        batch.last_id = Some(id);
    }
    Ok(batch)
}

fn rewrap_totp(
    conn: &mut PgConnection,
    keys: &dyn KeyProvider,
    after: Uuid,
    limit: i64,
) -> Result<RewrapBatch, BatchError> {
    let target = keys.current();
    let rows: Vec<SealedColumns> = totp_credentials::table
        .filter(totp_credentials::user_id.gt(after))
        .filter(totp_credentials::key_id.ne(target.id().as_str()))
        .order(totp_credentials::user_id)
        .limit(limit)
        .select((
            totp_credentials::user_id,
            totp_credentials::key_id,
            totp_credentials::wrapped_key,
            totp_credentials::nonce,
            totp_credentials::ciphertext,
        ))
        .for_update()
        .load(conn)?;

    let mut batch = RewrapBatch {
        rewrapped: 0,
        last_id: None,
    };
    for row in rows {
        let (id, sealed) = sealed_from_columns(row, "totp_credentials")?;
        let aad = totp_secret_aad(UserId(id));
        let sealed = meditrustal_crypto::rewrap(keys, &sealed, &aad, target)
            .map_err(|reason| BatchError::Crypto { id, reason })?;
        diesel::update(totp_credentials::table.find(id))
            .set((
                totp_credentials::key_id.eq(sealed.key_id.as_str()),
                totp_credentials::wrapped_key.eq(&sealed.wrapped_key),
            ))
            .execute(conn)?;
        batch.rewrapped += 1;
        batch.last_id = Some(id);
    }
    Ok(batch)
}

/// Marks master key `key_id` retired once no data key is wrapped under it,
/// so that no server starts with it as its current key. Retiring a key
/// twice is not an error. Errors: [`RetireError::Unknown`],
/// [`RetireError::StillInUse`], [`RetireError::Database`].
pub async fn retire_master_key(pool: &Pool, key_id: &str) -> Result<(), RetireError> {
    let id = key_id.to_owned();
    let outcome = pool
        .run(move |conn| {
            conn.transaction(|conn| {
                let known = master_keys::table
                    .find(&id)
                    .select(master_keys::key_id)
                    .for_update()
                    .first::<String>(conn)
                    .optional()?;
                if known.is_none() {
                    return Ok(Err(RetireError::Unknown { key_id: id.clone() }));
                }
                let in_use = [
                    (
                        SealedTable::MedicalRecords,
                        count_under(conn, SealedTable::MedicalRecords, &id)?,
                    ),
                    (
                        SealedTable::UserKeys,
                        count_under(conn, SealedTable::UserKeys, &id)?,
                    ),
                    (
                        SealedTable::TotpCredentials,
                        count_under(conn, SealedTable::TotpCredentials, &id)?,
                    ),
                ];
                let total: u64 = in_use.iter().map(|(_, count)| *count).sum();
                if total > 0 {
                    let details = in_use
                        .iter()
                        .filter(|(_, count)| *count > 0)
                        .map(|(table, count)| format!("{} {count}", table.name()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Ok(Err(RetireError::StillInUse {
                        key_id: id.clone(),
                        total,
                        details,
                    }));
                }
                diesel::update(master_keys::table.find(&id))
                    .filter(master_keys::retired_at.is_null())
                    .set(master_keys::retired_at.eq(diesel::dsl::now))
                    .execute(conn)?;
                Ok(Ok(()))
            })
        })
        .await
        .map_err(DatabaseError::from)?;
    outcome
}

fn count_under(
    conn: &mut PgConnection,
    table: SealedTable,
    key_id: &str,
) -> Result<u64, QueryError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let row: Count = diesel::sql_query(format!(
        "SELECT count(*) AS count FROM {} WHERE key_id = $1",
        table.name()
    ))
    .bind::<Text, _>(key_id)
    .get_result(conn)?;
    Ok(u64::try_from(row.count).unwrap_or(0))
}
