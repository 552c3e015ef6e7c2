//! A private PostgreSQL server in a temporary directory, for tests that
//! stop the database. The shared server is never stopped.
//!
//! `initdb` refuses to run as root, so when the tests run as root every
//! server command runs as the `postgres` user through `runuser`, in a
//! directory owned by that user.

#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed setup step must fail the test"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the directory with `initdb` and `pg_ctl`.
const BIN_DIR_ENV: &str = "MEDITRUSTAL_PG_BIN_DIR";

/// A PostgreSQL server of its own for one test, stopped and deleted on drop.
pub struct PgServer {
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl PgServer {
    /// Initializes a cluster with trust authentication on a free port and
    /// starts it.
    pub fn start() -> Self {
        let bin_dir = find_bin_dir();
        let run_as_postgres = is_root();
        let dir =
            std::env::temp_dir().join(format!("meditrustal-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).unwrap();
        let server = Self {
            dir,
            bin_dir,
            port: free_port(),
            run_as_postgres,
        };
        if run_as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&server.dir));
        }

        let data = server.data_dir();
        server.run_tool(&[
            "initdb",
            "-D",
            &data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        server.start_again();
        server
    }

    /// URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped server on the same port, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run_tool(&[
            "pg_ctl",
            "-D",
            &self.data_dir(),
            "-l",
            &log,
            "-o",
            &options,
            "-w",
            "-t",
            "60",
            "start",
        ]);
    }

    /// Stops the server with a `pg_ctl` shutdown mode: `fast` closes
    /// sessions cleanly, `immediate` kills them like a crash.
    pub fn stop(&self, mode: &str) {
        self.run_tool(&["pg_ctl", "-D", &self.data_dir(), "-m", mode, "-w", "stop"]);
    }

    fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run_tool(&self, args: &[&str]) {
        let program = self.bin_dir.join(args[0]);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.args(&args[1..]).current_dir(&self.dir);
        run(&mut command);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let program = self.bin_dir.join("pg_ctl");
        let data = self.data_dir();
        let stop_args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.run_as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(stop_args)
                .output()
        } else {
            Command::new(&program).args(stop_args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `MEDITRUSTAL_PG_BIN_DIR`, or the newest `/usr/lib/postgresql/<version>/bin`
/// (the Debian layout).
fn find_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var(BIN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let versions = std::fs::read_dir("/usr/lib/postgresql").map(|entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .collect::<Vec<_>>()
    });
    let newest = versions
        .ok()
        .and_then(|versions| versions.into_iter().max());
    let dir = newest.map(|version| {
        Path::new("/usr/lib/postgresql")
            .join(version.to_string())
            .join("bin")
    });
    match dir {
        Some(dir) if dir.join("initdb").exists() => dir,
        _ => panic!("initdb not found: install the PostgreSQL server or set {BIN_DIR_ENV}"),
    }
}

fn is_root() -> bool {
    let Ok(output) = Command::new("id").arg("-u").output() else {
        return false;
    };
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// Returns a port that was free a moment ago. Another process could take
/// it before the server binds it, which fails the start loudly.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
