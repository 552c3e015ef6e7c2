//! Consent and emergency access: what a patient allowed a doctor to do, and
//! how a request is checked against it.
//!
//! Access is decided on every request from the stored consents and
//! break-glass events (see [`crate::ConsentStore::access_grants`]). Tokens
//! carry no access rights, so a revocation applies to the next request.

use std::fmt;

use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;
use meditrustal_identity::{Role, UserId};
use meditrustal_ledger::{Address, AnchorState, ChainAccess, ConsentSignature};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{MedicalRecord, RecordFilter, RecordId, RecordType};

/// A consent's id: a random UUID, also its key on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsentId(pub Uuid);

impl ConsentId {
    /// Returns a fresh random id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for ConsentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Access level of a consent on the records in its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read and verify them.
    Read,
    /// Read and verify them, and create new records of the patient within
    /// the scope (records are never changed after creation).
    Write,
}

impl Access {
    /// Lowercase name, as the API and the database spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    /// Parses `read` or `write`, in any letter case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }

    /// Returns the access level as `ConsentRegistry` stores it.
    pub const fn chain_access(self) -> ChainAccess {
        match self {
            Self::Read => ChainAccess::Read,
            Self::Write => ChainAccess::Write,
        }
    }

    /// Returns whether a consent with this access allows `needed`.
    pub fn allows(self, needed: Access) -> bool {
        self == Self::Write || needed == Self::Read
    }
}

/// Scope of a consent: the patient's records it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsentScope {
    /// Every record, including records created later.
    AllRecords,
    /// Records of these types, including records created later. Sorted,
    /// without duplicates.
    RecordTypes(Vec<RecordType>),
    /// These records only. Sorted, without duplicates.
    Records(Vec<RecordId>),
}

impl ConsentScope {
    /// Short name: `all`, `record_types` or `record_ids`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::AllRecords => "all",
            Self::RecordTypes(_) => "record_types",
            Self::Records(_) => "record_ids",
        }
    }

    /// Returns whether the scope contains `record`.
    pub fn covers(&self, record: &MedicalRecord) -> bool {
        match self {
            Self::AllRecords => true,
            Self::RecordTypes(types) => types.contains(&record.record_type),
            Self::Records(ids) => ids.contains(&record.id),
        }
    }

    /// Returns whether a new record of `record_type` falls within the
    /// scope. Record-id scopes never cover a record that does not exist yet.
    pub fn covers_new(&self, record_type: RecordType) -> bool {
        match self {
            Self::AllRecords => true,
            Self::RecordTypes(types) => types.contains(&record_type),
            Self::Records(_) => false,
        }
    }
}

/// A patient's consent for one doctor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    /// Id, also the key on chain.
    pub id: ConsentId,
    /// The patient who granted it.
    pub patient_id: UserId,
    /// The patient's custodial address, which signed it.
    pub patient_address: Address,
    /// The doctor it was granted to.
    pub doctor_id: UserId,
    /// The doctor's custodial address.
    pub doctor_address: Address,
    /// Access level.
    pub access: Access,
    /// Records covered.
    pub scope: ConsentScope,
    /// Reason for the grant, as the patient wrote it.
    pub purpose: Option<String>,
    /// End of validity; `None` for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was granted, whole microseconds.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The patient's EIP-712 signature of the grant.
    pub grant_signature: ConsentSignature,
    /// Chain state of the grant.
    pub grant_anchor: AnchorState,
    /// Chain state of the revocation, once revoked.
    pub revocation_anchor: Option<AnchorState>,
}

/// State of a consent at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsentStatus {
    /// In force.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked by the patient.
    Revoked,
}

impl ConsentStatus {
    /// Lowercase name, as the API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl Consent {
    /// Returns the state of the consent at `at`.
    pub fn status(&self, at: DateTime<Utc>) -> ConsentStatus {
        if self.revoked_at.is_some() {
            ConsentStatus::Revoked
        } else if self.expires_at.is_some_and(|expiry| expiry <= at) {
            ConsentStatus::Expired
        } else {
            ConsentStatus::Active
        }
    }

    /// Returns the hash committing to the scope and purpose, which the
    /// patient signs and the chain stores.
    pub fn scope_hash(&self) -> Digest {
        scope_hash(&self.scope, self.purpose.as_deref())
    }
}

/// SHA-256 over length-prefixed parts: a version tag, the scope kind, each
/// type name or record id in sorted order, and the purpose. The chain
/// stores only this hash, never the terms.
pub fn scope_hash(scope: &ConsentScope, purpose: Option<&str>) -> Digest {
    let mut parts: Vec<Vec<u8>> = vec![
        b"meditrustal.consent-scope.v1".to_vec(),
        scope.kind().as_bytes().to_vec(),
    ];
    match scope {
        ConsentScope::AllRecords => {}
        ConsentScope::RecordTypes(types) => {
            parts.extend(types.iter().map(|kind| kind.as_str().as_bytes().to_vec()));
        }
        ConsentScope::Records(ids) => {
            parts.extend(ids.iter().map(|id| id.0.as_bytes().to_vec()));
        }
    }
    // A marker byte separates "no purpose" from an empty one.
    match purpose {
        None => parts.push(vec![0]),
        Some(text) => parts.push([&[1u8][..], text.as_bytes()].concat()),
    }
    let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Digest::of_parts(&slices)
}

/// An emergency access a doctor opened without consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakGlass {
    /// Id.
    pub id: Uuid,
    /// The doctor who opened it.
    pub doctor_id: UserId,
    /// The patient whose records it opens.
    pub patient_id: UserId,
    /// The reason the doctor stated.
    pub reason: String,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

impl BreakGlass {
    /// Returns whether it still grants access at `at`.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        at < self.expires_at
    }
}

/// Basis of a doctor's access to a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessBasis {
    /// A consent of the patient.
    Consent(ConsentId),
    /// An open break-glass access.
    BreakGlass(Uuid),
}

/// Everything that currently lets one doctor access one patient's records:
/// the consents in force and the open break-glass access, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessGrants {
    /// Consents that are neither revoked nor expired.
    pub consents: Vec<Consent>,
    /// The latest break-glass access that has not ended.
    pub break_glass: Option<BreakGlass>,
}

impl AccessGrants {
    /// Returns why the doctor may access `record` with `needed` access, or
    /// `None`. Break-glass allows reading only.
    pub fn basis_for(&self, record: &MedicalRecord, needed: Access) -> Option<AccessBasis> {
        let consent = self
            .consents
            .iter()
            .find(|consent| consent.access.allows(needed) && consent.scope.covers(record));
        if let Some(consent) = consent {
            return Some(AccessBasis::Consent(consent.id));
        }
        match (&self.break_glass, needed) {
            (Some(event), Access::Read) => Some(AccessBasis::BreakGlass(event.id)),
            _ => None,
        }
    }

    /// Returns the consent that lets the doctor create a record of
    /// `record_type`: a write consent whose scope takes new records of that
    /// type.
    pub fn write_basis(&self, record_type: RecordType) -> Option<ConsentId> {
        self.consents
            .iter()
            .find(|consent| {
                consent.access == Access::Write && consent.scope.covers_new(record_type)
            })
            .map(|consent| consent.id)
    }

    /// Returns what lets the doctor list the patient's records: the open
    /// break-glass access, or else the first consent in force, or `None`.
    pub fn list_basis(&self) -> Option<AccessBasis> {
        if let Some(event) = &self.break_glass {
            return Some(AccessBasis::BreakGlass(event.id));
        }
        self.consents
            .first()
            .map(|consent| AccessBasis::Consent(consent.id))
    }

    /// Returns the filter of the records the doctor may read: `None` when
    /// none, `Some(None)` for all of them, `Some(Some(filter))` otherwise.
    pub fn read_filter(&self) -> Option<Option<RecordFilter>> {
        if self.break_glass.is_some() {
            return Some(None);
        }
        if self.consents.is_empty() {
            return None;
        }
        let mut filter = RecordFilter::default();
        for consent in &self.consents {
            match &consent.scope {
                ConsentScope::AllRecords => return Some(None),
                ConsentScope::RecordTypes(types) => filter.record_types.extend(types),
                ConsentScope::Records(ids) => filter.record_ids.extend(ids),
            }
        }
        filter.record_types.sort_by_key(|kind| kind.as_str());
        filter.record_types.dedup();
        filter.record_ids.sort();
        filter.record_ids.dedup();
        Some(Some(filter))
    }
}

/// A user as the consent rules see them: a party to a consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Party {
    /// Id.
    pub id: UserId,
    /// Current role.
    pub role: Role,
    /// Custodial address.
    pub address: Address,
    /// Whether the user may sign in.
    pub is_active: bool,
}

/// Reference to a user in a request: by id or by custodial address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartyRef {
    /// By user id.
    Id(UserId),
    /// By custodial address.
    Address(Address),
}

/// Whose consents a listing returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentParty {
    /// Consents the patient granted.
    Patient(UserId),
    /// Consents granted to the doctor.
    Doctor(UserId),
}

/// Whose break-glass events a listing returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakGlassFilter {
    /// Events on this patient's records.
    Patient(UserId),
    /// Events this doctor opened.
    Doctor(UserId),
    /// Every event, for review by admins.
    All,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use meditrustal_crypto::sha256;
    use meditrustal_ledger::AnchorState;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn record(n: u128, record_type: RecordType) -> MedicalRecord {
        MedicalRecord {
            id: RecordId(Uuid::from_u128(n)),
            patient_id: UserId(Uuid::from_u128(1)),
            record_type,
            metadata_json: None,
            data_hash: sha256(b"data"),
            anchor_hash: sha256(b"anchor"),
            anchor: AnchorState::pending(),
            created_at: at(0),
            updated_at: at(0),
            salt: meditrustal_ledger::merkle::Salt::from_bytes([3; 32]),
            batch: None,
        }
    }

    fn consent(access: Access, scope: ConsentScope) -> Consent {
        Consent {
            id: ConsentId(Uuid::from_u128(9)),
            patient_id: UserId(Uuid::from_u128(1)),
            patient_address: Address::from_bytes([1; 20]),
            doctor_id: UserId(Uuid::from_u128(2)),
            doctor_address: Address::from_bytes([2; 20]),
            access,
            scope,
            purpose: None,
            expires_at: None,
            created_at: at(0),
            revoked_at: None,
            grant_signature: ConsentSignature::from_bytes([0; 65]),
            grant_anchor: AnchorState::pending(),
            revocation_anchor: None,
        }
    }

    #[test]
    fn status_follows_revocation_then_expiry() {
        let mut granted = consent(Access::Read, ConsentScope::AllRecords);
        granted.expires_at = Some(at(60));
        assert_eq!(granted.status(at(59)), ConsentStatus::Active);
        assert_eq!(granted.status(at(60)), ConsentStatus::Expired);
        granted.revoked_at = Some(at(10));
        assert_eq!(granted.status(at(11)), ConsentStatus::Revoked);
    }

    #[test]
    fn read_consent_does_not_allow_writing() {
        let grants = AccessGrants {
            consents: vec![consent(Access::Read, ConsentScope::AllRecords)],
            break_glass: None,
        };
        let lab = record(5, RecordType::LabResult);

        assert_eq!(
            grants.basis_for(&lab, Access::Read),
            Some(AccessBasis::Consent(ConsentId(Uuid::from_u128(9))))
        );
        assert_eq!(grants.basis_for(&lab, Access::Write), None);
        assert_eq!(grants.write_basis(RecordType::LabResult), None);
    }

    #[test]
    fn type_scope_covers_only_its_types() {
        let scope = ConsentScope::RecordTypes(vec![RecordType::LabResult]);
        let grants = AccessGrants {
            consents: vec![consent(Access::Write, scope)],
            break_glass: None,
        };

        assert!(grants
            .basis_for(&record(5, RecordType::LabResult), Access::Read)
            .is_some());
        assert!(grants
            .basis_for(&record(6, RecordType::Diagnosis), Access::Read)
            .is_none());
        assert!(grants.write_basis(RecordType::LabResult).is_some());
        assert!(grants.write_basis(RecordType::Diagnosis).is_none());
    }

    #[test]
    fn record_scope_never_covers_new_records() {
        let scope = ConsentScope::Records(vec![RecordId(Uuid::from_u128(5))]);
        let grants = AccessGrants {
            consents: vec![consent(Access::Write, scope)],
            break_glass: None,
        };

        assert!(grants
            .basis_for(&record(5, RecordType::LabResult), Access::Write)
            .is_some());
        assert!(grants
            .basis_for(&record(6, RecordType::LabResult), Access::Read)
            .is_none());
        assert_eq!(grants.write_basis(RecordType::LabResult), None);
    }

    #[test]
    fn break_glass_allows_reading_everything_but_not_writing() {
        let grants = AccessGrants {
            consents: Vec::new(),
            break_glass: Some(BreakGlass {
                id: Uuid::from_u128(3),
                doctor_id: UserId(Uuid::from_u128(2)),
                patient_id: UserId(Uuid::from_u128(1)),
                reason: "unconscious in the emergency room".into(),
                created_at: at(0),
                expires_at: at(900),
            }),
        };
        let lab = record(5, RecordType::LabResult);

        assert_eq!(
            grants.basis_for(&lab, Access::Read),
            Some(AccessBasis::BreakGlass(Uuid::from_u128(3)))
        );
        assert_eq!(grants.basis_for(&lab, Access::Write), None);
        assert_eq!(grants.read_filter(), Some(None));
    }

    #[test]
    fn read_filter_joins_scopes_of_all_consents() {
        let by_type = consent(
            Access::Read,
            ConsentScope::RecordTypes(vec![RecordType::Imaging]),
        );
        let by_id = consent(
            Access::Read,
            ConsentScope::Records(vec![RecordId(Uuid::from_u128(5))]),
        );
        let grants = AccessGrants {
            consents: vec![by_type, by_id],
            break_glass: None,
        };

        assert_eq!(
            grants.read_filter(),
            Some(Some(RecordFilter {
                record_types: vec![RecordType::Imaging],
                record_ids: vec![RecordId(Uuid::from_u128(5))],
            }))
        );
        assert_eq!(AccessGrants::default().read_filter(), None);
    }

    #[test]
    fn scope_hash_separates_kinds_and_purposes() {
        let all = scope_hash(&ConsentScope::AllRecords, None);
        let empty_purpose = scope_hash(&ConsentScope::AllRecords, Some(""));
        let no_types = scope_hash(&ConsentScope::RecordTypes(Vec::new()), None);
        let lab = scope_hash(
            &ConsentScope::RecordTypes(vec![RecordType::LabResult]),
            None,
        );

        assert_ne!(all, empty_purpose);
        assert_ne!(all, no_types);
        assert_ne!(no_types, lab);
        assert_eq!(all, scope_hash(&ConsentScope::AllRecords, None));
    }
}
