//! The baseline: plain PostgreSQL inserts of the same row the API stores
//! for a record, one per transaction, driven by pgbench at the same client
//! counts.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::api::OBSERVATION;
use crate::db;
use crate::load::LoadResult;
use crate::stats;

/// The table the baseline inserts into: a copy of `medical_records` with
/// its checks and indexes, without the foreign key to `users`.
const TABLE_SQL: &str = "DROP TABLE IF EXISTS bench_plain_records; \
    CREATE TABLE bench_plain_records (LIKE medical_records INCLUDING ALL)";

/// Creates the baseline table in `database_url`, which must be migrated.
pub async fn prepare(database_url: &str) -> anyhow::Result<()> {
    db::query(database_url, TABLE_SQL).await?;
    Ok(())
}

/// Returns the pgbench script: one INSERT of a row as large as an API
/// record of [`OBSERVATION`]: the content plus a 16-byte tag as
/// ciphertext, a 60-byte wrapped key, a 12-byte nonce, two hashes and the
/// anchoring salt. The anchor hash and the salt are unique in
/// `medical_records`, so each row gets 32 random bytes in both.
pub fn insert_script() -> String {
    let mut ciphertext = hex(OBSERVATION.as_bytes());
    ciphertext.push_str(&"00".repeat(16));
    format!(
        "INSERT INTO bench_plain_records (id, patient_id, record_type, metadata_json, \
         data_hash, anchor_hash, anchor_salt, key_id, wrapped_key, data_nonce, ciphertext, \
         created_at, updated_at) VALUES (gen_random_uuid(), \
         '00000000-0000-4000-8000-000000000001', 'LAB_RESULT', '{{\"source\":\"bench\"}}', \
         '\\x{hash}', uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), \
         uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'mk1', \
         '\\x{wrapped}', '\\x{nonce}', '\\x{ciphertext}', now(), now());\n",
        hash = "ab".repeat(32),
        wrapped = "cd".repeat(60),
        nonce = "ef".repeat(12),
    )
}

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Runs pgbench with `clients` connections for `duration` and reads the
/// latencies from its per-transaction log.
pub async fn run(
    database_url: &str,
    clients: u32,
    duration: Duration,
    work_dir: &Path,
) -> anyhow::Result<LoadResult> {
    let script = work_dir.join("insert.sql");
    std::fs::write(&script, insert_script())
        .with_context(|| format!("could not write {}", script.display()))?;
    let log_dir = work_dir.join(format!("pgbench-c{clients}"));
    std::fs::create_dir_all(&log_dir)?;

    let connections = connection_budget(database_url, clients).await?;
    let threads = connections.min(2);
    let seconds = duration.as_secs().max(1);
    let args = [
        "-n".to_owned(),
        "-M".to_owned(),
        "prepared".to_owned(),
        format!("-c{connections}"),
        format!("-j{threads}"),
        format!("-T{seconds}"),
        "-f".to_owned(),
        script.display().to_string(),
        "-l".to_owned(),
        format!("--log-prefix={}", log_dir.join("pgbench").display()),
        database_url.to_owned(),
    ];
    let output = tokio::process::Command::new("pgbench")
        .args(&args)
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .output()
        .await
        .context("could not run pgbench; install postgresql-contrib")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    let tps = parse_tps(&stdout)?;
    let mut latencies_us = Vec::new();
    for entry in std::fs::read_dir(&log_dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        latencies_us.extend(parse_log(&text)?);
    }
    stats::sort(&mut latencies_us);
    let pick = |percent| stats::percentile(&latencies_us, percent).unwrap_or(0.0) / 1000.0;
    let mean_ms = latencies_us.iter().sum::<f64>() / latencies_us.len().max(1) as f64 / 1000.0;

    Ok(LoadResult {
        clients,
        connections,
        requests: latencies_us.len() as u64,
        seconds: seconds as f64,
        throughput: tps,
        socket_errors: 0,
        error_responses: parse_failed(&stdout),
        mean_ms,
        p50_ms: pick(50.0),
        p95_ms: pick(95.0),
        p99_ms: pick(99.0),
        max_ms: latencies_us.last().copied().unwrap_or(0.0) / 1000.0,
        server: None,
        command: format!(
            "pgbench -n -M prepared -c{connections} -j{threads} -T{seconds} -f insert.sql -l {database_url}"
        ),
    })
}

/// Returns `clients`, or fewer when the server's `max_connections` leaves
/// fewer free: 10 stay free for the API server's pool and psql.
async fn connection_budget(database_url: &str, clients: u32) -> anyhow::Result<u32> {
    let free: i64 = db::scalar(
        database_url,
        "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity",
    )
    .await?;
    let budget = u32::try_from(free - 10).unwrap_or(1).max(1);
    Ok(clients.min(budget))
}

/// Reads `tps = N (without initial connection time)` from pgbench's
/// report.
pub fn parse_tps(report: &str) -> anyhow::Result<f64> {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("tps = "))
        .find(|rest| rest.contains("without initial connection time"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .with_context(|| format!("pgbench reported no tps:\n{report}"))
}

/// Reads `number of failed transactions: N` (PostgreSQL 15 and later);
/// zero when absent.
fn parse_failed(report: &str) -> u64 {
    report
        .lines()
        .find_map(|line| line.strip_prefix("number of failed transactions: "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

/// Reads the latencies, in microseconds, from a pgbench transaction log:
/// `client transaction latency_us script epoch_s epoch_us`.
pub fn parse_log(log: &str) -> anyhow::Result<Vec<f64>> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split_whitespace()
                .nth(2)
                .and_then(|field| field.parse::<f64>().ok())
                .with_context(|| format!("invalid pgbench log line: {line}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tps_is_read_without_connection_time() {
        let report = "latency average = 2.5 ms\ninitial connection time = 12.1 ms\ntps = 3187.554920 (without initial connection time)\n";
        assert_eq!(parse_tps(report).unwrap(), 3187.55492);
    }

    #[test]
    fn failed_transactions_are_counted() {
        assert_eq!(parse_failed("number of failed transactions: 3 (0.1%)\n"), 3);
        assert_eq!(parse_failed("tps = 1\n"), 0);
    }

    #[test]
    fn log_latencies_are_the_third_field() {
        let log = "0 0 1520 0 1700000000 123456\n1 0 2980 0 1700000000 124000\n";
        assert_eq!(parse_log(log).unwrap(), vec![1520.0, 2980.0]);
    }

    #[test]
    fn invalid_log_line_is_an_error() {
        assert_eq!(
            parse_log("0 0\n").unwrap_err().to_string(),
            "invalid pgbench log line: 0 0"
        );
    }

    #[test]
    fn insert_carries_content_and_tag() {
        let script = insert_script();
        let ciphertext_hex = OBSERVATION.len() * 2 + 32;
        assert!(script.starts_with("INSERT INTO bench_plain_records"));
        assert!(script.contains(&format!("'\\x{}", hex(&OBSERVATION.as_bytes()[..8]))));
        let longest = script
            .split('\'')
            .map(|part| part.trim_start_matches("\\x").len())
            .max();
        assert_eq!(longest, Some(ciphertext_hex));
    }
}
