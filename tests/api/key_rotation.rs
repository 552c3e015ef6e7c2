//! Master key rotation against a running server: an interrupted run, the
//! run that resumes it, retirement of the old key, and reads throughout.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use diesel::sql_types::{Bytea, Text};
use diesel::{QueryableByName, RunQueryDsl};
use meditrustal::app::{self, Running};
use meditrustal::progress::Progress;
use meditrustal::rotation::{self, RotateOptions};
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use meditrustal_identity::totp;
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::serde_json::{json, Value};
use meditrustal_tests::{TestApp, PASSWORD};

#[derive(QueryableByName, Debug, PartialEq, Eq, Clone)]
struct SealedRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    key_id: String,
    #[diesel(sql_type = Bytea)]
    wrapped_key: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    nonce: Vec<u8>,
    #[diesel(sql_type = Bytea)]
    ciphertext: Vec<u8>,
}

/// Loads every stored data key, records first, each table in id order.
fn sealed_rows(app: &TestApp) -> Vec<SealedRow> {
    diesel::sql_query(
        "SELECT * FROM (\
           SELECT 1 AS part, id::text AS id, key_id, wrapped_key, data_nonce AS nonce, ciphertext \
           FROM medical_records \
           UNION ALL SELECT 2, user_id::text, key_id, wrapped_key, nonce, ciphertext FROM user_keys \
           UNION ALL SELECT 3, user_id::text, key_id, wrapped_key, nonce, ciphertext \
           FROM totp_credentials\
         ) AS sealed ORDER BY part, id",
    )
    .load(&mut app.db().connect().unwrap())
    .unwrap()
}

fn new_keyring() -> MasterKeyring {
    MasterKeyring::new(
        MasterKey::new(KeyId::new("mk2"), [8; 32]),
        [MasterKey::new(KeyId::new("test-mk"), [7; 32])],
    )
}

/// Starts a second server on the app's database with `keyring`, as an
/// operator restarts the service with new key settings.
async fn start_with(app: &TestApp, keyring: MasterKeyring) -> anyhow::Result<(String, Running)> {
    let mut settings = app.settings.clone();
    settings.server.port = 0;
    let mut keys = app.keys();
    keys.master = keyring;
    let running = app::start(&settings, keys).await?;
    Ok((format!("http://{}/api/v1", running.address), running))
}

async fn read_raw(app: &TestApp, base: &str, token: &str, id: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(format!("{base}/medical-records/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Returns the TOTP code of `step` for a base32 secret.
fn totp_code(secret: &str, step: u64) -> String {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .unwrap();
    format!("{:06}", totp::hotp(&bytes, step, 6))
}

fn current_step() -> u64 {
    totp::time_step(u64::try_from(chrono::Utc::now().timestamp()).unwrap())
}

/// Enrolls and confirms TOTP for the user of `token`; returns the secret.
async fn enable_totp(app: &TestApp, token: &str) -> String {
    let enrollment: Value = app
        .post_empty("/auth/mfa/totp", Some(token))
        .await
        .json()
        .await
        .unwrap();
    let secret = enrollment["secret"].as_str().unwrap().to_owned();
    let confirmed = app
        .post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": totp_code(&secret, current_step())}),
            Some(token),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    secret
}

fn captured() -> (Arc<Mutex<Vec<u8>>>, Progress) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer: Arc<Mutex<dyn Write + Send>> = buffer.clone();
    let progress = Progress::lines("keys rotate", "data keys", 0, writer);
    (buffer, progress)
}

#[tokio::test]
async fn rotation_resumes_and_keeps_ciphertext() {
    let app = TestApp::spawn().await.unwrap();
    let (_, alice) = app.patient("alice").await;
    let (_, bob) = app.patient("bob").await;
    let (_, carla) = app.patient("carla").await;
    let totp_secret = enable_totp(&app, &carla).await;
    let mut records = Vec::new();
    for (token, index) in [(&alice, 0), (&alice, 1), (&alice, 2), (&bob, 3), (&bob, 4)] {
        let raw = format!("{{\"resourceType\":\"Observation\",\"id\":\"obs-{index}\"}}");
        let created = app.create_record(token, "LAB_RESULT", &raw).await;
        records.push((
            token.clone(),
            created["id"].as_str().unwrap().to_owned(),
            raw,
        ));
    }
    let before = sealed_rows(&app);
    assert_eq!(
        before.len(),
        9,
        "five records, three custodial keys, one TOTP secret"
    );
    assert!(before.iter().all(|row| row.key_id == "test-mk"));

    let (base, running) = start_with(&app, new_keyring()).await.unwrap();
    let server = running.server.handle();
    let serving = tokio::spawn(running.serve());
    let pool = app::pool(&app.settings).unwrap();

    // An interrupted run: it stops after three data keys.
    let (progress_text, mut progress) = captured();
    let options = RotateOptions {
        batch_size: 2,
        max_keys: Some(3),
    };
    let first = rotation::rotate(&pool, Arc::new(new_keyring()), options, &mut progress)
        .await
        .unwrap();
    assert_eq!(
        first.summary(),
        "keys rotate: re-wrapped 3 data keys under master key mk2 (medical_records 3, \
         user_keys 0, totp_credentials 0); 6 data keys are still wrapped under other master \
         keys; run it again to continue"
    );
    assert_eq!(
        String::from_utf8(progress_text.lock().unwrap().clone()).unwrap(),
        "keys rotate: 2/3 data keys (60%)\nkeys rotate: 3/3 data keys (100%)\n"
    );
    let middle = sealed_rows(&app);
    assert_eq!(middle.iter().filter(|row| row.key_id == "mk2").count(), 3);

    // Mid-rotation, the server with both keys reads every record, and a new
    // record is sealed under the new key.
    for (token, id, raw) in &records {
        let (status, body) = read_raw(&app, &base, token, id).await;
        assert_eq!(status, StatusCode::OK, "record {id}");
        assert_eq!(body["raw_data"].as_str().unwrap(), raw);
    }
    let late = app
        .client
        .post(format!("{base}/medical-records"))
        .bearer_auth(&bob)
        .json(&json!({"record_type": "LAB_RESULT", "raw_data": "{\"late\":true}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::CREATED);
    let late: Value = late.json().await.unwrap();
    records.push((
        bob.clone(),
        late["id"].as_str().unwrap().to_owned(),
        "{\"late\":true}".into(),
    ));

    let refused = rotation::retire(&pool, &KeyId::new("mk2"), "test-mk")
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "master key test-mk still wraps 6 data keys (medical_records 2, user_keys 3, \
         totp_credentials 1); run `meditrustal keys rotate` with another current master key \
         first"
    );

    // The next run continues where the first stopped.
    let (_, mut progress) = captured();
    let options = RotateOptions {
        batch_size: 2,
        max_keys: None,
    };
    let second = rotation::rotate(&pool, Arc::new(new_keyring()), options, &mut progress)
        .await
        .unwrap();
    assert_eq!(
        second.summary(),
        "keys rotate: re-wrapped 6 data keys under master key mk2 (medical_records 2, \
         user_keys 3, totp_credentials 1); no data key is wrapped under another master key"
    );

    let after = sealed_rows(&app);
    let after_old: Vec<&SealedRow> = after
        .iter()
        .filter(|row| before.iter().any(|old| old.id == row.id))
        .collect();
    assert_eq!(after_old.len(), before.len());
    for (old, new) in before.iter().zip(after_old) {
        assert_eq!(new.id, old.id);
        assert_eq!(new.key_id, "mk2", "row {}", old.id);
        assert_eq!(new.nonce, old.nonce, "row {}", old.id);
        assert_eq!(new.ciphertext, old.ciphertext, "row {}", old.id);
        assert_ne!(new.wrapped_key, old.wrapped_key, "row {}", old.id);
    }

    rotation::retire(&pool, &KeyId::new("mk2"), "test-mk")
        .await
        .unwrap();
    server.stop(true).await;
    serving.await.unwrap().unwrap();

    // With the old key gone from the configuration, every record still
    // reads back byte for byte.
    let only_new = MasterKeyring::new(MasterKey::new(KeyId::new("mk2"), [8; 32]), []);
    let (base, running) = start_with(&app, only_new).await.unwrap();
    let server = running.server.handle();
    let serving = tokio::spawn(running.serve());
    for (token, id, raw) in &records {
        let (status, body) = read_raw(&app, &base, token, id).await;
        assert_eq!(status, StatusCode::OK, "record {id}");
        assert_eq!(body["raw_data"].as_str().unwrap(), raw);
        let verified: Value = app
            .client
            .get(format!("{base}/medical-records/{id}/verify"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(verified["checks"][0]["name"], "ciphertext");
        assert_eq!(verified["checks"][0]["status"], "passed", "record {id}");
    }
    // The re-wrapped TOTP secret still checks codes.
    let challenge: Value = app
        .client
        .post(format!("{base}/auth/login/json"))
        .json(&json!({"username_or_email": "carla", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mfa_login = app
        .client
        .post(format!("{base}/auth/login/mfa"))
        .json(&json!({"mfa_token": challenge["mfa_token"],
                      "code": totp_code(&totp_secret, current_step() + 1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(mfa_login.status(), StatusCode::OK);
    server.stop(true).await;
    serving.await.unwrap().unwrap();

    // The retired key can no longer be the current one.
    let old = MasterKeyring::new(MasterKey::new(KeyId::new("test-mk"), [7; 32]), []);
    let error = start_with(&app, old).await.err().unwrap();
    assert_eq!(
        format!("{error:#}"),
        "refusing to start: master key test-mk is retired; configure the key that replaced \
         it as crypto.master_key_id and crypto.master_key"
    );
    pool.close();
}

#[tokio::test]
async fn rotation_names_unconfigured_old_key() {
    let app = TestApp::spawn().await.unwrap();
    app.patient("carol").await;
    let pool = app::pool(&app.settings).unwrap();
    let without_old = MasterKeyring::new(MasterKey::new(KeyId::new("mk2"), [8; 32]), []);
    let (_, mut progress) = captured();
    let options = RotateOptions {
        batch_size: 10,
        max_keys: None,
    };

    let error = rotation::rotate(&pool, Arc::new(without_old), options, &mut progress)
        .await
        .unwrap_err();

    assert_eq!(
        error.to_string(),
        "1 data keys in user_keys are wrapped under master key test-mk, which is not \
         configured; add it to MEDITRUSTAL__CRYPTO__PREVIOUS_MASTER_KEYS as \
         test-mk:<64 hex digits>"
    );
    assert!(sealed_rows(&app).iter().all(|row| row.key_id == "test-mk"));
    pool.close();
}

#[tokio::test]
async fn retire_rejects_current_and_unknown_keys() {
    let app = TestApp::spawn().await.unwrap();
    let pool = app::pool(&app.settings).unwrap();

    let current = rotation::retire(&pool, &KeyId::new("test-mk"), "test-mk")
        .await
        .unwrap_err();
    let unknown = rotation::retire(&pool, &KeyId::new("test-mk"), "mk9")
        .await
        .unwrap_err();

    assert_eq!(
        current.to_string(),
        "master key test-mk is the current key (crypto.master_key_id); make another key \
         current and run `meditrustal keys rotate` first"
    );
    assert_eq!(
        unknown.to_string(),
        "master key mk9 is not recorded in this database; check the key id"
    );
    pool.close();
}
