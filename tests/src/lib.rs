//! Test harness: a MediTrustAl server started in-process against its own
//! PostgreSQL database and its own anvil node, and an HTTP client for it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test harness: a failed step must fail the test"
)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use meditrustal::app::{self, Running};
use meditrustal::config::{
    AnchoringSettings, AuditSettings, AuthSettings, ChainSettings, ConsentSettings, CryptoSettings,
    DatabaseSettings, LogFormat, LogSettings, ServerSettings, Settings, ThrottleSettings,
};
use meditrustal::keys::Keys;
use meditrustal_adapter_ethers::testing::{deploy_test_ledger, test_config, AnvilNode};
use meditrustal_adapter_postgres::TestDatabase;
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use reqwest::{Response, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

pub use reqwest;
pub use serde_json;

/// Password of every test user unless a test sets another.
pub const PASSWORD: &str = "correct horse battery";

/// A running server with its own database and chain.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// `http://127.0.0.1:<port>/metrics` of the metrics listener, when
    /// `server.metrics_bind` is set.
    pub metrics_url: Option<String>,
    /// Client without redirects or timeouts beyond 30 s.
    pub client: reqwest::Client,
    /// The test's own database, unless the test brought a server.
    db: Option<TestDatabase>,
    /// The chain the server uses.
    pub anvil: AnvilNode,
    /// Directory with the deployment manifest.
    pub data_dir: PathBuf,
    /// The settings the server started with.
    pub settings: Settings,
    /// anvil's state file, removed with the app.
    anvil_state: Option<PathBuf>,
    _server: ServerGuard,
}

/// Stops the in-process server when the test app is dropped.
struct ServerGuard {
    task: tokio::task::JoinHandle<()>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { handle.stop(false).await });
        }
        self.task.abort();
    }
}

impl TestApp {
    /// Starts a server on a free port with a fresh database and chain.
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], letting the test adjust settings first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> anyhow::Result<Self> {
        let anvil = AnvilNode::start().await.context("starting anvil")?;
        Self::spawn_on(anvil, adjust).await
    }

    /// Like [`TestApp::spawn`], with an anvil node that keeps its state in
    /// a file, so that [`AnvilNode::restart`] brings the same chain back.
    pub async fn spawn_with_chain_state() -> anyhow::Result<Self> {
        let state = std::env::temp_dir().join(format!(
            "meditrustal-anvil-{}.json",
            uuid::Uuid::new_v4().simple()
        ));
        let anvil = AnvilNode::start_with_state(&state)
            .await
            .context("starting anvil")?;
        let mut app = Self::spawn_on(anvil, |_| {}).await?;
        app.anvil_state = Some(state);
        Ok(app)
    }

    /// Like [`TestApp::spawn`], on a database the test prepared itself
    /// (already migrated), such as one on a server it stops and starts.
    pub async fn spawn_on_database(
        url: SecretString,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let anvil = AnvilNode::start().await.context("starting anvil")?;
        Self::spawn_with_parts(anvil, None, url, adjust).await
    }

    async fn spawn_on(
        anvil: AnvilNode,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let db = TestDatabase::create()
            .await
            .context("creating the test database")?;
        let url = SecretString::from(db.url().expose_secret().to_owned());
        Self::spawn_with_parts(anvil, Some(db), url, adjust).await
    }

    async fn spawn_with_parts(
        anvil: AnvilNode,
        db: Option<TestDatabase>,
        database_url: SecretString,
        adjust: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let (_ledger, manifest) = deploy_test_ledger(&anvil)
            .await
            .context("deploying contracts")?;

        let data_dir = std::env::temp_dir().join(format!(
            "meditrustal-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&data_dir)?;
        manifest.save(&data_dir.join("deployment.json"))?;

        let mut settings = settings(database_url, &anvil, &data_dir);
        adjust(&mut settings);

        let running: Running = app::start(&settings, test_keys(&anvil)).await?;
        let base_url = format!("http://{}", running.address);
        let metrics_url = running
            .metrics_address
            .map(|address| format!("http://{address}/metrics"));
        let handle = running.server.handle();
        let task = tokio::spawn(async move {
            let _ended = running.serve().await;
        });

        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            base_url,
            metrics_url,
            client,
            db,
            anvil,
            data_dir,
            settings,
            anvil_state: None,
            _server: ServerGuard { task, handle },
        })
    }

    /// Starts a second server with the same settings, as an operator's
    /// restart would; the first keeps running.
    pub async fn restart_server(&self) -> anyhow::Result<Running> {
        self.restart_server_with_master_key([7; 32]).await
    }

    /// Like [`TestApp::restart_server`], with other master key bytes under
    /// the same key id.
    pub async fn restart_server_with_master_key(
        &self,
        master: [u8; 32],
    ) -> anyhow::Result<Running> {
        let mut settings = self.settings.clone();
        settings.server.port = 0;
        let mut keys = test_keys(&self.anvil);
        keys.master = MasterKeyring::new(MasterKey::new(KeyId::new("test-mk"), master), []);
        app::start(&settings, keys).await
    }

    /// The test's own database. Panics for apps started on a database the
    /// test brought.
    pub fn db(&self) -> &TestDatabase {
        self.db
            .as_ref()
            .expect("this test app runs on its own test database")
    }

    /// Full URL of an API path such as `/auth/register`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base_url)
    }

    /// POSTs JSON to an API path.
    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request reaches the test server")
    }

    /// GETs an API path.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request reaches the test server")
    }

    /// DELETEs an API path.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.delete(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request reaches the test server")
    }

    /// The keys the server runs with, for operator commands in tests.
    pub fn keys(&self) -> Keys {
        test_keys(&self.anvil)
    }

    /// Registers a user and returns the 201 body.
    pub async fn register(&self, username: &str, email: &str, role: &str) -> Value {
        let response = self
            .post_json(
                "/auth/register",
                &json!({"username": username, "email": email, "password": PASSWORD, "role": role}),
                None,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registering {username}"
        );
        response.json().await.expect("user JSON")
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username_or_email: &str) -> String {
        let response = self
            .post_json(
                "/auth/login/json",
                &json!({"username_or_email": username_or_email, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "logging in {username_or_email}"
        );
        let body: Value = response.json().await.expect("token JSON");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Logs in with `password` and returns the status and JSON body.
    pub async fn login_with(&self, username_or_email: &str, password: &str) -> (StatusCode, Value) {
        let response = self
            .post_json(
                "/auth/login/json",
                &json!({"username_or_email": username_or_email, "password": password}),
                None,
            )
            .await;
        let status = response.status();
        (status, response.json().await.expect("login JSON"))
    }

    /// POSTs to an API path without a body.
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request reaches the test server")
    }

    /// Registers a patient and returns (user body, token).
    pub async fn patient(&self, name: &str) -> (Value, String) {
        let user = self
            .register(name, &format!("{name}@example.org"), "PATIENT")
            .await;
        let token = self.login(name).await;
        (user, token)
    }

    /// Registers a doctor and returns (user body, token).
    pub async fn doctor(&self, name: &str) -> (Value, String) {
        let user = self
            .register(name, &format!("{name}@example.org"), "DOCTOR")
            .await;
        let token = self.login(name).await;
        (user, token)
    }

    /// Creates a record as `token` and returns the 201 body.
    pub async fn create_record(&self, token: &str, record_type: &str, raw_data: &str) -> Value {
        let response = self
            .post_json(
                "/medical-records",
                &json!({"record_type": record_type, "raw_data": raw_data}),
                Some(token),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("record JSON");
        assert_eq!(status, StatusCode::CREATED, "creating a record: {body}");
        body
    }

    /// Polls a record until its anchor status is `anchored`, up to 30 s.
    pub async fn wait_anchored(&self, token: &str, record_id: &str) -> Value {
        for _ in 0..300 {
            let body: Value = self
                .get(&format!("/medical-records/{record_id}"), Some(token))
                .await
                .json()
                .await
                .expect("record JSON");
            if body["anchor"]["status"] == "anchored" {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("record {record_id} was not anchored within 30 s");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.data_dir);
        if let Some(state) = &self.anvil_state {
            let _removed = std::fs::remove_file(state);
        }
    }
}

/// Keys of the test server: fixed master and signing keys, and anvil's
/// first default account as registrar.
fn test_keys(anvil: &AnvilNode) -> Keys {
    Keys {
        master: MasterKeyring::new(MasterKey::new(KeyId::new("test-mk"), [7; 32]), []),
        signing_key: SecretString::from("11".repeat(32)),
        registrar_key: test_config(anvil).registrar_key,
    }
}

/// Anchoring mode of test servers: `batch` unless
/// `MEDITRUSTAL_TEST_ANCHOR_MODE=per_record`, so the whole suite can run in
/// either mode.
pub fn anchor_mode_from_env() -> meditrustal_ledger::AnchorMode {
    match std::env::var("MEDITRUSTAL_TEST_ANCHOR_MODE").as_deref() {
        Ok("per_record") => meditrustal_ledger::AnchorMode::PerRecord,
        _ => meditrustal_ledger::AnchorMode::Batch,
    }
}

fn settings(database_url: SecretString, anvil: &AnvilNode, data_dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: data_dir.to_path_buf(),
        dev_keys: false,
        server: ServerSettings {
            host: "127.0.0.1".into(),
            port: 0,
            workers: 2,
            max_body_bytes: 1024 * 1024,
            body_timeout_ms: 30_000,
            shutdown_timeout_secs: 5,
            cors_allowed_origins: vec!["http://localhost:5173".into()],
            trusted_proxies: Vec::new(),
            metrics_bind: None,
        },
        database: DatabaseSettings {
            url: database_url,
            max_connections: 8,
            acquire_timeout_ms: 2000,
            connect_timeout_secs: 2,
        },
        chain: ChainSettings {
            rpc_url: anvil.rpc_url(),
            poll_interval_ms: 10,
            rpc_timeout_ms: 2000,
            receipt_timeout_ms: 3000,
            manifest_path: None,
            registrar_key: None,
        },
        anchoring: AnchoringSettings {
            mode: anchor_mode_from_env(),
            batch_max_records: 1024,
            batch_max_wait_ms: 100,
            poll_interval_ms: 50,
            batch_size: 32,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            check_interval_ms: 200,
            lease_secs: 30,
        },
        auth: AuthSettings {
            token_lifetime_secs: 900,
            audience: "meditrustal-api".into(),
            bcrypt_cost: 4,
            max_concurrent_hashes: 0,
            signing_key_id: "test-k1".into(),
            signing_key: None,
            previous_public_keys: Vec::new(),
            refresh_token_lifetime_secs: 86_400,
            password_reset_lifetime_secs: 900,
            mfa_challenge_lifetime_secs: 300,
            throttle: ThrottleSettings {
                account_max_failures: 5,
                ip_max_failures: 50,
                forget_after_secs: 900,
                base_lockout_secs: 30,
                max_lockout_secs: 900,
            },
        },
        crypto: CryptoSettings {
            master_key_id: "test-mk".into(),
            master_key: None,
            previous_master_keys: Vec::new(),
        },
        audit: AuditSettings {
            anchor_interval_ms: 60_000,
        },
        consent: ConsentSettings {
            break_glass_secs: 900,
        },
        log: LogSettings {
            format: LogFormat::Pretty,
            level: "warn".into(),
        },
    }
}
