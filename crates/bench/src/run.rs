//! The benchmark run: which measurements, in which order, on which stack.
//!
//! Per anchoring mode a fresh stack is started. In the first mode, after
//! a paced set of records measures anchoring, come the reads, lists and
//! logins of those records and the pgbench baseline, while the anchoring
//! worker is idle. Record creation comes last in every mode, because it
//! leaves an anchoring backlog that the worker keeps draining afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::anchoring::{self, AnchoringResult, Backlog};
use crate::api::{self, Api};
use crate::baseline;
use crate::gas::{self, BatchGasResult};
use crate::load::{self, LoadResult, Scenario};
use crate::machine::{self, Machine};
use crate::probe::ProcessProbe;
use crate::report;
use crate::stack::{Stack, StackConfig};
use crate::Options;

/// Scenarios that `--scenarios` may name.
pub const SCENARIOS: [&str; 5] = ["create", "read", "list", "login", "baseline"];

/// Environment variable of the anchoring mode setting.
const MODE_ENV: &str = "MEDITRUSTAL__ANCHORING__MODE";

/// Values of `anchoring.mode` the server accepts.
const MODES: [&str; 2] = ["batch", "per_record"];

/// Everything one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Where it ran.
    pub machine: Machine,
    /// Whether this was the smoke run (tiny durations).
    pub smoke: bool,
    /// The operator's note, if any.
    pub note: Option<String>,
    /// Record creation per anchoring mode.
    pub modes: Vec<ModeResults>,
    /// Record reads by id, per client count.
    pub read: Vec<LoadResult>,
    /// Listings of the caller's records, per client count.
    pub list: Vec<LoadResult>,
    /// Logins, unless left out.
    pub login: Option<LoginResult>,
    /// pgbench inserts of the same row, per client count.
    pub baseline: Vec<LoadResult>,
    /// Gas of one batch anchoring transaction per batch size.
    pub batch_gas: Vec<BatchGasResult>,
    /// Run lengths in seconds, for the report.
    pub settings: Settings,
}

/// Run lengths and sizes.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Seconds per create run.
    pub create_secs: u64,
    /// Seconds per read run.
    pub read_secs: u64,
    /// Seconds per list run.
    pub list_secs: u64,
    /// Seconds of the login run.
    pub login_secs: u64,
    /// Seconds per pgbench run.
    pub baseline_secs: u64,
    /// Unmeasured seconds before each run.
    pub warmup_secs: u64,
    /// Records in the anchoring measurement.
    pub anchor_records: usize,
    /// Their pace per second.
    pub anchor_rate: u32,
    /// Extra server settings.
    pub server_env: Vec<(String, String)>,
}

/// Record creation in one anchoring mode.
#[derive(Clone, Debug, Serialize)]
pub struct ModeResults {
    /// Value of `anchoring.mode`.
    pub mode: String,
    /// One run per client count.
    pub create: Vec<LoadResult>,
    /// Anchoring of the paced records.
    pub anchoring: AnchoringResult,
    /// Anchoring during the create runs.
    pub backlog: Backlog,
}

/// The login run and what bounds it.
#[derive(Clone, Debug, Serialize)]
pub struct LoginResult {
    /// The wrk run.
    pub load: LoadResult,
    /// bcrypt cost of the bench user's hash.
    pub bcrypt_cost: u32,
    /// Median time of one bcrypt hash at that cost on one core, in ms.
    pub single_hash_ms: f64,
    /// Cores available.
    pub cores: usize,
    /// `cores / single_hash_time`: logins per second if hashing were the
    /// only work and every core hashed all the time.
    pub hash_bound_per_second: f64,
    /// Achieved logins per second divided by that bound.
    pub ratio: f64,
}

/// Runs the whole benchmark and writes the report.
pub async fn run(options: &Options) -> anyhow::Result<()> {
    if options.modes.is_empty() || options.clients.is_empty() {
        bail!("give at least one mode and one client count");
    }
    if let Some(unknown) = options
        .modes
        .iter()
        .find(|mode| !MODES.contains(&mode.as_str()))
    {
        bail!(
            "unknown anchoring mode {unknown:?}; use {}",
            MODES.join(", ")
        );
    }
    if let Some(unknown) = options
        .scenarios
        .iter()
        .find(|scenario| !SCENARIOS.contains(&scenario.as_str()))
    {
        bail!("unknown scenario {unknown:?}; use {}", SCENARIOS.join(", "));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&options.work_dir)?;
    let work_dir = options
        .work_dir
        .canonicalize()
        .context("invalid work directory")?;
    let anvil_bin = options.anvil_bin.display().to_string();
    let machine = machine::describe(&options.admin_url, &anvil_bin).await;
    let config = StackConfig {
        server_bin: options.server_bin.clone(),
        anvil_bin: options.anvil_bin.clone(),
        admin_url: options.admin_url.clone(),
        database: options.database.clone(),
        work_dir: work_dir.clone(),
        server_env: server_env(options),
        server_wrapper: options.server_wrapper.clone(),
    };

    let measured = measure_modes(options, &config, &work_dir).await;
    crate::db::drop_database(&options.admin_url, &options.database).await?;
    let (modes, first) = measured?;

    let batch_gas = if options.gas_batches.is_empty() {
        Vec::new()
    } else {
        log("gas: batches on a separate anvil node");
        gas::measure(&options.anvil_bin, &work_dir, &options.gas_batches).await?
    };

    let (read, list, login, baseline) = first.unwrap_or_default();
    let results = Results {
        machine,
        smoke: options.smoke,
        note: options.note.clone(),
        modes,
        read,
        list,
        login,
        baseline,
        batch_gas,
        settings: settings(options),
    };
    report::write(&results, &options.out_dir)?;
    check_clean(&results)?;
    log(&format!(
        "wrote {} in {:.0} s",
        options.out_dir.join("benchmarks.md").display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Measures every mode on its own stack; the reads, lists, logins and the
/// baseline come from the first.
async fn measure_modes(
    options: &Options,
    config: &StackConfig,
    work_dir: &Path,
) -> anyhow::Result<(Vec<ModeResults>, Option<OtherResults>)> {
    let mut modes = Vec::new();
    let mut first = None;
    for (index, mode) in options.modes.iter().enumerate() {
        let extra_env = vec![(MODE_ENV.to_owned(), mode.clone())];
        let mut stack = Stack::start(config, &format!("stack-{mode}"), &extra_env).await?;
        log(&format!("mode {mode}: server at {}", stack.base_url));
        let outcome = measure_mode(options, &stack, mode, index == 0, work_dir).await;
        stack.stop().await;
        let (mode_results, others) = outcome?;
        modes.push(mode_results);
        if first.is_none() {
            first = others;
        }
    }
    Ok((modes, first))
}

type OtherResults = (
    Vec<LoadResult>,
    Vec<LoadResult>,
    Option<LoginResult>,
    Vec<LoadResult>,
);

async fn measure_mode(
    options: &Options,
    stack: &Stack,
    mode: &str,
    with_others: bool,
    work_dir: &Path,
) -> anyhow::Result<(ModeResults, Option<OtherResults>)> {
    let scripts = load::scratch_dir(work_dir, &format!("scripts-{mode}"))?;
    let probe = ProcessProbe::new(stack.server_pid);
    let api = Api::new(&stack.base_url);
    let username = "bench_patient";
    api.register_patient(username).await?;
    let token = api.login(username).await?;

    log("anchoring: paced creates");
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.anchor_rate.max(1)));
    let ids = api
        .create_paced(&token, options.anchor_records, interval)
        .await?;
    anchoring::wait_until_anchored(&stack.database_url, &ids, Duration::from_secs(120)).await?;
    let anchoring = anchoring::measure(&stack.database_url, &stack.rpc_url, &ids).await?;

    let others = if with_others {
        Some(measure_others(options, stack, &probe, &scripts, &token, username, &ids).await?)
    } else {
        None
    };

    let since: String = crate::db::scalar(&stack.database_url, "SELECT now()::text").await?;
    let create_started = Instant::now();
    let create_scenario = Scenario {
        name: "create".into(),
        method: "POST",
        paths: vec![api::RECORDS_PATH.into()],
        body: Some(api::create_body()),
        headers: vec![bearer(&token)],
        clients: 1,
        duration: Duration::ZERO,
    };
    let mut create = Vec::new();
    if options
        .scenarios
        .iter()
        .any(|scenario| scenario == "create")
    {
        create = sweep(
            options,
            stack,
            &probe,
            &scripts,
            &create_scenario,
            options.create_secs,
        )
        .await?;
    }
    let backlog = anchoring::backlog(
        &stack.database_url,
        &since,
        create_started.elapsed().as_secs_f64(),
    )
    .await?;

    Ok((
        ModeResults {
            mode: mode.to_owned(),
            create,
            anchoring,
            backlog,
        },
        others,
    ))
}

async fn measure_others(
    options: &Options,
    stack: &Stack,
    probe: &ProcessProbe,
    scripts: &Path,
    token: &str,
    username: &str,
    ids: &[String],
) -> anyhow::Result<OtherResults> {
    let wanted = |name: &str| options.scenarios.iter().any(|scenario| scenario == name);
    let read_scenario = Scenario {
        name: "read".into(),
        method: "GET",
        paths: ids
            .iter()
            .map(|id| format!("{}/{id}", api::RECORDS_PATH))
            .collect(),
        body: None,
        headers: vec![bearer(token)],
        clients: 1,
        duration: Duration::ZERO,
    };
    let mut read = Vec::new();
    if wanted("read") {
        read = sweep(
            options,
            stack,
            probe,
            scripts,
            &read_scenario,
            options.read_secs,
        )
        .await?;
    }

    let mut list = Vec::new();
    if wanted("list") {
        let list_scenario = Scenario {
            name: "list".into(),
            paths: vec![api::LIST_PATH.into()],
            ..read_scenario
        };
        list = sweep(
            options,
            stack,
            probe,
            scripts,
            &list_scenario,
            options.list_secs,
        )
        .await?;
    }

    let mut login = None;
    if wanted("login") {
        login = Some(measure_login(options, stack, probe, scripts, username).await?);
    }

    let mut inserts = Vec::new();
    if wanted("baseline") {
        log("baseline: pgbench");
        baseline::prepare(&stack.database_url).await?;
        for &clients in &options.clients {
            let duration = Duration::from_secs(options.baseline_secs);
            let result = baseline::run(&stack.database_url, clients, duration, scripts).await?;
            log_result("plain insert", &result);
            inserts.push(result);
        }
    }
    Ok((read, list, login, inserts))
}

async fn measure_login(
    options: &Options,
    stack: &Stack,
    probe: &ProcessProbe,
    scripts: &Path,
    username: &str,
) -> anyhow::Result<LoginResult> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let clients = match options.login_clients {
        0 => u32::try_from(cores * 2).unwrap_or(4),
        clients => clients,
    };
    let scenario = Scenario {
        name: "login".into(),
        method: "POST",
        paths: vec![api::LOGIN_PATH.into()],
        body: Some(api::login_body(username)),
        headers: Vec::new(),
        clients,
        duration: Duration::from_secs(options.login_secs),
    };
    let load = load::run(&stack.base_url, &scenario, scripts, Some(probe)).await?;
    log_result("login", &load);

    let single_hash_ms = single_hash_ms(options.bcrypt_cost).await?;
    let hash_bound_per_second = cores as f64 / (single_hash_ms / 1000.0);
    Ok(LoginResult {
        ratio: load.throughput / hash_bound_per_second,
        load,
        bcrypt_cost: options.bcrypt_cost,
        single_hash_ms,
        cores,
        hash_bound_per_second,
    })
}

/// Times bcrypt hashes at `cost` on one thread, while the server is idle,
/// and returns the median in milliseconds.
async fn single_hash_ms(cost: u32) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        let mut times = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            bcrypt::hash(api::PASSWORD, cost)?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        crate::stats::sort(&mut times);
        Ok(crate::stats::percentile(&times, 50.0).unwrap_or(0.0))
    })
    .await?
}

/// Runs `scenario` at every client count: an unmeasured warm-up, then
/// the measured run.
async fn sweep(
    options: &Options,
    stack: &Stack,
    probe: &ProcessProbe,
    scripts: &Path,
    scenario: &Scenario,
    seconds: u64,
) -> anyhow::Result<Vec<LoadResult>> {
    let mut results = Vec::new();
    for &clients in &options.clients {
        if options.warmup_secs > 0 {
            let warmup = Scenario {
                clients,
                duration: Duration::from_secs(options.warmup_secs),
                ..scenario.clone()
            };
            load::run(&stack.base_url, &warmup, scripts, None).await?;
        }
        let measured = Scenario {
            clients,
            duration: Duration::from_secs(seconds),
            ..scenario.clone()
        };
        let result = load::run(&stack.base_url, &measured, scripts, Some(probe)).await?;
        log_result(&scenario.name, &result);
        results.push(result);
    }
    Ok(results)
}

fn bearer(token: &str) -> (String, String) {
    ("Authorization".to_owned(), format!("Bearer {token}"))
}

fn server_env(options: &Options) -> Vec<(String, String)> {
    let mut env = vec![(
        "MEDITRUSTAL__AUTH__BCRYPT_COST".to_owned(),
        options.bcrypt_cost.to_string(),
    )];
    env.extend(options.server_env.iter().cloned());
    env
}

fn settings(options: &Options) -> Settings {
    Settings {
        create_secs: options.create_secs,
        read_secs: options.read_secs,
        list_secs: options.list_secs,
        login_secs: options.login_secs,
        baseline_secs: options.baseline_secs,
        warmup_secs: options.warmup_secs,
        anchor_records: options.anchor_records,
        anchor_rate: options.anchor_rate,
        server_env: options.server_env.clone(),
    }
}

/// Fails when any run had errors or completed nothing, after the report
/// was written, so that the smoke check catches a broken harness.
fn check_clean(results: &Results) -> anyhow::Result<()> {
    let mut runs: Vec<(&str, &LoadResult)> = Vec::new();
    for mode in &results.modes {
        runs.extend(mode.create.iter().map(|run| ("create", run)));
    }
    runs.extend(results.read.iter().map(|run| ("read", run)));
    runs.extend(results.list.iter().map(|run| ("list", run)));
    runs.extend(results.login.iter().map(|login| ("login", &login.load)));
    runs.extend(results.baseline.iter().map(|run| ("plain insert", run)));

    let failed: Vec<String> = runs
        .iter()
        .filter(|(_, run)| !run.is_clean())
        .map(|(name, run)| {
            format!(
                "{name} at {} clients: {} requests, {} socket errors, {} error responses",
                run.clients, run.requests, run.socket_errors, run.error_responses
            )
        })
        .collect();
    if !failed.is_empty() {
        bail!("runs with errors:\n{}", failed.join("\n"));
    }
    Ok(())
}

fn log_result(name: &str, result: &LoadResult) {
    log(&format!(
        "{name:>12} c={:<3} {:>8.1}/s p50 {:>7.2} ms p99 {:>7.2} ms errors {}",
        result.clients,
        result.throughput,
        result.p50_ms,
        result.p99_ms,
        result.socket_errors + result.error_responses
    ));
}

fn log(message: &str) {
    eprintln!("bench: {message}");
}
