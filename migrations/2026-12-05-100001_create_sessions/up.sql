-- Login sessions. Access tokens carry the session id as `sid`, and every
-- request checks that the session is neither revoked nor expired, so a
-- revocation ends its access tokens at once.
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    -- User agent of the login, without control characters.
    device text NULL CHECK (char_length(device) BETWEEN 1 AND 200),
    -- Client IP of the login or of the latest refresh, as text.
    ip text NULL CHECK (char_length(ip) BETWEEN 2 AND 45),
    created_at timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    -- Expiry of the current refresh token; each refresh moves it.
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NULL,

    CONSTRAINT sessions_expires_after_creation CHECK (expires_at > created_at)
);

-- A user's active sessions, most recently used first.
CREATE INDEX sessions_user_active_idx
    ON sessions (user_id, last_used_at DESC)
    WHERE revoked_at IS NULL;

-- Every refresh token a session has issued, spent or not. A spent token
-- (used_at set) that comes back reveals a copy, and the session is
-- revoked. Only SHA-256 hashes of the tokens are stored.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    used_at timestamptz NULL
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
