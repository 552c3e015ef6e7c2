//! The real `meditrustal` binary against its own database and anvil node:
//! graceful shutdown on SIGTERM, and the operator commands' output when
//! standard output and standard error are not terminals.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, RunQueryDsl};
use meditrustal_adapter_ethers::testing::{deploy_test_ledger, test_config, AnvilNode};
use meditrustal_adapter_postgres::TestDatabase;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
// Keys with letters: the configuration loader reads an all-digit value
// from the environment as a number.
const OLD_MASTER_KEY: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";
const NEW_MASTER_KEY: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";

/// A database, a chain with deployed contracts, and the environment that
/// points the binary at them.
struct Deployment {
    db: TestDatabase,
    _anvil: AnvilNode,
    data_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _removed = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn deployment() -> Deployment {
    let anvil = AnvilNode::start().await.unwrap();
    let db = TestDatabase::create().await.unwrap();
    let (_ledger, manifest) = deploy_test_ledger(&anvil).await.unwrap();
    let data_dir = std::env::temp_dir().join(format!(
        "meditrustal-binary-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&data_dir).unwrap();
    manifest.save(&data_dir.join("deployment.json")).unwrap();

    let env = [
        ("MEDITRUSTAL__DATA_DIR", data_dir.display().to_string()),
        (
            "MEDITRUSTAL__DATABASE__URL",
            db.url().expose_secret().to_owned(),
        ),
        ("MEDITRUSTAL__CHAIN__RPC_URL", anvil.rpc_url()),
        (
            "MEDITRUSTAL__CHAIN__REGISTRAR_KEY",
            test_config(&anvil).registrar_key.expose_secret().to_owned(),
        ),
        ("MEDITRUSTAL__CHAIN__POLL_INTERVAL_MS", "10".into()),
        ("MEDITRUSTAL__CRYPTO__MASTER_KEY_ID", "mk1".into()),
        ("MEDITRUSTAL__CRYPTO__MASTER_KEY", OLD_MASTER_KEY.into()),
        ("MEDITRUSTAL__AUTH__SIGNING_KEY", "1c".repeat(32)),
        ("MEDITRUSTAL__AUTH__BCRYPT_COST", "4".into()),
        ("MEDITRUSTAL__ANCHORING__POLL_INTERVAL_MS", "50".into()),
        (
            "MEDITRUSTAL__SERVER__SHUTDOWN_TIMEOUT_SECS",
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    Deployment {
        db,
        _anvil: anvil,
        data_dir,
        env,
    }
}

fn command(deployment: &Deployment, args: &[&str]) -> Command {
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_meditrustal"));
    command
        .arg("--config-dir")
        .arg(config_dir)
        .args(["--env", "test"])
        .args(args)
        .env("RUST_LOG", "info")
        .envs(deployment.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null());
    command
}

/// Runs an operator command to its end with piped (non-terminal) output.
fn run(deployment: &Deployment, args: &[&str], extra: &[(&str, &str)]) -> Output {
    command(deployment, args)
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// A `meditrustal serve` process, killed on drop if a test fails before
/// it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _killed = self.0.kill();
            let _exited = self.0.wait();
        }
    }
}

/// `meditrustal serve` on a free port, its log in the data folder.
fn serve(deployment: &Deployment) -> (Server, SocketAddr) {
    let port = free_port();
    let log_path = deployment.data_dir.join(format!("serve-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server(
        command(deployment, &["serve"])
            .env("MEDITRUSTAL__SERVER__PORT", port.to_string())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..300 {
        if let Ok((200, _)) = http(address, "GET", "/health/ready", None, None) {
            return (server, address);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    panic!("meditrustal serve did not become ready within 30 s; its log:\n{log}");
}

/// Sends one HTTP/1.1 request with `Connection: close` and returns the
/// status and JSON body.
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|token| format!("authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )?;
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, Value)> {
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or("");
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn count(db: &TestDatabase, query: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let row: Count = diesel::sql_query(query)
        .get_result(&mut db.connect().unwrap())
        .unwrap();
    row.count
}

fn sigterm(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(status) = server.0.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("meditrustal did not exit within {within:?} of SIGTERM");
}

fn register_and_login(address: SocketAddr, name: &str) -> String {
    let (status, _) = http(
        address,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(
            &json!({"username": name, "email": format!("{name}@example.org"),
                     "password": "correct horse battery", "role": "PATIENT"}),
        ),
    )
    .unwrap();
    assert_eq!(status, 201);
    let (status, body) = http(
        address,
        "POST",
        "/api/v1/auth/login/json",
        None,
        Some(&json!({"username_or_email": name, "password": "correct horse battery"})),
    )
    .unwrap();
    assert_eq!(status, 200);
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_request_in_flight_and_exits_cleanly() {
    let deployment = deployment().await;
    let (mut server, address) = serve(&deployment);
    let token = register_and_login(address, "amara");

    // A create whose body arrives slowly: half before the signal, half after.
    let body =
        json!({"record_type": "LAB_RESULT", "raw_data": "{\"resourceType\":\"Observation\"}"})
            .to_string();
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut slow = TcpStream::connect(address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        slow,
        "POST /api/v1/medical-records HTTP/1.1\r\nhost: {address}\r\n\
         authorization: Bearer {token}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{first_half}",
        body.len()
    )
    .unwrap();
    slow.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    sigterm(&server);
    let signalled = Instant::now();
    let mut refused = false;
    while !refused && signalled.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        refused = TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err();
    }
    assert!(
        refused,
        "new connections were still accepted 5 s after SIGTERM"
    );

    slow.write_all(second_half.as_bytes()).unwrap();
    let (status, created) = read_response(&mut slow).unwrap();
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["anchor"]["status"], "pending");

    let exit = wait_exit(&mut server, Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5));
    assert!(exit.success(), "exit status {exit}");
    assert!(signalled.elapsed() < Duration::from_secs(SHUTDOWN_TIMEOUT_SECS));

    // Nothing half-done: the record and its job are both there, and no job
    // is left leased to the stopped process.
    let record_id = created["id"].as_str().unwrap();
    assert_eq!(
        count(
            &deployment.db,
            "SELECT count(*) AS count FROM medical_records"
        ),
        1
    );
    assert_eq!(
        count(
            &deployment.db,
            &format!("SELECT count(*) AS count FROM outbox_jobs WHERE record_id = '{record_id}'")
        ),
        1
    );
    assert_eq!(
        count(
            &deployment.db,
            "SELECT count(*) AS count FROM outbox_jobs WHERE locked_until > now()"
        ),
        0
    );

    // The next start anchors whatever the stopped one left pending.
    let (mut server, address) = serve(&deployment);
    let mut anchored = Value::Null;
    for _ in 0..300 {
        let (_, record) = http(
            address,
            "GET",
            &format!("/api/v1/medical-records/{record_id}"),
            Some(&token),
            None,
        )
        .unwrap();
        if record["anchor"]["status"] == "anchored" {
            anchored = record;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(anchored["anchor"]["status"], "anchored");
    sigterm(&server);
    let exit = wait_exit(&mut server, Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5));
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_print_plain_progress_and_summary() {
    let deployment = deployment().await;
    let (mut server, address) = serve(&deployment);
    let token = register_and_login(address, "bea");
    let (status, _) = http(
        address,
        "POST",
        "/api/v1/medical-records",
        Some(&token),
        Some(&json!({"record_type": "LAB_RESULT", "raw_data": "{\"a\":1}"})),
    )
    .unwrap();
    assert_eq!(status, 201);
    sigterm(&server);
    assert!(wait_exit(&mut server, Duration::from_secs(20)).success());

    let previous = format!("mk1:{OLD_MASTER_KEY}");
    let new_key = [
        ("MEDITRUSTAL__CRYPTO__MASTER_KEY_ID", "mk2"),
        ("MEDITRUSTAL__CRYPTO__MASTER_KEY", NEW_MASTER_KEY),
        (
            "MEDITRUSTAL__CRYPTO__PREVIOUS_MASTER_KEYS",
            previous.as_str(),
        ),
    ];
    let rotated = run(
        &deployment,
        &["keys", "rotate", "--batch-size", "1"],
        &new_key,
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_eq!(
        stdout(&rotated),
        "keys rotate: re-wrapped 2 data keys under master key mk2 (medical_records 1, \
         user_keys 1, totp_credentials 0); no data key is wrapped under another master key\n"
    );
    let progress_text = stderr(&rotated);
    let progress: Vec<&str> = progress_text
        .lines()
        .filter(|line| line.starts_with("keys rotate: "))
        .collect();
    assert_eq!(
        progress,
        [
            "keys rotate: 1/2 data keys (50%)",
            "keys rotate: 2/2 data keys (100%)"
        ],
        "{progress_text}"
    );
    assert!(!progress_text.contains(NEW_MASTER_KEY));
    assert!(!progress_text.contains(OLD_MASTER_KEY));

    let retired = run(&deployment, &["keys", "retire", "mk1"], &new_key);
    assert!(retired.status.success(), "{}", stderr(&retired));
    assert_eq!(stdout(&retired), "keys retire: master key mk1 is retired\n");

    let backup_dir = deployment.data_dir.join("backup");
    let backup_arg = backup_dir.display().to_string();
    let backed_up = run(&deployment, &["backup", &backup_arg], &new_key);
    assert!(backed_up.status.success(), "{}", stderr(&backed_up));
    assert_eq!(
        stdout(&backed_up),
        format!(
            "backup: wrote 3 files to {backup_arg}; back up the master keys (mk2) separately\n"
        )
    );
    assert!(stderr(&backed_up).contains("backup: 3/3 steps (100%)"));

    let verified = run(&deployment, &["audit", "verify"], &[]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).starts_with("audit chain intact: "),
        "{}",
        stdout(&verified)
    );
    assert!(
        stderr(&verified).contains("audit verify: "),
        "{}",
        stderr(&verified)
    );
}
