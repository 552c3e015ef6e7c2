-- Batch anchoring: many record commitments under one Merkle root,
-- anchored in one BatchAnchorRegistry transaction (docs/anchoring.md).
CREATE TABLE anchor_batches (
    id bigserial PRIMARY KEY,
    -- Merkle root over the members' leaves; the contract's key.
    root bytea NOT NULL CHECK (octet_length(root) = 32),
    leaf_count integer NOT NULL CHECK (leaf_count >= 1),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'anchored', 'failed')),
    tx_hash bytea NULL CHECK (octet_length(tx_hash) = 32),
    block_number bigint NULL CHECK (block_number >= 0),
    anchored_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT anchor_batches_root_unique UNIQUE (root),
    CONSTRAINT anchor_batches_anchored_complete CHECK (
        (status = 'anchored') = (block_number IS NOT NULL AND anchored_at IS NOT NULL)
    ),
    CONSTRAINT anchor_batches_block_has_tx CHECK (block_number IS NULL OR tx_hash IS NOT NULL)
);

-- Each record's random 32-byte salt, hashed into its leaf. Records created
-- before this migration get one here: two gen_random_uuid() values (v4,
-- from PostgreSQL's strong random source), 244 random bits in all.
ALTER TABLE medical_records ADD COLUMN anchor_salt bytea NULL;
UPDATE medical_records
SET anchor_salt = uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
ALTER TABLE medical_records
    ALTER COLUMN anchor_salt SET NOT NULL,
    ADD CONSTRAINT medical_records_anchor_salt_length CHECK (octet_length(anchor_salt) = 32),
    -- A salt is never reused.
    ADD CONSTRAINT medical_records_anchor_salt_unique UNIQUE (anchor_salt);

-- A batch-anchored record's place in its batch: the batch, the leaf index
-- and the sibling hashes from the leaf up, 32 bytes each. All three or
-- none.
ALTER TABLE medical_records
    ADD COLUMN anchor_batch_id bigint NULL REFERENCES anchor_batches (id),
    ADD COLUMN anchor_leaf_index integer NULL CHECK (anchor_leaf_index >= 0),
    ADD COLUMN anchor_proof bytea NULL CHECK (octet_length(anchor_proof) % 32 = 0),
    ADD CONSTRAINT medical_records_batch_complete CHECK (
        (anchor_batch_id IS NULL) = (anchor_leaf_index IS NULL)
            AND (anchor_batch_id IS NULL) = (anchor_proof IS NULL)
    ),
    ADD CONSTRAINT medical_records_batch_leaf_unique UNIQUE (anchor_batch_id, anchor_leaf_index);

-- Outbox jobs of kind anchor_batch name their anchor_batches row.
ALTER TABLE outbox_jobs ADD COLUMN anchor_batch_id bigint NULL REFERENCES anchor_batches (id);
CREATE INDEX outbox_jobs_anchor_batch_id_idx
    ON outbox_jobs (anchor_batch_id) WHERE anchor_batch_id IS NOT NULL;
-- The batcher's claim: record anchor jobs still waiting, oldest first.
CREATE INDEX outbox_jobs_waiting_record_anchors_idx
    ON outbox_jobs (created_at, id) WHERE kind = 'anchor_record' AND status = 'pending';
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check CHECK (
    kind IN (
        'register_user', 'anchor_record', 'grant_consent', 'revoke_consent',
        'anchor_audit_head', 'anchor_batch'
    )
);
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_target_matches_kind;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_target_matches_kind CHECK (
    (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL
        AND consent_id IS NULL AND audit_anchor_seq IS NULL AND anchor_batch_id IS NULL)
    OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL
        AND consent_id IS NULL AND audit_anchor_seq IS NULL AND anchor_batch_id IS NULL)
    OR (kind IN ('grant_consent', 'revoke_consent') AND consent_id IS NOT NULL
        AND record_id IS NULL AND user_id IS NULL AND audit_anchor_seq IS NULL
        AND anchor_batch_id IS NULL)
    OR (kind = 'anchor_audit_head' AND audit_anchor_seq IS NOT NULL
        AND record_id IS NULL AND user_id IS NULL AND consent_id IS NULL
        AND anchor_batch_id IS NULL)
    OR (kind = 'anchor_batch' AND anchor_batch_id IS NOT NULL
        AND record_id IS NULL AND user_id IS NULL AND consent_id IS NULL
        AND audit_anchor_seq IS NULL)
);
