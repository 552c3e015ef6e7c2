//! `meditrustal backup DIR` and `meditrustal restore DIR`.
//!
//! A backup is a folder with the database in `pg_dump`'s custom format,
//! the deployment manifest (chain id, contract addresses, deploy block:
//! what anchor checks need), and `backup.json`, which lists every file with
//! its size and SHA-256. No secret is in it: the master, token signing and
//! registrar keys are backed up separately, because the dump is useless
//! without the master keys and the keys are useless without the dump.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use meditrustal_adapter_ethers::{DeploymentManifest, EthersLedger};
use meditrustal_adapter_postgres::{public_table_count, wrapped_key_counts, PgRecordStore, Pool};
use meditrustal_crypto::{KeyProvider, MasterKeyring};
use meditrustal_records::{anchor_hash, record_aad, verify_record};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::app;
use crate::config::Settings;
use crate::progress::Progress;

/// Name of the backup's own manifest inside the backup folder.
pub const MANIFEST_FILE: &str = "backup.json";
const DUMP_FILE: &str = "database.dump";
const DEPLOYMENT_FILE: &str = "deployment.json";
const FORMAT: u32 = 1;

/// `backup.json`: what the backup holds and the checksum of each file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Layout version of the backup folder.
    pub format: u32,
    /// When the dump finished.
    pub created_at: DateTime<Utc>,
    /// Version of the `meditrustal` binary that wrote it.
    pub meditrustal_version: String,
    /// Ids of the master keys that wrap data keys in the dump. The keys
    /// themselves are not in the backup.
    pub master_key_ids: Vec<String>,
    /// Chain of the anchors, copied from the deployment manifest.
    pub chain_id: u64,
    /// Block of the first deployment transaction.
    pub deploy_block: u64,
    /// Every file of the backup but this manifest.
    pub files: Vec<BackupFile>,
}

/// One file of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// File name inside the backup folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
}

/// Writes a backup of the configured database and deployment manifest to
/// `dir`, which must be missing or empty. Errors: `dir` is not empty, the
/// manifest does not load, `pg_dump` fails or is not installed.
pub async fn backup(
    settings: &Settings,
    dir: &Path,
    progress: &mut Progress,
) -> anyhow::Result<BackupManifest> {
    prepare_empty_dir(dir)?;
    let manifest_path = settings.manifest_path();
    let deployment = DeploymentManifest::load(&manifest_path).with_context(|| {
        format!(
            "cannot read the deployment manifest {}; a backup needs it to verify anchors",
            manifest_path.display()
        )
    })?;

    run_pg_tool(
        "pg_dump",
        &[
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            &format!("--file={}", dir.join(DUMP_FILE).display()),
        ],
        &settings.database.url,
    )?;
    progress.advance(1);

    fs::copy(&manifest_path, dir.join(DEPLOYMENT_FILE))
        .with_context(|| format!("copying {}", manifest_path.display()))?;
    progress.advance(1);

    let pool = app::pool(settings)?;
    let mut master_key_ids: Vec<String> = wrapped_key_counts(&pool)
        .await?
        .into_iter()
        .map(|count| count.key_id)
        .collect();
    pool.close();
    master_key_ids.sort();
    master_key_ids.dedup();

    let manifest = BackupManifest {
        format: FORMAT,
        created_at: Utc::now(),
        meditrustal_version: env!("CARGO_PKG_VERSION").to_owned(),
        master_key_ids,
        chain_id: deployment.chain_id,
        deploy_block: deployment.deploy_block,
        files: vec![
            describe_file(dir, DUMP_FILE)?,
            describe_file(dir, DEPLOYMENT_FILE)?,
        ],
    };
    fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    progress.advance(1);
    Ok(manifest)
}

/// Number of steps [`backup`] reports to its progress.
pub const BACKUP_STEPS: u64 = 3;

fn prepare_empty_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "backup folder {} is not empty; choose a new folder",
                dir.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn describe_file(dir: &Path, name: &str) -> anyhow::Result<BackupFile> {
    let (bytes, sha256) = file_digest(&dir.join(name))?;
    Ok(BackupFile {
        name: name.to_owned(),
        bytes,
        sha256,
    })
}

fn file_digest(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        context.update(buffer.get(..read).unwrap_or_default());
        bytes += read as u64;
    }
    Ok((bytes, hex::encode(context.finish().as_ref())))
}

/// Runs a PostgreSQL client tool against `url`. The password, if the URL
/// has one, goes to the tool in `PGPASSWORD` rather than on its command
/// line, where other local users could read it.
fn run_pg_tool(tool: &str, args: &[&str], url: &SecretString) -> anyhow::Result<()> {
    let (dbname, password) = split_password(url.expose_secret())?;
    let mut command = Command::new(tool);
    command.args(args).arg(format!("--dbname={dbname}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password.expose_secret());
    }
    let output = command.output().with_context(|| {
        format!("cannot run {tool}; install Debian's postgresql-client package")
    })?;
    if !output.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Splits a `postgres://` URL into the URL without its password and the
/// percent-decoded password.
fn split_password(url: &str) -> anyhow::Result<(String, Option<SecretString>)> {
    let invalid = || anyhow::anyhow!("database.url is not a postgres:// URL");
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Ok((url.to_owned(), None));
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return Ok((url.to_owned(), None));
    };
    let decoded = percent_decode(password).ok_or_else(invalid)?;
    Ok((
        format!("{scheme}://{user}@{host}{path}"),
        Some(SecretString::from(decoded)),
    ))
}

fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex_digits = tail.get(..2)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex_digits).ok()?, 16).ok()?;
            bytes.push(value);
            rest = tail.get(2..)?;
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// How [`restore`] treats its target.
#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreOptions {
    /// Drop what the target database and manifest path hold instead of
    /// refusing.
    pub replace: bool,
    /// Also check every anchored record against the chain at
    /// `chain.rpc_url`.
    pub check_chain: bool,
}

/// What [`restore`] found when it verified the restored records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records whose content decrypted to their data hash (and, with the
    /// chain check, whose anchor matched the chain).
    pub verified: u64,
    /// Records not anchored yet; their content was checked, the chain not.
    pub pending: u64,
    /// Ids of the records that failed, with the first failed check.
    pub failed: Vec<String>,
}

impl RestoreReport {
    /// Describes the restore in one line, as `restore` prints it.
    pub fn summary(&self, check_chain: bool) -> String {
        let against = if check_chain {
            "content and chain"
        } else {
            "content"
        };
        format!(
            "restore: {} records verified ({against}), {} not anchored yet, {} failed",
            self.verified,
            self.pending,
            self.failed.len()
        )
    }
}

/// Restores the backup in `dir` into the configured database and manifest
/// path, then verifies every record. Errors: a file does not match its
/// checksum, the database is not empty (unless `replace`), the manifest
/// path holds another deployment (unless `replace`), `pg_restore` fails,
/// a configured master key does not match the restored database.
pub async fn restore(
    settings: &Settings,
    keyring: Arc<MasterKeyring>,
    dir: &Path,
    options: RestoreOptions,
    progress: &mut Progress,
) -> anyhow::Result<RestoreReport> {
    let manifest = check_backup(dir)?;
    let pool = app::pool(settings)?;
    let tables = public_table_count(&pool).await?;
    if tables > 0 && !options.replace {
        bail!(
            "the target database is not empty ({tables} tables); restore into an empty \
             database, or pass --replace to drop its contents first"
        );
    }
    let manifest_path = settings.manifest_path();
    restore_deployment(&dir.join(DEPLOYMENT_FILE), &manifest_path, options.replace)?;

    let dump = dir.join(DUMP_FILE).display().to_string();
    let mut args = vec!["--no-owner", "--no-privileges", "--exit-on-error"];
    if options.replace {
        args.extend(["--clean", "--if-exists"]);
    }
    args.push(&dump);
    run_pg_tool("pg_restore", &args, &settings.database.url)?;
    tracing::info!(backup.created_at = %manifest.created_at, "database restored");

    app::check_master_keys(&pool, &keyring).await?;
    let ledger = if options.check_chain {
        let chain = app::ethers_config_with_key(settings, crate::audit::read_only_key()?);
        let deployment = app::checked_manifest(settings, &chain).await?;
        Some(EthersLedger::connect(&chain, deployment).context("invalid chain settings")?)
    } else {
        None
    };
    let report = verify_records(&pool, keyring.as_ref(), ledger.as_ref(), progress).await;
    pool.close();
    report
}

/// Reads `backup.json` and checks every file's size and SHA-256.
pub fn check_backup(dir: &Path) -> anyhow::Result<BackupManifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}; is this a backup folder?", path.display()))?;
    let manifest: BackupManifest =
        serde_json::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} has format {}, but this binary reads format {FORMAT}",
            path.display(),
            manifest.format
        );
    }
    for name in [DUMP_FILE, DEPLOYMENT_FILE] {
        if !manifest.files.iter().any(|file| file.name == name) {
            bail!(
                "{} does not list {name}; the backup is incomplete",
                path.display()
            );
        }
    }
    for file in &manifest.files {
        let (bytes, sha256) = file_digest(&dir.join(&file.name))?;
        if bytes != file.bytes || sha256 != file.sha256 {
            bail!(
                "backup file {} does not match {MANIFEST_FILE}: expected {} bytes with SHA-256 \
                 {}, found {bytes} bytes with SHA-256 {sha256}; the backup is damaged",
                file.name,
                file.bytes,
                file.sha256
            );
        }
    }
    Ok(manifest)
}

fn restore_deployment(source: &Path, target: &PathBuf, replace: bool) -> anyhow::Result<()> {
    let backed_up = fs::read(source)?;
    if let Ok(existing) = fs::read(target) {
        if existing == backed_up {
            return Ok(());
        }
        if !replace {
            bail!(
                "{} holds another deployment manifest; move it away, or pass --replace",
                target.display()
            );
        }
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(target, backed_up).with_context(|| format!("writing {}", target.display()))
}

const PAGE: u32 = 200;

async fn verify_records(
    pool: &Pool,
    keys: &dyn KeyProvider,
    ledger: Option<&EthersLedger>,
    progress: &mut Progress,
) -> anyhow::Result<RestoreReport> {
    let total = wrapped_key_counts(pool)
        .await?
        .iter()
        .filter(|count| count.table == meditrustal_adapter_postgres::SealedTable::MedicalRecords)
        .map(|count| count.count)
        .sum();
    progress.set_total(total);

    let store = PgRecordStore::new(pool.clone());
    let mut report = RestoreReport::default();
    let mut after = None;
    loop {
        let page = store.stored_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.id);
        for stored in &page {
            check_one(stored, keys, ledger, &mut report).await;
        }
        progress.advance(page.len() as u64);
    }
    Ok(report)
}

async fn check_one(
    stored: &meditrustal_records::StoredRecord,
    keys: &dyn KeyProvider,
    ledger: Option<&EthersLedger>,
    report: &mut RestoreReport,
) {
    let record = &stored.record;
    let anchored = record.anchor.status == meditrustal_ledger::AnchorStatus::Anchored;
    let failure = match ledger.filter(|_| anchored) {
        Some(ledger) => verify_record(stored, keys, ledger)
            .await
            .checks
            .into_iter()
            .find(|check| check.outcome != meditrustal_records::CheckOutcome::Passed)
            .map(|check| format!("{}: {}", check.name, check.reason)),
        None => content_failure(stored, keys),
    };
    match failure {
        Some(reason) => report.failed.push(format!("{}: {reason}", record.id.0)),
        None if anchored => report.verified += 1,
        None => report.pending += 1,
    }
}

fn content_failure(
    stored: &meditrustal_records::StoredRecord,
    keys: &dyn KeyProvider,
) -> Option<String> {
    let record = &stored.record;
    let plaintext = match meditrustal_crypto::open(keys, &stored.sealed, &record_aad(record)) {
        Ok(plaintext) => plaintext,
        Err(error) => return Some(format!("ciphertext: {error}")),
    };
    if meditrustal_crypto::sha256(&plaintext) != record.data_hash {
        return Some("data_hash: SHA-256 of the decrypted content differs".to_owned());
    }
    if anchor_hash(record) != record.anchor_hash {
        return Some("anchor_hash: the record's fields do not hash to its anchor hash".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_password_moves_decoded_password_out_of_url() {
        let (url, password) =
            split_password("postgres://app:p%40ss%3Aword@db.internal:5432/meditrustal").unwrap();

        assert_eq!(url, "postgres://app@db.internal:5432/meditrustal");
        assert_eq!(password.unwrap().expose_secret(), "p@ss:word");
    }

    #[test]
    fn split_password_keeps_url_without_password() {
        let (url, password) = split_password("postgres://postgres@127.0.0.1:5432/db").unwrap();

        assert_eq!(url, "postgres://postgres@127.0.0.1:5432/db");
        assert!(password.is_none());
    }
}
