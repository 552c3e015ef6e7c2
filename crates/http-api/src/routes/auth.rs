use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use meditrustal_audit::{Action, Actor, Outcome, ReasonCode};
use meditrustal_identity::{IdentityError, LoginOutcome, Registration, TokenPair};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::audit::{self, RequestOrigin};
use crate::auth::Client;
use crate::body::StrictJson;
use crate::problem::Problem;
use crate::routes::users::UserBody;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    username: String,
    email: String,
    password: String,
    #[serde(default)]
    full_name: Option<String>,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginJsonBody {
    username_or_email: String,
    password: String,
}

/// Fields of the OAuth2-style password form (`application/x-www-form-urlencoded`).
#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Serialize)]
struct MfaRequiredBody<'a> {
    mfa_required: bool,
    mfa_token: &'a str,
    expires_in: u64,
}

/// `POST /auth/register`
pub async fn register(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    body: StrictJson<RegisterBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let registration = Registration {
        username: body.username,
        email: body.email,
        password: SecretString::from(body.password),
        full_name: body.full_name,
        role: body.role,
    };

    let user = state.identity.register(registration).await?;

    // NOTE: the user is committed before this event. If the audit write
    // fails, the client gets 503 and the account exists without its
    // `auth.register` event.
    let actor = Actor {
        user_id: user.id,
        role: user.role,
    };
    let entry = origin.entry(Action::Register, Outcome::Success).by(actor);
    audit::record(&state, entry).await?;
    Ok(HttpResponse::Created().json(UserBody::from(&user)))
}

/// `POST /auth/login/json`
pub async fn login_json(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<LoginJsonBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let password = SecretString::from(body.password);

    let outcome = login(&state, &origin, &client, &body.username_or_email, &password).await?;

    Ok(login_response(&outcome))
}

/// `POST /auth/login`, for clients that send the OAuth2 password form.
pub async fn login_form(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    client: Client,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, Problem> {
    let form = form.into_inner();
    let password = SecretString::from(form.password);

    let outcome = login(&state, &origin, &client, &form.username, &password).await?;

    Ok(login_response(&outcome))
}

/// Checks the credentials and records `auth.login`, with the account the
/// name matched, before a token or MFA challenge leaves the server. A
/// password accepted with a second factor still to come is recorded as
/// `success` with reason `mfa_required`, and a throttled login as `denied`
/// with reason `too_many_attempts` and no actor, because the name is not
/// looked up. A login that failed for another reason (database down) is
/// not an authentication decision and is not recorded.
async fn login(
    state: &AppState,
    origin: &RequestOrigin,
    client: &Client,
    identifier: &str,
    password: &SecretString,
) -> Result<LoginOutcome, Problem> {
    let attempt = state
        .identity
        .attempt_login(identifier, password, &client.0)
        .await;

    let (outcome, reason) = match &attempt.result {
        Ok(LoginOutcome::Tokens(_)) => (Outcome::Success, None),
        Ok(LoginOutcome::MfaRequired(_)) => (Outcome::Success, Some(ReasonCode::MFA_REQUIRED)),
        Err(IdentityError::InvalidCredentials) => {
            (Outcome::Denied, Some(ReasonCode::INVALID_CREDENTIALS))
        }
        Err(IdentityError::TooManyAttempts { .. }) => {
            (Outcome::Denied, Some(ReasonCode::TOO_MANY_ATTEMPTS))
        }
        Err(_) => return attempt.result.map_err(Problem::from),
    };
    let mut entry = origin.entry(Action::Login, outcome);
    if let Some(account) = &attempt.account {
        entry = entry.by(account);
    }
    if let Some(reason) = reason {
        entry = entry.reason(reason);
    }
    audit::record(state, entry).await?;
    Ok(attempt.result?)
}

fn login_response(outcome: &LoginOutcome) -> HttpResponse {
    match outcome {
        LoginOutcome::Tokens(tokens) => token_response(tokens),
        LoginOutcome::MfaRequired(challenge) => HttpResponse::Ok()
            .insert_header(CacheControl(vec![CacheDirective::NoStore]))
            .json(MfaRequiredBody {
                mfa_required: true,
                mfa_token: challenge.token.expose_secret(),
                expires_in: challenge.expires_in,
            }),
    }
}

/// 200 with an access and refresh token, never stored by caches.
pub(crate) fn token_response(tokens: &TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(TokenBody {
            access_token: tokens.access.token.expose_secret(),
            refresh_token: tokens.refresh.expose_secret(),
            token_type: "bearer",
            expires_in: tokens.access.expires_in,
        })
}
