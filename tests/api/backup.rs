//! Backup and restore: a database with records, consents and audit events
//! is backed up, restored into a fresh database, and checked record by
//! record and against the audit chain.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test")]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use meditrustal::audit::verify_chain;
use meditrustal::backup::{self, RestoreOptions, RestoreReport};
use meditrustal::config::Settings;
use meditrustal::progress::Progress;
use meditrustal_adapter_postgres::TestDatabase;
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use meditrustal_tests::reqwest::StatusCode;
use meditrustal_tests::TestApp;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

fn sink_progress() -> Progress {
    let writer: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(std::io::sink()));
    Progress::lines("test", "units", 0, writer)
}

fn temp_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "meditrustal-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

fn test_keyring() -> Arc<MasterKeyring> {
    Arc::new(MasterKeyring::new(
        MasterKey::new(KeyId::new("test-mk"), [7; 32]),
        [],
    ))
}

fn count(db: &TestDatabase, table: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let row: Count = diesel::sql_query(format!("SELECT count(*) AS count FROM {table}"))
        .get_result(&mut db.connect().unwrap())
        .unwrap();
    row.count
}

/// Settings that point at `db` and keep the manifest in a new folder.
fn restored_settings(app: &TestApp, db: &TestDatabase) -> Settings {
    let mut settings = app.settings.clone();
    settings.database.url = SecretString::from(db.url().expose_secret().to_owned());
    settings.data_dir = temp_dir("restored");
    settings
}

/// Waits until no outbox job is pending and an audit head is anchored.
async fn wait_settled(app: &TestApp) {
    for _ in 0..300 {
        if count(app.db(), "outbox_jobs WHERE status <> 'done'") == 0
            && count(app.db(), "audit_anchors WHERE status = 'anchored'") > 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the outbox did not settle within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_fresh_database_verifies_everything() {
    let app = TestApp::spawn_with(|settings| settings.audit.anchor_interval_ms = 100)
        .await
        .unwrap();
    let (_, patient) = app.patient("amara").await;
    let (doctor, _) = app.doctor("drbose").await;
    let mut record_ids = Vec::new();
    for index in 0..3 {
        let raw = format!("{{\"resourceType\":\"Observation\",\"id\":\"obs-{index}\"}}");
        let record = app.create_record(&patient, "LAB_RESULT", &raw).await;
        record_ids.push(record["id"].as_str().unwrap().to_owned());
    }
    let granted = app
        .post_json(
            &format!("/medical-records/{}/grant-access", record_ids[0]),
            &json!({"doctor_address": doctor["blockchain_address"]}),
            Some(&patient),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::OK);
    wait_settled(&app).await;
    let events = count(app.db(), "audit_events");

    let dir = temp_dir("backup");
    let manifest = backup::backup(&app.settings, &dir, &mut sink_progress())
        .await
        .unwrap();
    let names: Vec<&str> = manifest
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    assert_eq!(names, ["database.dump", "deployment.json"]);
    assert_eq!(manifest.master_key_ids, ["test-mk"]);
    let listing = std::fs::read_to_string(dir.join("backup.json")).unwrap();
    assert!(
        !listing.contains(&"07".repeat(32)),
        "no master key in the backup"
    );

    let fresh = TestDatabase::create_empty().await.unwrap();
    let settings = restored_settings(&app, &fresh);
    let options = RestoreOptions {
        replace: false,
        check_chain: true,
    };
    let report = backup::restore(
        &settings,
        test_keyring(),
        &dir,
        options,
        &mut sink_progress(),
    )
    .await
    .unwrap();

    assert_eq!(
        report,
        RestoreReport {
            verified: 3,
            pending: 0,
            failed: Vec::new(),
        }
    );
    assert_eq!(
        report.summary(true),
        "restore: 3 records verified (content and chain), 0 not anchored yet, 0 failed"
    );
    assert_eq!(count(&fresh, "consents"), 1);
    assert_eq!(count(&fresh, "audit_events"), events);
    assert_eq!(
        std::fs::read(settings.manifest_path()).unwrap(),
        std::fs::read(app.data_dir.join("deployment.json")).unwrap()
    );
    let audit = verify_chain(&settings).await.unwrap();
    assert_eq!(audit.first_break, None);
    assert_eq!(audit.events_checked, u64::try_from(events).unwrap());
    assert!(audit.anchors >= 1);

    // The same backup into the database now in use is refused.
    let again = backup::restore(
        &settings,
        test_keyring(),
        &dir,
        options,
        &mut sink_progress(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        again.to_string(),
        "the target database is not empty (18 tables); restore into an empty database, or \
         pass --replace to drop its contents first"
    );

    // With --replace, the restored database is dropped and restored again.
    let replace = RestoreOptions {
        replace: true,
        check_chain: true,
    };
    let replaced = backup::restore(
        &settings,
        test_keyring(),
        &dir,
        replace,
        &mut sink_progress(),
    )
    .await
    .unwrap();
    assert_eq!(replaced, report);
    assert_eq!(count(&fresh, "audit_events"), events);

    let _removed = std::fs::remove_dir_all(&dir);
    let _removed = std::fs::remove_dir_all(&settings.data_dir);
}

#[tokio::test]
async fn restore_rejects_damaged_backup() {
    let app = TestApp::spawn().await.unwrap();
    app.patient("bea").await;
    let dir = temp_dir("damaged");
    let manifest = backup::backup(&app.settings, &dir, &mut sink_progress())
        .await
        .unwrap();
    let dump = manifest
        .files
        .iter()
        .find(|file| file.name == "database.dump")
        .unwrap();
    let mut bytes = std::fs::read(dir.join("database.dump")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(dir.join("database.dump"), &bytes).unwrap();

    let fresh = TestDatabase::create_empty().await.unwrap();
    let settings = restored_settings(&app, &fresh);
    let error = backup::restore(
        &settings,
        test_keyring(),
        &dir,
        RestoreOptions::default(),
        &mut sink_progress(),
    )
    .await
    .unwrap_err();

    let actual = meditrustal_crypto::sha256(&bytes).to_string();
    assert_eq!(
        error.to_string(),
        format!(
            "backup file database.dump does not match backup.json: expected {} bytes with \
             SHA-256 {}, found {} bytes with SHA-256 {}; the backup is damaged",
            dump.bytes,
            dump.sha256,
            bytes.len(),
            actual.trim_start_matches("0x")
        )
    );
    assert_eq!(count(&fresh, "pg_tables WHERE schemaname = 'public'"), 0);

    let refused = backup::backup(&app.settings, &dir, &mut sink_progress())
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        format!(
            "backup folder {} is not empty; choose a new folder",
            dir.display()
        )
    );
    let _removed = std::fs::remove_dir_all(&dir);
}
