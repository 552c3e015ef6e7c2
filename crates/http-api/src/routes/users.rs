use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_identity::User;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::openapi::{problems, BEARER, STORE};
use crate::problem::Problem;
use crate::AppState;

/// A user as the API returns it.
#[derive(Serialize, ToSchema)]
pub struct UserBody<'a> {
    #[schema(format = Uuid)]
    id: String,
    username: &'a str,
    email: &'a str,
    full_name: Option<&'a str>,
    /// `PATIENT`, `DOCTOR` or `ADMIN`.
    role: &'static str,
    /// `did:meditrustal:` and base58btc of SHA-256 over the user id.
    did: &'a str,
    /// The custodial Ethereum account, `0x` and 40 hex digits.
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

problems!(MeProblems: BEARER, STORE);

/// `GET /users/me`
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserBody), MeProblems),
)]
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
