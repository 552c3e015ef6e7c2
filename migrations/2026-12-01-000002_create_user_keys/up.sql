-- Custodial secp256k1 secret keys, sealed with envelope encryption
-- (AES-256-GCM) under a master key. Nothing here is secret without the
-- master key named by key_id.
CREATE TABLE user_keys (
    user_id uuid PRIMARY KEY REFERENCES users (id),
    key_id text NOT NULL CHECK (char_length(key_id) BETWEEN 1 AND 64),
    -- Data key sealed by the master key: 12-byte nonce, ciphertext, 16-byte tag.
    wrapped_key bytea NOT NULL CHECK (octet_length(wrapped_key) >= 28),
    nonce bytea NOT NULL CHECK (octet_length(nonce) = 12),
    -- Encrypted secret key followed by the 16-byte GCM tag.
    ciphertext bytea NOT NULL CHECK (octet_length(ciphertext) >= 16),
    created_at timestamptz NOT NULL DEFAULT now()
);
