use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_audit::{Action, AuditEntry, Outcome, ReasonCode};
use meditrustal_identity::{Principal, UserId};
use meditrustal_ledger::AnchorState;
use meditrustal_records::{
    AccessBasis, Check, MedicalRecord, NewRecordRequest, PatientSelector, RecordError, RecordId,
    Verification,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::Authenticated;
use crate::body::StrictJson;
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, QUERY, STORE};
use crate::problem::Problem;
use crate::AppState;

/// A new record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecordBody {
    /// A record type such as `LAB_RESULT`, in any letter case.
    #[schema(example = "LAB_RESULT")]
    record_type: String,
    /// Kept as raw JSON text so the stored metadata keeps every digit.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    record_metadata: Option<Box<RawValue>>,
    /// The content, typically a FHIR R4 resource as JSON text; stored
    /// encrypted.
    raw_data: String,
    /// The patient, for a doctor with a write consent; the caller when
    /// left out.
    #[serde(default)]
    patient_id: Option<Uuid>,
}

/// Filters and paging of record listings.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only records of this type.
    record_type: Option<String>,
    /// Records per page, a whole number.
    limit: Option<String>,
    /// The cursor from the previous page's `Link` header.
    cursor: Option<String>,
}

/// Chain state of an anchor or consent transaction.
#[derive(Serialize, ToSchema)]
pub(crate) struct AnchorBody {
    /// `pending`, `anchored` or `failed`.
    status: &'static str,
    tx_hash: Option<String>,
    block_number: Option<u64>,
    anchored_at: Option<DateTime<Utc>>,
}

impl From<&AnchorState> for AnchorBody {
    fn from(anchor: &AnchorState) -> Self {
        Self {
            status: anchor.status.as_str(),
            tx_hash: anchor.tx_hash.map(|hash| hash.to_string()),
            block_number: anchor.block_number,
            anchored_at: anchor.anchored_at,
        }
    }
}

/// A record as the API returns it; `raw_data` only on single reads.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecordBody {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    patient_id: String,
    record_type: &'static str,
    #[schema(value_type = Option<Object>)]
    record_metadata: Option<Box<RawValue>>,
    data_hash: String,
    anchor_hash: String,
    /// Hash of the anchoring transaction, once sent.
    blockchain_record_id: Option<String>,
    anchor: AnchorBody,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_data: Option<String>,
}

impl RecordBody {
    fn new(record: &MedicalRecord, raw_data: Option<String>) -> Self {
        // Stored text that is not valid JSON (tampered) is shown as null;
        // verify reports the change.
        let metadata = record
            .metadata_json
            .clone()
            .and_then(|text| RawValue::from_string(text).ok());
        Self {
            id: record.id.to_string(),
            patient_id: record.patient_id.to_string(),
            record_type: record.record_type.as_str(),
            record_metadata: metadata,
            data_hash: record.data_hash.to_string(),
            anchor_hash: record.anchor_hash.to_string(),
            blockchain_record_id: record.anchor.tx_hash.map(|hash| hash.to_string()),
            anchor: AnchorBody::from(&record.anchor),
            created_at: record.created_at,
            updated_at: record.updated_at,
            raw_data,
        }
    }
}

/// One integrity check of a record.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckBody<'a> {
    /// `ciphertext`, `data_hash`, `anchor_hash`, `anchor_status`,
    /// `transaction`, `chain_entry`, `owner`, `record_type` or `timestamp`.
    name: &'static str,
    passed: bool,
    /// `passed`, `failed` or `unavailable`.
    #[schema(value_type = String)]
    status: meditrustal_records::CheckOutcome,
    reason: &'a str,
}

/// The integrity report of a record.
#[derive(Serialize, ToSchema)]
pub(crate) struct VerificationBody<'a> {
    record_id: String,
    verified: bool,
    checks: Vec<CheckBody<'a>>,
    anchor_hash: String,
    anchor: AnchorBody,
    checked_at: DateTime<Utc>,
}

impl<'a> From<&'a Verification> for VerificationBody<'a> {
    fn from(report: &'a Verification) -> Self {
        let checks = report.checks.iter().map(check_body).collect();
        Self {
            record_id: report.record_id.to_string(),
            verified: report.verified,
            checks,
            anchor_hash: report.anchor_hash.to_string(),
            anchor: AnchorBody::from(&report.anchor),
            checked_at: report.checked_at,
        }
    }
}

fn check_body(check: &Check) -> CheckBody<'_> {
    CheckBody {
        name: check.name,
        passed: check.outcome == meditrustal_records::CheckOutcome::Passed,
        status: check.outcome,
        reason: &check.reason,
    }
}

problems!(CreateProblems: BEARER, JSON_BODY, STORE, AUDITED, &[
    (403, &["forbidden", "consent_required"]),
]);
problems!(ListProblems: BEARER, QUERY, STORE, AUDITED, &[
    (403, &["forbidden", "consent_required"]),
]);
problems!(ReadProblems: BEARER, STORE, AUDITED, &[
    (403, &["consent_required"]),
    (404, &["record_not_found"]),
    (500, &["integrity_check_failed"]),
]);

/// `POST /medical-records`
#[utoipa::path(
    post,
    operation_id = "create_record",
    path = "/medical-records",
    tag = "records",
    security(("bearer" = [])),
    request_body = CreateRecordBody,
    responses(
        (status = 201, description = "The record, anchoring pending", body = RecordBody,
            headers(("location" = String, description = "Path of the new record"))),
        CreateProblems,
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    body: StrictJson<CreateRecordBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let requested_patient = body.patient_id.map(UserId).unwrap_or(caller.0.user_id);
    let request = NewRecordRequest {
        record_type: body.record_type,
        record_metadata: body.record_metadata.map(|raw| raw.get().to_owned()),
        raw_data: body.raw_data,
        patient_id: body.patient_id,
    };

    let result = state.records.create(&caller.0, request).await;

    // NOTE: the record is committed before its event. If the audit write
    // fails, the client gets 503 and the record exists without its
    // `record.create` event. Invalid input creates nothing and is not
    // recorded.
    let entry = match &result {
        Ok(record) => Some(with_reason(
            origin
                .entry(Action::RecordCreate, Outcome::Success)
                .patient(record.patient_id)
                .record(record.id.0),
            access_reason(&caller.0, record.patient_id, None),
        )),
        Err(RecordError::Forbidden(_)) => Some(
            origin
                .entry(Action::RecordCreate, Outcome::Denied)
                .patient(requested_patient)
                .reason(ReasonCode::FORBIDDEN),
        ),
        Err(RecordError::AccessDenied(_)) => Some(
            origin
                .entry(Action::RecordCreate, Outcome::Denied)
                .patient(requested_patient)
                .reason(ReasonCode::CONSENT_REQUIRED),
        ),
        Err(_) => None,
    };
    if let Some(entry) = entry {
        audit::record(&state, entry.by(&caller.0)).await?;
    }
    let record = result?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/medical-records/{}", record.id),
        ))
        .json(RecordBody::new(&record, None)))
}

/// `GET /medical-records/patient/me`
#[utoipa::path(
    get,
    path = "/medical-records/patient/me",
    tag = "records",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "The caller's records, newest first, without raw_data",
            body = Vec<RecordBody>,
            headers(("link" = String, description = "Next page, as rel=\"next\""))),
        ListProblems,
    ),
)]
pub async fn list_mine(
    state: web::Data<AppState>,
    caller: Authenticated,
    request: HttpRequest,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, Problem> {
    list(
        &state,
        &caller,
        &request,
        PatientSelector::Me,
        params.into_inner(),
    )
    .await
}

/// `GET /medical-records/patient/{patient_id}`
#[utoipa::path(
    get,
    path = "/medical-records/patient/{patient_id}",
    tag = "records",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient's id, a UUID"), ListParams),
    responses(
        (status = 200, description = "The patient's records the caller may see, newest first",
            body = Vec<RecordBody>,
            headers(("link" = String, description = "Next page, as rel=\"next\""))),
        ListProblems,
    ),
)]
pub async fn list_for_patient(
    state: web::Data<AppState>,
    caller: Authenticated,
    request: HttpRequest,
    path: web::Path<String>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, Problem> {
    let Ok(patient_id) = Uuid::try_parse(&path.into_inner()) else {
        return Err(Problem::invalid_field(
            "patient_id",
            "use the patient's id, a UUID",
        ));
    };
    list(
        &state,
        &caller,
        &request,
        PatientSelector::Patient(UserId(patient_id)),
        params.into_inner(),
    )
    .await
}

async fn list(
    state: &AppState,
    caller: &Authenticated,
    request: &HttpRequest,
    patient: PatientSelector,
    params: ListParams,
) -> Result<HttpResponse, Problem> {
    let limit = match params.limit.as_deref() {
        None => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| {
            Problem::invalid_field("limit", "use a whole number of records per page")
        })?),
    };
    let result = state
        .records
        .list_with_basis(
            &caller.0,
            patient,
            params.record_type.as_deref(),
            limit,
            params.cursor.as_deref(),
        )
        .await;

    let patient_id = match patient {
        PatientSelector::Me => caller.0.user_id,
        PatientSelector::Patient(id) => id,
    };
    let outcome = match &result {
        Ok((_, basis)) => Some((
            Outcome::Success,
            access_reason(&caller.0, patient_id, *basis),
        )),
        Err(RecordError::Forbidden(_)) => Some((Outcome::Denied, Some(ReasonCode::NOT_OWNER))),
        Err(RecordError::AccessDenied(_)) => {
            Some((Outcome::Denied, Some(ReasonCode::CONSENT_REQUIRED)))
        }
        Err(_) => None,
    };
    if let Some((outcome, reason)) = outcome {
        let entry = RequestOrigin::of(request)
            .entry(Action::RecordList, outcome)
            .by(&caller.0)
            .patient(patient_id);
        audit::record(state, with_reason(entry, reason)).await?;
    }
    let (page, _) = result?;

    let body: Vec<RecordBody> = page
        .records
        .iter()
        .map(|record| RecordBody::new(record, None))
        .collect();
    let mut response = HttpResponse::Ok();
    if let Some(next) = page.next {
        let mut query = format!("cursor={}", next.encode());
        if let Some(limit) = limit {
            query.push_str(&format!("&limit={limit}"));
        }
        if let Some(record_type) = params.record_type.as_deref() {
            query.push_str(&format!(
                "&record_type={}",
                record_type.to_ascii_uppercase()
            ));
        }
        response.insert_header((
            header::LINK,
            format!("<{}?{query}>; rel=\"next\"", request.path()),
        ));
    }
    Ok(response.json(body))
}

/// `GET /medical-records/{record_id}`: the content leaves the server only
/// after its `record.read` event is recorded.
#[utoipa::path(
    get,
    operation_id = "read_record",
    path = "/medical-records/{record_id}",
    tag = "records",
    security(("bearer" = [])),
    params(("record_id" = String, Path, description = "The record's id")),
    responses((status = 200, description = "The record with its decrypted raw_data", body = RecordBody), ReadProblems),
)]
pub async fn read(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = parse_record_id(&path)?;

    let result = state.records.read_with_basis(&caller.0, id).await;

    let access = result
        .as_ref()
        .map(|(record, _, basis)| (record.patient_id, *basis));
    audit_record_access(&state, &origin, &caller.0, Action::RecordRead, id, access).await?;
    let (record, raw_data, _) = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(RecordBody::new(&record, Some(raw_data))))
}

/// `GET /medical-records/{record_id}/verify`
#[utoipa::path(
    get,
    operation_id = "verify_record",
    path = "/medical-records/{record_id}/verify",
    tag = "records",
    security(("bearer" = [])),
    params(("record_id" = String, Path, description = "The record's id")),
    responses((status = 200, description = "The integrity checks", body = VerificationBody), ReadProblems),
)]
pub async fn verify(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = parse_record_id(&path)?;

    let result = state.records.verify_with_basis(&caller.0, id).await;

    let access = result
        .as_ref()
        .map(|(report, basis)| (report.patient_id, *basis));
    audit_record_access(&state, &origin, &caller.0, Action::RecordVerify, id, access).await?;
    let (report, _) = result?;
    Ok(HttpResponse::Ok().json(VerificationBody::from(&report)))
}

/// Schema of the receipt that `proof` returns; the body itself is the
/// serialized `meditrustal_records::Receipt`, which this mirrors for the
/// API description. Hashes and the salt are 64 lowercase hex digits.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only describes the receipt JSON")]
pub(crate) struct ReceiptSchema {
    /// Always `meditrustal.batch-receipt`.
    format: String,
    /// Format version.
    version: u32,
    leaf: LeafInputsSchema,
    /// `SHA-256(0x00 || salt || anchor_hash)`.
    leaf_hash: String,
    /// Position of the leaf in the batch, from 0.
    leaf_index: u64,
    /// Number of leaves in the batch.
    leaf_count: u64,
    /// Sibling hashes from the leaf up.
    path: Vec<ProofStepSchema>,
    /// The batch's Merkle root.
    root: String,
    anchor: ReceiptAnchorSchema,
}

/// The values a receipt's leaf commits to.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only describes the receipt JSON")]
pub(crate) struct LeafInputsSchema {
    salt: String,
    record_id: uuid::Uuid,
    data_hash: String,
    patient_did: String,
    record_type: String,
    metadata_json: Option<String>,
    created_at_unix: i64,
    anchor_hash: String,
}

/// One step of a Merkle path.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only describes the receipt JSON")]
pub(crate) struct ProofStepSchema {
    /// `left` or `right`: where the sibling goes when hashed.
    side: String,
    hash: String,
}

/// The chain, contract and transaction that anchored the batch root.
#[derive(ToSchema)]
#[allow(dead_code, reason = "only describes the receipt JSON")]
pub(crate) struct ReceiptAnchorSchema {
    chain_id: u64,
    contract_address: String,
    tx_hash: String,
    block_number: u64,
}

problems!(ProofProblems: BEARER, STORE, AUDITED, &[
    (403, &["consent_required"]),
    (404, &["record_not_found"]),
    (409, &["record_not_anchored", "receipt_not_available"]),
    (500, &["integrity_check_failed"]),
]);

/// `GET /medical-records/{record_id}/proof`: the record's anchor receipt,
/// for the callers who may read the record, audited as `record.proof`.
#[utoipa::path(
    get,
    operation_id = "record_receipt",
    path = "/medical-records/{record_id}/proof",
    tag = "records",
    security(("bearer" = [])),
    params(("record_id" = String, Path, description = "The record's id")),
    responses((status = 200, description = "The record's Merkle inclusion receipt; check it with `meditrustal verify-receipt`", body = ReceiptSchema), ProofProblems),
)]
pub async fn proof(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = parse_record_id(&path)?;

    let result = state.records.receipt_with_basis(&caller.0, id).await;

    let access = match &result {
        Ok((_, owner, basis)) => Ok((*owner, *basis)),
        Err(error @ (RecordError::NotAnchored | RecordError::AnchoredPerRecord)) => {
            match state.records.owner_of(id).await? {
                Some(owner) => Ok((owner, None)),
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    audit_record_access(&state, &origin, &caller.0, Action::RecordProof, id, access).await?;
    let (receipt, _, _) = result?;
    Ok(HttpResponse::Ok().json(receipt))
}

/// Records a read or verify of record `id`. `access` is the record's owner
/// and what let a doctor in when the service granted access, or its error
/// otherwise. A denied access (a patient's 404, a doctor's 403
/// `consent_required`) is recorded against the record's real owner, so
/// that it shows in that patient's access history, and an absent record as
/// `not_found`. A failure of the store itself is not recorded, because
/// nothing was accessed.
async fn audit_record_access(
    state: &AppState,
    origin: &RequestOrigin,
    caller: &Principal,
    action: Action,
    id: RecordId,
    access: Result<(UserId, Option<AccessBasis>), &RecordError>,
) -> Result<(), Problem> {
    let (outcome, patient, reason) = match access {
        Ok((owner, basis)) => (
            Outcome::Success,
            Some(owner),
            access_reason(caller, owner, basis),
        ),
        Err(RecordError::NotFound) => match state.records.owner_of(id).await? {
            Some(owner) => (Outcome::Denied, Some(owner), Some(ReasonCode::NOT_OWNER)),
            None => (Outcome::NotFound, None, None),
        },
        // The service returns the same denial whether the record exists or
        // not; the owner is looked up only for the event.
        Err(RecordError::AccessDenied(denial)) => match denial.patient_id {
            Some(owner) => (
                Outcome::Denied,
                Some(owner),
                Some(ReasonCode::CONSENT_REQUIRED),
            ),
            None => (Outcome::NotFound, None, None),
        },
        Err(RecordError::Integrity) => (
            Outcome::Failed,
            state.records.owner_of(id).await?,
            Some(ReasonCode::INTEGRITY_CHECK_FAILED),
        ),
        Err(_) => return Ok(()),
    };

    let mut entry = origin.entry(action, outcome).by(caller).record(id.0);
    if let Some(patient) = patient {
        entry = entry.patient(patient);
    }
    audit::record(state, with_reason(entry, reason)).await
}

/// Returns why an allowed access was allowed: `owner` for the record's
/// owner, `consent:<id>` or `break_glass:<id>` for a doctor let in by
/// `basis`.
fn access_reason(
    caller: &Principal,
    owner: UserId,
    basis: Option<AccessBasis>,
) -> Option<ReasonCode> {
    if caller.user_id == owner {
        return Some(ReasonCode::OWNER);
    }
    match basis? {
        AccessBasis::Consent(consent) => ReasonCode::with_id("consent", consent.0),
        AccessBasis::BreakGlass(access) => ReasonCode::with_id("break_glass", access),
    }
}

fn with_reason(entry: AuditEntry, reason: Option<ReasonCode>) -> AuditEntry {
    match reason {
        Some(reason) => entry.reason(reason),
        None => entry,
    }
}

/// A malformed id gets the same response as a missing record.
pub(crate) fn parse_record_id(text: &str) -> Result<RecordId, Problem> {
    Uuid::try_parse(text)
        .map(RecordId)
        .map_err(|_| meditrustal_records::RecordError::NotFound.into())
}
