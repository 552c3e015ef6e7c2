//! Audit recording for route handlers: where a request came from (its id
//! and the client's address) and the helper that appends an event or fails
//! the request.
//!
//! To audit a new action in a handler, extract [`RequestOrigin`], build the
//! entry and record it before the response reveals anything:
//!
//! ```ignore
//! let entry = origin
//!     .entry(Action::ConsentGrant, Outcome::Success)
//!     .by(&caller.0)
//!     .patient(patient_id)
//!     .reason(ReasonCode::with_id("consent", grant_id).unwrap_or(ReasonCode::OWNER));
//! audit::record(&state, entry).await?;
//! ```

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderName;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use ipnet::IpNet;
use meditrustal_audit::{Action, AuditEntry, Outcome, RequestId};

use crate::problem::Problem;
use crate::{AppState, HttpSettings};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The request id that the request-context middleware assigned, kept in the
/// request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct AssignedRequestId(pub(crate) String);

/// The request's id and the client's address, for audit events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestOrigin {
    request_id: Option<RequestId>,
    client_ip: Option<IpAddr>,
}

impl RequestOrigin {
    /// Reads the origin of `request`. The client address is the TCP peer,
    /// unless the peer is one of `settings.trusted_proxies` (see
    /// [`client_ip`]).
    pub(crate) fn of(request: &HttpRequest) -> Self {
        let trusted = request
            .app_data::<web::Data<HttpSettings>>()
            .map(|settings| settings.trusted_proxies.clone())
            .unwrap_or_default();
        let request_id = request
            .extensions()
            .get::<AssignedRequestId>()
            .and_then(|id| RequestId::parse(&id.0));
        Self {
            request_id,
            client_ip: client_ip(request, &trusted),
        }
    }

    /// The client's address, as [`client_ip`] resolved it.
    pub(crate) const fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Starts an audit entry for this request, timed now.
    pub(crate) fn entry(&self, action: Action, outcome: Outcome) -> AuditEntry {
        AuditEntry::new(action, outcome, chrono::Utc::now())
            .origin(self.request_id.clone(), self.client_ip)
    }
}

impl FromRequest for RequestOrigin {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(request)))
    }
}

/// Appends `entry` to the audit chain. Errors: a 503 `audit_unavailable`
/// problem when the event cannot be written, so that no audited action
/// completes unrecorded.
pub(crate) async fn record(state: &AppState, entry: AuditEntry) -> Result<(), Problem> {
    let action = entry.action;
    match state.audit.record(entry).await {
        Ok(event) => {
            tracing::debug!(audit.seq = event.seq, audit.action = %action, "audit event recorded");
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, audit.action = %action, "audit event could not be recorded; failing the request");
            Err(audit_unavailable())
        }
    }
}

/// 503 for a request whose audit event could not be written.
pub(crate) fn audit_unavailable() -> Problem {
    let mut problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "Service unavailable",
        "The audit log is unavailable, so the request was not completed. Retry in a few seconds.",
    );
    problem.retry_after = Some(5);
    problem
}

/// Returns the client's address. Without trusted proxies this is the TCP
/// peer, because any client can send an `X-Forwarded-For` header. When the
/// peer is in `trusted`, the `X-Forwarded-For` entries are read from the
/// right, and the first one that is not a trusted proxy is the client. An
/// entry that does not parse stops the search at the last trusted hop.
pub(crate) fn client_ip(request: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request.peer_addr()?.ip().to_canonical();
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }

    let hops: Vec<&str> = request
        .headers()
        .get_all(X_FORWARDED_FOR)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(address) = hop.parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !is_trusted(client, trusted) {
            break;
        }
    }
    Some(client)
}

fn is_trusted(address: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|network| network.contains(&address))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn networks(texts: &[&str]) -> Vec<IpNet> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn request(peer: &str, forwarded: Option<&str>) -> HttpRequest {
        let mut request = TestRequest::default().peer_addr(peer.parse().unwrap());
        if let Some(value) = forwarded {
            request = request.insert_header((X_FORWARDED_FOR, value));
        }
        request.to_http_request()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn forwarded_header_is_ignored_without_trusted_proxies() {
        let request = request("198.51.100.7:4000", Some("203.0.113.9"));

        assert_eq!(client_ip(&request, &[]), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_header_is_ignored_from_untrusted_peer() {
        let request = request("198.51.100.7:4000", Some("203.0.113.9"));

        assert_eq!(
            client_ip(&request, &networks(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_proxy_yields_rightmost_untrusted_hop() {
        let request = request("10.0.0.2:4000", Some("192.0.2.66, 203.0.113.9, 10.0.0.5"));

        assert_eq!(
            client_ip(&request, &networks(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn unparsable_hop_stops_at_last_trusted_address() {
        let request = request("10.0.0.2:4000", Some("203.0.113.9, garbage, 10.0.0.5"));

        assert_eq!(
            client_ip(&request, &networks(&["10.0.0.0/8"])),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn trusted_proxy_without_header_yields_peer() {
        let request = request("10.0.0.2:4000", None);

        assert_eq!(
            client_ip(&request, &networks(&["10.0.0.0/8"])),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_peer_is_reported_as_ipv4() {
        let request = request("[::ffff:198.51.100.7]:4000", None);

        assert_eq!(client_ip(&request, &[]), ip("198.51.100.7"));
    }
}
