ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_target_matches_kind;
DELETE FROM outbox_jobs WHERE kind = 'anchor_batch';
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check CHECK (
    kind IN (
        'register_user', 'anchor_record', 'grant_consent', 'revoke_consent',
        'anchor_audit_head'
    )
);
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_target_matches_kind CHECK (
    (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL
        AND consent_id IS NULL AND audit_anchor_seq IS NULL)
    OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL
        AND consent_id IS NULL AND audit_anchor_seq IS NULL)
    OR (kind IN ('grant_consent', 'revoke_consent') AND consent_id IS NOT NULL
        AND record_id IS NULL AND user_id IS NULL AND audit_anchor_seq IS NULL)
    OR (kind = 'anchor_audit_head' AND audit_anchor_seq IS NOT NULL
        AND record_id IS NULL AND user_id IS NULL AND consent_id IS NULL)
);
DROP INDEX outbox_jobs_waiting_record_anchors_idx;
ALTER TABLE outbox_jobs DROP COLUMN anchor_batch_id;
ALTER TABLE medical_records
    DROP COLUMN anchor_batch_id,
    DROP COLUMN anchor_leaf_index,
    DROP COLUMN anchor_proof,
    DROP COLUMN anchor_salt;
DROP TABLE anchor_batches;
