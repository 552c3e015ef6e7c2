use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_identity::UserId;
use meditrustal_ledger::AnchorState;
use meditrustal_records::{
    Check, MedicalRecord, NewRecordRequest, PatientSelector, RecordId, Verification,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::body::StrictJson;
use crate::problem::Problem;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRecordBody {
    record_type: String,
    /// Kept as raw JSON text so the stored metadata keeps every digit.
    #[serde(default)]
    record_metadata: Option<Box<RawValue>>,
    raw_data: String,
    #[serde(default)]
    patient_id: Option<Uuid>,
}

#[derive(Deserialize)]
pub struct ListParams {
    record_type: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct AnchorBody {
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
#[derive(Serialize)]
struct RecordBody {
    id: String,
    patient_id: String,
    record_type: &'static str,
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

#[derive(Serialize)]
struct CheckBody<'a> {
    name: &'static str,
    passed: bool,
    status: meditrustal_records::CheckOutcome,
    reason: &'a str,
}

#[derive(Serialize)]
struct VerificationBody<'a> {
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

/// `POST /medical-records`
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: StrictJson<CreateRecordBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let request = NewRecordRequest {
        record_type: body.record_type,
        record_metadata: body.record_metadata.map(|raw| raw.get().to_owned()),
        raw_data: body.raw_data,
        patient_id: body.patient_id,
    };

    let record = state.records.create(&caller.0, request).await?;

    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/medical-records/{}", record.id),
        ))
        .json(RecordBody::new(&record, None)))
}

/// `GET /medical-records/patient/me`
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
    let page = state
        .records
        .list(
            &caller.0,
            patient,
            params.record_type.as_deref(),
            limit,
            params.cursor.as_deref(),
        )
        .await?;

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

/// `GET /medical-records/{record_id}`
pub async fn read(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = parse_record_id(&path)?;

    let (record, raw_data) = state.records.read(&caller.0, id).await?;

    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(RecordBody::new(&record, Some(raw_data))))
}

/// `GET /medical-records/{record_id}/verify`
pub async fn verify(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = parse_record_id(&path)?;

    let report = state.records.verify(&caller.0, id).await?;

    Ok(HttpResponse::Ok().json(VerificationBody::from(&report)))
}

/// A malformed id gets the same answer as a missing record.
pub(crate) fn parse_record_id(text: &str) -> Result<RecordId, Problem> {
    Uuid::try_parse(text)
        .map(RecordId)
        .map_err(|_| meditrustal_records::RecordError::NotFound.into())
}
