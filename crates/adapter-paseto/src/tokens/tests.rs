//! Token tests. Rejection cases build their tokens with pasetors directly,
//! each breaking exactly one property of a token that otherwise verifies
//! (see `helper_token_verifies`), because every failure returns the same
//! `TokenError::Invalid`.

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use pasetors::keys::{Generate, SymmetricKey};
use pasetors::version4::PublicToken;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::*;
use crate::keys::{SigningSeed, TokenKeyId};

/// Seed bytes of the current key, the previous key and a key the verifier
/// has never seen.
const CURRENT: u8 = 1;
const PREVIOUS: u8 = 2;
const STRANGER: u8 = 3;

/// Length of an Ed25519 signature at the end of a v4.public body.
const SIGNATURE_BYTES: usize = 64;

fn key(kid: &str, seed_byte: u8) -> SigningKey {
    let seed = SigningSeed::from_bytes(Zeroizing::new([seed_byte; 32])).unwrap();
    SigningKey::from_seed(TokenKeyId::parse(kid).unwrap(), &seed).unwrap()
}

/// Builds an issuer that signs with "current" and also accepts "previous".
fn tokens() -> PasetoTokens {
    let previous = key("previous", PREVIOUS).verifying_key();
    PasetoTokens::new(key("current", CURRENT), [previous], TokenConfig::default()).unwrap()
}

fn user_id() -> UserId {
    UserId(Uuid::parse_str("123e4567-e89b-42d3-a456-426614174000").unwrap())
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn seconds(count: i64) -> TimeDelta {
    TimeDelta::seconds(count)
}

fn session_id() -> SessionId {
    SessionId(Uuid::parse_str("00000000-0000-4000-8000-000000000042").unwrap())
}

fn claims_at(issued_at: DateTime<Utc>) -> Claims {
    Claims {
        user_id: user_id(),
        session_id: session_id(),
        role: Role::Doctor,
        issued_at,
        expires_at: issued_at + seconds(900),
    }
}

/// Builds a payload that verifies: issued now, valid for ten minutes.
fn valid_payload() -> PasetoClaims {
    let now = now();
    let mut payload = PasetoClaims::new().unwrap();
    payload.issuer(ISSUER).unwrap();
    payload.audience(DEFAULT_AUDIENCE).unwrap();
    payload.subject(&user_id().to_string()).unwrap();
    payload.add_additional(ROLE_CLAIM, "PATIENT").unwrap();
    payload
        .add_additional(SESSION_CLAIM, session_id().to_string())
        .unwrap();
    payload.issued_at(&format_time(now)).unwrap();
    payload.not_before(&format_time(now)).unwrap();
    payload
        .expiration(&format_time(now + seconds(600)))
        .unwrap();
    payload
        .token_identifier(&Uuid::new_v4().to_string())
        .unwrap();
    payload
}

/// Builds `valid_payload` with the time claims replaced, given in seconds
/// from now.
fn payload_with_times(iat: i64, nbf: i64, exp: i64) -> PasetoClaims {
    let now = now();
    let mut payload = valid_payload();
    payload.issued_at(&format_time(now + seconds(iat))).unwrap();
    payload
        .not_before(&format_time(now + seconds(nbf)))
        .unwrap();
    payload
        .expiration(&format_time(now + seconds(exp)))
        .unwrap();
    payload
}

fn footer_for(kid: &str) -> Footer {
    let mut footer = Footer::new();
    footer
        .parse_string(&json!({ "kid": kid }).to_string())
        .unwrap();
    footer
}

fn sign(key: &SigningKey, kid: &str, payload: &PasetoClaims) -> String {
    pasetors::public::sign(key.secret(), payload, Some(&footer_for(kid)), None).unwrap()
}

/// Signs arbitrary payload JSON, for claims the pasetors `Claims` setters
/// reject (empty or non-string registered claims).
fn sign_json(payload: &Value) -> String {
    let footer = json!({ "kid": "current" }).to_string();
    let payload = payload.to_string();
    let key = key("current", CURRENT);
    PublicToken::sign(
        key.secret(),
        payload.as_bytes(),
        Some(footer.as_bytes()),
        None,
    )
    .unwrap()
}

fn valid_payload_json() -> Value {
    serde_json::from_str(&valid_payload().to_string().unwrap()).unwrap()
}

fn current_token(payload: &PasetoClaims) -> String {
    sign(&key("current", CURRENT), "current", payload)
}

fn assert_invalid(token: &str, case: &str) {
    assert_eq!(
        tokens().verify(token),
        Err(TokenError::Invalid),
        "{case} was accepted"
    );
}

/// Splits `v4.public.<body>.<footer>` into the decoded body and footer.
fn decode_parts(token: &str) -> (Vec<u8>, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 4, "expected a token with a footer: {token}");
    let body = Base64UrlSafeNoPadding::decode_to_vec(parts[2], None).unwrap();
    let footer = Base64UrlSafeNoPadding::decode_to_vec(parts[3], None).unwrap();
    (body, footer)
}

fn encode_parts(body: &[u8], footer: &[u8]) -> String {
    let body = Base64UrlSafeNoPadding::encode_to_string(body).unwrap();
    let footer = Base64UrlSafeNoPadding::encode_to_string(footer).unwrap();
    format!("v4.public.{body}.{footer}")
}

// Issue and round trip.

#[test]
fn issued_token_round_trips_claims() {
    let tokens = tokens();
    let claims = claims_at(now());

    let issued = tokens.issue(&claims).unwrap();

    assert_eq!(tokens.verify(issued.token.expose_secret()), Ok(claims));
    assert_eq!(issued.expires_in, 900);
}

#[test]
fn issue_truncates_times_to_whole_seconds() {
    let tokens = tokens();
    let base = now();
    let claims = Claims {
        issued_at: base + TimeDelta::milliseconds(250),
        expires_at: base + seconds(900) + TimeDelta::milliseconds(250),
        ..claims_at(base)
    };

    let issued = tokens.issue(&claims).unwrap();
    let verified = tokens.verify(issued.token.expose_secret()).unwrap();

    assert_eq!(verified.issued_at, base);
    assert_eq!(verified.expires_at, base + seconds(900));
}

#[test]
fn issued_token_carries_registered_claims_and_kid_footer() {
    let base = now();
    let issued = tokens().issue(&claims_at(base)).unwrap();
    let token = issued.token.expose_secret();
    assert!(
        token.starts_with("v4.public."),
        "token starts with {:?}",
        token.get(..10)
    );

    let untrusted = UntrustedToken::<Public, V4>::try_from(token).unwrap();
    assert_eq!(untrusted.untrusted_footer(), br#"{"kid":"current"}"#);

    let payload: Value = serde_json::from_slice(untrusted.untrusted_payload()).unwrap();
    assert_eq!(payload["iss"], "meditrustal");
    assert_eq!(payload["aud"], "meditrustal-api");
    assert_eq!(payload["sub"], "123e4567-e89b-42d3-a456-426614174000");
    assert_eq!(payload["role"], "DOCTOR");
    assert_eq!(payload["sid"], "00000000-0000-4000-8000-000000000042");
    assert_eq!(payload["iat"], format_time(base));
    assert_eq!(payload["nbf"], format_time(base));
    assert_eq!(payload["exp"], format_time(base + seconds(900)));
    let jti = Uuid::parse_str(payload["jti"].as_str().unwrap()).unwrap();
    assert_eq!(jti.get_version_num(), 4);
    assert_eq!(
        payload.as_object().unwrap().len(),
        9,
        "unexpected claims in {payload}"
    );
}

#[test]
fn issued_tokens_have_distinct_token_ids() {
    let tokens = tokens();
    let claims = claims_at(now());
    let jti = |token: &str| {
        let untrusted = UntrustedToken::<Public, V4>::try_from(token).unwrap();
        let payload: Value = serde_json::from_slice(untrusted.untrusted_payload()).unwrap();
        payload["jti"].as_str().unwrap().to_owned()
    };

    let first = tokens.issue(&claims).unwrap();
    let second = tokens.issue(&claims).unwrap();

    assert_ne!(
        jti(first.token.expose_secret()),
        jti(second.token.expose_secret())
    );
}

#[test]
fn issue_rejects_expiry_not_after_issue_time() {
    let tokens = tokens();
    let base = now();
    for (case, expires_at) in [("equal", base), ("earlier", base - seconds(1))] {
        let claims = Claims {
            expires_at,
            ..claims_at(base)
        };
        let result = tokens.issue(&claims);
        assert!(
            matches!(result, Err(TokenError::Issue(_))),
            "{case}: got {result:?}"
        );
    }
}

#[test]
fn issue_rejects_lifetime_over_configured() {
    let base = now();
    let claims = Claims {
        expires_at: base + seconds(901),
        ..claims_at(base)
    };
    let result = tokens().issue(&claims);
    assert!(
        matches!(result, Err(TokenError::Issue(_))),
        "got {result:?}"
    );
}

#[test]
fn lifetime_secs_returns_configured_value() {
    assert_eq!(tokens().lifetime_secs(), 900);

    let config = TokenConfig {
        lifetime_secs: 300,
        ..TokenConfig::default()
    };
    let short = PasetoTokens::new(key("current", CURRENT), [], config).unwrap();
    assert_eq!(short.lifetime_secs(), 300);
}

#[test]
fn verifier_with_public_key_only_accepts_issued_token() {
    let claims = claims_at(now());
    let issued = tokens().issue(&claims).unwrap();
    let public = key("current", CURRENT).verifying_key();
    let verifier = PasetoVerifier::new([public], &TokenConfig::default()).unwrap();

    assert_eq!(verifier.verify(issued.token.expose_secret()), Ok(claims));
}

#[test]
fn helper_token_verifies() {
    let payload = valid_payload();
    let claims = tokens().verify(&current_token(&payload)).unwrap();

    assert_eq!(claims.user_id, user_id());
    assert_eq!(claims.role, Role::Patient);
    assert_eq!(claims.session_id, session_id());
    assert_eq!(claims.expires_at - claims.issued_at, seconds(600));
}

// Version, purpose and format.

#[test]
fn rejects_v4_local_token() {
    let key = SymmetricKey::<V4>::generate().unwrap();
    let token =
        pasetors::local::encrypt(&key, &valid_payload(), Some(&footer_for("current")), None)
            .unwrap();
    assert!(token.starts_with("v4.local."));
    assert_invalid(&token, "v4.local token");
}

#[test]
fn rejects_changed_version_or_purpose_prefix() {
    let token = current_token(&valid_payload());
    let prefixes = [
        "v1.public.",
        "v2.public.",
        "v3.public.",
        "v4.local.",
        "v4.secret.",
        "V4.public.",
        "v4.PUBLIC.",
        "v5.public.",
        "v4public.",
        "",
    ];
    for prefix in prefixes {
        let changed = token.replacen("v4.public.", prefix, 1);
        assert_invalid(&changed, &format!("prefix {prefix:?}"));
    }
}

#[test]
fn rejects_malformed_text() {
    let cases = [
        ("empty", ""),
        ("prefix only", "v4.public."),
        (
            "empty body with footer",
            "v4.public..eyJraWQiOiJjdXJyZW50In0",
        ),
        (
            "body shorter than a signature",
            "v4.public.AAAA.eyJraWQiOiJjdXJyZW50In0",
        ),
        ("invalid base64", "v4.public.!!!!.eyJraWQiOiJjdXJyZW50In0"),
        ("plain text", "not a token"),
    ];
    for (case, token) in cases {
        assert_invalid(token, case);
    }
}

#[test]
fn rejects_token_with_extra_part() {
    let token = current_token(&valid_payload());
    assert_invalid(&format!("{token}.e30"), "fifth part");
}

#[test]
fn rejects_oversized_token() {
    let mut small = valid_payload();
    small.add_additional("pad", "a".repeat(100)).unwrap();
    assert!(
        tokens().verify(&current_token(&small)).is_ok(),
        "control token was rejected"
    );

    let mut large = valid_payload();
    large.add_additional("pad", "a".repeat(5000)).unwrap();
    assert_invalid(&current_token(&large), "token over 4096 bytes");
}

// Keys and signatures.

#[test]
fn rejects_token_signed_by_other_key() {
    let token = sign(&key("current", STRANGER), "current", &valid_payload());
    assert_invalid(
        &token,
        "token signed by an unknown key under the current kid",
    );
}

#[test]
fn rejects_flipped_payload_byte() {
    let (body, footer) = decode_parts(&current_token(&valid_payload()));
    for index in 0..body.len() - SIGNATURE_BYTES {
        let mut tampered = body.clone();
        tampered[index] ^= 0x01;
        assert_invalid(
            &encode_parts(&tampered, &footer),
            &format!("payload byte {index} flipped"),
        );
    }
}

#[test]
fn rejects_flipped_signature_byte() {
    let (body, footer) = decode_parts(&current_token(&valid_payload()));
    for index in body.len() - SIGNATURE_BYTES..body.len() {
        let mut tampered = body.clone();
        tampered[index] ^= 0x01;
        let case = format!("signature byte {index} flipped");
        assert_invalid(&encode_parts(&tampered, &footer), &case);
    }
}

#[test]
fn rejects_flipped_footer_byte() {
    let (body, footer) = decode_parts(&current_token(&valid_payload()));
    for index in 0..footer.len() {
        let mut tampered = footer.clone();
        tampered[index] ^= 0x01;
        assert_invalid(
            &encode_parts(&body, &tampered),
            &format!("footer byte {index} flipped"),
        );
    }
}

#[test]
fn rejects_footer_naming_other_known_key() {
    let (body, _) = decode_parts(&current_token(&valid_payload()));
    assert_invalid(
        &encode_parts(&body, br#"{"kid":"previous"}"#),
        "footer kid changed",
    );
}

#[test]
fn rejects_footer_with_added_whitespace() {
    let (body, _) = decode_parts(&current_token(&valid_payload()));
    assert_invalid(
        &encode_parts(&body, br#"{"kid": "current"}"#),
        "footer respaced",
    );
}

#[test]
fn rejects_token_without_footer() {
    let token = current_token(&valid_payload());
    let without_footer = token.rsplit_once('.').unwrap().0;
    assert_invalid(without_footer, "footer removed");

    let payload = valid_payload().to_string().unwrap();
    let key = key("current", CURRENT);
    let unsigned_footer = PublicToken::sign(key.secret(), payload.as_bytes(), None, None).unwrap();
    assert_invalid(&unsigned_footer, "token signed without a footer");
}

#[test]
fn rejects_footer_without_string_kid() {
    let key = key("current", CURRENT);
    let payload = valid_payload().to_string().unwrap();
    let footers = [
        ("empty object", "{}"),
        ("numeric kid", r#"{"kid":1}"#),
        ("kid in other claim", r#"{"key":"current"}"#),
        ("not JSON", "current"),
    ];
    for (case, footer) in footers {
        let token = PublicToken::sign(
            key.secret(),
            payload.as_bytes(),
            Some(footer.as_bytes()),
            None,
        )
        .unwrap();
        assert_invalid(&token, case);
    }
}

#[test]
fn rejects_oversized_footer() {
    let key = key("current", CURRENT);
    let payload = valid_payload().to_string().unwrap();
    let padding = "x".repeat(256);
    let footer = json!({ "kid": "current", "pad": padding }).to_string();
    let token = PublicToken::sign(
        key.secret(),
        payload.as_bytes(),
        Some(footer.as_bytes()),
        None,
    )
    .unwrap();

    assert_invalid(&token, "footer over 256 bytes");
}

#[test]
fn accepts_footer_with_other_claims() {
    let key = key("current", CURRENT);
    let payload = valid_payload().to_string().unwrap();
    let footer = json!({ "kid": "current", "note": "x" }).to_string();
    let token = PublicToken::sign(
        key.secret(),
        payload.as_bytes(),
        Some(footer.as_bytes()),
        None,
    )
    .unwrap();

    let claims = tokens().verify(&token).unwrap();
    assert_eq!(claims.user_id, user_id());
    assert_eq!(claims.session_id, session_id());
}

// Rotation.

#[test]
fn verifies_token_signed_with_previous_key() {
    let before_rotation =
        PasetoTokens::new(key("previous", PREVIOUS), [], TokenConfig::default()).unwrap();
    let claims = claims_at(now());
    let issued = before_rotation.issue(&claims).unwrap();

    assert_eq!(tokens().verify(issued.token.expose_secret()), Ok(claims));
}

#[test]
fn rejects_token_with_unknown_kid() {
    let retired = sign(&key("retired", STRANGER), "retired", &valid_payload());
    assert_invalid(&retired, "token signed by a key no longer configured");

    let current_key_unknown_kid = sign(&key("current", CURRENT), "retired", &valid_payload());
    assert_invalid(
        &current_key_unknown_kid,
        "valid signature under an unknown kid",
    );
}

// Time claims. Checks are exact: a token is valid from `nbf` and `iat`
// through `exp`, with no leeway.

#[test]
fn rejects_expired_token() {
    assert_invalid(
        &current_token(&payload_with_times(-600, -600, -120)),
        "expired 2 min ago",
    );
}

#[test]
fn rejects_token_expired_one_second_ago() {
    assert_invalid(
        &current_token(&payload_with_times(-300, -300, -1)),
        "expired 1 s ago",
    );
}

#[test]
fn rejects_token_not_yet_valid() {
    assert_invalid(
        &current_token(&payload_with_times(0, 600, 840)),
        "nbf 10 min ahead",
    );
}

#[test]
fn rejects_token_valid_two_seconds_from_now() {
    assert_invalid(
        &current_token(&payload_with_times(0, 2, 600)),
        "nbf 2 s ahead",
    );
}

#[test]
fn rejects_token_issued_in_future() {
    assert_invalid(
        &current_token(&payload_with_times(300, 0, 600)),
        "iat 5 min ahead",
    );
}

#[test]
fn rejects_lifetime_over_configured_bound() {
    let at_bound = current_token(&payload_with_times(0, 0, 900));
    assert!(
        tokens().verify(&at_bound).is_ok(),
        "token with exp - iat = 900 s was rejected"
    );

    assert_invalid(
        &current_token(&payload_with_times(0, 0, 901)),
        "exp - iat = 901 s",
    );
}

#[test]
fn rejects_unparseable_time_claims() {
    for claim in ["iat", "nbf", "exp"] {
        for value in [json!("yesterday"), json!(1_700_000_000), json!(null)] {
            let mut payload = valid_payload_json();
            payload[claim] = value.clone();
            assert_invalid(&sign_json(&payload), &format!("{claim} = {value}"));
        }
    }
}

// Required claims and their values.

#[test]
fn rejects_missing_claim() {
    for claim in [
        "exp", "nbf", "iat", "iss", "aud", "sub", "jti", "role", "sid",
    ] {
        let mut payload = valid_payload();
        assert!(
            payload.remove_claim(claim).is_some(),
            "{claim} was not in the payload"
        );
        assert_invalid(&current_token(&payload), &format!("token without {claim}"));
    }
}

#[test]
fn rejects_wrong_issuer() {
    for issuer in ["meditrustal-dev", "MEDITRUSTAL", "meditrustal ", "other"] {
        let mut payload = valid_payload();
        payload.issuer(issuer).unwrap();
        assert_invalid(&current_token(&payload), &format!("iss {issuer:?}"));
    }
    for issuer in [json!(""), json!(["meditrustal"]), json!(1)] {
        let mut payload = valid_payload_json();
        payload["iss"] = issuer.clone();
        assert_invalid(&sign_json(&payload), &format!("iss {issuer}"));
    }
}

#[test]
fn rejects_wrong_audience() {
    for audience in ["other-api", "meditrustal-api ", "MEDITRUSTAL-API"] {
        let mut payload = valid_payload();
        payload.audience(audience).unwrap();
        assert_invalid(&current_token(&payload), &format!("aud {audience:?}"));
    }
    for audience in [json!(""), json!(["meditrustal-api"])] {
        let mut payload = valid_payload_json();
        payload["aud"] = audience.clone();
        assert_invalid(&sign_json(&payload), &format!("aud {audience}"));
    }
}

#[test]
fn accepts_configured_audience_only() {
    let config = TokenConfig {
        audience: "records-api".to_owned(),
        ..TokenConfig::default()
    };
    let records = PasetoTokens::new(key("current", CURRENT), [], config).unwrap();
    let issued = records.issue(&claims_at(now())).unwrap();

    assert!(records.verify(issued.token.expose_secret()).is_ok());
    assert_invalid(
        issued.token.expose_secret(),
        "token for audience records-api",
    );
}

#[test]
fn rejects_non_uuid_subject() {
    let cases = [
        ("username", json!("alice")),
        ("empty", json!("")),
        (
            "uppercase UUID",
            json!("123E4567-E89B-42D3-A456-426614174000"),
        ),
        (
            "UUID without hyphens",
            json!("123e4567e89b42d3a456426614174000"),
        ),
        (
            "braced UUID",
            json!("{123e4567-e89b-42d3-a456-426614174000}"),
        ),
        (
            "URN UUID",
            json!("urn:uuid:123e4567-e89b-42d3-a456-426614174000"),
        ),
        ("number", json!(42)),
    ];
    for (case, subject) in cases {
        let mut payload = valid_payload_json();
        payload["sub"] = subject;
        assert_invalid(&sign_json(&payload), &format!("sub {case}"));
    }
}

#[test]
fn rejects_non_uuid_session_id() {
    let cases = [
        ("text", json!("session-1")),
        ("empty", json!("")),
        (
            "uppercase UUID",
            json!("00000000-0000-4000-8000-0000000000AB"),
        ),
        (
            "UUID without hyphens",
            json!("00000000000040008000000000000042"),
        ),
        ("number", json!(42)),
        ("null", json!(null)),
    ];
    for (case, session) in cases {
        let mut payload = valid_payload_json();
        payload["sid"] = session;
        assert_invalid(&sign_json(&payload), &format!("sid {case}"));
    }
}

#[test]
fn rejects_unknown_role() {
    let cases = [
        ("unknown name", json!("NURSE")),
        ("lowercase", json!("patient")),
        ("mixed case", json!("Admin")),
        ("empty", json!("")),
        ("number", json!(1)),
        ("null", json!(null)),
        ("list", json!(["PATIENT"])),
    ];
    for (case, role) in cases {
        let mut payload = valid_payload();
        payload.add_additional(ROLE_CLAIM, role).unwrap();
        assert_invalid(&current_token(&payload), &format!("role {case}"));
    }
}

// Setup.

#[test]
fn new_rejects_duplicate_kid() {
    let previous = key("current", PREVIOUS).verifying_key();
    let result = PasetoTokens::new(key("current", CURRENT), [previous], TokenConfig::default());
    assert_eq!(
        result.unwrap_err(),
        TokenSetupError::DuplicateKeyId("current".to_owned())
    );
}

#[test]
fn new_rejects_invalid_config() {
    let lifetime = |lifetime_secs| TokenConfig {
        lifetime_secs,
        ..TokenConfig::default()
    };
    let audience = |audience| TokenConfig {
        audience,
        ..TokenConfig::default()
    };
    let invalid_lifetime = |lifetime_secs| TokenSetupError::InvalidLifetime {
        lifetime_secs,
        max_secs: 86_400,
    };
    let cases = [
        ("zero lifetime", lifetime(0), invalid_lifetime(0)),
        (
            "lifetime over a day",
            lifetime(86_401),
            invalid_lifetime(86_401),
        ),
        (
            "empty audience",
            audience(String::new()),
            TokenSetupError::InvalidAudience,
        ),
        (
            "257-byte audience",
            audience("a".repeat(257)),
            TokenSetupError::InvalidAudience,
        ),
    ];
    for (case, config, expected) in cases {
        let result = PasetoTokens::new(key("current", CURRENT), [], config);
        assert_eq!(result.unwrap_err(), expected, "{case}");
    }
}

#[test]
fn longest_audience_and_kid_fit_token_limit() {
    let kid = "k".repeat(64);
    let config = TokenConfig {
        audience: "a".repeat(256),
        ..TokenConfig::default()
    };
    let tokens = PasetoTokens::new(key(&kid, CURRENT), [], config).unwrap();
    let claims = claims_at(now());

    let issued = tokens.issue(&claims).unwrap();

    let length = issued.token.expose_secret().len();
    assert!(length < 1024, "token is {length} bytes");
    assert_eq!(tokens.verify(issued.token.expose_secret()), Ok(claims));
}

#[test]
fn new_accepts_lifetime_of_one_day() {
    let config = TokenConfig {
        lifetime_secs: MAX_LIFETIME_SECS,
        ..TokenConfig::default()
    };
    let tokens = PasetoTokens::new(key("current", CURRENT), [], config).unwrap();
    assert_eq!(tokens.lifetime_secs(), 86_400);
}

#[test]
fn verifier_rejects_empty_key_set() {
    let result = PasetoVerifier::new([], &TokenConfig::default());
    assert_eq!(result.unwrap_err(), TokenSetupError::NoVerifyingKeys);
}

#[test]
fn debug_output_shows_key_ids_only() {
    let output = format!("{:?}", tokens());
    assert!(output.contains(r#"kid: TokenKeyId("current")"#), "{output}");
    assert!(
        output.contains(r#"kids: ["current", "previous"]"#),
        "{output}"
    );
    assert!(!output.contains("0101"), "seed bytes in {output}");
}
