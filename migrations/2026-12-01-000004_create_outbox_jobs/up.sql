-- Durable queue of chain jobs. A job row is written in the same
-- transaction as the user or record it describes, so every committed user
-- and record has a job.
--
-- Lifecycle: 'pending' (not sent, or its transaction was forgotten) ->
-- 'sent' (a transaction is in tx_hash and awaits mining) -> 'done' or
-- 'failed'. A worker leases due rows by setting locked_until.
CREATE TABLE outbox_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('register_user', 'anchor_record')),
    -- The serialized LedgerJob, whose "kind" tag repeats the kind column.
    payload jsonb NOT NULL,
    record_id uuid NULL REFERENCES medical_records (id),
    user_id uuid NULL REFERENCES users (id),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sent', 'done', 'failed')),
    -- Failed attempts so far.
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- End of the current worker's lease; NULL when no worker holds the job.
    locked_until timestamptz NULL,
    tx_hash bytea NULL CHECK (octet_length(tx_hash) = 32),
    last_error text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT outbox_jobs_payload_kind_matches CHECK (payload ->> 'kind' = kind),
    -- Each kind names exactly its own target row.
    CONSTRAINT outbox_jobs_target_matches_kind CHECK (
        (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL)
            OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL)
    )
);

-- Due jobs, in claim order; finished jobs stay out of the index.
CREATE INDEX outbox_jobs_due_idx
    ON outbox_jobs (next_attempt_at, id)
    WHERE status IN ('pending', 'sent');
-- Foreign key lookups when a user or record row is deleted or locked.
CREATE INDEX outbox_jobs_record_id_idx ON outbox_jobs (record_id) WHERE record_id IS NOT NULL;
CREATE INDEX outbox_jobs_user_id_idx ON outbox_jobs (user_id) WHERE user_id IS NOT NULL;
