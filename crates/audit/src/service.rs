use std::sync::Arc;

use meditrustal_identity::{Principal, Role};
use meditrustal_ledger::AuditHeadAnchor;

use crate::chain::{ChainBreak, ChainVerifier};
use crate::error::AuditError;
use crate::ports::{AuditAnchorLedger, AuditStore, AuditStoreError};
use crate::types::{
    AnchoredHead, AuditEntry, AuditEvent, ChainHead, EventFilter, EventPage, EventQuery,
};

/// Default and maximum page sizes of event listings.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// Events read per round trip while verifying.
const VERIFY_BATCH_SIZE: u32 = 1000;

/// Result of checking the whole stored chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Events checked and found intact, counted from event 1.
    pub events_checked: u64,
    /// The last stored event, if any.
    pub head: Option<ChainHead>,
    /// Number of heads anchored on-chain.
    pub anchors: usize,
    /// The anchor with the highest sequence number, if any.
    pub latest_anchor: Option<AnchoredHead>,
    /// The first problem, or `None` when the chain is intact.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    /// Returns whether every event and every anchor checked out.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Recording, listing, anchoring and verification of audit events.
pub struct AuditService {
    store: Arc<dyn AuditStore>,
}

impl AuditService {
    /// Builds the service over its store.
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        Self { store }
    }

    /// Appends one event to the chain. Callers must not carry out an
    /// action whose event could not be recorded. Errors:
    /// [`AuditError::Unavailable`].
    pub async fn record(&self, entry: AuditEntry) -> Result<AuditEvent, AuditError> {
        let mut events = self
            .store
            .append(std::slice::from_ref(&entry))
            .await
            .map_err(unavailable)?;
        events
            .pop()
            .ok_or_else(|| AuditError::Unavailable("the store appended no event".into()))
    }

    /// Lists the events about the caller's own records (reads, denied
    /// attempts, break-glass access, consent changes), newest first.
    /// Errors: [`AuditError::Invalid`] for a bad limit or cursor,
    /// [`AuditError::Unavailable`].
    pub async fn access_history(
        &self,
        caller: &Principal,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<EventPage, AuditError> {
        let filter = EventFilter {
            patient_id: Some(caller.user_id),
            ..EventFilter::default()
        };
        self.page(filter, limit, cursor).await
    }

    /// Lists all events that match `filter`, newest first. Only admins may
    /// search. Errors: [`AuditError::Forbidden`], [`AuditError::Invalid`],
    /// [`AuditError::Unavailable`].
    pub async fn search(
        &self,
        caller: &Principal,
        filter: EventFilter,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<EventPage, AuditError> {
        if caller.role != Role::Admin {
            return Err(AuditError::Forbidden(
                "only admins may search the audit log".into(),
            ));
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from >= to {
                return Err(AuditError::Invalid {
                    field: "to",
                    message: "must be later than from".into(),
                });
            }
        }
        self.page(filter, limit, cursor).await
    }

    async fn page(
        &self,
        filter: EventFilter,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<EventPage, AuditError> {
        let limit = parse_limit(limit)?;
        let before_seq = cursor.map(parse_cursor).transpose()?;

        let query = EventQuery {
            filter,
            before_seq,
            limit: limit + 1,
        };
        let mut events = self.store.search(&query).await.map_err(unavailable)?;

        let next = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|event| event.seq)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// Queues the current head for anchoring unless it, or a later event,
    /// was queued before. Returns the queued head. Errors:
    /// [`AuditError::Unavailable`].
    pub async fn request_head_anchor(&self) -> Result<Option<ChainHead>, AuditError> {
        let Some(head) = self.store.head().await.map_err(unavailable)? else {
            return Ok(None);
        };
        let latest = self
            .store
            .latest_anchor_request()
            .await
            .map_err(unavailable)?;
        if latest.is_some_and(|seq| seq >= head.seq) {
            return Ok(None);
        }

        let job = AuditHeadAnchor {
            seq: head.seq,
            head_hash: head.hash,
        };
        let queued = self.store.request_anchor(&job).await.map_err(unavailable)?;
        Ok(queued.then_some(head))
    }

    /// Checks the stored chain from event 1 against the chain rules and the
    /// heads anchored on `anchors`, and stops at the first problem. Errors:
    /// [`AuditError::AnchorsUnavailable`], [`AuditError::Unavailable`].
    pub async fn verify_chain(
        &self,
        anchors: &dyn AuditAnchorLedger,
    ) -> Result<ChainReport, AuditError> {
        self.verify_chain_with_progress(anchors, &mut |_| {}).await
    }

    /// Like [`AuditService::verify_chain`], calling `checked` with the
    /// number of events of each batch once it is checked, for progress
    /// displays. Errors: as [`AuditService::verify_chain`].
    pub async fn verify_chain_with_progress(
        &self,
        anchors: &dyn AuditAnchorLedger,
        checked: &mut (dyn FnMut(u64) + Send),
    ) -> Result<ChainReport, AuditError> {
        // Anchors first: an event appended after this read is then never
        // mistaken for one that an anchor expected and that is missing.
        let anchored = anchors
            .anchored_heads()
            .await
            .map_err(AuditError::AnchorsUnavailable)?;
        let latest_anchor = anchored.iter().max_by_key(|anchor| anchor.seq).copied();
        let mut report = ChainReport {
            events_checked: 0,
            head: None,
            anchors: anchored.len(),
            latest_anchor,
            first_break: None,
        };
        let mut verifier = ChainVerifier::new(anchored);

        let mut after_seq = 0;
        loop {
            let batch = self
                .store
                .events_after(after_seq, VERIFY_BATCH_SIZE)
                .await
                .map_err(unavailable)?;
            let Some(last) = batch.last() else {
                break;
            };
            after_seq = last.seq;
            report.head = Some(last.head());

            for event in &batch {
                if let Err(problem) = verifier.check(event) {
                    report.first_break = Some(problem);
                    return Ok(report);
                }
                report.events_checked += 1;
            }
            checked(batch.len() as u64);
        }

        if let Err(problem) = verifier.finish() {
            report.first_break = Some(problem);
        }
        Ok(report)
    }
}

fn parse_limit(limit: Option<u32>) -> Result<u32, AuditError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(value @ 1..=MAX_PAGE_SIZE) => Ok(value),
        Some(_) => Err(AuditError::Invalid {
            field: "limit",
            message: format!("use a page size from 1 to {MAX_PAGE_SIZE}"),
        }),
    }
}

fn parse_cursor(text: &str) -> Result<u64, AuditError> {
    text.parse::<u64>()
        .ok()
        .filter(|seq| *seq > 0)
        .ok_or_else(|| AuditError::Invalid {
            field: "cursor",
            message: "use the cursor from the previous page's Link header".into(),
        })
}

fn unavailable(error: AuditStoreError) -> AuditError {
    match error {
        AuditStoreError::Unavailable(message) => AuditError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use meditrustal_crypto::Digest;
    use meditrustal_identity::UserId;
    use meditrustal_ledger::LedgerError;
    use mockall::predicate::eq;
    use uuid::Uuid;

    use super::*;
    use crate::chain::chain_after;
    use crate::ports::{MockAuditAnchorLedger, MockAuditStore};
    use crate::types::{Action, Outcome};

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: UserId(Uuid::from_u128(5)),
            role,
        }
    }

    fn entry(n: i64) -> AuditEntry {
        let time = Utc.timestamp_micros(1_700_000_000_000_000 + n).unwrap();
        AuditEntry::new(Action::RecordRead, Outcome::Success, time)
    }

    fn chain(length: i64) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for n in 1..=length {
            let head = events.last().map(AuditEvent::head);
            events.push(chain_after(head.as_ref(), entry(n)));
        }
        events
    }

    #[tokio::test]
    async fn history_is_scoped_to_the_caller_and_pages() {
        let events = chain(3);
        let mut store = MockAuditStore::new();
        store
            .expect_search()
            .withf(|query| {
                query.filter
                    == EventFilter {
                        patient_id: Some(UserId(Uuid::from_u128(5))),
                        ..EventFilter::default()
                    }
                    && query.before_seq == Some(9)
                    && query.limit == 3
            })
            .times(1)
            .returning(move |_| Ok(events.iter().rev().cloned().collect()));

        let page = AuditService::new(Arc::new(store))
            .access_history(&principal(Role::Patient), Some(2), Some("9"))
            .await
            .unwrap();

        assert_eq!(
            page.events
                .iter()
                .map(|event| event.seq)
                .collect::<Vec<_>>(),
            vec![3, 2]
        );
        assert_eq!(page.next, Some(2));
    }

    #[tokio::test]
    async fn last_page_has_no_cursor() {
        let events = chain(2);
        let mut store = MockAuditStore::new();
        store
            .expect_search()
            .times(1)
            .returning(move |_| Ok(events.iter().rev().cloned().collect()));

        let page = AuditService::new(Arc::new(store))
            .access_history(&principal(Role::Patient), Some(2), None)
            .await
            .unwrap();

        assert_eq!(page.events.len(), 2);
        assert_eq!(page.next, None);
    }

    #[tokio::test]
    async fn invalid_limit_and_cursor_are_rejected() {
        let mut store = MockAuditStore::new();
        store.expect_search().times(0);
        let service = AuditService::new(Arc::new(store));
        let caller = principal(Role::Patient);

        for (limit, cursor, field) in [
            (Some(0), None, "limit"),
            (Some(201), None, "limit"),
            (None, Some("abc"), "cursor"),
            (None, Some("0"), "cursor"),
            (None, Some("-3"), "cursor"),
        ] {
            let error = service
                .access_history(&caller, limit, cursor)
                .await
                .unwrap_err();
            assert!(
                matches!(error, AuditError::Invalid { field: name, .. } if name == field),
                "{limit:?} {cursor:?}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn search_needs_admin() {
        let mut store = MockAuditStore::new();
        store.expect_search().times(0);
        let service = AuditService::new(Arc::new(store));

        for role in [Role::Patient, Role::Doctor] {
            let error = service
                .search(&principal(role), EventFilter::default(), None, None)
                .await
                .unwrap_err();
            assert_eq!(
                error,
                AuditError::Forbidden("only admins may search the audit log".into())
            );
        }
    }

    #[tokio::test]
    async fn search_rejects_empty_time_range() {
        let mut store = MockAuditStore::new();
        store.expect_search().times(0);
        let time = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let filter = EventFilter {
            from: Some(time),
            to: Some(time),
            ..EventFilter::default()
        };

        let error = AuditService::new(Arc::new(store))
            .search(&principal(Role::Admin), filter, None, None)
            .await
            .unwrap_err();

        assert_eq!(
            error,
            AuditError::Invalid {
                field: "to",
                message: "must be later than from".into()
            }
        );
    }

    #[tokio::test]
    async fn head_is_queued_once() {
        let head = ChainHead {
            seq: 12,
            hash: Digest::from_bytes([3; 32]),
        };
        let mut store = MockAuditStore::new();
        store
            .expect_head()
            .times(2)
            .returning(move || Ok(Some(head)));
        let mut latest = Some(None);
        store
            .expect_latest_anchor_request()
            .times(2)
            .returning(move || Ok(latest.take().unwrap_or(Some(12))));
        store
            .expect_request_anchor()
            .with(eq(AuditHeadAnchor {
                seq: 12,
                head_hash: Digest::from_bytes([3; 32]),
            }))
            .times(1)
            .returning(|_| Ok(true));
        let service = AuditService::new(Arc::new(store));

        assert_eq!(service.request_head_anchor().await, Ok(Some(head)));
        assert_eq!(service.request_head_anchor().await, Ok(None));
    }

    #[tokio::test]
    async fn empty_chain_queues_nothing() {
        let mut store = MockAuditStore::new();
        store.expect_head().times(1).returning(|| Ok(None));
        store.expect_request_anchor().times(0);

        let queued = AuditService::new(Arc::new(store))
            .request_head_anchor()
            .await;

        assert_eq!(queued, Ok(None));
    }

    #[tokio::test]
    async fn verify_reads_in_batches_and_reports_the_head() {
        let events = chain(3);
        let anchored = AnchoredHead {
            seq: 2,
            head_hash: events[1].hash,
            block_number: 40,
        };
        let mut store = MockAuditStore::new();
        let stored = events.clone();
        store
            .expect_events_after()
            .with(eq(0), eq(VERIFY_BATCH_SIZE))
            .times(1)
            .returning(move |_, _| Ok(stored.clone()));
        store
            .expect_events_after()
            .with(eq(3), eq(VERIFY_BATCH_SIZE))
            .times(1)
            .returning(|_, _| Ok(Vec::new()));
        let mut ledger = MockAuditAnchorLedger::new();
        ledger
            .expect_anchored_heads()
            .times(1)
            .returning(move || Ok(vec![anchored]));

        let report = AuditService::new(Arc::new(store))
            .verify_chain(&ledger)
            .await
            .unwrap();

        assert_eq!(
            report,
            ChainReport {
                events_checked: 3,
                head: Some(events[2].head()),
                anchors: 1,
                latest_anchor: Some(anchored),
                first_break: None,
            }
        );
        assert!(report.is_intact());
    }

    #[tokio::test]
    async fn verify_stops_at_the_first_break() {
        let mut events = chain(4);
        events[1].entry.outcome = Outcome::Failed;
        let mut store = MockAuditStore::new();
        store
            .expect_events_after()
            .times(1)
            .returning(move |_, _| Ok(events.clone()));
        let mut ledger = MockAuditAnchorLedger::new();
        ledger
            .expect_anchored_heads()
            .times(1)
            .returning(|| Ok(Vec::new()));

        let report = AuditService::new(Arc::new(store))
            .verify_chain(&ledger)
            .await
            .unwrap();

        assert_eq!(report.events_checked, 1);
        assert_eq!(
            report.first_break,
            Some(ChainBreak::FieldsChanged { seq: 2 })
        );
    }

    #[tokio::test]
    async fn verify_fails_when_anchors_cannot_be_read() {
        let mut store = MockAuditStore::new();
        store.expect_events_after().times(0);
        let mut ledger = MockAuditAnchorLedger::new();
        ledger
            .expect_anchored_heads()
            .times(1)
            .returning(|| Err(LedgerError::ContractsMissing));

        let result = AuditService::new(Arc::new(store))
            .verify_chain(&ledger)
            .await;

        assert_eq!(
            result,
            Err(AuditError::AnchorsUnavailable(
                LedgerError::ContractsMissing
            ))
        );
    }

    #[tokio::test]
    async fn record_maps_store_failure_to_unavailable() {
        let mut store = MockAuditStore::new();
        store
            .expect_append()
            .times(1)
            .returning(|_| Err(AuditStoreError::Unavailable("pool timed out".into())));

        let result = AuditService::new(Arc::new(store)).record(entry(1)).await;

        assert_eq!(
            result,
            Err(AuditError::Unavailable("pool timed out".into()))
        );
    }
}
