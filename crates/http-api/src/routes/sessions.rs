//! Refresh, logout and the session list.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use meditrustal_audit::{Action, Actor, Outcome, ReasonCode};
use meditrustal_identity::{Principal, Session, SessionId};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, RequestOrigin};
use crate::auth::{Authenticated, AuthenticatedSession, Client};
use crate::body::{OptionalStrictJson, StrictJson};
use crate::openapi::{problems, AUDITED, BEARER, JSON_BODY, STORE};
use crate::problem::Problem;
use crate::routes::auth::{token_response, TokenBody};
use crate::AppState;

/// A refresh token to exchange.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// Optionally, the refresh token of a session to end too.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A session as `GET /auth/sessions` lists it.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionBody<'a> {
    #[schema(format = Uuid)]
    id: String,
    /// The user agent that opened the session.
    device: Option<&'a str>,
    /// The client address that opened the session.
    ip: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// Whether the presented access token belongs to this session.
    current: bool,
}

problems!(RefreshProblems: JSON_BODY, STORE, AUDITED, &[(401, &["invalid_refresh_token"])]);
problems!(LogoutProblems: BEARER, JSON_BODY, STORE);
problems!(SessionProblems: BEARER, STORE);
problems!(RevokeSessionProblems: BEARER, STORE, &[(404, &["session_not_found"])]);

impl<'a> SessionBody<'a> {
    fn new(session: &'a Session, current: SessionId) -> Self {
        Self {
            id: session.id.to_string(),
            device: session.device.as_deref(),
            ip: session.ip.map(|ip| ip.to_string()),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            expires_at: session.expires_at,
            current: session.id == current,
        }
    }
}

/// Records `auth.logout` by `caller` with `reason`, the sessions it ended.
async fn audit_logout(
    state: &AppState,
    origin: &RequestOrigin,
    caller: &Principal,
    reason: ReasonCode,
) -> Result<(), Problem> {
    let entry = origin
        .entry(Action::Logout, Outcome::Success)
        .by(caller)
        .reason(reason);
    audit::record(state, entry).await
}

/// `POST /auth/refresh`. A spent refresh token presented again ends its
/// session and is recorded as `auth.token_rejected` with reason
/// `refresh_token_reused` against the session's user. Other invalid
/// refresh tokens are not recorded.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshBody,
    responses((status = 200, description = "A new token pair", body = TokenBody), RefreshProblems),
)]
pub async fn refresh(
    state: web::Data<AppState>,
    origin: RequestOrigin,
    client: Client,
    body: StrictJson<RefreshBody>,
) -> Result<HttpResponse, Problem> {
    let StrictJson(body) = body;
    let refresh_token = SecretString::from(body.refresh_token);

    let attempt = state
        .identity
        .attempt_refresh(&refresh_token, &client.0)
        .await;

    if let Some(user_id) = attempt.reused_by {
        let mut entry = origin
            .entry(Action::TokenRejected, Outcome::Denied)
            .reason(ReasonCode::REFRESH_TOKEN_REUSED);
        if let Some(user) = state.identity.user(user_id).await? {
            entry = entry.by(Actor {
                user_id,
                role: user.role,
            });
        }
        audit::record(&state, entry).await?;
    }
    let tokens = attempt.result?;

    Ok(token_response(&tokens))
}

/// `POST /auth/logout`: ends the current session and, when a refresh token
/// is sent, the caller's session it belongs to.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    request_body(content = Option<LogoutBody>, description = "May be left out"),
    responses((status = 204, description = "The session ended"), LogoutProblems),
)]
pub async fn logout(
    state: web::Data<AppState>,
    caller: AuthenticatedSession,
    origin: RequestOrigin,
    body: OptionalStrictJson<LogoutBody>,
) -> Result<HttpResponse, Problem> {
    let refresh_token = body
        .0
        .and_then(|body| body.refresh_token)
        .map(SecretString::from);

    state
        .identity
        .logout(
            caller.principal.user_id,
            caller.session_id,
            refresh_token.as_ref(),
        )
        .await?;

    audit_logout(
        &state,
        &origin,
        &caller.principal,
        ReasonCode::CURRENT_SESSION,
    )
    .await?;

    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/logout-all`: ends every session of the caller.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Every session ended"), SessionProblems),
)]
pub async fn logout_all(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
) -> Result<HttpResponse, Problem> {
    state.identity.logout_everywhere(caller.0.user_id).await?;

    audit_logout(&state, &origin, &caller.0, ReasonCode::ALL_SESSIONS).await?;

    Ok(HttpResponse::NoContent().finish())
}

/// `GET /auth/sessions`
#[utoipa::path(
    get,
    operation_id = "list_sessions",
    path = "/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's active sessions", body = Vec<SessionBody>), SessionProblems),
)]
pub async fn list(
    state: web::Data<AppState>,
    caller: AuthenticatedSession,
) -> Result<HttpResponse, Problem> {
    let sessions = state.identity.sessions(caller.principal.user_id).await?;

    let body: Vec<SessionBody> = sessions
        .iter()
        .map(|session| SessionBody::new(session, caller.session_id))
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `DELETE /auth/sessions/{session_id}`
#[utoipa::path(
    delete,
    operation_id = "revoke_session",
    path = "/auth/sessions/{session_id}",
    tag = "auth",
    security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Id of one of the caller's sessions")),
    responses((status = 204, description = "The session ended"), RevokeSessionProblems),
)]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: RequestOrigin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    // A malformed id cannot name a session, so it gets the same 404.
    let session_id = Uuid::try_parse(&path.into_inner())
        .map(SessionId)
        .map_err(|_| meditrustal_identity::IdentityError::SessionNotFound)?;

    state
        .identity
        .revoke_session(caller.0.user_id, session_id)
        .await?;

    let reason = ReasonCode::with_id("session", session_id.0).ok_or_else(Problem::internal)?;
    audit_logout(&state, &origin, &caller.0, reason).await?;

    Ok(HttpResponse::NoContent().finish())
}
