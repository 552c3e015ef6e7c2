//! Anchor receipts: everything a patient needs to prove, without our
//! database, that a record was anchored in a batch. docs/anchoring.md shows
//! the JSON and the bytes behind each hash.

use meditrustal_crypto::{sha256, Digest};
use meditrustal_identity::Did;
use meditrustal_ledger::merkle::{check_steps, fold_steps, leaf_hash, ProofStep, Salt};
use meditrustal_ledger::{Address, ContractLocation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{anchor_hash_of, AnchorFields, MedicalRecord};

/// Value of [`Receipt::format`].
pub const RECEIPT_FORMAT: &str = "meditrustal.batch-receipt";
/// The receipt version this build writes and checks.
pub const RECEIPT_VERSION: u32 = 1;

/// A self-contained proof that a record's leaf is under a batch root that
/// a given transaction anchored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Always [`RECEIPT_FORMAT`].
    pub format: String,
    /// Format version, [`RECEIPT_VERSION`].
    pub version: u32,
    /// What the leaf commits to.
    pub leaf: LeafInputs,
    /// `SHA-256(0x00 || salt || anchor_hash)`.
    pub leaf_hash: Digest,
    /// Position of the leaf in the batch, from 0.
    pub leaf_index: u64,
    /// Number of leaves in the batch.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up, each with its side.
    pub path: Vec<ProofStep>,
    /// The batch's Merkle root.
    pub root: Digest,
    /// Where and when the root was anchored.
    pub anchor: ReceiptAnchor,
}

/// The values a leaf commits to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafInputs {
    /// The record's random salt.
    pub salt: Salt,
    /// The record id.
    pub record_id: Uuid,
    /// SHA-256 of the record content (`raw_data` as UTF-8 bytes).
    pub data_hash: Digest,
    /// The owner's DID.
    pub patient_did: String,
    /// The record type.
    pub record_type: String,
    /// The metadata JSON text exactly as stored, or `null`.
    pub metadata_json: Option<String>,
    /// Creation time in whole Unix seconds.
    pub created_at_unix: i64,
    /// The anchor hash over the fields above (see
    /// [`crate::anchor_hash_of`]).
    pub anchor_hash: Digest,
}

/// The chain, contract and transaction of an anchored root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAnchor {
    /// Chain id.
    pub chain_id: u64,
    /// Address of the `BatchAnchorRegistry` contract.
    pub contract_address: Address,
    /// The transaction that anchored the root.
    pub tx_hash: Digest,
    /// The block that contains it.
    pub block_number: u64,
}

/// One check of a receipt and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptCheck {
    /// Stable name: `format`, `content`, `anchor_hash`, `leaf_hash`,
    /// `merkle_path`, `chain_id`, `transaction`, `anchor_event` or
    /// `contract_state`.
    pub name: &'static str,
    /// True when the check passed.
    pub passed: bool,
    /// A sentence explaining the outcome.
    pub detail: String,
}

impl ReceiptCheck {
    /// A passed check.
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: true,
            detail: detail.into(),
        }
    }

    /// A failed check.
    pub fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            passed: false,
            detail: detail.into(),
        }
    }
}

impl Receipt {
    /// Builds the receipt of a batch-anchored record; `None` when the
    /// record has no batch or is not anchored yet.
    pub fn for_record(record: &MedicalRecord, contract: ContractLocation) -> Option<Self> {
        let placement = record.batch.as_ref()?;
        let (Some(tx_hash), Some(block_number)) =
            (record.anchor.tx_hash, record.anchor.block_number)
        else {
            return None;
        };
        let path = placement.proof.steps().ok()?;

        Some(Self {
            format: RECEIPT_FORMAT.to_owned(),
            version: RECEIPT_VERSION,
            leaf: LeafInputs {
                salt: record.salt,
                record_id: record.id.0,
                data_hash: record.data_hash,
                patient_did: Did::for_user(record.patient_id).as_str().to_owned(),
                record_type: record.record_type.as_str().to_owned(),
                metadata_json: record.metadata_json.clone(),
                created_at_unix: record.created_at.timestamp(),
                anchor_hash: record.anchor_hash,
            },
            leaf_hash: leaf_hash(&record.salt, &record.anchor_hash),
            leaf_index: placement.proof.leaf_index,
            leaf_count: placement.proof.leaf_count,
            path,
            root: placement.root,
            anchor: ReceiptAnchor {
                chain_id: contract.chain_id,
                contract_address: contract.address,
                tx_hash,
                block_number,
            },
        })
    }

    /// Runs the checks that need no chain: format, content (when `content`
    /// is given), anchor hash, leaf hash and Merkle path. Each later check
    /// starts from values recomputed by the earlier ones, not from the
    /// receipt's own hashes.
    pub fn check_offline(&self, content: Option<&[u8]>) -> Vec<ReceiptCheck> {
        let mut checks = Vec::new();
        if self.format == RECEIPT_FORMAT && self.version == RECEIPT_VERSION {
            checks.push(ReceiptCheck::pass(
                "format",
                format!("{RECEIPT_FORMAT} version {RECEIPT_VERSION}"),
            ));
        } else {
            checks.push(ReceiptCheck::fail(
                "format",
                format!(
                    "format {} version {} is not {RECEIPT_FORMAT} version {RECEIPT_VERSION}",
                    self.format, self.version
                ),
            ));
        }

        if let Some(content) = content {
            let actual = sha256(content);
            checks.push(if actual == self.leaf.data_hash {
                ReceiptCheck::pass(
                    "content",
                    "SHA-256 of the content file equals leaf.data_hash",
                )
            } else {
                ReceiptCheck::fail(
                    "content",
                    format!(
                        "SHA-256 of the content file is {actual}, but leaf.data_hash is {}",
                        self.leaf.data_hash
                    ),
                )
            });
        }

        let anchor_hash = self.recomputed_anchor_hash();
        checks.push(if anchor_hash == self.leaf.anchor_hash {
            ReceiptCheck::pass(
                "anchor_hash",
                format!("the leaf inputs hash to {anchor_hash}"),
            )
        } else {
            ReceiptCheck::fail(
                "anchor_hash",
                format!(
                    "the leaf inputs hash to {anchor_hash}, but leaf.anchor_hash is {}",
                    self.leaf.anchor_hash
                ),
            )
        });

        let leaf = leaf_hash(&self.leaf.salt, &anchor_hash);
        checks.push(if leaf == self.leaf_hash {
            ReceiptCheck::pass(
                "leaf_hash",
                format!("SHA-256(0x00 || salt || anchor_hash) is {leaf}"),
            )
        } else {
            ReceiptCheck::fail(
                "leaf_hash",
                format!(
                    "SHA-256(0x00 || salt || anchor_hash) is {leaf}, but leaf_hash is {}",
                    self.leaf_hash
                ),
            )
        });

        checks.push(self.check_path(&leaf));
        checks
    }

    fn recomputed_anchor_hash(&self) -> Digest {
        anchor_hash_of(&AnchorFields {
            record_id: self.leaf.record_id,
            data_hash: self.leaf.data_hash,
            patient_did: &self.leaf.patient_did,
            record_type: &self.leaf.record_type,
            metadata_json: self.leaf.metadata_json.as_deref().unwrap_or(""),
            created_at_unix: self.leaf.created_at_unix,
        })
    }

    fn check_path(&self, leaf: &Digest) -> ReceiptCheck {
        if let Err(error) = check_steps(self.leaf_index, self.leaf_count, &self.path) {
            return ReceiptCheck::fail("merkle_path", error.to_string());
        }
        let reached = fold_steps(leaf, &self.path);
        if reached == self.root {
            ReceiptCheck::pass(
                "merkle_path",
                format!(
                    "the path leads from leaf {} of {} to the root {reached}",
                    self.leaf_index, self.leaf_count
                ),
            )
        } else {
            ReceiptCheck::fail(
                "merkle_path",
                format!("the path leads to {reached}, but the root is {}", self.root),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use meditrustal_identity::UserId;
    use meditrustal_ledger::merkle::MerkleTree;
    use meditrustal_ledger::{AnchorState, AnchorStatus};

    use super::*;
    use crate::types::{anchor_hash, BatchPlacement, RecordId, RecordType};

    fn record(n: u8) -> MedicalRecord {
        let created_at = Utc.timestamp_opt(1_800_000_000 + i64::from(n), 0).unwrap();
        let mut record = MedicalRecord {
            id: RecordId(Uuid::from_u128(u128::from(n))),
            patient_id: UserId(Uuid::from_u128(77)),
            record_type: RecordType::LabResult,
            metadata_json: Some(r#"{"source":"lab"}"#.into()),
            data_hash: sha256(&[n]),
            anchor_hash: sha256(b""),
            anchor: AnchorState {
                status: AnchorStatus::Anchored,
                tx_hash: Some(Digest::from_bytes([0xee; 32])),
                block_number: Some(12),
                anchored_at: Some(created_at),
            },
            created_at,
            updated_at: created_at,
            salt: Salt::from_bytes([n; 32]),
            batch: None,
        };
        record.anchor_hash = anchor_hash(&record);
        record
    }

    fn anchored_batch() -> Vec<MedicalRecord> {
        let mut records: Vec<MedicalRecord> = (0..3).map(record).collect();
        let leaves = records
            .iter()
            .map(|record| leaf_hash(&record.salt, &record.anchor_hash))
            .collect();
        let tree = MerkleTree::new(leaves).unwrap();
        for (index, record) in records.iter_mut().enumerate() {
            record.batch = Some(BatchPlacement {
                batch_id: 5,
                root: tree.root(),
                proof: tree.proof(index).unwrap(),
            });
        }
        records
    }

    fn contract() -> ContractLocation {
        ContractLocation {
            chain_id: 31337,
            address: Address::from_bytes([0xbb; 20]),
        }
    }

    fn failed(checks: &[ReceiptCheck]) -> Vec<&'static str> {
        checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| check.name)
            .collect()
    }

    #[test]
    fn every_receipt_of_a_batch_checks_out() {
        for record in anchored_batch() {
            let receipt = Receipt::for_record(&record, contract()).unwrap();
            let checks = receipt.check_offline(Some(&[record.id.0.as_bytes()[15]]));

            assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:?}");
            assert_eq!(checks.len(), 5);
        }
    }

    #[test]
    fn pending_record_has_no_receipt() {
        let mut record = anchored_batch().remove(0);
        record.anchor = AnchorState::pending();
        assert_eq!(Receipt::for_record(&record, contract()), None);

        record.batch = None;
        assert_eq!(Receipt::for_record(&record, contract()), None);
    }

    #[test]
    fn one_changed_byte_fails_the_named_check() {
        let receipt = Receipt::for_record(&anchored_batch()[1], contract()).unwrap();
        let flip = |digest: Digest| {
            let mut bytes = *digest.as_bytes();
            bytes[7] ^= 1;
            Digest::from_bytes(bytes)
        };

        let mut salt = receipt.clone();
        let mut bytes = *salt.leaf.salt.as_bytes();
        bytes[0] ^= 1;
        salt.leaf.salt = Salt::from_bytes(bytes);
        assert_eq!(
            failed(&salt.check_offline(None)),
            ["leaf_hash", "merkle_path"]
        );

        let mut data = receipt.clone();
        data.leaf.data_hash = flip(data.leaf.data_hash);
        assert_eq!(
            failed(&data.check_offline(None)),
            ["anchor_hash", "leaf_hash", "merkle_path"]
        );

        let mut did = receipt.clone();
        did.leaf.patient_did.push('x');
        assert_eq!(
            failed(&did.check_offline(None)),
            ["anchor_hash", "leaf_hash", "merkle_path"]
        );

        let mut node = receipt.clone();
        node.path[0].hash = flip(node.path[0].hash);
        assert_eq!(failed(&node.check_offline(None)), ["merkle_path"]);

        let mut root = receipt.clone();
        root.root = flip(root.root);
        assert_eq!(failed(&root.check_offline(None)), ["merkle_path"]);

        let content = receipt.check_offline(Some(b"other content"));
        assert_eq!(failed(&content), ["content"]);
    }
}
