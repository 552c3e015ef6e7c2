//! Test support, behind the `testing` feature: a local anvil node and a
//! ledger deployed on it.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use meditrustal_adapter_ethers::testing::{deploy_test_ledger, AnvilNode};
//!
//! let node = AnvilNode::start().await?;
//! let (ledger, manifest) = deploy_test_ledger(&node).await?;
//! # Ok(()) }
//! ```
//!
//! Each test should start its own node. The node runs the anvil binary from
//! the `@foundry-rs/anvil-linux-amd64` npm package in
//! `contracts/node_modules`, installed by `npm ci --prefix contracts`.

use std::fmt::Debug;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ethers::providers::{Http, Middleware, Provider};
use ethers::types::TxpoolStatus;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::config::EthersConfig;
use crate::deploy::deploy_contracts;
use crate::ledger::EthersLedger;
use crate::manifest::{DeploymentError, DeploymentManifest};

/// Secret key of anvil's first default account (mnemonic `test test … junk`),
/// which [`deploy_test_ledger`] uses as registrar.
pub const REGISTRAR_KEY: &str =
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Address of [`REGISTRAR_KEY`].
pub const REGISTRAR_ADDRESS: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

/// Secret key of anvil's second default account, a funded account that is
/// not the registrar.
pub const OTHER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// Chain id anvil uses by default.
pub const ANVIL_CHAIN_ID: u64 = 31337;

/// Maximum wait of [`AnvilNode::start`] for an `eth_chainId` response.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Maximum wait of [`AnvilNode::stop`] for anvil to write its state and exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Error from starting or controlling an anvil node.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    /// The npm package with the anvil binary is not installed.
    #[error("anvil binary not found at {}; run `npm ci --prefix contracts`", path.display())]
    BinaryMissing {
        /// Expected path of the binary.
        path: PathBuf,
    },
    /// anvil could not be started, exited early, or did not respond in time.
    #[error("anvil failed to start: {0}")]
    Start(String),
    /// anvil could not be stopped.
    #[error("anvil failed to stop: {0}")]
    Stop(String),
    /// A JSON-RPC request to anvil failed.
    #[error("anvil RPC request failed: {0}")]
    Rpc(String),
}

/// A local anvil process on a free `127.0.0.1` port. Dropping it kills the
/// process.
pub struct AnvilNode {
    process: Option<Child>,
    port: u16,
    state_file: Option<PathBuf>,
    log_file: PathBuf,
}

impl AnvilNode {
    /// Starts anvil with a fresh chain and waits until its RPC responds.
    pub async fn start() -> Result<Self, AnvilError> {
        Self::launch(None).await
    }

    /// Starts anvil with `--state <state_file>`: the chain is loaded from
    /// the file if it exists and written to it when [`AnvilNode::stop`]
    /// ends the process, so a restart keeps the chain.
    pub async fn start_with_state(state_file: impl Into<PathBuf>) -> Result<Self, AnvilError> {
        Self::launch(Some(state_file.into())).await
    }

    async fn launch(state_file: Option<PathBuf>) -> Result<Self, AnvilError> {
        let port = free_port()?;
        let log_file = std::env::temp_dir().join(format!("meditrustal-anvil-{port}.log"));
        let mut node = Self {
            process: None,
            port,
            state_file,
            log_file,
        };
        node.spawn().await?;
        Ok(node)
    }

    /// Returns the node's JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Returns the node's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the node with SIGTERM, so that anvil writes its state file if
    /// it has one, and waits for it to exit. Stopping a stopped node does
    /// nothing.
    pub async fn stop(&mut self) -> Result<(), AnvilError> {
        let Some(mut process) = self.process.take() else {
            return Ok(());
        };

        let terminated = Command::new("kill")
            .args(["-TERM", &process.id().to_string()])
            .status()
            .map_err(|error| AnvilError::Stop(format!("running `kill -TERM` failed: {error}")))?;
        if !terminated.success() {
            return Err(AnvilError::Stop(format!(
                "`kill -TERM {}` exited with {terminated}",
                process.id()
            )));
        }

        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while Instant::now() < deadline {
            match process.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(error) => return Err(AnvilError::Stop(error.to_string())),
            }
        }
        kill(&mut process);
        Err(AnvilError::Stop(format!(
            "anvil did not exit within {} s of SIGTERM; killed it",
            SHUTDOWN_TIMEOUT.as_secs()
        )))
    }

    /// Stops the node if it runs and starts it again on the same port,
    /// with the same state file if it has one. Without a state file the
    /// restarted node starts with a fresh chain.
    pub async fn restart(&mut self) -> Result<(), AnvilError> {
        self.stop().await?;
        self.spawn().await
    }

    /// Turns automatic mining of each transaction on or off
    /// (`evm_setAutomine`). Turning it on mines the pending transactions,
    /// and this call waits until the node's transaction pool is empty.
    pub async fn set_automine(&self, enabled: bool) -> Result<(), AnvilError> {
        let provider = self.provider()?;
        rpc::<()>(&provider, "evm_setAutomine", [enabled]).await?;
        if !enabled {
            return Ok(());
        }

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let pool: TxpoolStatus = rpc(&provider, "txpool_status", ()).await?;
            if pool.pending.is_zero() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(AnvilError::Rpc(format!(
                    "{} transactions still pending {} s after enabling automine",
                    pool.pending,
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Builds a provider for direct JSON-RPC calls in tests, polling every
    /// 10 ms.
    pub fn provider(&self) -> Result<Provider<Http>, AnvilError> {
        let provider = Provider::<Http>::try_from(self.rpc_url())
            .map_err(|error| AnvilError::Rpc(error.to_string()))?;
        Ok(provider.interval(Duration::from_millis(10)))
    }

    async fn spawn(&mut self) -> Result<(), AnvilError> {
        let binary = anvil_binary()?;
        let log = File::create(&self.log_file).map_err(|error| {
            AnvilError::Start(format!(
                "cannot create {}: {error}",
                self.log_file.display()
            ))
        })?;
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(state_file) = &self.state_file {
            command.arg("--state").arg(state_file);
        }

        let process = command.spawn().map_err(|error| {
            AnvilError::Start(format!("cannot run {}: {error}", binary.display()))
        })?;
        self.process = Some(process);
        self.wait_until_ready().await
    }

    /// Polls `eth_chainId` until it responds, failing early if the process
    /// exits.
    async fn wait_until_ready(&mut self) -> Result<(), AnvilError> {
        let provider = self.provider()?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let response =
                tokio::time::timeout(Duration::from_secs(1), provider.get_chainid()).await;
            if matches!(response, Ok(Ok(_))) {
                return Ok(());
            }
            if let Some(process) = self.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    self.process = None;
                    return Err(AnvilError::Start(format!(
                        "anvil exited with {status} on port {}; its output is in {}",
                        self.port,
                        self.log_file.display()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(AnvilError::Start(format!(
                    "eth_chainId on port {} got no response within {} s",
                    self.port,
                    STARTUP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for AnvilNode {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            kill(&mut process);
        }
        // The log is only useful while the node runs or right after a
        // failed start, which returns before a node exists to drop.
        let _ = std::fs::remove_file(&self.log_file);
    }
}

/// Sends one JSON-RPC request with a 5 s timeout.
async fn rpc<R>(
    provider: &Provider<Http>,
    method: &str,
    params: impl Serialize + Debug + Send + Sync,
) -> Result<R, AnvilError>
where
    R: Serialize + DeserializeOwned + Debug + Send,
{
    tokio::time::timeout(
        Duration::from_secs(5),
        provider.request::<_, R>(method, params),
    )
    .await
    .map_err(|_| AnvilError::Rpc(format!("{method} timed out")))?
    .map_err(|error| AnvilError::Rpc(format!("{method} failed: {error}")))
}

/// Kills the process with SIGKILL and reaps it.
fn kill(process: &mut Child) {
    let _ = process.kill();
    let _ = process.wait();
}

/// Returns a port that was free a moment ago.
///
/// NOTE: another process can take the port between this check and anvil's
/// bind; the start then fails with the port in the message.
fn free_port() -> Result<u16, AnvilError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| AnvilError::Start(format!("cannot find a free port: {error}")))?;
    let address = listener
        .local_addr()
        .map_err(|error| AnvilError::Start(format!("cannot find a free port: {error}")))?;
    Ok(address.port())
}

fn anvil_binary() -> Result<PathBuf, AnvilError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if path.is_file() {
        Ok(path)
    } else {
        Err(AnvilError::BinaryMissing { path })
    }
}

/// Configuration for a ledger on `node`: the registrar is anvil's first
/// default account, receipts are polled every 10 ms for up to 5 s, each RPC
/// call times out after 2 s, and deployment checks are reused for 200 ms.
pub fn test_config(node: &AnvilNode) -> EthersConfig {
    EthersConfig {
        rpc_url: node.rpc_url(),
        poll_interval: Duration::from_millis(10),
        receipt_timeout: Duration::from_secs(5),
        rpc_timeout: Duration::from_secs(2),
        deployment_check_ttl: Duration::from_millis(200),
        registrar_key: SecretString::from(REGISTRAR_KEY.to_owned()),
    }
}

/// Deploys fresh contracts on `node` and builds a ledger on them with
/// [`test_config`].
pub async fn deploy_test_ledger(
    node: &AnvilNode,
) -> Result<(EthersLedger, DeploymentManifest), DeploymentError> {
    let config = test_config(node);
    let manifest = deploy_contracts(&config).await?;
    let ledger = EthersLedger::connect(&config, manifest.clone())?;
    Ok((ledger, manifest))
}

/// Deploys the event-only baseline contract (`EventOnlyBatchAnchor`) on
/// `node` and returns the gas that anchoring a root of `leaf_count` leaves
/// uses there, for comparison with `BatchAnchorRegistry`
/// ([`EthersLedger::measure_batch_anchor_gas`]). The baseline stores
/// nothing, so it cannot reject a resent root.
pub async fn measure_event_only_anchor_gas(
    node: &AnvilNode,
    leaf_count: u32,
) -> Result<u64, DeploymentError> {
    use ethers::abi::AbiEncode;

    use crate::bindings::baseline::{AnchorBatchCall, EVENTONLYBATCHANCHOR_BYTECODE};
    use crate::convert::to_h160;
    use crate::rpc::ChainClient;

    let config = test_config(node);
    let chain = ChainClient::connect(&config, ANVIL_CHAIN_ID)?;
    let (deployment, _) = crate::deploy::deploy_one(
        &chain,
        &config,
        "EventOnlyBatchAnchor",
        &EVENTONLYBATCHANCHOR_BYTECODE,
    )
    .await?;

    let failed = |reason: String| DeploymentError::Unavailable(reason);
    let mut root = [0u8; 32];
    root[..4].copy_from_slice(&leaf_count.to_be_bytes());
    root[31] = 1;
    let call = AnchorBatchCall {
        root,
        leaf_count: leaf_count.into(),
    };
    let to = to_h160(&deployment.address);
    let data: ethers::types::Bytes = call.encode().into();
    let gas = chain
        .estimate_gas(Some(to), &data)
        .await
        .map_err(|error| failed(error.describe()))?;
    let tx_hash = chain
        .send(Some(to), data, gas)
        .await
        .map_err(|error| failed(error.describe()))?;
    let receipt = chain
        .wait_for_receipt(tx_hash, config.receipt_timeout)
        .await
        .map_err(|error| failed(error.describe()))?
        .ok_or_else(|| failed(format!("transaction {tx_hash:#x} was not mined")))?;
    Ok(receipt
        .gas_used
        .map(|gas| gas.low_u64())
        .unwrap_or_default())
}
