DELETE FROM outbox_jobs WHERE consent_id IS NOT NULL;
DROP INDEX outbox_jobs_consent_id_idx;
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_target_matches_kind;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_target_matches_kind CHECK (
    (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL)
        OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL)
);
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check CHECK (
    kind IN ('register_user', 'anchor_record')
);
ALTER TABLE outbox_jobs DROP COLUMN consent_id;
DROP TABLE break_glass_events;
DROP TABLE consents;
