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
    BcryptHasher, PasetoTokens, SigningKey, SigningSeed, TokenConfig, TokenKeyId,
};
use meditrustal_adapter_postgres::{
    PgConsentStore, PgOutboxStore, PgRecordStore, PgUserAdminStore, PgUserStore, Pool, PoolConfig,
};
use meditrustal_http_api::{AppState, ComponentHealth, HttpSettings, ReadinessProbe};
use meditrustal_identity::{AdminService, IdentityService};
use meditrustal_ledger::{BackoffPolicy, Ledger, OutboxProcessor};
use meditrustal_records::{ConsentService, JobSignal, RecordService};
use secrecy::ExposeSecret;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::keys::Keys;

/// A started service: the HTTP server and the outbox worker.
pub struct Running {
    /// The address the server listens on.
    pub address: SocketAddr,
    /// The HTTP server; await it to serve until it stops.
    pub server: actix_web::dev::Server,
    worker: JoinHandle<()>,
    stop_worker: watch::Sender<bool>,
}

impl Running {
    /// Serves until the server stops (SIGINT or SIGTERM, or a handle's
    /// stop), then stops the worker after its current round.
    pub async fn serve(self) -> anyhow::Result<()> {
        let served = self.server.await;
        tracing::info!("HTTP server stopped; stopping outbox worker");
        self.stop_worker.send_replace(true);
        if let Err(error) = self.worker.await {
            tracing::error!(%error, "outbox worker ended abnormally");
        }
        served.context("HTTP server failed")
    }
}

/// Builds the chain adapter configuration from settings.
pub fn ethers_config(settings: &Settings, keys: &Keys) -> EthersConfig {
    let mut config = EthersConfig::new(settings.chain.rpc_url.clone(), keys.registrar_key.clone());
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

    let signal = Arc::new(WorkerSignal(Notify::new()));
    let keyring = Arc::new(keys.master);
    let identity =
        identity_service(settings, &keys.signing_key, pool.clone(), keyring.clone()).await?;
    let record_store = Arc::new(PgRecordStore::new(pool.clone()));
    let consent_store = Arc::new(PgConsentStore::new(pool.clone()));
    let records = RecordService::new(
        record_store.clone(),
        consent_store.clone(),
        ledger.clone(),
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
    let admin = AdminService::new(Arc::new(PgUserAdminStore::new(pool.clone())));
    let readiness = Arc::new(Readiness {
        pool: pool.clone(),
        ledger: ledger.clone(),
    });

    let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))
        .with_context(|| {
            format!(
                "cannot listen on {}:{}",
                settings.server.host, settings.server.port
            )
        })?;
    let address = listener.local_addr()?;
    let state = AppState {
        identity: Arc::new(identity),
        records: Arc::new(records),
        consents: Arc::new(consents),
        admin: Arc::new(admin),
        readiness,
    };
    let http = HttpSettings {
        max_body_bytes: settings.server.max_body_bytes,
        cors_allowed_origins: settings.server.cors_allowed_origins.clone(),
        workers: settings.server.workers,
    };
    let server = meditrustal_http_api::server(listener, state, http)?;

    let processor = OutboxProcessor::new(
        Arc::new(PgOutboxStore::new(pool)),
        ledger,
        backoff_policy(settings),
    );
    let (stop_worker, stopped) = watch::channel(false);
    let idle = Duration::from_millis(settings.anchoring.poll_interval_ms);
    let worker = tokio::spawn(run_worker(processor, signal, idle, stopped));

    tracing::info!(%address, "MediTrustAl listening");
    Ok(Running {
        address,
        server,
        worker,
        stop_worker,
    })
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
        [],
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

    IdentityService::new(
        Arc::new(PgUserStore::new(pool)),
        Arc::new(hasher),
        Arc::new(tokens),
        Arc::new(RandomAccountGenerator),
        keyring,
    )
    .await
    .context("cannot start the identity service")
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

/// Wakes the outbox worker when a request commits a job.
struct WorkerSignal(Notify);

impl JobSignal for WorkerSignal {
    fn job_enqueued(&self) {
        self.0.notify_one();
    }
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
            () = signal.0.notified() => {}
            () = tokio::time::sleep(idle) => {}
            _ = stop.changed() => break,
        }
    }
    tracing::info!("outbox worker stopped");
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
