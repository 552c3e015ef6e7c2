//! [`UserStore`] over the `users` and `user_keys` tables.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_identity::{
    Did, Email, NewUser, PasswordHash, Role, StoredCredentials, User, UserId, UserStore,
    UserStoreError, Username,
};
use meditrustal_ledger::{LedgerJob, UserRegistration};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::outbox::{JobTarget, NewJobRow};
use crate::pool::Pool;
use crate::schema::{user_keys, users};

/// PostgreSQL implementation of [`UserStore`].
#[derive(Clone, Debug)]
pub struct PgUserStore {
    pool: Pool,
}

impl PgUserStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow {
    id: Uuid,
    username: String,
    username_key: String,
    email: String,
    email_key: String,
    full_name: Option<String>,
    role: &'static str,
    did: String,
    blockchain_address: Vec<u8>,
    password_hash: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = user_keys)]
struct NewUserKeyRow {
    user_id: Uuid,
    key_id: String,
    wrapped_key: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// The columns of a [`User`]: everything but the password hash and the
/// chain registration state.
#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    email: String,
    full_name: Option<String>,
    role: String,
    did: String,
    blockchain_address: Vec<u8>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_user(self) -> Result<User, QueryError> {
        let id = UserId(self.id);
        let role = Role::parse(&self.role)
            .ok_or_else(|| convert::invalid("users", id, "role", "has an unknown value"))?;
        // The DID is derived from the id, so a stored DID that differs means
        // the row was changed outside this store.
        let did = Did::for_user(id);
        if did.as_str() != self.did {
            return Err(convert::invalid(
                "users",
                id,
                "did",
                "does not match the user id",
            ));
        }
        let blockchain_address =
            convert::address(&self.blockchain_address, "users", id, "blockchain_address")?;

        Ok(User {
            id,
            username: Username::from_stored(self.username),
            email: Email::from_stored(self.email),
            full_name: self.full_name,
            role,
            did,
            blockchain_address,
            is_active: self.is_active,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn insert_rows(new_user: &NewUser) -> Result<(NewUserRow, NewUserKeyRow, NewJobRow), QueryError> {
    let user = &new_user.user;
    let user_row = NewUserRow {
        id: user.id.0,
        username: user.username.as_str().to_owned(),
        username_key: user.username.key(),
        email: user.email.as_str().to_owned(),
        email_key: user.email.key(),
        full_name: user.full_name.clone(),
        role: user.role.as_str(),
        did: user.did.as_str().to_owned(),
        blockchain_address: user.blockchain_address.as_bytes().to_vec(),
        password_hash: new_user.password_hash.0.clone(),
        is_active: user.is_active,
        created_at: user.created_at,
        updated_at: user.updated_at,
    };
    let sealed = &new_user.sealed_key;
    let key_row = NewUserKeyRow {
        user_id: user.id.0,
        key_id: sealed.key_id.as_str().to_owned(),
        wrapped_key: sealed.wrapped_key.clone(),
        nonce: sealed.nonce.to_vec(),
        ciphertext: sealed.ciphertext.clone(),
    };
    let job = LedgerJob::RegisterUser(UserRegistration {
        user_id: user.id.0,
        did: user.did.as_str().to_owned(),
        address: user.blockchain_address,
        role: user.role.chain_role(),
    });
    let job_row = NewJobRow::new(&job, JobTarget::User(user.id.0))?;
    Ok((user_row, key_row, job_row))
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn insert(&self, new_user: &NewUser) -> Result<(), UserStoreError> {
        let (user_row, key_row, job_row) = insert_rows(new_user)?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::insert_into(users::table)
                        .values(&user_row)
                        .execute(conn)?;
                    diesel::insert_into(user_keys::table)
                        .values(&key_row)
                        .execute(conn)?;
                    job_row.insert(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, UserStoreError> {
        let user = self
            .pool
            .run(move |conn| {
                let row = users::table
                    .find(id.0)
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?;
                row.map(UserRow::into_user).transpose()
            })
            .await?;
        Ok(user)
    }

    async fn find_for_login(
        &self,
        login_key: &str,
    ) -> Result<Option<StoredCredentials>, UserStoreError> {
        let key = login_key.to_owned();
        let credentials = self
            .pool
            .run(move |conn| {
                // Usernames cannot contain '@' and emails must, so at most
                // one row matches. The order makes the choice explicit.
                let row: Option<(UserRow, String)> = users::table
                    .filter(users::username_key.eq(&key).or(users::email_key.eq(&key)))
                    .order(users::username_key.eq(&key).desc())
                    .select((UserRow::as_select(), users::password_hash))
                    .first(conn)
                    .optional()?;
                row.map(|(user, hash)| {
                    Ok(StoredCredentials {
                        user: user.into_user()?,
                        password_hash: PasswordHash(hash),
                    })
                })
                .transpose()
            })
            .await?;
        Ok(credentials)
    }

    async fn find_credentials(
        &self,
        id: UserId,
    ) -> Result<Option<StoredCredentials>, UserStoreError> {
        let credentials = self
            .pool
            .run(move |conn| {
                let row: Option<(UserRow, String)> = users::table
                    .find(id.0)
                    .select((UserRow::as_select(), users::password_hash))
                    .first(conn)
                    .optional()?;
                row.map(|(user, hash)| {
                    Ok(StoredCredentials {
                        user: user.into_user()?,
                        password_hash: PasswordHash(hash),
                    })
                })
                .transpose()
            })
            .await?;
        Ok(credentials)
    }

    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: DateTime<Utc>,
    ) -> Result<bool, UserStoreError> {
        let hash = hash.0.clone();
        let count = self
            .pool
            .run(move |conn| {
                let count = diesel::update(users::table.find(id.0))
                    .set((users::password_hash.eq(&hash), users::updated_at.eq(now)))
                    .execute(conn)?;
                Ok(count)
            })
            .await?;
        Ok(count == 1)
    }
}
