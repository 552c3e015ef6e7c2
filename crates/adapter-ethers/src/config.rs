use std::fmt;
use std::time::Duration;

use ethers::signers::LocalWallet;
use ethers::signers::Signer;
use meditrustal_ledger::Address;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::convert::to_domain_address;

/// Settings of the chain connection and the registrar account.
///
/// `Debug` prints the registrar's address, never its key, and leaves out
/// the RPC URL because hosted node URLs often embed an API key.
#[derive(Clone)]
pub struct EthersConfig {
    /// JSON-RPC endpoint over plain HTTP, such as `http://127.0.0.1:8545`.
    pub rpc_url: String,
    /// Interval between receipt polls while `submit` waits for mining, and
    /// the ethers provider's polling interval.
    pub poll_interval: Duration,
    /// How long `submit` waits for a receipt before it returns
    /// `Submission::Sent`.
    pub receipt_timeout: Duration,
    /// Timeout of each JSON-RPC call.
    pub rpc_timeout: Duration,
    /// How long a successful check of chain id and contract code is reused
    /// before the next chain write or read checks again.
    pub deployment_check_ttl: Duration,
    /// secp256k1 secret key of the registrar, the account that deploys the
    /// contracts and sends every transaction: 64 hex digits, with or
    /// without `0x`.
    pub registrar_key: SecretString,
}

/// Error from invalid [`EthersConfig`] values.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The registrar key is not a valid secp256k1 secret key. The message
    /// never contains the key.
    #[error(
        "invalid registrar key: expected a secp256k1 secret key as 64 hex digits, \
         with or without 0x"
    )]
    InvalidRegistrarKey,
    /// The RPC URL does not parse as an HTTP URL.
    #[error("invalid chain RPC URL: {0}")]
    InvalidRpcUrl(String),
}

impl EthersConfig {
    /// Default interval between receipt polls.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
    /// Default wait for a receipt inside `submit`. Short, because the outbox
    /// sends its jobs one at a time and follows up a `Sent` job later.
    pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default timeout of one JSON-RPC call.
    pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default reuse time of a deployment check.
    pub const DEFAULT_DEPLOYMENT_CHECK_TTL: Duration = Duration::from_secs(1);

    /// Builds a configuration with the default durations.
    pub fn new(rpc_url: impl Into<String>, registrar_key: SecretString) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            receipt_timeout: Self::DEFAULT_RECEIPT_TIMEOUT,
            rpc_timeout: Self::DEFAULT_RPC_TIMEOUT,
            deployment_check_ttl: Self::DEFAULT_DEPLOYMENT_CHECK_TTL,
            registrar_key,
        }
    }

    /// Derives the registrar's address from its key. Errors:
    /// [`ConfigError::InvalidRegistrarKey`].
    pub fn registrar_address(&self) -> Result<Address, ConfigError> {
        Ok(to_domain_address(self.registrar_wallet()?.address()))
    }

    /// Parses the registrar key into a signing wallet (without a chain id).
    pub(crate) fn registrar_wallet(&self) -> Result<LocalWallet, ConfigError> {
        parse_secret_key(&self.registrar_key)
    }
}

impl fmt::Debug for EthersConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registrar = match self.registrar_address() {
            Ok(address) => address.to_string(),
            Err(_) => "<invalid key>".to_owned(),
        };
        f.debug_struct("EthersConfig")
            .field("poll_interval", &self.poll_interval)
            .field("receipt_timeout", &self.receipt_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("deployment_check_ttl", &self.deployment_check_ttl)
            .field("registrar", &registrar)
            .finish_non_exhaustive()
    }
}

/// Parses a hex secp256k1 secret key, with or without `0x`, into a wallet.
pub(crate) fn parse_secret_key(key: &SecretString) -> Result<LocalWallet, ConfigError> {
    let text = key.expose_secret().trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 64 {
        return Err(ConfigError::InvalidRegistrarKey);
    }

    let bytes = Zeroizing::new(hex::decode(digits).map_err(|_| ConfigError::InvalidRegistrarKey)?);
    LocalWallet::from_bytes(&bytes).map_err(|_| ConfigError::InvalidRegistrarKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANVIL_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn config(key: &str) -> EthersConfig {
        EthersConfig::new("http://127.0.0.1:8545", SecretString::from(key.to_owned()))
    }

    #[test]
    fn registrar_address_accepts_key_with_or_without_prefix() {
        let expected = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

        let with_prefix = config(ANVIL_KEY_0).registrar_address().unwrap();
        let without_prefix = config(&ANVIL_KEY_0[2..]).registrar_address().unwrap();

        assert_eq!(with_prefix.to_string(), expected);
        assert_eq!(without_prefix.to_string(), expected);
    }

    #[test]
    fn registrar_address_rejects_malformed_keys() {
        let zero_key = format!("0x{}", "0".repeat(64));
        for key in [
            "",
            "0x1234",
            &ANVIL_KEY_0[..65],
            &ANVIL_KEY_0.replace('a', "g"),
            &zero_key,
        ] {
            assert_eq!(
                config(key).registrar_address(),
                Err(ConfigError::InvalidRegistrarKey),
                "{key:?} was accepted"
            );
        }
    }

    #[test]
    fn debug_shows_address_but_not_key_or_url() {
        let text = format!("{:?}", config(ANVIL_KEY_0));

        assert!(
            text.contains("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
            "{text}"
        );
        assert!(!text.contains(&ANVIL_KEY_0[2..]), "{text}");
        assert!(!text.contains("ac0974"), "{text}");
        assert!(!text.contains("8545"), "{text}");
    }
}
