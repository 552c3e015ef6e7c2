//! `meditrustal audit verify`: checks the stored audit chain from event 1
//! and compares it with every head anchored on `AuditAnchorRegistry`.
//!
//! Verification only reads: the database (SELECT on `audit_events`), the
//! deployment manifest and the chain. It needs none of the service's
//! secret keys, so an auditor can run it with read-only credentials.

use std::sync::Arc;

use anyhow::Context;
use meditrustal_adapter_ethers::EthersLedger;
use meditrustal_adapter_postgres::PgAuditStore;
use meditrustal_audit::{AuditService, AuditStore, ChainReport};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::app;
use crate::config::Settings;
use crate::progress::Progress;

/// Verifies the audit chain in the configured database against the
/// anchors of the configured deployment. Errors: the manifest does not
/// match the chain, or the database or the chain cannot be read. A broken
/// chain is not an error: it is the report's `first_break`.
pub async fn verify_chain(settings: &Settings) -> anyhow::Result<ChainReport> {
    let mut progress = Progress::lines(
        "audit verify",
        "events",
        0,
        Arc::new(std::sync::Mutex::new(std::io::sink())),
    );
    verify_chain_with_progress(settings, &mut progress).await
}

/// Like [`verify_chain`], reporting the events checked to `progress`.
pub async fn verify_chain_with_progress(
    settings: &Settings,
    progress: &mut Progress,
) -> anyhow::Result<ChainReport> {
    let mut chain_config = app::ethers_config_with_key(settings, read_only_key()?);
    chain_config.deployment_check_ttl = std::time::Duration::from_secs(60);
    let manifest = app::checked_manifest(settings, &chain_config).await?;
    let ledger =
        EthersLedger::connect(&chain_config, manifest).context("invalid chain settings")?;
    let pool = app::pool(settings)?;
    let audit = AuditService::new(Arc::new(PgAuditStore::new(pool.clone())));

    let head = PgAuditStore::new(pool.clone())
        .head()
        .await
        .context("cannot read the audit chain head")?;
    progress.set_total(head.map_or(0, |head| head.seq));
    let report = audit
        .verify_chain_with_progress(&ledger, &mut |events| progress.advance(events))
        .await;
    pool.close();
    report.context("cannot verify the audit chain")
}

/// Returns a fresh random secp256k1 key. The chain client needs a signer
/// to be built, but verification sends no transaction, so the key never
/// signs and no configured secret is read.
pub(crate) fn read_only_key() -> anyhow::Result<SecretString> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(SecretString::from(hex::encode(bytes.as_ref())))
}

/// Describes `report` in one line, as `audit verify` prints it.
pub fn describe(report: &ChainReport) -> String {
    let anchors = match report.latest_anchor {
        None => "no head is anchored yet".to_owned(),
        Some(latest) => format!(
            "{} anchored heads checked, the latest at event {} in block {}",
            report.anchors, latest.seq, latest.block_number
        ),
    };
    match (&report.first_break, report.head) {
        (Some(problem), _) => format!(
            "audit chain broken at event {}: {problem} ({} events before it are intact)",
            problem.seq(),
            report.events_checked
        ),
        (None, None) => format!("audit chain intact: no events; {anchors}"),
        (None, Some(head)) => format!(
            "audit chain intact: {} events checked, head event {} has hash {}; {anchors}",
            report.events_checked, head.seq, head.hash
        ),
    }
}

#[cfg(test)]
mod tests {
    use meditrustal_audit::{AnchoredHead, ChainBreak, ChainHead};
    use meditrustal_crypto::Digest;

    use super::*;

    fn report(first_break: Option<ChainBreak>, anchored: bool) -> ChainReport {
        ChainReport {
            events_checked: 41,
            head: Some(ChainHead {
                seq: 42,
                hash: Digest::from_bytes([0xab; 32]),
            }),
            anchors: usize::from(anchored) * 3,
            latest_anchor: anchored.then_some(AnchoredHead {
                seq: 40,
                head_hash: Digest::from_bytes([1; 32]),
                block_number: 77,
            }),
            first_break,
        }
    }

    #[test]
    fn intact_chain_names_head_and_latest_anchor() {
        assert_eq!(
            describe(&report(None, true)),
            format!(
                "audit chain intact: 41 events checked, head event 42 has hash 0x{}; 3 anchored \
                 heads checked, the latest at event 40 in block 77",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn chain_without_anchor_says_so() {
        assert!(describe(&report(None, false)).ends_with("; no head is anchored yet"));
    }

    #[test]
    fn broken_chain_names_first_event() {
        let problem = ChainBreak::Missing { first: 7, last: 7 };

        assert_eq!(
            describe(&report(Some(problem), true)),
            "audit chain broken at event 7: event 7 is missing: it was deleted (41 events \
             before it are intact)"
        );
    }
}
