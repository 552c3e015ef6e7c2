-- Restores the constraints of 2026-12-05-200001_create_consents, which
-- have no audit kind, so the audit jobs go first.
DELETE FROM outbox_jobs WHERE kind = 'anchor_audit_head';
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_target_matches_kind;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_target_matches_kind CHECK (
    (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL
        AND consent_id IS NULL)
        OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL
            AND consent_id IS NULL)
        OR (kind IN ('grant_consent', 'revoke_consent') AND consent_id IS NOT NULL
            AND record_id IS NULL AND user_id IS NULL)
);
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check CHECK (
    kind IN ('register_user', 'anchor_record', 'grant_consent', 'revoke_consent')
);
