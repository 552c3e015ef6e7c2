use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use meditrustal_audit::{
    Action, Actor, AuditError, AuditEvent, EventFilter, EventPage, Outcome, ReasonCode,
};
use meditrustal_identity::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::Authenticated;
use crate::openapi::{problems, AUDITED, BEARER, QUERY, STORE};
use crate::problem::Problem;
use crate::AppState;

/// Query parameters to repeat in a next-page link, as name and value
/// pairs whose values need no percent-encoding.
type FilterQuery = Vec<(&'static str, String)>;

/// Paging of the access history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Events per page, a whole number.
    limit: Option<String>,
    /// The cursor from the previous page's `Link` header.
    cursor: Option<String>,
}

/// Filters and paging of the admin event search.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Actor's user id.
    actor: Option<String>,
    /// Patient's user id.
    patient: Option<String>,
    /// Record id.
    record: Option<String>,
    /// Action such as `record.read`.
    action: Option<String>,
    /// `success`, `denied`, `not_found` or `failed`.
    outcome: Option<String>,
    /// Earliest time, RFC 3339.
    from: Option<String>,
    /// Latest time, RFC 3339.
    to: Option<String>,
    /// Events per page, a whole number.
    limit: Option<String>,
    /// The cursor from the previous page's `Link` header.
    cursor: Option<String>,
}

/// Who acted.
#[derive(Serialize, ToSchema)]
pub(crate) struct ActorBody {
    id: String,
    role: &'static str,
}

impl From<&Actor> for ActorBody {
    fn from(actor: &Actor) -> Self {
        Self {
            id: actor.user_id.to_string(),
            role: actor.role.as_str(),
        }
    }
}

/// An event as shown to the patient: who did what to which record, when
/// and why. It leaves out the accessor's address and the chain hashes.
#[derive(Serialize, ToSchema)]
pub(crate) struct AccessBody {
    seq: u64,
    occurred_at: DateTime<Utc>,
    actor: Option<ActorBody>,
    action: &'static str,
    outcome: &'static str,
    reason: Option<String>,
    record_id: Option<String>,
}

impl From<&AuditEvent> for AccessBody {
    fn from(event: &AuditEvent) -> Self {
        let entry = &event.entry;
        Self {
            seq: event.seq,
            occurred_at: entry.occurred_at,
            actor: entry.actor.as_ref().map(ActorBody::from),
            action: entry.action.as_str(),
            outcome: entry.outcome.as_str(),
            reason: entry.reason.as_ref().map(ToString::to_string),
            record_id: entry.record_id.map(|id| id.to_string()),
        }
    }
}

/// An event with every stored field, for admins.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventBody {
    seq: u64,
    occurred_at: DateTime<Utc>,
    actor: Option<ActorBody>,
    action: &'static str,
    outcome: &'static str,
    reason: Option<String>,
    patient_id: Option<String>,
    record_id: Option<String>,
    request_id: Option<String>,
    client_ip: Option<String>,
    prev_hash: String,
    hash: String,
}

impl From<&AuditEvent> for EventBody {
    fn from(event: &AuditEvent) -> Self {
        let entry = &event.entry;
        Self {
            seq: event.seq,
            occurred_at: entry.occurred_at,
            actor: entry.actor.as_ref().map(ActorBody::from),
            action: entry.action.as_str(),
            outcome: entry.outcome.as_str(),
            reason: entry.reason.as_ref().map(ToString::to_string),
            patient_id: entry.patient_id.map(|id| id.to_string()),
            record_id: entry.record_id.map(|id| id.to_string()),
            request_id: entry.request_id.as_ref().map(ToString::to_string),
            client_ip: entry.client_ip.map(|ip| ip.to_string()),
            prev_hash: event.prev_hash.to_string(),
            hash: event.hash.to_string(),
        }
    }
}

problems!(HistoryProblems: BEARER, QUERY, STORE);
problems!(SearchProblems: BEARER, QUERY, STORE, AUDITED, &[(403, &["forbidden"])]);

/// `GET /audit/my-record-access-history`: events about the caller's own
/// records, newest first, including denied attempts.
#[utoipa::path(
    get,
    path = "/audit/my-record-access-history",
    tag = "audit",
    security(("bearer" = [])),
    params(HistoryParams),
    responses(
        (status = 200, description = "Events about the caller's records, newest first",
            body = Vec<AccessBody>,
            headers(("link" = String, description = "Next page, as rel=\"next\""))),
        HistoryProblems,
    ),
)]
pub async fn my_record_access_history(
    state: web::Data<AppState>,
    caller: Authenticated,
    request: HttpRequest,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse, Problem> {
    let limit = parse_limit(params.limit.as_deref())?;

    let page = state
        .audit
        .access_history(&caller.0, limit, params.cursor.as_deref())
        .await?;

    let body: Vec<AccessBody> = page.events.iter().map(AccessBody::from).collect();
    Ok(with_next_link(&request, &page, limit, Vec::new()).json(body))
}

/// `GET /admin/audit-events`: every event that matches the filters, newest
/// first, for admins. The search itself is recorded as `audit.search`
/// before any result is returned, and so is a refused search.
#[utoipa::path(
    get,
    path = "/admin/audit-events",
    tag = "admin",
    security(("bearer" = [])),
    params(SearchParams),
    responses(
        (status = 200, description = "Matching events, newest first", body = Vec<EventBody>,
            headers(("link" = String, description = "Next page, as rel=\"next\""))),
        SearchProblems,
    ),
)]
pub async fn search_events(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    request: HttpRequest,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, Problem> {
    let (filter, filter_query) = parse_filter(&params)?;
    let limit = parse_limit(params.limit.as_deref())?;

    let result = state
        .audit
        .search(&caller.0, filter.clone(), limit, params.cursor.as_deref())
        .await;

    let outcome = match &result {
        Ok(_) => Outcome::Success,
        Err(AuditError::Forbidden(_)) => Outcome::Denied,
        // An invalid cursor or range searched nothing, so there is nothing to record.
        Err(error) => return Err(error.clone().into()),
    };
    let mut entry = origin.entry(Action::AuditSearch, outcome).by(&caller.0);
    if outcome == Outcome::Denied {
        entry = entry.reason(ReasonCode::NOT_ADMIN);
    }
    if let Some(patient) = filter.patient_id {
        entry = entry.patient(patient);
    }
    if let Some(record) = filter.record_id {
        entry = entry.record(record);
    }
    audit::record(&state, entry).await?;
    let page = result?;

    let body: Vec<EventBody> = page.events.iter().map(EventBody::from).collect();
    Ok(with_next_link(&request, &page, limit, filter_query).json(body))
}

/// Starts a 200 response with a `Link: <…?cursor=…>; rel="next"` header when
/// there is a next page. `filter_query` contains the filters to repeat in
/// the link.
fn with_next_link(
    request: &HttpRequest,
    page: &EventPage,
    limit: Option<u32>,
    filter_query: FilterQuery,
) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(next) = page.next {
        let mut query = format!("cursor={next}");
        if let Some(limit) = limit {
            query.push_str(&format!("&limit={limit}"));
        }
        for (name, value) in filter_query {
            query.push_str(&format!("&{name}={value}"));
        }
        response.insert_header((
            header::LINK,
            format!("<{}?{query}>; rel=\"next\"", request.path()),
        ));
    }
    response
}

fn parse_limit(text: Option<&str>) -> Result<Option<u32>, Problem> {
    text.map(|text| {
        text.parse::<u32>()
            .map_err(|_| Problem::invalid_field("limit", "use a whole number of events per page"))
    })
    .transpose()
}

/// Parses the search filters, and returns them with their canonical
/// spelling for the next page's link.
fn parse_filter(params: &SearchParams) -> Result<(EventFilter, FilterQuery), Problem> {
    let actor = parse_uuid("actor", params.actor.as_deref())?;
    let patient = parse_uuid("patient", params.patient.as_deref())?;
    let record = parse_uuid("record", params.record.as_deref())?;

    let action = params
        .action
        .as_deref()
        .map(|text| {
            Action::parse(text).ok_or_else(|| {
                Problem::invalid_field("action", format!("use one of {}", Action::names()))
            })
        })
        .transpose()?;
    let outcome = params
        .outcome
        .as_deref()
        .map(|text| {
            Outcome::parse(text).ok_or_else(|| {
                Problem::invalid_field("outcome", format!("use one of {}", Outcome::names()))
            })
        })
        .transpose()?;
    let from = parse_time("from", params.from.as_deref())?;
    let to = parse_time("to", params.to.as_deref())?;

    let mut query = Vec::new();
    query.extend(actor.map(|id| ("actor", id.hyphenated().to_string())));
    query.extend(patient.map(|id| ("patient", id.hyphenated().to_string())));
    query.extend(record.map(|id| ("record", id.hyphenated().to_string())));
    query.extend(action.map(|action| ("action", action.as_str().to_owned())));
    query.extend(outcome.map(|outcome| ("outcome", outcome.as_str().to_owned())));
    query.extend(from.map(|time| ("from", link_time(time))));
    query.extend(to.map(|time| ("to", link_time(time))));
    let filter = EventFilter {
        actor_id: actor.map(UserId),
        patient_id: patient.map(UserId),
        record_id: record,
        action,
        outcome,
        from,
        to,
    };
    Ok((filter, query))
}

fn parse_uuid(name: &'static str, text: Option<&str>) -> Result<Option<Uuid>, Problem> {
    text.map(|text| Uuid::try_parse(text).map_err(|_| Problem::invalid_field(name, "use a UUID")))
        .transpose()
}

fn parse_time(name: &'static str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.to_utc())
            .map_err(|_| {
                Problem::invalid_field(
                    name,
                    "use an RFC 3339 time such as 2026-01-02T03:04:05Z (encode + as %2B)",
                )
            })
    })
    .transpose()
}

/// RFC 3339 in UTC with `Z`, so the link needs no percent-encoding.
fn link_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
