//! The deployment manifest: where the contracts live and which code they
//! run, written by `deploy_contracts` and read at startup.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;
use meditrustal_ledger::Address;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Addresses of the deployed contracts and the hash of the code each runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentManifest {
    /// Chain id of the network the contracts were deployed on.
    pub chain_id: u64,
    /// Block of the first deployment transaction. Event log searches start
    /// here.
    pub deploy_block: u64,
    /// When the deployment finished, by the deploying machine's clock.
    pub deployed_at: DateTime<Utc>,
    /// The deployed contracts.
    pub contracts: DeployedContracts,
}

/// The contracts of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedContracts {
    /// The `UserRegistry` contract.
    pub user_registry: ContractDeployment,
    /// The `MedicalRecordRegistry` contract.
    pub medical_record_registry: ContractDeployment,
    /// The `ConsentRegistry` contract.
    pub consent_registry: ContractDeployment,
    /// The `AuditAnchorRegistry` contract. `None` in a manifest written
    /// before the contract existed; `meditrustal deploy-contracts
    /// --if-needed` then deploys it alone and keeps the other three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_anchor_registry: Option<ContractDeployment>,
    /// The `BatchAnchorRegistry` contract. `None` in a manifest written
    /// before the contract existed; `meditrustal deploy-contracts
    /// --if-needed` then deploys it alone and keeps the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_anchor_registry: Option<ContractDeployment>,
}

/// One deployed contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractDeployment {
    /// Contract address.
    pub address: Address,
    /// keccak-256 of the runtime code at `address`.
    pub code_hash: Digest,
}

/// Errors from deploying contracts, checking a deployment, or reading and
/// writing its manifest. Messages name the value that failed and the
/// operator's next step.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node could not be reached or timed out.
    #[error("chain node unavailable: {0}; check that the node runs and the RPC URL is right")]
    Unavailable(String),
    /// The node serves another chain than the manifest was written for.
    #[error(
        "chain id mismatch: the deployment manifest is for chain {expected} but the node \
         reports chain {actual}; point the RPC URL at chain {expected} or run \
         `meditrustal deploy-contracts`"
    )]
    WrongChain {
        /// Chain id in the manifest.
        expected: u64,
        /// Chain id the node reports.
        actual: u64,
    },
    /// No code at a manifest address, for example after the node restarted
    /// without its state.
    #[error(
        "no contract code at {address} on chain {chain_id} (expected {contract}); \
         run `meditrustal deploy-contracts`"
    )]
    CodeMissing {
        /// Contract name, such as `UserRegistry`.
        contract: &'static str,
        /// Address from the manifest.
        address: Address,
        /// Chain id the node reports.
        chain_id: u64,
    },
    /// The code at a manifest address differs from the code the manifest
    /// records.
    #[error(
        "the code at {address} on chain {chain_id} has hash {actual} but the manifest records \
         {expected} for {contract}; run `meditrustal deploy-contracts`"
    )]
    CodeMismatch {
        /// Contract name.
        contract: &'static str,
        /// Address from the manifest.
        address: Address,
        /// Chain id the node reports.
        chain_id: u64,
        /// Code hash in the manifest.
        expected: Digest,
        /// Hash of the code on chain.
        actual: Digest,
    },
    /// The manifest predates a contract, so it has no address for it.
    #[error(
        "the deployment manifest has no {contract}; run `meditrustal deploy-contracts \
         --if-needed` to deploy it beside the existing contracts"
    )]
    NotInManifest {
        /// Contract name.
        contract: &'static str,
    },
    /// The manifest's contract was compiled from other sources than the
    /// artifacts this binary was built with, so its ABI may differ.
    #[error(
        "{contract} at {address} runs code with hash {deployed}, but this build's {contract} has \
         hash {built}; run `meditrustal deploy-contracts` to deploy the current contracts"
    )]
    OutdatedContracts {
        /// Contract name.
        contract: &'static str,
        /// Address from the manifest.
        address: Address,
        /// Code hash in the manifest.
        deployed: Digest,
        /// Hash of the runtime code in this build's artifact.
        built: Digest,
    },
    /// A deployment transaction failed.
    #[error("deploying {contract} failed: {reason}")]
    DeployFailed {
        /// Contract name.
        contract: &'static str,
        /// Failure description.
        reason: String,
    },
    /// The development node did not set the registrar's balance.
    #[error(
        "cannot fund registrar {address} with anvil_setBalance: {reason}; on a node other than \
         anvil, send ether to the registrar instead"
    )]
    FundFailed {
        /// The registrar's address.
        address: Address,
        /// Failure description.
        reason: String,
    },
    /// The manifest file could not be read.
    #[error(
        "cannot read deployment manifest {}: {source}; run `meditrustal deploy-contracts` to \
         create it",
        path.display()
    )]
    ManifestRead {
        /// Manifest path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The manifest file could not be written.
    #[error("cannot write deployment manifest {}: {source}", path.display())]
    ManifestWrite {
        /// Manifest path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The manifest file is not valid manifest JSON.
    #[error("invalid deployment manifest {}: {source}", path.display())]
    ManifestInvalid {
        /// Manifest path.
        path: PathBuf,
        /// The parse error, with line and column.
        source: serde_json::Error,
    },
}

impl DeploymentManifest {
    /// Writes the manifest as pretty JSON. Writes a sibling temporary file
    /// first and renames it, so a crash never leaves a truncated manifest.
    /// Errors: [`DeploymentError::ManifestWrite`].
    pub fn save(&self, path: &Path) -> Result<(), DeploymentError> {
        let write_error = |source| DeploymentError::ManifestWrite {
            path: path.to_owned(),
            source,
        };
        let mut text =
            serde_json::to_string_pretty(self).map_err(|error| write_error(error.into()))?;
        text.push('\n');

        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        std::fs::write(&temporary, text).map_err(write_error)?;
        std::fs::rename(&temporary, path).map_err(write_error)
    }

    /// Reads a manifest written by [`DeploymentManifest::save`]. Errors:
    /// [`DeploymentError::ManifestRead`], [`DeploymentError::ManifestInvalid`].
    pub fn load(path: &Path) -> Result<Self, DeploymentError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| DeploymentError::ManifestRead {
                path: path.to_owned(),
                source,
            })?;
        serde_json::from_str(&text).map_err(|source| DeploymentError::ManifestInvalid {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> DeploymentManifest {
        let deployed_at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        DeploymentManifest {
            chain_id: 31337,
            deploy_block: 1,
            deployed_at,
            contracts: DeployedContracts {
                user_registry: ContractDeployment {
                    address: "0x5fbdb2315678afecb367f032d93f642f64180aa3"
                        .parse()
                        .unwrap(),
                    code_hash: Digest::from_bytes([0x11; 32]),
                },
                medical_record_registry: ContractDeployment {
                    address: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
                        .parse()
                        .unwrap(),
                    code_hash: Digest::from_bytes([0x22; 32]),
                },
                consent_registry: ContractDeployment {
                    address: "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
                        .parse()
                        .unwrap(),
                    code_hash: Digest::from_bytes([0x33; 32]),
                },
                audit_anchor_registry: Some(ContractDeployment {
                    address: "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
                        .parse()
                        .unwrap(),
                    code_hash: Digest::from_bytes([0x44; 32]),
                }),
                batch_anchor_registry: Some(ContractDeployment {
                    address: "0xdc64a140aa3e981100a9beca4e685f962f0cf6c9"
                        .parse()
                        .unwrap(),
                    code_hash: Digest::from_bytes([0x55; 32]),
                }),
            },
        }
    }

    fn temporary_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("meditrustal-{name}-{}.json", std::process::id()))
    }

    #[test]
    fn manifest_json_uses_lowercase_prefixed_hex() {
        let json = serde_json::to_value(manifest()).unwrap();

        assert_eq!(
            json,
            serde_json::json!({
                "chain_id": 31337,
                "deploy_block": 1,
                "deployed_at": "2026-01-02T03:04:05Z",
                "contracts": {
                    "user_registry": {
                        "address": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
                        "code_hash": format!("0x{}", "11".repeat(32)),
                    },
                    "medical_record_registry": {
                        "address": "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
                        "code_hash": format!("0x{}", "22".repeat(32)),
                    },
                    "consent_registry": {
                        "address": "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
                        "code_hash": format!("0x{}", "33".repeat(32)),
                    },
                    "audit_anchor_registry": {
                        "address": "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9",
                        "code_hash": format!("0x{}", "44".repeat(32)),
                    },
                    "batch_anchor_registry": {
                        "address": "0xdc64a140aa3e981100a9beca4e685f962f0cf6c9",
                        "code_hash": format!("0x{}", "55".repeat(32)),
                    },
                },
            })
        );
    }

    #[test]
    fn manifest_survives_save_and_load() {
        let path = temporary_path("manifest-roundtrip");

        manifest().save(&path).unwrap();
        let loaded = DeploymentManifest::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(loaded, manifest());
    }

    #[test]
    fn manifest_without_audit_registry_still_loads() {
        let path = temporary_path("manifest-without-audit");
        let mut json = serde_json::to_value(manifest()).unwrap();
        json["contracts"]
            .as_object_mut()
            .unwrap()
            .remove("audit_anchor_registry");
        json["contracts"]
            .as_object_mut()
            .unwrap()
            .remove("batch_anchor_registry");
        std::fs::write(&path, json.to_string()).unwrap();

        let loaded = DeploymentManifest::load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(loaded.contracts.audit_anchor_registry, None);
        assert_eq!(loaded.contracts.batch_anchor_registry, None);
        assert_eq!(
            loaded.contracts.user_registry,
            manifest().contracts.user_registry
        );
    }

    #[test]
    fn load_of_missing_file_tells_operator_to_deploy() {
        let path = temporary_path("manifest-missing");

        let error = DeploymentManifest::load(&path).unwrap_err();

        assert!(
            matches!(error, DeploymentError::ManifestRead { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read deployment manifest {}: No such file or directory (os error 2); \
                 run `meditrustal deploy-contracts` to create it",
                path.display()
            )
        );
    }

    #[test]
    fn load_rejects_uppercase_code_hash() {
        let path = temporary_path("manifest-uppercase");
        let text = serde_json::to_string(&manifest())
            .unwrap()
            .replace(&"11".repeat(32), &"AB".repeat(32));
        std::fs::write(&path, text).unwrap();

        let error = DeploymentManifest::load(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();

        assert!(
            matches!(error, DeploymentError::ManifestInvalid { .. }),
            "{error:?}"
        );
    }
}
