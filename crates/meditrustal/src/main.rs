//! `meditrustal`: serve the API, migrate the database, deploy the contracts,
//! verify the audit chain.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use meditrustal::app;
use meditrustal::config::Settings;
use meditrustal::keys;
use meditrustal::operator::{self, NewAdmin};
use meditrustal::progress::Progress;
use meditrustal::{backup, rotation};
use meditrustal_adapter_ethers::{
    check_deployment, deploy_contracts, deploy_missing_contracts, DeploymentError,
    DeploymentManifest,
};

#[derive(Parser)]
#[command(
    name = "meditrustal",
    version,
    about = "Private, tamper-evident medical records"
)]
struct Cli {
    /// Directory with default.toml and the environment files.
    #[arg(long, env = "MEDITRUSTAL_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    /// Environment file to layer over default.toml: development, production, ...
    #[arg(long = "env", env = "MEDITRUSTAL_ENV", default_value = "development")]
    environment: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and run the anchoring worker.
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Rotate and retire master keys, print token key material.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Deploy the contracts and write the deployment manifest.
    DeployContracts {
        /// Keep the current deployment when its manifest matches the chain.
        #[arg(long)]
        if_needed: bool,
        /// Give the registrar test ether first (local anvil nodes only).
        #[arg(long)]
        fund_registrar: bool,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check a record's anchor receipt (from GET
    /// /medical-records/{id}/proof) against a chain node, without our
    /// database or configuration; exit 1 if any check fails.
    VerifyReceipt {
        /// The receipt JSON file.
        file: PathBuf,
        /// JSON-RPC URL of a node of the receipt's chain.
        #[arg(long = "rpc")]
        rpc_url: String,
        /// The record content (`raw_data`), to check it against the
        /// receipt's data hash.
        #[arg(long)]
        content: Option<PathBuf>,
    },
    /// Create or promote admin accounts; the API never does.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write the database (pg_dump) and the deployment manifest to DIR,
    /// with a checksum manifest. Secrets are not included.
    Backup {
        /// New or empty folder for the backup.
        dir: PathBuf,
    },
    /// Restore a backup written by `backup` into the configured database
    /// and manifest path, then verify every record.
    Restore {
        /// Folder of the backup.
        dir: PathBuf,
        /// Drop the contents of a non-empty target database, and overwrite
        /// another deployment manifest, instead of refusing.
        #[arg(long)]
        replace: bool,
        /// Also check each anchored record against the chain at
        /// chain.rpc_url.
        #[arg(long)]
        check_chain: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every audit event from the first against the hash chain and
    /// the heads anchored on-chain; exit 1 naming the first broken event.
    Verify,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account. The password is read from the environment
    /// variable MEDITRUSTAL_ADMIN_PASSWORD, or else from the first line of
    /// standard input.
    Create {
        /// Username: 3 to 32 ASCII letters, digits, '.', '_' or '-'.
        #[arg(long)]
        username: String,
        /// Email address.
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
    },
    /// Make an existing user an admin.
    Promote {
        /// The user's username, in any letter case.
        username: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print the public key of the current token signing key as
    /// kid:<64 hex digits>, the form auth.previous_public_keys takes.
    TokenPublicKey,
    /// Re-wrap every data key under the current master key
    /// (crypto.master_key_id); earlier keys must be in
    /// crypto.previous_master_keys. Safe to interrupt and run again.
    Rotate {
        /// Data keys re-wrapped per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: u32,
        /// Stop after this many data keys (a later run continues).
        #[arg(long)]
        max_keys: Option<u64>,
    },
    /// Mark a master key retired once no data key is wrapped under it.
    Retire {
        /// Id of the master key to retire.
        key_id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::VerifyReceipt {
        file,
        rpc_url,
        content,
    } = &cli.command
    {
        return verify_receipt(file, rpc_url, content.as_deref());
    }
    let settings = match Settings::load(&cli.config_dir, &cli.environment) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!(
                "error: invalid configuration in {}: {error}",
                cli.config_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    meditrustal::telemetry::init(&settings.log);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let keys = keys::resolve(&settings)?;
            app::start(&settings, keys).await?.serve().await
        }
        Command::Migrate => {
            let applied = meditrustal_adapter_postgres::run_migrations(&settings.database.url)
                .await
                .context("migration failed")?;
            tracing::info!(applied = applied.len(), versions = ?applied, "database migrated");
            Ok(())
        }
        Command::Keys { command } => keys_command(&settings, command).await,
        Command::DeployContracts {
            if_needed,
            fund_registrar,
        } => deploy(&settings, if_needed, fund_registrar).await,
        Command::Audit {
            command: AuditCommand::Verify,
        } => verify_audit(&settings).await,
        Command::Admin { command } => admin(&settings, command).await,
        Command::Backup { dir } => {
            let mut progress = Progress::start("backup", "steps", backup::BACKUP_STEPS);
            let manifest = backup::backup(&settings, &dir, &mut progress).await?;
            progress.finish();
            println!(
                "backup: wrote {} files to {}; back up the master keys ({}) separately",
                manifest.files.len() + 1,
                dir.display(),
                manifest.master_key_ids.join(", ")
            );
            Ok(())
        }
        Command::Restore {
            dir,
            replace,
            check_chain,
        } => {
            let keyring = Arc::new(keys::resolve_master(&settings)?);
            let options = backup::RestoreOptions {
                replace,
                check_chain,
            };
            let mut progress = Progress::start("restore", "records", 0);
            let report = backup::restore(&settings, keyring, &dir, options, &mut progress).await?;
            progress.finish();
            println!("{}", report.summary(check_chain));
            if let Some(first) = report.failed.first() {
                anyhow::bail!(
                    "{} records failed verification; the first: {first}",
                    report.failed.len()
                );
            }
            Ok(())
        }
        Command::VerifyReceipt { .. } => {
            anyhow::bail!("verify-receipt runs without configuration")
        }
    }
}

/// Runs `verify-receipt`: prints each check, exits 1 if any failed and 2
/// if the receipt could not be read.
fn verify_receipt(
    file: &std::path::Path,
    rpc_url: &str,
    content: Option<&std::path::Path>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let checks =
        match runtime.block_on(meditrustal::receipt::verify_receipt(file, rpc_url, content)) {
            Ok(checks) => checks,
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::from(2);
            }
        };
    for check in &checks {
        println!("{}", meditrustal::receipt::describe(check));
    }
    let failed = checks.iter().filter(|check| !check.passed).count();
    if failed == 0 {
        println!("receipt verified: {} checks passed", checks.len());
        ExitCode::SUCCESS
    } else {
        println!(
            "receipt NOT verified: {failed} of {} checks failed",
            checks.len()
        );
        ExitCode::FAILURE
    }
}

async fn keys_command(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::TokenPublicKey => {
            let keys = keys::resolve(settings)?;
            println!("{}", app::token_public_key(settings, &keys)?);
        }
        KeysCommand::Rotate {
            batch_size,
            max_keys,
        } => {
            let keyring = Arc::new(keys::resolve_master(settings)?);
            let pool = app::pool(settings)?;
            let options = rotation::RotateOptions {
                batch_size,
                max_keys,
            };
            let mut progress = Progress::start("keys rotate", "data keys", 0);
            let report = rotation::rotate(&pool, keyring, options, &mut progress).await?;
            progress.finish();
            pool.close();
            tracing::info!(
                crypto.key_id = %report.target,
                remaining = report.remaining,
                "master key rotation run finished"
            );
            println!("{}", report.summary());
        }
        KeysCommand::Retire { key_id } => {
            let current = meditrustal_crypto::KeyId::new(settings.crypto.master_key_id.clone());
            let pool = app::pool(settings)?;
            rotation::retire(&pool, &current, &key_id).await?;
            pool.close();
            println!("keys retire: master key {key_id} is retired");
        }
    }
    Ok(())
}

async fn verify_audit(settings: &Settings) -> anyhow::Result<()> {
    let mut progress = Progress::start("audit verify", "events", 0);
    let report = meditrustal::audit::verify_chain_with_progress(settings, &mut progress).await?;
    progress.finish();
    let summary = meditrustal::audit::describe(&report);
    if !report.is_intact() {
        anyhow::bail!(summary);
    }
    tracing::info!(
        audit.events = report.events_checked,
        audit.anchors = report.anchors,
        "audit chain verified"
    );
    println!("{summary}");
    Ok(())
}

async fn admin(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    let user = match command {
        AdminCommand::Create {
            username,
            email,
            full_name,
        } => {
            let password = operator::read_password(&mut std::io::stdin().lock())?;
            let keys = keys::resolve(settings)?;
            let admin = NewAdmin {
                username,
                email,
                full_name,
                password,
            };
            operator::create_admin(settings, keys, admin).await?
        }
        AdminCommand::Promote { username } => operator::promote(settings, &username).await?,
    };
    println!(
        "{} ({}) is an admin; id {}",
        user.username.as_str(),
        user.email.as_str(),
        user.id
    );
    Ok(())
}

async fn deploy(settings: &Settings, if_needed: bool, fund_registrar: bool) -> anyhow::Result<()> {
    let keys = keys::resolve(settings)?;
    let config = app::ethers_config(settings, &keys);
    let path = settings.manifest_path();

    if if_needed && path.exists() {
        // A manifest from before `ConsentRegistry` does not load; it is
        // replaced like one that does not match the chain. One from before
        // `AuditAnchorRegistry` loads, and that contract is added to it.
        match DeploymentManifest::load(&path) {
            Ok(manifest) => match check_deployment(&config, &manifest).await {
                Ok(()) => {
                    tracing::info!(manifest = %path.display(), "deployment matches the chain; nothing to deploy");
                    return Ok(());
                }
                // The other contracts and their entries stay in use.
                Err(DeploymentError::NotInManifest { contract }) => {
                    tracing::info!(
                        contract,
                        "deployment predates a contract; deploying it alone"
                    );
                    let updated = deploy_missing_contracts(&config, &manifest)
                        .await
                        .context("deployment failed")?;
                    updated.save(&path)?;
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(%error, "deployment does not match the chain; deploying again")
                }
            },
            Err(error) => {
                tracing::warn!(%error, "deployment manifest does not load; deploying again")
            }
        }
    }

    if fund_registrar {
        meditrustal_adapter_ethers::fund_on_dev_node(&config)
            .await
            .context("cannot fund the registrar on the development node")?;
    }
    let manifest = deploy_contracts(&config)
        .await
        .context("deployment failed")?;
    manifest.save(&path)?;
    tracing::info!(
        manifest = %path.display(),
        chain_id = manifest.chain_id,
        user_registry = %manifest.contracts.user_registry.address,
        medical_record_registry = %manifest.contracts.medical_record_registry.address,
        consent_registry = %manifest.contracts.consent_registry.address,
        audit_anchor_registry = ?manifest.contracts.audit_anchor_registry.map(|contract| contract.address),
        "contracts deployed"
    );
    Ok(())
}
