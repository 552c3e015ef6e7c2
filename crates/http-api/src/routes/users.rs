use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_identity::User;
use serde::Serialize;

use crate::auth::Authenticated;
use crate::problem::Problem;
use crate::AppState;

/// A user as the API returns it.
#[derive(Serialize)]
pub struct UserBody<'a> {
    id: String,
    username: &'a str,
    email: &'a str,
    full_name: Option<&'a str>,
    role: &'static str,
    did: &'a str,
    blockchain_address: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> From<&'a User> for UserBody<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id.to_string(),
            username: user.username.as_str(),
            email: user.email.as_str(),
            full_name: user.full_name.as_deref(),
            role: user.role.as_str(),
            did: user.did.as_str(),
            blockchain_address: user.blockchain_address.to_string(),
            is_active: user.is_active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `GET /users/me`
pub async fn me(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let user = state
        .identity
        .user(caller.0.user_id)
        .await?
        .ok_or_else(Problem::unauthenticated)?;

    Ok(HttpResponse::Ok().json(UserBody::from(&user)))
}
