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

diesel::joinable!(medical_records -> users (patient_id));
diesel::joinable!(user_keys -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    break_glass_events,
    consents,
    medical_records,
    outbox_jobs,
    user_keys,
    users
);

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
                "medical_records",
                debug_query::<Pg, _>(&medical_records::table.select(medical_records::all_columns))
                    .to_string(),
            ),
            (
                "outbox_jobs",
                debug_query::<Pg, _>(&outbox_jobs::table.select(outbox_jobs::all_columns))
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
