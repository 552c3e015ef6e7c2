-- Medical records: content sealed with envelope encryption (AES-256-GCM),
-- and the state of the record's anchor on the MedicalRecordRegistry
-- contract.
CREATE TABLE medical_records (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL,
    record_type text NOT NULL CHECK (record_type IN (
        'DIAGNOSIS', 'LAB_RESULT', 'PRESCRIPTION', 'TREATMENT_PLAN',
        'MEDICAL_HISTORY', 'VITAL_SIGNS', 'IMAGING', 'VACCINATION'
    )),
    -- Canonical JSON text of an object; text, not jsonb, because the
    -- anchor hash and the encryption's associated data cover these exact
    -- bytes.
    metadata_json text NULL,
    -- SHA-256 of the content before encryption.
    data_hash bytea NOT NULL CHECK (octet_length(data_hash) = 32),
    -- Key of the on-chain entry.
    anchor_hash bytea NOT NULL CHECK (octet_length(anchor_hash) = 32),
    anchor_status text NOT NULL DEFAULT 'pending'
        CHECK (anchor_status IN ('pending', 'anchored', 'failed')),
    anchor_tx_hash bytea NULL CHECK (octet_length(anchor_tx_hash) = 32),
    anchor_block_number bigint NULL CHECK (anchor_block_number >= 0),
    anchored_at timestamptz NULL,
    key_id text NOT NULL CHECK (char_length(key_id) BETWEEN 1 AND 64),
    -- Data key sealed by the master key: 12-byte nonce, ciphertext, 16-byte tag.
    wrapped_key bytea NOT NULL CHECK (octet_length(wrapped_key) >= 28),
    data_nonce bytea NOT NULL CHECK (octet_length(data_nonce) = 12),
    -- Encrypted content followed by the 16-byte GCM tag.
    ciphertext bytea NOT NULL CHECK (octet_length(ciphertext) >= 16),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,

    -- The store maps a violation of this constraint, by name, to "patient
    -- does not exist".
    CONSTRAINT medical_records_patient_id_fkey
        FOREIGN KEY (patient_id) REFERENCES users (id),
    CONSTRAINT medical_records_anchor_hash_unique UNIQUE (anchor_hash),
    -- An anchored record has a block and a time; no other record has either.
    CONSTRAINT medical_records_anchored_complete CHECK (
        (anchor_status = 'anchored')
            = (anchor_block_number IS NOT NULL AND anchored_at IS NOT NULL)
    ),
    CONSTRAINT medical_records_block_has_tx CHECK (
        anchor_block_number IS NULL OR anchor_tx_hash IS NOT NULL
    )
);

-- Keyset paging of a patient's records, newest first, with and without a
-- type filter.
CREATE INDEX medical_records_patient_created_idx
    ON medical_records (patient_id, created_at DESC, id DESC);
CREATE INDEX medical_records_patient_type_created_idx
    ON medical_records (patient_id, record_type, created_at DESC, id DESC);
