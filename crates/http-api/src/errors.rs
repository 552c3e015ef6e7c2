//! Mapping of domain errors to problem responses. Every variant is matched
//! explicitly, so a new domain error cannot reach clients unmapped. Causes of
//! 5xx responses are logged here, once; bodies stay generic.

use actix_web::http::StatusCode;
use meditrustal_audit::AuditError;
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

impl From<AuditError> for Problem {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::Invalid { field, message } => Problem::invalid_field(field, message),
            AuditError::Forbidden(reason) => Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                format!("Not allowed: {reason}."),
            ),
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
