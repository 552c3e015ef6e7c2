//! Session, throttle, one-time token and MFA stores, and the development
//! mail outbox.

use chrono::TimeDelta;
use meditrustal_adapter_postgres::{
    PgLoginThrottle, PgMailOutbox, PgMfaStore, PgOneTimeTokenStore, PgSessionStore, PgUserStore,
    TestDatabase,
};
use meditrustal_crypto::sha256;
use meditrustal_identity::{
    LoginThrottle, MfaStore, NewOneTimeToken, NewSession, Notification, Notifier,
    OneTimeTokenStore, PasswordHash, RefreshRotation, RotationOutcome, Session, SessionId,
    SessionStore, StoredTotp, TokenHash, TokenPurpose, UserId, UserStore,
};
use secrecy::SecretString;

use crate::support::{at, count, new_user, sealed};

fn hash(seed: &str) -> TokenHash {
    TokenHash(sha256(seed.as_bytes()))
}

async fn setup_user() -> (TestDatabase, UserId) {
    let db = TestDatabase::create().await.unwrap();
    let new = new_user("ada.example", "ada@example.org");
    PgUserStore::new(db.pool().clone())
        .insert(&new)
        .await
        .unwrap();
    (db, new.user.id)
}

fn session(user_id: UserId) -> Session {
    Session {
        id: SessionId::random(),
        user_id,
        device: Some("test-agent/1.0".into()),
        ip: Some("203.0.113.9".parse().unwrap()),
        created_at: at(0),
        last_used_at: at(0),
        expires_at: at(1000),
    }
}

fn rotation(presented: &str, next: &str, now: i64) -> RefreshRotation {
    RefreshRotation {
        presented: hash(presented),
        next: hash(next),
        now: at(now),
        expires_at: at(now + 1000),
        ip: Some("2001:db8::7".parse().unwrap()),
    }
}

#[tokio::test]
async fn refresh_rotation_spends_token_once() {
    let (db, user_id) = setup_user().await;
    let store = PgSessionStore::new(db.pool().clone());
    let created = session(user_id);
    store
        .create(&NewSession {
            session: created.clone(),
            refresh_hash: hash("first"),
        })
        .await
        .unwrap();

    let rotated = store
        .rotate_refresh(&rotation("first", "second", 10))
        .await
        .unwrap();
    let reused = store
        .rotate_refresh(&rotation("first", "third", 20))
        .await
        .unwrap();
    let unknown = store
        .rotate_refresh(&rotation("never", "fourth", 20))
        .await
        .unwrap();

    let expected = Session {
        last_used_at: at(10),
        expires_at: at(1010),
        ip: Some("2001:db8::7".parse().unwrap()),
        ..created.clone()
    };
    assert_eq!(rotated, RotationOutcome::Rotated(expected));
    assert_eq!(
        reused,
        RotationOutcome::Reused {
            session_id: created.id,
            user_id
        }
    );
    assert_eq!(unknown, RotationOutcome::Rejected);
    assert_eq!(
        store
            .find_by_refresh(user_id, &hash("first"))
            .await
            .unwrap(),
        Some(created.id)
    );
    assert_eq!(
        store
            .find_by_refresh(UserId::random(), &hash("first"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn revoked_or_expired_session_rejects_rotation() {
    let (db, user_id) = setup_user().await;
    let store = PgSessionStore::new(db.pool().clone());
    let revoked = session(user_id);
    let expired = session(user_id);
    for (session, token) in [(&revoked, "revoked"), (&expired, "expired")] {
        store
            .create(&NewSession {
                session: session.clone(),
                refresh_hash: hash(token),
            })
            .await
            .unwrap();
    }

    assert!(store.revoke(user_id, revoked.id, at(5)).await.unwrap());
    assert!(!store.revoke(user_id, revoked.id, at(6)).await.unwrap());

    assert_eq!(
        store
            .rotate_refresh(&rotation("revoked", "a", 10))
            .await
            .unwrap(),
        RotationOutcome::Rejected
    );
    assert_eq!(
        store
            .rotate_refresh(&rotation("expired", "b", 1000))
            .await
            .unwrap(),
        RotationOutcome::Rejected
    );
    assert_eq!(store.find_active(revoked.id, at(10)).await.unwrap(), None);
    assert_eq!(store.find_active(expired.id, at(1000)).await.unwrap(), None);
    assert_eq!(
        store.find_active(expired.id, at(999)).await.unwrap(),
        Some(expired.clone())
    );
}

#[tokio::test]
async fn revoke_all_and_list_cover_only_active_sessions() {
    let (db, user_id) = setup_user().await;
    let store = PgSessionStore::new(db.pool().clone());
    let older = session(user_id);
    let newer = Session {
        last_used_at: at(50),
        ..session(user_id)
    };
    for (index, session) in [&older, &newer].into_iter().enumerate() {
        store
            .create(&NewSession {
                session: session.clone(),
                refresh_hash: hash(&format!("token-{index}")),
            })
            .await
            .unwrap();
    }

    let listed = store.list_active(user_id, at(60)).await.unwrap();
    assert_eq!(listed, vec![newer.clone(), older.clone()]);
    assert!(!store
        .revoke(UserId::random(), older.id, at(60))
        .await
        .unwrap());
    assert_eq!(store.revoke_all(user_id, at(70)).await.unwrap(), 2);
    assert_eq!(store.revoke_all(user_id, at(80)).await.unwrap(), 0);
    assert_eq!(store.list_active(user_id, at(90)).await.unwrap(), vec![]);
}

#[tokio::test]
async fn throttle_counts_locks_and_forgets() {
    let db = TestDatabase::create().await.unwrap();
    let throttle = PgLoginThrottle::new(db.pool().clone());
    let key = "login:0xabc".to_owned();
    let quiet = TimeDelta::seconds(100);

    let counts = [
        throttle.record_failure(&key, at(0), quiet).await.unwrap(),
        throttle.record_failure(&key, at(10), quiet).await.unwrap(),
        throttle.record_failure(&key, at(20), quiet).await.unwrap(),
    ];
    assert_eq!(counts, [1, 2, 3]);

    throttle.lock(&key, at(50)).await.unwrap();
    throttle.lock(&key, at(40)).await.unwrap();
    let keys = [key.clone(), "ip:127.0.0.1".to_owned()];
    assert_eq!(
        throttle.locked_until(&keys, at(30)).await.unwrap(),
        Some(at(50))
    );
    assert_eq!(throttle.locked_until(&keys, at(50)).await.unwrap(), None);

    // After a quiet period the count starts again and the lock is gone.
    assert_eq!(
        throttle.record_failure(&key, at(121), quiet).await.unwrap(),
        1
    );
    throttle.lock(&key, at(200)).await.unwrap();
    throttle.clear(&key).await.unwrap();
    assert_eq!(throttle.locked_until(&keys, at(130)).await.unwrap(), None);
    assert_eq!(
        throttle.record_failure(&key, at(131), quiet).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn one_time_token_is_spent_once_and_expires() {
    let (db, user_id) = setup_user().await;
    let store = PgOneTimeTokenStore::new(db.pool().clone());
    let token = |seed: &str| NewOneTimeToken {
        hash: hash(seed),
        purpose: TokenPurpose::PasswordReset,
        user_id,
        created_at: at(0),
        expires_at: at(100),
    };
    store.insert(&token("reset")).await.unwrap();
    store.insert(&token("other")).await.unwrap();

    let purpose = TokenPurpose::PasswordReset;
    assert_eq!(
        store
            .find_active(&hash("reset"), TokenPurpose::MfaLogin, at(1))
            .await
            .unwrap(),
        None,
        "another purpose"
    );
    assert_eq!(
        store.record_failed_attempt(&hash("reset")).await.unwrap(),
        1
    );
    let found = store
        .find_active(&hash("reset"), purpose, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.user_id, found.expires_at, found.failed_attempts),
        (user_id, at(100), 1)
    );
    assert_eq!(
        store.consume(&hash("reset"), purpose, at(2)).await.unwrap(),
        Some(user_id)
    );
    assert_eq!(
        store.consume(&hash("reset"), purpose, at(3)).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .consume(&hash("other"), purpose, at(100))
            .await
            .unwrap(),
        None,
        "expired"
    );

    store.delete_for_user(user_id, purpose).await.unwrap();
    let mut conn = db.connect().unwrap();
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS count FROM one_time_tokens"),
        1
    );
}

#[tokio::test]
async fn totp_steps_only_move_forward() {
    let (db, user_id) = setup_user().await;
    let store = PgMfaStore::new(db.pool().clone());
    let pending = StoredTotp {
        sealed_secret: sealed(4),
        confirmed: false,
        last_used_step: None,
    };
    assert!(store
        .save_pending_totp(user_id, &pending, at(0))
        .await
        .unwrap());
    assert!(
        !store.use_totp_step(user_id, 5).await.unwrap(),
        "unconfirmed"
    );

    let stale = StoredTotp {
        sealed_secret: sealed(5),
        ..pending.clone()
    };
    let codes = [hash("code-1"), hash("code-2")];
    assert!(!store
        .confirm_totp(user_id, &stale, 10, &codes, at(1))
        .await
        .unwrap());
    assert!(store
        .confirm_totp(user_id, &pending, 10, &codes, at(1))
        .await
        .unwrap());
    assert!(!store
        .save_pending_totp(user_id, &stale, at(2))
        .await
        .unwrap());

    let steps = [(10, false), (9, false), (11, true), (11, false), (13, true)];
    for (step, accepted) in steps {
        assert_eq!(
            store.use_totp_step(user_id, step).await.unwrap(),
            accepted,
            "step {step}"
        );
    }
    let stored = store.find_totp(user_id).await.unwrap().unwrap();
    assert_eq!(stored.sealed_secret, sealed(4));
    assert!(stored.confirmed);
    assert_eq!(stored.last_used_step, Some(13));

    assert!(store
        .use_recovery_code(user_id, &hash("code-2"), at(3))
        .await
        .unwrap());
    assert!(!store
        .use_recovery_code(user_id, &hash("code-2"), at(4))
        .await
        .unwrap());
    assert!(!store
        .use_recovery_code(user_id, &hash("unknown"), at(4))
        .await
        .unwrap());
    store.delete(user_id).await.unwrap();
    assert_eq!(store.find_totp(user_id).await.unwrap(), None);
    assert!(!store
        .use_recovery_code(user_id, &hash("code-1"), at(5))
        .await
        .unwrap());
}

#[tokio::test]
async fn password_update_and_mail_outbox() {
    let (db, user_id) = setup_user().await;
    let users = PgUserStore::new(db.pool().clone());

    assert!(users
        .update_password(user_id, &PasswordHash("$2b$04$new".into()), at(9))
        .await
        .unwrap());
    assert!(!users
        .update_password(UserId::random(), &PasswordHash("$2b$04$x".into()), at(9))
        .await
        .unwrap());
    let stored = users.find_credentials(user_id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, PasswordHash("$2b$04$new".into()));
    assert_eq!(stored.user.updated_at, at(9));

    let outbox = PgMailOutbox::new(db.pool().clone());
    outbox
        .send(&Notification::PasswordReset {
            user_id,
            to: stored.user.email.clone(),
            token: SecretString::from("mtr_reset_example"),
            expires_at: at(900),
        })
        .await
        .unwrap();
    let mut conn = db.connect().unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS count FROM mail_outbox WHERE recipient = 'ada@example.org' \
             AND body LIKE '%mtr_reset_example%' AND kind = 'password_reset'"
        ),
        1
    );
}
