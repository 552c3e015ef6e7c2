//! Memory and CPU of the server and of PostgreSQL during a load run, read
//! from `/proc`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How often the server's resident set size is sampled.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Clock ticks per second of `/proc/PID/stat` times. Linux fixes USER_HZ
/// at 100 on every architecture this benchmark runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Resource use over one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Usage {
    /// Highest resident set size sampled during the run, in MB (10^6
    /// bytes).
    pub peak_rss_mb: f64,
    /// The kernel's high-water mark of the resident set (VmHWM) at the end
    /// of the run, in MB: the highest since the server started.
    pub hwm_mb: f64,
    /// CPU seconds the server used during the run.
    pub server_cpu_seconds: f64,
    /// CPU seconds all `postgres` processes used during the run.
    pub postgres_cpu_seconds: f64,
    /// Wall time of the run in seconds.
    pub wall_seconds: f64,
}

/// Samples one server process.
#[derive(Clone, Debug)]
pub struct ProcessProbe {
    pid: u32,
}

/// A sampling in progress, from [`ProcessProbe::start`].
pub struct Sampling {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
    server_ticks: u64,
    postgres_ticks: u64,
    started: Instant,
}

impl ProcessProbe {
    /// Probes process `pid`.
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// Starts sampling the resident set size and notes the CPU times.
    pub fn start(&self) -> Sampling {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = self.pid;
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut peak_kib = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = status_kib(pid, "VmRSS:") {
                    peak_kib = peak_kib.max(rss);
                }
                tokio::time::sleep(SAMPLE_INTERVAL).await;
            }
            peak_kib
        });
        Sampling {
            stop,
            task,
            server_ticks: cpu_ticks(self.pid).unwrap_or(0),
            postgres_ticks: postgres_ticks(),
            started: Instant::now(),
        }
    }

    /// Stops `sampling` and returns what it saw.
    pub async fn finish(&self, sampling: Sampling) -> Usage {
        let wall_seconds = sampling.started.elapsed().as_secs_f64();
        let server_ticks = cpu_ticks(self.pid).unwrap_or(0);
        let postgres_ticks = postgres_ticks();
        sampling.stop.store(true, Ordering::Relaxed);
        let peak_kib = sampling.task.await.unwrap_or(0);
        let hwm_kib = status_kib(self.pid, "VmHWM:").unwrap_or(0);

        let seconds = |ticks: u64| ticks as f64 / TICKS_PER_SECOND;
        Usage {
            peak_rss_mb: megabytes(peak_kib.max(status_kib(self.pid, "VmRSS:").unwrap_or(0))),
            hwm_mb: megabytes(hwm_kib),
            server_cpu_seconds: seconds(server_ticks.saturating_sub(sampling.server_ticks)),
            postgres_cpu_seconds: seconds(postgres_ticks.saturating_sub(sampling.postgres_ticks)),
            wall_seconds,
        }
    }
}

/// Converts KiB, which `/proc` calls kB, to MB.
fn megabytes(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// Reads a `kB` line such as `VmRSS:` from `/proc/PID/status`.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// User plus system CPU ticks of `pid`.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_ticks(&stat).map(|(_, ticks)| ticks)
}

/// Returns the command name and user plus system ticks from a
/// `/proc/PID/stat` line. The name is in parentheses and may contain
/// spaces, so fields are counted from the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// CPU ticks of every process named `postgres` (server and backends).
/// Backends that exit between two readings drop out of the sum, so the
/// difference is a lower bound.
fn postgres_ticks() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| parse_stat_ticks(&stat))
        .filter(|(name, _)| name == "postgres")
        .map(|(_, ticks)| ticks)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_is_read_in_kib() {
        let status = "Name:\tmeditrustal\nVmHWM:\t  123456 kB\nVmRSS:\t   98765 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(98765));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(123456));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn kib_convert_to_megabytes() {
        assert_eq!(megabytes(292_969), 300.000256);
    }

    #[test]
    fn stat_ticks_add_user_and_system_time() {
        let stat = "4242 (postgres: bench) S 1 4242 4242 0 -1 4194560 500 0 0 0 700 35 0 0 20 0 1 0 100 0 0";
        assert_eq!(
            parse_stat_ticks(stat),
            Some(("postgres: bench".into(), 735))
        );
    }

    #[test]
    fn own_process_has_cpu_ticks_and_memory() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_some());
        assert!(status_kib(pid, "VmRSS:").is_some_and(|kib| kib > 0));
    }
}
