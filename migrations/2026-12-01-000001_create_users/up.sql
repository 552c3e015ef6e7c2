-- Users and the state of their registration on the UserRegistry contract.
-- Hashes and addresses are raw bytes; the application prints them as
-- 0x-prefixed lowercase hex.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    username text NOT NULL CHECK (char_length(username) BETWEEN 3 AND 32),
    -- Lowercase username, the uniqueness and login key.
    username_key text NOT NULL,
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    -- NFC of the lowercase NFC email, the uniqueness and login key.
    email_key text NOT NULL,
    full_name text NULL CHECK (char_length(full_name) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('PATIENT', 'DOCTOR', 'ADMIN')),
    did text NOT NULL CHECK (did LIKE 'did:meditrustal:%'),
    blockchain_address bytea NOT NULL CHECK (octet_length(blockchain_address) = 20),
    password_hash text NOT NULL CHECK (password_hash <> ''),
    is_active boolean NOT NULL DEFAULT true,
    chain_status text NOT NULL DEFAULT 'pending'
        CHECK (chain_status IN ('pending', 'registered', 'failed')),
    chain_tx_hash bytea NULL CHECK (octet_length(chain_tx_hash) = 32),
    chain_block_number bigint NULL CHECK (chain_block_number >= 0),
    chain_registered_at timestamptz NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,

    -- The store maps violations of these two constraints, by name, to
    -- "username already exists" and "email already exists".
    CONSTRAINT users_username_key_unique UNIQUE (username_key),
    CONSTRAINT users_email_key_unique UNIQUE (email_key),
    CONSTRAINT users_did_unique UNIQUE (did),
    CONSTRAINT users_blockchain_address_unique UNIQUE (blockchain_address),
    -- A registered user has a block, a time and a transaction; no one else
    -- has a block or a time.
    CONSTRAINT users_chain_registered_complete CHECK (
        (chain_status = 'registered')
            = (chain_block_number IS NOT NULL AND chain_registered_at IS NOT NULL)
    ),
    CONSTRAINT users_chain_block_has_tx CHECK (
        chain_block_number IS NULL OR chain_tx_hash IS NOT NULL
    )
);
