use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use meditrustal_crypto::{Digest, SealedData};
use meditrustal_identity::{Did, UserId};
use meditrustal_ledger::merkle::{MerkleProof, Salt};
use meditrustal_ledger::AnchorState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A record's id: a random UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordId(pub Uuid);

impl RecordId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Kind of medical record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordType {
    /// A diagnosis.
    Diagnosis,
    /// A laboratory result.
    LabResult,
    /// A prescription.
    Prescription,
    /// A treatment plan.
    TreatmentPlan,
    /// Past medical history.
    MedicalHistory,
    /// Vital signs.
    VitalSigns,
    /// Imaging study or report.
    Imaging,
    /// A vaccination.
    Vaccination,
}

impl RecordType {
    /// Every type, in API order.
    pub const ALL: [Self; 8] = [
        Self::Diagnosis,
        Self::LabResult,
        Self::Prescription,
        Self::TreatmentPlan,
        Self::MedicalHistory,
        Self::VitalSigns,
        Self::Imaging,
        Self::Vaccination,
    ];

    /// The name as the API, the database and the chain spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Diagnosis => "DIAGNOSIS",
            Self::LabResult => "LAB_RESULT",
            Self::Prescription => "PRESCRIPTION",
            Self::TreatmentPlan => "TREATMENT_PLAN",
            Self::MedicalHistory => "MEDICAL_HISTORY",
            Self::VitalSigns => "VITAL_SIGNS",
            Self::Imaging => "IMAGING",
            Self::Vaccination => "VACCINATION",
        }
    }

    /// Parses a type name in any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.to_ascii_uppercase();
        Self::ALL.into_iter().find(|kind| kind.as_str() == upper)
    }

    /// The accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

/// A record's metadata and anchoring state, without its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MedicalRecord {
    /// Id.
    pub id: RecordId,
    /// The patient who owns it.
    pub patient_id: UserId,
    /// Kind of record.
    pub record_type: RecordType,
    /// Metadata as canonical JSON text (an object), if any.
    pub metadata_json: Option<String>,
    /// SHA-256 of the content bytes before encryption.
    pub data_hash: Digest,
    /// Key of the on-chain entry (see [`anchor_hash`]).
    pub anchor_hash: Digest,
    /// Anchoring progress.
    pub anchor: AnchorState,
    /// Creation time, whole microseconds.
    pub created_at: DateTime<Utc>,
    /// Last change (anchoring updates it).
    pub updated_at: DateTime<Utc>,
    /// Random bytes hashed into the record's batch leaf, drawn once at
    /// creation.
    pub salt: Salt,
    /// The record's place in its anchor batch, once the batcher formed it;
    /// `None` before, and for records anchored one by one.
    pub batch: Option<BatchPlacement>,
}

/// Where a record's leaf sits in an anchor batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlacement {
    /// The batch's id in our database.
    pub batch_id: i64,
    /// The batch's Merkle root, as anchored.
    pub root: Digest,
    /// The leaf's index, the leaf count and the siblings up to the root.
    pub proof: MerkleProof,
}

/// A record with its sealed content, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Metadata and state.
    pub record: MedicalRecord,
    /// The encrypted content, bound to the record by [`record_aad`].
    pub sealed: SealedData,
}

/// Associated data that binds a record's ciphertext to its id, owner, type,
/// metadata and creation time: changing any of them makes decryption fail.
pub fn record_aad(record: &MedicalRecord) -> Vec<u8> {
    let metadata = record.metadata_json.as_deref().unwrap_or("");
    Digest::of_parts(&[
        b"meditrustal.record.v1",
        record.id.0.as_bytes(),
        record.patient_id.0.as_bytes(),
        record.record_type.as_str().as_bytes(),
        metadata.as_bytes(),
        &record.created_at.timestamp_micros().to_be_bytes(),
    ])
    .as_bytes()
    .to_vec()
}

/// Computes the on-chain key of a record. It commits to the record id, so
/// two records with identical content never share a key. It also commits
/// to the content hash, owner, type, metadata and timestamp, so a change
/// to any of them makes the stored row disagree with the chain.
pub fn anchor_hash(record: &MedicalRecord) -> Digest {
    let metadata = record.metadata_json.as_deref().unwrap_or("");
    let did = Did::for_user(record.patient_id);
    anchor_hash_of(&AnchorFields {
        record_id: record.id.0,
        data_hash: record.data_hash,
        patient_did: did.as_str(),
        record_type: record.record_type.as_str(),
        metadata_json: metadata,
        created_at_unix: record.created_at.timestamp(),
    })
}

/// The fields an anchor hash commits to, as plain values, so that a
/// receipt holder can recompute it without our types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchorFields<'a> {
    /// The record id.
    pub record_id: Uuid,
    /// SHA-256 of the record content.
    pub data_hash: Digest,
    /// The owner's DID.
    pub patient_did: &'a str,
    /// The record type, as the API spells it.
    pub record_type: &'a str,
    /// The metadata JSON text, or the empty string for none.
    pub metadata_json: &'a str,
    /// The creation time in whole Unix seconds.
    pub created_at_unix: i64,
}

/// Computes the anchor hash: [`Digest::of_parts`] (each part preceded by
/// its length as a big-endian u64) over `meditrustal.anchor.v1`, the 16
/// bytes of the record id, the 32 bytes of the data hash, the DID, the
/// type and the metadata as UTF-8, and the creation time as a big-endian
/// i64.
pub fn anchor_hash_of(fields: &AnchorFields<'_>) -> Digest {
    Digest::of_parts(&[
        b"meditrustal.anchor.v1",
        fields.record_id.as_bytes(),
        fields.data_hash.as_bytes(),
        fields.patient_did.as_bytes(),
        fields.record_type.as_bytes(),
        fields.metadata_json.as_bytes(),
        &fields.created_at_unix.to_be_bytes(),
    ])
}

/// Position in a newest-first listing: the last record of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last record returned.
    pub created_at: DateTime<Utc>,
    /// Its id, the tie-breaker.
    pub id: RecordId,
}

impl Cursor {
    /// Encodes the cursor as opaque text: microseconds and id.
    pub fn encode(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.0.simple()
        )
    }

    /// Decodes text made by [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        let micros: i64 = micros.parse().ok()?;
        let created_at = Utc.timestamp_micros(micros).single()?;
        let id = Uuid::try_parse(id).ok()?;
        Some(Self {
            created_at,
            id: RecordId(id),
        })
    }
}

/// Whose records a listing is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatientSelector {
    /// The caller's own.
    Me,
    /// A named patient.
    Patient(UserId),
}

/// A subset of a patient's records: those whose type is in `record_types`
/// or whose id is in `record_ids`. Empty lists match nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Types whose records match.
    pub record_types: Vec<RecordType>,
    /// Records that match.
    pub record_ids: Vec<RecordId>,
}

/// A page request for [`crate::RecordStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListQuery {
    /// The owner.
    pub patient_id: UserId,
    /// Only records of this type, if set.
    pub record_type: Option<RecordType>,
    /// Only records within this filter, if set: what a doctor's consents
    /// cover.
    pub within: Option<RecordFilter>,
    /// Page size.
    pub limit: u32,
    /// Continue after this record.
    pub after: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_type_parses_any_case() {
        assert_eq!(RecordType::parse("lab_result"), Some(RecordType::LabResult));
        assert_eq!(
            RecordType::parse("VACCINATION"),
            Some(RecordType::Vaccination)
        );
        assert_eq!(RecordType::parse("LAB-RESULT"), None);
    }

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor {
            created_at: Utc.timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: RecordId(Uuid::from_u128(42)),
        };
        assert_eq!(
            cursor.encode(),
            "1700000000123456_0000000000000000000000000000002a"
        );
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn cursor_rejects_garbage() {
        for text in [
            "",
            "abc",
            "12_notauuid",
            "x_0000000000000000000000000000002a",
        ] {
            assert_eq!(Cursor::decode(text), None, "{text:?}");
        }
    }
}
