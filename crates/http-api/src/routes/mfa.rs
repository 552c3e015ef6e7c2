//! Two-factor authentication: the second login step and TOTP enrollment.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use meditrustal_identity::MfaCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::auth::{Authenticated, Client};
use crate::body::StrictJson;
use crate::problem::Problem;
use crate::routes::auth::token_response;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginBody {
    mfa_token: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmBody {
    code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpDisableBody {
    password: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

#[derive(Serialize)]
struct EnrollmentBody<'a> {
    secret: &'a str,
    otpauth_uri: &'a str,
}

#[derive(Serialize)]
struct RecoveryCodesBody<'a> {
    recovery_codes: Vec<&'a str>,
}

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

/// `POST /auth/login/mfa`
pub async fn login(
    state: web::Data<AppState>,
    client: Client,
    body: StrictJson<MfaLoginBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let code = one_code(body.code, body.recovery_code)?;
    let mfa_token = SecretString::from(body.mfa_token);

    let tokens = state
        .identity
        .complete_mfa_login(&mfa_token, &code, &client.0)
        .await?;

    Ok(token_response(&tokens))
}

/// `POST /auth/mfa/totp`: starts enrollment and shows the secret.
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
pub async fn confirm(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: StrictJson<TotpConfirmBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;

    let codes = state
        .identity
        .confirm_totp(caller.0.user_id, &body.code, &client.0)
        .await?;

    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(RecoveryCodesBody {
            recovery_codes: codes.iter().map(ExposeSecret::expose_secret).collect(),
        }))
}

/// `POST /auth/mfa/totp/disable`: needs the password and a code.
pub async fn disable(
    state: web::Data<AppState>,
    caller: Authenticated,
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

    Ok(HttpResponse::NoContent().finish())
}
