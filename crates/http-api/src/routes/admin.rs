//! Admin routes: list users, deactivate and reactivate them. Admin accounts
//! are made by the operator's command line, never here.

use actix_web::{web, HttpResponse};
use meditrustal_audit::{Action, Outcome, ReasonCode};
use meditrustal_identity::{AdminAction, AdminError, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::Authenticated;
use crate::openapi::{problems, AUDITED, BEARER, QUERY, STORE};
use crate::problem::Problem;
use crate::routes::users::UserBody;
use crate::routes::{parse_paging, PageParams};
use crate::AppState;

/// Records an admin command as `admin.command`, with the command as the
/// reason and the affected user, if any, as the patient. A failure of the
/// store or invalid input is not recorded, because nothing was done.
async fn audit_command<T>(
    state: &AppState,
    origin: &RequestOrigin,
    caller: &Authenticated,
    command: ReasonCode,
    target: Option<UserId>,
    result: &Result<T, AdminError>,
) -> Result<(), Problem> {
    let outcome = match result {
        Ok(_) => Outcome::Success,
        Err(AdminError::Forbidden | AdminError::SelfDeactivation) => Outcome::Denied,
        Err(AdminError::UserNotFound) => Outcome::NotFound,
        Err(AdminError::Invalid { .. } | AdminError::Unavailable(_)) => return Ok(()),
    };
    let mut entry = origin
        .entry(Action::AdminCommand, outcome)
        .by(&caller.0)
        .reason(command);
    if let Some(target) = target {
        entry = entry.patient(target);
    }
    audit::record(state, entry).await
}

/// The answer to an admin command on a user.
#[derive(Serialize, ToSchema)]
pub(crate) struct AdminActionBody<'a> {
    /// `deactivate` or `reactivate`.
    action: &'a str,
    admin_id: String,
    user: UserBody<'a>,
}

problems!(ListUsersProblems: BEARER, QUERY, STORE, AUDITED, &[(403, &["forbidden"])]);
problems!(CommandProblems: BEARER, STORE, AUDITED, &[
    (403, &["forbidden"]),
    (404, &["user_not_found"]),
    (409, &["cannot_deactivate_self"]),
]);

/// `GET /admin/users`
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, description = "Users, oldest first", body = Vec<UserBody>), ListUsersProblems),
)]
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, Problem> {
    let (limit, offset) = parse_paging(&params)?;

    let result = state.admin.list_users(&caller.0, limit, offset).await;

    audit_command(
        &state,
        &origin,
        &caller,
        ReasonCode::LIST_USERS,
        None,
        &result,
    )
    .await?;
    let users = result?;

    let body: Vec<UserBody<'_>> = users.iter().map(UserBody::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /admin/users/{id}/deactivate`
#[utoipa::path(
    post,
    path = "/admin/users/{id}/deactivate",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 200, description = "The user, now inactive", body = AdminActionBody), CommandProblems),
)]
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let target = parse_user_id(&path)?;

    let result = state.admin.deactivate(&caller.0, target).await;

    let command = ReasonCode::DEACTIVATE_USER;
    audit_command(&state, &origin, &caller, command, Some(target), &result).await?;
    let action = result?;

    Ok(action_response(&action))
}

/// `POST /admin/users/{id}/reactivate`
#[utoipa::path(
    post,
    path = "/admin/users/{id}/reactivate",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses((status = 200, description = "The user, now active", body = AdminActionBody), CommandProblems),
)]
pub async fn reactivate(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let target = parse_user_id(&path)?;

    let result = state.admin.reactivate(&caller.0, target).await;

    let command = ReasonCode::REACTIVATE_USER;
    audit_command(&state, &origin, &caller, command, Some(target), &result).await?;
    let action = result?;

    Ok(action_response(&action))
}

fn action_response(action: &AdminAction) -> HttpResponse {
    HttpResponse::Ok().json(AdminActionBody {
        action: action.action,
        admin_id: action.actor.to_string(),
        user: UserBody::from(&action.target),
    })
}

/// A malformed id gets the same response as an unknown user.
fn parse_user_id(text: &str) -> Result<UserId, Problem> {
    Uuid::try_parse(text)
        .map(UserId)
        .map_err(|_| meditrustal_identity::AdminError::UserNotFound.into())
}
