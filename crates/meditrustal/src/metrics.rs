//! The values `/metrics` reads at scrape time, and the ledger wrapper that
//! counts failed chain calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meditrustal_adapter_postgres::{anchoring_delays, outbox_backlog, Pool};
use meditrustal_crypto::Digest;
use meditrustal_http_api::{
    HistogramSample, MetricsSource, OutboxSample, PoolSample, ServiceSample,
};
use meditrustal_ledger::{
    ChainStatus, ContractLocation, Ledger, LedgerError, LedgerJob, OnChainBatch, OnChainConsent,
    OnChainRecord, Submission, TxHash, TxStatus,
};

/// Upper bounds of the anchoring delay buckets, in seconds.
const ANCHORING_DELAY_BUCKETS: [f64; 10] =
    [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0];

/// Longest time one scrape waits for a database query.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Failed chain calls since start, by [`LedgerError`] variant.
#[derive(Debug, Default)]
pub struct ChainErrorCounts {
    unavailable: AtomicU64,
    contracts_missing: AtomicU64,
    rejected: AtomicU64,
}

impl ChainErrorCounts {
    fn count(&self, error: &LedgerError) {
        let counter = match error {
            LedgerError::Unavailable(_) => &self.unavailable,
            LedgerError::ContractsMissing => &self.contracts_missing,
            LedgerError::Rejected(_) => &self.rejected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts by kind, as the `kind` label names them.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("unavailable", self.unavailable.load(Ordering::Relaxed)),
            (
                "contracts_missing",
                self.contracts_missing.load(Ordering::Relaxed),
            ),
            ("rejected", self.rejected.load(Ordering::Relaxed)),
        ]
    }
}

/// A [`Ledger`] that counts each failed call in [`ChainErrorCounts`] and
/// otherwise passes calls through unchanged.
pub struct ObservedLedger<L> {
    inner: Arc<L>,
    errors: Arc<ChainErrorCounts>,
}

impl<L> ObservedLedger<L> {
    /// Wraps `inner`, counting its errors in `errors`.
    pub fn new(inner: Arc<L>, errors: Arc<ChainErrorCounts>) -> Self {
        Self { inner, errors }
    }

    fn observe<T>(&self, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
        if let Err(error) = &result {
            self.errors.count(error);
        }
        result
    }
}

#[async_trait]
impl<L: Ledger> Ledger for ObservedLedger<L> {
    async fn submit(&self, job: &LedgerJob) -> Result<Submission, LedgerError> {
        self.observe(self.inner.submit(job).await)
    }

    async fn transaction_status(&self, tx_hash: &TxHash) -> Result<TxStatus, LedgerError> {
        self.observe(self.inner.transaction_status(tx_hash).await)
    }

    async fn find_record(
        &self,
        anchor_hash: &Digest,
    ) -> Result<Option<OnChainRecord>, LedgerError> {
        self.observe(self.inner.find_record(anchor_hash).await)
    }

    async fn find_batch(&self, root: &Digest) -> Result<Option<OnChainBatch>, LedgerError> {
        self.observe(self.inner.find_batch(root).await)
    }

    fn batch_registry(&self) -> Option<ContractLocation> {
        self.inner.batch_registry()
    }

    async fn find_consent(
        &self,
        consent_id: uuid::Uuid,
    ) -> Result<Option<OnChainConsent>, LedgerError> {
        self.observe(self.inner.find_consent(consent_id).await)
    }

    async fn status(&self) -> Result<ChainStatus, LedgerError> {
        self.observe(self.inner.status().await)
    }
}

/// Reads the pool, the outbox and the anchoring delays for `/metrics`.
pub struct ServiceMetrics {
    /// The service's database pool.
    pub pool: Pool,
    /// Failed chain calls, counted by [`ObservedLedger`].
    pub chain_errors: Arc<ChainErrorCounts>,
}

#[async_trait]
impl MetricsSource for ServiceMetrics {
    async fn sample(&self) -> ServiceSample {
        let usage = self.pool.usage();
        let pool = PoolSample {
            max_size: usage.max_size as u64,
            size: usage.size as u64,
            available: usage.available as u64,
            waiting: usage.waiting as u64,
        };

        let outbox = match tokio::time::timeout(SAMPLE_TIMEOUT, outbox_backlog(&self.pool)).await {
            Ok(Ok(backlog)) => Some(OutboxSample {
                pending: backlog.pending,
                sent: backlog.sent,
                oldest_due_age_secs: backlog.oldest_due_age_secs,
            }),
            Ok(Err(error)) => {
                tracing::warn!(%error, "outbox backlog could not be read for metrics");
                None
            }
            Err(_) => {
                tracing::warn!("outbox backlog query timed out for metrics");
                None
            }
        };
        let delays = anchoring_delays(&self.pool, &ANCHORING_DELAY_BUCKETS);
        let anchoring_delay = match tokio::time::timeout(SAMPLE_TIMEOUT, delays).await {
            Ok(Ok(histogram)) => Some(per_bucket(&histogram.cumulative, histogram.sum)),
            Ok(Err(error)) => {
                tracing::warn!(%error, "anchoring delays could not be read for metrics");
                None
            }
            Err(_) => {
                tracing::warn!("anchoring delay query timed out for metrics");
                None
            }
        };

        ServiceSample {
            pool: Some(pool),
            outbox,
            anchoring_delay,
            chain_errors: self.chain_errors.snapshot(),
        }
    }
}

/// Turns cumulative bucket counts into the per-bucket counts the encoder
/// takes.
fn per_bucket(cumulative: &[(f64, u64)], sum: f64) -> HistogramSample {
    let mut previous = 0;
    let buckets = cumulative
        .iter()
        .map(|(bound, at_or_below)| {
            let count = at_or_below.saturating_sub(previous);
            previous = *at_or_below;
            (*bound, count)
        })
        .collect();
    HistogramSample {
        buckets,
        sum,
        count: previous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_bucket_counts_differences_of_cumulative_counts() {
        let sample = per_bucket(&[(1.0, 2), (5.0, 2), (f64::INFINITY, 5)], 12.5);

        assert_eq!(sample.buckets, vec![(1.0, 2), (5.0, 0), (f64::INFINITY, 3)]);
        assert_eq!(sample.count, 5);
        assert_eq!(sample.sum, 12.5);
    }

    #[test]
    fn chain_errors_are_counted_by_kind() {
        let counts = ChainErrorCounts::default();

        counts.count(&LedgerError::Unavailable("timeout".into()));
        counts.count(&LedgerError::Unavailable("refused".into()));
        counts.count(&LedgerError::Rejected("revert".into()));

        assert_eq!(
            counts.snapshot(),
            vec![
                ("unavailable", 2),
                ("contracts_missing", 0),
                ("rejected", 1)
            ]
        );
    }
}
