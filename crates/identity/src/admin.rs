//! [`AdminService`]: what admins do over the API (list, deactivate and
//! reactivate users) and what the operator's command line does (promote).

use std::sync::Arc;

use chrono::Utc;

use crate::ports::{SessionStore, UserAdminStore, UserStoreError};
use crate::types::{Principal, Role, User, UserId, Username};

/// Errors of the admin service, each mapped to one HTTP status at the edge.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    /// The caller is not an admin.
    #[error("only admins may administer users")]
    Forbidden,
    /// No user has this id or username.
    #[error("user not found")]
    UserNotFound,
    /// An admin tried to deactivate their own account, which would lock
    /// them out.
    #[error("admins cannot deactivate their own account")]
    SelfDeactivation,
    /// A request field failed validation.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Name of the field, as the API spells it.
        field: &'static str,
        /// Reason the value is invalid, and what is accepted.
        message: String,
    },
    /// The user store is unreachable. Retry later.
    #[error("user store unavailable: {0}")]
    Unavailable(String),
}

/// A change an admin made to a user: who, to whom, what. Returned so that
/// the caller can record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminAction {
    /// The admin.
    pub actor: UserId,
    /// `deactivate` or `reactivate`.
    pub action: &'static str,
    /// The user after the change.
    pub target: User,
}

/// Default and maximum page sizes of user listings.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// User administration over the [`UserAdminStore`] port. Admin accounts
/// themselves are made by the operator (`IdentityService::create_admin`
/// and [`AdminService::promote`]), never over the API.
pub struct AdminService {
    users: Arc<dyn UserAdminStore>,
    sessions: Arc<dyn SessionStore>,
}

impl AdminService {
    /// Builds the service over its ports.
    pub fn new(users: Arc<dyn UserAdminStore>, sessions: Arc<dyn SessionStore>) -> Self {
        Self { users, sessions }
    }

    /// Lists users oldest first. Errors: [`AdminError::Forbidden`],
    /// [`AdminError::Invalid`] for a bad limit, [`AdminError::Unavailable`].
    pub async fn list_users(
        &self,
        caller: &Principal,
        limit: Option<u32>,
        offset: Option<u64>,
    ) -> Result<Vec<User>, AdminError> {
        require_admin(caller)?;
        let limit = match limit {
            None => DEFAULT_PAGE_SIZE,
            Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => limit,
            Some(_) => {
                return Err(AdminError::Invalid {
                    field: "limit",
                    message: format!("use 1 to {MAX_PAGE_SIZE}"),
                })
            }
        };
        self.users
            .list_users(limit, offset.unwrap_or(0))
            .await
            .map_err(store_error)
    }

    /// Deactivates a user and ends all their sessions: their next request
    /// fails authentication, and a later reactivation does not bring old
    /// tokens back. Errors: [`AdminError::Forbidden`],
    /// [`AdminError::SelfDeactivation`], [`AdminError::UserNotFound`],
    /// [`AdminError::Unavailable`].
    pub async fn deactivate(
        &self,
        caller: &Principal,
        target: UserId,
    ) -> Result<AdminAction, AdminError> {
        require_admin(caller)?;
        if target == caller.user_id {
            return Err(AdminError::SelfDeactivation);
        }
        let action = self.set_active(caller, target, false).await?;
        self.sessions
            .revoke_all(target, Utc::now())
            .await
            .map_err(|error| AdminError::Unavailable(error.to_string()))?;
        Ok(action)
    }

    /// Reactivates a user. Errors: [`AdminError::Forbidden`],
    /// [`AdminError::UserNotFound`], [`AdminError::Unavailable`].
    pub async fn reactivate(
        &self,
        caller: &Principal,
        target: UserId,
    ) -> Result<AdminAction, AdminError> {
        require_admin(caller)?;
        self.set_active(caller, target, true).await
    }

    /// Makes an existing user an admin, for the operator's `meditrustal
    /// admin promote` command. Errors: [`AdminError::UserNotFound`],
    /// [`AdminError::Unavailable`].
    pub async fn promote(&self, username: &str) -> Result<User, AdminError> {
        let key = Username::from_stored(username.trim().to_owned()).key();
        let user = self
            .users
            .set_role(&key, Role::Admin)
            .await
            .map_err(store_error)?
            .ok_or(AdminError::UserNotFound)?;

        tracing::info!(user.id = %user.id, "user promoted to admin");
        Ok(user)
    }

    async fn set_active(
        &self,
        caller: &Principal,
        target: UserId,
        active: bool,
    ) -> Result<AdminAction, AdminError> {
        let user = self
            .users
            .set_active(target, active)
            .await
            .map_err(store_error)?
            .ok_or(AdminError::UserNotFound)?;

        let action = if active { "reactivate" } else { "deactivate" };
        tracing::info!(admin.id = %caller.user_id, user.id = %target, action, "user status changed");
        Ok(AdminAction {
            actor: caller.user_id,
            action,
            target: user,
        })
    }
}

fn require_admin(caller: &Principal) -> Result<(), AdminError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(AdminError::Forbidden)
    }
}

fn store_error(error: UserStoreError) -> AdminError {
    AdminError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use meditrustal_ledger::Address;
    use mockall::predicate::eq;
    use uuid::Uuid;

    use super::*;
    use crate::ports::{MockSessionStore, MockUserAdminStore};
    use crate::types::{Did, Email};

    fn principal(n: u128, role: Role) -> Principal {
        Principal {
            user_id: UserId(Uuid::from_u128(n)),
            role,
        }
    }

    fn user(n: u128, active: bool) -> User {
        let id = UserId(Uuid::from_u128(n));
        User {
            id,
            username: Username::from_stored("bob".into()),
            email: Email::from_stored("bob@example.org".into()),
            full_name: None,
            role: Role::Doctor,
            did: Did::for_user(id),
            blockchain_address: Address::from_bytes([2; 20]),
            is_active: active,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// A session store that expects `revoke_all` exactly `times` times.
    fn sessions_ending(times: usize) -> MockSessionStore {
        let mut sessions = MockSessionStore::new();
        sessions
            .expect_revoke_all()
            .times(times)
            .returning(|_, _| Ok(2));
        sessions
    }

    #[tokio::test]
    async fn deactivate_returns_actor_and_target() {
        let mut store = MockUserAdminStore::new();
        store
            .expect_set_active()
            .with(eq(UserId(Uuid::from_u128(2))), eq(false))
            .times(1)
            .returning(|_, _| Ok(Some(user(2, false))));

        let action = AdminService::new(Arc::new(store), Arc::new(sessions_ending(1)))
            .deactivate(&principal(1, Role::Admin), UserId(Uuid::from_u128(2)))
            .await
            .unwrap();

        assert_eq!(action.actor, UserId(Uuid::from_u128(1)));
        assert_eq!(action.action, "deactivate");
        assert!(!action.target.is_active);
    }

    #[tokio::test]
    async fn non_admins_are_rejected_before_any_write() {
        let mut store = MockUserAdminStore::new();
        store.expect_set_active().times(0);
        store.expect_list_users().times(0);
        let service = AdminService::new(Arc::new(store), Arc::new(sessions_ending(0)));
        let target = UserId(Uuid::from_u128(2));

        for role in [Role::Patient, Role::Doctor] {
            let caller = principal(1, role);
            assert_eq!(
                service.deactivate(&caller, target).await,
                Err(AdminError::Forbidden)
            );
            assert_eq!(
                service.reactivate(&caller, target).await,
                Err(AdminError::Forbidden)
            );
            assert_eq!(
                service.list_users(&caller, None, None).await,
                Err(AdminError::Forbidden)
            );
        }
    }

    #[tokio::test]
    async fn admin_cannot_deactivate_themself() {
        let mut store = MockUserAdminStore::new();
        store.expect_set_active().times(0);
        let admin = principal(1, Role::Admin);

        let error = AdminService::new(Arc::new(store), Arc::new(sessions_ending(0)))
            .deactivate(&admin, admin.user_id)
            .await
            .unwrap_err();

        assert_eq!(error, AdminError::SelfDeactivation);
    }

    #[tokio::test]
    async fn unknown_user_is_not_found() {
        let mut store = MockUserAdminStore::new();
        store
            .expect_set_active()
            .times(1)
            .returning(|_, _| Ok(None));
        store.expect_set_role().times(1).returning(|_, _| Ok(None));
        let service = AdminService::new(Arc::new(store), Arc::new(sessions_ending(0)));

        let reactivated = service
            .reactivate(&principal(1, Role::Admin), UserId(Uuid::from_u128(3)))
            .await;
        let promoted = service.promote("nobody").await;

        assert_eq!(reactivated, Err(AdminError::UserNotFound));
        assert_eq!(promoted, Err(AdminError::UserNotFound));
    }

    #[tokio::test]
    async fn list_limit_outside_range_is_invalid() {
        let mut store = MockUserAdminStore::new();
        store.expect_list_users().times(0);
        let service = AdminService::new(Arc::new(store), Arc::new(sessions_ending(0)));
        let admin = principal(1, Role::Admin);

        for limit in [0, 201] {
            assert_eq!(
                service.list_users(&admin, Some(limit), None).await,
                Err(AdminError::Invalid {
                    field: "limit",
                    message: "use 1 to 200".into()
                })
            );
        }
    }
}
