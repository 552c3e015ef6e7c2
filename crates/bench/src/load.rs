//! HTTP load with wrk: one Lua script per scenario sets the method, body
//! and headers, rotates over the paths and prints wrk's summary and
//! latency percentiles on one line that [`parse_summary`] reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::probe::{ProcessProbe, Usage};

/// Prefix of the line that the generated `done` hook prints.
const SUMMARY_PREFIX: &str = "BENCH_SUMMARY";

/// Seconds before wrk counts a request as timed out.
const REQUEST_TIMEOUT_SECS: u64 = 10;

/// One load run: `clients` connections sending requests back to back for
/// `duration`.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Short name, used for the script file: `create`, `read`, ...
    pub name: String,
    /// HTTP method.
    pub method: &'static str,
    /// Request paths, sent in turn; each wrk thread starts at another one.
    pub paths: Vec<String>,
    /// Request body, if any.
    pub body: Option<String>,
    /// Extra request headers; the bearer token goes here.
    pub headers: Vec<(String, String)>,
    /// Concurrent connections.
    pub clients: u32,
    /// Length of the measured run.
    pub duration: Duration,
}

/// Measurements of one wrk run, latencies in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadResult {
    /// Concurrent clients asked for.
    pub clients: u32,
    /// Connections actually used: fewer than `clients` only for pgbench
    /// when PostgreSQL's `max_connections` does not allow more.
    pub connections: u32,
    /// Completed requests.
    pub requests: u64,
    /// Measured wall time in seconds.
    pub seconds: f64,
    /// Completed requests per second.
    pub throughput: f64,
    /// Socket errors and timeouts.
    pub socket_errors: u64,
    /// Responses with status 400 or above.
    pub error_responses: u64,
    /// Mean latency.
    pub mean_ms: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 95th percentile latency.
    pub p95_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Maximum latency.
    pub max_ms: f64,
    /// Server memory and CPU over the run, when a server was probed.
    pub server: Option<Usage>,
    /// The wrk command line, with the script's file name only.
    pub command: String,
}

impl LoadResult {
    /// Returns whether every request got a response below 400.
    pub fn is_clean(&self) -> bool {
        self.socket_errors == 0 && self.error_responses == 0 && self.requests > 0
    }
}

/// Runs wrk for `scenario` against `base_url`, with its script written to
/// `script_dir`. While it runs, `probe` samples the server process.
pub async fn run(
    base_url: &str,
    scenario: &Scenario,
    script_dir: &Path,
    probe: Option<&ProcessProbe>,
) -> anyhow::Result<LoadResult> {
    let script = script_dir.join(format!("{}.lua", scenario.name));
    std::fs::write(&script, lua_script(scenario))
        .with_context(|| format!("could not write {}", script.display()))?;
    let args = wrk_args(scenario, &script, base_url);

    let mut command = tokio::process::Command::new("wrk");
    command.args(&args).kill_on_drop(true);
    let sampling = probe.map(ProcessProbe::start);
    let output = command
        .output()
        .await
        .context("could not run wrk; install it with `apt-get install wrk`")?;
    let usage = match (probe, sampling) {
        (Some(probe), Some(start)) => Some(probe.finish(start).await),
        _ => None,
    };
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut result = parse_summary(&stdout, scenario.clients)?;
    result.server = usage;
    result.command = display_command(&args, &script);
    Ok(result)
}

fn wrk_args(scenario: &Scenario, script: &Path, base_url: &str) -> Vec<String> {
    // wrk needs at least one connection per thread; two threads match the
    // two cores this benchmark was written for and keep wrk's own share low.
    let threads = scenario.clients.min(2);
    let seconds = scenario.duration.as_secs().max(1);
    let first_path = scenario.paths.first().map(String::as_str).unwrap_or("/");
    vec![
        format!("-t{threads}"),
        format!("-c{}", scenario.clients),
        format!("-d{seconds}s"),
        format!("--timeout={REQUEST_TIMEOUT_SECS}s"),
        "-s".to_owned(),
        script.display().to_string(),
        format!("{base_url}{first_path}"),
    ]
}

fn display_command(args: &[String], script: &Path) -> String {
    let script_text = script.display().to_string();
    let name = script
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parts: Vec<String> = args
        .iter()
        .map(|arg| {
            if *arg == script_text {
                name.clone()
            } else {
                arg.clone()
            }
        })
        .collect();
    format!("wrk {}", parts.join(" "))
}

/// Returns the Lua script for `scenario`. Each thread starts at its own
/// offset into the paths, and `done` prints one summary line.
pub fn lua_script(scenario: &Scenario) -> String {
    let mut lua = String::new();
    lua.push_str(&format!("wrk.method = {}\n", lua_string(scenario.method)));
    if let Some(body) = &scenario.body {
        lua.push_str(&format!("wrk.body = {}\n", lua_string(body)));
        lua.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    }
    for (name, value) in &scenario.headers {
        lua.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua_string(name),
            lua_string(value)
        ));
    }
    lua.push_str("local paths = {\n");
    for path in &scenario.paths {
        lua.push_str(&format!("  {},\n", lua_string(path)));
    }
    lua.push_str("}\n");
    lua.push_str(LUA_HOOKS);
    lua
}

/// Thread setup, path rotation and the summary line. Latencies are in
/// microseconds, as wrk records them.
const LUA_HOOKS: &str = r#"local thread_count = 0
function setup(thread)
  thread:set("offset", thread_count * 7919)
  thread_count = thread_count + 1
end
function request()
  offset = offset + 1
  return wrk.format(nil, paths[(offset % #paths) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_SUMMARY %d %d %d %d %d %d %d %.1f %d %d %d %d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max))
end
"#;

/// Returns `text` as a double-quoted Lua string literal. Quotes and
/// backslashes are escaped, and every byte outside printable ASCII is
/// written as a decimal escape, so any UTF-8 body survives byte for byte.
pub fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' => literal.push_str("\\\""),
            b'\\' => literal.push_str("\\\\"),
            0x20..=0x7e => literal.push(char::from(byte)),
            _ => literal.push_str(&format!("\\{byte:03}")),
        }
    }
    literal.push('"');
    literal
}

/// Parses the summary line of the generated script from wrk's output.
pub fn parse_summary(stdout: &str, clients: u32) -> anyhow::Result<LoadResult> {
    let Some(line) = stdout
        .lines()
        .find_map(|line| line.strip_prefix(SUMMARY_PREFIX))
    else {
        bail!("wrk printed no {SUMMARY_PREFIX} line; its output was:\n{stdout}");
    };
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid {SUMMARY_PREFIX} line: {line}"))?;
    let [requests, duration_us, connect, read, write, status, timeout, mean, p50, p95, p99, max] =
        fields[..]
    else {
        bail!("expected 12 numbers in the {SUMMARY_PREFIX} line, got: {line}");
    };

    let seconds = duration_us / 1e6;
    let ms = |micros: f64| micros / 1000.0;
    Ok(LoadResult {
        clients,
        connections: clients,
        requests: requests as u64,
        seconds,
        throughput: if seconds > 0.0 {
            requests / seconds
        } else {
            0.0
        },
        socket_errors: (connect + read + write + timeout) as u64,
        error_responses: status as u64,
        mean_ms: ms(mean),
        p50_ms: ms(p50),
        p95_ms: ms(p95),
        p99_ms: ms(p99),
        max_ms: ms(max),
        server: None,
        command: String::new(),
    })
}

/// Creates `parent/name` for generated scripts and logs and returns it.
pub fn scratch_dir(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario() -> Scenario {
        Scenario {
            name: "read".into(),
            method: "GET",
            paths: vec!["/a".into(), "/b".into()],
            body: None,
            headers: vec![("Authorization".into(), "Bearer t".into())],
            clients: 8,
            duration: Duration::from_secs(5),
        }
    }

    #[test]
    fn summary_line_is_parsed() {
        let stdout =
            "Running 5s test\nBENCH_SUMMARY 5000 2000000 0 1 0 2 0 1500.5 1200 3000 4000 9000\n";

        let result = parse_summary(stdout, 8).unwrap();

        assert_eq!(result.clients, 8);
        assert_eq!(result.requests, 5000);
        assert_eq!(result.seconds, 2.0);
        assert_eq!(result.throughput, 2500.0);
        assert_eq!(result.socket_errors, 1);
        assert_eq!(result.error_responses, 2);
        assert_eq!(result.mean_ms, 1.5005);
        assert_eq!(result.p50_ms, 1.2);
        assert_eq!(result.p95_ms, 3.0);
        assert_eq!(result.p99_ms, 4.0);
        assert_eq!(result.max_ms, 9.0);
        assert!(!result.is_clean());
    }

    #[test]
    fn missing_summary_line_is_an_error() {
        let error = parse_summary("unable to connect\n", 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "wrk printed no BENCH_SUMMARY line; its output was:\nunable to connect\n"
        );
    }

    #[test]
    fn short_summary_line_is_an_error() {
        let error = parse_summary("BENCH_SUMMARY 1 2 3\n", 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "expected 12 numbers in the BENCH_SUMMARY line, got:  1 2 3"
        );
    }

    #[test]
    fn lua_string_escapes_quotes_and_non_ascii() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(lua_string("é\n"), r#""\195\169\010""#);
    }

    #[test]
    fn script_sets_headers_and_paths() {
        let script = lua_script(&scenario());

        assert!(script.starts_with(
            "wrk.method = \"GET\"\nwrk.headers[\"Authorization\"] = \"Bearer t\"\nlocal paths = {\n  \"/a\",\n  \"/b\",\n}\n"
        ));
        assert!(!script.contains("wrk.body"));
    }

    #[test]
    fn script_with_body_sends_json() {
        let mut scenario = scenario();
        scenario.method = "POST";
        scenario.body = Some("{\"x\":1}".into());

        let script = lua_script(&scenario);

        assert!(script.contains("wrk.body = \"{\\\"x\\\":1}\"\n"));
        assert!(script.contains("wrk.headers[\"Content-Type\"] = \"application/json\"\n"));
    }

    #[test]
    fn command_shows_script_name_only() {
        let script = Path::new("/tmp/x/read.lua");
        let args = wrk_args(&scenario(), script, "http://127.0.0.1:9");

        assert_eq!(
            display_command(&args, script),
            "wrk -t2 -c8 -d5s --timeout=10s -s read.lua http://127.0.0.1:9/a"
        );
    }

    #[test]
    fn one_client_uses_one_thread() {
        let mut scenario = scenario();
        scenario.clients = 1;
        let args = wrk_args(&scenario, Path::new("s.lua"), "http://h");
        assert_eq!(args[0], "-t1");
        assert_eq!(args[1], "-c1");
    }
}
