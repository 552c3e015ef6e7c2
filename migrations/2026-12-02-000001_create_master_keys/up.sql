-- One row per master key id that has sealed data in this database, with a
-- check value derived from the key. A server configured with a different
-- key under the same id refuses to start instead of failing every read.
CREATE TABLE master_keys (
    key_id      text PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 64),
    check_value bytea NOT NULL CHECK (length(check_value) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
