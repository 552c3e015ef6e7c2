//! [`SessionStore`] over the `sessions` and `refresh_tokens` tables.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_identity::{
    AuthStoreError, NewSession, RefreshRotation, RotationOutcome, Session, SessionId, SessionStore,
    TokenHash, UserId,
};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::pool::Pool;
use crate::schema::{refresh_tokens, sessions};

/// PostgreSQL implementation of [`SessionStore`].
#[derive(Clone, Debug)]
pub struct PgSessionStore {
    pool: Pool,
}

impl PgSessionStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
struct NewSessionRow {
    id: Uuid,
    user_id: Uuid,
    device: Option<String>,
    ip: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
struct NewRefreshRow {
    token_hash: Vec<u8>,
    session_id: Uuid,
    created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    device: Option<String>,
    ip: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl SessionRow {
    fn into_session(self) -> Result<Session, QueryError> {
        let ip = self
            .ip
            .map(|text| {
                text.parse().map_err(|_| {
                    convert::invalid("sessions", self.id, "ip", "is not an IP address")
                })
            })
            .transpose()?;
        Ok(Session {
            id: SessionId(self.id),
            user_id: UserId(self.user_id),
            device: self.device,
            ip,
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
        })
    }
}

/// Spends the presented token and stores its successor, inside the
/// caller's transaction. Both rows are locked, so a concurrent use of the
/// same token waits and then finds it spent.
fn rotate(
    conn: &mut PgConnection,
    rotation: &RefreshRotation,
) -> Result<RotationOutcome, QueryError> {
    let presented = rotation.presented.as_bytes().to_vec();
    let token: Option<(Uuid, Option<DateTime<Utc>>)> = refresh_tokens::table
        .find(&presented)
        .select((refresh_tokens::session_id, refresh_tokens::used_at))
        .for_update()
        .first(conn)
        .optional()?;
    let Some((session_id, used_at)) = token else {
        return Ok(RotationOutcome::Rejected);
    };
    let (session, revoked_at): (SessionRow, Option<DateTime<Utc>>) = sessions::table
        .find(session_id)
        .select((SessionRow::as_select(), sessions::revoked_at))
        .for_update()
        .first(conn)?;

    if used_at.is_some() {
        return Ok(RotationOutcome::Reused {
            session_id: SessionId(session_id),
            user_id: UserId(session.user_id),
        });
    }
    if revoked_at.is_some() || session.expires_at <= rotation.now {
        return Ok(RotationOutcome::Rejected);
    }

    diesel::update(refresh_tokens::table.find(&presented))
        .set(refresh_tokens::used_at.eq(rotation.now))
        .execute(conn)?;
    diesel::insert_into(refresh_tokens::table)
        .values(&NewRefreshRow {
            token_hash: rotation.next.as_bytes().to_vec(),
            session_id,
            created_at: rotation.now,
        })
        .execute(conn)?;
    let ip = rotation.ip.map(|ip| ip.to_string()).or(session.ip);
    let updated: SessionRow = diesel::update(sessions::table.find(session_id))
        .set((
            sessions::last_used_at.eq(rotation.now),
            sessions::expires_at.eq(rotation.expires_at),
            sessions::ip.eq(ip),
        ))
        .returning(SessionRow::as_returning())
        .get_result(conn)?;
    Ok(RotationOutcome::Rotated(updated.into_session()?))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, new_session: &NewSession) -> Result<(), AuthStoreError> {
        let session = &new_session.session;
        let session_row = NewSessionRow {
            id: session.id.0,
            user_id: session.user_id.0,
            device: session.device.clone(),
            ip: session.ip.map(|ip| ip.to_string()),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
        };
        let token_row = NewRefreshRow {
            token_hash: new_session.refresh_hash.as_bytes().to_vec(),
            session_id: session.id.0,
            created_at: session.created_at,
        };
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::insert_into(sessions::table)
                        .values(&session_row)
                        .execute(conn)?;
                    diesel::insert_into(refresh_tokens::table)
                        .values(&token_row)
                        .execute(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        rotation: &RefreshRotation,
    ) -> Result<RotationOutcome, AuthStoreError> {
        let rotation = *rotation;
        let outcome = self
            .pool
            .run(move |conn| conn.transaction(|conn| rotate(conn, &rotation)))
            .await?;
        Ok(outcome)
    }

    async fn find_active(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, AuthStoreError> {
        let session = self
            .pool
            .run(move |conn| {
                let row = sessions::table
                    .find(id.0)
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now))
                    .select(SessionRow::as_select())
                    .first(conn)
                    .optional()?;
                row.map(SessionRow::into_session).transpose()
            })
            .await?;
        Ok(session)
    }

    async fn touch(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), AuthStoreError> {
        self.pool
            .run(move |conn| {
                diesel::update(sessions::table.find(id.0))
                    .filter(sessions::revoked_at.is_null())
                    .set(sessions::last_used_at.eq(now))
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn list_active(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, AuthStoreError> {
        let list = self
            .pool
            .run(move |conn| {
                let rows: Vec<SessionRow> = sessions::table
                    .filter(sessions::user_id.eq(user_id.0))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now))
                    .order((sessions::last_used_at.desc(), sessions::id))
                    .select(SessionRow::as_select())
                    .load(conn)?;
                rows.into_iter().map(SessionRow::into_session).collect()
            })
            .await?;
        Ok(list)
    }

    async fn revoke(
        &self,
        user_id: UserId,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthStoreError> {
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::update(sessions::table.find(id.0))
                    .filter(sessions::user_id.eq(user_id.0))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now))
                    .set(sessions::revoked_at.eq(now))
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(count == 1)
    }

    async fn revoke_all(&self, user_id: UserId, now: DateTime<Utc>) -> Result<u64, AuthStoreError> {
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::update(sessions::table)
                    .filter(sessions::user_id.eq(user_id.0))
                    .filter(sessions::revoked_at.is_null())
                    .filter(sessions::expires_at.gt(now))
                    .set(sessions::revoked_at.eq(now))
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    async fn find_by_refresh(
        &self,
        user_id: UserId,
        hash: &TokenHash,
    ) -> Result<Option<SessionId>, AuthStoreError> {
        let hash = hash.as_bytes().to_vec();
        let id = self
            .pool
            .run(move |conn| {
                let id: Option<Uuid> = refresh_tokens::table
                    .inner_join(sessions::table)
                    .filter(refresh_tokens::token_hash.eq(&hash))
                    .filter(sessions::user_id.eq(user_id.0))
                    .select(sessions::id)
                    .first(conn)
                    .optional()?;
                Ok(id)
            })
            .await?;
        Ok(id.map(SessionId))
    }
}
