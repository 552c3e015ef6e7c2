//! Unit tests of sessions, throttling, password change and reset, and
//! two-factor login, with every port mocked.

use std::sync::{Arc, Mutex};

use chrono::{TimeDelta, Utc};
use mockall::predicate::eq;
use secrecy::{ExposeSecret, SecretString};

use super::test_support::{
    client, credentials, keyring, session, stored_user, Mocks, SESSION, USER,
};
use crate::error::IdentityError;
use crate::mfa::{totp_secret_aad, MfaCode, StoredTotp};
use crate::opaque::{hash_presented, OneTimeToken, OpaqueToken, TokenHash, TokenPurpose};
use crate::ports::NotifyError;
use crate::session::{LoginOutcome, RotationOutcome};
use crate::totp;
use crate::types::{Claims, PasswordHash, Role, UserId};

fn login_key_of(name: &str) -> String {
    crate::throttle::ThrottleKey::Login(name.into()).storage_key()
}

fn refresh_token() -> OpaqueToken {
    OpaqueToken::generate(TokenPurpose::Refresh).unwrap()
}

fn one_time_token(failed_attempts: u32) -> OneTimeToken {
    OneTimeToken {
        user_id: USER,
        expires_at: Utc::now() + TimeDelta::minutes(5),
        failed_attempts,
    }
}

/// A confirmed TOTP credential sealed under the test keyring, and the code
/// of the current time step.
fn confirmed_totp() -> (StoredTotp, String, u64) {
    let secret = [9u8; 20];
    let sealed_secret =
        meditrustal_crypto::seal(&keyring(), &secret, &totp_secret_aad(USER)).unwrap();
    let step = totp::time_step(u64::try_from(Utc::now().timestamp()).unwrap());
    let code = format!("{:06}", totp::hotp(&secret, step, 6));
    let stored = StoredTotp {
        sealed_secret,
        confirmed: true,
        last_used_step: None,
    };
    (stored, code, step)
}

#[tokio::test]
async fn refresh_rejects_access_token_without_store_call() {
    let mut mocks = Mocks::new();
    mocks.sessions.expect_rotate_refresh().times(0);

    let error = mocks
        .service()
        .await
        .refresh(&SecretString::from("v4.public.eyJzdWIiOiJ4In0"), &client())
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::InvalidRefreshToken);
}

#[tokio::test]
async fn refresh_reuse_revokes_whole_session() {
    let mut mocks = Mocks::new();
    let token = refresh_token();
    let presented = token.hash;
    mocks
        .sessions
        .expect_rotate_refresh()
        .withf(move |rotation| rotation.presented == presented)
        .times(1)
        .returning(|_| {
            Ok(RotationOutcome::Reused {
                session_id: SESSION,
                user_id: USER,
            })
        });
    mocks
        .sessions
        .expect_revoke()
        .withf(|user, session, _| *user == USER && *session == SESSION)
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks.tokens.expect_issue().times(0);

    let attempt = mocks
        .service()
        .await
        .attempt_refresh(&token.secret, &client())
        .await;

    assert_eq!(attempt.reused_by, Some(USER));
    assert_eq!(
        attempt.result.unwrap_err(),
        IdentityError::InvalidRefreshToken
    );
}

#[tokio::test]
async fn refresh_rotates_token_within_session() {
    let mut mocks = Mocks::new();
    mocks.allow_issue();
    let token = refresh_token();
    let presented = token.hash;
    mocks
        .sessions
        .expect_rotate_refresh()
        .withf(move |rotation| {
            rotation.presented == presented
                && rotation.next != presented
                && rotation.expires_at - rotation.now == TimeDelta::days(30)
                && rotation.ip == client().ip
        })
        .times(1)
        .returning(|_| Ok(RotationOutcome::Rotated(session(0))));
    mocks
        .users
        .expect_find_by_id()
        .with(eq(USER))
        .times(1)
        .returning(|_| Ok(Some(stored_user(true))));

    let pair = mocks
        .service()
        .await
        .refresh(&token.secret, &client())
        .await
        .unwrap();

    assert_eq!(pair.session_id, SESSION);
    assert_eq!(
        pair.access.token.expose_secret(),
        format!("v4.public.{SESSION}")
    );
    assert!(pair.refresh.expose_secret().starts_with("mtr_rt_"));
    assert_ne!(
        pair.refresh.expose_secret(),
        token.secret.expose_secret(),
        "the refresh token was not rotated"
    );
}

#[tokio::test]
async fn refresh_of_rejected_token_or_inactive_user_fails() {
    let mut mocks = Mocks::new();
    let mut outcomes = vec![
        RotationOutcome::Rejected,
        RotationOutcome::Rotated(session(0)),
    ];
    mocks
        .sessions
        .expect_rotate_refresh()
        .times(2)
        .returning(move |_| Ok(outcomes.remove(0)));
    mocks
        .users
        .expect_find_by_id()
        .times(1)
        .returning(|_| Ok(Some(stored_user(false))));
    mocks.tokens.expect_issue().times(0);
    let service = mocks.service().await;

    for case in ["rejected token", "deactivated user"] {
        let error = service
            .refresh(&refresh_token().secret, &client())
            .await
            .unwrap_err();
        assert_eq!(error, IdentityError::InvalidRefreshToken, "{case}");
    }
}

fn valid_claims(user_id: UserId) -> Claims {
    Claims {
        user_id,
        role: Role::Patient,
        session_id: SESSION,
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::minutes(15),
    }
}

#[tokio::test]
async fn authenticate_rejects_revoked_session() {
    let mut mocks = Mocks::new();
    mocks
        .tokens
        .expect_verify()
        .returning(|_| Ok(valid_claims(USER)));
    mocks
        .sessions
        .expect_find_active()
        .with(eq(SESSION), mockall::predicate::always())
        .times(1)
        .returning(|_, _| Ok(None));
    mocks.users.expect_find_by_id().times(0);

    let error = mocks
        .service()
        .await
        .authenticate("v4.public.x")
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::Unauthenticated);
}

#[tokio::test]
async fn authenticate_rejects_session_of_another_user() {
    let mut mocks = Mocks::new();
    mocks
        .tokens
        .expect_verify()
        .returning(|_| Ok(valid_claims(UserId(uuid::Uuid::from_u128(99)))));
    mocks
        .sessions
        .expect_find_active()
        .times(1)
        .returning(|_, _| Ok(Some(session(0))));
    mocks.users.expect_find_by_id().times(0);

    let error = mocks
        .service()
        .await
        .authenticate("v4.public.x")
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::Unauthenticated);
}

#[tokio::test]
async fn authenticate_touches_session_at_most_once_a_minute() {
    for (idle_secs, touches) in [(5, 0), (59, 0), (61, 1), (3600, 1)] {
        let mut mocks = Mocks::new();
        mocks
            .tokens
            .expect_verify()
            .returning(|_| Ok(valid_claims(USER)));
        mocks
            .sessions
            .expect_find_active()
            .returning(move |_, _| Ok(Some(session(idle_secs))));
        mocks
            .users
            .expect_find_by_id()
            .returning(|_| Ok(Some(stored_user(true))));
        mocks
            .sessions
            .expect_touch()
            .with(eq(SESSION), mockall::predicate::always())
            .times(touches)
            .returning(|_, _| Ok(()));

        let (principal, session_id) = mocks
            .service()
            .await
            .authenticate_session("v4.public.x")
            .await
            .unwrap();

        assert_eq!(principal.user_id, USER, "idle {idle_secs} s");
        assert_eq!(session_id, SESSION, "idle {idle_secs} s");
    }
}

#[tokio::test]
async fn login_while_locked_answers_retry_after_without_checking() {
    let mut mocks = Mocks::new();
    let until = Utc::now() + TimeDelta::milliseconds(9_500);
    mocks
        .throttle
        .expect_locked_until()
        .withf(|keys, _| keys == [login_key_of("alice"), "ip:192.0.2.1".to_owned()])
        .times(1)
        .returning(move |_, _| Ok(Some(until)));
    mocks.users.expect_find_for_login().times(0);
    mocks.hasher.expect_verify().times(0);

    let error = mocks
        .service()
        .await
        .login("Alice", &SecretString::from("right-pass"), &client())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        IdentityError::TooManyAttempts {
            retry_after_secs: 10
        }
    );
}

#[tokio::test]
async fn failed_login_at_limit_locks_login_name() {
    let mut mocks = Mocks::new();
    mocks
        .throttle
        .expect_locked_until()
        .returning(|_, _| Ok(None));
    mocks
        .throttle
        .expect_record_failure()
        .withf(|key, _, forget_after| {
            *key == login_key_of("alice") && *forget_after == TimeDelta::minutes(15)
        })
        .times(1)
        .returning(|_, _, _| Ok(5));
    mocks
        .throttle
        .expect_record_failure()
        .withf(|key, _, _| key == "ip:192.0.2.1")
        .times(1)
        .returning(|_, _, _| Ok(5));
    // The account's own count is below the limit, so only the name locks.
    mocks
        .throttle
        .expect_record_failure()
        .withf(|key, _, _| key.starts_with("user:"))
        .times(1)
        .returning(|_, _, _| Ok(2));
    mocks
        .throttle
        .expect_lock()
        .withf(|key, until| {
            let lockout = *until - Utc::now();
            *key == login_key_of("alice")
                && lockout > TimeDelta::seconds(29)
                && lockout <= TimeDelta::seconds(30)
        })
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .users
        .expect_find_for_login()
        .returning(|_| Ok(Some(credentials(true))));
    mocks.hasher.expect_verify().returning(|_, _| Ok(false));

    let error = mocks
        .service()
        .await
        .login("alice", &SecretString::from("wrong-pass"), &client())
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::InvalidCredentials);
}

#[tokio::test]
async fn login_with_confirmed_totp_returns_challenge_not_tokens() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    mocks
        .users
        .expect_find_for_login()
        .returning(|_| Ok(Some(credentials(true))));
    mocks.hasher.expect_verify().returning(|_, _| Ok(true));
    mocks
        .mfa
        .expect_find_totp()
        .returning(|_| Ok(Some(confirmed_totp().0)));
    mocks
        .one_time
        .expect_insert()
        .withf(|token| {
            token.purpose == TokenPurpose::MfaLogin
                && token.user_id == USER
                && token.expires_at - token.created_at == TimeDelta::minutes(5)
        })
        .times(1)
        .returning(|_| Ok(()));
    mocks.sessions.expect_create().times(0);
    mocks.tokens.expect_issue().times(0);

    let outcome = mocks
        .service()
        .await
        .login("alice", &SecretString::from("right-pass"), &client())
        .await
        .unwrap();

    let LoginOutcome::MfaRequired(challenge) = outcome else {
        panic!("expected an MFA challenge, got {outcome:?}");
    };
    assert_eq!(challenge.expires_in, 300);
    assert!(challenge.token.expose_secret().starts_with("mtr_mfa_"));
}

/// Mocks for the second login step with a valid MFA token and a confirmed
/// credential. `step_accepted` is what the store returns for the code's step.
fn mfa_login_mocks(step_accepted: bool) -> (Mocks, String) {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    let (stored, code, step) = confirmed_totp();
    mocks
        .one_time
        .expect_find_active()
        .withf(|_, purpose, _| *purpose == TokenPurpose::MfaLogin)
        .returning(|_, _, _| Ok(Some(one_time_token(0))));
    mocks
        .mfa
        .expect_find_totp()
        .returning(move |_| Ok(Some(stored.clone())));
    mocks
        .mfa
        .expect_use_totp_step()
        .with(eq(USER), eq(step))
        .times(1)
        .returning(move |_, _| Ok(step_accepted));
    (mocks, code)
}

#[tokio::test]
async fn mfa_login_accepts_current_code() {
    let (mut mocks, code) = mfa_login_mocks(true);
    mocks.allow_issue();
    mocks
        .one_time
        .expect_consume()
        .times(1)
        .returning(|_, _, _| Ok(Some(USER)));
    mocks
        .users
        .expect_find_by_id()
        .returning(|_| Ok(Some(stored_user(true))));
    mocks
        .sessions
        .expect_create()
        .times(1)
        .returning(|_| Ok(()));
    let challenge = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();

    let pair = mocks
        .service()
        .await
        .complete_mfa_login(&challenge.secret, &MfaCode::Totp(code), &client())
        .await
        .unwrap();

    assert!(pair.refresh.expose_secret().starts_with("mtr_rt_"));
    assert_eq!(
        pair.access.token.expose_secret(),
        format!("v4.public.{}", pair.session_id)
    );
}

#[tokio::test]
async fn mfa_login_rejects_code_of_used_step() {
    let (mut mocks, code) = mfa_login_mocks(false);
    mocks
        .one_time
        .expect_record_failed_attempt()
        .times(1)
        .returning(|_| Ok(1));
    mocks.one_time.expect_consume().times(0);
    mocks.sessions.expect_create().times(0);
    let challenge = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();

    let error = mocks
        .service()
        .await
        .complete_mfa_login(&challenge.secret, &MfaCode::Totp(code), &client())
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::InvalidMfaCode);
}

#[tokio::test]
async fn mfa_login_spends_challenge_after_five_wrong_codes() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    mocks
        .one_time
        .expect_find_active()
        .returning(|_, _, _| Ok(Some(one_time_token(4))));
    mocks
        .mfa
        .expect_use_recovery_code()
        .times(1)
        .returning(|_, _, _| Ok(false));
    mocks
        .one_time
        .expect_record_failed_attempt()
        .times(1)
        .returning(|_| Ok(5));
    mocks
        .one_time
        .expect_consume()
        .withf(|_, purpose, _| *purpose == TokenPurpose::MfaLogin)
        .times(1)
        .returning(|_, _, _| Ok(Some(USER)));
    mocks.sessions.expect_create().times(0);
    let challenge = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();
    let code = MfaCode::Recovery(SecretString::from("aaaa-bbbb-cccc-dddd"));

    let error = mocks
        .service()
        .await
        .complete_mfa_login(&challenge.secret, &code, &client())
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::InvalidMfaCode);
}

#[tokio::test]
async fn mfa_login_rejects_unknown_or_foreign_token() {
    let mut mocks = Mocks::new();
    mocks
        .one_time
        .expect_find_active()
        .times(1)
        .returning(|_, _, _| Ok(None));
    let service = mocks.service().await;
    let refresh = refresh_token();
    let unknown = OpaqueToken::generate(TokenPurpose::MfaLogin).unwrap();

    for (case, token) in [
        ("refresh token", &refresh.secret),
        ("unknown", &unknown.secret),
    ] {
        let error = service
            .complete_mfa_login(token, &MfaCode::Totp("123456".into()), &client())
            .await
            .unwrap_err();
        assert_eq!(error, IdentityError::InvalidMfaToken, "{case}");
    }
}

#[tokio::test]
async fn confirm_totp_returns_ten_recovery_codes() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    let (mut pending, code, step) = confirmed_totp();
    pending.confirmed = false;
    let stored = pending.clone();
    mocks
        .mfa
        .expect_find_totp()
        .returning(move |_| Ok(Some(stored.clone())));
    mocks
        .mfa
        .expect_confirm_totp()
        .withf(move |user, totp, used_step, hashes, _| {
            *user == USER && *totp == pending && *used_step == step && hashes.len() == 10
        })
        .times(1)
        .returning(|_, _, _, _, _| Ok(true));

    let codes = mocks
        .service()
        .await
        .confirm_totp(USER, &code, &client())
        .await
        .unwrap();

    assert_eq!(codes.len(), 10);
}

#[tokio::test]
async fn enrollment_fails_when_totp_is_confirmed() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_find_by_id()
        .returning(|_| Ok(Some(stored_user(true))));
    mocks
        .mfa
        .expect_save_pending_totp()
        .withf(|user, totp, _| *user == USER && !totp.confirmed && totp.last_used_step.is_none())
        .times(1)
        .returning(|_, _, _| Ok(false));

    let error = mocks
        .service()
        .await
        .start_totp_enrollment(USER)
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::MfaAlreadyEnabled);
}

#[tokio::test]
async fn disable_totp_with_wrong_password_keeps_it() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    mocks
        .mfa
        .expect_find_totp()
        .returning(|_| Ok(Some(confirmed_totp().0)));
    mocks
        .users
        .expect_find_credentials()
        .returning(|_| Ok(Some(credentials(true))));
    mocks.hasher.expect_verify().returning(|_, _| Ok(false));
    mocks.mfa.expect_use_totp_step().times(0);
    mocks.mfa.expect_delete().times(0);

    let error = mocks
        .service()
        .await
        .disable_totp(
            USER,
            &SecretString::from("wrong-pass"),
            &MfaCode::Totp("123456".into()),
            &client(),
        )
        .await
        .unwrap_err();

    assert_eq!(
        error,
        IdentityError::Invalid {
            field: "password",
            message: "does not match your password".into()
        }
    );
}

#[tokio::test]
async fn password_change_ends_every_session_and_starts_one() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    mocks.allow_issue();
    mocks
        .users
        .expect_find_credentials()
        .with(eq(USER))
        .returning(|_| Ok(Some(credentials(true))));
    mocks
        .hasher
        .expect_verify()
        .times(1)
        .returning(|_, _| Ok(true));
    mocks
        .hasher
        .expect_hash()
        .withf(|password| password.expose_secret() == "new horse battery")
        .times(1)
        .returning(|_| Ok(PasswordHash("new".into())));
    mocks
        .users
        .expect_update_password()
        .withf(|user, hash, _| *user == USER && hash.0 == "new")
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks
        .sessions
        .expect_revoke_all()
        .with(eq(USER), mockall::predicate::always())
        .times(1)
        .returning(|_, _| Ok(3));
    mocks
        .one_time
        .expect_delete_for_user()
        .with(eq(USER), eq(TokenPurpose::PasswordReset))
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .sessions
        .expect_create()
        .times(1)
        .returning(|_| Ok(()));

    let pair = mocks
        .service()
        .await
        .change_password(
            USER,
            &SecretString::from("correct horse battery"),
            SecretString::from("new horse battery"),
            &client(),
        )
        .await
        .unwrap();

    assert!(pair.refresh.expose_secret().starts_with("mtr_rt_"));
}

#[tokio::test]
async fn password_change_rejects_invalid_passwords() {
    let cases = [
        (
            false,
            "new horse battery",
            "current_password",
            "does not match your password",
        ),
        (
            true,
            "correct horse battery",
            "new_password",
            "choose a password that differs from the current one",
        ),
        (
            true,
            "my alice password",
            "new_password",
            "do not include your username",
        ),
        (true, "short", "new_password", "use at least 8 characters"),
    ];
    for (current_matches, new_password, field, message) in cases {
        let mut mocks = Mocks::new();
        mocks.allow_throttle();
        mocks
            .users
            .expect_find_credentials()
            .returning(|_| Ok(Some(credentials(true))));
        mocks
            .hasher
            .expect_verify()
            .returning(move |_, _| Ok(current_matches));
        mocks.users.expect_update_password().times(0);
        mocks.sessions.expect_revoke_all().times(0);

        let error = mocks
            .service()
            .await
            .change_password(
                USER,
                &SecretString::from("correct horse battery"),
                SecretString::from(new_password),
                &client(),
            )
            .await
            .unwrap_err();

        assert_eq!(
            error,
            IdentityError::Invalid {
                field,
                message: message.into()
            },
            "new password {new_password:?}"
        );
    }
}

#[tokio::test]
async fn reset_request_for_unknown_email_sends_nothing() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_find_for_login()
        .with(eq("nobody@example.org"))
        .times(1)
        .returning(|_| Ok(None));
    mocks.one_time.expect_insert().times(0);
    mocks.notifier.expect_send().times(0);

    let result = mocks
        .service()
        .await
        .request_password_reset("Nobody@Example.org")
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn reset_request_stores_hash_and_sends_token() {
    let mut mocks = Mocks::new();
    let stored: Arc<Mutex<Option<TokenHash>>> = Arc::default();
    mocks
        .users
        .expect_find_for_login()
        .returning(|_| Ok(Some(credentials(true))));
    mocks
        .throttle
        .expect_record_failure()
        .withf(|key, _, _| *key == format!("reset:{}", USER.0))
        .times(1)
        .returning(|_, _, _| Ok(1));
    mocks
        .one_time
        .expect_delete_for_user()
        .with(eq(USER), eq(TokenPurpose::PasswordReset))
        .times(1)
        .returning(|_, _| Ok(()));
    let saved = Arc::clone(&stored);
    mocks
        .one_time
        .expect_insert()
        .withf(|token| {
            token.purpose == TokenPurpose::PasswordReset
                && token.user_id == USER
                && token.expires_at - token.created_at == TimeDelta::minutes(15)
        })
        .times(1)
        .returning(move |token| {
            *saved.lock().unwrap() = Some(token.hash);
            Ok(())
        });
    let inserted = Arc::clone(&stored);
    mocks
        .notifier
        .expect_send()
        .withf(move |message| {
            let crate::ports::Notification::PasswordReset {
                user_id, to, token, ..
            } = message;
            *user_id == USER
                && to.as_str() == "alice@example.org"
                && hash_presented(token, TokenPurpose::PasswordReset) == *inserted.lock().unwrap()
        })
        .times(1)
        .returning(|_| Ok(()));

    let result = mocks
        .service()
        .await
        .request_password_reset("alice@example.org")
        .await;

    assert_eq!(result, Ok(()));
    assert!(stored.lock().unwrap().is_some());
}

#[tokio::test]
async fn reset_request_past_cap_sends_nothing() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_find_for_login()
        .returning(|_| Ok(Some(credentials(true))));
    mocks
        .throttle
        .expect_record_failure()
        .times(1)
        .returning(|_, _, _| Ok(crate::MAX_RESET_MESSAGES + 1));
    mocks.one_time.expect_delete_for_user().times(0);
    mocks.one_time.expect_insert().times(0);
    mocks.notifier.expect_send().times(0);

    let result = mocks
        .service()
        .await
        .request_password_reset("alice@example.org")
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn reset_request_hides_delivery_failure() {
    let mut mocks = Mocks::new();
    mocks
        .users
        .expect_find_for_login()
        .returning(|_| Ok(Some(credentials(true))));
    mocks
        .throttle
        .expect_record_failure()
        .returning(|_, _, _| Ok(1));
    mocks
        .one_time
        .expect_delete_for_user()
        .returning(|_, _| Ok(()));
    mocks.one_time.expect_insert().returning(|_| Ok(()));
    mocks
        .notifier
        .expect_send()
        .times(1)
        .returning(|_| Err(NotifyError("SMTP server refused".into())));

    let result = mocks
        .service()
        .await
        .request_password_reset("alice@example.org")
        .await;

    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn reset_with_weak_password_keeps_token_unspent() {
    let mut mocks = Mocks::new();
    mocks
        .one_time
        .expect_find_active()
        .returning(|_, _, _| Ok(Some(one_time_token(0))));
    mocks
        .users
        .expect_find_by_id()
        .returning(|_| Ok(Some(stored_user(true))));
    mocks.one_time.expect_consume().times(0);
    let token = OpaqueToken::generate(TokenPurpose::PasswordReset).unwrap();

    let error = mocks
        .service()
        .await
        .reset_password(&token.secret, SecretString::from("password"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        IdentityError::Invalid {
            field: "new_password",
            message: "this password is among the most common ones; choose another".into()
        }
    );
}

#[tokio::test]
async fn reset_spends_token_and_ends_sessions() {
    let mut mocks = Mocks::new();
    mocks.allow_throttle();
    let token = OpaqueToken::generate(TokenPurpose::PasswordReset).unwrap();
    let hash = token.hash;
    mocks
        .one_time
        .expect_find_active()
        .returning(|_, _, _| Ok(Some(one_time_token(0))));
    mocks
        .users
        .expect_find_by_id()
        .returning(|_| Ok(Some(stored_user(true))));
    mocks
        .one_time
        .expect_consume()
        .withf(move |presented, purpose, _| {
            *presented == hash && *purpose == TokenPurpose::PasswordReset
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(USER)));
    mocks
        .hasher
        .expect_hash()
        .times(1)
        .returning(|_| Ok(PasswordHash("new".into())));
    mocks
        .users
        .expect_update_password()
        .times(1)
        .returning(|_, _, _| Ok(true));
    mocks
        .sessions
        .expect_revoke_all()
        .times(1)
        .returning(|_, _| Ok(2));
    mocks
        .one_time
        .expect_delete_for_user()
        .times(1)
        .returning(|_, _| Ok(()));

    let result = mocks
        .service()
        .await
        .reset_password(&token.secret, SecretString::from("new horse battery"))
        .await;

    assert_eq!(result, Ok(USER));
}

#[tokio::test]
async fn reset_with_spent_or_foreign_token_fails() {
    let mut mocks = Mocks::new();
    mocks
        .one_time
        .expect_find_active()
        .times(1)
        .returning(|_, _, _| Ok(None));
    let service = mocks.service().await;
    let spent = OpaqueToken::generate(TokenPurpose::PasswordReset).unwrap();
    let refresh = refresh_token();

    for (case, token) in [("spent", &spent.secret), ("refresh token", &refresh.secret)] {
        let error = service
            .reset_password(token, SecretString::from("new horse battery"))
            .await
            .unwrap_err();
        assert_eq!(error, IdentityError::InvalidResetToken, "{case}");
    }
}

#[tokio::test]
async fn revoking_unknown_session_is_not_found() {
    let mut mocks = Mocks::new();
    mocks
        .sessions
        .expect_revoke()
        .times(1)
        .returning(|_, _, _| Ok(false));

    let error = mocks
        .service()
        .await
        .revoke_session(USER, SESSION)
        .await
        .unwrap_err();

    assert_eq!(error, IdentityError::SessionNotFound);
}

#[tokio::test]
async fn logout_ends_current_and_named_session() {
    let mut mocks = Mocks::new();
    let other = crate::session::SessionId(uuid::Uuid::from_u128(43));
    let token = refresh_token();
    let hash = token.hash;
    mocks
        .sessions
        .expect_find_by_refresh()
        .withf(move |user, presented| *user == USER && *presented == hash)
        .times(1)
        .returning(move |_, _| Ok(Some(other)));
    for session_id in [SESSION, other] {
        mocks
            .sessions
            .expect_revoke()
            .withf(move |user, id, _| *user == USER && *id == session_id)
            .times(1)
            .returning(|_, _, _| Ok(true));
    }

    let result = mocks
        .service()
        .await
        .logout(USER, SESSION, Some(&token.secret))
        .await;

    assert_eq!(result, Ok(()));
}
