-- Failed credential checks per key, shared by every server instance:
-- 'login:<SHA-256 of the login name>', 'user:<uuid>' or 'ip:<address>'.
CREATE TABLE login_throttle (
    key text PRIMARY KEY CHECK (char_length(key) BETWEEN 4 AND 80),
    -- Failures in a row; reset when the last one is older than the
    -- configured quiet period.
    failures integer NOT NULL CHECK (failures >= 1),
    last_failure_at timestamptz NOT NULL,
    -- Attempts are rejected without a check until this time.
    locked_until timestamptz NULL
);
