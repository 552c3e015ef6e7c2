-- Audit chain heads queued for anchoring on the AuditAnchorRegistry
-- contract, and their progress. The chain, not this table, is the record
-- of what was anchored: `meditrustal audit verify` reads the anchors from
-- the contract.
CREATE TABLE audit_anchors (
    -- Sequence number of the anchored event.
    seq bigint PRIMARY KEY CHECK (seq > 0),
    head_hash bytea NOT NULL CHECK (octet_length(head_hash) = 32),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'anchored', 'failed')),
    tx_hash bytea NULL CHECK (octet_length(tx_hash) = 32),
    block_number bigint NULL CHECK (block_number >= 0),
    anchored_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),

    -- An anchored head has a block and a time; no other head has either.
    CONSTRAINT audit_anchors_anchored_complete CHECK (
        (status = 'anchored') = (block_number IS NOT NULL AND anchored_at IS NOT NULL)
    ),
    CONSTRAINT audit_anchors_block_has_tx CHECK (block_number IS NULL OR tx_hash IS NOT NULL)
);

-- Outbox jobs of kind anchor_audit_head name their audit_anchors row.
-- The kind and target constraints that admit them are replaced in
-- 2026-12-05-400001_outbox_all_job_kinds, together with the consent kinds,
-- because a database that already holds consent jobs would reject a
-- constraint written here without them.
ALTER TABLE outbox_jobs
    ADD COLUMN audit_anchor_seq bigint NULL REFERENCES audit_anchors (seq);
CREATE INDEX outbox_jobs_audit_anchor_seq_idx
    ON outbox_jobs (audit_anchor_seq) WHERE audit_anchor_seq IS NOT NULL;
