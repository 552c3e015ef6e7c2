-- The audit log: one row per audited action, hash-chained in seq order.
-- Each row's hash covers its own fields and prev_hash, the previous row's
-- hash (32 zero bytes for seq 1), so a changed, deleted or reordered row
-- breaks the chain (crates/audit/src/chain.rs has the exact encoding).
--
-- Rows are never updated or deleted. The triggers below reject UPDATE,
-- DELETE and TRUNCATE for every role, and the application should run as a
-- role with only SELECT and INSERT on this table (docs/audit.md). A
-- superuser or the table owner can still disable the triggers; the hash
-- chain and its on-chain anchors make such changes detectable.
--
-- No foreign keys: an event must outlive the user or record it names.
CREATE TABLE audit_events (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    occurred_at timestamptz NOT NULL,
    actor_id uuid NULL,
    actor_role text NULL CHECK (actor_role IN ('PATIENT', 'DOCTOR', 'ADMIN')),
    action text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    outcome text NOT NULL CHECK (outcome IN ('success', 'denied', 'not_found', 'failed')),
    -- A machine-readable code; the alphabet admits no free text.
    reason text NULL CHECK (reason ~ '^[a-z0-9_.:-]{1,128}$'),
    patient_id uuid NULL,
    record_id uuid NULL,
    request_id text NULL CHECK (request_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- Canonical text of an IPv4 or IPv6 address.
    client_ip text NULL CHECK (char_length(client_ip) BETWEEN 2 AND 45),
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),

    CONSTRAINT audit_events_actor_complete CHECK ((actor_id IS NULL) = (actor_role IS NULL)),
    CONSTRAINT audit_events_hash_unique UNIQUE (hash),
    -- Each event has at most one successor, so the chain cannot fork even
    -- if a writer skipped the append lock.
    CONSTRAINT audit_events_prev_hash_unique UNIQUE (prev_hash)
);

-- Newest-first listings by patient, actor and record.
CREATE INDEX audit_events_patient_seq_idx
    ON audit_events (patient_id, seq DESC) WHERE patient_id IS NOT NULL;
CREATE INDEX audit_events_actor_seq_idx
    ON audit_events (actor_id, seq DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_record_seq_idx
    ON audit_events (record_id, seq DESC) WHERE record_id IS NOT NULL;

CREATE FUNCTION audit_events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit events are never changed or deleted; record a new event instead.';
END;
$$;

CREATE TRIGGER audit_events_reject_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_reject_change();
CREATE TRIGGER audit_events_reject_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_reject_change();
