//! The system under test: a fresh database, an anvil node and the server,
//! each on a free 127.0.0.1 port, started the way `make run` starts them
//! and stopped by the process ids this module started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::db;

/// How long the server may take to respond to `/health/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stopped process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Binaries, database and directories of a stack.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The `meditrustal` binary under test.
    pub server_bin: PathBuf,
    /// The anvil binary.
    pub anvil_bin: PathBuf,
    /// URL of the `postgres` database, for creating the bench database.
    pub admin_url: String,
    /// Name of the database the server gets, dropped and created anew.
    pub database: String,
    /// Parent of the per-stack data directories.
    pub work_dir: PathBuf,
    /// `MEDITRUSTAL__...` settings added to the server's environment.
    pub server_env: Vec<(String, String)>,
    /// Program and arguments that `serve` runs under, such as a profiler;
    /// empty to run the server directly.
    pub server_wrapper: Vec<String>,
}

/// A running stack.
pub struct Stack {
    /// `http://127.0.0.1:PORT` of the server.
    pub base_url: String,
    /// URL of the bench database.
    pub database_url: String,
    /// JSON-RPC URL of anvil.
    pub rpc_url: String,
    /// Process id of the server.
    pub server_pid: u32,
    /// Directory of keys, manifest and logs.
    pub data_dir: PathBuf,
    anvil: Child,
    server: Child,
}

impl Stack {
    /// Creates the database, starts anvil, migrates, deploys the contracts
    /// and serves. `extra_env` is added to the server's environment after
    /// the configured settings (the anchoring mode, for example).
    pub async fn start(
        config: &StackConfig,
        name: &str,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let data_dir = config.work_dir.join(name);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("could not create {}", data_dir.display()))?;
        db::recreate_database(&config.admin_url, &config.database).await?;
        let database_url = db::database_url(&config.admin_url, &config.database);

        let (anvil, rpc_url) = start_anvil(&config.anvil_bin, &data_dir.join("anvil.log")).await?;

        let server_port = free_port()?;
        let mut env = vec![
            ("MEDITRUSTAL__DATA_DIR".to_owned(), path_text(&data_dir)),
            (
                "MEDITRUSTAL__DATABASE__URL".to_owned(),
                database_url.clone(),
            ),
            ("MEDITRUSTAL__CHAIN__RPC_URL".to_owned(), rpc_url.clone()),
            (
                "MEDITRUSTAL__SERVER__PORT".to_owned(),
                server_port.to_string(),
            ),
        ];
        env.extend(config.server_env.iter().cloned());
        env.extend(extra_env.iter().cloned());

        run_to_end(server_command(config, &env, &["migrate"]), "migrate").await?;
        run_to_end(
            server_command(config, &env, &["deploy-contracts", "--fund-registrar"]),
            "deploy-contracts",
        )
        .await?;
        let server = spawn_logged(
            &mut serve_command(config, &env),
            &data_dir.join("server.log"),
        )?;
        let server_pid = server.id().context("the server exited at once")?;

        let mut stack = Self {
            base_url: format!("http://127.0.0.1:{server_port}"),
            database_url,
            rpc_url,
            server_pid,
            data_dir,
            anvil,
            server,
        };
        if let Err(error) = stack.wait_until_ready().await {
            stack.stop().await;
            return Err(error);
        }
        Ok(stack)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/health/ready", self.base_url);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.server.try_wait() {
                bail!(
                    "the server exited with {status}; see {}",
                    self.data_dir.join("server.log").display()
                );
            }
            let ready = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "the server was not ready within {} s; see {}",
            READY_TIMEOUT.as_secs(),
            self.data_dir.join("server.log").display()
        )
    }

    /// Stops the server, then anvil: SIGTERM, and SIGKILL after
    /// [`STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        stop_child(&mut self.server).await;
        stop_child(&mut self.anvil).await;
    }
}

/// Starts anvil on a free 127.0.0.1 port with its output in `log` and
/// waits until it responds; returns it and its RPC URL.
pub async fn start_anvil(anvil_bin: &Path, log: &Path) -> anyhow::Result<(Child, String)> {
    let port = free_port()?;
    let rpc_url = format!("http://127.0.0.1:{port}");
    let mut anvil = spawn_logged(
        Command::new(anvil_bin).args(["--host", "127.0.0.1", "--port", &port.to_string()]),
        log,
    )?;
    if let Err(error) = wait_for_rpc(&rpc_url).await {
        stop_child(&mut anvil).await;
        return Err(error);
    }
    Ok((anvil, rpc_url))
}

fn server_command(config: &StackConfig, env: &[(String, String)], args: &[&str]) -> Command {
    let mut command = Command::new(&config.server_bin);
    command
        .args(args)
        .env("MEDITRUSTAL_ENV", "development")
        .envs(
            env.iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
    command
}

/// The `serve` command, under the configured wrapper if there is one.
fn serve_command(config: &StackConfig, env: &[(String, String)]) -> Command {
    let Some((program, wrapper_args)) = config.server_wrapper.split_first() else {
        return server_command(config, env, &["serve"]);
    };
    let mut command = Command::new(program);
    command
        .args(wrapper_args)
        .arg(&config.server_bin)
        .arg("serve")
        .env("MEDITRUSTAL_ENV", "development")
        .envs(
            env.iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
    command
}

async fn run_to_end(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .await
        .with_context(|| format!("could not run `meditrustal {what}`"))?;
    if !output.status.success() {
        bail!(
            "`meditrustal {what}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn spawn_logged(command: &mut Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log)
        .with_context(|| format!("could not create {}", log.display()))?;
    let stderr = file.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .context("could not start a process of the stack")
}

/// Sends SIGTERM to `child`, and SIGKILL after [`STOP_TIMEOUT`].
pub async fn stop_child(child: &mut Child) {
    let Some(pid) = child.id() else {
        return;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn wait_for_rpc(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let request =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    for _ in 0..100 {
        let answered = client
            .post(url)
            .json(&request)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if answered {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("anvil did not answer at {url} within 10 s")
}

/// Returns a port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.port())
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
