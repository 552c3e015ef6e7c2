//! Sessions: starting one at login, refresh token rotation with reuse
//! detection, listing and revocation.

use chrono::{DateTime, Duration, TimeDelta, Utc};
use secrecy::SecretString;

use super::{auth_store_error, store_error, IdentityService};
use crate::error::IdentityError;
use crate::opaque::{hash_presented, OpaqueToken, TokenPurpose};
use crate::session::{
    ClientInfo, NewSession, RefreshAttempt, RefreshRotation, RotationOutcome, Session, SessionId,
    TokenPair,
};
use crate::types::{Claims, IssuedToken, User, UserId};

/// Maximum age of `last_used_at` before a request writes it again.
/// Writing on every request would cost an UPDATE per call.
pub(super) const TOUCH_INTERVAL: TimeDelta = TimeDelta::seconds(60);

impl IdentityService {
    /// Starts a session for a user who proved their credentials, and
    /// returns its first token pair.
    pub(super) async fn start_session(
        &self,
        user: &User,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, IdentityError> {
        let refresh = OpaqueToken::generate(TokenPurpose::Refresh)?;
        let session = Session {
            id: SessionId::random(),
            user_id: user.id,
            device: client.device(),
            ip: client.ip,
            created_at: now,
            last_used_at: now,
            expires_at: now + self.policy.refresh_token_lifetime,
        };
        let session_id = session.id;
        let new_session = NewSession {
            session,
            refresh_hash: refresh.hash,
        };
        self.security
            .sessions
            .create(&new_session)
            .await
            .map_err(auth_store_error)?;

        let access = self.issue_access_token(user, session_id, now)?;
        Ok(TokenPair {
            access,
            refresh: refresh.secret,
            session_id,
            user_id: user.id,
        })
    }

    fn issue_access_token(
        &self,
        user: &User,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, IdentityError> {
        let lifetime =
            Duration::seconds(i64::try_from(self.tokens.lifetime_secs()).unwrap_or(i64::MAX));
        let claims = Claims {
            user_id: user.id,
            role: user.role,
            session_id,
            issued_at: now,
            expires_at: now + lifetime,
        };
        self.tokens
            .issue(&claims)
            .map_err(|error| IdentityError::Internal(error.to_string()))
    }

    /// Spends a refresh token and returns a new access token and the next
    /// refresh token of the same session. A token that was spent before
    /// revokes its whole session, because either the owner or a thief
    /// has a copy, and the server cannot tell which. Errors:
    /// [`IdentityError::InvalidRefreshToken`] (also for access tokens and
    /// deactivated users), [`IdentityError::Unavailable`].
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, IdentityError> {
        self.attempt_refresh(refresh_token, client).await.result
    }

    /// Same as [`IdentityService::refresh`], and also returns the user
    /// whose session a reused token ended, so that the reuse can be
    /// audited against that user. The caller must not reveal the user.
    pub async fn attempt_refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
    ) -> RefreshAttempt {
        let mut reused_by = None;
        let result = self
            .rotate_refresh(refresh_token, client, &mut reused_by)
            .await;
        RefreshAttempt { reused_by, result }
    }

    /// Runs the steps of [`IdentityService::refresh`]. Sets `reused_by`
    /// when the token was spent before and its session is ended.
    async fn rotate_refresh(
        &self,
        refresh_token: &SecretString,
        client: &ClientInfo,
        reused_by: &mut Option<UserId>,
    ) -> Result<TokenPair, IdentityError> {
        let presented = hash_presented(refresh_token, TokenPurpose::Refresh)
            .ok_or(IdentityError::InvalidRefreshToken)?;
        let next = OpaqueToken::generate(TokenPurpose::Refresh)?;
        let now = Utc::now();
        let rotation = RefreshRotation {
            presented,
            next: next.hash,
            now,
            expires_at: now + self.policy.refresh_token_lifetime,
            ip: client.ip,
        };

        let outcome = self
            .security
            .sessions
            .rotate_refresh(&rotation)
            .await
            .map_err(auth_store_error)?;
        let session = match outcome {
            RotationOutcome::Rotated(session) => session,
            RotationOutcome::Reused {
                session_id,
                user_id,
            } => {
                self.security
                    .sessions
                    .revoke(user_id, session_id, now)
                    .await
                    .map_err(auth_store_error)?;
                tracing::warn!(
                    user.id = %user_id,
                    session.id = %session_id,
                    "spent refresh token presented again; session revoked"
                );
                *reused_by = Some(user_id);
                return Err(IdentityError::InvalidRefreshToken);
            }
            RotationOutcome::Rejected => return Err(IdentityError::InvalidRefreshToken),
        };

        let user = self
            .users
            .find_by_id(session.user_id)
            .await
            .map_err(store_error)?;
        let user = match user {
            Some(user) if user.is_active => user,
            _ => return Err(IdentityError::InvalidRefreshToken),
        };
        let access = self.issue_access_token(&user, session.id, now)?;
        tracing::info!(user.id = %user.id, session.id = %session.id, "tokens refreshed");
        Ok(TokenPair {
            access,
            refresh: next.secret,
            session_id: session.id,
            user_id: user.id,
        })
    }

    /// Lists a user's active sessions, most recently used first. Errors:
    /// [`IdentityError::Unavailable`].
    pub async fn sessions(&self, user_id: UserId) -> Result<Vec<Session>, IdentityError> {
        self.security
            .sessions
            .list_active(user_id, Utc::now())
            .await
            .map_err(auth_store_error)
    }

    /// Revokes one of the user's active sessions; its access tokens fail
    /// from the next request on. Errors: [`IdentityError::SessionNotFound`]
    /// (also for another user's session), [`IdentityError::Unavailable`].
    pub async fn revoke_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
    ) -> Result<(), IdentityError> {
        let revoked = self
            .security
            .sessions
            .revoke(user_id, session_id, Utc::now())
            .await
            .map_err(auth_store_error)?;
        if !revoked {
            return Err(IdentityError::SessionNotFound);
        }
        tracing::info!(user.id = %user_id, session.id = %session_id, "session revoked");
        Ok(())
    }

    /// Ends the caller's current session and, when a refresh token of
    /// another of the caller's sessions is given, that one too. A refresh
    /// token that is not the caller's is ignored. Errors:
    /// [`IdentityError::Unavailable`].
    pub async fn logout(
        &self,
        user_id: UserId,
        current: SessionId,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), IdentityError> {
        let now = Utc::now();
        let mut ended = vec![current];
        if let Some(hash) = refresh_token.and_then(|t| hash_presented(t, TokenPurpose::Refresh)) {
            let other = self
                .security
                .sessions
                .find_by_refresh(user_id, &hash)
                .await
                .map_err(auth_store_error)?;
            ended.extend(other.filter(|id| *id != current));
        }

        for session_id in ended {
            self.security
                .sessions
                .revoke(user_id, session_id, now)
                .await
                .map_err(auth_store_error)?;
            tracing::info!(user.id = %user_id, session.id = %session_id, "logged out");
        }
        Ok(())
    }

    /// Revokes every active session of the user ("log out everywhere")
    /// and returns how many ended. Errors: [`IdentityError::Unavailable`].
    pub async fn logout_everywhere(&self, user_id: UserId) -> Result<u64, IdentityError> {
        let count = self
            .security
            .sessions
            .revoke_all(user_id, Utc::now())
            .await
            .map_err(auth_store_error)?;
        tracing::info!(user.id = %user_id, sessions = count, "logged out everywhere");
        Ok(count)
    }
}
