//! Development [`Notifier`]: writes each message to the `mail_outbox`
//! table instead of sending it, and logs that it did (never the token or
//! the address). Unlike the stores, this adapter logs, because in
//! development the log is where a person looks for the message.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use meditrustal_identity::{Notification, Notifier, NotifyError};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::pool::Pool;
use crate::schema::mail_outbox;

/// A [`Notifier`] that stores messages in `mail_outbox`. Development and
/// tests only: the stored body contains the reset token in clear text.
#[derive(Clone, Debug)]
pub struct PgMailOutbox {
    pool: Pool,
}

impl PgMailOutbox {
    /// Builds the notifier over `pool`.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

#[derive(Insertable)]
#[diesel(table_name = mail_outbox)]
struct NewMailRow {
    user_id: Uuid,
    kind: &'static str,
    recipient: String,
    subject: &'static str,
    body: String,
    created_at: DateTime<Utc>,
}

fn message_row(notification: &Notification) -> NewMailRow {
    match notification {
        Notification::PasswordReset {
            user_id,
            to,
            token,
            expires_at,
        } => NewMailRow {
            user_id: user_id.0,
            kind: "password_reset",
            recipient: to.as_str().to_owned(),
            subject: "Reset your MediTrustAl password",
            body: format!(
                "Someone asked to reset the password of your MediTrustAl account.\n\n\
                 To choose a new password, send this token to \
                 POST /api/v1/auth/password-reset/confirm before {}:\n\n{}\n\n\
                 The token works once. If you did not ask for a reset, ignore this message; \
                 your password stays as it is.\n",
                expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                token.expose_secret()
            ),
            created_at: Utc::now(),
        },
    }
}

#[async_trait]
impl Notifier for PgMailOutbox {
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError> {
        let row = message_row(notification);
        let (user_id, kind) = (row.user_id, row.kind);
        let id: i64 = self
            .pool
            .run(move |conn| {
                let id = diesel::insert_into(mail_outbox::table)
                    .values(&row)
                    .returning(mail_outbox::id)
                    .get_result(conn)?;
                Ok(id)
            })
            .await
            .map_err(|error| NotifyError(error.to_string()))?;
        tracing::info!(mail.id = id, mail.kind = kind, user.id = %user_id, "message written to mail_outbox");
        Ok(())
    }
}
