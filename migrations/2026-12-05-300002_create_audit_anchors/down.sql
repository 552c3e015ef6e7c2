DELETE FROM outbox_jobs WHERE audit_anchor_seq IS NOT NULL;
DROP INDEX outbox_jobs_audit_anchor_seq_idx;
ALTER TABLE outbox_jobs DROP COLUMN audit_anchor_seq;
DROP TABLE audit_anchors;
