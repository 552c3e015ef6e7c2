//! Request context: a request id on every request and response (also kept
//! in the request's extensions for audit events), a tracing span carrying
//! it, one access log line per request, and the request metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing::Instrument;

use crate::audit::AssignedRequestId;
use crate::metrics::Metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps every request in a span with its id and method, logs its route
/// pattern, status and latency, and counts it in the request metrics.
/// Never logs bodies, paths with ids, query strings or headers.
pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|text| is_acceptable_id(text))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        request.id = %request_id,
        http.method = %request.method(),
        user.id = tracing::field::Empty,
    );
    request
        .extensions_mut()
        .insert(AssignedRequestId(request_id.clone()));
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let method = request.method().clone();
    let started = Instant::now();

    let mut response = next.call(request).instrument(span.clone()).await?;

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| String::from("unmatched"));
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(metrics) = metrics {
        metrics
            .http
            .observe_request(&method, &route, status, elapsed);
    }
    let elapsed_ms = elapsed * 1000.0;
    span.in_scope(|| tracing::info!(http.route = %route, http.status = status, elapsed_ms, "request completed"));
    Ok(response)
}

/// Accepts client ids of up to 64 characters from a safe alphabet, so that
/// logs cannot be forged through the header.
fn is_acceptable_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
