//! Resolution of the service's secret keys: from configuration (the
//! environment in production) or, in development, from a key file that is
//! created in the data directory on first start.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use meditrustal_crypto::{KeyId, MasterKey, MasterKeyring};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Settings;

/// The three secrets the service needs.
pub struct Keys {
    /// Master keys that wrap record and custodial data keys.
    pub master: MasterKeyring,
    /// Hex Ed25519 seed that signs access tokens.
    pub signing_key: SecretString,
    /// Hex secp256k1 key of the registrar account.
    pub registrar_key: SecretString,
}

#[derive(Serialize, Deserialize)]
struct DevKeyFile {
    master_key: String,
    signing_key: String,
    registrar_key: String,
}

impl Drop for DevKeyFile {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.master_key.zeroize();
        self.signing_key.zeroize();
        self.registrar_key.zeroize();
    }
}

/// Name of the development key file inside the data directory.
pub const DEV_KEY_FILE: &str = "dev-keys.json";

/// Resolves every key: configured values win; missing ones come from the
/// development key file when `dev_keys` is on, and are an error otherwise.
pub fn resolve(settings: &Settings) -> anyhow::Result<Keys> {
    let dev = if settings.dev_keys {
        Some(load_or_create_dev_keys(&settings.data_dir)?)
    } else {
        None
    };

    let signing_key = pick(
        &settings.auth.signing_key,
        dev.as_ref().map(|keys| &keys.signing_key),
        "MEDITRUSTAL__AUTH__SIGNING_KEY",
    )?;
    let registrar_key = pick(
        &settings.chain.registrar_key,
        dev.as_ref().map(|keys| &keys.registrar_key),
        "MEDITRUSTAL__CHAIN__REGISTRAR_KEY",
    )?;

    let master = master_keyring(settings, dev.as_ref())?;

    Ok(Keys {
        master,
        signing_key,
        registrar_key,
    })
}

/// Parses `crypto.previous_master_keys`, each entry `id:<64 hex digits>`.
/// Errors name the entry by position, never by value.
fn previous_master_keys(settings: &Settings) -> anyhow::Result<Vec<MasterKey>> {
    let current = settings.crypto.master_key_id.as_str();
    let mut keys: Vec<MasterKey> = Vec::new();
    for (index, entry) in settings.crypto.previous_master_keys.iter().enumerate() {
        let invalid = || {
            format!(
                "invalid MEDITRUSTAL__CRYPTO__PREVIOUS_MASTER_KEYS entry {index}: \
                 expected id:<64 hex digits>"
            )
        };
        let (id, hex) = entry
            .expose_secret()
            .trim()
            .split_once(':')
            .with_context(invalid)?;
        if id.is_empty() || id == current || keys.iter().any(|key| key.id().as_str() == id) {
            bail!(
                "invalid MEDITRUSTAL__CRYPTO__PREVIOUS_MASTER_KEYS entry {index}: key id {id:?} \
                 is empty, the current crypto.master_key_id, or listed twice"
            );
        }
        let bytes = decode_key32(hex).with_context(invalid)?;
        keys.push(MasterKey::new(KeyId::new(id), *bytes));
    }
    Ok(keys)
}

/// Resolves the master keys alone, for commands that need no other key.
pub fn resolve_master(settings: &Settings) -> anyhow::Result<MasterKeyring> {
    let dev = if settings.dev_keys {
        Some(load_or_create_dev_keys(&settings.data_dir)?)
    } else {
        None
    };
    master_keyring(settings, dev.as_ref())
}

fn master_keyring(settings: &Settings, dev: Option<&DevKeyFile>) -> anyhow::Result<MasterKeyring> {
    let master_hex = pick(
        &settings.crypto.master_key,
        dev.map(|keys| &keys.master_key),
        "MEDITRUSTAL__CRYPTO__MASTER_KEY",
    )?;
    let master_bytes = decode_key32(master_hex.expose_secret())
        .context("MEDITRUSTAL__CRYPTO__MASTER_KEY must be 64 hex digits (32 bytes)")?;
    Ok(MasterKeyring::new(
        MasterKey::new(
            KeyId::new(settings.crypto.master_key_id.clone()),
            *master_bytes,
        ),
        previous_master_keys(settings)?,
    ))
}

fn pick(
    configured: &Option<SecretString>,
    dev: Option<&String>,
    variable: &str,
) -> anyhow::Result<SecretString> {
    if let Some(value) = configured {
        return Ok(value.clone());
    }
    match dev {
        Some(value) => Ok(SecretString::from(value.clone())),
        None => bail!("{variable} is not set; set it in the environment (or enable dev_keys for local development)"),
    }
}

fn load_or_create_dev_keys(data_dir: &Path) -> anyhow::Result<DevKeyFile> {
    let path = data_dir.join(DEV_KEY_FILE);
    if path.exists() {
        let text = Zeroizing::new(
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
        );
        return serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid key file; delete it to create new development keys",
                path.display()
            )
        });
    }

    let keys = DevKeyFile {
        master_key: random_hex()?,
        signing_key: random_hex()?,
        registrar_key: random_hex()?,
    };
    write_private(&path, &serde_json::to_string_pretty(&keys)?)?;
    tracing::warn!(path = %path.display(), "created development keys; never use them in production");
    Ok(keys)
}

fn write_private(path: &PathBuf, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn random_hex() -> anyhow::Result<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| anyhow::anyhow!("system random number generator failed"))?;
    Ok(hex::encode(bytes.as_ref()))
}

fn decode_key32(text: &str) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let digits = text.trim().trim_start_matches("0x");
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, out.as_mut()).map_err(|_| anyhow::anyhow!("invalid hex key"))?;
    Ok(out)
}
