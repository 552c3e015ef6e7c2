//! Mapping of domain errors to problem responses. Every variant is matched
//! explicitly, so a new domain error cannot reach clients unmapped. Causes of
//! 5xx responses are logged here, once; bodies stay generic.

use actix_web::http::StatusCode;
use meditrustal_audit::AuditError;
use meditrustal_identity::{AdminError, IdentityError};
use meditrustal_records::{AccessDenial, ConsentError, RecordError};

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
            RecordError::Forbidden(reason) => forbidden(&reason),
            RecordError::AccessDenied(denial) => consent_required(&denial),
            RecordError::Integrity => Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "integrity_check_failed",
                "Integrity check failed",
                "The stored record failed its integrity check, so its content is withheld. Run verify on it and report the request id.",
            ),
            RecordError::NotAnchored => Problem::new(
                StatusCode::CONFLICT,
                "record_not_anchored",
                "Record not anchored yet",
                "The record waits for its anchor batch or for the batch's transaction, so it has no receipt yet. Retry when GET /medical-records/{record_id} shows anchor.status \"anchored\", usually within seconds.",
            ),
            RecordError::AnchoredPerRecord => Problem::new(
                StatusCode::CONFLICT,
                "receipt_not_available",
                "No batch receipt for this record",
                "This record was anchored in its own MedicalRecordRegistry transaction (per-record mode), which has no Merkle receipt. Check it with GET /medical-records/{record_id}/verify.",
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

impl From<AuditError> for Problem {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Invalid { field, message } => Problem::invalid_field(field, message),
            AuditError::Forbidden(reason) => forbidden(&reason),
            AuditError::Unavailable(cause) => {
                tracing::error!(error = %cause, "audit store unavailable");
                crate::audit::audit_unavailable()
            }
            AuditError::AnchorsUnavailable(cause) => {
                tracing::error!(error = %cause, "anchored audit heads unavailable");
                Problem::unavailable("The chain is unavailable. Retry in a few seconds.")
            }
        }
    }
}

fn forbidden(reason: &str) -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Forbidden",
        format!("Not allowed: {reason}."),
    )
}

/// Builds the one body every denied doctor request gets, whether or not the
/// record or patient exists, and logs the denial for review.
fn consent_required(denial: &AccessDenial) -> Problem {
    tracing::info!(
        doctor.id = %denial.doctor_id,
        patient.id = denial.patient_id.map(|id| id.to_string()),
        record.id = denial.record_id.map(|id| id.to_string()),
        action = denial.action,
        "doctor access denied"
    );
    Problem::new(
        StatusCode::FORBIDDEN,
        "consent_required",
        "Consent required",
        "No consent of the patient allows this request. Ask the patient to grant access; in an emergency, open break-glass access.",
    )
}

impl From<ConsentError> for Problem {
    fn from(error: ConsentError) -> Self {
        match error {
            ConsentError::Invalid { field, message } => Problem::invalid_field(field, message),
            ConsentError::Forbidden(reason) => forbidden(&reason),
            ConsentError::ConsentNotFound => Problem::not_found(
                "consent_not_found",
                "No consent in force with this id or for this doctor exists among your consents. List them with GET /consents.",
            ),
            ConsentError::RecordNotFound => RecordError::NotFound.into(),
            ConsentError::PatientNotFound => Problem::not_found(
                "patient_not_found",
                "No active patient has this id. Check the id.",
            ),
            ConsentError::AlreadyRevoked => Problem::new(
                StatusCode::CONFLICT,
                "consent_already_revoked",
                "Already revoked",
                "This consent was revoked before; nothing changed.",
            ),
            ConsentError::Unavailable(cause) => {
                tracing::error!(error = %cause, "consent store unavailable");
                Problem::unavailable("The consent database is unavailable. Retry in a few seconds.")
            }
            ConsentError::Internal(cause) => {
                tracing::error!(error = %cause, "consent operation failed");
                Problem::internal()
            }
        }
    }
}

impl From<AdminError> for Problem {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Forbidden => forbidden("only admins may use this route"),
            AdminError::UserNotFound => {
                Problem::not_found("user_not_found", "No user has this id. Check the id.")
            }
            AdminError::SelfDeactivation => Problem::new(
                StatusCode::CONFLICT,
                "cannot_deactivate_self",
                "Cannot deactivate yourself",
                "Admins cannot deactivate their own account; ask another admin.",
            ),
            AdminError::Invalid { field, message } => Problem::invalid_field(field, message),
            AdminError::Unavailable(cause) => {
                tracing::error!(error = %cause, "user store unavailable");
                Problem::unavailable("The user database is unavailable. Retry in a few seconds.")
            }
        }
    }
}
