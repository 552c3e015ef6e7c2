//! Bearer-token authentication of protected routes, and the client
//! details (IP, user agent) that sessions and throttling record.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use meditrustal_identity::{ClientInfo, Principal, SessionId};

use crate::problem::Problem;
use crate::AppState;

/// The caller of a protected route. Extracting it verifies the token and
/// reloads the user on every request, so a deactivated user fails at once.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(request);

        Box::pin(async move {
            let state = state.ok_or_else(Problem::internal)?;
            let token = token.ok_or_else(Problem::unauthenticated)?;
            let principal = state.identity.authenticate(&token).await?;
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            Ok(Self(principal))
        })
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

        Box::pin(async move {
            let state = state.ok_or_else(Problem::internal)?;
            let token = token.ok_or_else(Problem::unauthenticated)?;
            let (principal, session_id) = state.identity.authenticate_session(&token).await?;
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            Ok(Self {
                principal,
                session_id,
            })
        })
    }
}

/// The client of a request: the TCP peer's address and the `User-Agent`
/// header.
///
/// NOTE: the address is the TCP peer's. Behind a reverse proxy every
/// client shares the proxy's address, so per-IP throttling then limits all
/// clients together; `X-Forwarded-For` is not trusted because any client
/// can set it.
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
            ip: request.peer_addr().map(|address| address.ip()),
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
