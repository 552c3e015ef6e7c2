use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use meditrustal_crypto::Digest;
use meditrustal_identity::{Principal, Role, UserId};
use uuid::Uuid;

/// The kind of action an audit event records. Its names are stable because
/// they are stored, covered by the event hash and returned by the API, so a
/// name is never changed or reused once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// A new account registered itself (`auth.register`).
    Register,
    /// A password login, successful or not (`auth.login`).
    Login,
    /// A presented bearer token that failed verification
    /// (`auth.token_rejected`).
    TokenRejected,
    /// Creation of a medical record (`record.create`).
    RecordCreate,
    /// A read of a record's decrypted content (`record.read`).
    RecordRead,
    /// An integrity check of a record (`record.verify`).
    RecordVerify,
    /// A listing of a patient's record metadata (`record.list`).
    RecordList,
    /// A download of a record's anchor receipt (`record.proof`).
    RecordProof,
    /// A patient granted someone access to their records (`consent.grant`).
    ConsentGrant,
    /// A patient revoked a grant (`consent.revoke`).
    ConsentRevoke,
    /// Emergency access to a patient's records without consent
    /// (`break_glass.access`).
    BreakGlass,
    /// An administrative command (`admin.command`). The reason code names
    /// the command, such as `deactivate_user`.
    AdminCommand,
    /// A search of the audit log by an administrator (`audit.search`).
    AuditSearch,
    /// The end of sessions by their user (`auth.logout`). The reason code
    /// names the sessions: `current_session`, `all_sessions` or
    /// `session:<id>`.
    Logout,
    /// A password change by its user (`auth.password_change`).
    PasswordChange,
    /// A password set with a reset token (`auth.password_reset`).
    PasswordReset,
    /// A second factor turned on or off (`auth.mfa_change`). The reason
    /// code is `totp_enabled` or `totp_disabled`.
    MfaChange,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Self; 17] = [
        Self::Register,
        Self::Login,
        Self::TokenRejected,
        Self::RecordCreate,
        Self::RecordRead,
        Self::RecordVerify,
        Self::RecordList,
        Self::ConsentGrant,
        Self::ConsentRevoke,
        Self::BreakGlass,
        Self::AdminCommand,
        Self::AuditSearch,
        Self::Logout,
        Self::PasswordChange,
        Self::PasswordReset,
        Self::MfaChange,
        Self::RecordProof,
    ];

    /// Returns the stable name, as stored, hashed and returned by the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Register => "auth.register",
            Self::Login => "auth.login",
            Self::TokenRejected => "auth.token_rejected",
            Self::RecordCreate => "record.create",
            Self::RecordRead => "record.read",
            Self::RecordVerify => "record.verify",
            Self::RecordList => "record.list",
            Self::ConsentGrant => "consent.grant",
            Self::ConsentRevoke => "consent.revoke",
            Self::BreakGlass => "break_glass.access",
            Self::AdminCommand => "admin.command",
            Self::AuditSearch => "audit.search",
            Self::Logout => "auth.logout",
            Self::PasswordChange => "auth.password_change",
            Self::PasswordReset => "auth.password_reset",
            Self::MfaChange => "auth.mfa_change",
            Self::RecordProof => "record.proof",
        }
    }

    /// Parses a stable name; `None` for a name this build does not know.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }

    /// Lists the accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of an audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The action was allowed and completed.
    Success,
    /// The action was refused: wrong credentials, an invalid token, or no
    /// right to the target.
    Denied,
    /// The target does not exist.
    NotFound,
    /// The action was allowed but failed, for example a record that failed
    /// its integrity check.
    Failed,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Self; 4] = [Self::Success, Self::Denied, Self::NotFound, Self::Failed];

    /// Returns the stable name, as stored, hashed and returned by the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::NotFound => "not_found",
            Self::Failed => "failed",
        }
    }

    /// Parses a stable name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }

    /// Lists the accepted names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action was allowed, denied or failed, as a machine-readable code
/// (`owner`, `not_owner`, `consent:<grant id>`). 1 to 128 characters of
/// lowercase ASCII letters, digits, `_`, `.`, `:` and `-`. The alphabet has
/// no space and no `@`, so a code cannot carry free text, a name or an
/// e-mail address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReasonCode(Cow<'static, str>);

impl ReasonCode {
    /// Maximum length in characters.
    pub const MAX_CHARS: usize = 128;

    /// The caller owns the target.
    pub const OWNER: Self = Self(Cow::Borrowed("owner"));
    /// The caller is neither the owner nor granted access.
    pub const NOT_OWNER: Self = Self(Cow::Borrowed("not_owner"));
    /// The caller's role may not perform the action.
    pub const FORBIDDEN: Self = Self(Cow::Borrowed("forbidden"));
    /// A doctor has no consent or break-glass access that covers the
    /// request.
    pub const CONSENT_REQUIRED: Self = Self(Cow::Borrowed("consent_required"));
    /// The audit search needs the ADMIN role.
    pub const NOT_ADMIN: Self = Self(Cow::Borrowed("not_admin"));
    /// Unknown account or wrong password.
    pub const INVALID_CREDENTIALS: Self = Self(Cow::Borrowed("invalid_credentials"));
    /// Too many failed logins for the name or the client address; the
    /// password was not checked.
    pub const TOO_MANY_ATTEMPTS: Self = Self(Cow::Borrowed("too_many_attempts"));
    /// The password was right and a second factor must follow.
    pub const MFA_REQUIRED: Self = Self(Cow::Borrowed("mfa_required"));
    /// The second login step passed with a TOTP or recovery code.
    pub const MFA_VERIFIED: Self = Self(Cow::Borrowed("mfa_verified"));
    /// The MFA login token, TOTP code or recovery code was wrong, spent or
    /// expired.
    pub const INVALID_MFA_CODE: Self = Self(Cow::Borrowed("invalid_mfa_code"));
    /// A spent refresh token was presented again, so its session was
    /// ended.
    pub const REFRESH_TOKEN_REUSED: Self = Self(Cow::Borrowed("refresh_token_reused"));
    /// The session of the presented access token.
    pub const CURRENT_SESSION: Self = Self(Cow::Borrowed("current_session"));
    /// Every session of the user.
    pub const ALL_SESSIONS: Self = Self(Cow::Borrowed("all_sessions"));
    /// TOTP was turned on.
    pub const TOTP_ENABLED: Self = Self(Cow::Borrowed("totp_enabled"));
    /// TOTP was turned off.
    pub const TOTP_DISABLED: Self = Self(Cow::Borrowed("totp_disabled"));
    /// Admin command: list users.
    pub const LIST_USERS: Self = Self(Cow::Borrowed("list_users"));
    /// Admin command: deactivate a user.
    pub const DEACTIVATE_USER: Self = Self(Cow::Borrowed("deactivate_user"));
    /// Admin command: reactivate a user.
    pub const REACTIVATE_USER: Self = Self(Cow::Borrowed("reactivate_user"));
    /// Admin command: list every break-glass access.
    pub const LIST_BREAK_GLASS: Self = Self(Cow::Borrowed("list_break_glass"));
    /// The bearer token is malformed, forged or expired, or its user is
    /// gone or deactivated.
    pub const INVALID_TOKEN: Self = Self(Cow::Borrowed("invalid_token"));
    /// The stored record failed its integrity check.
    pub const INTEGRITY_CHECK_FAILED: Self = Self(Cow::Borrowed("integrity_check_failed"));

    /// Validates a code. Returns `None` for an empty or too long code or a
    /// character outside the alphabet.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=Self::MAX_CHARS).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b));
        valid.then(|| Self(Cow::Owned(text.to_owned())))
    }

    /// Builds `<prefix>:<id>`, such as `consent:6f1c…`, naming the grant or
    /// access that justified an action. Returns `None` when `prefix` is not
    /// a valid code.
    pub fn with_id(prefix: &str, id: Uuid) -> Option<Self> {
        Self::parse(&format!("{prefix}:{}", id.hyphenated()))
    }

    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the HTTP request that caused an event: 1 to 64 ASCII letters,
/// digits, `-` or `_`, the alphabet the request-id middleware accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Validates a request id; `None` when it is empty, too long or has
    /// another character.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| Self(text.to_owned()))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The user who performed an action, with their role at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user's id.
    pub user_id: UserId,
    /// The user's role when the event was recorded.
    pub role: Role,
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        Self {
            user_id: principal.user_id,
            role: principal.role,
        }
    }
}

/// The content of an audit event, before it has a place in the chain. It
/// contains ids, codes and an address only, never a secret, a name, an
/// e-mail address or record content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened, in whole microseconds (the database's precision).
    pub occurred_at: DateTime<Utc>,
    /// The user who acted; `None` when no account is known (a login with an
    /// unknown name, a rejected token).
    pub actor: Option<Actor>,
    /// The action.
    pub action: Action,
    /// The result.
    pub outcome: Outcome,
    /// The reason it was allowed, denied or failed.
    pub reason: Option<ReasonCode>,
    /// The patient whose data was the target.
    pub patient_id: Option<UserId>,
    /// The record that was the target.
    pub record_id: Option<Uuid>,
    /// The HTTP request that caused it.
    pub request_id: Option<RequestId>,
    /// The client's address, as the HTTP layer determined it.
    pub client_ip: Option<IpAddr>,
}

impl AuditEntry {
    /// Starts an entry for `action` with `outcome` at `occurred_at`, which
    /// is truncated to whole microseconds.
    pub fn new(action: Action, outcome: Outcome, occurred_at: DateTime<Utc>) -> Self {
        Self {
            occurred_at: truncate_to_micros(occurred_at),
            actor: None,
            action,
            outcome,
            reason: None,
            patient_id: None,
            record_id: None,
            request_id: None,
            client_ip: None,
        }
    }

    /// Sets the actor.
    pub fn by(mut self, actor: impl Into<Actor>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the target patient.
    pub fn patient(mut self, patient_id: UserId) -> Self {
        self.patient_id = Some(patient_id);
        self
    }

    /// Sets the target record.
    pub fn record(mut self, record_id: Uuid) -> Self {
        self.record_id = Some(record_id);
        self
    }

    /// Sets the reason code.
    pub fn reason(mut self, reason: ReasonCode) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the request id and client address.
    pub fn origin(mut self, request_id: Option<RequestId>, client_ip: Option<IpAddr>) -> Self {
        self.request_id = request_id;
        self.client_ip = client_ip.map(|ip| ip.to_canonical());
        self
    }
}

/// Drops sub-microsecond digits, so a time survives a database round trip
/// unchanged and the event hash stays reproducible.
fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.timestamp_micros()).unwrap_or(time)
}

/// An entry at its place in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// Position in the chain: 1 for the first event, then one more for each
    /// event, with no gaps.
    pub seq: u64,
    /// The content.
    pub entry: AuditEntry,
    /// Hash of the previous event, or [`crate::GENESIS_HASH`] for event 1.
    pub prev_hash: Digest,
    /// This event's hash (see [`crate::event_hash`]).
    pub hash: Digest,
}

impl AuditEvent {
    /// Returns the chain head this event forms when it is the last event.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// The last event of the chain: its sequence number and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// Sequence number of the last event.
    pub seq: u64,
    /// Its hash, which commits to every earlier event.
    pub hash: Digest,
}

/// A chain head as the `AuditAnchorRegistry` contract stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchoredHead {
    /// Sequence number of the anchored event.
    pub seq: u64,
    /// The hash the event had when it was anchored.
    pub head_hash: Digest,
    /// Block that contains the anchor.
    pub block_number: u64,
}

/// Conditions an event must meet to be listed; unset fields match all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events by this user.
    pub actor_id: Option<UserId>,
    /// Only events about this patient.
    pub patient_id: Option<UserId>,
    /// Only events about this record.
    pub record_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only events before this time.
    pub to: Option<DateTime<Utc>>,
}

/// A page request for [`crate::AuditStore::search`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// Which events.
    pub filter: EventFilter,
    /// Only events with a lower sequence number: the cursor.
    pub before_seq: Option<u64>,
    /// Page size.
    pub limit: u32,
}

/// One page of events, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventPage {
    /// The events, by descending sequence number.
    pub events: Vec<AuditEvent>,
    /// Cursor of the next page (the last event's sequence number), if there
    /// is one.
    pub next: Option<u64>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("record.delete"), None);
        assert_eq!(Action::parse("RECORD.READ"), None);
    }

    #[test]
    fn outcome_names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
        }
        assert_eq!(Outcome::parse("ok"), None);
    }

    #[test]
    fn reason_code_rejects_free_text() {
        for text in [
            "",
            "Owner",
            "not owner",
            "alice@example.org",
            "line\nbreak",
            &"a".repeat(129),
        ] {
            assert_eq!(ReasonCode::parse(text), None, "{text:?} was accepted");
        }
        assert_eq!(
            ReasonCode::parse("consent:grant-1").unwrap().as_str(),
            "consent:grant-1"
        );
        assert_eq!(
            ReasonCode::parse(&"a".repeat(128)).unwrap().as_str().len(),
            128
        );
    }

    #[test]
    fn reason_code_with_id_uses_hyphenated_uuid() {
        let code = ReasonCode::with_id("break_glass", Uuid::from_u128(1)).unwrap();

        assert_eq!(
            code.as_str(),
            "break_glass:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(ReasonCode::with_id("Break Glass", Uuid::nil()), None);
    }

    #[test]
    fn request_id_accepts_middleware_alphabet_only() {
        assert!(RequestId::parse("0b6c-4e_A").is_some());
        assert_eq!(RequestId::parse(""), None);
        assert_eq!(RequestId::parse("a b"), None);
        assert_eq!(RequestId::parse(&"x".repeat(65)), None);
    }

    #[test]
    fn entry_truncates_time_to_microseconds() {
        let time = Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();

        let entry = AuditEntry::new(Action::Login, Outcome::Success, time);

        assert_eq!(entry.occurred_at.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn entry_stores_ipv4_mapped_addresses_as_ipv4() {
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();

        let entry =
            AuditEntry::new(Action::Login, Outcome::Success, Utc::now()).origin(None, Some(mapped));

        assert_eq!(entry.client_ip, Some("203.0.113.9".parse().unwrap()));
    }
}
