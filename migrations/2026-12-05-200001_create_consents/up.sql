-- Consents that patients grant to doctors, with the patient's EIP-712
-- signatures and the state of the grant and of the revocation on the
-- ConsentRegistry contract. Access checks read this table on every request.
CREATE TABLE consents (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES users (id),
    doctor_id uuid NOT NULL REFERENCES users (id),
    -- Custodial addresses at grant time; the patient's signed the grant.
    patient_address bytea NOT NULL CHECK (octet_length(patient_address) = 20),
    doctor_address bytea NOT NULL CHECK (octet_length(doctor_address) = 20),
    access text NOT NULL CHECK (access IN ('read', 'write')),
    scope text NOT NULL CHECK (scope IN ('all', 'record_types', 'record_ids')),
    record_types text[] NOT NULL DEFAULT '{}',
    record_ids uuid[] NOT NULL DEFAULT '{}',
    purpose text NULL CHECK (char_length(purpose) BETWEEN 1 AND 500),
    -- Hash of scope and purpose, the value signed and stored on chain.
    scope_hash bytea NOT NULL CHECK (octet_length(scope_hash) = 32),
    expires_at timestamptz NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz NULL,
    -- 65-byte r || s || v signatures by the patient's custodial key.
    grant_signature bytea NOT NULL CHECK (octet_length(grant_signature) = 65),
    grant_status text NOT NULL DEFAULT 'pending'
        CHECK (grant_status IN ('pending', 'anchored', 'failed')),
    grant_tx_hash bytea NULL CHECK (octet_length(grant_tx_hash) = 32),
    grant_block_number bigint NULL CHECK (grant_block_number >= 0),
    grant_anchored_at timestamptz NULL,
    revoke_signature bytea NULL CHECK (octet_length(revoke_signature) = 65),
    revoke_status text NULL CHECK (revoke_status IN ('pending', 'anchored', 'failed')),
    revoke_tx_hash bytea NULL CHECK (octet_length(revoke_tx_hash) = 32),
    revoke_block_number bigint NULL CHECK (revoke_block_number >= 0),
    revoke_anchored_at timestamptz NULL,

    CONSTRAINT consents_not_to_self CHECK (patient_id <> doctor_id),
    -- Each scope kind has exactly its own list, and that list is not empty.
    CONSTRAINT consents_scope_lists CHECK (
        (scope = 'all' AND cardinality(record_types) = 0 AND cardinality(record_ids) = 0)
            OR (scope = 'record_types' AND cardinality(record_types) > 0
                AND cardinality(record_ids) = 0)
            OR (scope = 'record_ids' AND cardinality(record_ids) > 0
                AND cardinality(record_types) = 0)
    ),
    -- A revoked consent has a revocation signature and status; no other has.
    CONSTRAINT consents_revocation_complete CHECK (
        (revoked_at IS NULL) = (revoke_signature IS NULL)
            AND (revoked_at IS NULL) = (revoke_status IS NULL)
    ),
    CONSTRAINT consents_grant_anchored_complete CHECK (
        (grant_status = 'anchored')
            = (grant_block_number IS NOT NULL AND grant_anchored_at IS NOT NULL)
    ),
    CONSTRAINT consents_revoke_anchored_complete CHECK (
        (revoke_status IS NOT DISTINCT FROM 'anchored')
            = (revoke_block_number IS NOT NULL AND revoke_anchored_at IS NOT NULL)
    )
);

-- The access check: consents in force between one patient and one doctor.
CREATE INDEX consents_patient_doctor_idx
    ON consents (patient_id, doctor_id) WHERE revoked_at IS NULL;
-- Listings, newest first.
CREATE INDEX consents_patient_created_idx ON consents (patient_id, created_at DESC, id DESC);
CREATE INDEX consents_doctor_created_idx ON consents (doctor_id, created_at DESC, id DESC);

-- Emergency accesses doctors opened without consent. Rows are never
-- changed or deleted, so patients and admins can review every one.
CREATE TABLE break_glass_events (
    id uuid PRIMARY KEY,
    doctor_id uuid NOT NULL REFERENCES users (id),
    patient_id uuid NOT NULL REFERENCES users (id),
    reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1000),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,

    CONSTRAINT break_glass_events_ends_after_start CHECK (expires_at > created_at)
);

CREATE INDEX break_glass_events_doctor_patient_idx
    ON break_glass_events (doctor_id, patient_id, expires_at DESC);
CREATE INDEX break_glass_events_patient_created_idx
    ON break_glass_events (patient_id, created_at DESC, id DESC);
CREATE INDEX break_glass_events_created_idx ON break_glass_events (created_at DESC, id DESC);

-- Consent jobs write their outcome to a consents row: grant_consent to the
-- grant_* columns, revoke_consent to the revoke_* columns.
ALTER TABLE outbox_jobs ADD COLUMN consent_id uuid NULL REFERENCES consents (id);
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_kind_check;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_kind_check CHECK (
    kind IN ('register_user', 'anchor_record', 'grant_consent', 'revoke_consent')
);
ALTER TABLE outbox_jobs DROP CONSTRAINT outbox_jobs_target_matches_kind;
ALTER TABLE outbox_jobs ADD CONSTRAINT outbox_jobs_target_matches_kind CHECK (
    (kind = 'anchor_record' AND record_id IS NOT NULL AND user_id IS NULL
        AND consent_id IS NULL)
        OR (kind = 'register_user' AND user_id IS NOT NULL AND record_id IS NULL
            AND consent_id IS NULL)
        OR (kind IN ('grant_consent', 'revoke_consent') AND consent_id IS NOT NULL
            AND record_id IS NULL AND user_id IS NULL)
);
CREATE INDEX outbox_jobs_consent_id_idx ON outbox_jobs (consent_id) WHERE consent_id IS NOT NULL;
