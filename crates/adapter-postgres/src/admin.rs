//! [`UserAdminStore`] over the `users` table.

use async_trait::async_trait;
use diesel::dsl::now;
use diesel::prelude::*;
use meditrustal_identity::{Role, User, UserAdminStore, UserId, UserStoreError};

use crate::pool::Pool;
use crate::schema::users;
use crate::users::UserRow;

/// PostgreSQL implementation of [`UserAdminStore`].
#[derive(Clone, Debug)]
pub struct PgUserAdminStore {
    pool: Pool,
}

impl PgUserAdminStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserAdminStore for PgUserAdminStore {
    async fn list_users(&self, limit: u32, offset: u64) -> Result<Vec<User>, UserStoreError> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let users = self
            .pool
            .run(move |conn| {
                let rows: Vec<UserRow> = users::table
                    .select(UserRow::as_select())
                    .order((users::created_at.asc(), users::id.asc()))
                    .limit(i64::from(limit))
                    .offset(offset)
                    .load(conn)?;
                rows.into_iter().map(UserRow::into_user).collect()
            })
            .await?;
        Ok(users)
    }

    async fn set_active(&self, id: UserId, active: bool) -> Result<Option<User>, UserStoreError> {
        let user = self
            .pool
            .run(move |conn| {
                let row: Option<UserRow> = diesel::update(users::table.find(id.0))
                    .set((users::is_active.eq(active), users::updated_at.eq(now)))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .optional()?;
                row.map(UserRow::into_user).transpose()
            })
            .await?;
        Ok(user)
    }

    async fn set_role(
        &self,
        username_key: &str,
        role: Role,
    ) -> Result<Option<User>, UserStoreError> {
        let key = username_key.to_owned();
        let user = self
            .pool
            .run(move |conn| {
                let row: Option<UserRow> =
                    diesel::update(users::table.filter(users::username_key.eq(&key)))
                        .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .optional()?;
                row.map(UserRow::into_user).transpose()
            })
            .await?;
        Ok(user)
    }
}
