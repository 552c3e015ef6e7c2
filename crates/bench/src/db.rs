//! SQL through `psql`, the client that pgbench already requires.

use anyhow::{bail, Context};

/// Runs `sql` against `url` and returns the output rows, one string per
/// row, columns separated by `|`.
pub async fn query(url: &str, sql: &str) -> anyhow::Result<Vec<String>> {
    let output = tokio::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .output()
        .await
        .context("could not run psql; install postgresql-client")?;
    if !output.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs `sql` and parses its single value.
pub async fn scalar<T: std::str::FromStr>(url: &str, sql: &str) -> anyhow::Result<T> {
    let rows = query(url, sql).await?;
    let Some(first) = rows.first() else {
        bail!("query returned no row: {sql}");
    };
    first
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("query returned {first:?}, not a number: {sql}"))
}

/// Returns the URL of database `name` on the server of `admin_url`, which
/// must end in `/postgres` or another database name.
pub fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => format!("{admin_url}/{name}"),
    }
}

/// Drops database `name` if it exists and creates it empty.
pub async fn recreate_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    query(
        admin_url,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await?;
    query(admin_url, &format!("CREATE DATABASE \"{name}\"")).await?;
    Ok(())
}

/// Drops database `name` if it exists.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    query(
        admin_url,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_replaces_the_last_segment() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "bench"),
            "postgres://postgres@127.0.0.1:5432/bench"
        );
    }
}
