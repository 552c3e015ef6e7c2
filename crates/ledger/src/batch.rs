//! Batch anchoring: gathers waiting record anchors and turns them into one
//! Merkle root, queued as one `anchor_batch` outbox job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;
use uuid::Uuid;

use crate::merkle::{leaf_hash, MerkleTree, Salt};
use crate::ports::{BatchStore, BatchStoreError};

/// The record anchor jobs waiting for a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Number of waiting jobs.
    pub count: u64,
    /// When the oldest waiting job was queued; `None` when none waits.
    pub oldest: Option<DateTime<Utc>>,
}

/// A claimed record anchor job with what its leaf commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingAnchor {
    /// Outbox job id.
    pub job_id: i64,
    /// The record.
    pub record_id: Uuid,
    /// The record's anchor hash, the leaf's commitment.
    pub anchor_hash: Digest,
    /// The record's salt.
    pub salt: Salt,
}

/// One record's place in a new batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchMember {
    /// The record's anchor job, marked done when the batch is formed.
    pub job_id: i64,
    /// The record.
    pub record_id: Uuid,
    /// Position of its leaf, from 0.
    pub leaf_index: u32,
    /// Sibling hashes from its leaf up to the root.
    pub siblings: Vec<Digest>,
}

/// A batch to store: its root and its members, in leaf order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBatch {
    /// Merkle root over the members' leaves.
    pub root: Digest,
    /// The members, leaf 0 first.
    pub members: Vec<BatchMember>,
}

impl NewBatch {
    /// Number of leaves.
    pub fn leaf_count(&self) -> usize {
        self.members.len()
    }
}

/// When a batch is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Maximum records in one batch; a batch forms at once when this many
    /// wait.
    pub max_records: u32,
    /// Maximum time the oldest waiting record waits for more to join.
    pub max_wait: Duration,
    /// How long claimed jobs stay leased to this worker.
    pub lease: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_records: 1024,
            max_wait: Duration::from_millis(500),
            lease: Duration::from_secs(60),
        }
    }
}

/// What one round of [`BatchAnchorer::run_once`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchRound {
    /// No record waits.
    Idle,
    /// Records wait, but neither the size nor the time limit is reached;
    /// run again at `due_at`.
    Waiting {
        /// When the oldest record's wait ends.
        due_at: DateTime<Utc>,
    },
    /// A batch was formed and its `anchor_batch` job queued.
    Formed {
        /// The batch id.
        batch_id: i64,
        /// Number of records in it.
        leaf_count: usize,
    },
}

/// Forms batches from waiting record anchor jobs. Safe to run in several
/// processes at once: claims are leased, and forming checks that every
/// claimed job still waits.
pub struct BatchAnchorer {
    store: Arc<dyn BatchStore>,
    policy: BatchPolicy,
}

impl BatchAnchorer {
    /// Builds an anchorer over `store`.
    pub fn new(store: Arc<dyn BatchStore>, policy: BatchPolicy) -> Self {
        Self { store, policy }
    }

    /// Forms one batch if `max_records` records wait or the oldest has
    /// waited `max_wait`. Errors: [`BatchStoreError`].
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<BatchRound, BatchStoreError> {
        let summary = self.store.pending_anchors().await?;
        let Some(oldest) = summary.oldest.filter(|_| summary.count > 0) else {
            return Ok(BatchRound::Idle);
        };
        let due_at = oldest + self.policy.max_wait;
        if summary.count < u64::from(self.policy.max_records) && due_at > now {
            return Ok(BatchRound::Waiting { due_at });
        }

        let claimed = self
            .store
            .claim_anchors(self.policy.max_records, self.policy.lease)
            .await?;
        let Some(batch) = build_batch(&claimed) else {
            return Ok(BatchRound::Idle);
        };

        let batch_id = self.store.form_batch(&batch).await?;
        tracing::info!(
            batch.id = batch_id,
            batch.root = %batch.root,
            batch.leaves = batch.leaf_count(),
            "record batch formed"
        );
        Ok(BatchRound::Formed {
            batch_id,
            leaf_count: batch.leaf_count(),
        })
    }
}

/// Builds the tree over the anchors' leaves in claim order, and each
/// member's proof. Returns `None` for no anchors.
pub fn build_batch(anchors: &[PendingAnchor]) -> Option<NewBatch> {
    let leaves = anchors
        .iter()
        .map(|anchor| leaf_hash(&anchor.salt, &anchor.anchor_hash))
        .collect();
    let tree = MerkleTree::new(leaves)?;

    let members = anchors
        .iter()
        .enumerate()
        .map(|(index, anchor)| BatchMember {
            job_id: anchor.job_id,
            record_id: anchor.record_id,
            leaf_index: u32::try_from(index).unwrap_or(u32::MAX),
            siblings: tree
                .proof(index)
                .map(|proof| proof.siblings)
                .unwrap_or_default(),
        })
        .collect();
    Some(NewBatch {
        root: tree.root(),
        members,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use mockall::predicate::eq;

    use super::*;
    use crate::merkle::MerkleProof;
    use crate::ports::MockBatchStore;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
    }

    fn policy() -> BatchPolicy {
        BatchPolicy {
            max_records: 4,
            max_wait: Duration::from_millis(500),
            lease: Duration::from_secs(30),
        }
    }

    fn anchor(n: u8) -> PendingAnchor {
        PendingAnchor {
            job_id: i64::from(n),
            record_id: Uuid::from_u128(u128::from(n)),
            anchor_hash: Digest::from_bytes([0x10 + n; 32]),
            salt: Salt::from_bytes([n; 32]),
        }
    }

    #[tokio::test]
    async fn no_waiting_record_is_idle() {
        let mut store = MockBatchStore::new();
        store
            .expect_pending_anchors()
            .times(1)
            .returning(|| Ok(PendingSummary::default()));
        store.expect_claim_anchors().times(0);

        let round = BatchAnchorer::new(Arc::new(store), policy())
            .run_once(now())
            .await;

        assert_eq!(round, Ok(BatchRound::Idle));
    }

    #[tokio::test]
    async fn young_small_batch_waits_for_more() {
        let oldest = now() - chrono::TimeDelta::milliseconds(200);
        let mut store = MockBatchStore::new();
        store.expect_pending_anchors().times(1).returning(move || {
            Ok(PendingSummary {
                count: 3,
                oldest: Some(oldest),
            })
        });
        store.expect_claim_anchors().times(0);

        let round = BatchAnchorer::new(Arc::new(store), policy())
            .run_once(now())
            .await;

        assert_eq!(
            round,
            Ok(BatchRound::Waiting {
                due_at: oldest + chrono::TimeDelta::milliseconds(500)
            })
        );
    }

    #[tokio::test]
    async fn full_batch_forms_at_once_with_proofs() {
        let mut store = MockBatchStore::new();
        store.expect_pending_anchors().times(1).returning(|| {
            Ok(PendingSummary {
                count: 4,
                oldest: Some(now()),
            })
        });
        store
            .expect_claim_anchors()
            .with(eq(4), eq(Duration::from_secs(30)))
            .times(1)
            .returning(|_, _| Ok((1..=3).map(anchor).collect()));
        store
            .expect_form_batch()
            .withf(|batch| {
                let leaves: Vec<Digest> = (1..=3)
                    .map(|n| leaf_hash(&anchor(n).salt, &anchor(n).anchor_hash))
                    .collect();
                let root = MerkleTree::new(leaves.clone()).unwrap().root();
                batch.root == root
                    && batch.members.iter().enumerate().all(|(index, member)| {
                        let proof = MerkleProof {
                            leaf_index: u64::from(member.leaf_index),
                            leaf_count: 3,
                            siblings: member.siblings.clone(),
                        };
                        member.leaf_index as usize == index
                            && member.job_id == index as i64 + 1
                            && proof.root_for(&leaves[index]) == Ok(root)
                    })
            })
            .times(1)
            .returning(|_| Ok(9));

        let round = BatchAnchorer::new(Arc::new(store), policy())
            .run_once(now())
            .await;

        assert_eq!(
            round,
            Ok(BatchRound::Formed {
                batch_id: 9,
                leaf_count: 3
            })
        );
    }

    #[tokio::test]
    async fn old_record_forms_a_batch_of_one() {
        let mut store = MockBatchStore::new();
        store.expect_pending_anchors().times(1).returning(|| {
            Ok(PendingSummary {
                count: 1,
                oldest: Some(now() - chrono::TimeDelta::seconds(1)),
            })
        });
        store
            .expect_claim_anchors()
            .times(1)
            .returning(|_, _| Ok(vec![anchor(7)]));
        store
            .expect_form_batch()
            .withf(|batch| {
                batch.root == leaf_hash(&anchor(7).salt, &anchor(7).anchor_hash)
                    && batch.members[0].siblings.is_empty()
            })
            .times(1)
            .returning(|_| Ok(1));

        let round = BatchAnchorer::new(Arc::new(store), policy())
            .run_once(now())
            .await;

        assert_eq!(
            round,
            Ok(BatchRound::Formed {
                batch_id: 1,
                leaf_count: 1
            })
        );
    }

    #[tokio::test]
    async fn conflict_while_forming_is_returned() {
        let mut store = MockBatchStore::new();
        store.expect_pending_anchors().times(1).returning(|| {
            Ok(PendingSummary {
                count: 9,
                oldest: Some(now()),
            })
        });
        store
            .expect_claim_anchors()
            .times(1)
            .returning(|_, _| Ok(vec![anchor(1)]));
        store
            .expect_form_batch()
            .times(1)
            .returning(|_| Err(BatchStoreError::Conflict("job 1 is done".into())));

        let round = BatchAnchorer::new(Arc::new(store), policy())
            .run_once(now())
            .await;

        assert_eq!(
            round,
            Err(BatchStoreError::Conflict("job 1 is done".into()))
        );
    }
}
