//! [`ConsentStore`] over the `consents` and `break_glass_events` tables,
//! with the user and key lookups the consent rules need.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_crypto::{KeyId, SealedData};
use meditrustal_identity::{Role, UserId};
use meditrustal_ledger::{AnchorState, AnchorStatus, ConsentSignature, LedgerJob};
use meditrustal_records::{
    Access, AccessGrants, BreakGlass, BreakGlassFilter, Consent, ConsentId, ConsentParty,
    ConsentScope, ConsentStore, ConsentStoreError, Party, PartyRef, RecordId, RecordType,
};
use uuid::Uuid;

use crate::convert;
use crate::error::QueryError;
use crate::outbox::{JobTarget, NewJobRow};
use crate::pool::Pool;
use crate::schema::{break_glass_events, consents, medical_records, user_keys, users};

/// PostgreSQL implementation of [`ConsentStore`].
#[derive(Clone, Debug)]
pub struct PgConsentStore {
    pool: Pool,
}

impl PgConsentStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = consents)]
struct NewConsentRow {
    id: Uuid,
    patient_id: Uuid,
    doctor_id: Uuid,
    patient_address: Vec<u8>,
    doctor_address: Vec<u8>,
    access: &'static str,
    scope: &'static str,
    record_types: Vec<String>,
    record_ids: Vec<Uuid>,
    purpose: Option<String>,
    scope_hash: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    grant_signature: Vec<u8>,
}

impl NewConsentRow {
    fn new(consent: &Consent) -> Self {
        let (record_types, record_ids) = match &consent.scope {
            ConsentScope::AllRecords => (Vec::new(), Vec::new()),
            ConsentScope::RecordTypes(types) => (
                types.iter().map(|kind| kind.as_str().to_owned()).collect(),
                Vec::new(),
            ),
            ConsentScope::Records(ids) => (Vec::new(), ids.iter().map(|id| id.0).collect()),
        };
        Self {
            id: consent.id.0,
            patient_id: consent.patient_id.0,
            doctor_id: consent.doctor_id.0,
            patient_address: consent.patient_address.as_bytes().to_vec(),
            doctor_address: consent.doctor_address.as_bytes().to_vec(),
            access: consent.access.as_str(),
            scope: consent.scope.kind(),
            record_types,
            record_ids,
            purpose: consent.purpose.clone(),
            scope_hash: consent.scope_hash().as_bytes().to_vec(),
            expires_at: consent.expires_at,
            created_at: consent.created_at,
            grant_signature: consent.grant_signature.as_bytes().to_vec(),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = consents, check_for_backend(diesel::pg::Pg))]
struct ConsentRow {
    id: Uuid,
    patient_id: Uuid,
    doctor_id: Uuid,
    patient_address: Vec<u8>,
    doctor_address: Vec<u8>,
    access: String,
    scope: String,
    record_types: Vec<String>,
    record_ids: Vec<Uuid>,
    purpose: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    grant_signature: Vec<u8>,
    grant_status: String,
    grant_tx_hash: Option<Vec<u8>>,
    grant_block_number: Option<i64>,
    grant_anchored_at: Option<DateTime<Utc>>,
    revoke_status: Option<String>,
    revoke_tx_hash: Option<Vec<u8>>,
    revoke_block_number: Option<i64>,
    revoke_anchored_at: Option<DateTime<Utc>>,
}

impl ConsentRow {
    fn into_consent(self) -> Result<Consent, QueryError> {
        let id = self.id;
        let invalid =
            |column: &str, problem: &str| convert::invalid("consents", id, column, problem);

        let access =
            Access::parse(&self.access).ok_or_else(|| invalid("access", "has an unknown value"))?;
        let scope = match self.scope.as_str() {
            "all" => ConsentScope::AllRecords,
            "record_types" => ConsentScope::RecordTypes(
                self.record_types
                    .iter()
                    .map(|name| RecordType::parse(name))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("record_types", "has an unknown type"))?,
            ),
            "record_ids" => {
                ConsentScope::Records(self.record_ids.into_iter().map(RecordId).collect())
            }
            _ => return Err(invalid("scope", "has an unknown value")),
        };
        let grant_signature = ConsentSignature::from_slice(&self.grant_signature)
            .ok_or_else(|| invalid("grant_signature", "is not 65 bytes"))?;
        let grant_anchor = anchor_state(
            id,
            ("grant_status", &self.grant_status),
            self.grant_tx_hash.as_deref(),
            self.grant_block_number,
            self.grant_anchored_at,
        )?;
        let revocation_anchor = self
            .revoke_status
            .as_deref()
            .map(|status| {
                anchor_state(
                    id,
                    ("revoke_status", status),
                    self.revoke_tx_hash.as_deref(),
                    self.revoke_block_number,
                    self.revoke_anchored_at,
                )
            })
            .transpose()?;

        Ok(Consent {
            id: ConsentId(id),
            patient_id: UserId(self.patient_id),
            patient_address: convert::address(
                &self.patient_address,
                "consents",
                id,
                "patient_address",
            )?,
            doctor_id: UserId(self.doctor_id),
            doctor_address: convert::address(
                &self.doctor_address,
                "consents",
                id,
                "doctor_address",
            )?,
            access,
            scope,
            purpose: self.purpose,
            expires_at: self.expires_at,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            grant_signature,
            grant_anchor,
            revocation_anchor,
        })
    }
}

fn anchor_state(
    id: Uuid,
    (status_column, status): (&str, &str),
    tx_hash: Option<&[u8]>,
    block_number: Option<i64>,
    anchored_at: Option<DateTime<Utc>>,
) -> Result<AnchorState, QueryError> {
    let status = AnchorStatus::parse(status)
        .ok_or_else(|| convert::invalid("consents", id, status_column, "has an unknown value"))?;
    let block_number = block_number
        .map(|number| {
            u64::try_from(number)
                .map_err(|_| convert::invalid("consents", id, "block number", "is negative"))
        })
        .transpose()?;
    Ok(AnchorState {
        status,
        tx_hash: convert::optional_digest(tx_hash, "consents", id, "tx_hash")?,
        block_number,
        anchored_at,
    })
}

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = break_glass_events, check_for_backend(diesel::pg::Pg))]
struct BreakGlassRow {
    id: Uuid,
    doctor_id: Uuid,
    patient_id: Uuid,
    reason: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl BreakGlassRow {
    fn new(event: &BreakGlass) -> Self {
        Self {
            id: event.id,
            doctor_id: event.doctor_id.0,
            patient_id: event.patient_id.0,
            reason: event.reason.clone(),
            created_at: event.created_at,
            expires_at: event.expires_at,
        }
    }

    fn into_event(self) -> BreakGlass {
        BreakGlass {
            id: self.id,
            doctor_id: UserId(self.doctor_id),
            patient_id: UserId(self.patient_id),
            reason: self.reason,
            created_at: self.created_at,
            expires_at: self.expires_at,
        }
    }
}

type PartyColumns = (Uuid, String, Vec<u8>, bool);

fn into_party((id, role, address, is_active): PartyColumns) -> Result<Party, QueryError> {
    let role = Role::parse(&role)
        .ok_or_else(|| convert::invalid("users", id, "role", "has an unknown value"))?;
    Ok(Party {
        id: UserId(id),
        role,
        address: convert::address(&address, "users", id, "blockchain_address")?,
        is_active,
    })
}

#[async_trait]
impl ConsentStore for PgConsentStore {
    async fn find_party(&self, party: PartyRef) -> Result<Option<Party>, ConsentStoreError> {
        let found = self
            .pool
            .run(move |conn| {
                let columns = (
                    users::id,
                    users::role,
                    users::blockchain_address,
                    users::is_active,
                );
                let row: Option<PartyColumns> = match party {
                    PartyRef::Id(id) => users::table
                        .find(id.0)
                        .select(columns)
                        .first(conn)
                        .optional()?,
                    PartyRef::Address(address) => users::table
                        .filter(users::blockchain_address.eq(address.as_bytes().to_vec()))
                        .select(columns)
                        .first(conn)
                        .optional()?,
                };
                row.map(into_party).transpose()
            })
            .await?;
        Ok(found)
    }

    async fn find_signing_key(
        &self,
        user: UserId,
    ) -> Result<Option<SealedData>, ConsentStoreError> {
        let sealed = self
            .pool
            .run(move |conn| {
                let row: Option<(String, Vec<u8>, Vec<u8>, Vec<u8>)> = user_keys::table
                    .find(user.0)
                    .select((
                        user_keys::key_id,
                        user_keys::wrapped_key,
                        user_keys::nonce,
                        user_keys::ciphertext,
                    ))
                    .first(conn)
                    .optional()?;
                row.map(|(key_id, wrapped_key, nonce, ciphertext)| {
                    let nonce = nonce.as_slice().try_into().map_err(|_| {
                        convert::invalid("user_keys", user, "nonce", "is not 12 bytes")
                    })?;
                    Ok(SealedData {
                        key_id: KeyId::new(key_id),
                        wrapped_key,
                        nonce,
                        ciphertext,
                    })
                })
                .transpose()
            })
            .await?;
        Ok(sealed)
    }

    async fn owned_records(
        &self,
        patient: UserId,
        ids: &[RecordId],
    ) -> Result<Vec<RecordId>, ConsentStoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
        let owned = self
            .pool
            .run(move |conn| {
                let found: Vec<Uuid> = medical_records::table
                    .filter(medical_records::patient_id.eq(patient.0))
                    .filter(medical_records::id.eq_any(ids))
                    .select(medical_records::id)
                    .load(conn)?;
                Ok(found.into_iter().map(RecordId).collect())
            })
            .await?;
        Ok(owned)
    }

    async fn insert_consent(
        &self,
        consent: &Consent,
        job: &LedgerJob,
    ) -> Result<(), ConsentStoreError> {
        let row = NewConsentRow::new(consent);
        let job_row = NewJobRow::new(job, JobTarget::ConsentGrant(consent.id.0))?;
        self.pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    diesel::insert_into(consents::table)
                        .values(&row)
                        .execute(conn)?;
                    job_row.insert(conn)?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    async fn find_consent(&self, id: ConsentId) -> Result<Option<Consent>, ConsentStoreError> {
        let consent = self
            .pool
            .run(move |conn| {
                let row = consents::table
                    .find(id.0)
                    .select(ConsentRow::as_select())
                    .first(conn)
                    .optional()?;
                row.map(ConsentRow::into_consent).transpose()
            })
            .await?;
        Ok(consent)
    }

    async fn revoke_consent(
        &self,
        id: ConsentId,
        revoked_at: DateTime<Utc>,
        signature: ConsentSignature,
        job: &LedgerJob,
    ) -> Result<(), ConsentStoreError> {
        let job_row = NewJobRow::new(job, JobTarget::ConsentRevocation(id.0))?;
        let revoked = self
            .pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    // The filter makes a second (or concurrent) revocation
                    // update nothing, so only one revocation job is queued.
                    let updated = diesel::update(
                        consents::table
                            .find(id.0)
                            .filter(consents::revoked_at.is_null()),
                    )
                    .set((
                        consents::revoked_at.eq(Some(revoked_at)),
                        consents::revoke_signature.eq(Some(signature.as_bytes().to_vec())),
                        consents::revoke_status.eq(Some(AnchorStatus::Pending.as_str())),
                    ))
                    .execute(conn)?;
                    if updated == 0 {
                        return Ok(false);
                    }
                    job_row.insert(conn)?;
                    Ok(true)
                })
            })
            .await?;
        if revoked {
            Ok(())
        } else {
            Err(ConsentStoreError::AlreadyRevoked)
        }
    }

    async fn list_consents(&self, party: ConsentParty) -> Result<Vec<Consent>, ConsentStoreError> {
        let consents = self
            .pool
            .run(move |conn| {
                let mut query = consents::table
                    .select(ConsentRow::as_select())
                    .order((consents::created_at.desc(), consents::id.desc()))
                    .into_boxed();
                query = match party {
                    ConsentParty::Patient(id) => query.filter(consents::patient_id.eq(id.0)),
                    ConsentParty::Doctor(id) => query.filter(consents::doctor_id.eq(id.0)),
                };
                let rows: Vec<ConsentRow> = query.load(conn)?;
                rows.into_iter().map(ConsentRow::into_consent).collect()
            })
            .await?;
        Ok(consents)
    }

    async fn access_grants(
        &self,
        patient: UserId,
        doctor: UserId,
        at: DateTime<Utc>,
    ) -> Result<AccessGrants, ConsentStoreError> {
        let grants = self
            .pool
            .run(move |conn| {
                let rows: Vec<ConsentRow> = consents::table
                    .filter(consents::patient_id.eq(patient.0))
                    .filter(consents::doctor_id.eq(doctor.0))
                    .filter(consents::revoked_at.is_null())
                    .filter(
                        consents::expires_at
                            .is_null()
                            .or(consents::expires_at.gt(at)),
                    )
                    .select(ConsentRow::as_select())
                    .order((consents::created_at.desc(), consents::id.desc()))
                    .load(conn)?;
                let break_glass: Option<BreakGlassRow> = break_glass_events::table
                    .filter(break_glass_events::patient_id.eq(patient.0))
                    .filter(break_glass_events::doctor_id.eq(doctor.0))
                    .filter(break_glass_events::expires_at.gt(at))
                    .filter(break_glass_events::created_at.le(at))
                    .select(BreakGlassRow::as_select())
                    .order(break_glass_events::expires_at.desc())
                    .first(conn)
                    .optional()?;

                let consents = rows
                    .into_iter()
                    .map(ConsentRow::into_consent)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(AccessGrants {
                    consents,
                    break_glass: break_glass.map(BreakGlassRow::into_event),
                })
            })
            .await?;
        Ok(grants)
    }

    async fn insert_break_glass(&self, event: &BreakGlass) -> Result<(), ConsentStoreError> {
        let row = BreakGlassRow::new(event);
        self.pool
            .run(move |conn| {
                diesel::insert_into(break_glass_events::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn list_break_glass(
        &self,
        filter: BreakGlassFilter,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<BreakGlass>, ConsentStoreError> {
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let events = self
            .pool
            .run(move |conn| {
                let mut query = break_glass_events::table
                    .select(BreakGlassRow::as_select())
                    .order((
                        break_glass_events::created_at.desc(),
                        break_glass_events::id.desc(),
                    ))
                    .limit(i64::from(limit))
                    .offset(offset)
                    .into_boxed();
                query = match filter {
                    BreakGlassFilter::Patient(id) => {
                        query.filter(break_glass_events::patient_id.eq(id.0))
                    }
                    BreakGlassFilter::Doctor(id) => {
                        query.filter(break_glass_events::doctor_id.eq(id.0))
                    }
                    BreakGlassFilter::All => query,
                };
                let rows: Vec<BreakGlassRow> = query.load(conn)?;
                Ok(rows.into_iter().map(BreakGlassRow::into_event).collect())
            })
            .await?;
        Ok(events)
    }
}
