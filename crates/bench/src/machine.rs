//! The machine and the toolchain a run was made on.

use serde::Serialize;

/// Facts about the machine, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs this process may use.
    pub cores: usize,
    /// Total memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// Operating system name.
    pub os: String,
    /// `rustc --version`.
    pub rustc: String,
    /// PostgreSQL server version.
    pub postgres: String,
    /// `wrk --version`, first line.
    pub wrk: String,
    /// `anvil --version`, first line.
    pub anvil: String,
    /// Commit of the code under test, with `-dirty` for local changes.
    pub commit: String,
    /// Start of the run, UTC.
    pub started_at: String,
}

/// Collects the facts; a fact that cannot be read is `unknown`.
pub async fn describe(admin_url: &str, anvil_bin: &str) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let postgres = crate::db::query(admin_url, "SHOW server_version")
        .await
        .ok()
        .and_then(|rows| rows.into_iter().next());
    let commit = command_line("git", &["rev-parse", "--short=12", "HEAD"]).await;
    let dirty = command_line("git", &["status", "--porcelain", "--untracked-files=no"]).await;

    Machine {
        cpu: field(&cpuinfo, "model name").unwrap_or_else(unknown),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: field(&meminfo, "MemTotal")
            .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| unknown()),
        os: os_name(&os_release).unwrap_or_else(unknown),
        rustc: command_line("rustc", &["--version"])
            .await
            .unwrap_or_else(unknown),
        postgres: postgres.unwrap_or_else(unknown),
        wrk: command_line("wrk", &["--version"])
            .await
            .unwrap_or_else(unknown),
        anvil: command_line(anvil_bin, &["--version"])
            .await
            .unwrap_or_else(unknown),
        commit: match (commit, dirty) {
            (Some(commit), Some(changes)) if !changes.is_empty() => format!("{commit}-dirty"),
            (Some(commit), _) => commit,
            (None, _) => unknown(),
        },
        started_at: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
            .await
            .unwrap_or_else(unknown),
    }
}

fn unknown() -> String {
    "unknown".to_owned()
}

/// Returns the value of the first `key: value` line of `text`.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

fn os_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|value| value.trim_matches('"').to_owned())
}

/// Runs a command and returns the first line it printed, if it succeeded.
/// wrk prints its version and exits 1, so its output counts either way.
async fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .ok()?;
    if !output.status.success() && program != "wrk" {
        return None;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_field_is_read() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n";
        assert_eq!(field(cpuinfo, "model name").as_deref(), Some("AMD EPYC"));
        assert_eq!(field(cpuinfo, "cache size"), None);
    }

    #[test]
    fn os_name_is_unquoted() {
        let release = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
        assert_eq!(
            os_name(release).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
