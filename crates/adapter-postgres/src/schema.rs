//! Diesel table definitions, written by hand to match `migrations/`.
//! The `schema_matches_migrations` test fails when the two drift apart.

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        username_key -> Text,
        email -> Text,
        email_key -> Text,
        full_name -> Nullable<Text>,
        role -> Text,
        did -> Text,
        blockchain_address -> Bytea,
        password_hash -> Text,
        is_active -> Bool,
        chain_status -> Text,
        chain_tx_hash -> Nullable<Bytea>,
        chain_block_number -> Nullable<Int8>,
        chain_registered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_keys (user_id) {
        user_id -> Uuid,
        key_id -> Text,
        wrapped_key -> Bytea,
        nonce -> Bytea,
        ciphertext -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    medical_records (id) {
        id -> Uuid,
        patient_id -> Uuid,
        record_type -> Text,
        metadata_json -> Nullable<Text>,
        data_hash -> Bytea,
        anchor_hash -> Bytea,
        anchor_status -> Text,
        anchor_tx_hash -> Nullable<Bytea>,
        anchor_block_number -> Nullable<Int8>,
        anchored_at -> Nullable<Timestamptz>,
        key_id -> Text,
        wrapped_key -> Bytea,
        data_nonce -> Bytea,
        ciphertext -> Bytea,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        anchor_salt -> Bytea,
        anchor_batch_id -> Nullable<Int8>,
        anchor_leaf_index -> Nullable<Int4>,
        anchor_proof -> Nullable<Bytea>,
    }
}

diesel::table! {
    anchor_batches (id) {
        id -> Int8,
        root -> Bytea,
        leaf_count -> Int4,
        status -> Text,
        tx_hash -> Nullable<Bytea>,
        block_number -> Nullable<Int8>,
        anchored_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    outbox_jobs (id) {
        id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        record_id -> Nullable<Uuid>,
        user_id -> Nullable<Uuid>,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        tx_hash -> Nullable<Bytea>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        consent_id -> Nullable<Uuid>,
        audit_anchor_seq -> Nullable<Int8>,
        anchor_batch_id -> Nullable<Int8>,
    }
}

diesel::table! {
    audit_events (seq) {
        seq -> Int8,
        occurred_at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        actor_role -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        reason -> Nullable<Text>,
        patient_id -> Nullable<Uuid>,
        record_id -> Nullable<Uuid>,
        request_id -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        prev_hash -> Bytea,
        hash -> Bytea,
    }
}

diesel::table! {
    audit_anchors (seq) {
        seq -> Int8,
        head_hash -> Bytea,
        status -> Text,
        tx_hash -> Nullable<Bytea>,
        block_number -> Nullable<Int8>,
        anchored_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    consents (id) {
        id -> Uuid,
        patient_id -> Uuid,
        doctor_id -> Uuid,
        patient_address -> Bytea,
        doctor_address -> Bytea,
        access -> Text,
        scope -> Text,
        record_types -> Array<Text>,
        record_ids -> Array<Uuid>,
        purpose -> Nullable<Text>,
        scope_hash -> Bytea,
        expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        grant_signature -> Bytea,
        grant_status -> Text,
        grant_tx_hash -> Nullable<Bytea>,
        grant_block_number -> Nullable<Int8>,
        grant_anchored_at -> Nullable<Timestamptz>,
        revoke_signature -> Nullable<Bytea>,
        revoke_status -> Nullable<Text>,
        revoke_tx_hash -> Nullable<Bytea>,
        revoke_block_number -> Nullable<Int8>,
        revoke_anchored_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    break_glass_events (id) {
        id -> Uuid,
        doctor_id -> Uuid,
        patient_id -> Uuid,
        reason -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        device -> Nullable<Text>,
        ip -> Nullable<Text>,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    one_time_tokens (token_hash) {
        token_hash -> Bytea,
        purpose -> Text,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        failed_attempts -> Int4,
    }
}

diesel::table! {
    totp_credentials (user_id) {
        user_id -> Uuid,
        key_id -> Text,
        wrapped_key -> Bytea,
        nonce -> Bytea,
        ciphertext -> Bytea,
        confirmed_at -> Nullable<Timestamptz>,
        last_used_step -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    recovery_codes (user_id, code_hash) {
        user_id -> Uuid,
        code_hash -> Bytea,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_throttle (key) {
        key -> Text,
        failures -> Int4,
        last_failure_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Int8,
        user_id -> Uuid,
        kind -> Text,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(medical_records -> users (patient_id));
diesel::joinable!(medical_records -> anchor_batches (anchor_batch_id));
diesel::joinable!(user_keys -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::table! {
    master_keys (key_id) {
        key_id -> Text,
        check_value -> Bytea,
        created_at -> Timestamptz,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    anchor_batches,
    audit_anchors,
    audit_events,
    break_glass_events,
    consents,
    master_keys,
    medical_records,
    outbox_jobs,
    user_keys,
    users
);
diesel::allow_tables_to_appear_in_same_query!(refresh_tokens, sessions);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use diesel::debug_query;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use super::*;
    use crate::TestDatabase;

    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        name: String,
    }

    /// Column names in declaration order, read from the SQL Diesel
    /// generates: `SELECT "t"."a", "t"."b" FROM "t"`.
    fn declared_columns(select_sql: &str) -> Vec<String> {
        let list = select_sql
            .trim_start_matches("SELECT ")
            .split(" FROM ")
            .next()
            .unwrap_or_default();
        list.split(", ")
            .map(|qualified| {
                qualified
                    .rsplit('.')
                    .next()
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }

    fn columns_in_database(conn: &mut PgConnection, table: &str) -> Vec<String> {
        diesel::sql_query(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(table)
        .load::<Name>(conn)
        .unwrap_or_else(|error| panic!("could not read columns of {table}: {error}"))
        .into_iter()
        .map(|row| row.name)
        .collect()
    }

    /// Catches a column added, dropped, renamed or moved on one side only.
    /// Column types are checked by the store tests, which read and write
    /// every column.
    #[tokio::test]
    async fn schema_matches_migrations() {
        let db = TestDatabase::create().await.unwrap();
        let mut conn = db.connect().unwrap();
        let declared = [
            (
                "anchor_batches",
                debug_query::<Pg, _>(&anchor_batches::table.select(anchor_batches::all_columns))
                    .to_string(),
            ),
            (
                "audit_anchors",
                debug_query::<Pg, _>(&audit_anchors::table.select(audit_anchors::all_columns))
                    .to_string(),
            ),
            (
                "audit_events",
                debug_query::<Pg, _>(&audit_events::table.select(audit_events::all_columns))
                    .to_string(),
            ),
            (
                "break_glass_events",
                debug_query::<Pg, _>(
                    &break_glass_events::table.select(break_glass_events::all_columns),
                )
                .to_string(),
            ),
            (
                "consents",
                debug_query::<Pg, _>(&consents::table.select(consents::all_columns)).to_string(),
            ),
            (
                "login_throttle",
                debug_query::<Pg, _>(&login_throttle::table.select(login_throttle::all_columns))
                    .to_string(),
            ),
            (
                "mail_outbox",
                debug_query::<Pg, _>(&mail_outbox::table.select(mail_outbox::all_columns))
                    .to_string(),
            ),
            (
                "master_keys",
                debug_query::<Pg, _>(&master_keys::table.select(master_keys::all_columns))
                    .to_string(),
            ),
            (
                "medical_records",
                debug_query::<Pg, _>(&medical_records::table.select(medical_records::all_columns))
                    .to_string(),
            ),
            (
                "one_time_tokens",
                debug_query::<Pg, _>(&one_time_tokens::table.select(one_time_tokens::all_columns))
                    .to_string(),
            ),
            (
                "outbox_jobs",
                debug_query::<Pg, _>(&outbox_jobs::table.select(outbox_jobs::all_columns))
                    .to_string(),
            ),
            (
                "recovery_codes",
                debug_query::<Pg, _>(&recovery_codes::table.select(recovery_codes::all_columns))
                    .to_string(),
            ),
            (
                "refresh_tokens",
                debug_query::<Pg, _>(&refresh_tokens::table.select(refresh_tokens::all_columns))
                    .to_string(),
            ),
            (
                "sessions",
                debug_query::<Pg, _>(&sessions::table.select(sessions::all_columns)).to_string(),
            ),
            (
                "totp_credentials",
                debug_query::<Pg, _>(
                    &totp_credentials::table.select(totp_credentials::all_columns),
                )
                .to_string(),
            ),
            (
                "user_keys",
                debug_query::<Pg, _>(&user_keys::table.select(user_keys::all_columns)).to_string(),
            ),
            (
                "users",
                debug_query::<Pg, _>(&users::table.select(users::all_columns)).to_string(),
            ),
        ];

        for (table, select_sql) in &declared {
            assert_eq!(
                declared_columns(select_sql),
                columns_in_database(&mut conn, table),
                "table {table}"
            );
        }

        let tables: Vec<String> = diesel::sql_query(
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' ORDER BY table_name",
        )
        .load::<Name>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|row| row.name)
        .collect();
        let declared_tables: Vec<&str> = declared.iter().map(|(table, _)| *table).collect();
        assert_eq!(tables, declared_tables);
    }
}
