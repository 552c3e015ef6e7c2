//! Composition root: builds the adapters from settings, hands them to the
//! domain services as ports, and starts the HTTP server and outbox worker.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use meditrustal_adapter_ethers::{
    check_deployment, DeploymentManifest, Eip712ConsentSigner, EthersConfig, EthersLedger,
    RandomAccountGenerator,
};
use meditrustal_adapter_paseto::{
    BcryptHasher, PasetoTokens, SigningKey, SigningSeed, TokenConfig, TokenKeyId, VerifyingKey,
};
use meditrustal_adapter_postgres::{
    PgAuditStore, PgBatchStore, PgConsentStore, PgLoginThrottle, PgMailOutbox, PgMfaStore,
    PgOneTimeTokenStore, PgOutboxStore, PgRecordStore, PgSessionStore, PgUserAdminStore,
    PgUserStore, Pool, PoolConfig,
};
use meditrustal_audit::AuditService;
use meditrustal_crypto::KeyProvider;
use meditrustal_http_api::{
    AppState, ComponentHealth, HttpMetrics, HttpSettings, Metrics, ReadinessProbe,
};
use meditrustal_identity::{
    AdminService, IdentityService, SecurityPolicy, SecurityPorts, ThrottlePolicy,
};
use meditrustal_ledger::{
    AnchorMode, BackoffPolicy, BatchAnchorer, BatchPolicy, BatchRound, Ledger, OutboxProcessor,
};
use meditrustal_records::{ConsentService, JobSignal, RecordService};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{AuthSettings, Settings};
use crate::keys::Keys;
use crate::metrics::{ChainErrorCounts, ObservedLedger, ServiceMetrics};

/// A started service: the HTTP server, the outbox worker and the audit
/// anchoring task.
pub struct Running {
    /// The address the server listens on.
    pub address: SocketAddr,
    /// The address of the metrics listener, when `server.metrics_bind`
    /// is set.
    pub metrics_address: Option<SocketAddr>,
    /// The HTTP server; await it to serve until it stops.
    pub server: actix_web::dev::Server,
    metrics_server: Option<actix_web::dev::Server>,
    worker: JoinHandle<()>,
    anchoring: JoinHandle<()>,
    /// The batcher, in batch mode.
    batcher: Option<JoinHandle<()>>,
    stop_worker: watch::Sender<bool>,
    shutdown_timeout: Duration,
}

impl Running {
    /// Serves until the server stops (SIGINT or SIGTERM, or a handle's
    /// stop), then stops the outbox worker after its current round and the
    /// audit anchoring task. The worker gets `server.shutdown_timeout_secs`
    /// to finish its round; a job still claimed after that keeps its lease,
    /// and the next worker takes it over when the lease ends.
    pub async fn serve(self) -> anyhow::Result<()> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await;
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            if let Err(error) = task.await {
                tracing::error!(%error, "metrics server ended abnormally");
            }
        }
        tracing::info!("HTTP server stopped; stopping outbox worker");
        self.stop_worker.send_replace(true);
        let mut worker = self.worker;
        match tokio::time::timeout(self.shutdown_timeout, &mut worker).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "outbox worker ended abnormally"),
            Err(_) => {
                worker.abort();
                tracing::warn!(
                    timeout_secs = self.shutdown_timeout.as_secs(),
                    "outbox worker did not finish its round in time; its claimed jobs are \
                     retried when their leases end"
                );
            }
        }
        if let Err(error) = self.anchoring.await {
            tracing::error!(%error, "audit anchoring task ended abnormally");
        }
        if let Some(batcher) = self.batcher {
            if let Err(error) = batcher.await {
                tracing::error!(%error, "record batcher ended abnormally");
            }
        }
        served.context("HTTP server failed")
    }
}

/// Builds the chain adapter configuration from settings.
pub fn ethers_config(settings: &Settings, keys: &Keys) -> EthersConfig {
    ethers_config_with_key(settings, keys.registrar_key.clone())
}

/// Builds the chain adapter configuration from settings, signing with
/// `registrar_key`.
pub fn ethers_config_with_key(settings: &Settings, registrar_key: SecretString) -> EthersConfig {
    let mut config = EthersConfig::new(settings.chain.rpc_url.clone(), registrar_key);
    config.poll_interval = Duration::from_millis(settings.chain.poll_interval_ms);
    config.rpc_timeout = Duration::from_millis(settings.chain.rpc_timeout_ms);
    config.receipt_timeout = Duration::from_millis(settings.chain.receipt_timeout_ms);
    config
}

/// Builds the database pool from settings.
pub fn pool(settings: &Settings) -> anyhow::Result<Pool> {
    let mut config = PoolConfig::new(settings.database.url.clone());
    config.max_size = settings.database.max_connections;
    config.wait_timeout = Duration::from_millis(settings.database.acquire_timeout_ms);
    config.create_timeout = Duration::from_secs(settings.database.connect_timeout_secs);
    Pool::new(&config).context("invalid database settings")
}

/// Loads the deployment manifest and checks it against the chain. The
/// server refuses to start on a mismatch rather than anchor into nothing.
pub async fn checked_manifest(
    settings: &Settings,
    chain: &EthersConfig,
) -> anyhow::Result<DeploymentManifest> {
    let path = settings.manifest_path();
    let manifest = DeploymentManifest::load(&path).with_context(|| {
        format!(
            "cannot read the deployment manifest {}; run `meditrustal deploy-contracts` first",
            path.display()
        )
    })?;
    check_deployment(chain, &manifest)
        .await
        .with_context(|| format!("the contracts in {} do not match the chain", path.display()))?;
    Ok(manifest)
}

/// Wires every adapter and service and starts the server and worker.
pub async fn start(settings: &Settings, keys: Keys) -> anyhow::Result<Running> {
    let chain_config = ethers_config(settings, &keys);
    let manifest = checked_manifest(settings, &chain_config).await?;
    let ledger: Arc<EthersLedger> =
        Arc::new(EthersLedger::connect(&chain_config, manifest).context("invalid chain settings")?);
    let pool = pool(settings)?;
    check_master_keys(&pool, &keys.master).await?;

    let chain_errors = Arc::new(ChainErrorCounts::default());
    let observed_ledger = Arc::new(ObservedLedger::new(ledger.clone(), chain_errors.clone()));
    let signal = Arc::new(WorkerSignal::default());
    let keyring = Arc::new(keys.master);
    let identity =
        identity_service(settings, &keys.signing_key, pool.clone(), keyring.clone()).await?;
    let record_store = Arc::new(PgRecordStore::new(pool.clone()));
    let consent_store = Arc::new(PgConsentStore::new(pool.clone()));
    let records = RecordService::new(
        record_store.clone(),
        consent_store.clone(),
        observed_ledger.clone(),
        keyring.clone(),
        signal.clone(),
    );
    let consents = ConsentService::new(
        consent_store,
        record_store,
        keyring,
        Arc::new(Eip712ConsentSigner::for_manifest(ledger.manifest())),
        signal.clone(),
        break_glass_duration(settings)?,
    );
    let admin = AdminService::new(
        Arc::new(PgUserAdminStore::new(pool.clone())),
        Arc::new(PgSessionStore::new(pool.clone())),
    );
    let readiness = Arc::new(Readiness {
        pool: pool.clone(),
        ledger: ledger.clone(),
    });
    let audit_store = PgAuditStore::new(pool.clone());
    warn_if_audit_is_writable(&audit_store).await;
    let audit = Arc::new(AuditService::new(Arc::new(audit_store)));

    let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                settings.server.host, settings.server.port
            )
        })?;
    let address = listener.local_addr()?;
    let metrics_listener = settings
        .server
        .metrics_bind
        .as_deref()
        .map(|bind| {
            TcpListener::bind(bind)
                .with_context(|| format!("cannot listen on server.metrics_bind {bind}"))
        })
        .transpose()?;
    let metrics_address = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    let metrics = Metrics {
        http: HttpMetrics::default(),
        source: Arc::new(ServiceMetrics {
            pool: pool.clone(),
            chain_errors,
        }),
    };
    let state = AppState {
        identity: Arc::new(identity),
        records: Arc::new(records),
        consents: Arc::new(consents),
        admin: Arc::new(admin),
        audit: audit.clone(),
        readiness,
        metrics: metrics.clone(),
    };
    let shutdown_timeout = Duration::from_secs(settings.server.shutdown_timeout_secs);
    let http = HttpSettings {
        max_body_bytes: settings.server.max_body_bytes,
        cors_allowed_origins: settings.server.cors_allowed_origins.clone(),
        workers: settings.server.workers,
        trusted_proxies: settings.server.trusted_proxy_networks()?,
        body_timeout: Duration::from_millis(settings.server.body_timeout_ms),
        metrics_on_api: metrics_listener.is_none(),
        shutdown_timeout,
    };
    let server = meditrustal_http_api::server(listener, state, http)?;
    let metrics_server = metrics_listener
        .map(|listener| meditrustal_http_api::metrics_server(listener, metrics))
        .transpose()?;

    let mode = settings.anchoring.mode;
    let outbox = match mode {
        AnchorMode::Batch => PgOutboxStore::for_batch_mode(pool.clone()),
        AnchorMode::PerRecord => PgOutboxStore::new(pool.clone()),
    };
    let processor =
        OutboxProcessor::new(Arc::new(outbox), observed_ledger, backoff_policy(settings));
    let (stop_worker, stopped) = watch::channel(false);
    let idle = Duration::from_millis(settings.anchoring.poll_interval_ms);
    let anchor_interval = Duration::from_millis(settings.audit.anchor_interval_ms.max(1));
    let anchoring = tokio::spawn(run_audit_anchoring(
        audit,
        signal.clone(),
        anchor_interval,
        stopped.clone(),
    ));
    let batcher = (mode == AnchorMode::Batch).then(|| {
        let anchorer =
            BatchAnchorer::new(Arc::new(PgBatchStore::new(pool)), batch_policy(settings));
        tokio::spawn(run_batcher(anchorer, signal.clone(), idle, stopped.clone()))
    });
    let worker = tokio::spawn(run_worker(processor, signal, idle, stopped));

    tracing::info!(%address, ?metrics_address, anchoring.mode = mode.as_str(), "MediTrustAl listening");
    Ok(Running {
        address,
        metrics_address,
        server,
        metrics_server,
        worker,
        anchoring,
        batcher,
        stop_worker,
        shutdown_timeout,
    })
}

/// Checks every configured master key against the check values recorded
/// in the database: the current one must match and not be retired, and
/// each previous one must match.
pub async fn check_master_keys(
    pool: &Pool,
    keyring: &meditrustal_crypto::MasterKeyring,
) -> anyhow::Result<()> {
    let current = keyring.current();
    meditrustal_adapter_postgres::check_master_key(pool, current)
        .await
        .context("refusing to start")?;
    for key in keyring.keys().filter(|key| key.id() != current.id()) {
        meditrustal_adapter_postgres::check_previous_master_key(pool, key)
            .await
            .context("refusing to start")?;
    }
    Ok(())
}

fn break_glass_duration(settings: &Settings) -> anyhow::Result<chrono::TimeDelta> {
    let seconds = settings.consent.break_glass_secs;
    i64::try_from(seconds)
        .ok()
        .filter(|seconds| *seconds > 0)
        .and_then(chrono::TimeDelta::try_seconds)
        .with_context(|| {
            format!("invalid consent.break_glass_secs {seconds}: use a positive number of seconds")
        })
}

/// Builds the identity service with its PostgreSQL, bcrypt, PASETO and key
/// adapters.
pub async fn identity_service(
    settings: &Settings,
    signing_key: &secrecy::SecretString,
    pool: Pool,
    keyring: Arc<meditrustal_crypto::MasterKeyring>,
) -> anyhow::Result<IdentityService> {
    let kid =
        TokenKeyId::parse(&settings.auth.signing_key_id).context("invalid auth.signing_key_id")?;
    let seed = SigningSeed::from_hex(signing_key.expose_secret())
        .context("invalid MEDITRUSTAL__AUTH__SIGNING_KEY")?;
    let tokens = PasetoTokens::new(
        SigningKey::from_seed(kid, &seed)?,
        previous_public_keys(&settings.auth)?,
        TokenConfig {
            audience: settings.auth.audience.clone(),
            lifetime_secs: settings.auth.token_lifetime_secs,
        },
    )
    .context("invalid token settings")?;
    let hasher = BcryptHasher::new(
        settings.auth.bcrypt_cost,
        settings.auth.max_concurrent_hashes,
    )
    .context("invalid auth.bcrypt_cost")?;

    // NOTE: the development notifier stores reset tokens in clear text in
    // `mail_outbox`; production needs an SMTP adapter behind `Notifier`.
    let security = SecurityPorts {
        sessions: Arc::new(PgSessionStore::new(pool.clone())),
        throttle: Arc::new(PgLoginThrottle::new(pool.clone())),
        one_time_tokens: Arc::new(PgOneTimeTokenStore::new(pool.clone())),
        mfa: Arc::new(PgMfaStore::new(pool.clone())),
        notifier: Arc::new(PgMailOutbox::new(pool.clone())),
    };

    IdentityService::new(
        Arc::new(PgUserStore::new(pool)),
        Arc::new(hasher),
        Arc::new(tokens),
        Arc::new(RandomAccountGenerator),
        keyring,
        security,
        security_policy(&settings.auth)?,
    )
    .await
    .context("cannot start the identity service")
}

/// Parses `auth.previous_public_keys`, each entry `kid:<64 hex digits>`.
pub fn previous_public_keys(auth: &AuthSettings) -> anyhow::Result<Vec<VerifyingKey>> {
    auth.previous_public_keys
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let context = || {
                format!(
                    "invalid auth.previous_public_keys entry {index}: expected kid:<64 hex digits>"
                )
            };
            let (kid, hex) = entry.trim().split_once(':').with_context(context)?;
            let kid = TokenKeyId::parse(kid).with_context(context)?;
            VerifyingKey::from_hex(kid, hex).with_context(context)
        })
        .collect()
}

/// Builds the session, reset, MFA and throttling policy from
/// `auth.*` settings, rejecting zero lifetimes and limits.
pub fn security_policy(auth: &AuthSettings) -> anyhow::Result<SecurityPolicy> {
    let seconds = |name: &str, value: u64| -> anyhow::Result<chrono::TimeDelta> {
        if value == 0 || value > 10 * 365 * 86_400 {
            anyhow::bail!("invalid auth.{name} {value}: use 1 to 315360000 seconds");
        }
        chrono::TimeDelta::try_seconds(i64::try_from(value)?)
            .with_context(|| format!("invalid auth.{name} {value}"))
    };
    let throttle = &auth.throttle;
    if throttle.account_max_failures == 0 || throttle.ip_max_failures == 0 {
        anyhow::bail!(
            "invalid auth.throttle: account_max_failures and ip_max_failures must be at least 1"
        );
    }
    if throttle.base_lockout_secs > throttle.max_lockout_secs {
        anyhow::bail!(
            "invalid auth.throttle: base_lockout_secs {} exceeds max_lockout_secs {}",
            throttle.base_lockout_secs,
            throttle.max_lockout_secs
        );
    }

    Ok(SecurityPolicy {
        refresh_token_lifetime: seconds(
            "refresh_token_lifetime_secs",
            auth.refresh_token_lifetime_secs,
        )?,
        password_reset_lifetime: seconds(
            "password_reset_lifetime_secs",
            auth.password_reset_lifetime_secs,
        )?,
        mfa_challenge_lifetime: seconds(
            "mfa_challenge_lifetime_secs",
            auth.mfa_challenge_lifetime_secs,
        )?,
        mfa_max_attempts: SecurityPolicy::default().mfa_max_attempts,
        throttle: ThrottlePolicy {
            account_max_failures: throttle.account_max_failures,
            ip_max_failures: throttle.ip_max_failures,
            forget_after: seconds("throttle.forget_after_secs", throttle.forget_after_secs)?,
            base_lockout: seconds("throttle.base_lockout_secs", throttle.base_lockout_secs)?,
            max_lockout: seconds("throttle.max_lockout_secs", throttle.max_lockout_secs)?,
        },
    })
}

/// Returns the current token public key as `kid:<64 hex digits>`, the
/// form `auth.previous_public_keys` takes after a rotation.
pub fn token_public_key(settings: &Settings, keys: &Keys) -> anyhow::Result<String> {
    let kid =
        TokenKeyId::parse(&settings.auth.signing_key_id).context("invalid auth.signing_key_id")?;
    let seed = SigningSeed::from_hex(keys.signing_key.expose_secret())
        .context("invalid MEDITRUSTAL__AUTH__SIGNING_KEY")?;
    let public = SigningKey::from_seed(kid, &seed)?.verifying_key();
    Ok(format!("{}:{}", public.kid(), public.to_hex()))
}

fn backoff_policy(settings: &Settings) -> BackoffPolicy {
    let anchoring = &settings.anchoring;
    BackoffPolicy {
        initial: Duration::from_millis(anchoring.initial_backoff_ms),
        max: Duration::from_millis(anchoring.max_backoff_ms),
        check_interval: Duration::from_millis(anchoring.check_interval_ms),
        lease: Duration::from_secs(anchoring.lease_secs),
        batch_size: anchoring.batch_size,
    }
}

fn batch_policy(settings: &Settings) -> BatchPolicy {
    let anchoring = &settings.anchoring;
    BatchPolicy {
        max_records: anchoring.batch_max_records.max(1),
        max_wait: Duration::from_millis(anchoring.batch_max_wait_ms),
        lease: Duration::from_secs(anchoring.lease_secs),
    }
}

/// Wakes the outbox worker and the batcher when a request commits a job.
#[derive(Default)]
struct WorkerSignal {
    outbox: Notify,
    batcher: Notify,
}

impl JobSignal for WorkerSignal {
    fn job_enqueued(&self) {
        self.outbox.notify_one();
        self.batcher.notify_one();
    }
}

/// Forms record batches until the stop signal: when `max_records` records
/// wait or the oldest has waited `max_wait`, then wakes the outbox worker
/// to send the batch.
async fn run_batcher(
    anchorer: BatchAnchorer,
    signal: Arc<WorkerSignal>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!("record batcher started");
    loop {
        let pause = match anchorer.run_once(chrono::Utc::now()).await {
            Ok(BatchRound::Formed { .. }) => {
                signal.outbox.notify_one();
                Duration::ZERO
            }
            Ok(BatchRound::Waiting { due_at }) => (due_at - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(idle),
            Ok(BatchRound::Idle) => idle,
            Err(error) => {
                tracing::warn!(%error, "record batch not formed; retrying");
                idle
            }
        };
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = signal.batcher.notified() => {}
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
    }
    tracing::info!("record batcher stopped");
}

/// Runs outbox rounds until the stop signal: at once while jobs keep coming,
/// otherwise after a signal or the idle interval.
async fn run_worker(
    processor: OutboxProcessor,
    signal: Arc<WorkerSignal>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(idle_ms = idle.as_millis() as u64, "outbox worker started");
    loop {
        match processor.run_once(chrono::Utc::now()).await {
            Ok(report) if report.claimed > 0 => {
                tracing::debug!(?report, "outbox round");
                if *stop.borrow() {
                    break;
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "outbox round failed; retrying"),
        }
        tokio::select! {
            () = signal.outbox.notified() => {}
            () = tokio::time::sleep(idle) => {}
            _ = stop.changed() => break,
        }
    }
    tracing::info!("outbox worker stopped");
}

/// Queues the audit chain head for anchoring every `interval` while it
/// moves, and wakes the outbox worker to send it, until the stop signal.
async fn run_audit_anchoring(
    audit: Arc<AuditService>,
    signal: Arc<WorkerSignal>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "audit anchoring started"
    );
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => break,
        }
        match audit.request_head_anchor().await {
            Ok(Some(head)) => {
                tracing::info!(
                    audit.seq = head.seq,
                    "audit chain head queued for anchoring"
                );
                signal.job_enqueued();
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "audit chain head could not be queued; retrying next interval")
            }
        }
    }
    tracing::info!("audit anchoring stopped");
}

/// Logs a warning when the database role could change or delete audit
/// events, because then only the hash chain, not the database, protects
/// them.
async fn warn_if_audit_is_writable(store: &PgAuditStore) {
    match store.append_only_gaps().await {
        Ok(found) if found.gaps.is_empty() => {}
        Ok(found) => tracing::warn!(
            db.role = %found.role,
            gaps = ?found.gaps,
            "the database role can change or delete audit events; serve as a role with only \
             SELECT and INSERT on audit_events (docs/audit.md)"
        ),
        Err(error) => {
            tracing::warn!(%error, "could not check the database role's audit privileges")
        }
    }
}

struct Readiness {
    pool: Pool,
    ledger: Arc<EthersLedger>,
}

const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

#[async_trait]
impl ReadinessProbe for Readiness {
    async fn check(&self) -> Vec<ComponentHealth> {
        let database = tokio::time::timeout(
            READINESS_TIMEOUT,
            meditrustal_adapter_postgres::ping(&self.pool),
        )
        .await;
        let chain = tokio::time::timeout(READINESS_TIMEOUT, self.ledger.status()).await;
        vec![
            component(
                "database",
                database
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|result| result.map_err(|error| error.to_string())),
            ),
            component(
                "chain",
                chain
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|result| result.map(|_| ()).map_err(|error| error.to_string())),
            ),
        ]
    }
}

fn component(name: &'static str, result: Result<(), String>) -> ComponentHealth {
    match result {
        Ok(()) => ComponentHealth {
            name,
            ready: true,
            detail: None,
        },
        Err(detail) => ComponentHealth {
            name,
            ready: false,
            detail: Some(detail),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ThrottleSettings;

    /// RFC 8032 test 1 public key.
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn auth(previous: &[&str]) -> AuthSettings {
        AuthSettings {
            token_lifetime_secs: 900,
            audience: "meditrustal-api".into(),
            bcrypt_cost: 4,
            max_concurrent_hashes: 1,
            signing_key_id: "k2".into(),
            signing_key: None,
            previous_public_keys: previous.iter().map(|entry| (*entry).to_owned()).collect(),
            refresh_token_lifetime_secs: 3600,
            password_reset_lifetime_secs: 900,
            mfa_challenge_lifetime_secs: 300,
            throttle: ThrottleSettings {
                account_max_failures: 5,
                ip_max_failures: 50,
                forget_after_secs: 900,
                base_lockout_secs: 30,
                max_lockout_secs: 900,
            },
        }
    }

    #[test]
    fn previous_public_keys_parse_kid_and_hex() {
        let entry = format!("k1:{PUBLIC}");
        let keys = previous_public_keys(&auth(&[&entry])).unwrap();

        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid().as_str(), "k1");
        assert_eq!(keys[0].to_hex(), PUBLIC);
    }

    #[test]
    fn previous_public_keys_reject_malformed_entries() {
        let cases = [
            ("no kid", PUBLIC.to_owned()),
            ("bad kid", format!("k 1:{PUBLIC}")),
            ("short key", "k1:abcd".to_owned()),
        ];
        for (case, entry) in cases {
            let error = previous_public_keys(&auth(&[&entry])).unwrap_err();
            assert_eq!(
                error.to_string(),
                "invalid auth.previous_public_keys entry 0: expected kid:<64 hex digits>",
                "{case}"
            );
        }
    }

    #[test]
    fn security_policy_rejects_zero_and_inverted_limits() {
        let mut zero_lifetime = auth(&[]);
        zero_lifetime.refresh_token_lifetime_secs = 0;
        let mut zero_failures = auth(&[]);
        zero_failures.throttle.ip_max_failures = 0;
        let mut inverted = auth(&[]);
        inverted.throttle.base_lockout_secs = 901;

        assert_eq!(
            security_policy(&zero_lifetime).unwrap_err().to_string(),
            "invalid auth.refresh_token_lifetime_secs 0: use 1 to 315360000 seconds"
        );
        assert_eq!(
            security_policy(&zero_failures).unwrap_err().to_string(),
            "invalid auth.throttle: account_max_failures and ip_max_failures must be at least 1"
        );
        assert_eq!(
            security_policy(&inverted).unwrap_err().to_string(),
            "invalid auth.throttle: base_lockout_secs 901 exceeds max_lockout_secs 900"
        );
        let policy = security_policy(&auth(&[])).unwrap();
        assert_eq!(policy.refresh_token_lifetime, chrono::TimeDelta::hours(1));
        assert_eq!(policy.throttle.base_lockout, chrono::TimeDelta::seconds(30));
    }
}
