//! Failed-attempt throttling shared by login, the second login step and
//! password checks.

use chrono::{DateTime, Utc};

use super::{auth_store_error, IdentityService};
use crate::error::IdentityError;
use crate::throttle::ThrottleKey;

impl IdentityService {
    /// Fails with [`IdentityError::TooManyAttempts`] while any of `keys`
    /// is locked.
    ///
    /// NOTE: checking and counting are separate statements, so attempts
    /// that passed this check before the limit was reached still finish.
    /// A burst of concurrent guesses can exceed the limit by the number in
    /// flight, which the password hasher's concurrency bounds.
    pub(super) async fn check_throttle(
        &self,
        keys: &[ThrottleKey],
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        let stored: Vec<String> = keys.iter().map(ThrottleKey::storage_key).collect();
        let locked_until = self
            .security
            .throttle
            .locked_until(&stored, now)
            .await
            .map_err(auth_store_error)?;

        match locked_until {
            Some(until) if until > now => Err(IdentityError::TooManyAttempts {
                retry_after_secs: seconds_until(now, until),
            }),
            _ => Ok(()),
        }
    }

    /// Counts one failure against each of `keys` and locks those that
    /// reached their limit.
    pub(super) async fn record_failures(
        &self,
        keys: &[ThrottleKey],
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        let policy = &self.policy.throttle;
        for key in keys {
            let stored = key.storage_key();
            let failures = self
                .security
                .throttle
                .record_failure(&stored, now, policy.forget_after)
                .await
                .map_err(auth_store_error)?;
            if let Some(lockout) = policy.lockout_after(key, failures) {
                self.security
                    .throttle
                    .lock(&stored, now + lockout)
                    .await
                    .map_err(auth_store_error)?;
                tracing::warn!(
                    throttle.kind = key_kind(key),
                    failures,
                    lockout_secs = lockout.num_seconds(),
                    "too many failed attempts; locked"
                );
            }
        }
        Ok(())
    }

    /// Forgets the failures of `key` after a successful check.
    pub(super) async fn clear_throttle(&self, key: &ThrottleKey) -> Result<(), IdentityError> {
        self.security
            .throttle
            .clear(&key.storage_key())
            .await
            .map_err(auth_store_error)
    }
}

/// Whole seconds from `now` to `until`, rounded up, at least 1, so that a
/// client that waits that long finds the lock over.
fn seconds_until(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    let millis = (until - now).num_milliseconds().max(1);
    u64::try_from(millis.div_euclid(1000) + i64::from(millis % 1000 != 0)).unwrap_or(1)
}

/// Kind of a key for logs. The key itself contains a name or an address,
/// which logs must not contain.
fn key_kind(key: &ThrottleKey) -> &'static str {
    match key {
        ThrottleKey::Login(_) => "login",
        ThrottleKey::User(_) => "user",
        ThrottleKey::Ip(_) => "ip",
        ThrottleKey::ResetMessages(_) => "reset",
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn seconds_until_rounds_up() {
        let now = Utc::now();
        let cases = [
            (1, 1),
            (999, 1),
            (1000, 1),
            (1001, 2),
            (29_500, 30),
            (-5, 1),
        ];
        for (millis, seconds) in cases {
            assert_eq!(
                seconds_until(now, now + TimeDelta::milliseconds(millis)),
                seconds,
                "{millis} ms"
            );
        }
    }
}
