//! The report: `benchmarks.md`, its SVG charts and the raw numbers as
//! JSON, all under one output directory.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::charts::{self, Chart, Series};
use crate::gas::BatchGasResult;
use crate::load::LoadResult;
use crate::run::{ModeResults, Results};

/// Targets for this service on a 2-core machine.
const MIN_CREATE_TO_INSERT_RATIO: f64 = 0.5;
const MAX_CREATE_P99_MS: f64 = 25.0;
const MIN_READ_PER_SECOND: f64 = 5000.0;
const MAX_RSS_MB: f64 = 300.0;

/// Directory of the charts and the JSON, relative to the page.
const ASSETS: &str = "benchmarks";

/// Writes `benchmarks.md`, `benchmarks/*.svg` and
/// `benchmarks/results.json` under `out_dir`.
pub fn write(results: &Results, out_dir: &Path) -> anyhow::Result<()> {
    let assets = out_dir.join(ASSETS);
    std::fs::create_dir_all(&assets)
        .with_context(|| format!("could not create {}", assets.display()))?;
    let charts = write_charts(results, &assets)?;
    let json = serde_json::to_string_pretty(results)?;
    std::fs::write(assets.join("results.json"), json + "\n")?;
    let page = render(results, &charts);
    let path = out_dir.join("benchmarks.md");
    std::fs::write(&path, page).with_context(|| format!("could not write {}", path.display()))
}

/// File names of the charts that were drawn.
struct ChartFiles {
    throughput: String,
    p99: String,
    /// Absent when no batch gas was measured.
    gas: Option<String>,
}

fn write_charts(results: &Results, assets: &Path) -> anyhow::Result<ChartFiles> {
    let files = ChartFiles {
        throughput: "throughput.svg".into(),
        p99: "p99.svg".into(),
        gas: (!results.batch_gas.is_empty()).then(|| "gas.svg".into()),
    };
    let throughput = series(results, |run| run.throughput);
    charts::write_svg(
        &Chart {
            title: "Throughput against concurrency",
            x_label: "concurrent clients",
            y_label: "requests per second",
            y_log: true,
            series: &throughput,
        },
        &assets.join(&files.throughput),
    )?;
    let p99 = series(results, |run| run.p99_ms);
    charts::write_svg(
        &Chart {
            title: "p99 latency against concurrency",
            x_label: "concurrent clients",
            y_label: "p99 latency (ms)",
            y_log: true,
            series: &p99,
        },
        &assets.join(&files.p99),
    )?;
    if let Some(gas) = &files.gas {
        charts::write_svg(
            &Chart {
                title: "Anchoring gas per record against batch size",
                x_label: "records per batch",
                y_label: "gas per record",
                y_log: true,
                series: &gas_series(
                    &results.batch_gas,
                    results
                        .modes
                        .iter()
                        .find(|mode| mode.mode == "per_record")
                        .map(|mode| mode.anchoring.gas_per_record),
                ),
            },
            &assets.join(gas),
        )?;
    }
    Ok(files)
}

fn series(results: &Results, value: impl Fn(&LoadResult) -> f64) -> Vec<Series> {
    let line = |name: String, runs: &[LoadResult]| Series {
        name,
        points: runs
            .iter()
            .map(|run| (f64::from(run.clients), value(run)))
            .collect(),
    };
    let mut lines: Vec<Series> = results
        .modes
        .iter()
        .map(|mode| line(format!("record create ({})", mode.mode), &mode.create))
        .collect();
    lines.push(line("plain PostgreSQL insert".into(), &results.baseline));
    lines.push(line("record read".into(), &results.read));
    lines.push(line("record list".into(), &results.list));
    lines
}

/// Returns the lines of the gas chart: the measured batches, and
/// `per_record_gas` (the per-record mode's measured gas per record, when
/// that mode ran) as a flat line over the same sizes.
fn gas_series(batches: &[BatchGasResult], per_record_gas: Option<f64>) -> Vec<Series> {
    let points: Vec<(f64, f64)> = batches
        .iter()
        .map(|batch| (f64::from(batch.records), batch.gas_per_record as f64))
        .collect();
    let mut lines = Vec::new();
    if let (Some(first), Some(last), Some(gas)) = (points.first(), points.last(), per_record_gas) {
        lines.push(Series {
            name: "per_record mode (measured above)".into(),
            points: vec![(first.0, gas), (last.0, gas)],
        });
    }
    lines.push(Series {
        name: "one batch transaction".into(),
        points,
    });
    lines
}

/// Returns the Markdown page.
fn render(results: &Results, charts: &ChartFiles) -> String {
    let mut page = String::new();
    header(&mut page, results);
    targets(&mut page, results);
    let _ = writeln!(
        page,
        "![Throughput against concurrency]({ASSETS}/{})\n\n![p99 latency against concurrency]({ASSETS}/{})\n",
        charts.throughput, charts.p99
    );
    for mode in &results.modes {
        create_section(&mut page, mode, &results.baseline);
    }
    load_section(
        &mut page,
        "Record read",
        "`GET /api/v1/medical-records/{id}` of the bench user's own records, \
         rotating over the records of the anchoring measurement: token check, \
         session and user lookup, record load, integrity check, decryption and \
         the `record.read` audit event before the response.",
        &results.read,
    );
    load_section(
        &mut page,
        "Record list",
        "`GET /api/v1/medical-records/patient/me?limit=20`: metadata only, no \
         decryption, and a `record.list` audit event.",
        &results.list,
    );
    login_section(&mut page, results);
    baseline_section(&mut page, results);
    anchoring_section(&mut page, results, charts.gas.as_deref());
    commands_section(&mut page, results);
    page
}

fn header(page: &mut String, results: &Results) {
    let machine = &results.machine;
    page.push_str("# Benchmarks\n\n");
    if results.smoke {
        page.push_str(
            "**Smoke run: one-second runs that only check the harness. The numbers mean nothing.**\n\n",
        );
    }
    if let Some(note) = &results.note {
        let _ = writeln!(page, "**{note}**\n");
    }
    let _ = writeln!(
        page,
        "Written by `make bench` (`scripts/bench.sh`, harness in `crates/bench`) on {} \
         at commit `{}`. Every number on this page comes from that one run. \
         `docs/performance.md` explains where a request spends its time and what \
         was changed because of it.\n",
        machine.started_at, machine.commit
    );
    page.push_str("| machine | |\n|---|---|\n");
    let _ = writeln!(page, "| CPU | {} |", machine.cpu);
    let _ = writeln!(page, "| cores | {} |", machine.cores);
    let _ = writeln!(page, "| memory | {:.1} GiB |", machine.memory_gib);
    let _ = writeln!(page, "| kernel | Linux {} |", machine.kernel);
    let _ = writeln!(page, "| OS | {} |", machine.os);
    let _ = writeln!(page, "| Rust | {} |", machine.rustc);
    let _ = writeln!(page, "| PostgreSQL | {} |", machine.postgres);
    let _ = writeln!(page, "| wrk | {} |", machine.wrk);
    let _ = writeln!(page, "| anvil | {} |\n", machine.anvil);
    page.push_str(
        "The server, PostgreSQL, anvil and the load generator (wrk or pgbench) share \
         these cores, as they would on a small single-host deployment. The server is \
         the release build with `config/default.toml` and `config/development.toml`, \
         anchoring on, logging at `info`.\n\n",
    );
}

fn by_clients(runs: &[LoadResult], clients: u32) -> Option<&LoadResult> {
    runs.iter().find(|run| run.clients == clients)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

fn targets(page: &mut String, results: &Results) {
    page.push_str("## Targets\n\n| target | measured | result |\n|---|---|---|\n");
    let baseline_8 = by_clients(&results.baseline, 8);
    for mode in &results.modes {
        let create_8 = by_clients(&mode.create, 8);
        let name = &mode.mode;
        match (create_8, baseline_8) {
            (Some(create), Some(insert)) => {
                let ratio = create.throughput / insert.throughput.max(f64::EPSILON);
                let _ = writeln!(
                    page,
                    "| create ({name}) at 8 clients at least {MIN_CREATE_TO_INSERT_RATIO} × the plain insert rate | {} vs {} = {ratio:.2} × | {} |",
                    rate(create.throughput),
                    rate(insert.throughput),
                    verdict(ratio >= MIN_CREATE_TO_INSERT_RATIO)
                );
            }
            _ => not_measured(
                page,
                &format!("create ({name}) at 8 clients vs plain insert"),
            ),
        }
        match create_8 {
            Some(create) => {
                let _ = writeln!(
                    page,
                    "| create ({name}) p99 at 8 clients under {MAX_CREATE_P99_MS} ms | {:.1} ms | {} |",
                    create.p99_ms,
                    verdict(create.p99_ms < MAX_CREATE_P99_MS)
                );
            }
            None => not_measured(page, &format!("create ({name}) p99 at 8 clients")),
        }
        for clients in [32, 128] {
            match (by_clients(&mode.create, clients), create_8) {
                (Some(run), Some(create)) => {
                    let _ = writeln!(
                        page,
                        "| create ({name}) at {clients} clients no slower than at 8 | {} vs {} | {} |",
                        rate(run.throughput),
                        rate(create.throughput),
                        verdict(run.throughput >= create.throughput)
                    );
                }
                _ => not_measured(page, &format!("create ({name}) at {clients} clients")),
            }
        }
    }
    match results
        .read
        .iter()
        .max_by(|a, b| a.throughput.total_cmp(&b.throughput))
    {
        Some(best) => {
            let _ = writeln!(
                page,
                "| record read at least {} | {} at {} clients | {} |",
                rate(MIN_READ_PER_SECOND),
                rate(best.throughput),
                best.clients,
                verdict(best.throughput >= MIN_READ_PER_SECOND)
            );
        }
        None => not_measured(page, "record read"),
    }
    match peak_rss_at(results, 128) {
        Some(peak) => {
            let _ = writeln!(
                page,
                "| server RSS under {MAX_RSS_MB:.0} MB at 128 clients | {peak:.0} MB peak | {} |",
                verdict(peak < MAX_RSS_MB)
            );
        }
        None => not_measured(page, "server RSS at 128 clients"),
    }
    page.push('\n');
}

fn not_measured(page: &mut String, what: &str) {
    let _ = writeln!(page, "| {what} | not measured in this run | - |");
}

/// Highest RSS sampled during any run at `clients` clients, in MB.
fn peak_rss_at(results: &Results, clients: u32) -> Option<f64> {
    let create = results.modes.iter().flat_map(|mode| mode.create.iter());
    create
        .chain(results.read.iter())
        .chain(results.list.iter())
        .filter(|run| run.clients == clients)
        .filter_map(|run| run.server.as_ref().map(|usage| usage.peak_rss_mb))
        .reduce(f64::max)
}

fn rate(per_second: f64) -> String {
    if per_second >= 1000.0 {
        let whole = per_second.round() as u64;
        format!("{},{:03}/s", whole / 1000, whole % 1000)
    } else if per_second >= 100.0 {
        format!("{per_second:.0}/s")
    } else {
        format!("{per_second:.1}/s")
    }
}

const LOAD_TABLE_HEADER: &str = "| clients | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU ms/request | PostgreSQL CPU ms/request | server peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|\n";

fn load_row(page: &mut String, run: &LoadResult) {
    let (server_cpu, postgres_cpu, rss) = match &run.server {
        Some(usage) => {
            let per_request = |seconds: f64| seconds * 1000.0 / run.requests.max(1) as f64;
            (
                format!("{:.2}", per_request(usage.server_cpu_seconds)),
                format!("{:.2}", per_request(usage.postgres_cpu_seconds)),
                format!("{:.0}", usage.peak_rss_mb),
            )
        }
        None => ("-".into(), "-".into(), "-".into()),
    };
    let _ = writeln!(
        page,
        "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {server_cpu} | {postgres_cpu} | {rss} |",
        run.clients,
        rate(run.throughput),
        run.p50_ms,
        run.p95_ms,
        run.p99_ms,
        run.max_ms,
        run.socket_errors + run.error_responses,
    );
}

fn load_section(page: &mut String, title: &str, what: &str, runs: &[LoadResult]) {
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(page, "## {title}\n\n{what}\n");
    page.push_str(LOAD_TABLE_HEADER);
    for run in runs {
        load_row(page, run);
    }
    page.push('\n');
}

fn create_section(page: &mut String, mode: &ModeResults, baseline: &[LoadResult]) {
    let _ = writeln!(
        page,
        "## Record create, anchoring mode `{}`\n\n`POST /api/v1/medical-records` with a 1 KiB FHIR \
         Observation (`crates/bench/data/observation-f001-1k.json`) as a patient with a \
         valid access token: token check, session and user lookup, FHIR validation, \
         AES-256-GCM sealing, the record and its anchoring job in one transaction, and \
         the `record.create` audit event. The anchoring worker runs throughout.\n",
        mode.mode
    );
    page.push_str(LOAD_TABLE_HEADER);
    for run in &mode.create {
        load_row(page, run);
    }
    page.push_str("\n| clients | create / plain insert throughput |\n|---|---|\n");
    for run in &mode.create {
        if let Some(insert) = by_clients(baseline, run.clients) {
            let _ = writeln!(
                page,
                "| {} | {:.2} × |",
                run.clients,
                run.throughput / insert.throughput.max(f64::EPSILON)
            );
        }
    }
    page.push('\n');
}

fn login_section(page: &mut String, results: &Results) {
    let Some(login) = &results.login else {
        return;
    };
    let _ = writeln!(
        page,
        "## Login\n\n`POST /api/v1/auth/login/json` with the right password: one bcrypt \
         verification at cost {}, a new session and refresh token, and the `auth.login` \
         audit event.\n",
        login.bcrypt_cost
    );
    page.push_str(LOAD_TABLE_HEADER);
    load_row(page, &login.load);
    let _ = writeln!(
        page,
        "\nOne bcrypt hash at cost {} takes {:.1} ms on one core of this machine (median \
         of 5, timed by the harness with the `bcrypt` crate while the server was idle). \
         With {} cores that bounds logins at {:.1}/s; the server reached {} = {:.2} of \
         that bound.\n",
        login.bcrypt_cost,
        login.single_hash_ms,
        login.cores,
        login.hash_bound_per_second,
        rate(login.load.throughput),
        login.ratio
    );
}

fn baseline_section(page: &mut String, results: &Results) {
    page.push_str(
        "## Baseline: plain PostgreSQL inserts\n\npgbench inserts the row an API create \
         stores (the same 1 KiB content plus tag as `ciphertext`, the same key, nonce and \
         hash sizes) into `bench_plain_records`, a copy of `medical_records` with its \
         checks and indexes, one row per transaction, with prepared statements, at the \
         same client counts against the same PostgreSQL. It does no HTTP, no token check, \
         no encryption, no outbox job and no audit event.\n\n",
    );
    page.push_str("| clients | inserts/s | p50 ms | p95 ms | p99 ms | max ms | failed |\n|---|---|---|---|---|---|---|\n");
    for run in &results.baseline {
        let clients = if run.connections == run.clients {
            run.clients.to_string()
        } else {
            format!(
                "{} ({} connections: PostgreSQL's `max_connections` allows no more)",
                run.clients, run.connections
            )
        };
        let _ = writeln!(
            page,
            "| {clients} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            rate(run.throughput),
            run.p50_ms,
            run.p95_ms,
            run.p99_ms,
            run.max_ms,
            run.error_responses
        );
    }
    page.push('\n');
}

fn anchoring_section(page: &mut String, results: &Results, gas_chart: Option<&str>) {
    let settings = &results.settings;
    let _ = writeln!(
        page,
        "## Anchoring\n\nBefore the load runs, {} records were created one at a time at \
         {} per second. The delay is `anchored_at - created_at` from `medical_records`; \
         gas is the sum of `gasUsed` over the distinct anchoring transactions divided by \
         the records.\n",
        settings.anchor_records, settings.anchor_rate
    );
    page.push_str("| mode | records | transactions | gas per record | delay p50 ms | delay p99 ms | delay max ms |\n|---|---|---|---|---|---|---|\n");
    for mode in &results.modes {
        let anchoring = &mode.anchoring;
        let _ = writeln!(
            page,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            mode.mode,
            anchoring.records,
            anchoring.transactions,
            anchoring.gas_per_record,
            anchoring.delay_p50_ms,
            anchoring.delay_p99_ms,
            anchoring.delay_max_ms
        );
    }
    page.push_str("\nDuring the create runs of each mode the worker anchored:\n\n| mode | records created | anchored by the end of the runs | anchored per second |\n|---|---|---|---|\n");
    for mode in &results.modes {
        let backlog = &mode.backlog;
        let _ = writeln!(
            page,
            "| {} | {} | {} | {:.1} |",
            mode.mode, backlog.created, backlog.anchored, backlog.anchored_per_second
        );
    }
    page.push('\n');
    batch_gas_section(page, results, gas_chart);
}

fn batch_gas_section(page: &mut String, results: &Results, gas_chart: Option<&str>) {
    if results.batch_gas.is_empty() {
        return;
    }
    page.push_str(
        "Gas of one `BatchAnchorRegistry.anchorBatch` transaction per batch size, \
         from `EthersLedger::measure_batch_anchor_gas` on a separate anvil node with \
         fresh contracts. The call carries only the root and the leaf count, so its \
         gas hardly depends on the size.\n\n\
         | records per batch | gas used | gas per record |\n|---|---|---|\n",
    );
    for batch in &results.batch_gas {
        let _ = writeln!(
            page,
            "| {} | {} | {} |",
            batch.records, batch.gas_used, batch.gas_per_record
        );
    }
    if let Some(chart) = gas_chart {
        let _ = writeln!(
            page,
            "\n![Anchoring gas per record against batch size]({ASSETS}/{chart})"
        );
    }
    page.push('\n');
}

fn commands_section(page: &mut String, results: &Results) {
    let settings = &results.settings;
    page.push_str("## How this was measured\n\n```sh\nmake bench\n```\n\n");
    let _ = writeln!(
        page,
        "runs `scripts/bench.sh`, which installs wrk if it is missing, builds the server and \
         the harness in release mode, and runs `target/release/meditrustal-bench \
         --out-dir docs`. The harness creates the database `meditrustal_bench`, starts \
         anvil and the server on free 127.0.0.1 ports, registers and logs in one patient, \
         and drops the database at the end. Each load run is preceded by a {} s unmeasured \
         warm-up at the same client count; create runs last {} s, reads {} s, lists {} s, \
         the login run {} s and each pgbench run {} s. Latency percentiles are wrk's \
         (per request, closed loop) and, for pgbench, computed from its per-transaction \
         log. CPU per request is the server's and all `postgres` processes' user plus \
         system time over the run, from `/proc`, divided by the requests; RSS is sampled \
         from `/proc/PID/status` every 100 ms.\n",
        settings.warmup_secs,
        settings.create_secs,
        settings.read_secs,
        settings.list_secs,
        settings.login_secs,
        settings.baseline_secs
    );
    if !settings.server_env.is_empty() {
        page.push_str("Extra server settings of this run:\n\n");
        for (key, value) in &settings.server_env {
            let _ = writeln!(page, "- `{key}={value}`");
        }
        page.push('\n');
    }
    page.push_str("The load commands, in the order they ran (the Lua scripts are generated by `crates/bench/src/load.rs`; the bearer token is in the script):\n\n```text\n");
    let mut commands: Vec<&str> = Vec::new();
    commands.extend(results.read.iter().map(|run| run.command.as_str()));
    commands.extend(results.list.iter().map(|run| run.command.as_str()));
    commands.extend(
        results
            .login
            .iter()
            .map(|login| login.load.command.as_str()),
    );
    commands.extend(results.baseline.iter().map(|run| run.command.as_str()));
    for mode in &results.modes {
        commands.extend(mode.create.iter().map(|run| run.command.as_str()));
    }
    for command in commands {
        let _ = writeln!(page, "{command}");
    }
    page.push_str("```\n\n`docs/benchmarks/results.json` holds every number of this run.\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(rate(5234.4), "5,234/s");
        assert_eq!(rate(12_000.0), "12,000/s");
        assert_eq!(rate(250.4), "250/s");
        assert_eq!(rate(7.26), "7.3/s");
    }

    #[test]
    fn verdict_marks_misses() {
        assert_eq!(verdict(true), "met");
        assert_eq!(verdict(false), "**missed**");
    }

    fn batch(records: u32, gas_used: u64) -> BatchGasResult {
        BatchGasResult {
            records,
            gas_used,
            gas_per_record: gas_used / u64::from(records),
        }
    }

    #[test]
    fn per_record_gas_spans_the_batch_sizes() {
        let batches = [batch(1, 47_905), batch(16, 47_893), batch(1024, 47_905)];
        let lines = gas_series(&batches, Some(164_255.0));
        assert_eq!(
            lines,
            vec![
                Series {
                    name: "per_record mode (measured above)".into(),
                    points: vec![(1.0, 164_255.0), (1024.0, 164_255.0)],
                },
                Series {
                    name: "one batch transaction".into(),
                    points: vec![(1.0, 47_905.0), (16.0, 2_993.0), (1024.0, 46.0)],
                },
            ]
        );
    }

    #[test]
    fn batches_alone_without_per_record_mode() {
        let lines = gas_series(&[batch(256, 47_905)], None);
        assert_eq!(
            lines,
            vec![Series {
                name: "one batch transaction".into(),
                points: vec![(256.0, 187.0)],
            }]
        );
    }
}
