-- Single-use tokens: password reset tokens sent by e-mail, and the token
-- that links the two steps of a login with a second factor. Only SHA-256
-- hashes of the tokens are stored.
CREATE TABLE one_time_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    purpose text NOT NULL CHECK (purpose IN ('password_reset', 'mfa_login')),
    user_id uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set when the token is spent; a spent token never works again.
    used_at timestamptz NULL,
    -- Wrong second-factor codes presented with an MFA login token.
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),

    CONSTRAINT one_time_tokens_expires_after_creation CHECK (expires_at > created_at)
);

-- Unspent tokens of a user, deleted when a newer one replaces them.
CREATE INDEX one_time_tokens_user_idx
    ON one_time_tokens (user_id, purpose)
    WHERE used_at IS NULL;
