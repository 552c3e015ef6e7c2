//! [`OneTimeTokenStore`] over the `one_time_tokens` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_identity::{
    AuthStoreError, NewOneTimeToken, OneTimeToken, OneTimeTokenStore, TokenHash, TokenPurpose,
    UserId,
};
use uuid::Uuid;

use crate::pool::Pool;
use crate::schema::one_time_tokens;

/// PostgreSQL implementation of [`OneTimeTokenStore`].
#[derive(Clone, Debug)]
pub struct PgOneTimeTokenStore {
    pool: Pool,
}

impl PgOneTimeTokenStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = one_time_tokens)]
struct NewTokenRow {
    token_hash: Vec<u8>,
    purpose: &'static str,
    user_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[async_trait]
impl OneTimeTokenStore for PgOneTimeTokenStore {
    async fn insert(&self, token: &NewOneTimeToken) -> Result<(), AuthStoreError> {
        let row = NewTokenRow {
            token_hash: token.hash.as_bytes().to_vec(),
            purpose: token.purpose.as_str(),
            user_id: token.user_id.0,
            created_at: token.created_at,
            expires_at: token.expires_at,
        };
        self.pool
            .run(move |conn| {
                diesel::insert_into(one_time_tokens::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn find_active(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<OneTimeToken>, AuthStoreError> {
        let hash = hash.as_bytes().to_vec();
        let row = self
            .pool
            .run(move |conn| {
                let row: Option<(Uuid, DateTime<Utc>, i32)> = one_time_tokens::table
                    .find(&hash)
                    .filter(one_time_tokens::purpose.eq(purpose.as_str()))
                    .filter(one_time_tokens::used_at.is_null())
                    .filter(one_time_tokens::expires_at.gt(now))
                    .select((
                        one_time_tokens::user_id,
                        one_time_tokens::expires_at,
                        one_time_tokens::failed_attempts,
                    ))
                    .first(conn)
                    .optional()?;
                Ok(row)
            })
            .await?;
        Ok(
            row.map(|(user_id, expires_at, failed_attempts)| OneTimeToken {
                user_id: UserId(user_id),
                expires_at,
                failed_attempts: u32::try_from(failed_attempts).unwrap_or(0),
            }),
        )
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, AuthStoreError> {
        let hash = hash.as_bytes().to_vec();
        let user = self
            .pool
            .run(move |conn| {
                let user: Option<Uuid> = diesel::update(one_time_tokens::table.find(&hash))
                    .filter(one_time_tokens::purpose.eq(purpose.as_str()))
                    .filter(one_time_tokens::used_at.is_null())
                    .filter(one_time_tokens::expires_at.gt(now))
                    .set(one_time_tokens::used_at.eq(now))
                    .returning(one_time_tokens::user_id)
                    .get_result(conn)
                    .optional()?;
                Ok(user)
            })
            .await?;
        Ok(user.map(UserId))
    }

    async fn record_failed_attempt(&self, hash: &TokenHash) -> Result<u32, AuthStoreError> {
        let hash = hash.as_bytes().to_vec();
        let attempts = self
            .pool
            .run(move |conn| {
                let attempts: Option<i32> = diesel::update(one_time_tokens::table.find(&hash))
                    .set(one_time_tokens::failed_attempts.eq(one_time_tokens::failed_attempts + 1))
                    .returning(one_time_tokens::failed_attempts)
                    .get_result(conn)
                    .optional()?;
                Ok(attempts)
            })
            .await?;
        Ok(attempts
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0))
    }

    async fn delete_for_user(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
    ) -> Result<(), AuthStoreError> {
        self.pool
            .run(move |conn| {
                diesel::delete(
                    one_time_tokens::table
                        .filter(one_time_tokens::user_id.eq(user_id.0))
                        .filter(one_time_tokens::purpose.eq(purpose.as_str()))
                        .filter(one_time_tokens::used_at.is_null()),
                )
                .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
