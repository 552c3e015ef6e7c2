//! `meditrustal-bench`: starts its own database, anvil node and server,
//! loads the API with wrk and PostgreSQL with pgbench at the same client
//! counts, and writes `benchmarks.md` with SVG charts. `scripts/bench.sh`
//! builds it and the server and runs it; `make bench` runs that.

mod anchoring;
mod api;
mod baseline;
mod charts;
mod db;
mod gas;
mod load;
mod machine;
mod probe;
mod report;
mod run;
mod stack;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command-line options. Durations are in whole seconds.
#[derive(Clone, Debug, Parser)]
#[command(name = "meditrustal-bench", about = "Benchmark the MediTrustAl API")]
pub struct Options {
    /// Tiny durations and one client count: checks the harness end to end.
    #[arg(long)]
    pub smoke: bool,
    /// Output directory of benchmarks.md and the benchmarks/ charts.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Scratch directory for data directories, scripts and logs.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// The server binary under test.
    #[arg(long, default_value = "target/release/meditrustal")]
    pub server_bin: PathBuf,
    /// The anvil binary.
    #[arg(
        long,
        default_value = "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
    )]
    pub anvil_bin: PathBuf,
    /// URL of the `postgres` database of the PostgreSQL server to use.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub admin_url: String,
    /// Database the benchmark creates, uses and drops.
    #[arg(long, default_value = "meditrustal_bench")]
    pub database: String,
    /// Anchoring modes to measure record creation in, as values of
    /// `anchoring.mode`: `batch` (the server's default, one Merkle root
    /// per transaction) and `per_record` (one transaction per record).
    #[arg(long, value_delimiter = ',', default_value = "batch,per_record")]
    pub modes: Vec<String>,
    /// Concurrent clients of the create, read and list runs and of the
    /// baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub clients: Vec<u32>,
    /// Length of each create run.
    #[arg(long, default_value_t = 10)]
    pub create_secs: u64,
    /// Length of each read run.
    #[arg(long, default_value_t = 8)]
    pub read_secs: u64,
    /// Length of each list run.
    #[arg(long, default_value_t = 5)]
    pub list_secs: u64,
    /// Length of the login run.
    #[arg(long, default_value_t = 10)]
    pub login_secs: u64,
    /// Concurrent clients of the login run; 0 means twice the cores.
    #[arg(long, default_value_t = 0)]
    pub login_clients: u32,
    /// Length of each pgbench run.
    #[arg(long, default_value_t = 10)]
    pub baseline_secs: u64,
    /// Unmeasured run before each measured run at a client count.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Records created one by one to measure anchoring delay and gas.
    #[arg(long, default_value_t = 60)]
    pub anchor_records: usize,
    /// Pace of those records, per second.
    #[arg(long, default_value_t = 20)]
    pub anchor_rate: u32,
    /// Batch sizes whose anchoring gas is measured, on an anvil node of
    /// its own; none skips the measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256,1024")]
    pub gas_batches: Vec<u32>,
    /// bcrypt cost the server is configured with for this run.
    #[arg(long, default_value_t = 12)]
    pub bcrypt_cost: u32,
    /// Scenarios to run: create, read, list, login, baseline.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "create,read,list,login,baseline"
    )]
    pub scenarios: Vec<String>,
    /// Program, with its arguments separated by spaces, that starts the
    /// server, e.g. `valgrind --tool=callgrind` to profile it.
    #[arg(long, value_delimiter = ' ')]
    pub server_wrapper: Vec<String>,
    /// Extra server setting as KEY=VALUE, e.g.
    /// MEDITRUSTAL__DATABASE__MAX_CONNECTIONS=32; repeatable.
    #[arg(long = "server-env", value_parser = parse_key_value)]
    pub server_env: Vec<(String, String)>,
    /// A sentence printed at the top of the report, e.g. about the machine.
    #[arg(long)]
    pub note: Option<String>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

impl Options {
    /// Applies `--smoke`: one client count and one-second runs.
    fn effective(mut self) -> Self {
        if self.smoke {
            self.clients = vec![8];
            self.create_secs = 1;
            self.read_secs = 1;
            self.list_secs = 1;
            self.login_secs = 1;
            self.login_clients = 2;
            self.baseline_secs = 1;
            self.warmup_secs = 0;
            self.anchor_records = 5;
            self.anchor_rate = 10;
            self.bcrypt_cost = 4;
        }
        self
    }
}

fn main() -> ExitCode {
    let options = Options::parse().effective();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
