use meditrustal_adapter_postgres::{PgUserStore, TestDatabase};
use meditrustal_identity::{login_key, UniqueField, UserId, UserStore, UserStoreError};
use meditrustal_ledger::{ChainRole, LedgerJob, UserRegistration};

use crate::support::{count, jobs, new_user, sealed, user_key};

async fn setup() -> (TestDatabase, PgUserStore) {
    let db = TestDatabase::create().await.unwrap();
    let store = PgUserStore::new(db.pool().clone());
    (db, store)
}

#[tokio::test]
async fn inserted_user_is_found_by_id() {
    let (_db, store) = setup().await;
    let new = new_user("ada.example", "ada@example.org");

    store.insert(&new).await.unwrap();
    let found = store.find_by_id(new.user.id).await.unwrap();

    assert_eq!(found, Some(new.user));
}

#[tokio::test]
async fn unknown_id_is_not_found() {
    let (_db, store) = setup().await;

    let found = store.find_by_id(UserId::random()).await.unwrap();

    assert_eq!(found, None);
}

#[tokio::test]
async fn insert_stores_sealed_key_and_registration_job() {
    let (db, store) = setup().await;
    let new = new_user("ada.example", "ada@example.org");

    store.insert(&new).await.unwrap();

    let mut conn = db.connect().unwrap();
    let key = user_key(&mut conn, new.user.id);
    assert_eq!(key.key_id, "test-key-1");
    assert_eq!(key.wrapped_key, sealed(1).wrapped_key);
    assert_eq!(key.nonce, sealed(1).nonce.to_vec());
    assert_eq!(key.ciphertext, sealed(1).ciphertext);

    let rows = jobs(&mut conn);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kind, "register_user");
    assert_eq!(rows[0].user_id, Some(new.user.id.0));
    assert_eq!(rows[0].record_id, None);
    assert_eq!(rows[0].status, "pending");
    assert_eq!(rows[0].attempts, 0);
    let expected = LedgerJob::RegisterUser(UserRegistration {
        user_id: new.user.id.0,
        did: new.user.did.as_str().to_owned(),
        address: new.user.blockchain_address,
        role: ChainRole::Patient,
    });
    assert_eq!(
        serde_json::from_value::<LedgerJob>(rows[0].payload.clone()).unwrap(),
        expected
    );
}

#[tokio::test]
async fn login_finds_username_in_any_case() {
    let (_db, store) = setup().await;
    let new = new_user("Ada.Example", "ada@example.org");
    store.insert(&new).await.unwrap();

    let found = store
        .find_for_login(&login_key("ADA.example"))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(found.user, new.user);
    assert_eq!(found.password_hash, new.password_hash);
}

#[tokio::test]
async fn login_finds_email_ignoring_case_and_form() {
    let (_db, store) = setup().await;
    // Registered decomposed (u + combining diaeresis), which Email::parse stores as NFC.
    let new = new_user("juergen", "Ju\u{0308}rgen.Vale@Example.test");
    store.insert(&new).await.unwrap();

    let precomposed_upper = store
        .find_for_login(&login_key("J\u{00dc}RGEN.VALE@EXAMPLE.TEST"))
        .await
        .unwrap();
    let decomposed_lower = store
        .find_for_login(&login_key("ju\u{0308}rgen.vale@example.test"))
        .await
        .unwrap();

    assert_eq!(
        precomposed_upper.map(|found| found.user.id),
        Some(new.user.id)
    );
    assert_eq!(
        decomposed_lower.map(|found| found.user.id),
        Some(new.user.id)
    );
}

#[tokio::test]
async fn login_with_unknown_key_finds_nothing() {
    let (_db, store) = setup().await;
    store
        .insert(&new_user("ada.example", "ada@example.org"))
        .await
        .unwrap();

    let found = store.find_for_login("grace@example.org").await.unwrap();

    assert!(found.is_none());
}

#[tokio::test]
async fn username_differing_in_case_is_rejected() {
    let (db, store) = setup().await;
    store
        .insert(&new_user("ada.example", "ada@example.org"))
        .await
        .unwrap();

    let result = store
        .insert(&new_user("ADA.Example", "other@example.org"))
        .await;

    assert_eq!(
        result,
        Err(UserStoreError::AlreadyExists(UniqueField::Username))
    );
    let mut conn = db.connect().unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM users"), 1);
    assert_eq!(count(&mut conn, "SELECT count(*) FROM user_keys"), 1);
    assert_eq!(count(&mut conn, "SELECT count(*) FROM outbox_jobs"), 1);
}

#[tokio::test]
async fn email_differing_in_case_is_rejected() {
    let (_db, store) = setup().await;
    store
        .insert(&new_user("ada.example", "ada@example.org"))
        .await
        .unwrap();

    let result = store.insert(&new_user("grace", "ADA@Example.ORG")).await;

    assert_eq!(
        result,
        Err(UserStoreError::AlreadyExists(UniqueField::Email))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_inserts_of_one_email_store_one_user() {
    let (db, store) = setup().await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.spawn(async move {
            store
                .insert(&new_user(&format!("user{i}"), "same@example.org"))
                .await
        });
    }
    let results = tasks.join_all().await;

    let created = results.iter().filter(|result| result.is_ok()).count();
    let rejected = results
        .iter()
        .filter(|result| **result == Err(UserStoreError::AlreadyExists(UniqueField::Email)))
        .count();
    assert_eq!(created, 1, "{results:?}");
    assert_eq!(rejected, 9, "{results:?}");
    let mut conn = db.connect().unwrap();
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) FROM users WHERE email_key = 'same@example.org'"
        ),
        1
    );
    assert_eq!(count(&mut conn, "SELECT count(*) FROM outbox_jobs"), 1);
}

#[tokio::test]
async fn failed_key_insert_leaves_no_user() {
    let (db, store) = setup().await;
    let mut new = new_user("ada.example", "ada@example.org");
    // An empty key id violates the user_keys check constraint.
    new.sealed_key.key_id = meditrustal_crypto::KeyId::new("");

    let result = store.insert(&new).await;

    assert!(
        matches!(result, Err(UserStoreError::Unavailable(_))),
        "{result:?}"
    );
    let mut conn = db.connect().unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM users"), 0);
    assert_eq!(count(&mut conn, "SELECT count(*) FROM outbox_jobs"), 0);
}
