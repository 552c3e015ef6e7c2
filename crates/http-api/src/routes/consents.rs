//! Consent routes: the per-record paths the existing frontend calls, and
//! the `/consents` resource for the general case.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_audit::{Action, AuditEntry, Outcome, ReasonCode};
use meditrustal_identity::{Principal, UserId};
use meditrustal_ledger::{Address, AnchorState};
use meditrustal_records::{Consent, ConsentId, ConsentScope, GrantRequest, PartyRef};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::Authenticated;
use crate::body::StrictJson;
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, STORE};
use crate::problem::Problem;
use crate::routes::records::{parse_record_id, AnchorBody};
use crate::AppState;

/// Body of `grant-access` and `revoke-access`: one of the two fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorBody {
    #[serde(default)]
    doctor_id: Option<Uuid>,
    #[serde(default)]
    doctor_address: Option<String>,
}

/// Body of `POST /consents`: `doctor_id` or `doctor_address`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    #[serde(default)]
    doctor_id: Option<Uuid>,
    #[serde(default)]
    doctor_address: Option<String>,
    /// `read` or `write`.
    #[schema(example = "read")]
    access: String,
    #[serde(default)]
    record_types: Option<Vec<String>>,
    #[serde(default)]
    record_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    purpose: Option<String>,
}

/// A consent as the API returns it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConsentBody {
    id: String,
    patient_id: String,
    patient_address: String,
    doctor_id: String,
    doctor_address: String,
    access: &'static str,
    scope: &'static str,
    record_types: Option<Vec<&'static str>>,
    record_ids: Option<Vec<String>>,
    purpose: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    status: &'static str,
    scope_hash: String,
    signature: String,
    /// Chain state of the grant.
    grant: AnchorBody,
    /// Chain state of the revocation, once revoked.
    revocation: Option<AnchorBody>,
}

impl ConsentBody {
    fn new(consent: &Consent, now: DateTime<Utc>) -> Self {
        let (record_types, record_ids) = match &consent.scope {
            ConsentScope::AllRecords => (None, None),
            ConsentScope::RecordTypes(types) => {
                (Some(types.iter().map(|kind| kind.as_str()).collect()), None)
            }
            ConsentScope::Records(ids) => {
                (None, Some(ids.iter().map(ToString::to_string).collect()))
            }
        };
        Self {
            id: consent.id.to_string(),
            patient_id: consent.patient_id.to_string(),
            patient_address: consent.patient_address.to_string(),
            doctor_id: consent.doctor_id.to_string(),
            doctor_address: consent.doctor_address.to_string(),
            access: consent.access.as_str(),
            scope: consent.scope.kind(),
            record_types,
            record_ids,
            purpose: consent.purpose.clone(),
            expires_at: consent.expires_at,
            created_at: consent.created_at,
            revoked_at: consent.revoked_at,
            status: consent.status(now).as_str(),
            scope_hash: consent.scope_hash().to_string(),
            signature: consent.grant_signature.to_string(),
            grant: AnchorBody::from(&consent.grant_anchor),
            revocation: consent.revocation_anchor.as_ref().map(AnchorBody::from),
        }
    }
}

/// The answer to `grant-access`.
#[derive(Serialize, ToSchema)]
pub(crate) struct GrantAccessBody {
    message: &'static str,
    record_id: String,
    doctor_address: String,
    consent_id: String,
    /// `null` until the outbox sends the patient-signed grant.
    transaction_hash: Option<String>,
}

/// The answer to `revoke-access`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RevokeAccessBody {
    message: String,
    record_id: String,
    /// `null` when no consent was in force.
    doctor_address: Option<String>,
    consent_ids: Vec<String>,
    /// `null` until the outbox sends the patient-signed revocation.
    transaction_hash: Option<String>,
}

/// The answer to `check-access`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckAccessBody {
    record_id: String,
    accessor_address: String,
    /// Whether a consent or an open break-glass access lets the doctor read the record.
    has_access: bool,
    checked_at: DateTime<Utc>,
}

problems!(RecordConsentProblems: BEARER, JSON_BODY, STORE, AUDITED, CONSENT);
problems!(CheckAccessProblems: BEARER, STORE, &[
    (403, &["forbidden"]),
    (404, &["record_not_found"]),
    (422, &["validation_failed"]),
]);
problems!(CreateConsentProblems: BEARER, JSON_BODY, STORE, AUDITED, CONSENT);
problems!(ListConsentProblems: BEARER, STORE, &[(403, &["forbidden"])]);
problems!(RevokeConsentProblems: BEARER, STORE, AUDITED, &[
    (403, &["forbidden"]),
    (404, &["consent_not_found"]),
    (409, &["consent_already_revoked"]),
]);

/// Problems of granting or revoking a consent.
const CONSENT: crate::openapi::ProblemList = &[
    (403, &["forbidden"]),
    (
        404,
        &["record_not_found", "consent_not_found", "patient_not_found"],
    ),
    (409, &["consent_already_revoked"]),
];

/// Transaction hash of a chain write, once sent; the outbox sends it after
/// the response, so a fresh grant or revocation shows `null`.
fn transaction_hash(anchor: Option<&AnchorState>) -> Option<String> {
    anchor
        .and_then(|anchor| anchor.tx_hash)
        .map(|hash| hash.to_string())
}

/// Starts the `consent.grant` or `consent.revoke` event of `consent`: the
/// patient acts on their own data, and the reason names the consent.
fn consent_event(
    origin: &RequestOrigin,
    action: Action,
    caller: &Principal,
    consent: &Consent,
) -> Result<AuditEntry, Problem> {
    let reason = ReasonCode::with_id("consent", consent.id.0).ok_or_else(Problem::internal)?;
    Ok(origin
        .entry(action, Outcome::Success)
        .by(caller)
        .patient(consent.patient_id)
        .reason(reason))
}

/// `POST /medical-records/{record_id}/grant-access`
#[utoipa::path(
    post,
    path = "/medical-records/{record_id}/grant-access",
    tag = "consent",
    security(("bearer" = [])),
    params(("record_id" = String, Path, description = "The record's id")),
    request_body = DoctorBody,
    responses((status = 200, description = "The consent, queued for the chain", body = GrantAccessBody), RecordConsentProblems),
)]
///
/// NOTE: the consent is committed before its event. If the audit write
/// fails, the client gets 503 and the consent exists without its
/// `consent.grant` event, as for record creation.
pub async fn grant_access(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
    body: StrictJson<DoctorBody>,
) -> Result<HttpResponse, Problem> {
    let record_id = parse_record_id(&path)?;
    let doctor = parse_doctor(body.0.doctor_id, body.0.doctor_address.as_deref())?;

    let consent = state
        .consents
        .grant_for_record(&caller.0, record_id, doctor)
        .await?;

    let entry = consent_event(&origin, Action::ConsentGrant, &caller.0, &consent)?;
    audit::record(&state, entry.record(record_id.0)).await?;

    Ok(HttpResponse::Ok().json(GrantAccessBody {
        message: "Access granted. The patient-signed grant is queued for the chain.",
        record_id: record_id.to_string(),
        doctor_address: consent.doctor_address.to_string(),
        consent_id: consent.id.to_string(),
        transaction_hash: transaction_hash(Some(&consent.grant_anchor)),
    }))
}

/// `POST /medical-records/{record_id}/revoke-access`: one `consent.revoke`
/// event per revoked consent.
#[utoipa::path(
    post,
    path = "/medical-records/{record_id}/revoke-access",
    tag = "consent",
    security(("bearer" = [])),
    params(("record_id" = String, Path, description = "The record's id")),
    request_body = DoctorBody,
    responses((status = 200, description = "The consents revoked", body = RevokeAccessBody), RecordConsentProblems),
)]
pub async fn revoke_access(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
    body: StrictJson<DoctorBody>,
) -> Result<HttpResponse, Problem> {
    let record_id = parse_record_id(&path)?;
    let doctor = parse_doctor(body.0.doctor_id, body.0.doctor_address.as_deref())?;

    let revoked = state
        .consents
        .revoke_for_record(&caller.0, record_id, doctor)
        .await?;

    for consent in &revoked {
        let entry = consent_event(&origin, Action::ConsentRevoke, &caller.0, consent)?;
        audit::record(&state, entry.record(record_id.0)).await?;
    }

    let doctor_address = revoked
        .first()
        .map(|consent| consent.doctor_address.to_string());
    let consent_ids: Vec<String> = revoked
        .iter()
        .map(|consent| consent.id.to_string())
        .collect();
    Ok(HttpResponse::Ok().json(RevokeAccessBody {
        message: format!(
            "Access revoked: {} consent(s). The patient-signed revocation is queued for the chain.",
            revoked.len()
        ),
        record_id: record_id.to_string(),
        doctor_address,
        consent_ids,
        transaction_hash: transaction_hash(
            revoked
                .first()
                .and_then(|consent| consent.revocation_anchor.as_ref()),
        ),
    }))
}

/// `GET /medical-records/{record_id}/check-access/{doctor_address}`
#[utoipa::path(
    get,
    path = "/medical-records/{record_id}/check-access/{doctor_address}",
    tag = "consent",
    security(("bearer" = [])),
    params(
        ("record_id" = String, Path, description = "The record's id"),
        ("doctor_address" = String, Path, description = "The doctor's address, 0x and 40 hex digits"),
    ),
    responses((status = 200, description = "Whether the doctor may read the record", body = CheckAccessBody), CheckAccessProblems),
)]
pub async fn check_access(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (record, address) = path.into_inner();
    let record_id = parse_record_id(&record)?;
    let address = parse_address(&address, "doctor_address")?;

    let has_access = state
        .consents
        .check_access(&caller.0, record_id, address)
        .await?;

    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CheckAccessBody {
            record_id: record_id.to_string(),
            accessor_address: address.to_string(),
            has_access,
            checked_at: Utc::now(),
        }))
}

/// `POST /consents`
#[utoipa::path(
    post,
    operation_id = "create_consent",
    path = "/consents",
    tag = "consent",
    security(("bearer" = [])),
    request_body = GrantBody,
    responses(
        (status = 201, description = "The consent", body = ConsentBody,
            headers(("location" = String, description = "Path of the new consent"))),
        CreateConsentProblems,
    ),
)]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    body: StrictJson<GrantBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let request = GrantRequest {
        doctor: parse_doctor(body.doctor_id, body.doctor_address.as_deref())?,
        access: body.access,
        record_types: body.record_types,
        record_ids: body.record_ids,
        expires_at: body.expires_at,
        purpose: body.purpose,
    };

    let consent = state.consents.grant(&caller.0, request).await?;

    let entry = consent_event(&origin, Action::ConsentGrant, &caller.0, &consent)?;
    audit::record(&state, entry).await?;

    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/consents/{}", consent.id)))
        .json(ConsentBody::new(&consent, Utc::now())))
}

/// `GET /consents`
#[utoipa::path(
    get,
    operation_id = "list_consents",
    path = "/consents",
    tag = "consent",
    security(("bearer" = [])),
    responses((status = 200, description = "Consents given or received, newest first", body = Vec<ConsentBody>), ListConsentProblems),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let consents = state.consents.list(&caller.0).await?;

    let now = Utc::now();
    let body: Vec<ConsentBody> = consents
        .iter()
        .map(|consent| ConsentBody::new(consent, now))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// `DELETE /consents/{id}`
#[utoipa::path(
    delete,
    operation_id = "revoke_consent",
    path = "/consents/{id}",
    tag = "consent",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The consent's id")),
    responses((status = 200, description = "The revoked consent", body = ConsentBody), RevokeConsentProblems),
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = Uuid::try_parse(&path)
        .map(ConsentId)
        .map_err(|_| Problem::from(meditrustal_records::ConsentError::ConsentNotFound))?;

    let consent = state.consents.revoke(&caller.0, id).await?;

    let entry = consent_event(&origin, Action::ConsentRevoke, &caller.0, &consent)?;
    audit::record(&state, entry).await?;

    Ok(HttpResponse::Ok().json(ConsentBody::new(&consent, Utc::now())))
}

/// Reads exactly one of `doctor_id` and `doctor_address`.
fn parse_doctor(id: Option<Uuid>, address: Option<&str>) -> Result<PartyRef, Problem> {
    match (id, address) {
        (Some(id), None) => Ok(PartyRef::Id(UserId(id))),
        (None, Some(address)) => Ok(PartyRef::Address(parse_address(address, "doctor_address")?)),
        _ => Err(Problem::invalid_field(
            "doctor_id",
            "give either doctor_id or doctor_address",
        )),
    }
}

pub(crate) fn parse_address(text: &str, field: &'static str) -> Result<Address, Problem> {
    text.parse()
        .map_err(|_| Problem::invalid_field(field, "use 0x followed by 40 hex digits"))
}
