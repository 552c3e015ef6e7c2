//! Bearer-token authentication of protected routes.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use meditrustal_audit::{Action, Outcome, ReasonCode};
use meditrustal_identity::{IdentityError, Principal};

use crate::audit::{self, RequestOrigin};
use crate::problem::Problem;
use crate::AppState;

/// The caller of a protected route. Extracting it verifies the token and
/// reloads the user on every request, so a deactivated user fails at once.
/// A presented token that fails is audited as `auth.token_rejected`; a
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
            let principal = match state.identity.authenticate(&token).await {
                Ok(principal) => principal,
                Err(IdentityError::Unauthenticated) => {
                    // NOTE: each rejected token costs one serialized audit
                    // append, and nothing limits how fast a client sends
                    // them, so a flood slows every audited request.
                    let entry = origin
                        .entry(Action::TokenRejected, Outcome::Denied)
                        .reason(ReasonCode::INVALID_TOKEN);
                    audit::record(&state, entry).await?;
                    return Err(Problem::unauthenticated());
                }
                Err(error) => return Err(error.into()),
            };
            tracing::Span::current().record("user.id", tracing::field::display(principal.user_id));
            Ok(Self(principal))
        })
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
