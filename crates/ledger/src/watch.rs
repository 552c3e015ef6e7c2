//! Chain reconciliation: follows the contracts' events behind a number of
//! confirmations and checks them against the finished outbox jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use meditrustal_crypto::Digest;

use crate::ports::{ChainEvents, LedgerError, OutboxError, WatchStore};
use crate::types::{ChainAnchor, EntryKey, TxHash};

/// A block, by number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash.
    pub hash: Digest,
}

/// An event a watched contract emitted when it wrote an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEvent {
    /// The entry written.
    pub entry: EntryKey,
    /// The transaction that emitted it.
    pub tx_hash: TxHash,
    /// The block that contains it.
    pub block: BlockRef,
    /// Position of the log in its block.
    pub log_index: u64,
}

/// A finished outbox job, with where the database says its entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnchoredJob {
    /// Outbox row id.
    pub job_id: i64,
    /// The entry the job wrote.
    pub entry: EntryKey,
    /// The transaction recorded for it.
    pub tx_hash: TxHash,
    /// The block recorded for it.
    pub block_number: u64,
}

/// An event recorded because it matched no outbox job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmatchedEvent {
    /// The event.
    pub event: ChainEvent,
    /// When the watcher first saw it.
    pub seen_at: chrono::DateTime<chrono::Utc>,
}

/// Settings of the [`ChainWatcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchPolicy {
    /// Blocks that must follow a block before its events count: 0 takes
    /// the latest block as final.
    pub confirmations: u64,
    /// First block to read when there is no progress yet: the deployment
    /// block from the manifest.
    pub start_block: u64,
    /// Most blocks read per `eth_getLogs` range.
    pub page_blocks: u64,
}

/// Error from one watcher round.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WatchError {
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] LedgerError),
    /// The database could not be read or written.
    #[error(transparent)]
    Store(#[from] OutboxError),
}

/// What one [`ChainWatcher::run_once`] round found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Block the round started at after any rewind, `None` when there was
    /// no confirmed block to read.
    pub from_block: Option<u64>,
    /// Last block read.
    pub to_block: Option<u64>,
    /// The stored progress named a block that the chain no longer has, so
    /// the round read again from the start block.
    pub rewound: bool,
    /// Events read.
    pub events: usize,
    /// Jobs whose entry the chain holds where the database says.
    pub confirmed: usize,
    /// Jobs reopened because the chain lacks their entry.
    pub reanchored: Vec<i64>,
    /// Jobs whose entry the chain holds in another transaction or block,
    /// moved there.
    pub moved: Vec<i64>,
    /// Events that match no job.
    pub unmatched: Vec<ChainEvent>,
}

/// Follows the chain and reconciles it with the finished outbox jobs.
///
/// A job that the database records as mined in a confirmed block, but
/// whose event the chain does not hold there, is reopened, so the outbox
/// sends it again. The contract rejects a duplicate, so a resend whose
/// entry is on-chain after all resolves to the transaction that holds it.
/// Events that match no job are recorded for an operator. Progress is
/// stored with the block hash; when the chain no longer has that block,
/// the watcher reads again from the start block.
pub struct ChainWatcher {
    chain: Arc<dyn ChainEvents>,
    store: Arc<dyn WatchStore>,
    policy: WatchPolicy,
}

impl ChainWatcher {
    /// Builds a watcher over the given ports.
    pub fn new(
        chain: Arc<dyn ChainEvents>,
        store: Arc<dyn WatchStore>,
        policy: WatchPolicy,
    ) -> Self {
        Self {
            chain,
            store,
            policy,
        }
    }

    /// Reads the confirmed blocks after the stored progress, up to
    /// `page_blocks` per range, and reconciles each range.
    pub async fn run_once(&self) -> Result<WatchReport, WatchError> {
        let head = self.chain.head_block().await?;
        let mut report = WatchReport::default();
        let from = self.resume_block(head, &mut report).await?;

        // Blocks above the head are gone, and so is every entry recorded
        // in them. NOTE: a node that lags behind another (hosted nodes
        // behind a load balancer) also reports a lower head; the jobs are
        // then sent again and resolve to their original transactions.
        for job in self.store.anchored_above(head).await? {
            self.reanchor(job, "its block is above the chain head", &mut report)
                .await?;
        }

        let Some(safe) = head.checked_sub(self.policy.confirmations) else {
            return Ok(report);
        };
        if from > safe {
            return Ok(report);
        }
        report.from_block = Some(from);

        let page = self.policy.page_blocks.max(1);
        let mut start = from;
        while start <= safe {
            let end = safe.min(start.saturating_add(page - 1));
            self.reconcile_range(start, end, &mut report).await?;
            let Some(hash) = self.chain.block_hash(end).await? else {
                // The chain shrank while this round read it; the next
                // round starts over from the stored progress.
                return Ok(report);
            };
            self.store
                .save_progress(BlockRef { number: end, hash })
                .await?;
            report.to_block = Some(end);
            start = end + 1;
        }
        Ok(report)
    }

    /// Returns the first block to read: after the stored progress if the
    /// chain still has that block with the same hash, otherwise the start
    /// block, after forgetting what was read from it.
    async fn resume_block(&self, head: u64, report: &mut WatchReport) -> Result<u64, WatchError> {
        let Some(progress) = self.store.progress().await? else {
            return Ok(self.policy.start_block);
        };
        let current = if progress.number <= head {
            self.chain.block_hash(progress.number).await?
        } else {
            None
        };
        if current == Some(progress.hash) {
            return Ok(progress.number + 1);
        }

        tracing::warn!(
            block = progress.number,
            block.hash = %progress.hash,
            head,
            "chain no longer has the last processed block; reading again from the start block"
        );
        report.rewound = true;
        self.store.rewind(self.policy.start_block).await?;
        Ok(self.policy.start_block)
    }

    async fn reconcile_range(
        &self,
        from: u64,
        to: u64,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let events = self.chain.events(from, to).await?;
        let jobs = self.store.anchored_jobs(from, to).await?;
        report.events += events.len();

        let mut by_entry: BTreeMap<&EntryKey, &ChainEvent> = BTreeMap::new();
        for event in &events {
            by_entry.entry(&event.entry).or_insert(event);
        }

        let mut matched = BTreeSet::new();
        for job in jobs {
            let Some(event) = by_entry.get(&job.entry) else {
                self.reanchor(job, "the chain has no event for its entry", report)
                    .await?;
                continue;
            };
            matched.insert(job.entry.clone());
            if event.tx_hash == job.tx_hash && event.block.number == job.block_number {
                report.confirmed += 1;
                continue;
            }
            let found = ChainAnchor {
                tx_hash: event.tx_hash,
                block_number: event.block.number,
            };
            tracing::info!(
                job.id = job.job_id,
                tx.hash = %found.tx_hash,
                block = found.block_number,
                "entry found in another transaction; moving the job's anchor"
            );
            report.moved.push(job.job_id);
            self.store.move_anchor(job, found).await?;
        }

        self.report_unknown(&events, &matched, report).await
    }

    /// Records the events whose entry no outbox job writes.
    async fn report_unknown(
        &self,
        events: &[ChainEvent],
        matched: &BTreeSet<EntryKey>,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let candidates: Vec<EntryKey> = events
            .iter()
            .map(|event| event.entry.clone())
            .filter(|entry| !matched.contains(entry))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }

        let known: BTreeSet<EntryKey> = self
            .store
            .known_entries(candidates)
            .await?
            .into_iter()
            .collect();
        let unknown: Vec<ChainEvent> = events
            .iter()
            .filter(|event| !matched.contains(&event.entry) && !known.contains(&event.entry))
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }

        for event in &unknown {
            tracing::warn!(
                entry.kind = %event.entry.kind,
                entry.key = %event.entry.key,
                tx.hash = %event.tx_hash,
                block = event.block.number,
                "chain event matches no outbox job"
            );
        }
        report.unmatched.extend(unknown.iter().cloned());
        self.store.report_unmatched(unknown).await?;
        Ok(())
    }

    async fn reanchor(
        &self,
        job: AnchoredJob,
        reason: &str,
        report: &mut WatchReport,
    ) -> Result<(), WatchError> {
        let job_id = job.job_id;
        let (kind, block) = (job.entry.kind.clone(), job.block_number);
        if self.store.reanchor(job, reason.to_owned()).await? {
            tracing::warn!(
                job.id = job_id,
                job.kind = %kind,
                block,
                reason,
                "anchored entry missing from the chain; sending it again"
            );
            report.reanchored.push(job_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use meditrustal_crypto::sha256;
    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{MockChainEvents, MockWatchStore};

    fn policy(confirmations: u64) -> WatchPolicy {
        WatchPolicy {
            confirmations,
            start_block: 1,
            page_blocks: 100,
        }
    }

    fn block_hash(number: u64) -> Digest {
        sha256(format!("block {number}").as_bytes())
    }

    fn entry(name: &str) -> EntryKey {
        EntryKey {
            kind: "anchor_record".into(),
            key: sha256(name.as_bytes()),
        }
    }

    fn event(name: &str, block: u64) -> ChainEvent {
        ChainEvent {
            entry: entry(name),
            tx_hash: sha256(format!("tx {name}").as_bytes()),
            block: BlockRef {
                number: block,
                hash: block_hash(block),
            },
            log_index: 0,
        }
    }

    fn job(id: i64, name: &str, block: u64) -> AnchoredJob {
        AnchoredJob {
            job_id: id,
            entry: entry(name),
            tx_hash: sha256(format!("tx {name}").as_bytes()),
            block_number: block,
        }
    }

    fn chain(head: u64, events: Vec<ChainEvent>) -> MockChainEvents {
        let mut chain = MockChainEvents::new();
        chain.expect_head_block().returning(move || Ok(head));
        chain
            .expect_block_hash()
            .returning(move |number| Ok((number <= head).then(|| block_hash(number))));
        chain.expect_events().returning(move |from, to| {
            Ok(events
                .iter()
                .filter(|event| (from..=to).contains(&event.block.number))
                .cloned()
                .collect())
        });
        chain
    }

    fn watcher(chain: MockChainEvents, store: MockWatchStore, confirmations: u64) -> ChainWatcher {
        ChainWatcher::new(Arc::new(chain), Arc::new(store), policy(confirmations))
    }

    #[tokio::test]
    async fn first_round_confirms_jobs_and_saves_progress() {
        let chain = chain(10, vec![event("a", 4)]);
        let mut store = MockWatchStore::new();
        store.expect_progress().times(1).returning(|| Ok(None));
        store
            .expect_anchored_above()
            .with(eq(10))
            .times(1)
            .returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .with(eq(1), eq(8))
            .times(1)
            .returning(|_, _| Ok(vec![job(1, "a", 4)]));
        store
            .expect_save_progress()
            .with(eq(BlockRef {
                number: 8,
                hash: block_hash(8),
            }))
            .times(1)
            .returning(|_| Ok(()));
        store.expect_reanchor().times(0);
        store.expect_report_unmatched().times(0);

        let report = watcher(chain, store, 2).run_once().await.unwrap();

        assert_eq!(report.from_block, Some(1));
        assert_eq!(report.to_block, Some(8));
        assert_eq!(report.events, 1);
        assert_eq!(report.confirmed, 1);
        assert!(!report.rewound);
    }

    #[tokio::test]
    async fn job_without_event_is_reanchored() {
        let chain = chain(10, vec![event("a", 4)]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .returning(|_, _| Ok(vec![job(1, "a", 4), job(2, "lost", 5)]));
        store.expect_save_progress().returning(|_| Ok(()));
        store
            .expect_reanchor()
            .with(
                eq(job(2, "lost", 5)),
                eq("the chain has no event for its entry".to_owned()),
            )
            .times(1)
            .returning(|_, _| Ok(true));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert_eq!(report.reanchored, vec![2]);
        assert_eq!(report.confirmed, 1);
    }

    #[tokio::test]
    async fn event_without_job_is_reported() {
        let chain = chain(6, vec![event("a", 4), event("stranger", 5)]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .returning(|_, _| Ok(vec![job(1, "a", 4)]));
        store
            .expect_known_entries()
            .with(eq(vec![entry("stranger")]))
            .times(1)
            .returning(|_| Ok(vec![]));
        store
            .expect_report_unmatched()
            .with(eq(vec![event("stranger", 5)]))
            .times(1)
            .returning(|_| Ok(()));
        store.expect_save_progress().returning(|_| Ok(()));
        store.expect_reanchor().times(0);

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert_eq!(report.unmatched, vec![event("stranger", 5)]);
    }

    #[tokio::test]
    async fn event_of_a_pending_job_is_not_reported() {
        let chain = chain(6, vec![event("pending", 5)]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store.expect_anchored_jobs().returning(|_, _| Ok(vec![]));
        store.expect_known_entries().times(1).returning(Ok);
        store.expect_report_unmatched().times(0);
        store.expect_save_progress().returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert!(report.unmatched.is_empty());
    }

    #[tokio::test]
    async fn changed_block_hash_rewinds_to_start_block() {
        let chain = chain(10, vec![]);
        let mut store = MockWatchStore::new();
        store.expect_progress().times(1).returning(|| {
            Ok(Some(BlockRef {
                number: 7,
                hash: sha256(b"a block of the old chain"),
            }))
        });
        store
            .expect_rewind()
            .with(eq(1))
            .times(1)
            .returning(|_| Ok(()));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .with(eq(1), eq(10))
            .times(1)
            .returning(|_, _| Ok(vec![]));
        store.expect_save_progress().times(1).returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert!(report.rewound);
        assert_eq!(report.from_block, Some(1));
    }

    #[tokio::test]
    async fn unchanged_progress_resumes_after_it() {
        let chain = chain(10, vec![]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| {
            Ok(Some(BlockRef {
                number: 7,
                hash: block_hash(7),
            }))
        });
        store.expect_rewind().times(0);
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .with(eq(8), eq(10))
            .times(1)
            .returning(|_, _| Ok(vec![]));
        store.expect_save_progress().times(1).returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert!(!report.rewound);
        assert_eq!(report.from_block, Some(8));
    }

    #[tokio::test]
    async fn progress_above_a_shorter_chain_rewinds_and_reanchors_jobs_above_head() {
        let chain = chain(3, vec![]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| {
            Ok(Some(BlockRef {
                number: 9,
                hash: block_hash(9),
            }))
        });
        store
            .expect_rewind()
            .with(eq(1))
            .times(1)
            .returning(|_| Ok(()));
        store
            .expect_anchored_above()
            .with(eq(3))
            .times(1)
            .returning(|_| Ok(vec![job(5, "gone", 8)]));
        store
            .expect_reanchor()
            .with(
                eq(job(5, "gone", 8)),
                eq("its block is above the chain head".to_owned()),
            )
            .times(1)
            .returning(|_, _| Ok(true));
        store.expect_anchored_jobs().returning(|_, _| Ok(vec![]));
        store.expect_save_progress().returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert!(report.rewound);
        assert_eq!(report.reanchored, vec![5]);
    }

    #[tokio::test]
    async fn entry_in_another_transaction_moves_the_job() {
        let mut moved = event("a", 6);
        moved.tx_hash = sha256(b"the resend");
        let chain = chain(6, vec![moved.clone()]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store
            .expect_anchored_jobs()
            .with(eq(1), eq(6))
            .returning(|_, _| Ok(vec![job(3, "a", 6)]));
        store
            .expect_move_anchor()
            .with(
                eq(job(3, "a", 6)),
                eq(ChainAnchor {
                    tx_hash: sha256(b"the resend"),
                    block_number: 6,
                }),
            )
            .times(1)
            .returning(|_, _| Ok(()));
        store.expect_save_progress().returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert_eq!(report.moved, vec![3]);
    }

    #[tokio::test]
    async fn unconfirmed_blocks_are_left_for_later() {
        let chain = chain(1, vec![]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        store.expect_anchored_jobs().times(0);
        store.expect_save_progress().times(0);

        let report = watcher(chain, store, 2).run_once().await.unwrap();

        assert_eq!(report.from_block, None);
    }

    #[tokio::test]
    async fn long_ranges_are_read_in_pages() {
        let chain = chain(250, vec![]);
        let mut store = MockWatchStore::new();
        store.expect_progress().returning(|| Ok(None));
        store.expect_anchored_above().returning(|_| Ok(vec![]));
        let mut ranges = mockall::Sequence::new();
        for (from, to) in [(1, 100), (101, 200), (201, 250)] {
            store
                .expect_anchored_jobs()
                .with(eq(from), eq(to))
                .times(1)
                .in_sequence(&mut ranges)
                .returning(|_, _| Ok(vec![]));
        }
        store.expect_save_progress().times(3).returning(|_| Ok(()));

        let report = watcher(chain, store, 0).run_once().await.unwrap();

        assert_eq!(report.to_block, Some(250));
    }
}
