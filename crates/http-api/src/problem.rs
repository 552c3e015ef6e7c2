//! RFC 9457 problem details: the one error body every route returns.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// A field-level validation problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// Path of the field (`raw_data.birthDate`).
    pub field: String,
    /// Description of the problem and of the accepted values.
    pub message: String,
}

/// An error response in `application/problem+json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the problem type: `urn:meditrustal:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status code.
    pub status: u16,
    /// Sentence for a person: what failed and what to do. Always a string.
    pub detail: String,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// The first invalid field, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every invalid field, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Seconds to wait before retrying, for 429 and 503.
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// Builds a problem with a status, stable code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            problem_type: format!("urn:meditrustal:problem:{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 422 for one invalid field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            format!("Field {field} is invalid: {message}."),
        );
        problem.field = Some(field.clone());
        problem.errors.push(FieldProblem { field, message });
        problem
    }

    /// 400 for a body that is not valid JSON.
    pub fn malformed_json(message: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "Malformed JSON",
            format!(
                "The request body is not valid JSON: {message}. Send a complete JSON document."
            ),
        )
    }

    /// 401 for a missing or unusable bearer token.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Authentication required",
            "The bearer token is missing, invalid or expired. Log in again and send the access token in the Authorization header.",
        )
    }

    /// 404 for anything the caller may not see or that does not exist.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// 503 for a dependency that is down.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut problem = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            "Service unavailable",
            detail,
        );
        problem.retry_after = Some(5);
        problem
    }

    /// 429 for a locked login name, user or client address, with the
    /// seconds until the lock ends in `Retry-After`.
    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        let seconds = u32::try_from(retry_after_secs).unwrap_or(u32::MAX).max(1);
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many attempts",
            format!("Too many failed attempts. Retry in {seconds} seconds."),
        );
        problem.retry_after = Some(seconds);
        problem
    }

    /// 500 with a generic body; the cause is logged by the caller.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
            "The server failed to complete the request. Retry later; if it persists, report the request id.",
        )
    }

    /// The status as an actix type.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

/// Media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(Problem::status_code(self));
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if self.status == 401 {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(serde_json::to_string(self).unwrap_or_else(|_| String::from("{}")))
    }
}
