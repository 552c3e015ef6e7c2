use std::sync::Arc;

use chrono::{Duration, Utc};
use meditrustal_crypto::KeyProvider;
use secrecy::{ExposeSecret, SecretString};

use crate::error::IdentityError;
use crate::ports::{AccountGenerator, PasswordHasher, TokenIssuer, UserStore, UserStoreError};
use crate::types::{
    custodial_key_aad, login_key, Claims, Did, Email, IssuedToken, NewUser, Password, PasswordHash,
    Principal, Role, User, UserId, Username,
};

/// A sign-up request after JSON decoding, before validation.
pub struct Registration {
    /// Requested username.
    pub username: String,
    /// Email address.
    pub email: String,
    /// Chosen password.
    pub password: SecretString,
    /// Optional display name.
    pub full_name: Option<String>,
    /// Role name in any letter case.
    pub role: String,
}

/// Registration, login and authentication rules over the identity ports.
pub struct IdentityService {
    users: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenIssuer>,
    accounts: Arc<dyn AccountGenerator>,
    keys: Arc<dyn KeyProvider>,
    /// Hash checked when the login name is unknown, so that unknown users
    /// and wrong passwords take the same time.
    decoy_hash: PasswordHash,
}

const MAX_FULL_NAME_CHARS: usize = 200;

impl IdentityService {
    /// Builds the service; hashes one decoy password, so this takes as
    /// long as one login.
    pub async fn new(
        users: Arc<dyn UserStore>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenIssuer>,
        accounts: Arc<dyn AccountGenerator>,
        keys: Arc<dyn KeyProvider>,
    ) -> Result<Self, IdentityError> {
        let decoy = SecretString::from(uuid::Uuid::new_v4().to_string());
        let decoy_hash = hasher
            .hash(&decoy)
            .await
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        Ok(Self {
            users,
            hasher,
            tokens,
            accounts,
            keys,
            decoy_hash,
        })
    }

    /// Registers a patient or doctor: validates the request, creates the
    /// custodial account, and stores the user with a chain registration
    /// job. Errors: [`IdentityError::Invalid`] (also for role ADMIN),
    /// [`IdentityError::AlreadyExists`], [`IdentityError::Unavailable`].
    pub async fn register(&self, request: Registration) -> Result<User, IdentityError> {
        let role = parse_self_service_role(&request.role)?;
        self.register_as(request, role).await
    }

    /// Creates an admin account, for the operator's `meditrustal admin
    /// create` command; the request's role is ignored. The API never calls
    /// this. Errors: as for [`IdentityService::register`].
    pub async fn create_admin(&self, request: Registration) -> Result<User, IdentityError> {
        self.register_as(request, Role::Admin).await
    }

    async fn register_as(&self, request: Registration, role: Role) -> Result<User, IdentityError> {
        let username = Username::parse(&request.username)?;
        let email = Email::parse(&request.email)?;
        let full_name = parse_full_name(request.full_name)?;
        let password = Password::parse(request.password)?;

        let id = UserId::random();
        let account = self
            .accounts
            .generate()
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let sealed_key = meditrustal_crypto::seal(
            self.keys.as_ref(),
            &account.secret_key,
            &custodial_key_aad(id),
        )
        .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let password_hash = self
            .hasher
            .hash(password.secret())
            .await
            .map_err(|error| IdentityError::Internal(error.to_string()))?;

        let now = Utc::now();
        let user = User {
            id,
            username,
            email,
            full_name,
            role,
            did: Did::for_user(id),
            blockchain_address: account.address,
            is_active: true,
            created_at: now,
            updated_at: now,
        };
        let new_user = NewUser {
            user,
            password_hash,
            sealed_key,
        };
        self.users.insert(&new_user).await.map_err(store_error)?;

        tracing::info!(user.id = %new_user.user.id, user.role = role.as_str(), "user registered");
        Ok(new_user.user)
    }

    /// Checks a username-or-email and password and issues an access token.
    /// Unknown users and wrong passwords fail alike, after one hash check
    /// each. Errors: [`IdentityError::InvalidCredentials`],
    /// [`IdentityError::Unavailable`].
    pub async fn login(
        &self,
        identifier: &str,
        password: &SecretString,
    ) -> Result<IssuedToken, IdentityError> {
        let credentials = self
            .users
            .find_for_login(&login_key(identifier))
            .await
            .map_err(store_error)?;
        let hash = credentials
            .as_ref()
            .map_or(&self.decoy_hash, |found| &found.password_hash);

        // bcrypt reads 72 bytes; a longer input could match a hash made
        // from its prefix, so it is wrong by definition.
        let too_long = password.expose_secret().len() > Password::MAX_BYTES;
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|error| IdentityError::Internal(error.to_string()))?;

        let user = match credentials {
            Some(found) if matches && !too_long && found.user.is_active => found.user,
            _ => return Err(IdentityError::InvalidCredentials),
        };

        let now = Utc::now();
        let lifetime =
            Duration::seconds(i64::try_from(self.tokens.lifetime_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            user_id: user.id,
            role: user.role,
            issued_at: now,
            expires_at: now + lifetime,
        };
        let token = self
            .tokens
            .issue(&claims)
            .map_err(|error| IdentityError::Internal(error.to_string()))?;

        tracing::info!(user.id = %user.id, "user logged in");
        Ok(token)
    }

    /// Verifies a bearer token and reloads its user, so that deactivation
    /// and role changes apply to the next request. Errors:
    /// [`IdentityError::Unauthenticated`], [`IdentityError::Unavailable`].
    pub async fn authenticate(&self, token: &str) -> Result<Principal, IdentityError> {
        let claims = self
            .tokens
            .verify(token)
            .map_err(|_| IdentityError::Unauthenticated)?;
        let user = self
            .users
            .find_by_id(claims.user_id)
            .await
            .map_err(store_error)?;

        match user {
            Some(user) if user.is_active => Ok(Principal {
                user_id: user.id,
                role: user.role,
            }),
            _ => Err(IdentityError::Unauthenticated),
        }
    }

    /// Loads a user by id. Errors: [`IdentityError::Unavailable`].
    pub async fn user(&self, id: UserId) -> Result<Option<User>, IdentityError> {
        self.users.find_by_id(id).await.map_err(store_error)
    }
}

fn parse_self_service_role(text: &str) -> Result<Role, IdentityError> {
    match Role::parse(text) {
        Some(role @ (Role::Patient | Role::Doctor)) => Ok(role),
        Some(Role::Admin) => Err(IdentityError::Invalid {
            field: "role",
            message: "ADMIN accounts are created by an operator; register as PATIENT or DOCTOR"
                .into(),
        }),
        None => Err(IdentityError::Invalid {
            field: "role",
            message: "use PATIENT or DOCTOR".into(),
        }),
    }
}

fn parse_full_name(full_name: Option<String>) -> Result<Option<String>, IdentityError> {
    let Some(name) = full_name else {
        return Ok(None);
    };
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > MAX_FULL_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(IdentityError::Invalid {
            field: "full_name",
            message: format!(
                "use at most {MAX_FULL_NAME_CHARS} characters and no control characters"
            ),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

fn store_error(error: UserStoreError) -> IdentityError {
    match error {
        UserStoreError::AlreadyExists(field) => IdentityError::AlreadyExists(field),
        UserStoreError::Unavailable(message) => IdentityError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
    use meditrustal_ledger::Address;
    use mockall::predicate::eq;
    use zeroize::Zeroizing;

    use super::*;
    use crate::ports::{
        CustodialAccount, MockAccountGenerator, MockPasswordHasher, MockTokenIssuer, MockUserStore,
        TokenError, UniqueField,
    };
    use crate::types::StoredCredentials;

    struct Mocks {
        users: MockUserStore,
        hasher: MockPasswordHasher,
        tokens: MockTokenIssuer,
        accounts: MockAccountGenerator,
    }

    impl Mocks {
        fn new() -> Self {
            let mut hasher = MockPasswordHasher::new();
            // The decoy hash made by IdentityService::new.
            hasher
                .expect_hash()
                .times(1)
                .returning(|_| Ok(PasswordHash("decoy".into())));
            Self {
                users: MockUserStore::new(),
                hasher,
                tokens: MockTokenIssuer::new(),
                accounts: MockAccountGenerator::new(),
            }
        }

        async fn service(self) -> IdentityService {
            let keys = MasterKeyring::new(MasterKey::new(KeyId::new("test"), [1; 32]), []);
            IdentityService::new(
                Arc::new(self.users),
                Arc::new(self.hasher),
                Arc::new(self.tokens),
                Arc::new(self.accounts),
                Arc::new(keys),
            )
            .await
            .unwrap()
        }
    }

    fn registration(role: &str) -> Registration {
        Registration {
            username: "alice".into(),
            email: "Alice@Example.org".into(),
            password: SecretString::from("correct horse"),
            full_name: Some("  Alice Example ".into()),
            role: role.into(),
        }
    }

    fn stored_user(active: bool) -> User {
        let id = UserId(uuid::Uuid::from_u128(7));
        User {
            id,
            username: Username::from_stored("alice".into()),
            email: Email::from_stored("alice@example.org".into()),
            full_name: None,
            role: Role::Patient,
            did: Did::for_user(id),
            blockchain_address: Address::from_bytes([1; 20]),
            is_active: active,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn account() -> CustodialAccount {
        CustodialAccount {
            address: Address::from_bytes([0xaa; 20]),
            secret_key: Zeroizing::new(vec![3; 32]),
        }
    }

    #[tokio::test]
    async fn register_stores_user_with_sealed_key() {
        let mut mocks = Mocks::new();
        mocks
            .accounts
            .expect_generate()
            .times(1)
            .returning(|| Ok(account()));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash("$2b$hash".into())));
        mocks
            .users
            .expect_insert()
            .times(1)
            .withf(|new_user| {
                new_user.password_hash.0 == "$2b$hash"
                    && new_user.sealed_key.ciphertext.len() == 32 + 16
                    && new_user.user.did == Did::for_user(new_user.user.id)
            })
            .returning(|_| Ok(()));

        let user = mocks
            .service()
            .await
            .register(registration("patient"))
            .await
            .unwrap();

        assert_eq!(user.role, Role::Patient);
        assert_eq!(user.email.as_str(), "Alice@Example.org");
        assert_eq!(user.full_name.as_deref(), Some("Alice Example"));
        assert_eq!(user.blockchain_address, Address::from_bytes([0xaa; 20]));
        assert!(user.is_active);
    }

    #[tokio::test]
    async fn register_rejects_admin_role() {
        let mut mocks = Mocks::new();
        mocks.users.expect_insert().times(0);

        let error = mocks
            .service()
            .await
            .register(registration("Admin"))
            .await
            .unwrap_err();

        assert_eq!(
            error,
            IdentityError::Invalid {
                field: "role",
                message: "ADMIN accounts are created by an operator; register as PATIENT or DOCTOR"
                    .into()
            }
        );
    }

    #[tokio::test]
    async fn register_maps_duplicate_email() {
        let mut mocks = Mocks::new();
        mocks
            .accounts
            .expect_generate()
            .times(1)
            .returning(|| Ok(account()));
        mocks
            .hasher
            .expect_hash()
            .times(1)
            .returning(|_| Ok(PasswordHash("h".into())));
        mocks
            .users
            .expect_insert()
            .times(1)
            .returning(|_| Err(UserStoreError::AlreadyExists(UniqueField::Email)));

        let error = mocks
            .service()
            .await
            .register(registration("DOCTOR"))
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::AlreadyExists(UniqueField::Email));
    }

    #[tokio::test]
    async fn login_of_unknown_user_still_checks_decoy_hash() {
        let mut mocks = Mocks::new();
        mocks
            .users
            .expect_find_for_login()
            .with(eq("nobody@example.org"))
            .times(1)
            .returning(|_| Ok(None));
        mocks
            .hasher
            .expect_verify()
            .withf(|_, hash| hash.0 == "decoy")
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.tokens.expect_issue().times(0);

        let error = mocks
            .service()
            .await
            .login("Nobody@Example.org", &SecretString::from("whatever1"))
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_with_wrong_password_fails() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_for_login().times(1).returning(|_| {
            Ok(Some(StoredCredentials {
                user: stored_user(true),
                password_hash: PasswordHash("real".into()),
            }))
        });
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));
        mocks.tokens.expect_issue().times(0);

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("wrong-pass"))
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_of_deactivated_user_fails() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_for_login().times(1).returning(|_| {
            Ok(Some(StoredCredentials {
                user: stored_user(false),
                password_hash: PasswordHash("real".into()),
            }))
        });
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("right-pass"))
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_issues_token_with_user_and_role() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_for_login().times(1).returning(|_| {
            Ok(Some(StoredCredentials {
                user: stored_user(true),
                password_hash: PasswordHash("real".into()),
            }))
        });
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.tokens.expect_lifetime_secs().return_const(900u64);
        mocks
            .tokens
            .expect_issue()
            .withf(|claims| {
                claims.user_id == UserId(uuid::Uuid::from_u128(7))
                    && claims.role == Role::Patient
                    && claims.expires_at - claims.issued_at == Duration::seconds(900)
            })
            .times(1)
            .returning(|_| {
                Ok(IssuedToken {
                    token: SecretString::from("v4.public.x"),
                    expires_in: 900,
                })
            });

        let token = mocks
            .service()
            .await
            .login("ALICE", &SecretString::from("right-pass"))
            .await
            .unwrap();

        assert_eq!(token.expires_in, 900);
        assert_eq!(token.token.expose_secret(), "v4.public.x");
    }

    #[tokio::test]
    async fn login_rejects_password_over_72_bytes_even_if_prefix_matches() {
        let mut mocks = Mocks::new();
        mocks.users.expect_find_for_login().times(1).returning(|_| {
            Ok(Some(StoredCredentials {
                user: stored_user(true),
                password_hash: PasswordHash("real".into()),
            }))
        });
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.tokens.expect_issue().times(0);

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("x".repeat(73)))
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn authenticate_rejects_deactivated_user() {
        let mut mocks = Mocks::new();
        let claims = Claims {
            user_id: UserId(uuid::Uuid::from_u128(7)),
            role: Role::Patient,
            issued_at: Utc::now(),
            expires_at: Utc::now(),
        };
        mocks
            .tokens
            .expect_verify()
            .times(1)
            .returning(move |_| Ok(claims.clone()));
        mocks
            .users
            .expect_find_by_id()
            .times(1)
            .returning(|_| Ok(Some(stored_user(false))));

        let error = mocks
            .service()
            .await
            .authenticate("token")
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::Unauthenticated);
    }

    #[tokio::test]
    async fn authenticate_maps_every_token_error_to_unauthenticated() {
        let mut mocks = Mocks::new();
        mocks
            .tokens
            .expect_verify()
            .times(1)
            .returning(|_| Err(TokenError::Invalid));
        mocks.users.expect_find_by_id().times(0);

        let error = mocks
            .service()
            .await
            .authenticate("v4.local.forged")
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::Unauthenticated);
    }
}
