-- Chain reconciliation and stuck transactions.
--
-- entry_key is the first indexed topic of the event a job's entry emits
-- (record anchor hash, user address left-padded, consent id left-aligned,
-- audit sequence number big-endian), so chain events find their job.
-- block_number is where the job's entry was mined, copied from the target
-- row, so the watcher reads finished jobs by block. sent_at is when the
-- current tx_hash was sent, so a stuck transaction is replaced after a
-- timeout. reanchor_count counts the times the watcher reopened the job
-- because the chain lost its entry.
ALTER TABLE outbox_jobs
    ADD COLUMN entry_key bytea NULL CHECK (octet_length(entry_key) = 32),
    ADD COLUMN block_number bigint NULL CHECK (block_number >= 0),
    ADD COLUMN sent_at timestamptz NULL,
    ADD COLUMN reanchor_count integer NOT NULL DEFAULT 0 CHECK (reanchor_count >= 0);

UPDATE outbox_jobs SET entry_key = decode(substr(payload ->> 'anchor_hash', 3), 'hex')
    WHERE kind = 'anchor_record';
UPDATE outbox_jobs SET entry_key = decode(repeat('00', 12) || substr(payload ->> 'address', 3), 'hex')
    WHERE kind = 'register_user';
UPDATE outbox_jobs
    SET entry_key = decode(replace(payload -> 'terms' ->> 'consent_id', '-', '') || repeat('00', 16), 'hex')
    WHERE kind IN ('grant_consent', 'revoke_consent');
UPDATE outbox_jobs SET entry_key = decode(lpad(to_hex(audit_anchor_seq), 64, '0'), 'hex')
    WHERE kind = 'anchor_audit_head';
UPDATE outbox_jobs SET entry_key = decode(substr(payload ->> 'root', 3), 'hex')
    WHERE kind = 'anchor_batch';
-- A record anchor folded into a batch has no event of its own; its batch
-- job stands for it.
UPDATE outbox_jobs AS job SET entry_key = NULL
    FROM medical_records AS target
    WHERE job.kind = 'anchor_record' AND job.record_id = target.id
      AND target.anchor_batch_id IS NOT NULL;
UPDATE outbox_jobs SET sent_at = updated_at WHERE status = 'sent';

UPDATE outbox_jobs AS job SET block_number = target.anchor_block_number
    FROM medical_records AS target
    WHERE job.status = 'done' AND job.record_id = target.id;
UPDATE outbox_jobs AS job SET block_number = target.chain_block_number
    FROM users AS target
    WHERE job.status = 'done' AND job.user_id = target.id;
UPDATE outbox_jobs AS job SET block_number = target.grant_block_number
    FROM consents AS target
    WHERE job.status = 'done' AND job.kind = 'grant_consent' AND job.consent_id = target.id;
UPDATE outbox_jobs AS job SET block_number = target.revoke_block_number
    FROM consents AS target
    WHERE job.status = 'done' AND job.kind = 'revoke_consent' AND job.consent_id = target.id;
UPDATE outbox_jobs AS job SET block_number = target.block_number
    FROM audit_anchors AS target
    WHERE job.status = 'done' AND job.audit_anchor_seq = target.seq;
UPDATE outbox_jobs AS job SET block_number = target.block_number
    FROM anchor_batches AS target
    WHERE job.status = 'done' AND job.anchor_batch_id = target.id;

-- Matching chain events to jobs, and reading finished jobs by block.
CREATE INDEX outbox_jobs_entry_idx ON outbox_jobs (kind, entry_key);
CREATE INDEX outbox_jobs_done_block_idx ON outbox_jobs (block_number) WHERE status = 'done';

-- Last block the chain watcher processed. One row per watcher name.
CREATE TABLE chain_watch_progress (
    watcher text PRIMARY KEY,
    block_number bigint NOT NULL CHECK (block_number >= 0),
    block_hash bytea NOT NULL CHECK (octet_length(block_hash) = 32),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Chain events that match no outbox job, for an operator to look at:
-- `meditrustal chain reconcile` lists them.
CREATE TABLE chain_unmatched_events (
    kind text NOT NULL,
    entry_key bytea NOT NULL CHECK (octet_length(entry_key) = 32),
    tx_hash bytea NOT NULL CHECK (octet_length(tx_hash) = 32),
    block_number bigint NOT NULL CHECK (block_number >= 0),
    block_hash bytea NOT NULL CHECK (octet_length(block_hash) = 32),
    log_index bigint NOT NULL CHECK (log_index >= 0),
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX chain_unmatched_events_block_idx ON chain_unmatched_events (block_number);
