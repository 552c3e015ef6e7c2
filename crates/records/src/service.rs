use std::sync::Arc;

use chrono::{DurationRound, TimeDelta, Utc};
use meditrustal_crypto::{sha256, CryptoError, KeyProvider};
use meditrustal_identity::{Did, Principal, Role, UserId};
use meditrustal_ledger::merkle::Salt;
use meditrustal_ledger::{AnchorState, AnchorStatus, Ledger, LedgerJob, RecordAnchor};
use serde_json::Value;
use uuid::Uuid;

use crate::consent::{Access, AccessBasis, AccessGrants};
use crate::error::{AccessDenial, RecordError};
use crate::ports::{ConsentStore, JobSignal, RecordStore, RecordStoreError};
use crate::receipt::Receipt;
use crate::types::{
    anchor_hash, record_aad, Cursor, ListQuery, MedicalRecord, PatientSelector, RecordFilter,
    RecordId, RecordType, StoredRecord,
};
use crate::verify::{self, Verification};

/// A create request after JSON decoding, before validation.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRecordRequest {
    /// Type name in any letter case.
    pub record_type: String,
    /// Optional metadata as JSON text, exactly as sent; must be an object
    /// or null. It is stored as sent, so numbers keep every digit.
    pub record_metadata: Option<String>,
    /// The content, typically FHIR R4 JSON; stored byte for byte.
    pub raw_data: String,
    /// The owner; defaults to the caller.
    pub patient_id: Option<Uuid>,
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPage {
    /// Records, newest first.
    pub records: Vec<MedicalRecord>,
    /// Cursor of the next page, if there is one.
    pub next: Option<Cursor>,
}

/// Default and maximum page sizes of listings.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;
/// Maximum size of the canonical metadata JSON, in bytes.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Create, read, list and verify rules over the record ports. A doctor's
/// request is checked against the patient's consents and break-glass
/// accesses, read from the [`ConsentStore`] on every call.
pub struct RecordService {
    store: Arc<dyn RecordStore>,
    consents: Arc<dyn ConsentStore>,
    ledger: Arc<dyn Ledger>,
    keys: Arc<dyn KeyProvider>,
    signal: Arc<dyn JobSignal>,
}

impl RecordService {
    /// Builds the service over its ports.
    pub fn new(
        store: Arc<dyn RecordStore>,
        consents: Arc<dyn ConsentStore>,
        ledger: Arc<dyn Ledger>,
        keys: Arc<dyn KeyProvider>,
        signal: Arc<dyn JobSignal>,
    ) -> Self {
        Self {
            store,
            consents,
            ledger,
            keys,
            signal,
        }
    }

    /// Validates, seals and stores a record with its anchoring job. The
    /// chain is not contacted: the record is anchored in the background.
    /// Errors: [`RecordError::Forbidden`] when the caller may not create
    /// for that patient, [`RecordError::AccessDenied`] for a doctor without
    /// a write consent covering the type, [`RecordError::Invalid`],
    /// [`RecordError::Unavailable`].
    pub async fn create(
        &self,
        caller: &Principal,
        request: NewRecordRequest,
    ) -> Result<MedicalRecord, RecordError> {
        let record_type = parse_record_type(&request.record_type)?;
        let patient_id = self
            .creation_owner(caller, request.patient_id, record_type)
            .await?;
        let metadata_json = canonical_metadata(request.record_metadata)?;
        validate_raw_data(&request.raw_data)?;

        let created_at = Utc::now()
            .duration_trunc(TimeDelta::microseconds(1))
            .map_err(|error| RecordError::Internal(error.to_string()))?;
        let salt = Salt::generate().map_err(|error| RecordError::Internal(error.to_string()))?;
        let mut record = MedicalRecord {
            id: RecordId::random(),
            patient_id,
            record_type,
            metadata_json,
            data_hash: sha256(request.raw_data.as_bytes()),
            anchor_hash: sha256(b""),
            anchor: AnchorState::pending(),
            created_at,
            updated_at: created_at,
            salt,
            batch: None,
        };
        record.anchor_hash = anchor_hash(&record);
        let sealed = meditrustal_crypto::seal(
            self.keys.as_ref(),
            request.raw_data.as_bytes(),
            &record_aad(&record),
        )
        .map_err(|error| RecordError::Internal(error.to_string()))?;

        let job = LedgerJob::AnchorRecord(RecordAnchor {
            record_id: record.id.0,
            anchor_hash: record.anchor_hash,
            patient_did: Did::for_user(patient_id).as_str().to_owned(),
            record_type: record_type.as_str().to_owned(),
            timestamp: u64::try_from(created_at.timestamp()).unwrap_or_default(),
        });
        let stored = StoredRecord { record, sealed };
        self.store
            .insert(&stored, &job)
            .await
            .map_err(|error| match error {
                RecordStoreError::UnknownPatient => RecordError::Forbidden(
                    "the patient does not exist or may not own records".into(),
                ),
                RecordStoreError::AlreadyExists => {
                    RecordError::Internal("record id collision".into())
                }
                RecordStoreError::Unavailable(message) => RecordError::Unavailable(message),
            })?;
        self.signal.job_enqueued();

        tracing::info!(record.id = %stored.record.id, patient.id = %patient_id, record.kind = record_type.as_str(), "record created");
        Ok(stored.record)
    }

    /// Lists a patient's records, newest first. A doctor gets only the
    /// records that the patient's consents in force cover, or all of them
    /// during break-glass access. Errors: [`RecordError::Forbidden`] for
    /// another patient's list, [`RecordError::AccessDenied`] for a doctor
    /// with neither, [`RecordError::Invalid`] for a bad filter, limit or
    /// cursor, [`RecordError::Unavailable`].
    pub async fn list(
        &self,
        caller: &Principal,
        patient: PatientSelector,
        record_type: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<RecordPage, RecordError> {
        self.list_with_basis(caller, patient, record_type, limit, cursor)
            .await
            .map(|(page, _)| page)
    }

    /// Same as [`RecordService::list`], and also returns what lets a
    /// doctor list the records (`None` for the patient), for the audit log.
    /// An open break-glass access comes first, then the first consent in
    /// force.
    ///
    /// NOTE: when several consents cover the listing, only the first is
    /// returned, although the others may cover more of its records.
    pub async fn list_with_basis(
        &self,
        caller: &Principal,
        patient: PatientSelector,
        record_type: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(RecordPage, Option<AccessBasis>), RecordError> {
        let (patient_id, within, basis) = self.listable(caller, patient).await?;
        let record_type = record_type.map(parse_record_type).transpose()?;
        let limit = parse_limit(limit)?;
        let after = cursor
            .map(|text| {
                Cursor::decode(text).ok_or_else(|| RecordError::Invalid {
                    field: "cursor".into(),
                    message: "use the cursor from the previous page's Link header".into(),
                })
            })
            .transpose()?;

        let query = ListQuery {
            patient_id,
            record_type,
            within,
            limit: limit + 1,
            after,
        };
        let mut records = self.store.list(&query).await.map_err(unavailable)?;

        let next = if records.len() > limit as usize {
            records.truncate(limit as usize);
            records.last().map(|last| Cursor {
                created_at: last.created_at,
                id: last.id,
            })
        } else {
            None
        };
        Ok((RecordPage { records, next }, basis))
    }

    /// Reads a record with its decrypted content. Errors:
    /// [`RecordError::NotFound`] for a missing record or one the caller may
    /// not see, [`RecordError::AccessDenied`] when a doctor has neither
    /// consent nor break-glass access (also for a missing record),
    /// [`RecordError::Integrity`] when the stored ciphertext was
    /// altered, [`RecordError::Unavailable`].
    pub async fn read(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<(MedicalRecord, String), RecordError> {
        self.read_with_basis(caller, id)
            .await
            .map(|(record, raw_data, _)| (record, raw_data))
    }

    /// Same as [`RecordService::read`], and also returns the consent or
    /// break-glass access that let a doctor in (`None` for the owner), for
    /// the audit log.
    pub async fn read_with_basis(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<(MedicalRecord, String, Option<AccessBasis>), RecordError> {
        let (stored, basis) = self.visible_record(caller, id, "read").await?;

        let plaintext = meditrustal_crypto::open(
            self.keys.as_ref(),
            &stored.sealed,
            &record_aad(&stored.record),
        )
        .map_err(|error| integrity_error(&stored.record, &error))?;
        if sha256(&plaintext) != stored.record.data_hash {
            tracing::error!(record.id = %id, "record content does not match its data_hash");
            return Err(RecordError::Integrity);
        }
        let raw_data = String::from_utf8(plaintext).map_err(|_| RecordError::Integrity)?;

        Ok((stored.record, raw_data, basis))
    }

    /// Checks a record against its own hashes and the chain; each check
    /// reports its own result. Errors: [`RecordError::NotFound`],
    /// [`RecordError::AccessDenied`] for doctors,
    /// [`RecordError::Unavailable`] (database only: chain trouble is a
    /// failed check, not an error).
    pub async fn verify(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<Verification, RecordError> {
        self.verify_with_basis(caller, id)
            .await
            .map(|(report, _)| report)
    }

    /// Same as [`RecordService::verify`], and also returns the consent or
    /// break-glass access that let a doctor in (`None` for the owner), for
    /// the audit log.
    pub async fn verify_with_basis(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<(Verification, Option<AccessBasis>), RecordError> {
        let (stored, basis) = self.visible_record(caller, id, "verify").await?;
        let report = verify::verify_record(&stored, self.keys.as_ref(), self.ledger.as_ref()).await;
        Ok((report, basis))
    }

    /// Builds the anchor receipt of a batch-anchored record, for the same
    /// callers who may read it, and returns what let a doctor in (`None`
    /// for the owner). Errors: as for [`RecordService::read`], and
    /// [`RecordError::NotAnchored`] before the batch is mined,
    /// [`RecordError::AnchoredPerRecord`] for a record anchored in its own
    /// transaction.
    pub async fn receipt_with_basis(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<(Receipt, UserId, Option<AccessBasis>), RecordError> {
        let (stored, basis) = self.visible_record(caller, id, "proof").await?;
        let record = &stored.record;

        let anchored = record.anchor.status == AnchorStatus::Anchored;
        if anchored && record.batch.is_none() {
            return Err(RecordError::AnchoredPerRecord);
        }
        let contract = self.ledger.batch_registry().ok_or_else(|| {
            RecordError::Internal("the deployment has no BatchAnchorRegistry".into())
        })?;
        let receipt = Receipt::for_record(record, contract)
            .filter(|_| anchored)
            .ok_or(RecordError::NotAnchored)?;
        Ok((receipt, record.patient_id, basis))
    }

    /// Returns the owner of a record, or `None` when it does not exist, so
    /// that a denied access can be audited against the patient it
    /// targeted. The owner must not be revealed to the caller. Errors:
    /// [`RecordError::Unavailable`].
    pub async fn owner_of(&self, id: RecordId) -> Result<Option<UserId>, RecordError> {
        let stored = self.store.find(id).await.map_err(unavailable)?;
        Ok(stored.map(|stored| stored.record.patient_id))
    }

    /// Loads a record the caller may read, with the consent or break-glass
    /// access that lets a doctor read it (`None` for the owner). Patients
    /// read their own records and get [`RecordError::NotFound`] for any
    /// other. Doctors need a consent or break-glass access, and get
    /// [`RecordError::AccessDenied`] without one, whether the record exists
    /// or not.
    async fn visible_record(
        &self,
        caller: &Principal,
        id: RecordId,
        action: &'static str,
    ) -> Result<(StoredRecord, Option<AccessBasis>), RecordError> {
        let stored = self.store.find(id).await.map_err(unavailable)?;
        if caller.role != Role::Doctor {
            return match stored {
                Some(stored) if may_read(caller, &stored.record) => Ok((stored, None)),
                _ => Err(RecordError::NotFound),
            };
        }

        let denial = AccessDenial {
            doctor_id: caller.user_id,
            patient_id: stored.as_ref().map(|stored| stored.record.patient_id),
            record_id: Some(id),
            action,
        };
        let Some(stored) = stored else {
            return Err(RecordError::AccessDenied(denial));
        };
        let grants = self
            .grants(stored.record.patient_id, caller.user_id)
            .await?;
        match grants.basis_for(&stored.record, Access::Read) {
            Some(AccessBasis::BreakGlass(event)) => {
                tracing::warn!(record.id = %id, doctor.id = %caller.user_id, break_glass.id = %event, action, "record opened under break-glass access");
                Ok((stored, Some(AccessBasis::BreakGlass(event))))
            }
            Some(basis @ AccessBasis::Consent(_)) => Ok((stored, Some(basis))),
            None => Err(RecordError::AccessDenied(denial)),
        }
    }

    /// Resolves whose records a listing shows, the filter a doctor's
    /// consents put on them, and what lets the doctor list them.
    async fn listable(
        &self,
        caller: &Principal,
        patient: PatientSelector,
    ) -> Result<(UserId, Option<RecordFilter>, Option<AccessBasis>), RecordError> {
        match patient {
            PatientSelector::Me => Ok((caller.user_id, None, None)),
            PatientSelector::Patient(id) if id == caller.user_id => Ok((id, None, None)),
            PatientSelector::Patient(id) if caller.role == Role::Doctor => {
                let grants = self.grants(id, caller.user_id).await?;
                let within =
                    grants
                        .read_filter()
                        .ok_or(RecordError::AccessDenied(AccessDenial {
                            doctor_id: caller.user_id,
                            patient_id: Some(id),
                            record_id: None,
                            action: "list",
                        }))?;
                Ok((id, within, grants.list_basis()))
            }
            PatientSelector::Patient(_) => Err(RecordError::Forbidden(
                "you may only list your own records".into(),
            )),
        }
    }

    /// Returns the owner of a new record: the caller if a patient, or the
    /// named patient if their write consent covers the type for a doctor.
    /// Admins never create records.
    async fn creation_owner(
        &self,
        caller: &Principal,
        requested: Option<Uuid>,
        record_type: RecordType,
    ) -> Result<UserId, RecordError> {
        match caller.role {
            Role::Patient => match requested {
                None => Ok(caller.user_id),
                Some(id) if UserId(id) == caller.user_id => Ok(caller.user_id),
                Some(_) => Err(RecordError::Forbidden(
                    "patients may only create records for themselves".into(),
                )),
            },
            Role::Doctor => {
                let patient = requested.map(UserId).ok_or_else(|| RecordError::Invalid {
                    field: "patient_id".into(),
                    message: "doctors must name the patient the record belongs to".into(),
                })?;
                let grants = self.grants(patient, caller.user_id).await?;
                if grants.write_basis(record_type).is_some() {
                    return Ok(patient);
                }
                Err(RecordError::AccessDenied(AccessDenial {
                    doctor_id: caller.user_id,
                    patient_id: Some(patient),
                    record_id: None,
                    action: "create",
                }))
            }
            Role::Admin => Err(RecordError::Forbidden(
                "admins do not create medical records".into(),
            )),
        }
    }

    async fn grants(&self, patient: UserId, doctor: UserId) -> Result<AccessGrants, RecordError> {
        self.consents
            .access_grants(patient, doctor, Utc::now())
            .await
            .map_err(|error| RecordError::Unavailable(error.to_string()))
    }
}

/// Returns whether the caller is the patient who owns the record. Admins
/// never read content, and doctors are checked against consents instead.
fn may_read(caller: &Principal, record: &MedicalRecord) -> bool {
    caller.role == Role::Patient && caller.user_id == record.patient_id
}

fn parse_record_type(text: &str) -> Result<RecordType, RecordError> {
    RecordType::parse(text).ok_or_else(|| RecordError::Invalid {
        field: "record_type".into(),
        message: format!("use one of {}", RecordType::names()),
    })
}

fn parse_limit(limit: Option<u32>) -> Result<u32, RecordError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(value @ 1..=MAX_PAGE_SIZE) => Ok(value),
        Some(_) => Err(RecordError::Invalid {
            field: "limit".into(),
            message: format!("use a page size from 1 to {MAX_PAGE_SIZE}"),
        }),
    }
}

/// Checks metadata JSON text and returns the text to store: the object as
/// sent, without surrounding whitespace. Rejects non-objects, duplicate
/// keys, numbers out of range and NUL characters (PostgreSQL text cannot
/// store NUL, and it hides content from readers).
fn canonical_metadata(metadata: Option<String>) -> Result<Option<String>, RecordError> {
    let Some(text) = metadata else {
        return Ok(None);
    };
    let text = text.trim();
    let value = crate::json::parse_strict(text).map_err(|problem| RecordError::Invalid {
        field: field_path("record_metadata", &problem.path),
        message: problem.message,
    })?;
    match &value {
        Value::Null => return Ok(None),
        Value::Object(_) => {}
        _ => {
            return Err(RecordError::Invalid {
                field: "record_metadata".into(),
                message: "must be a JSON object or null".into(),
            })
        }
    }
    if let Some(path) = find_nul(&value, "record_metadata") {
        return Err(RecordError::Invalid {
            field: path,
            message: "must not contain NUL (\\u0000) characters".into(),
        });
    }
    if text.len() > MAX_METADATA_BYTES {
        return Err(RecordError::Invalid {
            field: "record_metadata".into(),
            message: format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
        });
    }
    Ok(Some(text.to_owned()))
}

fn field_path(root: &str, path: &str) -> String {
    match path {
        "" => root.to_owned(),
        _ if path.starts_with('[') => format!("{root}{path}"),
        _ => format!("{root}.{path}"),
    }
}

fn find_nul(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find_nul(item, &format!("{path}[{index}]"))),
        Value::Object(object) => object.iter().find_map(|(key, item)| {
            let child = format!("{path}.{key}");
            if key.contains('\0') {
                return Some(child.replace('\0', "\\u0000"));
            }
            find_nul(item, &child)
        }),
        _ => None,
    }
}

fn validate_raw_data(raw: &str) -> Result<(), RecordError> {
    if raw.trim().is_empty() {
        return Err(RecordError::Invalid {
            field: "raw_data".into(),
            message: "must not be empty".into(),
        });
    }
    crate::fhir::validate_raw_data(raw).map_err(|problem| RecordError::Invalid {
        field: problem.field,
        message: problem.message,
    })
}

fn integrity_error(record: &MedicalRecord, error: &CryptoError) -> RecordError {
    match error {
        CryptoError::Integrity => {
            tracing::error!(record.id = %record.id, "record ciphertext failed its integrity check");
            RecordError::Integrity
        }
        other => RecordError::Internal(other.to_string()),
    }
}

fn unavailable(error: RecordStoreError) -> RecordError {
    RecordError::Unavailable(error.to_string())
}
