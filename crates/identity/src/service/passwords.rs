//! Password change and password reset. Both end every session of the
//! user, so a stolen session does not outlive the password it came from.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::{auth_store_error, store_error, throttle_keys, IdentityService};
use crate::error::IdentityError;
use crate::opaque::{hash_presented, NewOneTimeToken, OpaqueToken, TokenPurpose};
use crate::password_policy;
use crate::ports::Notification;
use crate::session::{ClientInfo, TokenPair};
use crate::throttle::{ThrottleKey, MAX_RESET_MESSAGES};
use crate::types::{Email, Password, PasswordHash, User, UserId};

impl IdentityService {
    /// Changes the caller's password after checking the current one, ends
    /// every session of the user, the current one included, and starts a
    /// new session for the caller. Wrong current passwords count against
    /// the user and the client IP. Errors: [`IdentityError::TooManyAttempts`],
    /// [`IdentityError::Invalid`] (`current_password` wrong, `new_password`
    /// too weak or unchanged), [`IdentityError::Unauthenticated`],
    /// [`IdentityError::Unavailable`].
    pub async fn change_password(
        &self,
        user_id: crate::UserId,
        current_password: &SecretString,
        new_password: SecretString,
        client: &ClientInfo,
    ) -> Result<TokenPair, IdentityError> {
        let now = Utc::now();
        let keys = throttle_keys(ThrottleKey::User(user_id), client);
        self.check_throttle(&keys, now).await?;

        let credentials = self
            .users
            .find_credentials(user_id)
            .await
            .map_err(store_error)?
            .filter(|found| found.user.is_active)
            .ok_or(IdentityError::Unauthenticated)?;
        if !self
            .password_matches(current_password, &credentials.password_hash)
            .await?
        {
            self.record_failures(&keys, now).await?;
            return Err(IdentityError::Invalid {
                field: "current_password",
                message: "does not match your password".into(),
            });
        }
        let user = credentials.user;
        let password = validate_new_password(new_password, &user)?;
        if password.secret().expose_secret() == current_password.expose_secret() {
            return Err(IdentityError::Invalid {
                field: "new_password",
                message: "choose a password that differs from the current one".into(),
            });
        }

        self.replace_password(&user, &password, now).await?;
        self.clear_throttle(&ThrottleKey::User(user.id)).await?;
        let tokens = self.start_session(&user, client, now).await?;
        tracing::info!(user.id = %user.id, session.id = %tokens.session_id, "password changed");
        Ok(tokens)
    }

    /// Sends a single-use reset token to the address if it belongs to an
    /// active account, and otherwise does nothing. The result is the same
    /// either way, so callers cannot learn whether an account exists. For
    /// the same reason a failed delivery is logged, not returned.
    /// Errors: [`IdentityError::Invalid`] for a malformed address,
    /// [`IdentityError::Unavailable`]. At most [`MAX_RESET_MESSAGES`]
    /// messages go to one account until its requests stop for the
    /// throttle's quiet period.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), IdentityError> {
        let email = Email::parse(email)?;
        let now = Utc::now();
        // Drawn for unknown addresses too, to keep the work alike.
        let token = OpaqueToken::generate(TokenPurpose::PasswordReset)?;
        let credentials = self
            .users
            .find_for_login(&email.key())
            .await
            .map_err(store_error)?;
        let Some(user) = credentials
            .map(|found| found.user)
            .filter(|user| user.is_active)
        else {
            return Ok(());
        };
        let sent = self
            .security
            .throttle
            .record_failure(
                &ThrottleKey::ResetMessages(user.id).storage_key(),
                now,
                self.policy.throttle.forget_after,
            )
            .await
            .map_err(auth_store_error)?;
        if sent > MAX_RESET_MESSAGES {
            // Answered like any other request, and the last token mailed
            // stays valid.
            tracing::warn!(user.id = %user.id, requests = sent, "password reset message not sent: too many requests");
            return Ok(());
        }

        let expires_at = now + self.policy.password_reset_lifetime;
        let one_time = &self.security.one_time_tokens;
        one_time
            .delete_for_user(user.id, TokenPurpose::PasswordReset)
            .await
            .map_err(auth_store_error)?;
        one_time
            .insert(&NewOneTimeToken {
                hash: token.hash,
                purpose: TokenPurpose::PasswordReset,
                user_id: user.id,
                created_at: now,
                expires_at,
            })
            .await
            .map_err(auth_store_error)?;

        let message = Notification::PasswordReset {
            user_id: user.id,
            to: user.email.clone(),
            token: token.secret,
            expires_at,
        };
        match self.security.notifier.send(&message).await {
            Ok(()) => tracing::info!(user.id = %user.id, "password reset token sent"),
            Err(error) => {
                tracing::error!(user.id = %user.id, %error, "password reset message not sent");
            }
        }
        Ok(())
    }

    /// Sets a new password with a reset token, spends the token, ends every
    /// session of the user and returns the user's id. A weak password is
    /// rejected before the token is spent, so the user can retry with the
    /// same token. Errors:
    /// [`IdentityError::InvalidResetToken`], [`IdentityError::Invalid`]
    /// (`new_password`), [`IdentityError::Unavailable`].
    pub async fn reset_password(
        &self,
        token: &SecretString,
        new_password: SecretString,
    ) -> Result<UserId, IdentityError> {
        let hash = hash_presented(token, TokenPurpose::PasswordReset)
            .ok_or(IdentityError::InvalidResetToken)?;
        let now = Utc::now();
        let one_time = &self.security.one_time_tokens;
        let found = one_time
            .find_active(&hash, TokenPurpose::PasswordReset, now)
            .await
            .map_err(auth_store_error)?
            .ok_or(IdentityError::InvalidResetToken)?;
        let user = self
            .users
            .find_by_id(found.user_id)
            .await
            .map_err(store_error)?
            .filter(|user| user.is_active)
            .ok_or(IdentityError::InvalidResetToken)?;
        let password = validate_new_password(new_password, &user)?;

        // Spending is atomic, so of two concurrent confirmations one wins.
        let spent_by = one_time
            .consume(&hash, TokenPurpose::PasswordReset, now)
            .await
            .map_err(auth_store_error)?;
        if spent_by != Some(user.id) {
            return Err(IdentityError::InvalidResetToken);
        }
        self.replace_password(&user, &password, now).await?;
        self.clear_throttle(&ThrottleKey::User(user.id)).await?;
        tracing::info!(user.id = %user.id, "password reset");
        Ok(user.id)
    }

    /// Checks a password against a hash; a password that no accepted
    /// password resembles (see [`password_policy::is_verifiable`]) is wrong.
    pub(super) async fn password_matches(
        &self,
        password: &SecretString,
        hash: &PasswordHash,
    ) -> Result<bool, IdentityError> {
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        Ok(matches && password_policy::is_verifiable(password))
    }

    /// Stores the new hash, then ends every session and unspent reset
    /// token of the user.
    async fn replace_password(
        &self,
        user: &User,
        password: &Password,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        let hash = self
            .hasher
            .hash(password.secret())
            .await
            .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let updated = self
            .users
            .update_password(user.id, &hash, now)
            .await
            .map_err(store_error)?;
        if !updated {
            return Err(IdentityError::Unauthenticated);
        }

        let revoked = self
            .security
            .sessions
            .revoke_all(user.id, now)
            .await
            .map_err(auth_store_error)?;
        self.security
            .one_time_tokens
            .delete_for_user(user.id, TokenPurpose::PasswordReset)
            .await
            .map_err(auth_store_error)?;
        tracing::info!(user.id = %user.id, sessions = revoked, "sessions ended by password change");
        Ok(())
    }
}

fn validate_new_password(secret: SecretString, user: &User) -> Result<Password, IdentityError> {
    let password = Password::parse_field(secret, "new_password")?;
    password_policy::check_context(
        password.secret(),
        "new_password",
        user.username.as_str(),
        user.email.as_str(),
    )?;
    Ok(password)
}
