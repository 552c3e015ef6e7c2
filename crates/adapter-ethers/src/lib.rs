//! Adapter layer: the `Ledger`, `ConsentSigner`, `AuditAnchorLedger` and
//! `AccountGenerator` ports on an EVM chain, through ethers-rs over plain
//! HTTP JSON-RPC.
//!
//! Depends on the `ledger`, `audit`, `identity` and `crypto` domain crates
//! and on ethers-rs. Only the binary that wires it depends on it, plus tests
//! through the `testing` feature. The
//! contract bindings are generated from the artifacts committed in
//! `contracts/out/`, so building needs no Node.js. `docs/chain.md` explains
//! the nonce handling, the EVM version pin and how resent jobs are resolved.
//!
//! - [`EthersLedger`] implements [`meditrustal_ledger::Ledger`] and
//!   [`meditrustal_audit::AuditAnchorLedger`].
//! - [`Eip712ConsentSigner`] implements [`meditrustal_ledger::ConsentSigner`].
//! - [`RandomAccountGenerator`] implements
//!   [`meditrustal_identity::AccountGenerator`].
//! - [`deploy_contracts`] and [`check_deployment`] create and verify the
//!   [`DeploymentManifest`], [`deploy_missing_contracts`] adds the audit
//!   and batch contracts to an older deployment, and [`fund_on_dev_node`] gives
//!   the registrar ether on anvil.
//! - [`testing`] (feature `testing`) runs a local anvil node for tests.

mod accounts;
mod batch;
mod bindings;
mod config;
mod consent;
mod convert;
mod deploy;
mod ledger;
mod manifest;
mod revert;
mod rpc;
#[cfg(feature = "testing")]
pub mod testing;

pub use accounts::RandomAccountGenerator;
pub use batch::{read_batch_evidence, BatchEvidence, BatchGas, StoredBatch, TransactionEvidence};
pub use config::{ConfigError, EthersConfig};
pub use consent::{Eip712ConsentSigner, DOMAIN_NAME, DOMAIN_VERSION};
pub use deploy::{check_deployment, deploy_contracts, deploy_missing_contracts, fund_on_dev_node};
pub use ledger::{EthersLedger, RegisteredUser};
pub use manifest::{ContractDeployment, DeployedContracts, DeploymentError, DeploymentManifest};
