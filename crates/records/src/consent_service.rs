//! [`ConsentService`]: patients grant and revoke doctors' access, doctors
//! open break-glass access, and everyone lists what concerns them.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use meditrustal_crypto::KeyProvider;
use meditrustal_identity::{custodial_key_aad, Principal, Role, UserId};
use meditrustal_ledger::{
    AnchorState, ConsentSignature, ConsentSigner, GrantTerms, LedgerJob, RevokeTerms, SignedGrant,
    SignedRevocation, SignerError,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::consent::{
    Access, BreakGlass, BreakGlassFilter, Consent, ConsentId, ConsentParty, ConsentScope,
    ConsentStatus, Party, PartyRef,
};
use crate::error::ConsentError;
use crate::ports::{ConsentStore, ConsentStoreError, JobSignal, RecordStore};
use crate::types::{MedicalRecord, RecordId, RecordType};

/// A grant request after JSON decoding, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRequest {
    /// The doctor, by id or custodial address.
    pub doctor: PartyRef,
    /// `read` or `write`.
    pub access: String,
    /// Limit the consent to these record types.
    pub record_types: Option<Vec<String>>,
    /// Limit the consent to these records.
    pub record_ids: Option<Vec<Uuid>>,
    /// End of validity.
    pub expires_at: Option<DateTime<Utc>>,
    /// Reason the patient gives for the grant.
    pub purpose: Option<String>,
}

/// Largest number of records one consent may name.
const MAX_RECORD_IDS: usize = 100;
/// Maximum length of a purpose, in characters.
const MAX_PURPOSE_CHARS: usize = 500;
/// Maximum length of a break-glass reason, in characters.
const MAX_REASON_CHARS: usize = 1000;
/// Default and maximum page sizes of break-glass listings.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// Consent and break-glass rules over the consent ports.
pub struct ConsentService {
    consents: Arc<dyn ConsentStore>,
    records: Arc<dyn RecordStore>,
    keys: Arc<dyn KeyProvider>,
    signer: Arc<dyn ConsentSigner>,
    signal: Arc<dyn JobSignal>,
    break_glass_duration: TimeDelta,
}

impl ConsentService {
    /// Builds the service. Break-glass access lasts `break_glass_duration`.
    pub fn new(
        consents: Arc<dyn ConsentStore>,
        records: Arc<dyn RecordStore>,
        keys: Arc<dyn KeyProvider>,
        signer: Arc<dyn ConsentSigner>,
        signal: Arc<dyn JobSignal>,
        break_glass_duration: TimeDelta,
    ) -> Self {
        Self {
            consents,
            records,
            keys,
            signer,
            signal,
            break_glass_duration,
        }
    }

    /// Validates a patient's grant, signs it with the patient's custodial
    /// key, and stores it with its chain job. Errors:
    /// [`ConsentError::Forbidden`] unless the caller is a patient,
    /// [`ConsentError::Invalid`], [`ConsentError::Unavailable`],
    /// [`ConsentError::Internal`].
    pub async fn grant(
        &self,
        caller: &Principal,
        request: GrantRequest,
    ) -> Result<Consent, ConsentError> {
        require_patient(caller, "grant consent")?;
        let doctor = self.active_doctor(request.doctor).await?;
        let access = Access::parse(&request.access).ok_or_else(|| ConsentError::Invalid {
            field: "access",
            message: "use read or write".into(),
        })?;
        let scope = self
            .parse_scope(caller.user_id, request.record_types, request.record_ids)
            .await?;
        let now = now()?;
        let expires_at = parse_expiry(request.expires_at, now)?;
        let purpose = parse_text(request.purpose, "purpose", MAX_PURPOSE_CHARS)?;
        let patient = self.party(caller.user_id).await?;

        let mut consent = Consent {
            id: ConsentId::random(),
            patient_id: patient.id,
            patient_address: patient.address,
            doctor_id: doctor.id,
            doctor_address: doctor.address,
            access,
            scope,
            purpose,
            expires_at,
            created_at: now,
            revoked_at: None,
            grant_signature: ConsentSignature::from_bytes([0; 65]),
            grant_anchor: AnchorState::pending(),
            revocation_anchor: None,
        };
        let terms = grant_terms(&consent);
        consent.grant_signature = self
            .sign(patient.id, |signer, key| signer.sign_grant(key, &terms))
            .await?;
        let job = LedgerJob::GrantConsent(SignedGrant {
            terms,
            signature: consent.grant_signature,
        });
        self.consents
            .insert_consent(&consent, &job)
            .await
            .map_err(store_error)?;
        self.signal.job_enqueued();

        tracing::info!(consent.id = %consent.id, patient.id = %consent.patient_id, doctor.id = %consent.doctor_id, consent.access = access.as_str(), consent.scope = consent.scope.kind(), "consent granted");
        Ok(consent)
    }

    /// Grants `doctor` read access to one of the caller's records. Errors:
    /// [`ConsentError::RecordNotFound`] for a record the caller does not
    /// own, and those of [`ConsentService::grant`].
    pub async fn grant_for_record(
        &self,
        caller: &Principal,
        record_id: RecordId,
        doctor: PartyRef,
    ) -> Result<Consent, ConsentError> {
        require_patient(caller, "grant consent")?;
        self.owned_record(caller, record_id).await?;
        let request = GrantRequest {
            doctor,
            access: Access::Read.as_str().to_owned(),
            record_types: None,
            record_ids: Some(vec![record_id.0]),
            expires_at: None,
            purpose: None,
        };
        self.grant(caller, request).await
    }

    /// Revokes one of the caller's consents, signed with the patient's
    /// custodial key. Returns the revoked consent. Errors:
    /// [`ConsentError::Forbidden`] unless the caller is a patient,
    /// [`ConsentError::ConsentNotFound`] for another patient's or a missing
    /// consent, [`ConsentError::AlreadyRevoked`],
    /// [`ConsentError::Unavailable`], [`ConsentError::Internal`].
    pub async fn revoke(&self, caller: &Principal, id: ConsentId) -> Result<Consent, ConsentError> {
        require_patient(caller, "revoke consent")?;
        let consent = self
            .consents
            .find_consent(id)
            .await
            .map_err(store_error)?
            .filter(|consent| consent.patient_id == caller.user_id)
            .ok_or(ConsentError::ConsentNotFound)?;
        if consent.revoked_at.is_some() {
            return Err(ConsentError::AlreadyRevoked);
        }
        self.revoke_owned(consent).await
    }

    /// Revokes every consent in force that lets `doctor` read one of the
    /// caller's records, including wider consents that cover it. Returns
    /// the revoked consents. Errors: [`ConsentError::RecordNotFound`],
    /// [`ConsentError::ConsentNotFound`] when no consent in force covers
    /// the record, and those of [`ConsentService::revoke`].
    pub async fn revoke_for_record(
        &self,
        caller: &Principal,
        record_id: RecordId,
        doctor: PartyRef,
    ) -> Result<Vec<Consent>, ConsentError> {
        require_patient(caller, "revoke consent")?;
        let record = self.owned_record(caller, record_id).await?;
        let doctor = self
            .find_party(doctor)
            .await?
            .ok_or_else(|| unknown_doctor(doctor))?;

        let now = Utc::now();
        let given = self
            .consents
            .list_consents(ConsentParty::Patient(caller.user_id))
            .await
            .map_err(store_error)?;
        let covering: Vec<Consent> = given
            .into_iter()
            .filter(|consent| {
                consent.doctor_id == doctor.id
                    && consent.status(now) == ConsentStatus::Active
                    && consent.scope.covers(&record)
            })
            .collect();
        if covering.is_empty() {
            return Err(ConsentError::ConsentNotFound);
        }

        let mut revoked = Vec::with_capacity(covering.len());
        for consent in covering {
            revoked.push(self.revoke_owned(consent).await?);
        }
        Ok(revoked)
    }

    /// Lists the consents the caller granted (patients) or received
    /// (doctors), newest first. Errors: [`ConsentError::Forbidden`] for
    /// admins, [`ConsentError::Unavailable`].
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Consent>, ConsentError> {
        let party = match caller.role {
            Role::Patient => ConsentParty::Patient(caller.user_id),
            Role::Doctor => ConsentParty::Doctor(caller.user_id),
            Role::Admin => {
                return Err(ConsentError::Forbidden(
                    "admins do not see consents; patients and doctors list their own".into(),
                ))
            }
        };
        self.consents
            .list_consents(party)
            .await
            .map_err(store_error)
    }

    /// Tells whether the doctor with `doctor_address` may read the record
    /// now, through a consent or break-glass access. Only the record's
    /// patient and that doctor may ask. That doctor gets `false` for a
    /// missing record too, so the result reveals no more than a read would.
    /// Errors: [`ConsentError::RecordNotFound`] for anyone else and for a
    /// patient's missing record, [`ConsentError::Unavailable`].
    pub async fn check_access(
        &self,
        caller: &Principal,
        record_id: RecordId,
        doctor_address: meditrustal_ledger::Address,
    ) -> Result<bool, ConsentError> {
        let doctor = self.find_party(PartyRef::Address(doctor_address)).await?;
        let is_that_doctor = caller.role == Role::Doctor
            && doctor
                .as_ref()
                .is_some_and(|doctor| doctor.id == caller.user_id);
        let record = match self.find_record(record_id).await {
            Err(ConsentError::RecordNotFound) if is_that_doctor => return Ok(false),
            other => other?,
        };

        let is_owner = caller.role == Role::Patient && caller.user_id == record.patient_id;
        if !is_owner && !is_that_doctor {
            return Err(ConsentError::RecordNotFound);
        }
        let Some(doctor) = doctor.filter(|doctor| doctor.role == Role::Doctor && doctor.is_active)
        else {
            return Ok(false);
        };

        let grants = self
            .consents
            .access_grants(record.patient_id, doctor.id, Utc::now())
            .await
            .map_err(store_error)?;
        Ok(grants.basis_for(&record, Access::Read).is_some())
    }

    /// Opens emergency read access to a patient's records for the
    /// configured time, without consent. The event is stored for the
    /// patient and admins to review. Errors: [`ConsentError::Forbidden`]
    /// unless the caller is a doctor, [`ConsentError::Invalid`] for a
    /// missing reason, [`ConsentError::PatientNotFound`],
    /// [`ConsentError::Unavailable`].
    pub async fn open_break_glass(
        &self,
        caller: &Principal,
        patient_id: UserId,
        reason: Option<String>,
    ) -> Result<BreakGlass, ConsentError> {
        if caller.role != Role::Doctor {
            return Err(ConsentError::Forbidden(
                "only doctors may open break-glass access".into(),
            ));
        }
        let reason = parse_text(reason, "reason", MAX_REASON_CHARS)?.ok_or_else(|| {
            ConsentError::Invalid {
                field: "reason",
                message: "state why emergency access is needed".into(),
            }
        })?;
        self.find_party(PartyRef::Id(patient_id))
            .await?
            .filter(|patient| patient.role == Role::Patient && patient.is_active)
            .ok_or(ConsentError::PatientNotFound)?;

        let now = now()?;
        let event = BreakGlass {
            id: Uuid::new_v4(),
            doctor_id: caller.user_id,
            patient_id,
            reason,
            created_at: now,
            expires_at: now + self.break_glass_duration,
        };
        self.consents
            .insert_break_glass(&event)
            .await
            .map_err(store_error)?;

        tracing::warn!(break_glass.id = %event.id, doctor.id = %event.doctor_id, patient.id = %event.patient_id, expires_at = %event.expires_at, "break-glass access opened");
        Ok(event)
    }

    /// Lists break-glass events newest first: patients see those on their
    /// records, doctors those they opened, admins all. Errors:
    /// [`ConsentError::Invalid`] for a bad limit, [`ConsentError::Unavailable`].
    pub async fn list_break_glass(
        &self,
        caller: &Principal,
        limit: Option<u32>,
        offset: Option<u64>,
    ) -> Result<Vec<BreakGlass>, ConsentError> {
        let filter = match caller.role {
            Role::Patient => BreakGlassFilter::Patient(caller.user_id),
            Role::Doctor => BreakGlassFilter::Doctor(caller.user_id),
            Role::Admin => BreakGlassFilter::All,
        };
        let limit = parse_limit(limit)?;
        self.consents
            .list_break_glass(filter, limit, offset.unwrap_or(0))
            .await
            .map_err(store_error)
    }

    async fn revoke_owned(&self, mut consent: Consent) -> Result<Consent, ConsentError> {
        let terms = RevokeTerms {
            consent_id: consent.id.0,
            patient: consent.patient_address,
        };
        let signature = self
            .sign(consent.patient_id, |signer, key| {
                signer.sign_revocation(key, &terms)
            })
            .await?;
        let revoked_at = now()?;
        let job = LedgerJob::RevokeConsent(SignedRevocation { terms, signature });
        self.consents
            .revoke_consent(consent.id, revoked_at, signature, &job)
            .await
            .map_err(store_error)?;
        self.signal.job_enqueued();

        consent.revoked_at = Some(revoked_at);
        consent.revocation_anchor = Some(AnchorState::pending());
        tracing::info!(consent.id = %consent.id, patient.id = %consent.patient_id, doctor.id = %consent.doctor_id, "consent revoked");
        Ok(consent)
    }

    /// Unseals the patient's custodial key, signs with it and wipes it.
    async fn sign(
        &self,
        patient: UserId,
        sign: impl FnOnce(&dyn ConsentSigner, &[u8]) -> Result<ConsentSignature, SignerError>,
    ) -> Result<ConsentSignature, ConsentError> {
        let sealed = self
            .consents
            .find_signing_key(patient)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ConsentError::Internal(format!("user {patient} has no custodial key"))
            })?;
        let secret_key = Zeroizing::new(
            meditrustal_crypto::open(self.keys.as_ref(), &sealed, &custodial_key_aad(patient))
                .map_err(|error| {
                    ConsentError::Internal(format!(
                        "cannot unseal the custodial key of user {patient}: {error}"
                    ))
                })?,
        );
        sign(self.signer.as_ref(), &secret_key)
            .map_err(|error| ConsentError::Internal(error.to_string()))
    }

    async fn parse_scope(
        &self,
        patient: UserId,
        record_types: Option<Vec<String>>,
        record_ids: Option<Vec<Uuid>>,
    ) -> Result<ConsentScope, ConsentError> {
        match (record_types, record_ids) {
            (None, None) => Ok(ConsentScope::AllRecords),
            (Some(_), Some(_)) => Err(ConsentError::Invalid {
                field: "record_ids",
                message: "give record_types or record_ids, not both".into(),
            }),
            (Some(types), None) => parse_record_types(&types),
            (None, Some(ids)) => self.parse_record_ids(patient, ids).await,
        }
    }

    async fn parse_record_ids(
        &self,
        patient: UserId,
        ids: Vec<Uuid>,
    ) -> Result<ConsentScope, ConsentError> {
        if ids.is_empty() || ids.len() > MAX_RECORD_IDS {
            return Err(ConsentError::Invalid {
                field: "record_ids",
                message: format!(
                    "name 1 to {MAX_RECORD_IDS} records, or leave the field out to cover all records"
                ),
            });
        }
        let mut ids: Vec<RecordId> = ids.into_iter().map(RecordId).collect();
        ids.sort();
        ids.dedup();

        let owned = self
            .consents
            .owned_records(patient, &ids)
            .await
            .map_err(store_error)?;
        if let Some(missing) = ids.iter().find(|id| !owned.contains(id)) {
            return Err(ConsentError::Invalid {
                field: "record_ids",
                message: format!("no record with id {missing} is among your records"),
            });
        }
        Ok(ConsentScope::Records(ids))
    }

    async fn active_doctor(&self, doctor: PartyRef) -> Result<Party, ConsentError> {
        self.find_party(doctor)
            .await?
            .filter(|party| party.role == Role::Doctor && party.is_active)
            .ok_or_else(|| unknown_doctor(doctor))
    }

    async fn party(&self, id: UserId) -> Result<Party, ConsentError> {
        self.find_party(PartyRef::Id(id))
            .await?
            .ok_or_else(|| ConsentError::Internal(format!("user {id} vanished during the request")))
    }

    async fn find_party(&self, party: PartyRef) -> Result<Option<Party>, ConsentError> {
        self.consents.find_party(party).await.map_err(store_error)
    }

    async fn find_record(&self, id: RecordId) -> Result<MedicalRecord, ConsentError> {
        self.records
            .find(id)
            .await
            .map_err(|error| ConsentError::Unavailable(error.to_string()))?
            .map(|stored| stored.record)
            .ok_or(ConsentError::RecordNotFound)
    }

    async fn owned_record(
        &self,
        caller: &Principal,
        id: RecordId,
    ) -> Result<MedicalRecord, ConsentError> {
        let record = self.find_record(id).await?;
        if record.patient_id != caller.user_id {
            return Err(ConsentError::RecordNotFound);
        }
        Ok(record)
    }
}

/// Builds the message the patient signs for `consent`.
fn grant_terms(consent: &Consent) -> GrantTerms {
    GrantTerms {
        consent_id: consent.id.0,
        patient: consent.patient_address,
        grantee: consent.doctor_address,
        access: consent.access.chain_access(),
        scope_hash: consent.scope_hash(),
        expires_at: consent
            .expires_at
            .map_or(0, |expiry| u64::try_from(expiry.timestamp()).unwrap_or(0)),
    }
}

fn require_patient(caller: &Principal, action: &str) -> Result<(), ConsentError> {
    if caller.role == Role::Patient {
        return Ok(());
    }
    Err(ConsentError::Forbidden(format!(
        "only patients {action}, for their own records"
    )))
}

fn unknown_doctor(doctor: PartyRef) -> ConsentError {
    let (field, by) = match doctor {
        PartyRef::Id(_) => ("doctor_id", "id"),
        PartyRef::Address(_) => ("doctor_address", "address"),
    };
    ConsentError::Invalid {
        field,
        message: format!("no active doctor has this {by}"),
    }
}

fn parse_record_types(names: &[String]) -> Result<ConsentScope, ConsentError> {
    if names.is_empty() {
        return Err(ConsentError::Invalid {
            field: "record_types",
            message: "name at least one type, or leave the field out to cover all records".into(),
        });
    }
    let mut types = names
        .iter()
        .map(|name| {
            RecordType::parse(name).ok_or_else(|| ConsentError::Invalid {
                field: "record_types",
                message: format!("{name:?} is not a record type; use {}", RecordType::names()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    types.sort_by_key(|kind| kind.as_str());
    types.dedup();
    Ok(ConsentScope::RecordTypes(types))
}

/// Truncates the expiry to whole seconds, as the chain stores it, and
/// requires it to lie in the future.
fn parse_expiry(
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ConsentError> {
    let Some(expiry) = expires_at else {
        return Ok(None);
    };
    let expiry = expiry
        .duration_trunc(TimeDelta::seconds(1))
        .map_err(|error| ConsentError::Internal(error.to_string()))?;
    if expiry <= now || expiry.timestamp() < 0 {
        return Err(ConsentError::Invalid {
            field: "expires_at",
            message: "must be in the future (RFC 3339, whole seconds)".into(),
        });
    }
    Ok(Some(expiry))
}

/// Trims free text; blank becomes `None`. Rejects control characters and
/// text over `max_chars`.
fn parse_text(
    text: Option<String>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, ConsentError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max_chars || trimmed.chars().any(char::is_control) {
        return Err(ConsentError::Invalid {
            field,
            message: format!("use at most {max_chars} characters and no control characters"),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

fn parse_limit(limit: Option<u32>) -> Result<u32, ConsentError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(_) => Err(ConsentError::Invalid {
            field: "limit",
            message: format!("use 1 to {MAX_PAGE_SIZE}"),
        }),
    }
}

/// Returns the current time in whole microseconds, as PostgreSQL stores it.
fn now() -> Result<DateTime<Utc>, ConsentError> {
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .map_err(|error| ConsentError::Internal(error.to_string()))
}

fn store_error(error: ConsentStoreError) -> ConsentError {
    match error {
        ConsentStoreError::AlreadyRevoked => ConsentError::AlreadyRevoked,
        ConsentStoreError::Unavailable(message) => ConsentError::Unavailable(message),
    }
}
