//! Admin routes: list users, deactivate and reactivate them. Admin accounts
//! are made by the operator's command line, never here.

use actix_web::{web, HttpResponse};
use meditrustal_identity::{AdminAction, UserId};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::problem::Problem;
use crate::routes::users::UserBody;
use crate::routes::{parse_paging, PageParams};
use crate::AppState;

/// `GET /admin/users`
pub async fn list_users(
    state: web::Data<AppState>,
    caller: Authenticated,
    params: web::Query<PageParams>,
) -> Result<HttpResponse, Problem> {
    let (limit, offset) = parse_paging(&params)?;

    let users = state.admin.list_users(&caller.0, limit, offset).await?;

    let body: Vec<UserBody<'_>> = users.iter().map(UserBody::from).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `POST /admin/users/{id}/deactivate`
pub async fn deactivate(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let target = parse_user_id(&path)?;

    let action = state.admin.deactivate(&caller.0, target).await?;

    Ok(action_response(&action))
}

/// `POST /admin/users/{id}/reactivate`
pub async fn reactivate(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let target = parse_user_id(&path)?;

    let action = state.admin.reactivate(&caller.0, target).await?;

    Ok(action_response(&action))
}

fn action_response(action: &AdminAction) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "action": action.action,
        "admin_id": action.actor.to_string(),
        "user": UserBody::from(&action.target),
    }))
}

/// A malformed id gets the same response as an unknown user.
fn parse_user_id(text: &str) -> Result<UserId, Problem> {
    Uuid::try_parse(text)
        .map(UserId)
        .map_err(|_| meditrustal_identity::AdminError::UserNotFound.into())
}
