//! Deploying the contracts, funding the registrar on a development node, and
//! checking that a manifest's deployment is live on the node.

use chrono::Utc;
use ethers::types::{Bytes, U256};
use meditrustal_crypto::Digest;

use crate::bindings::{
    AUDITANCHORREGISTRY_BYTECODE, AUDITANCHORREGISTRY_DEPLOYED_BYTECODE,
    BATCHANCHORREGISTRY_BYTECODE, BATCHANCHORREGISTRY_DEPLOYED_BYTECODE, CONSENTREGISTRY_BYTECODE,
    CONSENTREGISTRY_DEPLOYED_BYTECODE, MEDICALRECORDREGISTRY_BYTECODE,
    MEDICALRECORDREGISTRY_DEPLOYED_BYTECODE, USERREGISTRY_BYTECODE, USERREGISTRY_DEPLOYED_BYTECODE,
};
use crate::config::EthersConfig;
use crate::convert::{code_hash, to_domain_address, to_h160, u64_of};
use crate::manifest::{ContractDeployment, DeployedContracts, DeploymentError, DeploymentManifest};
use crate::rpc::{ChainClient, ChainError};

pub(crate) const USER_REGISTRY: &str = "UserRegistry";
pub(crate) const MEDICAL_RECORD_REGISTRY: &str = "MedicalRecordRegistry";
pub(crate) const CONSENT_REGISTRY: &str = "ConsentRegistry";
pub(crate) const AUDIT_ANCHOR_REGISTRY: &str = "AuditAnchorRegistry";
pub(crate) const BATCH_ANCHOR_REGISTRY: &str = "BatchAnchorRegistry";

/// Deploys `UserRegistry`, `MedicalRecordRegistry`, `ConsentRegistry`,
/// `AuditAnchorRegistry` and `BatchAnchorRegistry`, in this order, from the registrar account, which
/// becomes the only account allowed to write to them, and returns their
/// manifest. Each deployment waits up to the configured
/// receipt timeout. Errors: [`DeploymentError::Config`],
/// [`DeploymentError::Unavailable`], [`DeploymentError::DeployFailed`].
#[tracing::instrument(skip_all)]
pub async fn deploy_contracts(
    config: &EthersConfig,
) -> Result<DeploymentManifest, DeploymentError> {
    let probe = ChainClient::connect(config, 0)?;
    let chain_id = probe.node_chain_id().await.map_err(unavailable)?;
    let chain = ChainClient::connect(config, chain_id)?;

    let (user_registry, first_block) =
        deploy_one(&chain, config, USER_REGISTRY, &USERREGISTRY_BYTECODE).await?;
    let (medical_record_registry, _) = deploy_one(
        &chain,
        config,
        MEDICAL_RECORD_REGISTRY,
        &MEDICALRECORDREGISTRY_BYTECODE,
    )
    .await?;
    let (consent_registry, _) =
        deploy_one(&chain, config, CONSENT_REGISTRY, &CONSENTREGISTRY_BYTECODE).await?;
    let (audit_anchor_registry, _) = deploy_one(
        &chain,
        config,
        AUDIT_ANCHOR_REGISTRY,
        &AUDITANCHORREGISTRY_BYTECODE,
    )
    .await?;
    let (batch_anchor_registry, _) = deploy_one(
        &chain,
        config,
        BATCH_ANCHOR_REGISTRY,
        &BATCHANCHORREGISTRY_BYTECODE,
    )
    .await?;

    tracing::info!(
        chain.id = chain_id,
        contract.user_registry = %user_registry.address,
        contract.medical_record_registry = %medical_record_registry.address,
        contract.consent_registry = %consent_registry.address,
        contract.audit_anchor_registry = %audit_anchor_registry.address,
        contract.batch_anchor_registry = %batch_anchor_registry.address,
        "contracts deployed"
    );
    Ok(DeploymentManifest {
        chain_id,
        deploy_block: first_block,
        deployed_at: Utc::now(),
        contracts: DeployedContracts {
            user_registry,
            medical_record_registry,
            consent_registry,
            audit_anchor_registry: Some(audit_anchor_registry),
            batch_anchor_registry: Some(batch_anchor_registry),
        },
    })
}

/// Deploys the contracts that `manifest` predates (`AuditAnchorRegistry`,
/// `BatchAnchorRegistry`, or both) beside its other contracts, and returns
/// the manifest with their addresses. The existing contracts and their
/// entries stay. Errors: [`DeploymentError::Config`],
/// [`DeploymentError::Unavailable`], [`DeploymentError::WrongChain`],
/// [`DeploymentError::DeployFailed`].
#[tracing::instrument(skip_all)]
pub async fn deploy_missing_contracts(
    config: &EthersConfig,
    manifest: &DeploymentManifest,
) -> Result<DeploymentManifest, DeploymentError> {
    let chain = ChainClient::connect(config, manifest.chain_id)?;
    let actual = chain.node_chain_id().await.map_err(unavailable)?;
    if actual != manifest.chain_id {
        return Err(DeploymentError::WrongChain {
            expected: manifest.chain_id,
            actual,
        });
    }

    let mut updated = manifest.clone();
    if updated.contracts.audit_anchor_registry.is_none() {
        let (deployment, _) = deploy_one(
            &chain,
            config,
            AUDIT_ANCHOR_REGISTRY,
            &AUDITANCHORREGISTRY_BYTECODE,
        )
        .await?;
        tracing::info!(chain.id = actual, contract.audit_anchor_registry = %deployment.address, "audit anchor registry deployed");
        updated.contracts.audit_anchor_registry = Some(deployment);
    }
    if updated.contracts.batch_anchor_registry.is_none() {
        let (deployment, _) = deploy_one(
            &chain,
            config,
            BATCH_ANCHOR_REGISTRY,
            &BATCHANCHORREGISTRY_BYTECODE,
        )
        .await?;
        tracing::info!(chain.id = actual, contract.batch_anchor_registry = %deployment.address, "batch anchor registry deployed");
        updated.contracts.batch_anchor_registry = Some(deployment);
    }
    Ok(updated)
}

/// Balance that [`fund_on_dev_node`] gives the registrar: 10 000 ether,
/// what anvil gives each default account.
const DEV_REGISTRAR_BALANCE_WEI: u128 = 10_000 * 1_000_000_000_000_000_000;

/// Raises the registrar's balance to 10 000 ether with `anvil_setBalance`,
/// for a development node where the registrar key is not one of anvil's
/// funded default accounts. Leaves a higher balance alone. Errors:
/// [`DeploymentError::Config`], [`DeploymentError::Unavailable`], and
/// [`DeploymentError::FundFailed`] when the node does not support
/// `anvil_setBalance`.
pub async fn fund_on_dev_node(config: &EthersConfig) -> Result<(), DeploymentError> {
    let chain = ChainClient::connect(config, 0)?;
    let registrar = chain.address();
    let target = U256::from(DEV_REGISTRAR_BALANCE_WEI);

    let balance = chain.balance(registrar).await.map_err(unavailable)?;
    if balance >= target {
        return Ok(());
    }
    let request = chain
        .provider()
        .request::<_, ()>("anvil_setBalance", (registrar, target));
    chain
        .rpc("anvil_setBalance", request)
        .await
        .map_err(|error| match error {
            ChainError::Unavailable(message) => DeploymentError::Unavailable(message),
            other => DeploymentError::FundFailed {
                address: to_domain_address(registrar),
                reason: other.describe(),
            },
        })?;

    tracing::info!(registrar = %to_domain_address(registrar), "registrar funded on development node");
    Ok(())
}

/// Sends one creation transaction and returns the contract and its block.
pub(crate) async fn deploy_one(
    chain: &ChainClient,
    config: &EthersConfig,
    contract: &'static str,
    bytecode: &Bytes,
) -> Result<(ContractDeployment, u64), DeploymentError> {
    let failed = |reason: String| DeploymentError::DeployFailed { contract, reason };

    let gas = chain
        .estimate_gas(None, bytecode)
        .await
        .map_err(|error| deploy_error(contract, error))?;
    let tx_hash = chain
        .send(None, bytecode.clone(), gas)
        .await
        .map_err(|error| deploy_error(contract, error))?;
    let receipt = chain
        .wait_for_receipt(tx_hash, config.receipt_timeout)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            failed(format!(
                "transaction {tx_hash:#x} was not mined within {} ms; \
                 check that the node mines blocks",
                config.receipt_timeout.as_millis()
            ))
        })?;

    if receipt.status.map(|status| status.as_u64()) != Some(1) {
        return Err(failed(format!("transaction {tx_hash:#x} reverted")));
    }
    let address = receipt
        .contract_address
        .ok_or_else(|| failed(format!("receipt of {tx_hash:#x} has no contract address")))?;
    let block = u64_of(receipt.block_number)
        .ok_or_else(|| failed(format!("receipt of {tx_hash:#x} has no block number")))?;
    let code = chain.code_at(address).await.map_err(unavailable)?;
    if code.is_empty() {
        return Err(failed(format!(
            "no code at {} after deployment",
            to_domain_address(address)
        )));
    }

    let deployment = ContractDeployment {
        address: to_domain_address(address),
        code_hash: code_hash(&code),
    };
    Ok((deployment, block))
}

fn deploy_error(contract: &'static str, error: ChainError) -> DeploymentError {
    match error {
        ChainError::Unavailable(message) => DeploymentError::Unavailable(message),
        other => DeploymentError::DeployFailed {
            contract,
            reason: other.describe(),
        },
    }
}

fn unavailable(error: ChainError) -> DeploymentError {
    DeploymentError::Unavailable(error.describe())
}

/// Checks that the node serves the manifest's chain, that each manifest
/// address has the recorded code, that this code is the code this build's
/// artifacts compile to, and that the manifest has every contract.
/// Errors: [`DeploymentError::Config`], [`DeploymentError::Unavailable`],
/// [`DeploymentError::WrongChain`], [`DeploymentError::CodeMissing`],
/// [`DeploymentError::CodeMismatch`],
/// [`DeploymentError::OutdatedContracts`], and
/// [`DeploymentError::NotInManifest`] when the other checks pass but the
/// manifest predates `AuditAnchorRegistry` or `BatchAnchorRegistry`.
pub async fn check_deployment(
    config: &EthersConfig,
    manifest: &DeploymentManifest,
) -> Result<(), DeploymentError> {
    let chain = ChainClient::connect(config, manifest.chain_id)?;
    verify_live_deployment(&chain, manifest).await?;

    let mut built = vec![
        (
            USER_REGISTRY,
            &manifest.contracts.user_registry,
            &USERREGISTRY_DEPLOYED_BYTECODE,
        ),
        (
            MEDICAL_RECORD_REGISTRY,
            &manifest.contracts.medical_record_registry,
            &MEDICALRECORDREGISTRY_DEPLOYED_BYTECODE,
        ),
        (
            CONSENT_REGISTRY,
            &manifest.contracts.consent_registry,
            &CONSENTREGISTRY_DEPLOYED_BYTECODE,
        ),
    ];
    if let Some(deployment) = &manifest.contracts.audit_anchor_registry {
        built.push((
            AUDIT_ANCHOR_REGISTRY,
            deployment,
            &AUDITANCHORREGISTRY_DEPLOYED_BYTECODE,
        ));
    }
    if let Some(deployment) = &manifest.contracts.batch_anchor_registry {
        built.push((
            BATCH_ANCHOR_REGISTRY,
            deployment,
            &BATCHANCHORREGISTRY_DEPLOYED_BYTECODE,
        ));
    }
    for (contract, deployment, runtime_code) in built {
        let built_hash = code_hash(runtime_code);
        if deployment.code_hash != built_hash {
            return Err(DeploymentError::OutdatedContracts {
                contract,
                address: deployment.address,
                deployed: deployment.code_hash,
                built: built_hash,
            });
        }
    }
    if manifest.contracts.audit_anchor_registry.is_none() {
        return Err(DeploymentError::NotInManifest {
            contract: AUDIT_ANCHOR_REGISTRY,
        });
    }
    if manifest.contracts.batch_anchor_registry.is_none() {
        return Err(DeploymentError::NotInManifest {
            contract: BATCH_ANCHOR_REGISTRY,
        });
    }
    Ok(())
}

/// Checks chain id and the code at each manifest address. The ledger runs
/// this before chain writes and reads.
pub(crate) async fn verify_live_deployment(
    chain: &ChainClient,
    manifest: &DeploymentManifest,
) -> Result<(), DeploymentError> {
    let actual = chain.node_chain_id().await.map_err(unavailable)?;
    if actual != manifest.chain_id {
        return Err(DeploymentError::WrongChain {
            expected: manifest.chain_id,
            actual,
        });
    }

    let mut contracts = vec![
        (USER_REGISTRY, &manifest.contracts.user_registry),
        (
            MEDICAL_RECORD_REGISTRY,
            &manifest.contracts.medical_record_registry,
        ),
        (CONSENT_REGISTRY, &manifest.contracts.consent_registry),
    ];
    if let Some(deployment) = &manifest.contracts.audit_anchor_registry {
        contracts.push((AUDIT_ANCHOR_REGISTRY, deployment));
    }
    if let Some(deployment) = &manifest.contracts.batch_anchor_registry {
        contracts.push((BATCH_ANCHOR_REGISTRY, deployment));
    }
    for (contract, deployment) in contracts {
        let code = chain
            .code_at(to_h160(&deployment.address))
            .await
            .map_err(unavailable)?;
        if code.is_empty() {
            return Err(DeploymentError::CodeMissing {
                contract,
                address: deployment.address,
                chain_id: actual,
            });
        }
        let actual_hash: Digest = code_hash(&code);
        if actual_hash != deployment.code_hash {
            return Err(DeploymentError::CodeMismatch {
                contract,
                address: deployment.address,
                chain_id: actual,
                expected: deployment.code_hash,
                actual: actual_hash,
            });
        }
    }
    Ok(())
}
