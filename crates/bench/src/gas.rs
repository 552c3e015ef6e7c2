//! Gas per record of batch anchoring by batch size, measured on an anvil
//! node of its own with `EthersLedger::measure_batch_anchor_gas`: fresh
//! contracts, one `BatchAnchorRegistry.anchorBatch` transaction per size.

use std::path::Path;

use anyhow::Context;
use meditrustal_adapter_ethers::{deploy_contracts, EthersConfig, EthersLedger};
use secrecy::SecretString;
use serde::Serialize;

use crate::stack;

/// Secret key of anvil's first default account (mnemonic `test test …
/// junk`), public and funded on every fresh anvil node; it deploys the
/// contracts and sends the batches.
const ANVIL_FIRST_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// One anchored batch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchGasResult {
    /// Records (leaves) under the anchored root.
    pub records: u32,
    /// `gasUsed` of the anchoring transaction.
    pub gas_used: u64,
    /// `gas_used / records`, rounded down.
    pub gas_per_record: u64,
}

/// Starts anvil from `anvil_bin` (log in `work_dir/anvil-gas.log`),
/// deploys the contracts, anchors one batch of each size in `sizes` and
/// stops anvil.
pub async fn measure(
    anvil_bin: &Path,
    work_dir: &Path,
    sizes: &[u32],
) -> anyhow::Result<Vec<BatchGasResult>> {
    let (mut anvil, rpc_url) =
        stack::start_anvil(anvil_bin, &work_dir.join("anvil-gas.log")).await?;
    let measured = measure_on(&rpc_url, sizes).await;
    stack::stop_child(&mut anvil).await;
    measured
}

async fn measure_on(rpc_url: &str, sizes: &[u32]) -> anyhow::Result<Vec<BatchGasResult>> {
    let config = EthersConfig::new(rpc_url, SecretString::from(ANVIL_FIRST_KEY.to_owned()));
    let manifest = deploy_contracts(&config)
        .await
        .context("could not deploy the contracts for the gas measurement")?;
    let ledger = EthersLedger::connect(&config, manifest).context("invalid chain settings")?;
    let mut results = Vec::with_capacity(sizes.len());
    for &records in sizes {
        let gas = ledger
            .measure_batch_anchor_gas(records)
            .await
            .with_context(|| format!("could not anchor a batch of {records}"))?;
        results.push(BatchGasResult {
            records,
            gas_used: gas.gas_used,
            gas_per_record: gas.per_leaf(),
        });
    }
    Ok(results)
}
