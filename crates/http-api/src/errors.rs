//! Mapping of domain errors to problem responses. Every variant is matched
//! explicitly, so a new domain error cannot reach clients unmapped. Causes of
//! 5xx responses are logged here, once; bodies stay generic.

use actix_web::http::StatusCode;
use meditrustal_identity::IdentityError;
use meditrustal_records::RecordError;

use crate::problem::Problem;

impl From<IdentityError> for Problem {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Invalid { field, message } => Problem::invalid_field(field, message),
            IdentityError::AlreadyExists(field) => Problem::new(
                StatusCode::CONFLICT,
                match field.as_str() {
                    "username" => "username_taken",
                    _ => "email_taken",
                },
                "Already registered",
                format!("An account with this {field} already exists. Log in, or register with another {field}."),
            ),
            IdentityError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
                "The username, email or password is incorrect.",
            ),
            IdentityError::Unauthenticated => Problem::unauthenticated(),
            IdentityError::InvalidRefreshToken => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "Invalid refresh token",
                "The refresh token is invalid, expired, already used or revoked. Log in again.",
            ),
            IdentityError::InvalidResetToken => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_reset_token",
                "Invalid reset token",
                "The password reset token is invalid, expired or already used. Request a new one.",
            ),
            IdentityError::InvalidMfaToken => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_token",
                "Invalid MFA token",
                "The MFA token is invalid, expired or already used. Log in again with your password.",
            ),
            IdentityError::InvalidMfaCode => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "Invalid code",
                "The code is wrong, expired or already used. Enter the current code from your authenticator app, or an unused recovery code.",
            ),
            IdentityError::MfaAlreadyEnabled => Problem::new(
                StatusCode::CONFLICT,
                "mfa_already_enabled",
                "Two-factor authentication already enabled",
                "Two-factor authentication is already on. Disable it first to enroll a new authenticator.",
            ),
            IdentityError::MfaNotEnabled => Problem::new(
                StatusCode::CONFLICT,
                "mfa_not_enabled",
                "Two-factor authentication not enabled",
                "Two-factor authentication is not in the state this request needs. Start enrollment with POST /auth/mfa/totp, or confirm it first.",
            ),
            IdentityError::SessionNotFound => Problem::not_found(
                "session_not_found",
                "No active session with this id belongs to you. List your sessions with GET /auth/sessions.",
            ),
            IdentityError::TooManyAttempts { retry_after_secs } => {
                Problem::too_many_attempts(retry_after_secs)
            }
            IdentityError::Unavailable(cause) => {
                tracing::error!(error = %cause, "identity store unavailable");
                Problem::unavailable("The user database is unavailable. Retry in a few seconds.")
            }
            IdentityError::Internal(cause) => {
                tracing::error!(error = %cause, "identity operation failed");
                Problem::internal()
            }
        }
    }
}

impl From<RecordError> for Problem {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Invalid { field, message } => Problem::invalid_field(field, message),
            RecordError::NotFound => Problem::not_found(
                "record_not_found",
                "No record with this id exists that you may see. Check the id.",
            ),
            RecordError::Forbidden(reason) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", format!("Not allowed: {reason}."))
            }
            RecordError::Integrity => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "integrity_check_failed",
                "Integrity check failed",
                "The stored record failed its integrity check, so its content is withheld. Run verify on it and report the request id.",
            ),
            RecordError::Unavailable(cause) => {
                tracing::error!(error = %cause, "record store unavailable");
                Problem::unavailable("The record database is unavailable. Retry in a few seconds.")
            }
            RecordError::Internal(cause) => {
                tracing::error!(error = %cause, "record operation failed");
                Problem::internal()
            }
        }
    }
}
