use std::sync::Arc;

use chrono::Utc;
use meditrustal_crypto::KeyProvider;
use secrecy::SecretString;

use crate::error::IdentityError;
use crate::password_policy;
use crate::ports::{
    AccountGenerator, AuthStoreError, LoginThrottle, MfaStore, Notifier, OneTimeTokenStore,
    PasswordHasher, SessionStore, TokenIssuer, UserStore, UserStoreError,
};
use crate::session::{ClientInfo, LoginOutcome, SecurityPolicy, SessionId};
use crate::throttle::ThrottleKey;
use crate::types::{
    custodial_key_aad, login_key, Did, Email, NewUser, Password, PasswordHash, Principal, Role,
    User, UserId, Username,
};

mod mfa;
mod passwords;
#[cfg(test)]
mod security_tests;
mod sessions;
#[cfg(test)]
mod test_support;
mod throttling;

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

/// The outcome of a login together with the account it concerned.
#[derive(Debug)]
pub struct LoginAttempt {
    /// The account that the username or email named, whether or not the
    /// password matched. `None` when no account has that name, when the
    /// login was throttled before the lookup, or when the store failed.
    pub account: Option<Principal>,
    /// The session tokens or MFA challenge, or why the login failed.
    pub result: Result<LoginOutcome, IdentityError>,
}

/// The ports behind sessions, second factors, one-time tokens, login
/// throttling and notifications.
pub struct SecurityPorts {
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Failed-attempt counters.
    pub throttle: Arc<dyn LoginThrottle>,
    /// Password reset and MFA login tokens.
    pub one_time_tokens: Arc<dyn OneTimeTokenStore>,
    /// TOTP credentials and recovery codes.
    pub mfa: Arc<dyn MfaStore>,
    /// Delivery of password reset messages.
    pub notifier: Arc<dyn Notifier>,
}

/// Registration, login and authentication rules over the identity ports.
pub struct IdentityService {
    users: Arc<dyn UserStore>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenIssuer>,
    accounts: Arc<dyn AccountGenerator>,
    keys: Arc<dyn KeyProvider>,
    security: SecurityPorts,
    policy: SecurityPolicy,
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
        security: SecurityPorts,
        policy: SecurityPolicy,
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
            security,
            policy,
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
        password_policy::check_context(
            password.secret(),
            "password",
            username.as_str(),
            email.as_str(),
        )?;

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

    /// Checks a username-or-email and password. Without a second factor
    /// it starts a session and returns its tokens; with a confirmed TOTP
    /// credential it returns an MFA challenge instead. Unknown users and
    /// wrong passwords fail alike, after one hash check each, and count
    /// against the login name and the client IP. Errors:
    /// [`IdentityError::TooManyAttempts`] (before any check),
    /// [`IdentityError::InvalidCredentials`], [`IdentityError::Unavailable`].
    pub async fn login(
        &self,
        identifier: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, IdentityError> {
        self.attempt_login(identifier, password, client)
            .await
            .result
    }

    /// Same as [`IdentityService::login`], and also returns the account
    /// that the username or email named, so that failed logins can be
    /// audited against it. The caller must not reveal that account.
    pub async fn attempt_login(
        &self,
        identifier: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> LoginAttempt {
        let mut account = None;
        let result = self
            .check_login(identifier, password, client, &mut account)
            .await;
        LoginAttempt { account, result }
    }

    /// Runs the steps of [`IdentityService::login`]. Sets `account` as soon
    /// as the name is found, so that it is known also when a later step
    /// fails.
    async fn check_login(
        &self,
        identifier: &str,
        password: &SecretString,
        client: &ClientInfo,
        account: &mut Option<Principal>,
    ) -> Result<LoginOutcome, IdentityError> {
        let now = Utc::now();
        let name = login_key(identifier);
        let mut throttle_keys = throttle_keys(ThrottleKey::Login(name.clone()), client);
        self.check_throttle(&throttle_keys, now).await?;

        // No stored username or email contains a control character (NUL
        // cannot even be stored), so such a name goes straight to the decoy.
        let credentials = if identifier.chars().any(char::is_control) {
            None
        } else {
            self.users
                .find_for_login(&name)
                .await
                .map_err(store_error)?
        };
        *account = credentials.as_ref().map(|found| Principal {
            user_id: found.user.id,
            role: found.user.role,
        });

        // Guesses through the username and through the e-mail address add
        // up on the account. An unknown name repeats its own check instead,
        // so that both paths make the same store calls.
        let account_key = match &credentials {
            Some(found) => ThrottleKey::User(found.user.id),
            None => ThrottleKey::Login(name.clone()),
        };
        self.check_throttle(std::slice::from_ref(&account_key), now)
            .await?;
        if matches!(account_key, ThrottleKey::User(_)) {
            throttle_keys.push(account_key.clone());
        }

        let hash = credentials
            .as_ref()
            .map_or(&self.decoy_hash, |found| &found.password_hash);
        let matches = self.password_matches(password, hash).await?;

        let user = match credentials {
            Some(found) if matches && found.user.is_active => found.user,
            _ => {
                self.record_failures(&throttle_keys, now).await?;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        self.clear_throttle(&ThrottleKey::Login(name)).await?;

        // The account's failures also count wrong second-factor codes, so
        // they are cleared only once the second factor passes as well.
        if self.has_confirmed_totp(user.id).await? {
            let challenge = self.issue_mfa_challenge(user.id, now).await?;
            tracing::info!(user.id = %user.id, "password accepted; second factor required");
            return Ok(LoginOutcome::MfaRequired(challenge));
        }
        self.clear_throttle(&account_key).await?;
        let tokens = self.start_session(&user, client, now).await?;
        tracing::info!(user.id = %user.id, session.id = %tokens.session_id, "user logged in");
        Ok(LoginOutcome::Tokens(tokens))
    }

    /// Verifies a bearer token, checks that its session is active and
    /// reloads its user, so that logout, session revocation, password
    /// change, deactivation and role changes apply to the next request.
    /// Errors: [`IdentityError::Unauthenticated`], [`IdentityError::Unavailable`].
    pub async fn authenticate(&self, token: &str) -> Result<Principal, IdentityError> {
        self.authenticate_session(token)
            .await
            .map(|(principal, _)| principal)
    }

    /// Like [`Self::authenticate`], and also returns the session the token
    /// belongs to. Errors: those of [`Self::authenticate`].
    pub async fn authenticate_session(
        &self,
        token: &str,
    ) -> Result<(Principal, SessionId), IdentityError> {
        let claims = self
            .tokens
            .verify(token)
            .map_err(|_| IdentityError::Unauthenticated)?;
        let now = Utc::now();
        let session = self
            .security
            .sessions
            .find_active(claims.session_id, now)
            .await
            .map_err(auth_store_error)?
            .filter(|session| session.user_id == claims.user_id)
            .ok_or(IdentityError::Unauthenticated)?;
        let user = self
            .users
            .find_by_id(claims.user_id)
            .await
            .map_err(store_error)?;
        let user = match user {
            Some(user) if user.is_active => user,
            _ => return Err(IdentityError::Unauthenticated),
        };

        if now - session.last_used_at >= sessions::TOUCH_INTERVAL {
            self.security
                .sessions
                .touch(session.id, now)
                .await
                .map_err(auth_store_error)?;
        }
        let principal = Principal {
            user_id: user.id,
            role: user.role,
        };
        Ok((principal, session.id))
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
    let has_hidden_chars = trimmed
        .chars()
        .any(|c| c.is_control() || crate::types::is_invisible_format(c));
    if trimmed.chars().count() > MAX_FULL_NAME_CHARS || has_hidden_chars {
        return Err(IdentityError::Invalid {
            field: "full_name",
            message: format!(
                "use at most {MAX_FULL_NAME_CHARS} characters, without control or invisible formatting characters"
            ),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

/// Lists the keys a credential check counts against: `subject` and, when
/// known, the client IP.
fn throttle_keys(subject: ThrottleKey, client: &ClientInfo) -> Vec<ThrottleKey> {
    let mut keys = vec![subject];
    keys.extend(client.ip.map(ThrottleKey::Ip));
    keys
}

fn auth_store_error(error: AuthStoreError) -> IdentityError {
    match error {
        AuthStoreError::Unavailable(message) => IdentityError::Unavailable(message),
    }
}

fn store_error(error: UserStoreError) -> IdentityError {
    match error {
        UserStoreError::AlreadyExists(field) => IdentityError::AlreadyExists(field),
        UserStoreError::Unavailable(message) => IdentityError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use meditrustal_ledger::Address;
    use mockall::predicate::eq;
    use secrecy::ExposeSecret;
    use zeroize::Zeroizing;

    use super::test_support::{client, credentials, session, stored_user, Mocks, SESSION, USER};
    use super::*;
    use crate::ports::{CustodialAccount, TokenError, UniqueField};
    use crate::session::TokenPair;
    use crate::types::{Claims, IssuedToken};

    fn registration(role: &str) -> Registration {
        Registration {
            username: "alice".into(),
            email: "Alice@Example.org".into(),
            password: SecretString::from("correct horse"),
            full_name: Some("  Alice Example ".into()),
            role: role.into(),
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
    async fn register_rejects_bidi_override_in_full_name() {
        let mut mocks = Mocks::new();
        mocks.users.expect_insert().times(0);
        let mut request = registration("PATIENT");
        request.full_name = Some("Alice \u{202E}elpmaxE".into());

        let error = mocks.service().await.register(request).await.unwrap_err();

        assert!(
            matches!(
                error,
                IdentityError::Invalid {
                    field: "full_name",
                    ..
                }
            ),
            "{error:?}"
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
        mocks.allow_throttle();
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
            .login(
                "Nobody@Example.org",
                &SecretString::from("whatever1"),
                &client(),
            )
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_name_with_nul_is_not_looked_up() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks.users.expect_find_for_login().times(0);
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));

        let error = mocks
            .service()
            .await
            .login("ali\u{0}ce", &SecretString::from("whatever1"), &client())
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_with_wrong_password_fails() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(Some(credentials(true))));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));
        mocks.tokens.expect_issue().times(0);
        mocks.sessions.expect_create().times(0);

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("wrong-pass"), &client())
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_of_deactivated_user_fails() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(Some(credentials(false))));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.sessions.expect_create().times(0);

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("right-pass"), &client())
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    #[tokio::test]
    async fn login_starts_session_and_issues_token_pair() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(Some(credentials(true))));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks
            .mfa
            .expect_find_totp()
            .times(1)
            .returning(|_| Ok(None));
        mocks
            .sessions
            .expect_create()
            .withf(|new_session| {
                let session = &new_session.session;
                session.user_id == USER
                    && session.device.as_deref() == Some("test-agent/1.0")
                    && session.ip == client().ip
                    && session.expires_at - session.created_at == Duration::days(30)
            })
            .times(1)
            .returning(|_| Ok(()));
        mocks.tokens.expect_lifetime_secs().return_const(900u64);
        mocks
            .tokens
            .expect_issue()
            .withf(|claims| {
                claims.user_id == USER
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

        let outcome = mocks
            .service()
            .await
            .login("ALICE", &SecretString::from("right-pass"), &client())
            .await
            .unwrap();

        let LoginOutcome::Tokens(TokenPair {
            access, refresh, ..
        }) = outcome
        else {
            panic!("expected tokens, got {outcome:?}");
        };
        assert_eq!(access.expires_in, 900);
        assert_eq!(access.token.expose_secret(), "v4.public.x");
        assert!(refresh.expose_secret().starts_with("mtr_rt_"));
    }

    #[tokio::test]
    async fn login_rejects_password_over_72_bytes() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(Some(credentials(true))));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.tokens.expect_issue().times(0);

        let error = mocks
            .service()
            .await
            .login("alice", &SecretString::from("x".repeat(73)), &client())
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::InvalidCredentials);
    }

    fn claims() -> Claims {
        Claims {
            user_id: USER,
            role: Role::Patient,
            session_id: SESSION,
            issued_at: Utc::now(),
            expires_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn failed_login_names_the_account() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(Some(credentials(true))));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));

        let attempt = mocks
            .service()
            .await
            .attempt_login("alice", &SecretString::from("wrong-pass"), &client())
            .await;

        assert_eq!(
            attempt.account,
            Some(Principal {
                user_id: USER,
                role: Role::Patient,
            })
        );
        assert_eq!(
            attempt.result.unwrap_err(),
            IdentityError::InvalidCredentials
        );
    }

    #[tokio::test]
    async fn login_of_unknown_user_names_no_account() {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_for_login()
            .times(1)
            .returning(|_| Ok(None));
        mocks
            .hasher
            .expect_verify()
            .times(1)
            .returning(|_, _| Ok(false));

        let attempt = mocks
            .service()
            .await
            .attempt_login("nobody", &SecretString::from("whatever1"), &client())
            .await;

        assert_eq!(attempt.account, None);
        assert_eq!(
            attempt.result.unwrap_err(),
            IdentityError::InvalidCredentials
        );
    }

    #[tokio::test]
    async fn authenticate_rejects_deactivated_user() {
        let mut mocks = Mocks::new();
        mocks
            .tokens
            .expect_verify()
            .times(1)
            .returning(|_| Ok(claims()));
        mocks
            .sessions
            .expect_find_active()
            .times(1)
            .returning(|_, _| Ok(Some(session(0))));
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
        mocks.sessions.expect_find_active().times(0);

        let error = mocks
            .service()
            .await
            .authenticate("v4.local.forged")
            .await
            .unwrap_err();

        assert_eq!(error, IdentityError::Unauthenticated);
    }
}
