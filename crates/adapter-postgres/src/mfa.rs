//! [`MfaStore`] over the `totp_credentials` and `recovery_codes` tables.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Text, Timestamptz, Uuid as SqlUuid};
use meditrustal_crypto::{KeyId, SealedData};
use meditrustal_identity::{AuthStoreError, MfaStore, StoredTotp, TokenHash, UserId};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::pool::Pool;
use crate::schema::{recovery_codes, totp_credentials};

/// PostgreSQL implementation of [`MfaStore`].
#[derive(Clone, Debug)]
pub struct PgMfaStore {
    pool: Pool,
}

impl PgMfaStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = totp_credentials, check_for_backend(diesel::pg::Pg))]
struct TotpRow {
    user_id: Uuid,
    key_id: String,
    wrapped_key: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
    confirmed_at: Option<DateTime<Utc>>,
    last_used_step: Option<i64>,
}

impl TotpRow {
    fn into_totp(self) -> Result<StoredTotp, QueryError> {
        let nonce = self.nonce.as_slice().try_into().map_err(|_| {
            convert::invalid("totp_credentials", self.user_id, "nonce", "is not 12 bytes")
        })?;
        let last_used_step = self
            .last_used_step
            .map(|step| {
                u64::try_from(step).map_err(|_| {
                    convert::invalid(
                        "totp_credentials",
                        self.user_id,
                        "last_used_step",
                        "is negative",
                    )
                })
            })
            .transpose()?;
        Ok(StoredTotp {
            sealed_secret: SealedData {
                key_id: KeyId::new(self.key_id),
                wrapped_key: self.wrapped_key,
                nonce,
                ciphertext: self.ciphertext,
            },
            confirmed: self.confirmed_at.is_some(),
            last_used_step,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = recovery_codes)]
struct NewRecoveryCodeRow {
    user_id: Uuid,
    code_hash: Vec<u8>,
    created_at: DateTime<Utc>,
}

/// Inserts a pending credential, or replaces the pending one; a confirmed
/// credential is left alone and no row is reported.
const SAVE_PENDING_SQL: &str = "\
INSERT INTO totp_credentials (user_id, key_id, wrapped_key, nonce, ciphertext, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id) DO UPDATE SET
    key_id = EXCLUDED.key_id,
    wrapped_key = EXCLUDED.wrapped_key,
    nonce = EXCLUDED.nonce,
    ciphertext = EXCLUDED.ciphertext,
    last_used_step = NULL,
    created_at = EXCLUDED.created_at
WHERE totp_credentials.confirmed_at IS NULL";

fn step_column(step: u64) -> Result<i64, QueryError> {
    i64::try_from(step)
        .map_err(|_| QueryError::Conversion(format!("time step {step} does not fit in bigint")))
}

#[async_trait]
impl MfaStore for PgMfaStore {
    async fn find_totp(&self, user_id: UserId) -> Result<Option<StoredTotp>, AuthStoreError> {
        let totp = self
            .pool
            .run(move |conn| {
                let row = totp_credentials::table
                    .find(user_id.0)
                    .select(TotpRow::as_select())
                    .first(conn)
                    .optional()?;
                row.map(TotpRow::into_totp).transpose()
            })
            .await?;
        Ok(totp)
    }

    async fn save_pending_totp(
        &self,
        user_id: UserId,
        totp: &StoredTotp,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError> {
        let sealed = totp.sealed_secret.clone();
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::sql_query(SAVE_PENDING_SQL)
                    .bind::<SqlUuid, _>(user_id.0)
                    .bind::<Text, _>(sealed.key_id.as_str())
                    .bind::<Bytea, _>(&sealed.wrapped_key)
                    .bind::<Bytea, _>(sealed.nonce.as_slice())
                    .bind::<Bytea, _>(&sealed.ciphertext)
                    .bind::<Timestamptz, _>(now)
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(count == 1)
    }

    async fn confirm_totp(
        &self,
        user_id: UserId,
        totp: &StoredTotp,
        step: u64,
        recovery_code_hashes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError> {
        let step = step_column(step)?;
        let nonce = totp.sealed_secret.nonce.to_vec();
        let ciphertext = totp.sealed_secret.ciphertext.clone();
        let codes: Vec<NewRecoveryCodeRow> = recovery_code_hashes
            .iter()
            .map(|hash| NewRecoveryCodeRow {
                user_id: user_id.0,
                code_hash: hash.as_bytes().to_vec(),
                created_at: now,
            })
            .collect();
        let confirmed = self
            .pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    // Matching the nonce and ciphertext confirms the secret the
                    // code was checked against, not a newer enrollment.
                    let count = diesel::update(totp_credentials::table.find(user_id.0))
                        .filter(totp_credentials::confirmed_at.is_null())
                        .filter(totp_credentials::nonce.eq(&nonce))
                        .filter(totp_credentials::ciphertext.eq(&ciphertext))
                        .set((
                            totp_credentials::confirmed_at.eq(now),
                            totp_credentials::last_used_step.eq(step),
                        ))
                        .execute(conn)?;
                    if count != 1 {
                        return Ok(false);
                    }
                    diesel::delete(
                        recovery_codes::table.filter(recovery_codes::user_id.eq(user_id.0)),
                    )
                    .execute(conn)?;
                    diesel::insert_into(recovery_codes::table)
                        .values(&codes)
                        .execute(conn)?;
                    Ok(true)
                })
            })
            .await?;
        Ok(confirmed)
    }

    async fn use_totp_step(&self, user_id: UserId, step: u64) -> Result<bool, AuthStoreError> {
        let step = step_column(step)?;
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::update(totp_credentials::table.find(user_id.0))
                    .filter(totp_credentials::confirmed_at.is_not_null())
                    .filter(
                        totp_credentials::last_used_step
                            .is_null()
                            .or(totp_credentials::last_used_step.lt(step)),
                    )
                    .set(totp_credentials::last_used_step.eq(step))
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(count == 1)
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError> {
        let hash = hash.as_bytes().to_vec();
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::update(recovery_codes::table.find((user_id.0, &hash)))
                    .filter(recovery_codes::used_at.is_null())
                    .set(recovery_codes::used_at.eq(now))
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(count == 1)
    }

    async fn delete(&self, user_id: UserId) -> Result<(), AuthStoreError> {
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::delete(
                        recovery_codes::table.filter(recovery_codes::user_id.eq(user_id.0)),
                    )
                    .execute(conn)?;
                    diesel::delete(totp_credentials::table.find(user_id.0)).execute(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }
}
