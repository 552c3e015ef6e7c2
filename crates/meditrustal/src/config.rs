//! Typed configuration, loaded once from `config/default.toml`, an
//! environment file and `MEDITRUSTAL__SECTION__KEY` variables.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

/// All settings of the service.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    /// Directory for local state: development keys, deployment manifest.
    pub data_dir: PathBuf,
    /// Create missing keys in `data_dir` on first start.
    pub dev_keys: bool,
    /// HTTP server.
    pub server: ServerSettings,
    /// PostgreSQL.
    pub database: DatabaseSettings,
    /// Ethereum node and contracts.
    pub chain: ChainSettings,
    /// Outbox worker.
    pub anchoring: AnchoringSettings,
    /// Tokens and passwords.
    pub auth: AuthSettings,
    /// Record encryption.
    pub crypto: CryptoSettings,
    /// Consent and emergency access.
    pub consent: ConsentSettings,
    /// Audit log.
    pub audit: AuditSettings,
    /// Logging.
    pub log: LogSettings,
}

/// HTTP server settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ServerSettings {
    /// Listen address.
    pub host: String,
    /// Listen port; 0 picks a free one.
    pub port: u16,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Maximum time to receive a request body, in milliseconds.
    pub body_timeout_ms: u64,
    /// After SIGTERM, how long requests in flight and the outbox worker's
    /// current round may take, in seconds.
    pub shutdown_timeout_secs: u64,
    /// Browser origins allowed by CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For`
    /// header names the client in audit events.
    pub trusted_proxies: Vec<String>,
    /// Address (`host:port`) of a separate listener that serves only
    /// `/metrics`. When unset, the API listener serves `/metrics`.
    #[serde(default)]
    pub metrics_bind: Option<String>,
}

impl ServerSettings {
    /// Parses `trusted_proxies`; a bare address is a network of one.
    /// Errors: the first entry that is neither an IP address nor a CIDR
    /// network.
    pub fn trusted_proxy_networks(&self) -> anyhow::Result<Vec<IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "invalid server.trusted_proxies entry {text:?}: use an IP address \
                             such as 10.0.0.5 or a network such as 10.0.0.0/8"
                        )
                    })
            })
            .collect()
    }
}

/// PostgreSQL settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct DatabaseSettings {
    /// Connection URL; may hold a password, so it is secret.
    #[serde(serialize_with = "redact")]
    pub url: SecretString,
    /// Pool size.
    pub max_connections: usize,
    /// Wait for a pooled connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// Timeout of opening a connection, in seconds.
    pub connect_timeout_secs: u64,
}

/// Chain settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChainSettings {
    /// JSON-RPC endpoint.
    pub rpc_url: String,
    /// Receipt polling interval, in milliseconds.
    pub poll_interval_ms: u64,
    /// Timeout of one RPC call, in milliseconds.
    pub rpc_timeout_ms: u64,
    /// Wait for a receipt before deferring, in milliseconds.
    pub receipt_timeout_ms: u64,
    /// Deployment manifest path; defaults to `<data_dir>/deployment.json`.
    pub manifest_path: Option<PathBuf>,
    /// Hex secp256k1 key of the registrar account.
    #[serde(serialize_with = "redact_option")]
    pub registrar_key: Option<SecretString>,
    /// Blocks that must follow a block before the chain watcher takes its
    /// events as final.
    pub confirmations: u64,
    /// Interval between chain watcher rounds, in milliseconds.
    pub watch_interval_ms: u64,
    /// Maximum blocks per `eth_getLogs` range of the chain watcher.
    pub watch_page_blocks: u64,
}

/// Outbox worker and record anchoring settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AnchoringSettings {
    /// `batch` (one Merkle root per transaction, the default) or
    /// `per_record` (one `addRecord` transaction per record).
    pub mode: meditrustal_ledger::AnchorMode,
    /// Maximum records in one batch.
    pub batch_max_records: u32,
    /// Maximum wait of a record for its batch to fill, in milliseconds.
    pub batch_max_wait_ms: u64,
    /// Idle poll interval, in milliseconds.
    pub poll_interval_ms: u64,
    /// Jobs claimed per round.
    pub batch_size: u32,
    /// First retry delay, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Maximum retry delay, in milliseconds.
    pub max_backoff_ms: u64,
    /// Receipt check interval, in milliseconds.
    pub check_interval_ms: u64,
    /// Job lease, in seconds.
    pub lease_secs: u64,
    /// Time after which a pending transaction is replaced with a higher
    /// fee, in milliseconds.
    pub replace_after_ms: u64,
    /// Interval at which an instance without the signer lock tries to take
    /// it, in milliseconds.
    pub signer_retry_ms: u64,
}

/// Token and password settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AuthSettings {
    /// Access token lifetime, in seconds.
    pub token_lifetime_secs: u64,
    /// Token audience.
    pub audience: String,
    /// bcrypt cost factor.
    pub bcrypt_cost: u32,
    /// Concurrent password hashes; 0 means one per core.
    pub max_concurrent_hashes: usize,
    /// Key id of the signing key.
    pub signing_key_id: String,
    /// Hex Ed25519 seed of the signing key.
    #[serde(serialize_with = "redact_option")]
    pub signing_key: Option<SecretString>,
    /// Public keys of retired signing keys whose tokens still verify, each
    /// as `kid:<64 hex digits>`.
    pub previous_public_keys: Vec<String>,
    /// Refresh token lifetime, in seconds; each refresh starts it anew.
    pub refresh_token_lifetime_secs: u64,
    /// Password reset token lifetime, in seconds.
    pub password_reset_lifetime_secs: u64,
    /// Time allowed for the second login step, in seconds.
    pub mfa_challenge_lifetime_secs: u64,
    /// Failed-login limits.
    pub throttle: ThrottleSettings,
}

/// Limits on failed logins, second-factor codes and password checks.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ThrottleSettings {
    /// Failures per login name or user before the first lockout.
    pub account_max_failures: u32,
    /// Failures per client IP before the first lockout.
    pub ip_max_failures: u32,
    /// Quiet time after which failures are forgotten, in seconds.
    pub forget_after_secs: u64,
    /// First lockout, in seconds; each further failure doubles it.
    pub base_lockout_secs: u64,
    /// Maximum lockout, in seconds.
    pub max_lockout_secs: u64,
}

/// Record encryption settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CryptoSettings {
    /// Id of the current master key.
    pub master_key_id: String,
    /// Hex 256-bit master key.
    #[serde(serialize_with = "redact_option")]
    pub master_key: Option<SecretString>,
    /// Earlier master keys that still open data during and after a
    /// rotation, each as `id:<64 hex digits>`.
    #[serde(serialize_with = "redact_list")]
    pub previous_master_keys: Vec<SecretString>,
}

/// Audit log settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct AuditSettings {
    /// How often the current audit chain head is queued for anchoring when
    /// it has moved, in milliseconds.
    pub anchor_interval_ms: u64,
}

/// Consent and emergency access settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ConsentSettings {
    /// How long a break-glass access lasts, in seconds.
    pub break_glass_secs: u64,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LogSettings {
    /// Output format.
    pub format: LogFormat,
    /// tracing filter directive.
    pub level: String,
}

/// Settings serialize with every secret replaced by this text, so that the
/// configuration can be printed or compared without revealing a secret.
pub const REDACTED: &str = "<redacted>";

fn redact<S: Serializer>(_secret: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(REDACTED)
}

fn redact_option<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some(REDACTED),
        None => serializer.serialize_none(),
    }
}

fn redact_list<S: Serializer>(secrets: &[SecretString], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(secrets.iter().map(|_| REDACTED))
}

impl Settings {
    /// Loads settings from `config_dir`: `default.toml`, then
    /// `<environment>.toml` if present, then `MEDITRUSTAL__*` variables.
    pub fn load(config_dir: &Path, environment: &str) -> Result<Self, config::ConfigError> {
        Self::files(config_dir, environment)
            .add_source(
                config::Environment::with_prefix("MEDITRUSTAL")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.cors_allowed_origins")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("auth.previous_public_keys")
                    .with_list_parse_key("crypto.previous_master_keys"),
            )
            .build()?
            .try_deserialize()
    }

    /// Loads settings from the files alone, ignoring the environment: the
    /// defaults that the configuration reference documents.
    pub fn load_files(config_dir: &Path, environment: &str) -> Result<Self, config::ConfigError> {
        Self::files(config_dir, environment)
            .build()?
            .try_deserialize()
    }

    fn files(
        config_dir: &Path,
        environment: &str,
    ) -> config::ConfigBuilder<config::builder::DefaultState> {
        config::Config::builder()
            .add_source(config::File::from(config_dir.join("default.toml")))
            .add_source(
                config::File::from(config_dir.join(format!("{environment}.toml"))).required(false),
            )
    }

    /// Path of the deployment manifest.
    pub fn manifest_path(&self) -> PathBuf {
        self.chain
            .manifest_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("deployment.json"))
    }
}
