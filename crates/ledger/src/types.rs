use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::consent::{SignedGrant, SignedRevocation};

/// An Ethereum account address, spelled `0x`-prefixed lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address([u8; 20]);

/// Error from parsing an address that is not `0x` followed by 40 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid address: expected 0x followed by 40 hex digits")]
pub struct AddressParseError;

impl Address {
    /// Wraps 20 raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw 20 bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressParseError;

    /// Accepts either letter case, since EIP-55 checksummed addresses mix
    /// cases; the value always prints in lowercase.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix("0x").ok_or(AddressParseError)?;
        if digits.len() != 40 {
            return Err(AddressParseError);
        }
        let mut out = [0u8; 20];
        hex::decode_to_slice(digits, &mut out).map_err(|_| AddressParseError)?;
        Ok(Self(out))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A transaction hash. Same spelling rules as [`Digest`].
pub type TxHash = Digest;

/// Role of a user as the `UserRegistry` contract stores it (a `uint8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainRole {
    /// Stored as 1.
    Patient,
    /// Stored as 2.
    Doctor,
    /// Stored as 3.
    Admin,
}

impl ChainRole {
    /// The contract's numeric code for this role.
    pub const fn code(self) -> u8 {
        match self {
            Self::Patient => 1,
            Self::Doctor => 2,
            Self::Admin => 3,
        }
    }
}

/// A user to register on the `UserRegistry` contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistration {
    /// The user's id in our database.
    pub user_id: Uuid,
    /// The user's DID, `did:meditrustal:...`.
    pub did: String,
    /// The user's custodial account address.
    pub address: Address,
    /// The user's role.
    pub role: ChainRole,
}

/// A record hash to anchor on the `MedicalRecordRegistry` contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAnchor {
    /// The record's id in our database.
    pub record_id: Uuid,
    /// Key of the on-chain entry: commits to the record id, its content
    /// hash, owner, type and metadata, so equal content never collides.
    pub anchor_hash: Digest,
    /// DID of the patient who owns the record.
    pub patient_did: String,
    /// Record type, as the API spells it (`LAB_RESULT`).
    pub record_type: String,
    /// Record creation time in Unix seconds.
    pub timestamp: u64,
}

/// A head of the audit log's hash chain to anchor on the
/// `AuditAnchorRegistry` contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHeadAnchor {
    /// Sequence number of the event at the head.
    pub seq: u64,
    /// Hash of that event, which commits to every earlier event.
    pub head_hash: Digest,
}

/// A batch root to anchor on the `BatchAnchorRegistry` contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAnchor {
    /// The batch's id in our database.
    pub batch_id: i64,
    /// Merkle root over the batch's leaves (see [`crate::merkle`]).
    pub root: Digest,
    /// Number of leaves under the root.
    pub leaf_count: u32,
}

/// One unit of chain work, stored in the outbox until it is mined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerJob {
    /// Register a user on `UserRegistry`.
    RegisterUser(UserRegistration),
    /// Anchor a record hash on `MedicalRecordRegistry`.
    AnchorRecord(RecordAnchor),
    /// Record a patient-signed consent on `ConsentRegistry`.
    GrantConsent(SignedGrant),
    /// Record a patient-signed revocation on `ConsentRegistry`.
    RevokeConsent(SignedRevocation),
    /// Anchor an audit chain head on `AuditAnchorRegistry`.
    AnchorAuditHead(AuditHeadAnchor),
    /// Anchor the Merkle root of a batch of records on
    /// `BatchAnchorRegistry`.
    AnchorBatch(BatchAnchor),
}

impl LedgerJob {
    /// Short name of the job kind, for logs and metrics.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::RegisterUser(_) => "register_user",
            Self::AnchorRecord(_) => "anchor_record",
            Self::GrantConsent(_) => "grant_consent",
            Self::RevokeConsent(_) => "revoke_consent",
            Self::AnchorAuditHead(_) => "anchor_audit_head",
            Self::AnchorBatch(_) => "anchor_batch",
        }
    }
}

/// A job claimed from the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxJob {
    /// Outbox row id.
    pub id: i64,
    /// The job to send.
    pub job: LedgerJob,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Transaction already sent for this job and not yet seen mined.
    pub submitted_tx: Option<TxHash>,
}

/// Block and transaction of a mined entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainAnchor {
    /// The transaction that wrote the entry.
    pub tx_hash: TxHash,
    /// The block that contains it.
    pub block_number: u64,
}

/// Result of sending a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submission {
    /// Mined successfully (or found already on-chain from an earlier send).
    Mined(ChainAnchor),
    /// Sent but not mined within the adapter's wait; check again later.
    Sent(TxHash),
}

/// State of a sent transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Mined with success status.
    Mined(ChainAnchor),
    /// Known to the node but not mined yet.
    Pending,
    /// Mined but reverted.
    Reverted,
    /// The node does not know it: dropped, or the chain was reset.
    Unknown,
}

/// An entry read back from `MedicalRecordRegistry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainRecord {
    /// Patient DID stored on-chain.
    pub patient_did: String,
    /// Record type stored on-chain.
    pub record_type: String,
    /// Timestamp argument of `addRecord`, in Unix seconds.
    pub timestamp: u64,
    /// Block in which the entry was written.
    pub block_number: u64,
    /// Transaction that wrote the entry, from its `RecordAdded` event;
    /// `None` if the node no longer serves that log.
    pub tx_hash: Option<TxHash>,
}

/// A batch read back from `BatchAnchorRegistry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainBatch {
    /// Leaf count stored with the root.
    pub leaf_count: u64,
    /// Block in which the root was anchored.
    pub block_number: u64,
    /// Transaction that anchored it, from its `BatchAnchored` event;
    /// `None` if the node no longer serves that log.
    pub tx_hash: Option<TxHash>,
}

/// Where a contract lives: the chain and the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractLocation {
    /// Chain id.
    pub chain_id: u64,
    /// Contract address.
    pub address: Address,
}

/// How records reach the chain, chosen by `anchoring.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorMode {
    /// Many records per transaction: one Merkle root on
    /// `BatchAnchorRegistry`, with no patient DID or record type on chain.
    #[default]
    Batch,
    /// One `addRecord` transaction per record on `MedicalRecordRegistry`,
    /// with the patient DID and record type in clear.
    PerRecord,
}

impl AnchorMode {
    /// The configuration spelling: `batch` or `per_record`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Batch => "batch",
            Self::PerRecord => "per_record",
        }
    }
}

/// Health of the chain connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainStatus {
    /// Chain id reported by the node.
    pub chain_id: u64,
    /// Latest block number.
    pub block_number: u64,
}

/// Anchoring progress of a record, as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnchorStatus {
    /// Waiting in the outbox, or waiting to be mined.
    Pending,
    /// Mined on-chain.
    Anchored,
    /// The chain rejected the transaction; an operator must look.
    Failed,
}

impl AnchorStatus {
    /// Lowercase name, as stored and serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Anchored => "anchored",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "anchored" => Some(Self::Anchored),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Anchoring state stored with a record or user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorState {
    /// Progress.
    pub status: AnchorStatus,
    /// Transaction hash, once sent.
    pub tx_hash: Option<TxHash>,
    /// Block number, once mined.
    pub block_number: Option<u64>,
    /// When the transaction was seen mined.
    pub anchored_at: Option<DateTime<Utc>>,
}

impl AnchorState {
    /// State of something not sent yet.
    pub const fn pending() -> Self {
        Self {
            status: AnchorStatus::Pending,
            tx_hash: None,
            block_number: None,
            anchored_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_head_job_serializes_with_its_kind() {
        let job = LedgerJob::AnchorAuditHead(AuditHeadAnchor {
            seq: 42,
            head_hash: Digest::from_bytes([0xab; 32]),
        });

        let json = serde_json::to_value(&job).unwrap();

        assert_eq!(job.kind(), "anchor_audit_head");
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "anchor_audit_head",
                "seq": 42,
                "head_hash": format!("0x{}", "ab".repeat(32)),
            })
        );
        assert_eq!(serde_json::from_value::<LedgerJob>(json).unwrap(), job);
    }

    #[test]
    fn address_prints_lowercase_whatever_the_input_case() {
        let address: Address = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
            .parse()
            .unwrap();
        assert_eq!(
            address.to_string(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
    }

    #[test]
    fn address_rejects_missing_prefix_and_wrong_length() {
        assert_eq!(
            "f39fd6e51aad88f6f4ce6ab8827279cfffb92266".parse::<Address>(),
            Err(AddressParseError)
        );
        assert_eq!("0xf39fd6".parse::<Address>(), Err(AddressParseError));
        assert_eq!(
            "0xz39fd6e51aad88f6f4ce6ab8827279cfffb92266".parse::<Address>(),
            Err(AddressParseError)
        );
    }
}
