-- TOTP second factors (RFC 6238). The shared secret is sealed with
-- envelope encryption (AES-256-GCM) under a master key, like custodial
-- keys in user_keys.
CREATE TABLE totp_credentials (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    key_id text NOT NULL CHECK (char_length(key_id) BETWEEN 1 AND 64),
    -- Data key sealed by the master key: 12-byte nonce, ciphertext, 16-byte tag.
    wrapped_key bytea NOT NULL CHECK (octet_length(wrapped_key) >= 28),
    nonce bytea NOT NULL CHECK (octet_length(nonce) = 12),
    -- Encrypted 20-byte secret followed by the 16-byte GCM tag.
    ciphertext bytea NOT NULL CHECK (octet_length(ciphertext) >= 16),
    -- NULL until the user proves possession with a code; only confirmed
    -- credentials are asked for at login.
    confirmed_at timestamptz NULL,
    -- Latest 30-second time step whose code was accepted; codes of this
    -- step or earlier are rejected, so each code works once.
    last_used_step bigint NULL CHECK (last_used_step >= 0),
    created_at timestamptz NOT NULL
);

-- Single-use recovery codes for a lost authenticator, as SHA-256 hashes.
CREATE TABLE recovery_codes (
    user_id uuid NOT NULL REFERENCES users (id),
    code_hash bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at timestamptz NOT NULL,
    used_at timestamptz NULL,

    PRIMARY KEY (user_id, code_hash)
);
