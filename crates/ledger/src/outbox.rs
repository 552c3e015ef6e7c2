use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::{Ledger, LedgerError, OutboxError, OutboxStore};
use crate::types::{OutboxJob, Replacement, Submission, TxHash, TxStatus};

/// Exponential backoff between failed attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
    /// How long to wait before checking a sent transaction again.
    pub check_interval: Duration,
    /// How long a claimed job stays leased to one worker.
    pub lease: Duration,
    /// Jobs claimed per round.
    pub batch_size: u32,
    /// How long a sent transaction may stay pending before it is replaced
    /// with a higher fee.
    pub replace_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            check_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            batch_size: 32,
            replace_after: Duration::from_secs(120),
        }
    }
}

impl BackoffPolicy {
    /// Delay before retry number `attempts + 1`: `initial * 2^attempts`,
    /// capped at `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Counts of what one round of [`OutboxProcessor::run_once`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessReport {
    /// Jobs claimed.
    pub claimed: usize,
    /// Jobs seen mined and completed.
    pub mined: usize,
    /// Jobs whose transaction was sent and awaits mining.
    pub sent: usize,
    /// Jobs put back for a later attempt.
    pub retried: usize,
    /// Pending transactions replaced with a higher fee.
    pub replaced: usize,
    /// Jobs failed for good.
    pub failed: usize,
}

/// Moves outbox jobs onto the chain: claims due jobs, sends or checks each,
/// and records the outcome. Safe to run in several processes at once,
/// because claims are leased.
pub struct OutboxProcessor {
    store: Arc<dyn OutboxStore>,
    ledger: Arc<dyn Ledger>,
    policy: BackoffPolicy,
}

impl OutboxProcessor {
    /// Builds a processor over the given ports.
    pub fn new(
        store: Arc<dyn OutboxStore>,
        ledger: Arc<dyn Ledger>,
        policy: BackoffPolicy,
    ) -> Self {
        Self {
            store,
            ledger,
            policy,
        }
    }

    /// Processes one round of due jobs. Chain errors are stored on the job
    /// and retried with backoff; only store errors are returned.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<ProcessReport, OutboxError> {
        let jobs = self
            .store
            .claim_due(self.policy.batch_size, self.policy.lease)
            .await?;
        let mut report = ProcessReport {
            claimed: jobs.len(),
            ..ProcessReport::default()
        };

        for job in jobs {
            self.process(&job, now, &mut report).await?;
        }
        Ok(report)
    }

    async fn process(
        &self,
        job: &OutboxJob,
        now: DateTime<Utc>,
        report: &mut ProcessReport,
    ) -> Result<(), OutboxError> {
        if let Some(tx_hash) = job.submitted_tx {
            match self.ledger.transaction_status(&tx_hash).await {
                Ok(TxStatus::Mined(anchor)) => {
                    report.mined += 1;
                    return self.store.complete(job.id, anchor).await;
                }
                Ok(TxStatus::Pending) => {
                    return self.follow_pending(job, tx_hash, now, report).await
                }
                // A reverted or forgotten transaction is sent again; the
                // ledger recognizes an entry that is already on-chain.
                Ok(TxStatus::Reverted | TxStatus::Unknown) => {
                    tracing::warn!(job.id, tx.hash = %tx_hash, "sent transaction is gone; sending again");
                }
                Err(error) => return self.retry(job, &error, now, false, report).await,
            }
        }

        match self.ledger.submit(&job.job).await {
            Ok(Submission::Mined(anchor)) => {
                report.mined += 1;
                tracing::info!(job.id, job.kind = job.job.kind(), tx.hash = %anchor.tx_hash, block = anchor.block_number, "ledger job mined");
                self.store.complete(job.id, anchor).await
            }
            Ok(Submission::Sent(tx_hash)) => {
                report.sent += 1;
                self.store
                    .mark_sent(job.id, tx_hash, now + self.policy.check_interval)
                    .await
            }
            Err(LedgerError::Rejected(reason)) => {
                report.failed += 1;
                tracing::error!(job.id, job.kind = job.job.kind(), %reason, "chain rejected ledger job");
                self.store.fail(job.id, &reason).await
            }
            Err(error) => self.retry(job, &error, now, true, report).await,
        }
    }

    /// Checks a pending transaction again later, or replaces it with a
    /// higher fee once it has been pending for `replace_after`.
    async fn follow_pending(
        &self,
        job: &OutboxJob,
        tx_hash: TxHash,
        now: DateTime<Utc>,
        report: &mut ProcessReport,
    ) -> Result<(), OutboxError> {
        let check_at = now + self.policy.check_interval;
        let stuck = job
            .sent_at
            .is_some_and(|sent_at| sent_at + self.policy.replace_after <= now);
        if !stuck {
            report.sent += 1;
            return self.store.mark_sent(job.id, tx_hash, check_at).await;
        }

        match self.ledger.replace_transaction(&tx_hash).await {
            Ok(Replacement::Sent(replacement)) => {
                report.replaced += 1;
                tracing::warn!(job.id, tx.hash = %tx_hash, tx.replacement = %replacement, "transaction stuck; replaced it with a higher fee");
                self.store.mark_sent(job.id, replacement, check_at).await
            }
            Ok(Replacement::Mined(anchor)) => {
                report.mined += 1;
                self.store.complete(job.id, anchor).await
            }
            Ok(Replacement::Unknown) => {
                self.retry(
                    job,
                    &LedgerError::Unavailable(format!("transaction {tx_hash} is gone")),
                    now,
                    true,
                    report,
                )
                .await
            }
            Err(error) => self.retry(job, &error, now, false, report).await,
        }
    }

    async fn retry(
        &self,
        job: &OutboxJob,
        error: &LedgerError,
        now: DateTime<Utc>,
        forget_tx: bool,
        report: &mut ProcessReport,
    ) -> Result<(), OutboxError> {
        report.retried += 1;
        let delay = self.policy.delay(job.attempts);
        tracing::warn!(job.id, job.kind = job.job.kind(), attempts = job.attempts + 1, retry_in_ms = delay.as_millis() as u64, %error, "ledger job failed; will retry");
        self.store
            .reschedule(job.id, &error.to_string(), now + delay, forget_tx)
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use meditrustal_crypto::sha256;
    use mockall::predicate::eq;
    use uuid::Uuid;

    use super::*;
    use crate::ports::{MockLedger, MockOutboxStore};
    use crate::types::{ChainAnchor, LedgerJob, RecordAnchor};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn anchor_job(
        id: i64,
        attempts: u32,
        submitted_tx: Option<meditrustal_crypto::Digest>,
    ) -> OutboxJob {
        OutboxJob {
            id,
            job: LedgerJob::AnchorRecord(RecordAnchor {
                record_id: Uuid::nil(),
                anchor_hash: sha256(b"anchor"),
                patient_did: "did:meditrustal:abc".into(),
                record_type: "LAB_RESULT".into(),
                timestamp: 1_700_000_000,
            }),
            attempts,
            submitted_tx,
            sent_at: submitted_tx.map(|_| now() - Duration::from_secs(5)),
        }
    }

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            check_interval: Duration::from_secs(2),
            lease: Duration::from_secs(60),
            batch_size: 10,
            replace_after: Duration::from_secs(30),
        }
    }

    fn processor(store: MockOutboxStore, ledger: MockLedger) -> OutboxProcessor {
        OutboxProcessor::new(Arc::new(store), Arc::new(ledger), policy())
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = policy();
        assert_eq!(policy.delay(0), Duration::from_secs(1));
        assert_eq!(policy.delay(1), Duration::from_secs(2));
        assert_eq!(policy.delay(2), Duration::from_secs(4));
        assert_eq!(policy.delay(3), Duration::from_secs(8));
        assert_eq!(policy.delay(30), Duration::from_secs(8));
    }

    #[tokio::test]
    async fn mined_submission_completes_job() {
        let anchor = ChainAnchor {
            tx_hash: sha256(b"tx"),
            block_number: 7,
        };
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(|_, _| Ok(vec![anchor_job(1, 0, None)]));
        store
            .expect_complete()
            .with(eq(1), eq(anchor))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_submit()
            .times(1)
            .returning(move |_| Ok(Submission::Mined(anchor)));

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                mined: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn unavailable_chain_reschedules_with_backoff() {
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(|_, _| Ok(vec![anchor_job(3, 2, None)]));
        store
            .expect_reschedule()
            .with(
                eq(3),
                eq("chain unavailable: connection refused"),
                eq(now() + Duration::from_secs(4)),
                eq(true),
            )
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_submit()
            .times(1)
            .returning(|_| Err(LedgerError::Unavailable("connection refused".into())));

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                retried: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn rejected_transaction_fails_job() {
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(|_, _| Ok(vec![anchor_job(4, 0, None)]));
        store
            .expect_fail()
            .with(eq(4), eq("Unauthorized()"))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_submit()
            .times(1)
            .returning(|_| Err(LedgerError::Rejected("Unauthorized()".into())));

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                failed: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn pending_transaction_is_checked_again_later() {
        let tx = sha256(b"tx");
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(move |_, _| Ok(vec![anchor_job(5, 0, Some(tx))]));
        store
            .expect_mark_sent()
            .with(eq(5), eq(tx), eq(now() + Duration::from_secs(2)))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_transaction_status()
            .times(1)
            .returning(|_| Ok(TxStatus::Pending));
        ledger.expect_submit().times(0);

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                sent: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn stuck_transaction_is_replaced_and_followed() {
        let old_tx = sha256(b"old");
        let new_tx = sha256(b"replacement");
        let mut job = anchor_job(8, 0, Some(old_tx));
        job.sent_at = Some(now() - Duration::from_secs(30));
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(move |_, _| Ok(vec![job.clone()]));
        store
            .expect_mark_sent()
            .with(eq(8), eq(new_tx), eq(now() + Duration::from_secs(2)))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_transaction_status()
            .times(1)
            .returning(|_| Ok(TxStatus::Pending));
        ledger
            .expect_replace_transaction()
            .with(eq(old_tx))
            .times(1)
            .returning(move |_| Ok(Replacement::Sent(new_tx)));
        ledger.expect_submit().times(0);

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                replaced: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn pending_transaction_is_not_replaced_before_timeout() {
        let tx = sha256(b"tx");
        let mut job = anchor_job(9, 0, Some(tx));
        job.sent_at = Some(now() - Duration::from_secs(29));
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(move |_, _| Ok(vec![job.clone()]));
        store
            .expect_mark_sent()
            .with(eq(9), eq(tx), eq(now() + Duration::from_secs(2)))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_transaction_status()
            .times(1)
            .returning(|_| Ok(TxStatus::Pending));
        ledger.expect_replace_transaction().times(0);

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(report.sent, 1);
        assert_eq!(report.replaced, 0);
    }

    #[tokio::test]
    async fn original_mined_during_replacement_completes_job() {
        let tx = sha256(b"tx");
        let anchor = ChainAnchor {
            tx_hash: tx,
            block_number: 12,
        };
        let mut job = anchor_job(10, 0, Some(tx));
        job.sent_at = Some(now() - Duration::from_secs(60));
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(move |_, _| Ok(vec![job.clone()]));
        store
            .expect_complete()
            .with(eq(10), eq(anchor))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_transaction_status()
            .times(1)
            .returning(|_| Ok(TxStatus::Pending));
        ledger
            .expect_replace_transaction()
            .times(1)
            .returning(move |_| Ok(Replacement::Mined(anchor)));

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(report.mined, 1);
        assert_eq!(report.replaced, 0);
    }

    #[tokio::test]
    async fn forgotten_transaction_is_sent_again() {
        let old_tx = sha256(b"old");
        let new_tx = sha256(b"new");
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(move |_, _| Ok(vec![anchor_job(6, 0, Some(old_tx))]));
        store
            .expect_mark_sent()
            .with(eq(6), eq(new_tx), eq(now() + Duration::from_secs(2)))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let mut ledger = MockLedger::new();
        ledger
            .expect_transaction_status()
            .times(1)
            .returning(|_| Ok(TxStatus::Unknown));
        ledger
            .expect_submit()
            .times(1)
            .returning(move |_| Ok(Submission::Sent(new_tx)));

        let report = processor(store, ledger).run_once(now()).await.unwrap();

        assert_eq!(
            report,
            ProcessReport {
                claimed: 1,
                sent: 1,
                ..ProcessReport::default()
            }
        );
    }

    #[tokio::test]
    async fn store_error_stops_the_round() {
        let mut store = MockOutboxStore::new();
        store
            .expect_claim_due()
            .times(1)
            .returning(|_, _| Err(OutboxError::Unavailable("pool timed out".into())));
        let ledger = MockLedger::new();

        let result = processor(store, ledger).run_once(now()).await;

        assert_eq!(
            result,
            Err(OutboxError::Unavailable("pool timed out".into()))
        );
    }
}
