use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use meditrustal_audit::{Action, Actor, Outcome, ReasonCode};
use meditrustal_identity::{IdentityError, LoginOutcome, Registration, TokenPair};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, RequestOrigin};
use crate::auth::Client;
use crate::body::StrictJson;
use crate::metrics::LoginFailure;
use crate::openapi::{problems, AUDITED, JSON_BODY, STORE};
use crate::problem::Problem;
use crate::routes::users::UserBody;
use crate::AppState;

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3 to 32 ASCII letters, digits, `.`, `_` or `-`.
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "alice@example.org")]
    email: String,
    /// 8 to 72 bytes of UTF-8, not a common password.
    #[schema(example = "correct horse battery")]
    password: String,
    #[serde(default)]
    full_name: Option<String>,
    /// `PATIENT` or `DOCTOR`.
    #[schema(example = "PATIENT")]
    role: String,
}

/// Credentials of a login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginJsonBody {
    #[schema(example = "alice")]
    username_or_email: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

/// Fields of the OAuth2-style password form (`application/x-www-form-urlencoded`).
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// An access token and the refresh token of the same session.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenBody<'a> {
    /// PASETO v4.public access token.
    access_token: &'a str,
    /// Single-use refresh token (`mtr_rt_...`).
    refresh_token: &'a str,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
}

/// The password was accepted; the second factor is still to come.
#[derive(Serialize, ToSchema)]
pub(crate) struct MfaRequiredBody<'a> {
    /// Always true.
    mfa_required: bool,
    /// Token for `POST /auth/login/mfa`.
    mfa_token: &'a str,
    /// Seconds until the MFA token expires.
    expires_in: u64,
}

/// The answer to a login: tokens, or the second-factor challenge.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum LoginResult<'a> {
    Tokens(TokenBody<'a>),
    MfaRequired(MfaRequiredBody<'a>),
}

problems!(RegisterProblems: JSON_BODY, STORE, AUDITED, &[(409, &["username_taken", "email_taken"])]);
problems!(LoginProblems: JSON_BODY, STORE, AUDITED, LOGIN);
problems!(LoginFormProblems: FORM, STORE, AUDITED, LOGIN);

/// Problems of a password check at login.
const LOGIN: crate::openapi::ProblemList = &[
    (401, &["invalid_credentials"]),
    (429, &["too_many_attempts"]),
];

/// Problems of the login form (see `form_config` in the crate root).
const FORM: crate::openapi::ProblemList = &[
    (413, &["payload_too_large"]),
    (415, &["unsupported_media_type"]),
    (422, &["validation_failed"]),
];

/// `POST /auth/register`
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterBody,
    responses((status = 201, description = "The new user", body = UserBody), RegisterProblems),
)]
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
#[utoipa::path(
    post,
    path = "/auth/login/json",
    tag = "auth",
    request_body = LoginJsonBody,
    responses(
        (status = 200, description = "Tokens, or a second-factor challenge", body = LoginResult),
        LoginProblems,
    ),
)]
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
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens, or a second-factor challenge", body = LoginResult),
        LoginFormProblems,
    ),
)]
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
            state
                .metrics
                .http
                .login_failed(LoginFailure::InvalidCredentials);
            (Outcome::Denied, Some(ReasonCode::INVALID_CREDENTIALS))
        }
        Err(IdentityError::TooManyAttempts { .. }) => {
            state
                .metrics
                .http
                .login_failed(LoginFailure::TooManyAttempts);
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
    let body = match outcome {
        LoginOutcome::Tokens(tokens) => LoginResult::Tokens(TokenBody::from(tokens)),
        LoginOutcome::MfaRequired(challenge) => LoginResult::MfaRequired(MfaRequiredBody {
            mfa_required: true,
            mfa_token: challenge.token.expose_secret(),
            expires_in: challenge.expires_in,
        }),
    };
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(body)
}

impl<'a> From<&'a TokenPair> for TokenBody<'a> {
    fn from(tokens: &'a TokenPair) -> Self {
        Self {
            access_token: tokens.access.token.expose_secret(),
            refresh_token: tokens.refresh.expose_secret(),
            token_type: "bearer",
            expires_in: tokens.access.expires_in,
        }
    }
}

/// 200 with an access and refresh token, never stored by caches.
pub(crate) fn token_response(tokens: &TokenPair) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(TokenBody::from(tokens))
}
