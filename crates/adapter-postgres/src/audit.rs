//! [`AuditStore`] over the `audit_events` and `audit_anchors` tables.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::dsl::max;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use meditrustal_audit::{
    chain_after, Action, Actor, AuditEntry, AuditEvent, AuditStore, AuditStoreError, ChainHead,
    EventQuery, Outcome, ReasonCode, RequestId,
};
use meditrustal_identity::{Role, UserId};
use meditrustal_ledger::{AuditHeadAnchor, LedgerJob};
use uuid::Uuid;

use crate::audit_group::GroupCommit;
use crate::convert;
use crate::error::{DatabaseError, QueryError};
use crate::outbox::{JobTarget, NewJobRow};
use crate::pool::Pool;
use crate::schema::{audit_anchors, audit_events};

/// Advisory lock key that serializes appends to the audit chain. Taken with
/// `pg_advisory_xact_lock`, so it is released when the appending
/// transaction ends. The value is arbitrary but fixed.
const APPEND_LOCK_KEY: i64 = 0x4d54_414c_6175_6474;

/// Rows per INSERT statement: 13 columns each, well below PostgreSQL's
/// limit of 65 535 bind parameters per statement.
const INSERT_CHUNK_ROWS: usize = 1000;

/// PostgreSQL implementation of [`AuditStore`]. Clones share the pool and
/// the queue of appends waiting to be committed together.
#[derive(Clone, Debug)]
pub struct PgAuditStore {
    pool: Pool,
    group: Arc<GroupCommit>,
}

/// Ways in which the connected database role could change or delete audit
/// events despite the triggers. `gaps` is empty when the role can only
/// read and append.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOnlyGaps {
    /// The role that the pool connects as.
    pub role: String,
    /// Each way the role can bypass the append-only rule, as a sentence.
    pub gaps: Vec<String>,
}

impl PgAuditStore {
    /// Builds the store over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            group: Arc::new(GroupCommit::default()),
        }
    }

    /// Checks whether the connected role could bypass the append-only
    /// triggers: a superuser or the table owner can disable them, and a
    /// role with UPDATE, DELETE or TRUNCATE relies on the triggers alone.
    /// Errors: [`DatabaseError::Unavailable`].
    pub async fn append_only_gaps(&self) -> Result<AppendOnlyGaps, DatabaseError> {
        let row = self
            .pool
            .run(|conn| {
                diesel::sql_query(PRIVILEGES_SQL)
                    .get_result::<PrivilegeRow>(conn)
                    .map_err(QueryError::from)
            })
            .await?;

        let mut gaps = Vec::new();
        if row.is_superuser {
            gaps.push("it is a superuser and can disable the audit triggers".to_owned());
        }
        if row.owns_table {
            gaps.push("it owns audit_events and can disable the audit triggers".to_owned());
        }
        for (held, privilege) in [
            (row.can_update, "UPDATE"),
            (row.can_delete, "DELETE"),
            (row.can_truncate, "TRUNCATE"),
        ] {
            if held {
                gaps.push(format!("it holds {privilege} on audit_events"));
            }
        }
        Ok(AppendOnlyGaps {
            role: row.role_name,
            gaps,
        })
    }
}

const PRIVILEGES_SQL: &str = "\
SELECT current_user::text AS role_name,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_has_role(current_user, (SELECT relowner FROM pg_class
                                  WHERE oid = 'audit_events'::regclass), 'USAGE') AS owns_table,
       has_table_privilege('audit_events', 'UPDATE') AS can_update,
       has_table_privilege('audit_events', 'DELETE') AS can_delete,
       has_table_privilege('audit_events', 'TRUNCATE') AS can_truncate";

#[derive(QueryableByName)]
struct PrivilegeRow {
    #[diesel(sql_type = Text)]
    role_name: String,
    #[diesel(sql_type = Bool)]
    is_superuser: bool,
    #[diesel(sql_type = Bool)]
    owns_table: bool,
    #[diesel(sql_type = Bool)]
    can_update: bool,
    #[diesel(sql_type = Bool)]
    can_delete: bool,
    #[diesel(sql_type = Bool)]
    can_truncate: bool,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewEventRow {
    seq: i64,
    occurred_at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_role: Option<&'static str>,
    action: &'static str,
    outcome: &'static str,
    reason: Option<String>,
    patient_id: Option<Uuid>,
    record_id: Option<Uuid>,
    request_id: Option<String>,
    client_ip: Option<String>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl NewEventRow {
    fn new(event: &AuditEvent) -> Result<Self, QueryError> {
        let entry = &event.entry;
        Ok(Self {
            seq: seq_to_column(event.seq)?,
            occurred_at: entry.occurred_at,
            actor_id: entry.actor.map(|actor| actor.user_id.0),
            actor_role: entry.actor.map(|actor| actor.role.as_str()),
            action: entry.action.as_str(),
            outcome: entry.outcome.as_str(),
            reason: entry.reason.as_ref().map(|r| r.as_str().to_owned()),
            patient_id: entry.patient_id.map(|id| id.0),
            record_id: entry.record_id,
            request_id: entry.request_id.as_ref().map(|id| id.as_str().to_owned()),
            client_ip: entry.client_ip.map(|ip| ip.to_string()),
            prev_hash: event.prev_hash.as_bytes().to_vec(),
            hash: event.hash.as_bytes().to_vec(),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
struct EventRow {
    seq: i64,
    occurred_at: DateTime<Utc>,
    actor_id: Option<Uuid>,
    actor_role: Option<String>,
    action: String,
    outcome: String,
    reason: Option<String>,
    patient_id: Option<Uuid>,
    record_id: Option<Uuid>,
    request_id: Option<String>,
    client_ip: Option<String>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl EventRow {
    /// Converts the row without judging it: the verifier, not this
    /// conversion, decides whether the stored values still match the hash.
    /// Only values that no domain type can hold are errors.
    fn into_event(self) -> Result<AuditEvent, QueryError> {
        let seq = self.seq;
        let invalid =
            |column: &str, problem: &str| convert::invalid("audit_events", seq, column, problem);

        let actor = match (self.actor_id, self.actor_role.as_deref()) {
            (None, None) => None,
            (Some(id), Some(role)) => Some(Actor {
                user_id: UserId(id),
                role: Role::parse(role)
                    .ok_or_else(|| invalid("actor_role", "has an unknown value"))?,
            }),
            _ => {
                return Err(invalid(
                    "actor_id and actor_role",
                    "are not both set or both null",
                ))
            }
        };
        let action = Action::parse(&self.action)
            .ok_or_else(|| invalid("action", "has a value this build does not know"))?;
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| invalid("outcome", "has an unknown value"))?;
        let reason = self
            .reason
            .map(|text| {
                ReasonCode::parse(&text).ok_or_else(|| invalid("reason", "is not a reason code"))
            })
            .transpose()?;
        let request_id = self
            .request_id
            .map(|text| {
                RequestId::parse(&text).ok_or_else(|| invalid("request_id", "is not a request id"))
            })
            .transpose()?;
        let client_ip = self
            .client_ip
            .map(|text| {
                text.parse()
                    .map_err(|_| invalid("client_ip", "is not an IP address"))
            })
            .transpose()?;

        let entry = AuditEntry {
            occurred_at: self.occurred_at,
            actor,
            action,
            outcome,
            reason,
            patient_id: self.patient_id.map(UserId),
            record_id: self.record_id,
            request_id,
            client_ip,
        };
        Ok(AuditEvent {
            seq: seq_from_column(seq)?,
            entry,
            prev_hash: convert::digest(&self.prev_hash, "audit_events", seq, "prev_hash")?,
            hash: convert::digest(&self.hash, "audit_events", seq, "hash")?,
        })
    }
}

fn seq_to_column(seq: u64) -> Result<i64, QueryError> {
    i64::try_from(seq).map_err(|_| {
        QueryError::Conversion(format!("sequence number {seq} does not fit in bigint"))
    })
}

fn seq_from_column(seq: i64) -> Result<u64, QueryError> {
    u64::try_from(seq).map_err(|_| convert::invalid("audit_events", seq, "seq", "is negative"))
}

/// Appends `entries` after the stored head in one transaction that holds
/// the append lock from reading the head until the commit.
pub(crate) fn append_in_transaction(
    conn: &mut PgConnection,
    entries: &[AuditEntry],
) -> Result<Vec<AuditEvent>, QueryError> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<BigInt, _>(APPEND_LOCK_KEY)
            .execute(conn)?;
        let mut head = stored_head(conn)?;

        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            let event = chain_after(head.as_ref(), entry.clone());
            head = Some(event.head());
            events.push(event);
        }
        let rows = events
            .iter()
            .map(NewEventRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in rows.chunks(INSERT_CHUNK_ROWS) {
            diesel::insert_into(audit_events::table)
                .values(chunk)
                .execute(conn)?;
        }
        Ok(events)
    })
}

/// Reads the head of the chain as stored: the row with the highest
/// sequence number.
fn stored_head(conn: &mut PgConnection) -> Result<Option<ChainHead>, QueryError> {
    let row: Option<(i64, Vec<u8>)> = audit_events::table
        .select((audit_events::seq, audit_events::hash))
        .order(audit_events::seq.desc())
        .first(conn)
        .optional()?;
    row.map(|(seq, hash)| {
        Ok(ChainHead {
            seq: seq_from_column(seq)?,
            hash: convert::digest(&hash, "audit_events", seq, "hash")?,
        })
    })
    .transpose()
}

#[async_trait]
impl AuditStore for PgAuditStore {
    /// Takes the append lock, reads the head, chains every entry after it
    /// and inserts them, all in one transaction. Concurrent appends wait
    /// for the lock, so each one reads the head the previous one committed.
    /// Appends of this store that arrive while one is being written are
    /// committed together in the next transaction (see `audit_group`).
    async fn append(&self, entries: &[AuditEntry]) -> Result<Vec<AuditEvent>, AuditStoreError> {
        self.group
            .append(&self.pool, entries, append_in_transaction)
            .await
    }

    async fn head(&self) -> Result<Option<ChainHead>, AuditStoreError> {
        Ok(self.pool.run(stored_head).await?)
    }

    async fn events_after(
        &self,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, AuditStoreError> {
        let after = seq_to_column(after_seq)?;
        let events = self
            .pool
            .run(move |conn| {
                let rows: Vec<EventRow> = audit_events::table
                    .filter(audit_events::seq.gt(after))
                    .order(audit_events::seq.asc())
                    .limit(i64::from(limit))
                    .select(EventRow::as_select())
                    .load(conn)?;
                rows.into_iter().map(EventRow::into_event).collect()
            })
            .await?;
        Ok(events)
    }

    async fn search(&self, query: &EventQuery) -> Result<Vec<AuditEvent>, AuditStoreError> {
        let query = query.clone();
        let before = query.before_seq.map(seq_to_column).transpose()?;
        let events = self
            .pool
            .run(move |conn| {
                let filter = &query.filter;
                let mut select = audit_events::table
                    .select(EventRow::as_select())
                    .order(audit_events::seq.desc())
                    .limit(i64::from(query.limit))
                    .into_boxed();
                if let Some(before) = before {
                    select = select.filter(audit_events::seq.lt(before));
                }
                if let Some(actor) = filter.actor_id {
                    select = select.filter(audit_events::actor_id.eq(actor.0));
                }
                if let Some(patient) = filter.patient_id {
                    select = select.filter(audit_events::patient_id.eq(patient.0));
                }
                if let Some(record) = filter.record_id {
                    select = select.filter(audit_events::record_id.eq(record));
                }
                if let Some(action) = filter.action {
                    select = select.filter(audit_events::action.eq(action.as_str()));
                }
                if let Some(outcome) = filter.outcome {
                    select = select.filter(audit_events::outcome.eq(outcome.as_str()));
                }
                if let Some(from) = filter.from {
                    select = select.filter(audit_events::occurred_at.ge(from));
                }
                if let Some(to) = filter.to {
                    select = select.filter(audit_events::occurred_at.lt(to));
                }
                let rows: Vec<EventRow> = select.load(conn)?;
                rows.into_iter().map(EventRow::into_event).collect()
            })
            .await?;
        Ok(events)
    }

    async fn latest_anchor_request(&self) -> Result<Option<u64>, AuditStoreError> {
        let latest = self
            .pool
            .run(|conn| {
                let seq: Option<i64> = audit_anchors::table
                    .select(max(audit_anchors::seq))
                    .get_result(conn)?;
                seq.map(seq_from_column).transpose()
            })
            .await?;
        Ok(latest)
    }

    /// Inserts the `audit_anchors` row and, only when it is new, the outbox
    /// job, in one transaction.
    async fn request_anchor(&self, head: &AuditHeadAnchor) -> Result<bool, AuditStoreError> {
        let seq = seq_to_column(head.seq)?;
        let head_hash = head.head_hash.as_bytes().to_vec();
        let job = NewJobRow::new(
            &LedgerJob::AnchorAuditHead(*head),
            JobTarget::AuditAnchor(seq),
        )?;
        let inserted = self
            .pool
            .run(move |conn| {
                conn.transaction(|conn| {
                    let inserted = diesel::insert_into(audit_anchors::table)
                        .values((
                            audit_anchors::seq.eq(seq),
                            audit_anchors::head_hash.eq(head_hash),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)?;
                    if inserted == 0 {
                        return Ok(false);
                    }
                    job.insert(conn)?;
                    Ok(true)
                })
            })
            .await?;
        Ok(inserted)
    }
}
