//! Integrity verification of one record: local hashes first, then the chain.

use chrono::{DateTime, Utc};
use meditrustal_crypto::{sha256, Digest, KeyProvider};
use meditrustal_identity::{Did, UserId};
use meditrustal_ledger::merkle::leaf_hash;
use meditrustal_ledger::{
    AnchorState, AnchorStatus, Ledger, LedgerError, OnChainBatch, OnChainRecord, TxStatus,
};
use serde::Serialize;

use crate::types::{anchor_hash, record_aad, BatchPlacement, RecordId, StoredRecord};

/// Result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckOutcome {
    /// The check passed.
    Passed,
    /// The check found a mismatch or a missing anchor.
    Failed,
    /// The check could not run (the chain was unreachable).
    Unavailable,
}

/// One named check and why it came out as it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name: `ciphertext`, `data_hash`, `anchor_hash`,
    /// `anchor_status`, `chain_entry`, `transaction`, `owner`,
    /// `record_type` or `timestamp`.
    pub name: &'static str,
    /// Outcome.
    pub outcome: CheckOutcome,
    /// A sentence explaining the outcome.
    pub reason: String,
}

/// Full verification report of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The record.
    pub record_id: RecordId,
    /// The patient the stored record names as its owner.
    pub patient_id: UserId,
    /// True only if every check passed.
    pub verified: bool,
    /// Each check in order.
    pub checks: Vec<Check>,
    /// Anchoring state stored with the record.
    pub anchor: AnchorState,
    /// The anchor hash recomputed from the stored fields.
    pub anchor_hash: Digest,
    /// When the checks ran.
    pub checked_at: DateTime<Utc>,
}

struct Checks(Vec<Check>);

impl Checks {
    fn pass(&mut self, name: &'static str, reason: impl Into<String>) {
        self.0.push(Check {
            name,
            outcome: CheckOutcome::Passed,
            reason: reason.into(),
        });
    }

    fn fail(&mut self, name: &'static str, reason: impl Into<String>) {
        self.0.push(Check {
            name,
            outcome: CheckOutcome::Failed,
            reason: reason.into(),
        });
    }

    fn unavailable(&mut self, name: &'static str, reason: impl Into<String>) {
        self.0.push(Check {
            name,
            outcome: CheckOutcome::Unavailable,
            reason: reason.into(),
        });
    }
}

/// Runs every check on `stored`. Chain errors become failed or unavailable
/// checks; this function itself cannot fail. The API reaches it through
/// the access rules of [`RecordService`](crate::RecordService); operator
/// commands, such as the check after a restore, call it directly.
pub async fn verify_record(
    stored: &StoredRecord,
    keys: &dyn KeyProvider,
    ledger: &dyn Ledger,
) -> Verification {
    let record = &stored.record;
    let mut checks = Checks(Vec::new());

    check_content(stored, keys, &mut checks);

    let recomputed = anchor_hash(record);
    if recomputed == record.anchor_hash {
        checks.pass(
            "anchor_hash",
            "the stored anchor hash matches the record's fields",
        );
    } else {
        checks.fail(
            "anchor_hash",
            format!(
                "the record's fields hash to {recomputed}, but the row stores {}",
                record.anchor_hash
            ),
        );
    }

    check_chain(stored, recomputed, ledger, &mut checks).await;

    let verified = checks
        .0
        .iter()
        .all(|check| check.outcome == CheckOutcome::Passed);
    Verification {
        record_id: record.id,
        patient_id: record.patient_id,
        verified,
        checks: checks.0,
        anchor: record.anchor,
        anchor_hash: recomputed,
        checked_at: Utc::now(),
    }
}

fn check_content(stored: &StoredRecord, keys: &dyn KeyProvider, checks: &mut Checks) {
    let record = &stored.record;
    match meditrustal_crypto::open(keys, &stored.sealed, &record_aad(record)) {
        Ok(plaintext) => {
            checks.pass("ciphertext", "the content decrypts and its authentication tag matches the record's id, owner, type, metadata and creation time");
            let actual = sha256(&plaintext);
            if actual == record.data_hash {
                checks.pass(
                    "data_hash",
                    "SHA-256 of the decrypted content equals data_hash",
                );
            } else {
                checks.fail(
                    "data_hash",
                    format!(
                        "SHA-256 of the decrypted content is {actual}, but data_hash is {}",
                        record.data_hash
                    ),
                );
            }
        }
        Err(error) => {
            checks.fail("ciphertext", format!("decryption failed ({error}): the ciphertext, or the record's owner, type, metadata or creation time, was altered"));
            checks.fail(
                "data_hash",
                "cannot be checked because the content does not decrypt",
            );
        }
    }
}

async fn check_chain(
    stored: &StoredRecord,
    recomputed: Digest,
    ledger: &dyn Ledger,
    checks: &mut Checks,
) {
    let record = &stored.record;
    let (Some(tx_hash), Some(block_number), AnchorStatus::Anchored) = (
        record.anchor.tx_hash,
        record.anchor.block_number,
        record.anchor.status,
    ) else {
        let reason = match record.anchor.status {
            AnchorStatus::Failed => "anchoring failed: the chain rejected the transaction",
            _ => "not anchored yet: the anchoring transaction is queued or awaiting mining",
        };
        checks.fail("anchor_status", reason);
        return;
    };
    checks.pass(
        "anchor_status",
        format!("anchored by transaction {tx_hash} in block {block_number}"),
    );

    match ledger.transaction_status(&tx_hash).await {
        Ok(TxStatus::Mined(anchor)) if anchor.block_number == block_number => checks.pass(
            "transaction",
            format!("transaction {tx_hash} is mined in block {block_number}"),
        ),
        Ok(TxStatus::Mined(anchor)) => checks.fail(
            "transaction",
            format!(
                "transaction {tx_hash} is in block {}, but the record stores block {block_number}",
                anchor.block_number
            ),
        ),
        Ok(TxStatus::Pending) => {
            checks.fail("transaction", format!("transaction {tx_hash} is not mined"))
        }
        Ok(TxStatus::Reverted) => {
            checks.fail("transaction", format!("transaction {tx_hash} reverted"))
        }
        Ok(TxStatus::Unknown) => checks.fail(
            "transaction",
            format!("the chain does not know transaction {tx_hash}; it may have been reset"),
        ),
        Err(error) => checks.unavailable(
            "transaction",
            format!("could not read the transaction: {error}"),
        ),
    }

    if let Some(placement) = &record.batch {
        check_batch(
            stored,
            placement,
            recomputed,
            tx_hash,
            block_number,
            ledger,
            checks,
        )
        .await;
        return;
    }

    let (entry, matches_fields) = match find_entry(ledger, recomputed, record.anchor_hash).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            checks.fail("chain_entry", format!("the chain holds no entry for anchor hash {recomputed}; the record was altered or the chain was reset"));
            return;
        }
        Err(LedgerError::ContractsMissing) => {
            checks.fail("chain_entry", "no contract code at the configured registry address; the chain was reset or the contracts were never deployed");
            return;
        }
        Err(error) => {
            checks.unavailable("chain_entry", format!("could not read the chain: {error}"));
            return;
        }
    };
    if !matches_fields {
        checks.fail("chain_entry", format!("the registry holds the stored anchor hash {}, but none for {recomputed}, the hash of the record's current fields; a field changed after anchoring", record.anchor_hash));
    } else if entry
        .tx_hash
        .is_some_and(|written_by| written_by != tx_hash)
    {
        let written_by = entry
            .tx_hash
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        checks.fail("chain_entry", format!("the registry entry was written by transaction {written_by}, but the record stores {tx_hash}"));
    } else if entry.block_number == block_number {
        checks.pass(
            "chain_entry",
            format!("the registry holds the anchor hash, written in block {block_number}"),
        );
    } else {
        checks.fail("chain_entry", format!("the registry entry was written in block {}, but the record stores block {block_number}", entry.block_number));
    }

    compare_entry(stored, &entry, checks);
}

/// Looks the entry up by the recomputed hash. If that finds nothing and the
/// stored hash differs, it looks up the stored hash, so the report can name
/// what changed. The flag is true when the entry matches the current fields.
async fn find_entry(
    ledger: &dyn Ledger,
    recomputed: Digest,
    stored: Digest,
) -> Result<Option<(OnChainRecord, bool)>, LedgerError> {
    if let Some(entry) = ledger.find_record(&recomputed).await? {
        return Ok(Some((entry, true)));
    }
    if recomputed == stored {
        return Ok(None);
    }
    Ok(ledger
        .find_record(&stored)
        .await?
        .map(|entry| (entry, false)))
}

fn compare_entry(stored: &StoredRecord, entry: &OnChainRecord, checks: &mut Checks) {
    let record = &stored.record;
    let did = Did::for_user(record.patient_id);
    if entry.patient_did == did.as_str() {
        checks.pass("owner", format!("the chain names the same patient, {did}"));
    } else {
        checks.fail(
            "owner",
            format!(
                "the chain names patient {}, but the record belongs to {did}",
                entry.patient_did
            ),
        );
    }

    if entry.record_type == record.record_type.as_str() {
        checks.pass(
            "record_type",
            format!("the chain stores the same type, {}", entry.record_type),
        );
    } else {
        checks.fail(
            "record_type",
            format!(
                "the chain stores type {}, but the record has {}",
                entry.record_type,
                record.record_type.as_str()
            ),
        );
    }

    let created = record.created_at.timestamp();
    if i64::try_from(entry.timestamp).ok() == Some(created) {
        checks.pass(
            "timestamp",
            format!("the chain stores the creation time {created} (Unix seconds)"),
        );
    } else {
        checks.fail(
            "timestamp",
            format!(
                "the chain stores time {}, but the record was created at {created} (Unix seconds)",
                entry.timestamp
            ),
        );
    }
}

/// The chain checks of a batch-anchored record. The chain holds only the
/// batch root and leaf count, so `chain_entry` proves the record's leaf
/// into that root with the stored path, and `owner`, `record_type` and
/// `timestamp` pass only when the leaf of the record's current fields is
/// the anchored one.
async fn check_batch(
    stored: &StoredRecord,
    placement: &BatchPlacement,
    recomputed: Digest,
    tx_hash: Digest,
    block_number: u64,
    ledger: &dyn Ledger,
    checks: &mut Checks,
) {
    let record = &stored.record;
    let root = placement.root;
    let leaf_of = |commitment: &Digest| leaf_hash(&record.salt, commitment);
    let proven = match placement.proof.root_for(&leaf_of(&recomputed)) {
        Ok(reached) if reached == root => Ok(()),
        Ok(_) if placement.proof.root_for(&leaf_of(&record.anchor_hash)) == Ok(root) => Err(format!("the batch root {root} commits to the stored anchor hash {}, but not to {recomputed}, the hash of the record's current fields; a field changed after anchoring", record.anchor_hash)),
        Ok(reached) => Err(format!("the stored path leads from the record's leaf to {reached}, not to the batch root {root}; the salt, the path or the root was altered")),
        Err(error) => Err(format!("the stored path is invalid: {error}")),
    };

    let entry = match ledger.find_batch(&root).await {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            checks.fail("chain_entry", format!("the chain holds no batch with root {root}; the root was altered or the chain was reset"));
            return fail_batch_fields(checks);
        }
        Err(LedgerError::ContractsMissing) => {
            checks.fail("chain_entry", "no BatchAnchorRegistry code at the configured address; the chain was reset or the contract was never deployed");
            return fail_batch_fields(checks);
        }
        Err(error) => {
            checks.unavailable("chain_entry", format!("could not read the chain: {error}"));
            return;
        }
    };

    match chain_entry_problem(&entry, placement, tx_hash, block_number).or(proven.err()) {
        Some(problem) => {
            checks.fail("chain_entry", problem);
            fail_batch_fields(checks);
        }
        None => {
            checks.pass("chain_entry", format!("the record's leaf {} of {} leads to the batch root {root}, anchored in block {block_number}", placement.proof.leaf_index, placement.proof.leaf_count));
            let did = Did::for_user(record.patient_id);
            checks.pass("owner", format!("the anchored leaf commits to the patient {did}; batch anchors keep it off the chain"));
            checks.pass(
                "record_type",
                format!(
                    "the anchored leaf commits to the type {}; batch anchors keep it off the chain",
                    record.record_type.as_str()
                ),
            );
            checks.pass(
                "timestamp",
                format!(
                    "the anchored leaf commits to the creation time {} (Unix seconds)",
                    record.created_at.timestamp()
                ),
            );
        }
    }
}

/// Compares the on-chain batch with the record's stored anchor.
fn chain_entry_problem(
    entry: &OnChainBatch,
    placement: &BatchPlacement,
    tx_hash: Digest,
    block_number: u64,
) -> Option<String> {
    if let Some(written_by) = entry.tx_hash.filter(|written_by| *written_by != tx_hash) {
        return Some(format!("the batch root was anchored by transaction {written_by}, but the record stores {tx_hash}"));
    }
    if entry.block_number != block_number {
        return Some(format!(
            "the batch root was anchored in block {}, but the record stores block {block_number}",
            entry.block_number
        ));
    }
    if entry.leaf_count != placement.proof.leaf_count {
        return Some(format!(
            "the chain stores {} leaves under the root, but the record's path is for {}",
            entry.leaf_count, placement.proof.leaf_count
        ));
    }
    None
}

/// Fails the field checks that a batch anchor proves only through the
/// record's leaf, when that leaf is not proven.
fn fail_batch_fields(checks: &mut Checks) {
    let reason = "not confirmed: batch anchors keep this field off the chain, and the leaf of the record's current fields is not proven anchored";
    for name in ["owner", "record_type", "timestamp"] {
        checks.fail(name, reason);
    }
}
