use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread;

use async_trait::async_trait;
use bcrypt::{BcryptResult, HashParts};
use meditrustal_identity::{HashError, PasswordHash, PasswordHasher};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Maximum password length bcrypt reads, in bytes. bcrypt ignores later
/// bytes, so a longer password would match the hash of its first 72 bytes.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Returns whether bcrypt can tell this password apart from every other:
/// at most 72 bytes and no NUL. bcrypt 0.19 appends a NUL and repeats the key
/// cyclically, so `"abcdefgh\0abcdefgh"` expands to the same key as
/// `"abcdefgh"` and verifies against its hash.
fn is_distinguishable(password: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES && !password.contains('\0')
}

/// Minimum cost bcrypt 0.19 accepts. It is fast enough for tests only.
pub const MIN_COST: u32 = 4;

/// Maximum cost bcrypt 0.19 accepts.
pub const MAX_COST: u32 = 31;

/// Cost for production: 2^12 rounds, bcrypt's own default.
pub const PRODUCTION_COST: u32 = bcrypt::DEFAULT_COST;

/// A bcrypt cost outside [`MIN_COST`] to [`MAX_COST`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("invalid bcrypt cost {0}: use {MIN_COST} to {MAX_COST} ({PRODUCTION_COST} in production)")]
pub struct InvalidBcryptCost(pub u32);

/// Password hashing with bcrypt (`$2b$` hashes). Hashing and verifying run
/// on Tokio's blocking thread pool, so they never stall the async executor.
/// At most `max_concurrent` of them run at once, and later calls wait for a
/// free slot.
#[derive(Clone, Debug)]
pub struct BcryptHasher {
    cost: u32,
    max_concurrent: usize,
    permits: Arc<Semaphore>,
}

impl BcryptHasher {
    /// Builds a hasher that hashes new passwords at `cost` (the base-2
    /// logarithm of the round count) and runs at most `max_concurrent`
    /// hashes or verifications at once. A `max_concurrent` of 0 means one
    /// per CPU core. Verification uses the cost stored in each hash.
    /// Errors: [`InvalidBcryptCost`].
    pub fn new(cost: u32, max_concurrent: usize) -> Result<Self, InvalidBcryptCost> {
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            return Err(InvalidBcryptCost(cost));
        }

        let max_concurrent = match max_concurrent {
            // Without a CPU count, one slot is slow but never overloads.
            0 => thread::available_parallelism().map_or(1, NonZeroUsize::get),
            count => count.min(Semaphore::MAX_PERMITS),
        };
        let permits = Arc::new(Semaphore::new(max_concurrent));
        Ok(Self {
            cost,
            max_concurrent,
            permits,
        })
    }

    /// Returns the cost new hashes are made with.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Returns the maximum number of hashes and verifications that run at
    /// once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Waits for a free slot, then runs bcrypt work on the blocking thread
    /// pool. The slot moves into the blocking task, so it stays taken until
    /// bcrypt finishes even when the caller stops waiting (for example a
    /// cancelled request).
    async fn run_blocking<T, F>(&self, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce() -> BcryptResult<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|error| HashError(format!("bcrypt slot unavailable: {error}")))?;

        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await
        .map_err(|error| HashError(format!("bcrypt task failed: {error}")))?
        .map_err(|error| HashError(format!("bcrypt failed: {error}")))
    }
}

#[async_trait]
impl PasswordHasher for BcryptHasher {
    /// Hashes a password of at most 72 bytes without NUL. Other passwords
    /// are an error rather than silently truncated or confused.
    async fn hash(&self, password: &SecretString) -> Result<PasswordHash, HashError> {
        if !is_distinguishable(password.expose_secret()) {
            return Err(HashError(format!(
                "password is longer than {MAX_PASSWORD_BYTES} bytes or contains NUL, which bcrypt cannot hash faithfully"
            )));
        }

        let password = copy_password(password);
        let cost = self.cost;
        let hash = self
            .run_blocking(move || bcrypt::hash(password.as_slice(), cost))
            .await?;
        Ok(PasswordHash(hash))
    }

    /// Checks a password against a bcrypt hash. A malformed hash or a cost
    /// outside 4 to 31 is an error. A password over 72 bytes or with a NUL
    /// is `Ok(false)`, because bcrypt could confuse it with another.
    async fn verify(
        &self,
        password: &SecretString,
        hash: &PasswordHash,
    ) -> Result<bool, HashError> {
        // Parse the hash before the length check so that a malformed hash is
        // reported whatever the password.
        let parts = hash
            .0
            .parse::<HashParts>()
            .map_err(|error| HashError(format!("stored bcrypt hash is malformed: {error}")))?;
        if !(MIN_COST..=MAX_COST).contains(&parts.get_cost()) {
            return Err(HashError(format!(
                "stored bcrypt hash has cost {}, outside {MIN_COST} to {MAX_COST}",
                parts.get_cost()
            )));
        }
        if !is_distinguishable(password.expose_secret()) {
            return Ok(false);
        }

        let password = copy_password(password);
        let hash = hash.0.clone();
        self.run_blocking(move || bcrypt::verify(password.as_slice(), &hash))
            .await
    }
}

/// Copies the password into a buffer that the blocking task owns and that
/// is zeroized when the task drops it.
fn copy_password(password: &SecretString) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(password.expose_secret().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::task::JoinSet;

    use super::*;

    fn hasher() -> BcryptHasher {
        BcryptHasher::new(MIN_COST, 8).unwrap()
    }

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[tokio::test]
    async fn hash_then_verify_accepts_password() {
        let hasher = hasher();
        let hash = hasher.hash(&secret("correct horse")).await.unwrap();
        assert!(hasher
            .verify(&secret("correct horse"), &hash)
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn verify_rejects_wrong_password() {
        let hasher = hasher();
        let hash = hasher.hash(&secret("correct horse")).await.unwrap();
        assert!(!hasher
            .verify(&secret("correct horsf"), &hash)
            .await
            .unwrap());
        assert!(!hasher.verify(&secret(""), &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hash_writes_2b_prefix_and_configured_cost() {
        let hash = hasher().hash(&secret("correct horse")).await.unwrap();
        assert!(
            hash.0.starts_with("$2b$04$"),
            "hash starts with {:?}",
            hash.0.get(..7)
        );
        assert_eq!(hash.0.len(), 60);
    }

    #[tokio::test]
    async fn same_password_hashes_differently() {
        let hasher = hasher();
        let first = hasher.hash(&secret("correct horse")).await.unwrap();
        let second = hasher.hash(&secret("correct horse")).await.unwrap();
        assert_ne!(first, second, "two hashes share a salt");
    }

    #[tokio::test]
    async fn password_of_72_bytes_round_trips() {
        let hasher = hasher();
        let password = secret(&"\u{00e9}".repeat(36));
        assert_eq!(password.expose_secret().len(), 72);

        let hash = hasher.hash(&password).await.unwrap();
        assert!(hasher.verify(&password, &hash).await.unwrap());
    }

    #[tokio::test]
    async fn verify_rejects_73_bytes_whose_prefix_matches() {
        let hasher = hasher();
        let real = "p".repeat(72);
        let longer = format!("{real}x");
        let hash = hasher.hash(&secret(&real)).await.unwrap();

        // Plain bcrypt truncates, so it accepts the longer password.
        assert!(bcrypt::verify(longer.as_bytes(), &hash.0).unwrap());
        assert!(!hasher.verify(&secret(&longer), &hash).await.unwrap());
    }

    #[tokio::test]
    async fn verify_rejects_embedded_nul_that_plain_bcrypt_accepts() {
        let hasher = hasher();
        let hash = hasher.hash(&secret("abcdefgh")).await.unwrap();
        // bcrypt 0.19 appends a NUL and repeats the key cyclically, so this
        // password expands to the same key as "abcdefgh".
        let twin = "abcdefgh\0abcdefgh";

        assert!(bcrypt::verify(twin.as_bytes(), &hash.0).unwrap());
        assert!(!hasher.verify(&secret(twin), &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hash_rejects_password_with_nul() {
        let result = hasher().hash(&secret("abcdefgh\0")).await;
        assert!(result.is_err(), "password with NUL was hashed");
    }

    #[tokio::test]
    async fn hash_rejects_password_over_72_bytes() {
        let result = hasher().hash(&secret(&"p".repeat(73))).await;
        assert!(result.is_err(), "73-byte password was hashed");
    }

    #[tokio::test]
    async fn verify_errors_on_malformed_hash() {
        let hasher = hasher();
        let valid = hasher.hash(&secret("correct horse")).await.unwrap().0;
        let salt_and_hash = valid.get(7..).unwrap();
        let cases = [
            ("empty", String::new()),
            ("plain text", "correct horse".to_owned()),
            ("truncated", valid.get(..59).unwrap().to_owned()),
            ("unknown prefix", format!("$9z$04${salt_and_hash}")),
            ("cost below 4", format!("$2b$03${salt_and_hash}")),
            ("cost above 31", format!("$2b$99${salt_and_hash}")),
            (
                "non-ASCII",
                format!("$2b$04${}\u{00e9}", valid.get(7..58).unwrap()),
            ),
        ];
        for (case, text) in cases {
            let hash = PasswordHash(text);
            let short = hasher.verify(&secret("correct horse"), &hash).await;
            assert!(short.is_err(), "{case}: expected an error, got {short:?}");

            let long = hasher.verify(&secret(&"p".repeat(80)), &hash).await;
            assert!(
                long.is_err(),
                "{case} with long password: expected an error, got {long:?}"
            );
        }
    }

    #[test]
    fn new_rejects_cost_outside_4_to_31() {
        for cost in [0, 3, 32, u32::MAX] {
            assert_eq!(
                BcryptHasher::new(cost, 1).unwrap_err(),
                InvalidBcryptCost(cost)
            );
        }
        assert_eq!(BcryptHasher::new(4, 1).unwrap().cost(), 4);
        assert_eq!(BcryptHasher::new(31, 1).unwrap().cost(), 31);
        assert_eq!(PRODUCTION_COST, 12);
    }

    #[test]
    fn zero_max_concurrent_means_one_per_core() {
        let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(
            BcryptHasher::new(MIN_COST, 0).unwrap().max_concurrent(),
            cores
        );
        assert_eq!(BcryptHasher::new(MIN_COST, 3).unwrap().max_concurrent(), 3);
    }

    /// A hasher without a limit would finish within the wait. A correct one
    /// cannot finish while the test has taken every slot, however slow the
    /// host.
    #[tokio::test]
    async fn hash_waits_for_a_free_slot() {
        let hasher = BcryptHasher::new(MIN_COST, 2).unwrap();
        let all_slots = Arc::clone(&hasher.permits)
            .acquire_many_owned(2)
            .await
            .unwrap();

        let pending = tokio::spawn({
            let hasher = hasher.clone();
            async move { hasher.hash(&secret("correct horse")).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !pending.is_finished(),
            "hash ran while every slot was taken"
        );

        drop(all_slots);
        let hash = pending.await.unwrap().unwrap();
        assert!(hasher
            .verify(&secret("correct horse"), &hash)
            .await
            .unwrap());
    }

    /// A hasher that ran bcrypt inside the future would hold the only
    /// executor thread for the whole poll: each task would raise and lower
    /// `in_flight` within that poll, and the ticker would never see it
    /// above zero. So one tick while hashes are pending already proves the
    /// executor stayed free; the count usually runs into the thousands.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_hashes_leave_executor_free() {
        let hasher = Arc::new(hasher());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let ticks_while_hashing = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));

        let mut hashes = JoinSet::new();
        for index in 0..8 {
            let in_flight = Arc::clone(&in_flight);
            let hasher = Arc::clone(&hasher);
            hashes.spawn(async move {
                let password = secret(&format!("password-{index}"));
                in_flight.fetch_add(1, Ordering::SeqCst);
                let hash = hasher.hash(&password).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                (password, hash)
            });
        }

        let ticker = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            let ticks = Arc::clone(&ticks_while_hashing);
            let done = Arc::clone(&done);
            async move {
                while !done.load(Ordering::SeqCst) {
                    if in_flight.load(Ordering::SeqCst) > 0 {
                        ticks.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            }
        });

        let results = hashes.join_all().await;
        done.store(true, Ordering::SeqCst);
        ticker.await.unwrap();

        assert_eq!(results.len(), 8);
        for (password, hash) in results {
            assert!(hasher.verify(&password, &hash.unwrap()).await.unwrap());
        }
        let ticks = ticks_while_hashing.load(Ordering::SeqCst);
        assert!(ticks >= 1, "ticker ticked {ticks} times while hashes ran");
    }
}
