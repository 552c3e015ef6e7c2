//! Break-glass routes: a doctor opens emergency access; patients, doctors
//! and admins list the events.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_audit::{Action, Outcome, ReasonCode};
use meditrustal_identity::{Role, UserId};
use meditrustal_records::{BreakGlass, ConsentError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::Authenticated;
use crate::body::StrictJson;
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, QUERY, STORE};
use crate::problem::Problem;
use crate::routes::{parse_paging, PageParams};
use crate::AppState;

/// Body of `POST /medical-records/patient/{patient_id}/break-glass`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    #[serde(default)]
    reason: Option<String>,
}

/// A break-glass event as the API returns it.
#[derive(Serialize, ToSchema)]
pub(crate) struct BreakGlassEventBody<'a> {
    id: String,
    doctor_id: String,
    patient_id: String,
    reason: &'a str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Whether the access is still open.
    active: bool,
}

impl<'a> BreakGlassEventBody<'a> {
    fn new(event: &'a BreakGlass, now: DateTime<Utc>) -> Self {
        Self {
            id: event.id.to_string(),
            doctor_id: event.doctor_id.to_string(),
            patient_id: event.patient_id.to_string(),
            reason: &event.reason,
            created_at: event.created_at,
            expires_at: event.expires_at,
            active: event.is_active(now),
        }
    }
}

problems!(OpenProblems: BEARER, JSON_BODY, STORE, AUDITED, &[
    (403, &["forbidden"]),
    (404, &["patient_not_found"]),
]);
problems!(ListProblems: BEARER, QUERY, STORE);
problems!(ReviewProblems: BEARER, QUERY, STORE, AUDITED, &[(403, &["forbidden"])]);

/// `POST /medical-records/patient/{patient_id}/break-glass`: recorded as
/// `break_glass.access` with reason `break_glass:<access id>`, or as denied
/// with reason `forbidden` for a caller who is not a doctor. The free-text
/// justification stays in the break-glass table, never in the event.
#[utoipa::path(
    post,
    operation_id = "open_break_glass",
    path = "/medical-records/patient/{patient_id}/break-glass",
    tag = "consent",
    security(("bearer" = [])),
    params(("patient_id" = String, Path, description = "The patient's id, a UUID")),
    request_body = BreakGlassBody,
    responses((status = 201, description = "The emergency access, open now", body = BreakGlassEventBody), OpenProblems),
)]
pub async fn open(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
    body: StrictJson<BreakGlassBody>,
) -> Result<HttpResponse, Problem> {
    let Ok(patient_id) = Uuid::try_parse(&path) else {
        return Err(Problem::invalid_field(
            "patient_id",
            "use the patient's id, a UUID",
        ));
    };

    let patient_id = UserId(patient_id);

    let result = state
        .consents
        .open_break_glass(&caller.0, patient_id, body.0.reason)
        .await;

    let entry =
        match &result {
            Ok(event) => Some(origin.entry(Action::BreakGlass, Outcome::Success).reason(
                ReasonCode::with_id("break_glass", event.id).ok_or_else(Problem::internal)?,
            )),
            Err(ConsentError::Forbidden(_)) => Some(
                origin
                    .entry(Action::BreakGlass, Outcome::Denied)
                    .reason(ReasonCode::FORBIDDEN),
            ),
            Err(_) => None,
        };
    if let Some(entry) = entry {
        audit::record(&state, entry.by(&caller.0).patient(patient_id)).await?;
    }
    let event = result?;

    Ok(HttpResponse::Created().json(BreakGlassEventBody::new(&event, Utc::now())))
}

/// `GET /break-glass`: patients see events on their records, doctors the
/// events they opened, admins all.
#[utoipa::path(
    get,
    operation_id = "list_break_glass",
    path = "/break-glass",
    tag = "consent",
    security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "Break-glass events, newest first", body = Vec<BreakGlassEventBody>), ListProblems),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, Problem> {
    let (limit, offset) = parse_paging(&params)?;

    let events = state
        .consents
        .list_break_glass(&caller.0, limit, offset)
        .await?;

    let now = Utc::now();
    let body: Vec<BreakGlassEventBody<'_>> = events
        .iter()
        .map(|event| BreakGlassEventBody::new(event, now))
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /admin/break-glass`: every event, for admins to review. Recorded
/// as `admin.command` with reason `list_break_glass`.
#[utoipa::path(
    get,
    operation_id = "review_break_glass",
    path = "/admin/break-glass",
    tag = "admin",
    security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "Every break-glass event, newest first", body = Vec<BreakGlassEventBody>), ReviewProblems),
)]
pub async fn review(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, Problem> {
    let allowed = caller.0.role == Role::Admin;
    let outcome = if allowed {
        Outcome::Success
    } else {
        Outcome::Denied
    };
    let entry = origin
        .entry(Action::AdminCommand, outcome)
        .by(&caller.0)
        .reason(ReasonCode::LIST_BREAK_GLASS);
    audit::record(&state, entry).await?;
    if !allowed {
        return Err(meditrustal_identity::AdminError::Forbidden.into());
    }
    list(state, caller, params).await
}
