-- Grants the role the server runs as exactly what `meditrustal serve`
-- needs, and no UPDATE, DELETE or TRUNCATE on audit_events. Run it as the
-- role that owns the tables (the one that runs `meditrustal migrate`),
-- after every migration that adds a table or sequence:
--
--   psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f scripts/grant-app-role.sql
--
-- The role must exist and must not own the tables: an owner can disable
-- the audit triggers and grant itself any privilege. Create it once with
--   CREATE ROLE meditrustal_app LOGIN PASSWORD '...';
-- and point MEDITRUSTAL__DATABASE__URL of the server at it.
GRANT USAGE ON SCHEMA public TO meditrustal_app;
GRANT SELECT, INSERT, UPDATE ON users, user_keys, medical_records, outbox_jobs, audit_anchors,
    consents, sessions, refresh_tokens, mail_outbox, master_keys, anchor_batches
    TO meditrustal_app;
GRANT SELECT, INSERT ON break_glass_events TO meditrustal_app;
-- The stores delete spent one-time tokens, replaced recovery codes, a
-- disabled TOTP credential and cleared login throttle counters.
GRANT SELECT, INSERT, UPDATE, DELETE
    ON one_time_tokens, totp_credentials, recovery_codes, login_throttle
    TO meditrustal_app;
GRANT USAGE ON SEQUENCE outbox_jobs_id_seq, mail_outbox_id_seq, anchor_batches_id_seq
    TO meditrustal_app;
GRANT SELECT, INSERT ON audit_events TO meditrustal_app;
