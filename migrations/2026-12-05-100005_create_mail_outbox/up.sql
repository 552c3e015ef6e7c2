-- Messages to users written by the development notifier instead of being
-- sent. The body holds the password reset token in clear text, so this
-- table must stay empty in production, where an SMTP adapter sends mail.
CREATE TABLE mail_outbox (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id),
    kind text NOT NULL CHECK (kind IN ('password_reset')),
    recipient text NOT NULL CHECK (char_length(recipient) BETWEEN 3 AND 254),
    subject text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL
);
