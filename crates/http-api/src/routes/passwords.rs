//! Password change and password reset.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use meditrustal_audit::{Action, Actor, Outcome, ReasonCode};
use meditrustal_identity::IdentityError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, RequestOrigin};
use crate::auth::{Authenticated, Client};
use crate::body::StrictJson;
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, STORE};
use crate::problem::Problem;
use crate::routes::auth::{token_response, TokenBody};
use crate::AppState;

/// Shortest time `POST /auth/password-reset` takes. Known addresses cost a
/// few database writes more than unknown ones; waiting up to this floor
/// hides that difference.
///
/// NOTE: the floor hides only work that finishes within it. A notifier
/// slower than this (a synchronous SMTP call) would leak again and must
/// queue its messages instead.
const RESET_REQUEST_FLOOR: Duration = Duration::from_millis(250);

/// Detail of the response to every well-formed reset request.
const RESET_REQUESTED: &str =
    "If an active account has this email address, a password reset token has been sent to it.";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeBody {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    token: String,
    new_password: String,
}

/// The same answer to every well-formed reset request.
#[derive(Serialize, ToSchema)]
pub(crate) struct ResetRequestedBody {
    detail: &'static str,
}

problems!(ChangeProblems: BEARER, JSON_BODY, STORE, AUDITED, &[(429, &["too_many_attempts"])]);
problems!(ResetRequestProblems: JSON_BODY, STORE);
problems!(ResetConfirmProblems: JSON_BODY, STORE, AUDITED, &[(400, &["invalid_reset_token"])]);

/// `POST /auth/password`: ends every session and returns tokens of a new
/// one.
#[utoipa::path(
    post,
    operation_id = "change_password",
    path = "/auth/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChangeBody,
    responses((status = 200, description = "Tokens of a new session", body = TokenBody), ChangeProblems),
)]
pub async fn change(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<PasswordChangeBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let current = SecretString::from(body.current_password);
    let new_password = SecretString::from(body.new_password);

    let result = state
        .identity
        .change_password(caller.0.user_id, &current, new_password, &client.0)
        .await;

    // A new password that fails the policy changes nothing and is not
    // recorded; a wrong current password is a denied change.
    let audited = match &result {
        Ok(_) => Some((Outcome::Success, None)),
        Err(IdentityError::Invalid {
            field: "current_password",
            ..
        }) => Some((Outcome::Denied, Some(ReasonCode::INVALID_CREDENTIALS))),
        Err(IdentityError::TooManyAttempts { .. }) => {
            Some((Outcome::Denied, Some(ReasonCode::TOO_MANY_ATTEMPTS)))
        }
        Err(_) => None,
    };
    if let Some((outcome, reason)) = audited {
        let mut entry = origin.entry(Action::PasswordChange, outcome).by(&caller.0);
        if let Some(reason) = reason {
            entry = entry.reason(reason);
        }
        audit::record(&state, entry).await?;
    }
    let tokens = result?;

    Ok(token_response(&tokens))
}

/// `POST /auth/password-reset`: 202 with the same body whether or not the
/// address belongs to an account.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = ResetRequestBody,
    responses((status = 202, description = "Sent if the account exists", body = ResetRequestedBody), ResetRequestProblems),
)]
pub async fn request_reset(
    state: web::Data<AppState>,
    body: StrictJson<ResetRequestBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let started = Instant::now();

    let result = state.identity.request_password_reset(&body.email).await;

    if let Some(rest) = RESET_REQUEST_FLOOR.checked_sub(started.elapsed()) {
        actix_web::rt::time::sleep(rest).await;
    }
    result?;
    Ok(
        HttpResponse::build(StatusCode::ACCEPTED).json(ResetRequestedBody {
            detail: RESET_REQUESTED,
        }),
    )
}

/// `POST /auth/password-reset/confirm`: sets the password and ends every
/// session.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    request_body = ResetConfirmBody,
    responses((status = 204, description = "The password is set"), ResetConfirmProblems),
)]
pub async fn confirm_reset(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    body: StrictJson<ResetConfirmBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let token = SecretString::from(body.token);
    let new_password = SecretString::from(body.new_password);

    let user_id = state.identity.reset_password(&token, new_password).await?;

    // The reset token proves nothing about the role, so the actor's role
    // is read back with the user.
    if let Some(user) = state.identity.user(user_id).await? {
        let entry = origin
            .entry(Action::PasswordReset, Outcome::Success)
            .by(Actor {
                user_id,
                role: user.role,
            });
        audit::record(&state, entry).await?;
    }

    Ok(HttpResponse::NoContent().finish())
}
