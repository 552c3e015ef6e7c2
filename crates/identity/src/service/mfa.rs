//! Two-factor authentication with TOTP: enrollment, confirmation with
//! recovery codes, the second login step, and disabling.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::{auth_store_error, store_error, throttle_keys, IdentityService};
use crate::error::IdentityError;
use crate::mfa::{totp_secret_aad, MfaCode, StoredTotp, TotpEnrollment};
use crate::opaque::{hash_presented, NewOneTimeToken, OpaqueToken, TokenHash, TokenPurpose};
use crate::session::{ClientInfo, MfaChallenge, TokenPair};
use crate::throttle::ThrottleKey;
use crate::totp::{self, TotpSecret};
use crate::types::UserId;

impl IdentityService {
    /// Whether the user must pass a second factor at login.
    pub(super) async fn has_confirmed_totp(&self, user_id: UserId) -> Result<bool, IdentityError> {
        let stored = self
            .security
            .mfa
            .find_totp(user_id)
            .await
            .map_err(auth_store_error)?;
        Ok(stored.is_some_and(|totp| totp.confirmed))
    }

    /// Issues the single-use token that the second login step presents.
    pub(super) async fn issue_mfa_challenge(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> Result<MfaChallenge, IdentityError> {
        let token = OpaqueToken::generate(TokenPurpose::MfaLogin)?;
        let lifetime = self.policy.mfa_challenge_lifetime;
        self.security
            .one_time_tokens
            .insert(&NewOneTimeToken {
                hash: token.hash,
                purpose: TokenPurpose::MfaLogin,
                user_id,
                created_at: now,
                expires_at: now + lifetime,
            })
            .await
            .map_err(auth_store_error)?;
        Ok(MfaChallenge {
            token: token.secret,
            expires_in: lifetime.num_seconds().unsigned_abs(),
        })
    }

    /// Completes a login with the MFA token from the first step and a TOTP
    /// or recovery code, and starts the session. Wrong codes count against
    /// the user and the client IP, and after `mfa_max_attempts` of them the
    /// MFA token is spent. Errors: [`IdentityError::InvalidMfaToken`],
    /// [`IdentityError::TooManyAttempts`], [`IdentityError::InvalidMfaCode`],
    /// [`IdentityError::Unavailable`].
    pub async fn complete_mfa_login(
        &self,
        mfa_token: &SecretString,
        code: &MfaCode,
        client: &ClientInfo,
    ) -> Result<TokenPair, IdentityError> {
        let hash = hash_presented(mfa_token, TokenPurpose::MfaLogin)
            .ok_or(IdentityError::InvalidMfaToken)?;
        let now = Utc::now();
        let one_time = &self.security.one_time_tokens;
        let challenge = one_time
            .find_active(&hash, TokenPurpose::MfaLogin, now)
            .await
            .map_err(auth_store_error)?
            .ok_or(IdentityError::InvalidMfaToken)?;
        let keys = throttle_keys(ThrottleKey::User(challenge.user_id), client);
        self.check_throttle(&keys, now).await?;

        if !self
            .second_factor_matches(challenge.user_id, code, now)
            .await?
        {
            self.record_failures(&keys, now).await?;
            self.count_challenge_failure(&hash, now).await?;
            return Err(IdentityError::InvalidMfaCode);
        }
        let spent_by = one_time
            .consume(&hash, TokenPurpose::MfaLogin, now)
            .await
            .map_err(auth_store_error)?;
        if spent_by != Some(challenge.user_id) {
            return Err(IdentityError::InvalidMfaToken);
        }
        let user = self
            .users
            .find_by_id(challenge.user_id)
            .await
            .map_err(store_error)?
            .filter(|user| user.is_active)
            .ok_or(IdentityError::InvalidMfaToken)?;

        self.clear_throttle(&ThrottleKey::User(user.id)).await?;
        let tokens = self.start_session(&user, client, now).await?;
        tracing::info!(user.id = %user.id, session.id = %tokens.session_id, "user logged in with second factor");
        Ok(tokens)
    }

    /// Spends an MFA login token once it has seen too many wrong codes.
    async fn count_challenge_failure(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        let one_time = &self.security.one_time_tokens;
        let attempts = one_time
            .record_failed_attempt(hash)
            .await
            .map_err(auth_store_error)?;
        if attempts >= self.policy.mfa_max_attempts {
            one_time
                .consume(hash, TokenPurpose::MfaLogin, now)
                .await
                .map_err(auth_store_error)?;
        }
        Ok(())
    }

    /// Starts TOTP enrollment: draws a secret, stores it sealed and
    /// unconfirmed (replacing an earlier unconfirmed one), and returns it
    /// for the authenticator app. Errors: [`IdentityError::MfaAlreadyEnabled`],
    /// [`IdentityError::Unauthenticated`], [`IdentityError::Unavailable`].
    pub async fn start_totp_enrollment(
        &self,
        user_id: UserId,
    ) -> Result<TotpEnrollment, IdentityError> {
        let user = self
            .users
            .find_by_id(user_id)
            .await
            .map_err(store_error)?
            .ok_or(IdentityError::Unauthenticated)?;
        let secret = TotpSecret::generate()?;
        let sealed_secret = meditrustal_crypto::seal(
            self.keys.as_ref(),
            secret.as_bytes(),
            &totp_secret_aad(user_id),
        )
        .map_err(|error| IdentityError::Internal(error.to_string()))?;
        let pending = StoredTotp {
            sealed_secret,
            confirmed: false,
            last_used_step: None,
        };

        let saved = self
            .security
            .mfa
            .save_pending_totp(user_id, &pending, Utc::now())
            .await
            .map_err(auth_store_error)?;
        if !saved {
            return Err(IdentityError::MfaAlreadyEnabled);
        }
        tracing::info!(user.id = %user_id, "TOTP enrollment started");
        Ok(TotpEnrollment {
            secret: secret.to_base32(),
            otpauth_uri: secret.otpauth_uri(user.username.as_str()),
        })
    }

    /// Confirms enrollment with a code from the app, turns the second
    /// factor on and returns the recovery codes, which are stored only as
    /// hashes and never shown again. Errors: [`IdentityError::MfaNotEnabled`]
    /// (no enrollment started), [`IdentityError::MfaAlreadyEnabled`],
    /// [`IdentityError::InvalidMfaCode`], [`IdentityError::TooManyAttempts`],
    /// [`IdentityError::Unavailable`].
    pub async fn confirm_totp(
        &self,
        user_id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, IdentityError> {
        let now = Utc::now();
        let keys = throttle_keys(ThrottleKey::User(user_id), client);
        self.check_throttle(&keys, now).await?;
        let pending = self
            .security
            .mfa
            .find_totp(user_id)
            .await
            .map_err(auth_store_error)?
            .ok_or(IdentityError::MfaNotEnabled)?;
        if pending.confirmed {
            return Err(IdentityError::MfaAlreadyEnabled);
        }

        let secret = self.open_totp_secret(user_id, &pending)?;
        let Some(step) = totp::verify(&secret, code, unix_seconds(now)) else {
            self.record_failures(&keys, now).await?;
            return Err(IdentityError::InvalidMfaCode);
        };
        let codes = totp::generate_recovery_codes()?;
        let hashes: Vec<TokenHash> = codes.iter().map(recovery_code_hash).collect();
        let confirmed = self
            .security
            .mfa
            .confirm_totp(user_id, &pending, step, &hashes, now)
            .await
            .map_err(auth_store_error)?;
        if !confirmed {
            return Err(IdentityError::MfaAlreadyEnabled);
        }
        tracing::info!(user.id = %user_id, "TOTP enabled");
        Ok(codes)
    }

    /// Turns the second factor off after checking the password and a TOTP
    /// or recovery code; deletes the secret and every recovery code.
    /// Errors: [`IdentityError::MfaNotEnabled`], [`IdentityError::Invalid`]
    /// (`password` wrong), [`IdentityError::InvalidMfaCode`],
    /// [`IdentityError::TooManyAttempts`], [`IdentityError::Unavailable`].
    pub async fn disable_totp(
        &self,
        user_id: UserId,
        password: &SecretString,
        code: &MfaCode,
        client: &ClientInfo,
    ) -> Result<(), IdentityError> {
        let now = Utc::now();
        let keys = throttle_keys(ThrottleKey::User(user_id), client);
        self.check_throttle(&keys, now).await?;
        if !self.has_confirmed_totp(user_id).await? {
            return Err(IdentityError::MfaNotEnabled);
        }

        let credentials = self
            .users
            .find_credentials(user_id)
            .await
            .map_err(store_error)?
            .ok_or(IdentityError::Unauthenticated)?;
        if !self
            .password_matches(password, &credentials.password_hash)
            .await?
        {
            self.record_failures(&keys, now).await?;
            return Err(IdentityError::Invalid {
                field: "password",
                message: "does not match your password".into(),
            });
        }
        if !self.second_factor_matches(user_id, code, now).await? {
            self.record_failures(&keys, now).await?;
            return Err(IdentityError::InvalidMfaCode);
        }

        self.security
            .mfa
            .delete(user_id)
            .await
            .map_err(auth_store_error)?;
        self.clear_throttle(&ThrottleKey::User(user_id)).await?;
        tracing::info!(user.id = %user_id, "TOTP disabled");
        Ok(())
    }

    /// Checks a TOTP code (once per time step) or spends a recovery code
    /// against the user's confirmed credential.
    async fn second_factor_matches(
        &self,
        user_id: UserId,
        code: &MfaCode,
        now: DateTime<Utc>,
    ) -> Result<bool, IdentityError> {
        let mfa = &self.security.mfa;
        match code {
            MfaCode::Totp(code) => {
                let Some(stored) = mfa.find_totp(user_id).await.map_err(auth_store_error)? else {
                    return Ok(false);
                };
                if !stored.confirmed {
                    return Ok(false);
                }
                let secret = self.open_totp_secret(user_id, &stored)?;
                let Some(step) = totp::verify(&secret, code, unix_seconds(now)) else {
                    return Ok(false);
                };
                // The store accepts only steps after the last one used, so a
                // code seen once (or an older one) fails from then on.
                mfa.use_totp_step(user_id, step)
                    .await
                    .map_err(auth_store_error)
            }
            MfaCode::Recovery(code) => mfa
                .use_recovery_code(user_id, &recovery_code_hash(code), now)
                .await
                .map_err(auth_store_error),
        }
    }

    fn open_totp_secret(
        &self,
        user_id: UserId,
        stored: &StoredTotp,
    ) -> Result<TotpSecret, IdentityError> {
        let bytes = meditrustal_crypto::open(
            self.keys.as_ref(),
            &stored.sealed_secret,
            &totp_secret_aad(user_id),
        )
        .map_err(|error| IdentityError::Internal(format!("TOTP secret: {error}")))?;
        Ok(TotpSecret::from_bytes(Zeroizing::new(bytes)))
    }
}

fn recovery_code_hash(code: &SecretString) -> TokenHash {
    let normalized = totp::normalize_recovery_code(code);
    TokenHash(meditrustal_crypto::sha256(normalized.as_bytes()))
}

fn unix_seconds(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_code_hash_ignores_format() {
        let shown = SecretString::from("abcd-efgh-ijkl-mnop");
        let typed = SecretString::from("ABCD EFGH IJKL MNOP");

        assert_eq!(recovery_code_hash(&shown), recovery_code_hash(&typed));
        assert_eq!(
            recovery_code_hash(&shown),
            TokenHash(meditrustal_crypto::sha256(b"abcdefghijklmnop"))
        );
    }
}
