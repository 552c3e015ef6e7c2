//! Two-factor authentication: the second login step and TOTP enrollment.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use meditrustal_audit::{Action, Actor, Outcome, ReasonCode};
use meditrustal_identity::{IdentityError, MfaCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::{self, RequestOrigin};
use crate::auth::{Authenticated, Client};
use crate::body::StrictJson;
use crate::metrics::LoginFailure;
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, STORE};
use crate::problem::Problem;
use crate::routes::auth::{token_response, TokenBody};
use crate::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginBody {
    mfa_token: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmBody {
    code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableBody {
    password: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// A TOTP secret to load into an authenticator app.
#[derive(Serialize, ToSchema)]
pub(crate) struct EnrollmentBody<'a> {
    secret: &'a str,
    otpauth_uri: &'a str,
}

/// One-time recovery codes, shown once.
#[derive(Serialize, ToSchema)]
pub(crate) struct RecoveryCodesBody<'a> {
    recovery_codes: Vec<&'a str>,
}

problems!(MfaLoginProblems: JSON_BODY, STORE, AUDITED, &[
    (401, &["invalid_mfa_token", "invalid_mfa_code"]),
    (429, &["too_many_attempts"]),
]);
problems!(EnrollProblems: BEARER, STORE, &[(409, &["mfa_already_enabled"])]);
problems!(ConfirmProblems: BEARER, JSON_BODY, STORE, AUDITED, &[
    (401, &["invalid_mfa_code"]),
    (409, &["mfa_already_enabled", "mfa_not_enabled"]),
    (429, &["too_many_attempts"]),
]);
problems!(DisableProblems: BEARER, JSON_BODY, STORE, AUDITED, &[
    (401, &["invalid_mfa_code"]),
    (409, &["mfa_not_enabled"]),
    (429, &["too_many_attempts"]),
]);

/// Picks the one code a body carries. Errors: 422 on `code` when both or
/// neither are present.
fn one_code(code: Option<String>, recovery_code: Option<String>) -> Result<MfaCode, Problem> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(MfaCode::Totp(code)),
        (None, Some(recovery)) => Ok(MfaCode::Recovery(SecretString::from(recovery))),
        _ => Err(Problem::invalid_field(
            "code",
            "send either code (6 digits from your authenticator app) or recovery_code, not both",
        )),
    }
}

/// `POST /auth/login/mfa`: recorded as `auth.login` with reason
/// `mfa_verified` before the tokens are sent. A wrong code is recorded as
/// denied with reason `invalid_mfa_code` and no actor, because the MFA
/// token's user is not returned.
#[utoipa::path(
    post,
    operation_id = "login_mfa",
    path = "/auth/login/mfa",
    tag = "auth",
    request_body = MfaLoginBody,
    responses((status = 200, description = "A token pair", body = TokenBody), MfaLoginProblems),
)]
pub async fn login(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<MfaLoginBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let code = one_code(body.code, body.recovery_code)?;
    let mfa_token = SecretString::from(body.mfa_token);

    let result = state
        .identity
        .complete_mfa_login(&mfa_token, &code, &client.0)
        .await;

    let entry = match &result {
        Ok(tokens) => {
            let user = state.identity.user(tokens.user_id).await?;
            let mut entry = origin
                .entry(Action::Login, Outcome::Success)
                .reason(ReasonCode::MFA_VERIFIED);
            if let Some(user) = user {
                entry = entry.by(Actor {
                    user_id: user.id,
                    role: user.role,
                });
            }
            Some(entry)
        }
        Err(IdentityError::InvalidMfaCode | IdentityError::InvalidMfaToken) => {
            state
                .metrics
                .http
                .login_failed(LoginFailure::InvalidMfaCode);
            Some(
                origin
                    .entry(Action::Login, Outcome::Denied)
                    .reason(ReasonCode::INVALID_MFA_CODE),
            )
        }
        Err(IdentityError::TooManyAttempts { .. }) => {
            state
                .metrics
                .http
                .login_failed(LoginFailure::TooManyAttempts);
            None
        }
        Err(_) => None,
    };
    if let Some(entry) = entry {
        audit::record(&state, entry).await?;
    }
    let tokens = result?;

    Ok(token_response(&tokens))
}

/// `POST /auth/mfa/totp`: starts enrollment and shows the secret.
#[utoipa::path(
    post,
    operation_id = "enroll_totp",
    path = "/auth/mfa/totp",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The secret and an otpauth:// URI", body = EnrollmentBody), EnrollProblems),
)]
pub async fn enroll(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, Problem> {
    let enrollment = state
        .identity
        .start_totp_enrollment(caller.0.user_id)
        .await?;

    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(EnrollmentBody {
            secret: enrollment.secret.expose_secret(),
            otpauth_uri: enrollment.otpauth_uri.expose_secret(),
        }))
}

/// `POST /auth/mfa/totp/confirm`: turns TOTP on and shows the recovery
/// codes, once.
#[utoipa::path(
    post,
    operation_id = "confirm_totp",
    path = "/auth/mfa/totp/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body = TotpConfirmBody,
    responses((status = 200, description = "TOTP is on; the recovery codes", body = RecoveryCodesBody), ConfirmProblems),
)]
pub async fn confirm(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<TotpConfirmBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;

    let codes = state
        .identity
        .confirm_totp(caller.0.user_id, &body.code, &client.0)
        .await?;

    let entry = origin
        .entry(Action::MfaChange, Outcome::Success)
        .by(&caller.0)
        .reason(ReasonCode::TOTP_ENABLED);
    audit::record(&state, entry).await?;

    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(RecoveryCodesBody {
            recovery_codes: codes.iter().map(ExposeSecret::expose_secret).collect(),
        }))
}

/// `POST /auth/mfa/totp/disable`: needs the password and a code.
#[utoipa::path(
    post,
    operation_id = "disable_totp",
    path = "/auth/mfa/totp/disable",
    tag = "auth",
    security(("bearer" = [])),
    request_body = TotpDisableBody,
    responses((status = 204, description = "TOTP is off"), DisableProblems),
)]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<TotpDisableBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let code = one_code(body.code, body.recovery_code)?;
    let password = SecretString::from(body.password);

    state
        .identity
        .disable_totp(caller.0.user_id, &password, &code, &client.0)
        .await?;

    let entry = origin
        .entry(Action::MfaChange, Outcome::Success)
        .by(&caller.0)
        .reason(ReasonCode::TOTP_DISABLED);
    audit::record(&state, entry).await?;

    Ok(HttpResponse::NoContent().finish())
}
