//! Group commit of audit appends. Appends to the chain are serialized (by
//! the advisory lock), so one transaction per request makes every audited
//! request wait for all earlier commits in turn. Here, appends that arrive
//! while a transaction is being written queue up, and the next writer
//! commits all of them in one transaction. Each caller still returns only
//! after its own events are committed.

use std::sync::{Arc, Mutex, PoisonError};

use meditrustal_audit::{AuditEntry, AuditEvent, AuditStoreError};
use tokio::sync::oneshot;

use crate::error::QueryError;
use crate::pool::Pool;

/// Most appends committed in one transaction; later ones wait for the
/// next. Bounds the transaction's size and the wait of the first caller.
const MAX_GROUP: usize = 256;

type Reply = Result<Vec<AuditEvent>, AuditStoreError>;

/// One caller's entries and where its result goes.
struct PendingAppend {
    entries: Vec<AuditEntry>,
    reply: oneshot::Sender<Reply>,
}

/// A group taken from the queue, shared by the writer and the database
/// closure: whichever runs takes it, so that each reply is sent once.
type Group = Arc<Mutex<Option<Vec<PendingAppend>>>>;

/// Appends waiting for a writer, and the writer's turn.
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<PendingAppend>>,
    turn: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Appends `entries` through `write`, which must append all entries it
    /// is given in one transaction, in order, and return their events.
    ///
    /// The caller queues its entries and waits for the writer's turn. When
    /// its turn comes, it writes whatever is queued, its own entries
    /// unless an earlier writer took them. If a group is dropped before
    /// its transaction ran (the writing caller was cancelled), its callers
    /// queue their entries again. A transaction that ran always replies.
    pub(crate) async fn append(
        &self,
        pool: &Pool,
        entries: &[AuditEntry],
        write: fn(&mut diesel::PgConnection, &[AuditEntry]) -> Result<Vec<AuditEvent>, QueryError>,
    ) -> Reply {
        loop {
            let (reply, receiver) = oneshot::channel();
            self.lock_queue().push(PendingAppend {
                entries: entries.to_vec(),
                reply,
            });
            {
                let _turn = self.turn.lock().await;
                let group = self.take_group();
                if !group.is_empty() {
                    write_group(pool, group, write).await;
                }
            }
            if let Ok(result) = receiver.await {
                return result;
            }
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Vec<PendingAppend>> {
        // A panic while the lock is held cannot leave the Vec half-changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_group(&self) -> Vec<PendingAppend> {
        let mut queue = self.lock_queue();
        let count = queue.len().min(MAX_GROUP);
        queue.drain(..count).collect()
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("queued", &self.lock_queue().len())
            .finish()
    }
}

/// Commits `group` in one transaction and replies to each caller. When the
/// transaction fails and contains several callers, each is retried in its own
/// transaction, so that one caller's bad entry fails only that caller.
async fn write_group(
    pool: &Pool,
    group: Vec<PendingAppend>,
    write: fn(&mut diesel::PgConnection, &[AuditEntry]) -> Result<Vec<AuditEvent>, QueryError>,
) {
    let shared: Group = Arc::new(Mutex::new(Some(group)));
    let in_closure = Arc::clone(&shared);
    let result = pool
        .run(move |conn| {
            let taken = in_closure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(group) = taken {
                commit_and_reply(conn, group, write);
            }
            Ok(())
        })
        .await;

    // The closure did not run (no connection): fail every caller, as a
    // single append would have failed.
    if let Err(error) = result {
        let error = AuditStoreError::from(error);
        let untouched = shared.lock().unwrap_or_else(PoisonError::into_inner).take();
        for pending in untouched.into_iter().flatten() {
            let _ = pending.reply.send(Err(error.clone()));
        }
    }
}

fn commit_and_reply(
    conn: &mut diesel::PgConnection,
    group: Vec<PendingAppend>,
    write: fn(&mut diesel::PgConnection, &[AuditEntry]) -> Result<Vec<AuditEvent>, QueryError>,
) {
    let all: Vec<AuditEntry> = group
        .iter()
        .flat_map(|pending| pending.entries.iter().cloned())
        .collect();
    match write(conn, &all) {
        Ok(events) => {
            let mut events = events.into_iter();
            for pending in group {
                let own: Vec<AuditEvent> = events.by_ref().take(pending.entries.len()).collect();
                let _ = pending.reply.send(Ok(own));
            }
        }
        Err(error) if group.len() == 1 => {
            let error = AuditStoreError::from(error);
            for pending in group {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
        Err(_) => {
            for pending in group {
                let result = write(conn, &pending.entries).map_err(Into::into);
                let _ = pending.reply.send(result);
            }
        }
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{TimeZone, Utc};
    use meditrustal_audit::{Action, Outcome};

    use super::*;
    use crate::audit::append_in_transaction;
    use crate::TestDatabase;

    fn entry(n: i64, outcome: Outcome) -> AuditEntry {
        let time = Utc.timestamp_micros(1_700_000_000_000_000 + n).unwrap();
        AuditEntry::new(Action::RecordRead, outcome, time)
    }

    /// Starts `count` appends of one entry each while `group` holds the
    /// writer's turn, so that all of them are queued before any is written.
    async fn queued_appends(
        group: &Arc<GroupCommit>,
        pool: &Pool,
        entries: Vec<AuditEntry>,
        write: fn(&mut diesel::PgConnection, &[AuditEntry]) -> Result<Vec<AuditEvent>, QueryError>,
    ) -> Vec<Reply> {
        let turn = group.turn.lock().await;
        let count = entries.len();
        let mut tasks = Vec::new();
        for entry in entries {
            let group = Arc::clone(group);
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                group.append(&pool, &[entry], write).await
            }));
        }
        while group.lock_queue().len() < count {
            tokio::task::yield_now().await;
        }
        drop(turn);

        let mut replies = Vec::new();
        for task in tasks {
            match task.await {
                Ok(reply) => replies.push(reply),
                Err(error) => panic!("an append task failed: {error}"),
            }
        }
        replies
    }

    static GROUP_WRITES: AtomicUsize = AtomicUsize::new(0);

    fn counting_write(
        conn: &mut diesel::PgConnection,
        entries: &[AuditEntry],
    ) -> Result<Vec<AuditEvent>, QueryError> {
        GROUP_WRITES.fetch_add(1, Ordering::SeqCst);
        append_in_transaction(conn, entries)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_appends_commit_in_one_transaction() {
        let db = TestDatabase::create().await.unwrap();
        let group = Arc::new(GroupCommit::default());
        let entries: Vec<AuditEntry> = (1..=5).map(|n| entry(n, Outcome::Success)).collect();

        let replies = queued_appends(&group, db.pool(), entries.clone(), counting_write).await;

        assert_eq!(GROUP_WRITES.load(Ordering::SeqCst), 1);
        let mut seqs = Vec::new();
        for (reply, entry) in replies.into_iter().zip(entries) {
            let events = reply.unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].entry, entry);
            seqs.push(events[0].seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }

    /// Fails any transaction that contains a `failed` entry, like a database
    /// error that one caller's entry causes.
    fn write_rejecting_failed(
        conn: &mut diesel::PgConnection,
        entries: &[AuditEntry],
    ) -> Result<Vec<AuditEvent>, QueryError> {
        if entries.iter().any(|entry| entry.outcome == Outcome::Failed) {
            return Err(QueryError::Conversion("rejected entry".into()));
        }
        append_in_transaction(conn, entries)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_group_fails_only_the_bad_caller() {
        let db = TestDatabase::create().await.unwrap();
        let group = Arc::new(GroupCommit::default());
        let entries = vec![
            entry(1, Outcome::Success),
            entry(2, Outcome::Failed),
            entry(3, Outcome::Success),
        ];

        let replies = queued_appends(&group, db.pool(), entries, write_rejecting_failed).await;

        // The tasks may queue in any order, so the good entries get
        // sequence numbers 1 and 2 in either order.
        let outcomes: Vec<Result<u64, AuditStoreError>> = replies
            .into_iter()
            .map(|reply| reply.map(|events| events[0].seq))
            .collect();
        assert_eq!(
            outcomes[1],
            Err(AuditStoreError::Unavailable("rejected entry".into()))
        );
        let mut good = vec![outcomes[0].clone(), outcomes[2].clone()];
        good.sort_by_key(|outcome| outcome.clone().unwrap_or(0));
        assert_eq!(good, vec![Ok(1), Ok(2)]);
    }
}
