//! Request body extraction: content type, size limit and strict JSON.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures::StreamExt;
use meditrustal_records::json::{from_slice_strict, BodyError};
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::HttpSettings;

/// A JSON body decoded strictly: `application/json` (or `+json`) only,
/// within the configured size, no duplicate keys, numbers in range.
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let settings = request.app_data::<web::Data<HttpSettings>>();
        let limit = settings.map_or(HttpSettings::DEFAULT_BODY_LIMIT, |settings| {
            settings.max_body_bytes
        });
        let timeout = settings.map_or(HttpSettings::DEFAULT_BODY_TIMEOUT, |settings| {
            settings.body_timeout
        });
        let content_type = check_content_type(request);
        let declared_length = declared_length(request);
        let mut payload = payload.take();

        Box::pin(async move {
            content_type?;
            if declared_length.is_some_and(|length| length > limit) {
                return Err(too_large(limit));
            }

            let body = tokio::time::timeout(timeout, read_body(&mut payload, limit))
                .await
                .map_err(|_| request_timeout(timeout))??;

            match from_slice_strict::<T>(&body) {
                // serde fills a struct from a JSON array too; the API takes objects only.
                Ok(_) if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
                    Err(Problem::invalid_field("body", "send a JSON object"))
                }
                Ok(value) => Ok(Self(value)),
                Err(BodyError::Malformed(problem)) => Err(Problem::malformed_json(problem.message)),
                Err(BodyError::Invalid { field, message }) => {
                    Err(Problem::invalid_field(field, message))
                }
            }
        })
    }
}

async fn read_body(payload: &mut Payload, limit: usize) -> Result<web::BytesMut, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "Unreadable body",
                format!("The request body could not be read: {error}."),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn request_timeout(timeout: std::time::Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "Request timeout",
        format!(
            "The request body did not arrive within {} ms. Send the whole body at once.",
            timeout.as_millis()
        ),
    )
}

/// A JSON body that may be left out. A request without a body (no
/// `Content-Length`, or 0, and no `Transfer-Encoding`) yields `None`; any
/// body present is decoded as strictly as [`StrictJson`].
pub struct OptionalStrictJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalStrictJson<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let has_body = request.headers().contains_key(header::TRANSFER_ENCODING)
            || declared_length(request).is_some_and(|length| length > 0);
        if !has_body {
            return Box::pin(std::future::ready(Ok(Self(None))));
        }
        let body = StrictJson::<T>::from_request(request, payload);
        Box::pin(async move { body.await.map(|StrictJson(value)| Self(Some(value))) })
    }
}

fn check_content_type(request: &HttpRequest) -> Result<(), Problem> {
    let value = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Unsupported media type",
        format!(
            "Send the body as JSON with Content-Type: application/json (got {}).",
            if value.is_empty() {
                "no content type"
            } else {
                "another content type"
            }
        ),
    ))
}

fn declared_length(request: &HttpRequest) -> Option<usize> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

pub(crate) fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Payload too large",
        format!("The request body exceeds the limit of {limit} bytes. Send a smaller body."),
    )
}
