//! Bearer-token authentication of protected routes, and the client
//! details (IP, user agent) that sessions and throttling record.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use meditrustal_audit::{Action, Outcome, ReasonCode};
use meditrustal_identity::{ClientInfo, IdentityError, Principal, SessionId};

use crate::audit::{self, RequestOrigin};
use crate::problem::Problem;
use crate::AppState;

/// The caller of a protected route. Extracting it verifies the token and
/// reloads the user and session on every request, so a deactivated user or
/// revoked session fails at once. A presented token that fails is audited as `auth.token_rejected`; a
/// request without a token is not.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request);
        let origin = RequestOrigin::of(request);

        Box::pin(async move {
            let state = state.ok_or_else(Problem::internal)?;
            let token = token.ok_or_else(Problem::unauthenticated)?;
            let result = state.identity.authenticate(&token).await;
            let principal = audit_rejected_token(&state, &origin, result).await?;
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            Ok(Self(principal))
        })
    }
}

/// Passes an authentication result through, and records a rejected token
/// as `auth.token_rejected` before the 401 goes out. Errors: 401, or 503
/// `audit_unavailable` when the rejection cannot be recorded.
async fn audit_rejected_token<T>(
    state: &AppState,
    origin: &RequestOrigin,
    result: Result<T, IdentityError>,
) -> Result<T, Problem> {
    match result {
        Ok(value) => Ok(value),
        Err(IdentityError::Unauthenticated) => {
            // NOTE: each rejected token costs one serialized audit append,
            // and nothing limits how fast a client sends them, so a flood
            // slows every audited request.
            let entry = origin
                .entry(Action::TokenRejected, Outcome::Denied)
                .reason(ReasonCode::INVALID_TOKEN);
            audit::record(state, entry).await?;
            Err(Problem::unauthenticated())
        }
        Err(error) => Err(error.into()),
    }
}

/// The caller of a protected route together with the session its access
/// token belongs to, for routes that act on the current session.
pub struct AuthenticatedSession {
    /// The caller.
    pub principal: Principal,
    /// The session of the presented access token.
    pub session_id: SessionId,
}

impl FromRequest for AuthenticatedSession {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request);
        let origin = RequestOrigin::of(request);

        Box::pin(async move {
            let state = state.ok_or_else(Problem::internal)?;
            let token = token.ok_or_else(Problem::unauthenticated)?;
            let result = state.identity.authenticate_session(&token).await;
            let (principal, session_id) = audit_rejected_token(&state, &origin, result).await?;
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            Ok(Self {
                principal,
                session_id,
            })
        })
    }
}

/// The client of a request: its address, as audit events record it, and
/// the `User-Agent` header.
///
/// The address is the TCP peer's unless the peer is listed in
/// `server.trusted_proxies`, in which case it comes from `X-Forwarded-For`
/// (see [`audit::client_ip`]). Behind a proxy that is not listed, every
/// client shares the proxy's address, so per-IP throttling then limits all
/// clients together.
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        std::future::ready(Ok(Self(ClientInfo {
            ip: RequestOrigin::of(request).client_ip(),
            user_agent,
        })))
    }
}

fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}
